#!/bin/sh
# Re-fetch the chart library the gstats dashboard embeds, from the npm
# registry, at the pinned version, and check it against the pinned integrity
# hash before replacing the vendored copy.
#
#   scripts/vendor-web.sh            fetch, verify and copy into place
#   scripts/vendor-web.sh --check    fetch, verify and compare; change nothing
#
# Needs npm, tar and openssl. The build and the tests never need npm: the
# files are committed under plugins/inputs/gstats/web/vendor/uplot/ and
# their SHA-256 sums (SHA256SUMS there) are checked by go test.
#
# To move to another version, set UPLOT_VERSION and UPLOT_INTEGRITY to the
# values `npm view uplot@VERSION version dist.integrity` prints, run this
# script, and check the dashboard (go test ./e2e/ -run Dashboard).
set -eu

UPLOT_VERSION=1.6.32
UPLOT_INTEGRITY=sha512-KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IKTXImkbLgkMy+jabjLgSLMasNuGGzQm/ep3tOkyTxpiQIw==

root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/plugins/inputs/gstats/web/vendor/uplot"
check=false
case "${1:-}" in
--check) check=true ;;
"") ;;
*) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

for tool in npm tar openssl sha256sum; do
	command -v "$tool" >/dev/null 2>&1 || { echo "vendor-web: $tool is needed (apt-get install npm tar openssl coreutils)" >&2; exit 1; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM

(cd "$work" && npm pack --silent "uplot@$UPLOT_VERSION" >/dev/null)
tarball="$work/uplot-$UPLOT_VERSION.tgz"
[ -f "$tarball" ] || { echo "vendor-web: npm pack made no $tarball" >&2; exit 1; }

got="sha512-$(openssl dgst -sha512 -binary "$tarball" | openssl base64 -A)"
if [ "$got" != "$UPLOT_INTEGRITY" ]; then
	echo "vendor-web: uplot@$UPLOT_VERSION integrity mismatch:" >&2
	echo "  pinned $UPLOT_INTEGRITY" >&2
	echo "  got    $got" >&2
	exit 1
fi

tar -xzf "$tarball" -C "$work"
mkdir -p "$work/out"
cp "$work/package/dist/uPlot.iife.min.js" "$work/package/dist/uPlot.min.css" "$work/package/LICENSE" "$work/out/"
printf '%s\n' "uplot $UPLOT_VERSION" "$UPLOT_INTEGRITY" >"$work/out/VERSION"
(cd "$work/out" && sha256sum LICENSE VERSION uPlot.iife.min.js uPlot.min.css >SHA256SUMS)

if $check; then
	for f in LICENSE VERSION uPlot.iife.min.js uPlot.min.css SHA256SUMS; do
		cmp -s "$work/out/$f" "$dest/$f" || { echo "vendor-web: $dest/$f differs from uplot@$UPLOT_VERSION" >&2; exit 1; }
	done
	echo "vendor-web: $dest holds uplot@$UPLOT_VERSION as published"
	exit 0
fi

mkdir -p "$dest"
cp "$work/out/"* "$dest/"
echo "vendor-web: uplot@$UPLOT_VERSION ($UPLOT_INTEGRITY) copied to $dest"
