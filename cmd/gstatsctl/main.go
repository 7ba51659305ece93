// Command gstatsctl talks to a running gstats collector over its control
// socket: the original's stats, rtimes, reset and quit, plus info. With
// --curve-server-key and --curve-key it talks CURVE, and keygen makes the
// key files.
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
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/gstats/gstats/internal/curvekey"
	"github.com/gstats/gstats/internal/version"
	"github.com/gstats/gstats/wire"
)

// Exit codes. 1 and 2 are the original's.
const (
	exitOK          = 0
	exitUsage       = 1 // unknown or missing command; an error answer; keygen failed
	exitArity       = 2 // a command with the wrong number of arguments; a bad option
	exitUnreachable = 3 // no reply from the collector
)

// The environment variables that stand for the CURVE options when these
// are not given.
const (
	envCurveServerKey = "GSTATS_CURVE_SERVER_KEY"
	envCurveClientKey = "GSTATS_CURVE_CLIENT_KEY"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usageText = `Usage: gstatsctl [OPTIONS] <quit|reset|rtimes|stats|info|keygen>

Options:
  -h, --help            show this help message and exit
  -c ADDR, --comm-address=ADDR
                        set communication address to ADDR [tcp://127.0.0.1:2345]
  --timeout=DURATION    give up when no reply comes within DURATION [3s]
  --curve-server-key=KEY|FILE
                        talk CURVE to a collector with this public key: 40
                        characters of Z85, or its key file
                        [$GSTATS_CURVE_SERVER_KEY]
  --curve-key=FILE      this client's CURVE key pair, a NAME.key_secret file
                        made by keygen [$GSTATS_CURVE_CLIENT_KEY]
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
  keygen NAME           write a new CURVE key pair: NAME.key (public) and
                        NAME.key_secret (secret); the collector is not asked

For the format of ZeroMQ addresses, please refer to zmq_connect(3).
CURVE needs both --curve-server-key and --curve-key; the collector must
list this client's public key in its curve_client_keys.
`

// commandArity is the number of arguments a command takes, and its usage;
// ok is false for an unknown command.
func commandArity(name string) (n int, usage string, ok bool) {
	switch name {
	case "stats", "reset", "quit", "info":
		return 0, "Usage: gstatsctl [OPTIONS] " + name, true
	case "rtimes":
		return 1, "Usage: gstatsctl [OPTIONS] rtimes PREFIX", true
	case "keygen":
		return 1, "Usage: gstatsctl keygen NAME", true
	}
	return 0, "", false
}

type options struct {
	addr    string
	timeout time.Duration
	json    bool
	verbose bool
	version bool
	// curveServer is --curve-server-key, curveKey --curve-key.
	curveServer string
	curveKey    string
}

// valueOptions are the options that take a value, which may be the next
// argument.
func valueOptions() []string {
	return []string{"c", "comm-address", "timeout", "curve-server-key", "curve-key"}
}

// run is the whole program; it returns the exit code. getenv reads the
// environment.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
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
	fs.StringVar(&o.curveServer, "curve-server-key", "", "")
	fs.StringVar(&o.curveKey, "curve-key", "", "")
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

	if name == "keygen" {
		return keygen(cmdArgs[0], stdout, stderr)
	}

	copts := wire.ClientOptions{Address: o.addr, Timeout: o.timeout}
	if err := loadCurve(&copts, o, getenv); err != nil {
		fmt.Fprintf(stderr, "gstatsctl: %v\n", err)
		return exitArity
	}
	client := wire.NewClient(copts)
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
			if slices.Contains(valueOptions(), name) && i+1 < len(args) {
				opts = append(opts, args[i+1])
				i++
			} else if len(a) > 2 && a[0] == '-' && a[1] == 'c' && a[2] != '=' && !longC(a) {
				opts[len(opts)-1] = "-c"
				opts = append(opts, a[2:])
			}
		default:
			rest = append(rest, a)
		}
	}
	return append(append(opts, "--"), rest...)
}

// longC reports whether a, which starts with "-c", is one of the long
// options that start with c written with one dash (-comm-address=A),
// rather than -c with its value attached (-cADDR).
func longC(a string) bool {
	for _, long := range []string{"-comm-address", "-curve-server-key", "-curve-key"} {
		if strings.HasPrefix(a, long) {
			return true
		}
	}
	return false
}

// curveSource is where a CURVE setting came from, for messages.
type curveSource struct {
	value string
	from  string // "--curve-key", "GSTATS_CURVE_CLIENT_KEY", ...
}

