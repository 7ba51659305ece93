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

.PHONY: all deps build test test-short test-pure test-python fuzz lint tidy bench bench-go bench-python run clean vendor-web

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
	CGO_ENABLED=0 $(GO) test -count=1 ./plugins/inputs/gstats/window/ ./munin/
	$(MAKE) --no-print-directory test-python
	$(MAKE) --no-print-directory fuzz

test-short:
	$(GO) test -short -count=1 ./...

# The Python client: unit tests, real gunicorn (sync, gthread, gevent)
# against the built collector, the original hook files unchanged, and a pip
# install into a virtual environment.
test-python: build
	$(PYTHON) -m pytest -q -p no:cacheprovider python/tests

test-pure:
	CGO_ENABLED=0 $(GO) test -count=1 ./plugins/inputs/gstats/window/ ./munin/

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

# Benchmarks, side by side in one run: the collector against a bare PULL
# receiver on the same backlog (ratio), STATS cost from 1e3 to 1e6
# durations, bytes per prefix, the Go client's middleware (ns and
# allocations per request), the Python hooks against a socket per message
# as the original client did, and gunicorn's requests/s with the hooks and
# without (wrk).
bench: build
	set -o pipefail; { $(MAKE) --no-print-directory bench-go && $(MAKE) --no-print-directory bench-python ; } 2>&1 | tee bench.out
	@scripts/bench-summary.sh bench.out

bench-go:
	$(GO) test -run '^$$' -bench . -benchmem ./plugins/inputs/gstats/window/
	$(GO) test -run '^$$' -bench 'StatsReply' -benchtime 300x -benchmem ./plugins/inputs/gstats/
	$(GO) test -run '^$$' -bench 'Ingest' -benchtime $(BENCHTIME) ./plugins/inputs/gstats/
	$(GO) test -run '^$$' -bench . -benchmem ./client/

bench-python: build
	$(PYTHON) python/bench/bench_hooks.py
	python/bench/bench_gunicorn.sh sync 1

run: deps build
	scripts/demo.sh

clean:
	rm -rf bin bench.out
