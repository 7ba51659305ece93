// Command gstatsctl talks to a running gstats collector over its control
// socket: the original's stats, rtimes, reset and quit, plus info.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/gstats/gstats/internal/version"
	"github.com/gstats/gstats/wire"
)

// Exit codes. 1 and 2 are the original's.
const (
	exitOK          = 0
	exitUsage       = 1 // unknown or missing command; an error answer
	exitArity       = 2 // a command with the wrong number of arguments
	exitUnreachable = 3 // no reply from the collector
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usageText = `Usage: gstatsctl [OPTIONS] <quit|reset|rtimes|stats|info>

Options:
  -h, --help            show this help message and exit
  -c ADDR, --comm-address=ADDR
                        set communication address to ADDR [tcp://127.0.0.1:2345]
  --timeout=DURATION    give up when no reply comes within DURATION [3s]
  --json                print the collector's raw JSON reply
  -v, --verbose         stats: also print the new figures (window count,
                        rate, min, max, percentiles, status classes)
  --version             print the version and exit

Commands:
  stats                 statistics for every prefix
  rtimes PREFIX         the durations of PREFIX in the window, one per line
  reset                 clear all statistics
  quit                  stop the collector
  info                  version, uptime, window, message counters

For the format of ZeroMQ addresses, please refer to zmq_connect(3).
`

// commandArity is the number of arguments a command takes, and its usage;
// ok is false for an unknown command.
func commandArity(name string) (n int, usage string, ok bool) {
	switch name {
	case "stats", "reset", "quit", "info":
		return 0, "Usage: gstatsctl [OPTIONS] " + name, true
	case "rtimes":
		return 1, "Usage: gstatsctl [OPTIONS] rtimes PREFIX", true
	}
	return 0, "", false
}

type options struct {
	addr    string
	timeout time.Duration
	json    bool
	verbose bool
	version bool
}

// run is the whole program; it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var o options
	fs := flag.NewFlagSet("gstatsctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	// The flag package calls Usage for -h and after an error; -h prints the
	// usage to stdout, as optparse did.
	fs.Usage = func() {}
	for _, name := range []string{"c", "comm-address"} {
		fs.StringVar(&o.addr, name, wire.DefaultCommAddress, "")
	}
	fs.DurationVar(&o.timeout, "timeout", wire.DefaultTimeout, "")
	fs.BoolVar(&o.json, "json", false, "")
	for _, name := range []string{"v", "verbose"} {
		fs.BoolVar(&o.verbose, name, false, "")
	}
	fs.BoolVar(&o.version, "version", false, "")
	if err := fs.Parse(interleave(args)); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usageText)
			return exitOK
		}
		fmt.Fprint(stderr, usageText)
		return exitArity
	}
	if o.version {
		fmt.Fprintf(stdout, "gstatsctl %s\n", version.Version)
		return exitOK
	}
	if o.timeout <= 0 {
		fmt.Fprintf(stderr, "gstatsctl: --timeout must be positive, got %s\n", o.timeout)
		return exitArity
	}
	if fs.NArg() == 0 {
		fmt.Fprint(stderr, usageText)
		return exitUsage
	}
	name := strings.ToLower(fs.Arg(0))
	nargs, usage, ok := commandArity(name)
	if !ok {
		fmt.Fprintf(stderr, "gstatsctl: unknown command %q\n", fs.Arg(0))
		fmt.Fprint(stderr, usageText)
		return exitUsage
	}
	cmdArgs := fs.Args()[1:]
	if len(cmdArgs) != nargs {
		fmt.Fprintln(stderr, usage)
		return exitArity
	}

	client := wire.NewClient(wire.ClientOptions{Address: o.addr, Timeout: o.timeout})
	cmd := wire.Command(strings.ToUpper(name))
	reply, err := client.Do(ctx, string(cmd))
	if err != nil {
		fmt.Fprintf(stderr, "gstatsctl: %v\n", err)
		return exitUnreachable
	}
	if wire.IsErrorReply(reply) {
		fmt.Fprintf(stderr, "gstatsctl: the collector at %s answered ERROR to %s\n", o.addr, cmd)
		return exitUsage
	}
	if o.json {
		fmt.Fprintf(stdout, "%s\n", reply)
		return exitOK
	}
	if err := render(stdout, cmd, cmdArgs, reply, o.verbose); err != nil {
		fmt.Fprintf(stderr, "gstatsctl: %v\n", err)
		return exitUsage
	}
	return exitOK
}

