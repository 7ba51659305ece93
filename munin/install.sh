#!/bin/sh
# Installs the gstats munin plug-ins: the gstats-munin program, the four
# plug-in scripts, an example plugin-conf.d file (never overwriting one),
# and optionally the links for some labels.
set -eu

usage() {
    cat <<'EOF'
Usage: munin/install.sh [OPTIONS] [--auto | LABEL...]

Installs gstats-munin into BINDIR, the plug-ins gunicorn-requests_,
gunicorn-request-time_, gstats-latency_ and gstats-status_ into LIBDIR, and
plugin-conf.d/gstats into SCONFDIR unless a file of that name is there.
Then, for each LABEL, links the four plug-ins as <plug-in><LABEL> in
SERVICEDIR; with --auto, creates the links munin-node-configure suggests for
the prefixes the collector knows (it must be running; set env.status_addr
in SCONFDIR/gstats first if it is not on the default address, and the
CURVE settings and user if it requires CURVE).
Restart munin-node afterwards.

Options:
  --binary FILE      the gstats-munin to install [bin/gstats-munin, built
                     with "go build" if missing]
  --bindir DIR       [/usr/local/bin]
  --libdir DIR       [/usr/share/munin/plugins]
  --servicedir DIR   [/etc/munin/plugins]
  --sconfdir DIR     [/etc/munin/plugin-conf.d]
  --auto             link what munin-node-configure --shell suggests
  -h, --help         show this help
EOF
}

here=$(cd "$(dirname "$0")" && pwd)
root=${here%/*}
binary=""
bindir=/usr/local/bin
libdir=/usr/share/munin/plugins
servicedir=/etc/munin/plugins
sconfdir=/etc/munin/plugin-conf.d
auto=0
plugins="gunicorn-requests_ gunicorn-request-time_ gstats-latency_ gstats-status_"

need() {
    [ $# -ge 2 ] || { echo "install.sh: $1 needs a value" >&2; usage >&2; exit 2; }
}
while [ $# -gt 0 ]; do
    case $1 in
        --binary) need "$@"; binary=$2; shift 2 ;;
        --bindir) need "$@"; bindir=$2; shift 2 ;;
        --libdir) need "$@"; libdir=$2; shift 2 ;;
        --servicedir) need "$@"; servicedir=$2; shift 2 ;;
        --sconfdir) need "$@"; sconfdir=$2; shift 2 ;;
        --auto) auto=1; shift ;;
        -h|--help) usage; exit 0 ;;
        --) shift; break ;;
        -*) echo "install.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
        *) break ;;
    esac
done
if [ "$auto" = 1 ] && [ $# -gt 0 ]; then
    echo "install.sh: give --auto or labels, not both" >&2
    exit 2
fi
for label in "$@"; do
    case $label in
        ''|*[!0-9a-z_]*)
            echo "install.sh: label \"$label\" can match no prefix: labels use only [0-9a-z_] (prefix My.App has label my_app)" >&2
            exit 2 ;;
    esac
done

if [ -z "$binary" ]; then
    binary=$root/bin/gstats-munin
    if [ ! -x "$binary" ]; then
        command -v go >/dev/null || {
            echo "install.sh: $binary is missing and go is not installed; build gstats-munin elsewhere and pass --binary FILE" >&2
            exit 1
        }
        echo "building $binary"
        (cd "$root" && go build -o bin/ ./cmd/gstats-munin)
    fi
fi
[ -x "$binary" ] || { echo "install.sh: $binary is not an executable file" >&2; exit 1; }

install -d "$bindir" "$libdir" "$servicedir" "$sconfdir"
install -m 755 "$binary" "$bindir/gstats-munin"
echo "installed $bindir/gstats-munin"
for p in $plugins; do
    # The scripts look for gstats-munin next to themselves, then in
    # /usr/local/bin; another BINDIR is written into their default.
    if [ "$bindir" = /usr/local/bin ]; then
        install -m 755 "$here/plugins/$p" "$libdir/$p"
    else
        sed "s|^    gstats_munin=/usr/local/bin/gstats-munin\$|    gstats_munin=$bindir/gstats-munin|" \
            "$here/plugins/$p" >"$libdir/$p.tmp"
        chmod 755 "$libdir/$p.tmp"
        mv "$libdir/$p.tmp" "$libdir/$p"
    fi
    echo "installed $libdir/$p"
done
if [ -e "$sconfdir/gstats" ]; then
    echo "kept $sconfdir/gstats (example: $here/plugin-conf.d/gstats)"
else
    install -m 644 "$here/plugin-conf.d/gstats" "$sconfdir/gstats"
    echo "installed $sconfdir/gstats"
fi

for label in "$@"; do
    for p in $plugins; do
        ln -sf "$libdir/$p" "$servicedir/$p$label"
        echo "linked $servicedir/$p$label"
    done
done
if [ "$auto" = 1 ]; then
    command -v munin-node-configure >/dev/null || {
        echo "install.sh: munin-node-configure not found; apt-get install munin-node" >&2
        exit 1
    }
    links=$(munin-node-configure --libdir "$libdir" --servicedir "$servicedir" --sconfdir "$sconfdir" --shell |
        grep -E "^ln -s '[^']*/(gunicorn-requests_|gunicorn-request-time_|gstats-latency_|gstats-status_)' " || true)
    if [ -z "$links" ]; then
        echo "munin-node-configure suggests no new link: is gstats-collectd running and has it seen requests, and if it requires CURVE, are env.curve_server_key, env.curve_client_key and user set in $sconfdir/gstats? (munin-run gunicorn-requests_ autoconf)"
    else
        printf '%s\n' "$links"
        printf '%s\n' "$links" | sh
    fi
fi
echo "restart munin-node to pick up the changes (systemctl restart munin-node)"
