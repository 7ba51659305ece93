// Command gstats-collectd runs the gstats collector on its own: a drop-in
// replacement for the original gstats-collectd, with the same flags and
// defaults, configurable with the [[inputs.gstats]] block Telegraf takes.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	stdlog "log"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/influxdata/telegraf/config"
	telegrafLogger "github.com/influxdata/telegraf/logger"
	"github.com/influxdata/telegraf/plugins/common/shim"

	"github.com/gstats/gstats/agentconf"
	"github.com/gstats/gstats/internal/logging"
	"github.com/gstats/gstats/internal/pipeline"
	"github.com/gstats/gstats/internal/version"
	"github.com/gstats/gstats/plugins/inputs/gstats"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGQUIT, os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		var u usageError
		if errors.As(err, &u) {
			os.Exit(2)
		}
		prefix := ""
		if execdMode(os.Args[1:]) {
			prefix = "E! " // the level Telegraf's execd reads
		}
		fmt.Fprintf(os.Stderr, "%sgstats-collectd: %v\n", prefix, err)
		os.Exit(1)
	}
}

// execdMode reports whether args ask for --execd, before or without a
// successful parse.
func execdMode(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "--execd", "-execd", "--execd=true", "-execd=true":
			return true
		}
	}
	return false
}

// usageError is a command-line error; the flag package has printed it.
type usageError struct{ error }

type options struct {
	statsAddress string
	commAddress  string
	bufferLength string
	configFile   string
	logLevel     string
	version      bool
	sampleConfig bool
	execd        bool
	pollInterval time.Duration
	pprofAddr    string
	stateFile    string
	insecureCtl  bool
}

const usageText = `Usage: gstats-collectd [options]

Collects request statistics pushed over ZeroMQ by gunicorn hooks (or any
pre/post-request hook) and answers STATS, RTIMES, RESET, QUIT and INFO on
the control socket.

Options:
  -h, --help            show this help message and exit
  -s ADDR, --stats-address=ADDR
                        set collector address to ADDR [tcp://127.0.0.2:2345]
  -c ADDR, --comm-address=ADDR
                        set communication address to ADDR [tcp://127.0.0.1:2345]
  -l LENGTH, --buffer-length=LENGTH
                        compute statistics over the last LENGTH seconds [600]
                        (a duration such as 10m is accepted too)
  --config=FILE         read settings from FILE: one [[inputs.gstats]]
                        section, and optionally [agent], [global_tags] and
                        [[outputs.file]], [[outputs.influxdb]] or
                        [[outputs.influxdb_v2]] sections; options given on
                        the command line override it
  --execd               run under Telegraf's inputs.execd: write metrics as
                        line protocol to stdout and logs with E!/W!/I!/D!
                        prefixes to stderr; gather on each line read from
                        stdin and every --poll-interval; stop at the end of
                        stdin. FILE then holds only [[inputs.gstats]].
  --poll-interval=D     with --execd, also gather every D [10s]; 0 gathers
                        only when Telegraf asks (signal = "STDIN")
  --sample-config       print the [[inputs.gstats]] sample configuration
  --log-level=LEVEL     error, warn, info, debug or trace [info]
  --pprof-addr=ADDR     serve Go's profiles (net/http/pprof) on ADDR, a
                        loopback host:port such as 127.0.0.1:6060 [off]
  --state-file=FILE     keep the statistics across restarts in FILE: read
                        at start, written every state_interval (10s) and at
                        exit; its directory must exist (state_file) [off]
  --allow-insecure-control
                        let a control socket on a non-loopback address,
                        without CURVE, answer RESET and QUIT
                        (allow_insecure_control; see docs/SECURITY.md)
  --version             print the version and exit

Signals: SIGTERM, SIGINT and SIGQUIT stop the collector after processing
what it already received and writing a last set of metrics to the outputs;
SIGUSR1 resets the statistics.

For the format of ZeroMQ addresses, see zmq_bind(3).
`

func parseFlags(args []string, stdout, stderr io.Writer) (options, map[string]bool, error) {
	var o options
	fs := flag.NewFlagSet("gstats-collectd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	// The usage is printed below: to stdout for -h, as optparse did, and
	// to stderr after an error.
	fs.Usage = func() {}
	for _, name := range []string{"s", "stats-address"} {
		fs.StringVar(&o.statsAddress, name, "", "")
	}
	for _, name := range []string{"c", "comm-address"} {
		fs.StringVar(&o.commAddress, name, "", "")
	}
	for _, name := range []string{"l", "buffer-length"} {
		fs.StringVar(&o.bufferLength, name, "", "")
	}
	fs.StringVar(&o.configFile, "config", "", "")
	fs.StringVar(&o.logLevel, "log-level", "info", "")
	fs.BoolVar(&o.version, "version", false, "")
	fs.BoolVar(&o.sampleConfig, "sample-config", false, "")
	fs.BoolVar(&o.execd, "execd", false, "")
	fs.DurationVar(&o.pollInterval, "poll-interval", 10*time.Second, "")
	fs.StringVar(&o.pprofAddr, "pprof-addr", "", "")
	fs.StringVar(&o.stateFile, "state-file", "", "")
	fs.BoolVar(&o.insecureCtl, "allow-insecure-control", false, "")
	if err := fs.Parse(splitShort(args, "scl", longFlags(fs))); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usageText)
		} else {
			fmt.Fprint(stderr, usageText)
		}
		return o, nil, err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "gstats-collectd: unexpected argument %q\n", fs.Arg(0))
		fmt.Fprint(stderr, usageText)
		return o, nil, usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return o, set, nil
}