// interleave moves options after the command to the front, so that
// "gstatsctl stats -c ADDR" works as optparse allowed it.
func interleave(args []string) []string {
	var opts, rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			rest = append(rest, args[i+1:]...)
			i = len(args)
		case strings.HasPrefix(a, "-") && len(a) > 1:
			opts = append(opts, a)
			name := strings.TrimLeft(a, "-")
			if (name == "c" || name == "comm-address" || name == "timeout") && i+1 < len(args) {
				opts = append(opts, args[i+1])
				i++
			} else if len(a) > 2 && a[0] == '-' && a[1] == 'c' && a[2] != '=' && !strings.HasPrefix(a, "-comm-address") {
				opts[len(opts)-1] = "-c"
				opts = append(opts, a[2:])
			}
		default:
			rest = append(rest, a)
		}
	}
	return append(append(opts, "--"), rest...)
}

// render prints a reply in the original's text format.
func render(w io.Writer, cmd wire.Command, args []string, reply []byte, verbose bool) error {
	switch cmd {
	case wire.CmdStats:
		var r wire.StatsReply
		if err := json.Unmarshal(reply, &r); err != nil {
			return fmt.Errorf("STATS reply is not valid JSON: %w", err)
		}
		return writeStats(w, r, verbose)
	case wire.CmdRTimes:
		var r map[string][]float64
		if err := json.Unmarshal(reply, &r); err != nil {
			return fmt.Errorf("RTIMES reply is not valid JSON: %w", err)
		}
		list, ok := r[args[0]]
		if !ok {
			return fmt.Errorf("no prefix %q in the collector (known: %s)", args[0], strings.Join(sortedKeys(r), ", "))
		}
		for _, v := range list {
			fmt.Fprintln(w, wire.FormatFloat(v))
		}
	case wire.CmdInfo:
		var r wire.InfoReply
		if err := json.Unmarshal(reply, &r); err != nil {
			return fmt.Errorf("INFO reply is not valid JSON: %w", err)
		}
		writeInfo(w, r)
	}
	return nil
}

func writeStats(w io.Writer, r wire.StatsReply, verbose bool) error {
	for _, name := range sortedKeys(r) {
		s := r[name]
		pt := s.ProcessingTime
		fmt.Fprintf(w, "%s\n%s\n", name, strings.Repeat("=", len([]rune(name))))
		fmt.Fprintf(w, "Requests: started=%d, finished=%d, processing=%d\n", s.Started, s.Finished, s.Started-s.Finished)
		fmt.Fprintf(w, "Response time: average=%s, stdev=%s\n", wire.FormatFloat(float64(pt.Avg)), wire.FormatFloat(float64(pt.Std)))
		if verbose {
			fmt.Fprintf(w, "Window: count=%d, rate=%s/s, min=%s, max=%s\n", pt.Count, wire.FormatFloat(float64(s.Rate)),
				wire.FormatFloat(float64(pt.Min)), wire.FormatFloat(float64(pt.Max)))
			if len(pt.Percentiles) > 0 {
				parts := make([]string, len(pt.Percentiles))
				for i, p := range pt.Percentiles {
					parts[i] = p.Key() + "=" + wire.FormatFloat(float64(p.Value))
				}
				fmt.Fprintf(w, "Percentiles: %s\n", strings.Join(parts, ", "))
			}
			st := s.Status
			fmt.Fprintf(w, "Status: 1xx=%d, 2xx=%d, 3xx=%d, 4xx=%d, 5xx=%d, none=%d\n", st.S1xx, st.S2xx, st.S3xx, st.S4xx, st.S5xx, st.None)
		}
		fmt.Fprintln(w)
	}
	return nil
}

func writeInfo(w io.Writer, r wire.InfoReply) {
	up := time.Duration(float64(r.UptimeSeconds) * float64(time.Second)).Round(time.Second)
	win := time.Duration(float64(r.WindowSeconds) * float64(time.Second))
	fmt.Fprintf(w, "version: %s\n", r.Version)
	fmt.Fprintf(w, "started: %s (up %s)\n", r.StartedAt, up)
	fmt.Fprintf(w, "stats address: %s\n", r.StatsAddress)
	fmt.Fprintf(w, "comm address: %s\n", r.CommAddress)
	fmt.Fprintf(w, "window: %s in %d slots\n", win, r.WindowSlots)
	fmt.Fprintf(w, "prefixes: %d (limit %d)\n", r.Prefixes, r.MaxPrefixes)
	fmt.Fprintf(w, "messages accepted: %d\n", r.Accepted)
	fmt.Fprintf(w, "messages rejected: %d\n", r.RejectedTotal)
	reasons := make([]string, 0, len(r.Rejected))
	for reason := range r.Rejected {
		reasons = append(reasons, string(reason))
	}
	sort.Strings(reasons)
	for _, reason := range reasons {
		if n := r.Rejected[wire.Reason(reason)]; n > 0 {
			fmt.Fprintf(w, "  %s: %d\n", reason, n)
		}
	}
	fmt.Fprintf(w, "peer disconnects: %d\n", r.Disconnects)
	fmt.Fprintf(w, "control requests: %d (%d errors)\n", r.ControlRequests, r.ControlErrors)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
