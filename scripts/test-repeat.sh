#!/usr/bin/env bash
# Runs the Go suite N times with the race detector while a busy loop holds
# one core, as on a loaded CI machine, and prints every failure with its
# test name. Exits non-zero if any run failed.
#
#   scripts/test-repeat.sh [N] [PACKAGES...]     (N defaults to 5, PACKAGES to ./...)
set -uo pipefail
n=${1:-5}
shift || true
pkgs=("$@")
[ ${#pkgs[@]} -gt 0 ] || pkgs=(./...)
go=${GO:-go}
out=${TEST_REPEAT_DIR:-$(mktemp -d -t gstats-test-repeat.XXXXXX)}
mkdir -p "$out"

# The busy loop: one process spinning on one core, ended when we exit.
( while :; do :; done ) &
busy=$!
trap 'kill "$busy" 2>/dev/null; wait "$busy" 2>/dev/null' EXIT

failed=0
for i in $(seq 1 "$n"); do
  log="$out/run-$i.log"
  start=$(date +%s)
  "$go" test -race -count=1 -timeout 25m "${pkgs[@]}" >"$log" 2>&1
  rc=$?
  secs=$(( $(date +%s) - start ))
  if [ "$rc" -eq 0 ]; then
    echo "run $i/$n: ok (${secs}s)"
  else
    failed=$((failed + 1))
    echo "run $i/$n: FAILED (${secs}s, rc=$rc, log $log)"
    # Every failing test, by name, with the lines that say why.
    grep -E '^(--- FAIL|FAIL|panic:|fatal error:)' "$log" | sed 's/^/    /'
    grep -B2 -A12 -E '^--- FAIL' "$log" | grep -vE '^(=== |--- PASS)' | head -80 | sed 's/^/      | /'
  fi
done
echo "test-repeat: $((n - failed)) passed, $failed failed (logs in $out)"
[ "$failed" -eq 0 ]