// splitShort turns optparse-style "-sADDR" into "-s", "ADDR", for the
// single-letter options that take a value. Long options written with one
// dash ("-config=FILE", "-sample-config"), as the flag package accepts
// them, are left alone: long names them.
func splitShort(args []string, letters string, long map[string]bool) []string {
	out := make([]string, 0, len(args))
	for i, a := range args {
		if a == "--" {
			return append(out, args[i:]...)
		}
		if len(a) > 2 && a[0] == '-' && a[1] != '-' && a[2] != '=' && strings.IndexByte(letters, a[1]) >= 0 {
			if name, _, _ := strings.Cut(a[1:], "="); !long[name] {
				out = append(out, a[:2], a[2:])
				continue
			}
		}
		out = append(out, a)
	}
	return out
}

// longFlags is the set of the multi-letter option names of fs.
func longFlags(fs *flag.FlagSet) map[string]bool {
	long := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) {
		if len(f.Name) > 1 {
			long[f.Name] = true
		}
	})
	return long
}

// parseLength reads -l: seconds (integer or fractional) or a Go duration.
func parseLength(s string) (time.Duration, error) {
	if n, err := strconv.ParseFloat(s, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		// NaN fails every comparison, so it is refused here too.
		if !(n > 0 && n < float64(math.MaxInt64)/float64(time.Second)) || time.Duration(n*float64(time.Second)) <= 0 {
			return 0, fmt.Errorf("-l/--buffer-length must be a positive number of seconds up to %d, got %q", math.MaxInt64/int64(time.Second), s)
		}
		return time.Duration(n * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("-l/--buffer-length %q is not a positive number of seconds (or a duration such as 10m)", s)
	}
	return d, nil
}

// run is the whole program; it never calls os.Exit.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, set, err := parseFlags(args, stdout, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return usageError{err}
	}
	if o.version {
		fmt.Fprintf(stdout, "gstats-collectd %s\n", version.Version)
		return nil
	}
	if o.sampleConfig {
		fmt.Fprint(stdout, gstats.New().SampleConfig())
		return nil
	}
	if set["poll-interval"] && !o.execd {
		fmt.Fprintln(stderr, "gstats-collectd: --poll-interval needs --execd")
		return usageError{errors.New("--poll-interval needs --execd")}
	}
	if o.pollInterval < 0 {
		fmt.Fprintf(stderr, "gstats-collectd: --poll-interval must not be negative, got %s\n", o.pollInterval)
		return usageError{fmt.Errorf("--poll-interval must not be negative, got %s", o.pollInterval)}
	}
	level, err := logging.ParseLevel(o.logLevel)
	if err != nil {
		return err
	}
	var log *slog.Logger
	if o.execd {
		log = slog.New(logging.NewPrefixHandler(stderr, level))
	} else {
		log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	}
	// The Telegraf libraries (outputs, the shim) log through Telegraf's
	// logger; send it through ours so every line has one format.
	telegrafLogger.RedirectLogging(logging.NewLineWriter(log))
	// Go's standard logger too (Telegraf's logger package pointed it at
	// itself, where a line without a level is written at info level and so
	// dropped by --log-level=warn or error): a library's log.Fatal would
	// then exit 1 without a word.
	stdlog.SetFlags(0)
	stdlog.SetOutput(stdlogWriter{log: log, floor: level})

	if o.pprofAddr != "" {
		stopPprof, err := startPprof(o.pprofAddr, log)
		if err != nil {
			return err
		}
		defer stopPprof()
	}

	cfg, err := loadConfig(o, set, log)
	if err != nil {
		return err
	}
	plugin := cfg.Gstats
	plugin.Log = logging.New(log.With("plugin", "inputs.gstats"))
	if err := plugin.Init(); err != nil {
		if o.configFile != "" {
			return fmt.Errorf("invalid configuration in %s [[inputs.gstats]] (with command-line options applied): %w", o.configFile, err)
		}
		return fmt.Errorf("invalid configuration: %w", err)
	}

	// SIGUSR1 resets the statistics: the one place it is wired.
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(usr1)
	resetDone := make(chan struct{})
	defer close(resetDone)
	go func() {
		for {
			select {
			case <-usr1:
				plugin.Reset()
				log.Info("statistics reset by SIGUSR1")
			case <-resetDone:
				return
			}
		}
	}()

	if o.execd {
		return runExecd(plugin, o, log)
	}
	return runStandalone(ctx, cfg, plugin, log)
}

