#!/usr/bin/env bash
# The main job, end to end on this machine: gstats-collectd on its default
# addresses with the root sample.conf (metrics as line protocol on its
# stdout every 10 s), a real gunicorn whose hooks push to it, traffic from
# curl, and gstatsctl showing the result. DEMO_SECONDS (default 20) bounds the run;
# DEMO_SECONDS=0 keeps it running until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
DEMO_SECONDS=${DEMO_SECONDS:-20}
GUNI_PORT=${GUNI_PORT:-8000}
run=$(mktemp -d /tmp/gstats-demo.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  done
  echo "demo stopped; logs in $run"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

bin/gstats-collectd --config sample.conf >"$run/metrics.lp" 2>"$run/collectd.log" &
pids+=($!)
for _ in $(seq 50); do bin/gstatsctl --timeout 200ms info >/dev/null 2>&1 && break; sleep 0.1; done
bin/gstatsctl info || { cat "$run/collectd.log" >&2; exit 1; }
echo "---- live dashboard: http://127.0.0.1:8002/ (also /_status and /metrics; sample.conf's http_address)"

PYTHONPATH="$PWD/python/src" /usr/bin/gunicorn --chdir "$PWD/examples/gunicorn" -c "$PWD/examples/gunicorn/gunicorn.conf.py" -b "127.0.0.1:$GUNI_PORT" app:application \
  >"$run/gunicorn.log" 2>&1 &
pids+=($!)
ready=""
for _ in $(seq 100); do curl -fs -o /dev/null "http://127.0.0.1:$GUNI_PORT/" && { ready=1; break; }; sleep 0.1; done
if [ -z "$ready" ]; then echo "gunicorn did not start:" >&2; cat "$run/gunicorn.log" >&2; exit 1; fi

traffic() {
  local paths=(/ / / /slow /missing)
  while true; do
    for p in "${paths[@]}"; do curl -s -o /dev/null --max-time 5 "http://127.0.0.1:$GUNI_PORT$p" & done
    wait
  done
}
traffic &
pids+=($!)

end=$((SECONDS + DEMO_SECONDS))
while true; do
  sleep 5
  echo "---- gstatsctl stats ($(date +%T))"
  bin/gstatsctl stats
  bin/gstatsctl -v stats | sed -n '/^Window/,/^Status/p'
  echo "---- last metric written (sample.conf: [[outputs.file]] to stdout)"
  grep '^gstats,' "$run/metrics.lp" | tail -1 || echo "(none yet: the first comes after the 10 s interval)"
  echo "---- http://127.0.0.1:8002/metrics (Prometheus), request counters"
  curl -fs --max-time 2 http://127.0.0.1:8002/metrics | grep -E '^gstats_requests_(started|finished)_total' || echo "(status listener not answering)"
  if [ "$DEMO_SECONDS" -gt 0 ] && [ "$SECONDS" -ge "$end" ]; then break; fi
done
