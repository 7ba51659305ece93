#!/usr/bin/env bash
# Installs the Debian packages gstats builds and tests with. Safe to run
# again: apt-get skips what is already installed.
set -euo pipefail

packages=(
  libzmq3-dev pkg-config gcc make git ca-certificates curl   # build: libzmq via cgo
  gunicorn python3-zmq python3-gevent python3-pytest         # tests and demo: real gunicorn with pyzmq hooks
  python3-pip python3-venv python3-setuptools python3-wheel  # the Python client package, installed with pip in tests
  influxdb influxdb-client                                   # tests: a real InfluxDB 1.x fed by Telegraf and gstats-collectd
  wrk                                                        # benchmarks: gunicorn throughput with and without hooks
  munin-node                                                 # tests: real munin-run and munin-node-configure for the munin plug-ins
  chromium                                                   # tests: headless Chromium loads the live dashboard page
)

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: run as root or install sudo" >&2; exit 1; }
  sudo="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get -o DPkg::Lock::Timeout=300 install -y -q "${packages[@]}"

if ! command -v go >/dev/null && [ ! -x /usr/local/go/bin/go ]; then
  echo "install-deps: Go 1.26 or newer is needed (expected at /usr/local/go)" >&2
  exit 1
fi
