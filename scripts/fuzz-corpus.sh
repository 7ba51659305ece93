#!/usr/bin/env bash
# Grows the committed fuzz corpora. Every fuzz target runs FUZZTIME inputs
# (a count: with a duration, Go 1.26's fuzzing coordinator can fail at the
# end of the budget on a loaded machine, golang/go#75804);
# the inputs the fuzzer kept for new coverage are copied into the package's
# testdata/fuzz/<Target>/ (the smallest first, up to MAX per target, beside
# the hand-written seeds already there). `make fuzz` then starts from them.
#
#   scripts/fuzz-corpus.sh [PACKAGE...]    default: every package
set -euo pipefail
export PATH=/usr/local/go/bin:$PATH
FUZZTIME=${FUZZTIME:-200000x}
MAX=${MAX:-32}
cd "$(dirname "$0")/.."
cache="$(go env GOCACHE)/fuzz"
pkgs=("$@")
[ ${#pkgs[@]} -gt 0 ] || mapfile -t pkgs < <(go list ./...)
for pkg in "${pkgs[@]}"; do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
    echo "corpus $pkg $target ($FUZZTIME)"
    src="$cache/$pkg/$target"
    # Only this run's finds: an older cache may hold inputs of an earlier
    # signature of the target.
    rm -rf "$src"
    if ! out=$(go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "$pkg" 2>&1); then
      echo "$out" >&2
      exit 1
    fi
    dst="$dir/testdata/fuzz/$target"
    mkdir -p "$dst"
    [ -d "$src" ] || continue
    have=$(find "$dst" -type f | wc -l)
    room=$((MAX - have))
    [ "$room" -gt 0 ] || continue
    # ls -S sorts by size, largest first: take the smallest.
    mapfile -t found < <(ls -S -r "$src")
    for f in "${found[@]:0:room}"; do
      [ -e "$dst/$f" ] || cp "$src/$f" "$dst/$f"
    done
    echo "  $(find "$dst" -type f | wc -l) files in ${dst#"$PWD"/}"
  done
done