// curveSpecs picks the CURVE settings: each option, or the environment
// variable standing for it when the option is not given. Both or neither
// must be set; err says which one is missing.
func curveSpecs(o options, getenv func(string) string) (server, client curveSource, err error) {
	pick := func(flagValue, flagName, env string) curveSource {
		if v := strings.TrimSpace(flagValue); v != "" {
			return curveSource{v, "--" + flagName}
		}
		if v := strings.TrimSpace(getenv(env)); v != "" {
			return curveSource{v, env}
		}
		return curveSource{}
	}
	server = pick(o.curveServer, "curve-server-key", envCurveServerKey)
	client = pick(o.curveKey, "curve-key", envCurveClientKey)
	const both = "CURVE needs both the collector's public key and this client's key pair"
	switch {
	case server.value != "" && client.value == "":
		return server, client, fmt.Errorf("%s is given but not --curve-key (nor %s): %s", server.from, envCurveClientKey, both)
	case server.value == "" && client.value != "":
		return server, client, fmt.Errorf("%s is given but not --curve-server-key (nor %s): %s", client.from, envCurveServerKey, both)
	}
	return server, client, nil
}

// loadCurve reads the CURVE keys the options or the environment name into
// copts; without any, copts is left as it is.
func loadCurve(copts *wire.ClientOptions, o options, getenv func(string) string) error {
	server, client, err := curveSpecs(o, getenv)
	if err != nil || server.value == "" {
		return err
	}
	serverKey, err := curvekey.LoadPublic(server.value)
	if err != nil {
		return fmt.Errorf("%s: the collector's public key: %w", server.from, err)
	}
	pair, err := curvekey.LoadSecret(client.value)
	if err != nil {
		return fmt.Errorf("%s: %w", client.from, err)
	}
	copts.CurveServerKey, copts.CurvePublicKey, copts.CurveSecretKey = serverKey, pair.Public, pair.Secret
	return copts.Validate()
}

// keygen writes a new key pair to name.key and name.key_secret and says
// how to use them.
func keygen(name string, stdout, stderr io.Writer) int {
	base := filepath.Base(name)
	switch {
	case name == "" || strings.HasSuffix(name, "/") || base == "." || base == "..":
		fmt.Fprintf(stderr, "gstatsctl: keygen %q: NAME must end in a file name (keygen writes NAME%s and NAME%s)\n", name, curvekey.PublicSuffix, curvekey.SecretSuffix)
		return exitArity
	case strings.HasSuffix(base, curvekey.PublicSuffix) || strings.HasSuffix(base, curvekey.SecretSuffix):
		fmt.Fprintf(stderr, "gstatsctl: keygen %q: give NAME without %s or %s: keygen writes NAME%s and NAME%s\n",
			name, curvekey.PublicSuffix, curvekey.SecretSuffix, curvekey.PublicSuffix, curvekey.SecretSuffix)
		return exitArity
	}
	if abs, err := filepath.Abs(name); err == nil {
		name = abs
	}
	// Write never overwrites, but it writes the secret file first: check
	// both, so that an existing public key file is not left beside a new
	// secret one.
	for _, suffix := range []string{curvekey.SecretSuffix, curvekey.PublicSuffix} {
		if _, err := os.Lstat(name + suffix); err == nil {
			fmt.Fprintf(stderr, "gstatsctl: keygen: %s%s already exists; keygen never overwrites a key (remove it or choose another name)\n", name, suffix)
			return exitUsage
		}
	}
	pair, err := curvekey.Generate()
	if err != nil {
		fmt.Fprintf(stderr, "gstatsctl: keygen: %v\n", err)
		return exitUsage
	}
	pub, sec, err := curvekey.Write(name, pair, time.Now())
	if err != nil {
		fmt.Fprintf(stderr, "gstatsctl: keygen: %v\n", err)
		return exitUsage
	}
	fmt.Fprintf(stdout, `public key: %[1]s
wrote %[2]s (the public key, mode 0644)
wrote %[3]s (the key pair, mode 0600: keep it secret)

As the collector's key, in its [[inputs.gstats]]:
  curve_secret_key_file = %[4]q
and its clients take %[2]s (or the public key above):
  gstatsctl --curve-server-key=%[2]s --curve-key=CLIENT.key_secret stats

As a client's key, list it in the collector's [[inputs.gstats]]:
  curve_client_keys = [%[6]q]  # or %[5]q
and give the client %[3]s:
  gstatsctl --curve-server-key=COLLECTOR.key --curve-key=%[3]s stats
`, pair.Public, pub, sec, sec, pub, tomlKey(pair.Public))
	return exitOK
}

// tomlKey writes a public key for the collector's configuration file.
// Z85 keys may hold "$", which the configuration reads as the start of an
// environment reference ("$fG" names the variable fG); "$$" is a literal
// "$" there.
func tomlKey(public string) string {
	return strings.ReplaceAll(public, "$", "$$")
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
	// Newer counters, shown when there is something to see.
	for _, c := range []struct {
		label string
		n     int64
	}{
		{"commands refused (not in allowed_commands)", r.CommandsRefused},
		{"CURVE handshakes refused", r.AuthFailures},
		{"events dropped by clients", r.ClientDropped},
	} {
		if c.n > 0 {
			fmt.Fprintf(w, "%s: %d\n", c.label, c.n)
		}
	}
	if r.StateFile != "" {
		saved := r.StateSavedAt
		if saved == "" {
			saved = "not yet"
		}
		fmt.Fprintf(w, "state file: %s (saved %s, %d write errors)\n", r.StateFile, saved, r.StateWriteErrors)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
