# gstats — build, test and benchmark.
#
#   make run     install, build, start gstats-collectd on its defaults with
#                real gunicorn traffic through it, and show gstatsctl stats
#   make test    install, lint, and run every test (what CI runs)

SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(HOME)/go/bin:$(PATH)
GO ?= go
PYTHON ?= /usr/bin/python3
STATICCHECK_VERSION := v0.8.2
# An execution count, not a duration: with a duration Go 1.26's fuzzing
# coordinator can fail a target with "context deadline exceeded" at the end
# of the budget on a loaded machine, with nothing found (golang/go#75804,
# fixed in Go 1.27).
FUZZTIME ?= 20000x
BENCHTIME ?= 3x
SOAK ?= 10m

N ?= 5

.PHONY: all deps build test test-repeat test-short test-pure test-python fuzz lint tidy bench bench-go bench-python bench-harness run clean vendor-web

all: build

deps:
	scripts/install-deps.sh

build:
	$(GO) build -o bin/ ./cmd/...

# Everything CI runs: system packages, lint, the whole suite with the race
# detector (integration tests with real libzmq, gunicorn, Telegraf, InfluxDB
# and the built binaries included), the Go client's zero-allocation check
# (which -race would defeat), short fuzzing runs, and the window without cgo.
test: deps lint
	$(GO) test -race -count=1 -timeout 20m ./...
	$(GO) test -count=1 -run 'TestHotPathDoesNotAllocate' ./client/
	CGO_ENABLED=0 $(GO) test -count=1 ./plugins/inputs/gstats/window/ ./plugins/inputs/gstats/state/ ./munin/
	$(MAKE) --no-print-directory test-python
	$(MAKE) --no-print-directory fuzz

# The Go suite N times (5) with the race detector while a busy loop holds
# one core; prints every failure with its test name.
test-repeat: deps build
	GO=$(GO) scripts/test-repeat.sh $(N)

test-short:
	$(GO) test -short -count=1 ./...

# The Python client: unit tests, real gunicorn (sync, gthread, gevent)
# against the built collector, the original hook files unchanged, and a pip
# install into a virtual environment.
test-python: build
	$(PYTHON) -m pytest -q -p no:cacheprovider python/tests

test-pure:
	CGO_ENABLED=0 $(GO) test -count=1 ./plugins/inputs/gstats/window/ ./plugins/inputs/gstats/state/ ./munin/

# Each fuzz target runs FUZZTIME inputs, starting from its committed corpus.
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for target in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$target ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@command -v staticcheck >/dev/null || GOFLAGS= $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	staticcheck ./...

# Re-fetch the dashboard's chart library (uPlot) from npm at its pinned
# version and check its integrity; maintainers only (needs npm).
vendor-web:
	scripts/vendor-web.sh

tidy:
	$(GO) mod tidy && git diff --exit-code go.mod go.sum

# Benchmarks, side by side in one run, written up in docs/PERFORMANCE.md:
#   bench-go      Go benchmarks: the window (STATS cost, inserts, bytes per
#                 prefix, percentile accuracy), STATS and Gather over 1e3 to
#                 6e6 durations and 1 to 10 000 prefixes, draining a backlog
#                 against bare PULL receivers, the Go client's middleware,
#                 the state file's write and restore, the HTTP endpoints,
#                 CURVE's handshake and ingest, the wire client, and
#                 Telegraf statsd's ladder and percentiles
#   bench-python  the Python hooks against a socket per message, and
#                 gunicorn's requests/s with and without them (wrk)
#   bench-harness bench/harness: sustained loss-free ingest rate and CPU per
#                 message of gstats-collectd, of bare PULL receivers (the
#                 limit) and of Telegraf's statsd input (the peer), RSS with
#                 up to 6e6 durations, percentiles against exact values and
#                 statsd's, and a soak of gstats-collectd at half its
#                 loss-free rate for SOAK (10m: RSS, fds and goroutines
#                 flat, nothing lost); it reads bench.out, rewrites the
#                 report and the plugin README's generated figures, prints
#                 every target with its verdict, and fails if any target
#                 is missed or not measured, or any benchmark did not run
bench: deps build
	set -o pipefail; { $(MAKE) --no-print-directory bench-go && $(MAKE) --no-print-directory bench-python ; } 2>&1 | tee bench.out
	$(MAKE) --no-print-directory bench-harness

bench-go:
	$(GO) test -run '^$$' -bench . -benchmem ./plugins/inputs/gstats/window/
	$(GO) test -run '^$$' -bench 'StatsGrid' -benchtime 20x -benchmem -timeout 30m ./plugins/inputs/gstats/
	$(GO) test -run '^$$' -bench 'StatsGrowth' -benchtime 5000x ./plugins/inputs/gstats/
	$(GO) test -run '^$$' -bench 'Ingest' -benchtime $(BENCHTIME) ./plugins/inputs/gstats/
	$(GO) test -run '^$$' -bench . -benchmem ./client/
	$(GO) test -run '^$$' -bench 'StateWrite|StateRestore' -benchtime 5x -benchmem ./plugins/inputs/gstats/
	$(GO) test -run '^$$' -bench 'HTTPEndpoints|CurveHandshake|CurveIngest' -benchmem ./plugins/inputs/gstats/
	$(GO) test -run '^$$' -bench . -benchmem ./wire/
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m ./bench/statsdpeer/ -statsdpeer.cpus 1

bench-python: build
	$(PYTHON) python/bench/bench_hooks.py
	python/bench/bench_gunicorn.sh sync 1

# The senders run pinned to CPU 0, the receivers to CPU 1.
bench-harness: build
	$(GO) build -o bin/gstats-bench ./bench/harness
	taskset -c 0 bin/gstats-bench run -collectd bin/gstats-collectd -receiver-cpus 1 -soak-for $(SOAK) \
	  -go-bench bench.out -report docs/PERFORMANCE.md -readme plugins/inputs/gstats/README.md -json bench-results.json

run: deps build
	scripts/demo.sh

clean:
	rm -rf bin bench.out bench-results.json
