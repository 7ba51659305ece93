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
	"log/slog"
	"math"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/config"

	"github.com/gstats/gstats/agentconf"
	"github.com/gstats/gstats/internal/logging"
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
		fmt.Fprintf(os.Stderr, "gstats-collectd: %v\n", err)
		os.Exit(1)
	}
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
  --config=FILE         read settings from FILE, a TOML file with one
                        [[inputs.gstats]] section; options given on the
                        command line override it
  --sample-config       print the [[inputs.gstats]] sample configuration
  --log-level=LEVEL     error, warn, info, debug or trace [info]
  --version             print the version and exit

Signals: SIGTERM, SIGINT and SIGQUIT stop the collector after processing
what it already received; SIGUSR1 resets the statistics.

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
	level, err := logging.ParseLevel(o.logLevel)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	plugin := gstats.New()
	if o.configFile != "" {
		cfg, err := agentconf.Load(o.configFile)
		if err != nil {
			return err
		}
		plugin = cfg.Gstats
		log.Info("configuration loaded", "file", o.configFile)
	}
	if set["s"] || set["stats-address"] {
		plugin.StatsAddress = o.statsAddress
	}
	if set["c"] || set["comm-address"] {
		plugin.CommAddress = o.commAddress
	}
	if set["l"] || set["buffer-length"] {
		d, err := parseLength(o.bufferLength)
		if err != nil {
			return err
		}
		plugin.Window = config.Duration(d)
	}
	plugin.Log = logging.New(log.With("plugin", "inputs.gstats"))
	if err := plugin.Init(); err != nil {
		if o.configFile != "" {
			return fmt.Errorf("invalid configuration in %s [[inputs.gstats]] (with command-line options applied): %w", o.configFile, err)
		}
		return fmt.Errorf("invalid configuration: %w", err)
	}

	quit := make(chan struct{})
	var quitOnce sync.Once
	plugin.SetQuitHandler(func() { quitOnce.Do(func() { close(quit) }) })

	// SIGUSR1 resets the statistics: the one place it is wired.
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(usr1)

	log.Info("starting gstats-collectd", "version", version.Version, "pid", os.Getpid())
	if err := plugin.Start(&logAccumulator{log: log}); err != nil {
		return err
	}
	for {
		select {
		case <-usr1:
			plugin.Reset()
			log.Info("statistics reset by SIGUSR1")
			continue
		case <-ctx.Done():
			log.Info("stop signal received; stopping")
		case <-quit:
		}
		break
	}
	t0 := time.Now()
	plugin.Stop()
	log.Info("gstats-collectd stopped", "took", time.Since(t0).Round(time.Microsecond))
	return nil
}

// logAccumulator is the accumulator of a host without outputs: it logs the
// errors a plugin reports and drops metrics.
type logAccumulator struct {
	log *slog.Logger
}

func (*logAccumulator) AddFields(string, map[string]any, map[string]string, ...time.Time)    {}
func (*logAccumulator) AddGauge(string, map[string]any, map[string]string, ...time.Time)     {}
func (*logAccumulator) AddCounter(string, map[string]any, map[string]string, ...time.Time)   {}
func (*logAccumulator) AddSummary(string, map[string]any, map[string]string, ...time.Time)   {}
func (*logAccumulator) AddHistogram(string, map[string]any, map[string]string, ...time.Time) {}
func (*logAccumulator) AddMetric(telegraf.Metric)                                            {}
func (*logAccumulator) SetPrecision(time.Duration)                                           {}
func (a *logAccumulator) AddError(err error) {
	if err != nil {
		a.log.Error(err.Error())
	}
}
func (a *logAccumulator) WithTracking(int) telegraf.TrackingAccumulator {
	return &logTracking{logAccumulator: a}
}

// logTracking drops tracked metrics too; with no output nothing is ever
// delivered, so Delivered never yields.
type logTracking struct {
	*logAccumulator
	delivered chan telegraf.DeliveryInfo
}

func (*logTracking) AddTrackingMetric(telegraf.Metric) telegraf.TrackingID        { return 0 }
func (*logTracking) AddTrackingMetricGroup([]telegraf.Metric) telegraf.TrackingID { return 0 }
func (t *logTracking) Delivered() <-chan telegraf.DeliveryInfo                    { return t.delivered }
