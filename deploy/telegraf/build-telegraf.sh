#!/usr/bin/env bash
# Builds Telegraf with the gstats input compiled in, the way any external
# plugin is added to a custom Telegraf build: one file in Telegraf's
# plugins/inputs/all that imports the plugin package. Nothing else of
# gstats is needed (the plugin registers itself in init()).
#
# Usage: deploy/telegraf/build-telegraf.sh OUTPUT [BUILD_TAGS]
#   OUTPUT      the binary to write
#   BUILD_TAGS  Telegraf build tags [custom,inputs.gstats,inputs.execd,
#               inputs.internal,outputs.file,outputs.influxdb,
#               outputs.influxdb_v2,serializers.influx,parsers.influx]
#               "custom" keeps only the plugins named; drop the whole
#               argument and "custom" to get every plugin.
#
# Telegraf's version is the one gstats's go.mod pins. The source is copied
# from the Go module cache into a temporary Go workspace next to this
# repository's module, so the build uses this checkout of gstats.
set -euo pipefail

out=${1:?usage: build-telegraf.sh OUTPUT [BUILD_TAGS]}
tags=${2:-custom,inputs.gstats,inputs.execd,inputs.internal,outputs.file,outputs.influxdb,outputs.influxdb_v2,serializers.influx,parsers.influx}
root=$(cd "$(dirname "$0")/../.." && pwd)
go=${GO:-go}

cd "$root"
version=$("$go" list -m -f '{{.Version}}' github.com/influxdata/telegraf)
"$go" mod download github.com/influxdata/telegraf
src=$("$go" list -m -f '{{.Dir}}' github.com/influxdata/telegraf)
[ -n "$src" ] && [ -d "$src" ] || { echo "build-telegraf: Telegraf $version is not in the module cache" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/gstats-telegraf.XXXXXX")
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
cp -r "$src" "$work/telegraf"
chmod -R u+w "$work/telegraf"

# The one file a custom build needs.
cat > "$work/telegraf/plugins/inputs/all/gstats.go" <<'GO'
//go:build !custom || inputs.gstats

package all

import _ "github.com/gstats/gstats/plugins/inputs/gstats" // register inputs.gstats
GO

go_version=$(sed -n 's/^go //p' "$root/go.mod")
printf 'go %s\n\nuse (\n\t./telegraf\n\t%s\n)\n' "$go_version" "$root" > "$work/go.work"

case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
cd "$work/telegraf"
"$go" build -tags "$tags" \
  -ldflags "-X github.com/influxdata/telegraf/internal.Version=${version#v}" \
  -o "$out" ./cmd/telegraf
echo "built $out: Telegraf ${version#v} with inputs.gstats (tags: $tags)"
