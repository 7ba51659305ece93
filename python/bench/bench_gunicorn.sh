#!/bin/bash
# gunicorn requests/s with the gstats hooks and without, in the same run.
#
#   python/bench/bench_gunicorn.sh [WORKER_CLASS] [WORKERS]     (default: sync 1)
#
# Environment: DURATION (wrk seconds per run, 5), ROUNDS (off/on pairs, 5),
# WARMUP (seconds of one unrecorded OFF and ON run first, 2; 0 skips it),
# SIDE_ROUNDS (side-by-side runs, 3; 0 skips them),
# HOOKS_CONF (the gunicorn configuration of the ON runs, default
# python/tests/app/hooks.conf.py; GSTATS_* variables reach it),
# CONNECTIONS (16), GSTATS_COLLECTD (the collector binary, default
# bin/gstats-collectd of this repository).
#
# Runs alternate hooks OFF and ON (OFF ON OFF ON ...) against the same
# application (python/tests/app/app.py, GET /), each on a fresh gunicorn,
# with one gstats-collectd receiving the ON runs' messages. Then, SIDE_ROUNDS
# times (3), OFF and ON run side by side: two gunicorns at once on the same
# CPU, each loaded by its own wrk, so that the machine's changes of speed
# (other virtual machines on the host) hit both alike; the scheduler shares
# the CPU between the two saturated workers, and the ratio of the requests
# they serve is the ratio of their costs per request. wrk runs under
# `timeout`; gunicorn and the collector are stopped by PID (SIGTERM, bounded
# wait, SIGKILL as a last resort) on every exit path. The box has 2 cores
# shared by wrk, gunicorn and the collector: compare OFF and ON of the same
# run only.
set -euo pipefail

WORKER_CLASS=${1:-sync}
WORKERS=${2:-1}
DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-5}
WARMUP=${WARMUP:-2}
SIDE_ROUNDS=${SIDE_ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-16}
# With two or more CPUs, gunicorn runs on CPU 0 and wrk and the collector on
# CPU 1 (PIN=0 turns this off): gunicorn's throughput is then bounded by its
# own CPU, which the hooks (and libzmq's I/O thread inside the worker)
# share, and not by how the scheduler splits the cores between wrk, the
# collector and gunicorn on each run.
PIN=${PIN:-1}

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PYDIR=$(dirname "$HERE")
REPO=$(dirname "$PYDIR")
APPDIR=$PYDIR/tests/app
COLLECTD=${GSTATS_COLLECTD:-$REPO/bin/gstats-collectd}
PY=/usr/bin/python3
GUNICORN=/usr/bin/gunicorn

for tool in "$GUNICORN" "$PY" "$(command -v wrk || true)"; do
  if [ -z "$tool" ] || [ ! -x "$tool" ]; then
    echo "missing tool: apt-get install gunicorn python3-zmq wrk" >&2; exit 1
  fi
done
if [ ! -x "$COLLECTD" ]; then
  echo "gstats-collectd not found at $COLLECTD: run \`make build\` first" >&2; exit 1
fi

WORK=$(mktemp -d /tmp/gstats-bench.XXXXXX)
COLLECTOR_PID=
GUNICORN_PID=

stop_pid() { # stop_pid PID: SIGTERM, wait up to 10 s, then SIGKILL
  local pid=$1 i
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  echo "pid $pid did not stop in 10 s; killing it" >&2
  kill -KILL "$pid" 2>/dev/null || true
}

