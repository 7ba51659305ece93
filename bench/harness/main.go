// Command gstats-bench measures gstats side by side with the limit (a bare
// libzmq PULL receiver) and with the peer users would pick instead
// (Telegraf's statsd input), in one run, and writes docs/PERFORMANCE.md.
//
// It is run by `make bench`, pinned to one CPU (the senders), with the
// receivers pinned to another:
//
//	taskset -c 0 gstats-bench run -collectd bin/gstats-collectd -go-bench bench.out -report docs/PERFORMANCE.md
//
// Each receiver runs as its own process, so its CPU time is its own. The
// Go benchmarks' output (bench.out) supplies the figures measured in
// process: STATS and Gather time, memory per prefix, the clients. The last
// phase, the soak, runs the collector for 10 minutes at half the highest
// loss-free rate and checks that its memory, files and goroutines stay
// flat and that nothing is lost.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/gstats/gstats/bench/statsdpeer"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "gstats-bench:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return errors.New("usage: gstats-bench run [flags] | send [flags] | bare-pull batch|frames")
	}
	switch args[0] {
	case "bare-pull":
		if len(args) != 2 {
			return errors.New("usage: gstats-bench bare-pull batch|frames")
		}
		return runBarePull(args[1])
	case "run":
		return runAll(args[1:])
	case "send":
		return runSend(args[1:])
	}
	return fmt.Errorf("unknown command %q", args[0])
}

// options are the flags of `gstats-bench run`.
type options struct {
	collectd string
	telegraf string
	cpus     string
	step     time.Duration
	phases   map[string]bool
	goBench  string
	report   string
	readme   string // the plugin README whose state-file passage the run rewrites
	src      string // the repository, whose benchmarks should all have run
	jsonOut  string
	quick    bool
	// The soak phase: how long, how often to sample, the rate (0: half
	// the ingest phase's), the collector's window (0: the warm-up).
	soakFor, soakEvery, soakWindow time.Duration
	soakRate                       float64
}

func runAll(args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	var o options
	var phases string
	fs.StringVar(&o.collectd, "collectd", "bin/gstats-collectd", "the gstats-collectd binary")
	fs.StringVar(&o.telegraf, "telegraf", "", "a Telegraf binary with inputs.statsd and outputs.file (built when empty)")
	fs.StringVar(&o.cpus, "receiver-cpus", "1", "CPUs the receivers are pinned to (taskset -c); empty for none")
	fs.DurationVar(&o.step, "step", 3*time.Second, "sending time of each ladder step")
	fs.StringVar(&phases, "phases", "ingest,statsd,memory,accuracy,soak", "phases to run")
	fs.StringVar(&o.goBench, "go-bench", "bench.out", "output of the Go and Python benchmarks, for the report")
	fs.StringVar(&o.report, "report", "docs/PERFORMANCE.md", "report to write (empty: none)")
	fs.StringVar(&o.readme, "readme", "", "the plugin README whose state-file figures to rewrite from the Go benchmarks' output (empty: none)")
	fs.StringVar(&o.src, "src", ".", "the repository, whose Go benchmarks the report checks all ran")
	fs.StringVar(&o.jsonOut, "json", "bench-results.json", "raw results to write")
	fs.BoolVar(&o.quick, "quick", false, "fewer and shorter steps (a smoke run, not for the report)")
	fs.DurationVar(&o.soakFor, "soak-for", 10*time.Minute, "how long the soak phase sends (-quick: 30s)")
	fs.DurationVar(&o.soakEvery, "soak-every", 10*time.Second, "how often the soak phase samples the collector (-quick: 1s)")
	fs.Float64Var(&o.soakRate, "soak-rate", 0, "the soak's rate in classic messages per second (0: half the highest loss-free rate of the ingest phase, or, without it, of the previous run's -json results)")
	fs.DurationVar(&o.soakWindow, "soak-window", 0, "the collector's window during the soak (0: the soak's warm-up, so that the window is full when measuring starts)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if o.quick && !set["soak-for"] {
		o.soakFor = 30 * time.Second
	}
	if o.quick && !set["soak-every"] {
		o.soakEvery = time.Second
	}
	if o.soakFor <= 0 || o.soakEvery <= 0 {
		return fmt.Errorf("-soak-for %s and -soak-every %s must be positive", o.soakFor, o.soakEvery)
	}
	o.phases = map[string]bool{}
	for _, p := range strings.Split(phases, ",") {
		o.phases[strings.TrimSpace(p)] = true
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	logf := func(format string, a ...any) { log.Info(fmt.Sprintf(format, a...)) }

	self, err := os.Executable()
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "gstats-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	if o.telegraf == "" && (o.phases["statsd"] || o.phases["accuracy"]) {
		logf("building Telegraf with inputs.statsd")
		if o.telegraf, err = statsdpeer.Build(ctx, work); err != nil {
			return err
		}
	}
	res := results{Started: time.Now().UTC(), Machine: describeMachine(ctx), ReceiverCPUs: o.cpus, Step: o.step}
	if o.phases["ingest"] {
		if res.Ingest, err = ingestPhase(ctx, o, self, work, logf); err != nil {
			return err
		}
	}
	if o.phases["statsd"] {
		if res.Statsd, err = statsdPhase(ctx, o, work, logf); err != nil {
			return err
		}
	}
	if o.phases["memory"] {
		if res.Memory, err = memoryPhase(ctx, o, work, logf); err != nil {
			return err
		}
	}
	if o.phases["accuracy"] {
		if res.Accuracy, err = accuracyPhase(ctx, o, work, logf); err != nil {
			return err
		}
	}
	if o.phases["soak"] {
		if res.Soak, err = soakPhase(ctx, o, work, res.Ingest, logf); err != nil {
			return err
		}
	}
	res.Finished = time.Now().UTC()
	if o.jsonOut != "" {
		b, _ := json.MarshalIndent(res, "", "  ")
		if err := os.WriteFile(o.jsonOut, b, 0o644); err != nil {
			return err
		}
	}
	if o.report == "" && o.readme == "" {
		return nil
	}
	out, err := os.ReadFile(o.goBench)
	if err != nil {
		return fmt.Errorf("the Go benchmarks' output: %w (run make bench-go bench-python first)", err)
	}
	gb := parseGoBench(string(out))
	if o.readme != "" {
		if err := rewriteReadme(o.readme, gb, res.Started); err != nil {
			return err
		}
		logf("rewrote the state-file figures in %s", o.readme)
	}
	if o.report == "" {
		return nil
	}
	benches, err := listBenchmarks(o.src)
	if err != nil {
		return fmt.Errorf("listing the repository's benchmarks in %s: %w", o.src, err)
	}
	return judge(o.report, res, gb, benches, os.Stdout, logf)
}