// loadConfig reads --config (or takes the defaults) and applies the
// command-line options over it.
func loadConfig(o options, set map[string]bool, log *slog.Logger) (*agentconf.Config, error) {
	var cfg *agentconf.Config
	if o.configFile != "" {
		c, err := agentconf.Load(o.configFile)
		if err != nil {
			return nil, err
		}
		if o.execd && len(c.Sections) > 0 {
			return nil, fmt.Errorf("%s: with --execd the file holds only [[inputs.gstats]], found %s: Telegraf's own configuration sets the agent and the outputs",
				o.configFile, strings.Join(c.Sections, ", "))
		}
		cfg = c
		log.Info("configuration loaded", "file", o.configFile)
	} else {
		c, err := agentconf.Parse("defaults", []byte("[[inputs.gstats]]\n"))
		if err != nil {
			return nil, err
		}
		cfg = c
	}
	if set["s"] || set["stats-address"] {
		cfg.Gstats.StatsAddress = o.statsAddress
	}
	if set["c"] || set["comm-address"] {
		cfg.Gstats.CommAddress = o.commAddress
	}
	if set["state-file"] {
		cfg.Gstats.StateFile = o.stateFile
	}
	if set["allow-insecure-control"] {
		cfg.Gstats.AllowInsecureControl = o.insecureCtl
	}
	if set["l"] || set["buffer-length"] {
		d, err := parseLength(o.bufferLength)
		if err != nil {
			return nil, err
		}
		cfg.Gstats.Window = config.Duration(d)
	}
	return cfg, nil
}

// runStandalone runs the plugin with the configured outputs until ctx is
// done or a QUIT command arrives.
func runStandalone(ctx context.Context, cfg *agentconf.Config, plugin *gstats.Gstats, log *slog.Logger) error {
	p, err := pipeline.New(cfg, log)
	if err != nil {
		return fmt.Errorf("invalid output configuration: %w", err)
	}
	signalled := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// returned is closed (before cancel runs) when this function returns,
	// so that a start-up failure is not logged as a stop request: ctx is
	// then cancelled by the return, not by a signal or QUIT.
	returned := make(chan struct{})
	defer close(returned)
	plugin.SetQuitHandler(cancel)
	go func() {
		<-ctx.Done()
		select {
		case <-returned:
			return
		default:
		}
		if signalled.Err() != nil {
			log.Info("stop signal received; stopping")
		} else {
			log.Info("QUIT received; stopping")
		}
	}()

	log.Info("starting gstats-collectd", "version", version.Version, "pid", os.Getpid(),
		"interval", time.Duration(cfg.Agent.Interval), "flush_interval", time.Duration(cfg.Agent.FlushInterval),
		"outputs", strings.Join(p.Outputs(), ","))
	t0 := time.Now()
	if err := p.Run(ctx, plugin); err != nil {
		return err
	}
	log.Info("gstats-collectd stopped", "took", time.Since(t0).Round(time.Microsecond))
	return nil
}

// runExecd runs the plugin under Telegraf's execd shim: line protocol on
// stdout, a gather per line on stdin and every poll interval, and a clean
// stop (with a final gather) at the end of stdin or on SIGTERM/SIGINT.
func runExecd(plugin *gstats.Gstats, o options, log *slog.Logger) error {
	s := shim.New()
	// Set the input directly rather than with AddInput, which would replace
	// the plugin's logger with one execd cannot read the levels of; Init
	// has run already.
	s.Input = plugin
	poll := o.pollInterval
	if poll == 0 {
		poll = shim.PollIntervalDisabled
	}
	log.Info("starting gstats-collectd under execd", "version", version.Version, "pid", os.Getpid(), "poll_interval", o.pollInterval)
	if err := s.RunInput(poll); err != nil {
		return err
	}
	log.Info("gstats-collectd stopped")
	return nil
}

// stdlogWriter carries the lines written through Go's standard logger (by
// libraries) to log. A line with a Telegraf level indicator ("E! ") keeps
// its level; a line without one is written at floor, the lowest level log
// writes, at least: it cannot be told from the last words of a log.Fatal,
// which exits 1 right after, and must never be filtered out.
type stdlogWriter struct {
	log   *slog.Logger
	floor slog.Level
}

// Write logs each line of p; the standard logger writes one whole entry per
// call.
func (w stdlogWriter) Write(p []byte) (int, error) {
	for _, line := range strings.Split(string(p), "\n") {
		line = strings.TrimRight(line, "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		level, msg, attrs := logging.ParseTelegrafLine(line)
		if msg == line && level < w.floor { // no level indicator
			level = w.floor
		}
		w.log.Log(context.Background(), level, msg, attrs...)
	}
	return len(p), nil
}
