package munin

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"
)

// DefaultAddress is the control address the plug-ins ask unless
// env.status_addr says otherwise: the original's default.
const DefaultAddress = "tcp://127.0.0.1:2345"

// The environment variables the plug-ins read. The first three are set with
// env.NAME lines in munin's plugin-conf.d; munin-node sets the last. The
// CURVE settings are in curve.go.
const (
	EnvAddress     = "status_addr"
	EnvTimeout     = "timeout"
	EnvPercentiles = "percentiles"
	EnvDirtyConfig = "MUNIN_CAP_DIRTYCONFIG"
)

// Target is the collector a plug-in asks, and how.
type Target struct {
	// Address is the collector's control address.
	Address string
	// Timeout bounds the request.
	Timeout time.Duration
	// Curve are the CURVE settings, unread: their files are read by the
	// Query (ClientOptions does it).
	Curve Curve
}

// Query sends STATS to the collector's control socket at t.Address and
// returns the raw reply. It must give up after t.Timeout.
type Query func(ctx context.Context, t Target) ([]byte, error)

// Usage is printed for a call without a plug-in name or with an unknown
// command.
const Usage = `Usage: gstats-munin PLUGIN-NAME [config|autoconf|suggest]

Answers munin for the gstats plug-ins; the plug-in scripts run it with their
own name (gunicorn-requests_<label>, gunicorn-request-time_<label>,
gstats-latency_<label>, gstats-status_<label>). Without a command it prints
the values (fetch).

Environment (env.NAME in munin's plugin-conf.d):
  status_addr       control address of gstats-collectd [tcp://127.0.0.1:2345]
  timeout           seconds to wait for the collector [3]
  percentiles       percentiles of gstats-latency_ [50 90 95 99]
  curve_server_key  the collector's CURVE public key: 40 characters of Z85,
                    or its key file [$GSTATS_CURVE_SERVER_KEY]
  curve_client_key  the plug-ins' CURVE key pair: a NAME.key_secret file
                    made by gstatsctl keygen, readable by the plug-ins'
                    user only [$GSTATS_CURVE_CLIENT_KEY]
`

// Run answers one munin request: args are the plug-in name and an optional
// command, getenv reads the environment and query reaches the collector.
// It writes the answer to stdout, problems to stderr, and returns the exit
// code. Config, fetch, autoconf and suggest answer (exit 0) even when the
// collector is down; only a bad invocation fails.
func Run(ctx context.Context, args []string, getenv func(string) string, query Query, stdout, stderr io.Writer) int {
	if len(args) == 1 && (args[0] == "-h" || args[0] == "--help") {
		fmt.Fprint(stdout, Usage)
		return 0
	}
	if len(args) == 0 || len(args) > 2 {
		fmt.Fprint(stderr, Usage)
		return 1
	}
	kind, label, err := ParseName(args[0])
	if err != nil {
		fmt.Fprintf(stderr, "gstats-munin: %v\n", err)
		return 1
	}
	name := kind.Base() + label
	warn := func(format string, a ...any) {
		fmt.Fprintf(stderr, "%s: %s\n", name, fmt.Sprintf(format, a...))
	}
	cmd := ""
	if len(args) == 2 {
		cmd = args[1]
	}
	switch cmd {
	case "", "fetch", "config", "autoconf", "suggest":
	default:
		warn("unknown command %q", cmd)
		fmt.Fprint(stderr, Usage)
		return 1
	}
	if label == "" && (cmd == "" || cmd == "fetch" || cmd == "config") {
		warn("no label: link this plug-in as %s<label>, with a label that `%s suggest` prints", kind.Base(), kind.Base())
		return 1
	}

	addr := strings.TrimSpace(getenv(EnvAddress))
	if addr == "" {
		addr = DefaultAddress
	}
	timeout := DefaultTimeout
	if s := getenv(EnvTimeout); strings.TrimSpace(s) != "" {
		if timeout, err = ParseTimeout(s); err != nil {
			warn("env.%s: %v; using %s", EnvTimeout, err, DefaultTimeout)
			timeout = DefaultTimeout
		}
	}
	var opts Options
	if kind == Latency {
		if s := getenv(EnvPercentiles); strings.TrimSpace(s) != "" {
			if opts.Percentiles, err = ParsePercentiles(s); err != nil {
				warn("env.%s: %v; using the defaults", EnvPercentiles, err)
			}
		}
	}

	target := Target{Address: addr, Timeout: timeout}
	var stats Stats
	if target.Curve, err = CurveSettings(getenv); err == nil {
		stats, err = fetchStats(ctx, query, target)
	}
	switch cmd {
	case "autoconf":
		if err != nil {
			fmt.Fprintf(stdout, "no (%s)\n", oneLine(err.Error()))
		} else {
			fmt.Fprintln(stdout, "yes")
		}
		return 0
	case "suggest":
		if err != nil {
			warn("%v", err)
			return 0
		}
		for _, l := range Labels(stats.Prefixes()) {
			fmt.Fprintln(stdout, l)
		}
		return 0
	}
	if err != nil {
		warn("%v", err)
	}
	var p *PrefixStats
	title := label
	if prefix, ok := Match(label, stats.Prefixes()); ok {
		p, title = stats[prefix], prefix
	} else if err == nil {
		warn("no prefix with label %q at %s; it has %s", label, addr, describe(stats))
	}
	if cmd == "config" {
		fmt.Fprint(stdout, Config(kind, title, opts))
		if getenv(EnvDirtyConfig) != "1" {
			return 0
		}
	}
	fmt.Fprint(stdout, Fetch(kind, p, opts))
	return 0
}

// fetchStats asks the collector for STATS and parses the reply.
func fetchStats(ctx context.Context, query Query, t Target) (Stats, error) {
	reply, err := query(ctx, t)
	if err != nil {
		// The error names the command and the address.
		return nil, err
	}
	stats, err := ParseStats(reply)
	if err != nil {
		return nil, fmt.Errorf("STATS from %s: %w", t.Address, err)
	}
	return stats, nil
}

// describe lists the labels a reply has, for a message about a label that
// matched none.
func describe(s Stats) string {
	labels := Labels(s.Prefixes())
	if len(labels) == 0 {
		return "no prefix yet"
	}
	const most = 10
	if len(labels) > most {
		return fmt.Sprintf("labels %s and %d more", strings.Join(labels[:most], ", "), len(labels)-most)
	}
	return "labels " + strings.Join(labels, ", ")
}

// oneLine joins the lines of s, for answers munin reads line by line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