// judge writes the report and lists every target with its verdict on w;
// it fails when a target was missed or not measured.
func judge(path string, res results, gb goBench, benches []benchFunc, w io.Writer, logf func(string, ...any)) error {
	text, rows := writeReport(res, gb, benches)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		return err
	}
	logf("wrote %s", path)
	fmt.Fprint(w, targetsText(rows))
	if ms := misses(rows); len(ms) > 0 {
		return fmt.Errorf("%d of %d targets missed or not measured (%s):\n  %s", len(ms), len(rows), path, strings.Join(ms, "\n  "))
	}
	return nil
}

// rewriteReadme rewrites the state-file passage of the plugin README from
// the Go benchmarks' figures.
func rewriteReadme(path string, gb goBench, date time.Time) error {
	doc, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	text, err := rewriteBlock(string(doc), stateCostBegin, stateCostEnd, stateCostText(gb, date), "  ", 76)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return os.WriteFile(path, []byte(text), 0o644)
}

// runSend is `gstats-bench send`: the paced sender alone, for profiling a
// collector started by hand (gstats-collectd --pprof-addr).
func runSend(args []string) error {
	fs := flag.NewFlagSet("send", flag.ContinueOnError)
	addr := fs.String("addr", "tcp://127.0.0.2:2345", "the collector's stats address")
	rate := fs.Float64("rate", 50_000, "messages (classic) or events (packed) per second")
	d := fs.Duration("for", 10*time.Second, "how long to send")
	kind := fs.String("stream", "classic", "classic or packed (100 events per message)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var st *stream
	var err error
	switch *kind {
	case "classic":
		st, err = classicStream(1 << 18)
	case "packed":
		st, err = packedStream(1<<12, 100, false, 0)
	default:
		return fmt.Errorf("-stream %q: classic or packed", *kind)
	}
	if err != nil {
		return err
	}
	sent, dropped, el, err := pacedSend(*addr, st, *rate, *d, 0, *kind == "packed", nil)
	if err != nil {
		return err
	}
	fmt.Printf("sent %d, dropped %d in %s: %.0f/s\n", sent, dropped, el.Round(time.Millisecond), float64(sent)/el.Seconds())
	return nil
}