SIDE_PIDS=()
cleanup() {
  local pid
  for pid in "${SIDE_PIDS[@]}"; do stop_pid "$pid"; done
  stop_pid "$GUNICORN_PID"
  stop_pid "$COLLECTOR_PID"
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# The collector, on free ports.
APP_CPU=() LOAD_CPU=()
if [ "$PIN" = 1 ] && [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
  APP_CPU=(taskset -c 0) LOAD_CPU=(taskset -c 1)
fi

"${LOAD_CPU[@]}" "$COLLECTD" -s tcp://127.0.0.1:0 -c tcp://127.0.0.1:0 2>"$WORK/collector.log" &
COLLECTOR_PID=$!
STATS_ADDR= COMM_ADDR=
for i in $(seq 100); do
  line=$(grep -o 'stats (PULL) on [^,]*, control (REP) on [^;]*' "$WORK/collector.log" || true)
  if [ -n "$line" ]; then
    STATS_ADDR=$(echo "$line" | awk '{print $4}' | tr -d ,)
    COMM_ADDR=$(echo "$line" | awk '{print $8}')
    break
  fi
  sleep 0.05
done
[ -n "$STATS_ADDR" ] || { echo "gstats-collectd did not start:"; cat "$WORK/collector.log"; exit 1; } >&2

stats_started() { # the collector's "started" count for prefix bench
  "$PY" - "$COMM_ADDR" <<'EOF'
import json, sys, zmq
s = zmq.Context().socket(zmq.REQ); s.setsockopt(zmq.LINGER, 0); s.connect(sys.argv[1])
s.send(b"STATS")
print(json.loads(s.recv()).get("bench", {}).get("started", 0) if s.poll(5000) else "no-reply")
EOF
}

start_gunicorn() { # start_gunicorn on|off -> sets GUNICORN_PID, PORT
  PORT=$(free_port)
  local conf=()
  [ "$1" = on ] && conf=(-c "${HOOKS_CONF:-$APPDIR/hooks.conf.py}")
  GSTATS_STATS_ADDR=$STATS_ADDR GSTATS_PREFIX=bench PYTHONPATH=$PYDIR/src:$APPDIR \
    "${APP_CPU[@]}" "$GUNICORN" --chdir "$APPDIR" -b "127.0.0.1:$PORT" -k "$WORKER_CLASS" -w "$WORKERS" \
      --log-level warning --error-logfile "$WORK/gunicorn.log" "${conf[@]}" app:application &
  GUNICORN_PID=$!
  local i
  for i in $(seq 200); do
    if [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$PORT/" || true)" = 200 ]; then
      return 0
    fi
    kill -0 "$GUNICORN_PID" 2>/dev/null || break
    sleep 0.05
  done
  echo "gunicorn did not start:" >&2; cat "$WORK/gunicorn.log" >&2; exit 1
}

cpu_ticks() { # cpu_ticks PID...: user+system clock ticks of these processes
  local total=0 pid t
  for pid in "$@"; do
    t=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)
    total=$((total + t))
  done
  echo "$total"
}

run_wrk() { # prints "requests/s requests"
  timeout $((DURATION + 20)) "${LOAD_CPU[@]}" wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --timeout 2s \
    "http://127.0.0.1:$PORT/" > "$WORK/wrk.out"
  if grep -q 'Non-2xx\|Socket errors' "$WORK/wrk.out"; then
    echo "wrk saw errors:" >&2; cat "$WORK/wrk.out" >&2
  fi
  awk '/^Requests\/sec/ {rps=$2} / requests in / {n=$1} END {print rps, n}' "$WORK/wrk.out"
}

TICK=$(getconf CLK_TCK)
echo "gunicorn $WORKER_CLASS x$WORKERS, wrk -t2 -c$CONNECTIONS -d${DURATION}s, $ROUNDS rounds of OFF/ON; collector $STATS_ADDR"
if [ ${#APP_CPU[@]} -gt 0 ]; then echo "gunicorn pinned to CPU 0; wrk and the collector to CPU 1"; fi
echo "(CPU us/req: user+system time of the workers and of the collector per request)"
printf '%-6s %-6s %12s %17s %16s %19s\n' round hooks 'requests/s' 'worker CPU us/req' 'collector CPU us/req' 'collector started'
# Warm-up: the first runs after the collector starts are slower on both
# sides (caches, the CPU's clock); they are not recorded.
if [ "$WARMUP" -gt 0 ]; then
  for mode in off on; do
    start_gunicorn "$mode"
    timeout $((WARMUP + 20)) "${LOAD_CPU[@]}" wrk -t2 -c"$CONNECTIONS" -d"${WARMUP}s" --timeout 2s \
      "http://127.0.0.1:$PORT/" >/dev/null
    stop_pid "$GUNICORN_PID"; GUNICORN_PID=
  done
fi
OFF=() ON=() WCPU_OFF=() WCPU_ON=()
for round in $(seq "$ROUNDS"); do
  # Alternate the order, so that a drift of the machine's speed during the
  # run weighs on both sides alike.
  order="off on"; [ $((round % 2)) = 0 ] && order="on off"
  for mode in $order; do
    before=$(stats_started)
    start_gunicorn "$mode"
    workers=$(cat "/proc/$GUNICORN_PID/task/$GUNICORN_PID/children")
    # shellcheck disable=SC2086
    w0=$(cpu_ticks $workers); c0=$(cpu_ticks "$COLLECTOR_PID")
    read -r rps n < <(run_wrk)
    # shellcheck disable=SC2086
    w1=$(cpu_ticks $workers); c1=$(cpu_ticks "$COLLECTOR_PID")
    stop_pid "$GUNICORN_PID"; GUNICORN_PID=
    sleep 0.3
    after=$(stats_started)
    wcpu=$(( (w1 - w0) * 1000000 / TICK / n )); ccpu=$(( (c1 - c0) * 1000000 / TICK / n ))
    printf '%-6s %-6s %12s %17s %16s %19s\n' "$round" "$mode" "$rps" "$wcpu" "$ccpu" "+$((after - before))"
    if [ "$mode" = off ]; then OFF+=("$rps"); WCPU_OFF+=("$wcpu"); else ON+=("$rps"); WCPU_ON+=("$wcpu"); fi
  done
done

"$PY" - "${OFF[*]}" "${ON[*]}" "${WCPU_OFF[*]}" "${WCPU_ON[*]}" <<'EOF'
import statistics, sys
off, on, woff, won = ([float(x) for x in a.split()] for a in sys.argv[1:5])
m_off, m_on = statistics.median(off), statistics.median(on)
pairs = [b / a for a, b in zip(off, on)]
print("median requests/s: hooks OFF %.0f, hooks ON %.0f; ON/OFF = %.1f %%"
      % (m_off, m_on, 100.0 * m_on / m_off))
print("ON/OFF per round: %s; median %.1f %% (target >= 95 %%)"
      % (" ".join("%.1f" % (100 * r) for r in pairs), 100.0 * statistics.median(pairs)))
print("median worker CPU per request: OFF %.0f us, ON %.0f us (+%.0f us)"
      % (statistics.median(woff), statistics.median(won),
         statistics.median(won) - statistics.median(woff)))
EOF

# Side by side: both gunicorns on the application CPU at once, each with
# its own wrk (half the connections each) on the load CPU.
if [ "$SIDE_ROUNDS" -gt 0 ]; then
  echo
  echo "side by side: OFF and ON at once on the same CPU, wrk -t1 -c$((CONNECTIONS / 2)) -d${DURATION}s each"
  printf '%-6s %12s %12s %9s %17s %17s\n' round 'OFF req/s' 'ON req/s' 'ON/OFF' 'OFF CPU us/req' 'ON CPU us/req'
  SIDE=()
  for round in $(seq "$SIDE_ROUNDS"); do
    start_gunicorn off; off_pid=$GUNICORN_PID off_port=$PORT; SIDE_PIDS+=("$off_pid"); GUNICORN_PID=
    start_gunicorn on; on_pid=$GUNICORN_PID on_port=$PORT; SIDE_PIDS+=("$on_pid"); GUNICORN_PID=
    off_workers=$(cat "/proc/$off_pid/task/$off_pid/children")
    on_workers=$(cat "/proc/$on_pid/task/$on_pid/children")
    # shellcheck disable=SC2086
    a0=$(cpu_ticks $off_workers); b0=$(cpu_ticks $on_workers)
    wrk_pids=()
    for port in "$off_port" "$on_port"; do
      timeout $((DURATION + 20)) "${LOAD_CPU[@]}" wrk -t1 -c$((CONNECTIONS / 2)) -d"${DURATION}s" --timeout 2s \
        "http://127.0.0.1:$port/" > "$WORK/wrk-$port.out" &
      wrk_pids+=($!)
    done
    wait "${wrk_pids[@]}"
    # shellcheck disable=SC2086
    a1=$(cpu_ticks $off_workers); b1=$(cpu_ticks $on_workers)
    stop_pid "$off_pid"; stop_pid "$on_pid"; SIDE_PIDS=()
    read -r off_rps off_n < <(awk '/^Requests\/sec/ {rps=$2} / requests in / {n=$1} END {print rps, n}' "$WORK/wrk-$off_port.out")
    read -r on_rps on_n < <(awk '/^Requests\/sec/ {rps=$2} / requests in / {n=$1} END {print rps, n}' "$WORK/wrk-$on_port.out")
    ratio=$("$PY" -c "print('%.1f' % (100.0 * $on_rps / $off_rps))")
    printf '%-6s %12s %12s %8s%% %17s %17s\n' "$round" "$off_rps" "$on_rps" "$ratio" \
      "$(( (a1 - a0) * 1000000 / TICK / off_n ))" "$(( (b1 - b0) * 1000000 / TICK / on_n ))"
    SIDE+=("$ratio")
  done
  "$PY" -c "import statistics, sys; r = [float(x) for x in sys.argv[1:]]; print('side by side ON/OFF: median %.1f %% (rounds %s; target >= 95 %%)' % (statistics.median(r), ' '.join('%.1f' % x for x in r)))" "${SIDE[@]}"
fi
