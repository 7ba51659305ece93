#!/usr/bin/env bash
# Prints the side-by-side figures of a `go test -bench` output file.
set -euo pipefail
f=${1:-bench.out}
metric() { # line, unit -> value
  awk -v unit="$2" '{ for (i = 2; i <= NF; i++) if ($i == unit) print $(i-1) }' <<<"$1"
}
echo
echo "== Ingest over loopback TCP, same backlog (msgs/s)"
printf '%-22s %14s %14s %8s %6s\n' case bare-PULL gstats ratio lost
grep '^BenchmarkIngest/' "$f" | while read -r line; do
  name=$(awk '{print $1}' <<<"$line"); name=${name#BenchmarkIngest/}
  printf '%-22s %14s %14s %8s %6s\n' "${name%-*}" "$(metric "$line" bare_msgs/s)" "$(metric "$line" gstats_msgs/s)" \
    "$(metric "$line" ratio)" "$(metric "$line" lost)"
done
echo
echo "== STATS reply for one prefix (ns per STATS; flat means cost independent of traffic)"
grep -E '^BenchmarkStatsReply/' "$f" | while read -r line; do
  name=$(awk '{print $1}' <<<"$line"); name=${name#BenchmarkStatsReply/}
  printf '%-22s %14s\n' "${name%-*}" "$(metric "$line" ns/stats)"
done
echo
echo "== Window alone: STATS cost per prefix, insert rate, memory per prefix"
grep -E '^Benchmark(Stats|Finish|Prefix)/' "$f" | awk '{ printf "%-40s", $1; for (i = 2; i <= NF; i++) if ($i ~ /^(ns\/stats|events\/s|B\/prefix)$/) printf " %14s %s", $(i-1), $i; print "" }' || true
echo
echo "== Go client (targets: <= 250 ns and 0 allocs per request on top of the handler)"
printf '%-44s %12s %10s %12s\n' benchmark ns/op allocs/op dropped/op
grep -E '^Benchmark(BareHandler|Middleware|Sender)|^BenchmarkFinish/collector=' "$f" | while read -r line; do
  printf '%-44s %12s %10s %12s\n' "$(awk '{print $1}' <<<"$line")" "$(metric "$line" ns/op)" "$(metric "$line" allocs/op)" "$(metric "$line" dropped/op)"
done
echo
echo "== Python hooks and gunicorn (targets: <= 8 us per request pair; >= 95 % of gunicorn's requests/s without hooks)"
grep -E '^(hooks: |a socket per message|median requests/s|ON/OFF per round|median worker CPU|side by side ON/OFF)' "$f" || echo "(no Python figures in $f)"
