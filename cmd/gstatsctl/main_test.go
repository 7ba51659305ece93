package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/influxdata/telegraf/testutil"

	"github.com/gstats/gstats/internal/golden"
	"github.com/gstats/gstats/internal/version"
	"github.com/gstats/gstats/plugins/inputs/gstats"
	"github.com/gstats/gstats/wire"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// feedTimeout bounds the wait for pushed messages to be counted.
const feedTimeout = 30 * time.Second

// liveTimeout is the --timeout of the requests to a collector that answers:
// it bounds a hang, not a latency, so it is far above gstatsctl's default
// (3s), which a loaded machine running the race detector can exceed.
const liveTimeout = "30s"

// collector is an in-process gstats plugin on ephemeral loopback ports.
type collector struct {
	g           *gstats.Gstats
	stats, comm string
	sent        int64       // messages pushed so far
	push        *zmq.Socket // the PUSH socket feed uses
}

// startCollector starts the plugin; edit, if not nil, adjusts it before
// Init. It is stopped at cleanup.
func startCollector(t *testing.T, edit func(*gstats.Gstats)) *collector {
	t.Helper()
	g := gstats.New()
	g.StatsAddress = "tcp://127.0.0.1:*"
	g.CommAddress = "tcp://127.0.0.1:*"
	g.Log = testutil.Logger{Name: "inputs.gstats"}
	if edit != nil {
		edit(g)
	}
	if err := g.Init(); err != nil {
		t.Fatalf("Init: %v", err)
	}
	if err := g.Start(&testutil.Accumulator{}); err != nil {
		t.Fatalf("Start: %v (gstats needs libzmq: apt-get install libzmq3-dev pkg-config)", err)
	}
	t.Cleanup(g.Stop)
	c := &collector{g: g}
	c.stats, c.comm = g.Endpoints()
	return c
}

// processed is the number of messages the plugin has accepted or rejected,
// read through Gather so that no control request is counted.
func (c *collector) processed(t *testing.T) int64 {
	t.Helper()
	var acc testutil.Accumulator
	if err := c.g.Gather(&acc); err != nil {
		t.Fatalf("Gather: %v", err)
	}
	m, ok := acc.Get("gstats_internal")
	if !ok {
		t.Fatal("Gather emitted no gstats_internal metric")
	}
	return m.Fields["accepted"].(int64) + m.Fields["rejected"].(int64)
}

// feed pushes msgs (each a list of frames) in order and waits until the
// plugin has processed all of them. The PUSH socket stays connected until
// cleanup, so INFO never counts its disconnection.
func (c *collector) feed(t *testing.T, msgs ...[]string) {
	t.Helper()
	if c.push == nil {
		s, err := zmq.NewSocket(zmq.PUSH)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		if err := s.SetLinger(0); err != nil {
			t.Fatal(err)
		}
		if err := s.Connect(c.stats); err != nil {
			t.Fatal(err)
		}
		c.push = s
	}
	s := c.push
	for _, m := range msgs {
		frames := make([]any, len(m))
		for i, f := range m {
			frames[i] = f
		}
		if _, err := s.SendMessage(frames...); err != nil {
			t.Fatalf("pushing %q: %v", m, err)
		}
	}
	c.sent += int64(len(msgs))
	deadline := time.Now().Add(feedTimeout)
	for c.processed(t) < c.sent {
		if time.Now().After(deadline) {
			t.Fatalf("the collector processed %d of %d messages within %s", c.processed(t), c.sent, feedTimeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// ctl runs gstatsctl in-process with "{comm}" in args replaced by the
// collector's control endpoint, in an empty environment.
func ctl(t *testing.T, comm string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return ctlEnv(t, nil, comm, args...)
}

// ctlLive is ctl for a collector that answers: --timeout liveTimeout comes
// first, so that a later --timeout in args still overrides it.
func ctlLive(t *testing.T, comm string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return ctlEnv(t, nil, comm, append([]string{"--timeout", liveTimeout}, args...)...)
}

// ctlEnv is ctl with env as the environment.
func ctlEnv(t *testing.T, env map[string]string, comm string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	args = append([]string(nil), args...)
	for i, a := range args {
		args[i] = strings.ReplaceAll(a, "{comm}", comm)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // bounds a hang
	defer cancel()
	var out, errb bytes.Buffer
	code = run(ctx, args, func(k string) string { return env[k] }, &out, &errb)
	return code, out.String(), errb.String()
}

// traffic is the deterministic traffic behind the golden files. "api"
// finishes 2, 4, 4, 4, 5, 5, 7, 9 ms (mean 5, population std 2) of 10
// starts; "größe" (5 runes, 7 bytes) finishes 100 and 300 ms (mean 200, std
// 100) of 3 starts. One message is malformed and rejected.
func traffic() [][]string {
	var msgs [][]string
	for range 10 {
		msgs = append(msgs, []string{"api", ""})
	}
	for i, ms := range []string{"2", "4", "4", "4", "5", "5", "7", "9"} {
		switch i % 3 {
		case 0:
			msgs = append(msgs, []string{"api", ms, "200"})
		case 1:
			msgs = append(msgs, []string{"api", ms})
		default:
			msgs = append(msgs, []string{"api", ms, "503"})
		}
	}
	for range 3 {
		msgs = append(msgs, []string{"größe", ""})
	}
	msgs = append(msgs, []string{"größe", "100", "404"}, []string{"größe", "300", "302"})
	msgs = append(msgs, []string{"api", "abc"}) // bad_duration
	return msgs
}

// slotOf is the index of the window slot of g that holds instant at: the
// window's slots are aligned on multiples of their width since the Unix
// epoch.
func slotOf(g *gstats.Gstats, at time.Time) int64 {
	width := time.Duration(g.Window) / time.Duration(g.WindowSlots)
	return at.UnixNano() / int64(width)
}

// goldenAttempts bounds the tries at feeding the golden traffic within one
// window slot.
const goldenAttempts = 5

// feedInOneSlot starts a collector and feeds it the golden traffic so that
// all of it lands in the same window slot, and its floating-point sums are
// always computed in the same order. It does not assume the feed takes less
// than some time (a loaded machine can take seconds): it checks afterwards
// that the feed began and ended in the same slot and, if not, starts over
// with a new collector, up to goldenAttempts times (each slot is 10s wide,
// so a retry is rare and a second one rarer still).
func feedInOneSlot(t *testing.T) *collector {
	t.Helper()
	for attempt := 1; ; attempt++ {
		c := startCollector(t, nil)
		// Start at least a second from the slot's end: most feeds then
		// need no retry.
		width := time.Duration(c.g.Window) / time.Duration(c.g.WindowSlots)
		if now := time.Now(); now.Truncate(width).Add(width).Sub(now) < time.Second {
			time.Sleep(time.Until(now.Truncate(width).Add(width)) + 10*time.Millisecond)
		}
		first := slotOf(c.g, time.Now())
		c.feed(t, traffic()...) // returns once every message is processed
		if slotOf(c.g, time.Now()) == first {
			return c
		}
		if attempt == goldenAttempts {
			t.Fatalf("the golden traffic straddled a window slot edge %d times in a row (slots of %s)", attempt, width)
		}
		t.Logf("the golden traffic straddled a window slot edge (slots of %s); starting over", width)
		c.g.Stop()
	}
}

// mask replaces each match of re in s by repl after checking it with ok.
func mask(t *testing.T, s string, re *regexp.Regexp, repl string, ok func(match []string) error) string {
	t.Helper()
	n := 0
	out := re.ReplaceAllStringFunc(s, func(m string) string {
		n++
		if err := ok(re.FindStringSubmatch(m)); err != nil {
			t.Errorf("%q: %v", m, err)
		}
		return repl
	})
	if n == 0 {
		t.Errorf("nothing matches %s in:\n%s", re, s)
	}
	return out
}

// checkRate accepts a rate between 0 and count per second: count durations
// over at least the one second the window assumes.
func checkRate(count float64) func([]string) error {
	return func(m []string) error {
		r, err := strconv.ParseFloat(m[1], 64)
		if err != nil || r <= 0 || r > count {
			return fmt.Errorf("rate %q is not in (0, %v]", m[1], count)
		}
		return nil
	}
}

var (
	rateTextRE = regexp.MustCompile(`rate=([^/]+)/s`)
	rateJSONRE = regexp.MustCompile(`"rate":([^,}]+)`)
	startedRE  = regexp.MustCompile(`(?m)^started: (\S+) \(up (\S+)\)$`)
)

func TestGolden(t *testing.T) {
	tests := []struct {
		name string
		args []string
		// scrub masks what varies from run to run, checking it first.
		scrub func(t *testing.T, c *collector, out string) string
	}{
		{name: "stats", args: []string{"-c", "{comm}", "stats"}},
		{name: "stats_verbose", args: []string{"-c", "{comm}", "stats", "-v"}, scrub: func(t *testing.T, _ *collector, out string) string {
			return mask(t, out, rateTextRE, "rate=RATE/s", checkRate(8))
		}},
		{name: "rtimes_api", args: []string{"-c", "{comm}", "rtimes", "api"}},
		{name: "rtimes_grosse", args: []string{"-c", "{comm}", "rtimes", "größe"}},
		{name: "json_stats", args: []string{"--json", "-c", "{comm}", "stats"}, scrub: func(t *testing.T, _ *collector, out string) string {
			return mask(t, out, rateJSONRE, `"rate":RATE`, checkRate(8))
		}},
		{name: "info", args: []string{"-c", "{comm}", "info"}, scrub: func(t *testing.T, c *collector, out string) string {
			out = mask(t, out, startedRE, "started: STARTED (up UPTIME)", func(m []string) error {
				at, err := time.Parse(time.RFC3339, m[1])
				if err != nil {
					return err
				}
				// A bound on a hang (the collector started with this
				// test case), not on how fast a loaded machine runs.
				if age := time.Since(at); age < -time.Second || age > 5*time.Minute {
					return fmt.Errorf("started %s ago, want within the last 5 minutes", age)
				}
				if _, err := time.ParseDuration(m[2]); err != nil {
					return err
				}
				return nil
			})
			out = mask(t, out, regexp.MustCompile(`(?m)^stats address: (.*)$`), "stats address: STATS_ADDRESS", func(m []string) error {
				if m[1] != c.stats {
					return fmt.Errorf("stats address %q, want %q", m[1], c.stats)
				}
				return nil
			})
			return mask(t, out, regexp.MustCompile(`(?m)^comm address: (.*)$`), "comm address: COMM_ADDRESS", func(m []string) error {
				if m[1] != c.comm {
					return fmt.Errorf("comm address %q, want %q", m[1], c.comm)
				}
				return nil
			})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A collector per case, so INFO's request counters are exact.
			c := feedInOneSlot(t)
			code, stdout, stderr := ctlLive(t, c.comm, tt.args...)
			if code != exitOK || stderr != "" {
				t.Fatalf("gstatsctl %q: exit %d, stderr %q; want 0 and nothing", tt.args, code, stderr)
			}
			if tt.scrub != nil {
				stdout = tt.scrub(t, c, stdout)
			}
			golden.Check(t, tt.name+".golden", stdout, *update)
		})
	}
}

// TestStatsUnderline checks the underline counts runes, not bytes, and that
// every block ends with a blank line.
func TestStatsUnderline(t *testing.T) {
	c := startCollector(t, nil)
	prefixes := []string{"a", "größe", "日本語のアプリ", "x_y-z.0"}
	var msgs [][]string
	for _, p := range prefixes {
		msgs = append(msgs, []string{p, ""})
	}
	c.feed(t, msgs...)
	code, stdout, stderr := ctlLive(t, c.comm, "-c", "{comm}", "stats")
	if code != exitOK {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	blocks := strings.Split(strings.TrimSuffix(stdout, "\n\n"), "\n\n")
	if len(blocks) != len(prefixes) {
		t.Fatalf("%d blocks, want %d:\n%s", len(blocks), len(prefixes), stdout)
	}
	for _, b := range blocks {
		lines := strings.Split(b, "\n")
		if len(lines) != 4 {
			t.Errorf("block has %d lines, want 4:\n%s", len(lines), b)
			continue
		}
		if want := strings.Repeat("=", len([]rune(lines[0]))); lines[1] != want {
			t.Errorf("underline of %q is %q, want %q", lines[0], lines[1], want)
		}
		if want := "Requests: started=1, finished=0, processing=1"; lines[2] != want {
			t.Errorf("%q: %q, want %q", lines[0], lines[2], want)
		}
		if want := "Response time: average=0.0, stdev=0.0"; lines[3] != want {
			t.Errorf("%q: %q, want %q", lines[0], lines[3], want)
		}
	}
}

func TestExitCodes(t *testing.T) {
	c := startCollector(t, nil)
	c.feed(t, []string{"api", ""}, []string{"api", "12"})
	const apiBlock = "api\n===\nRequests: started=1, finished=1, processing=0\nResponse time: average=12.0, stdev=0.0\n\n"
	usage := "Usage: gstatsctl [OPTIONS] <quit|reset|rtimes|stats|info|keygen>"
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string   // exact, unless stdoutHas is set
		stdoutHas  []string // substrings of stdout
		stderrHas  []string // substrings of stderr; nil means stderr is empty
	}{
		{name: "no command", args: []string{"-c", "{comm}"}, wantCode: exitUsage, stderrHas: []string{usage, "Commands:"}},
		{name: "unknown command", args: []string{"-c", "{comm}", "bogus"}, wantCode: exitUsage, stderrHas: []string{`unknown command "bogus"`, usage}},
		{name: "rtimes without prefix", args: []string{"-c", "{comm}", "rtimes"}, wantCode: exitArity, stderrHas: []string{"Usage: gstatsctl [OPTIONS] rtimes PREFIX\n"}},
		{name: "rtimes with two prefixes", args: []string{"-c", "{comm}", "rtimes", "a", "b"}, wantCode: exitArity, stderrHas: []string{"Usage: gstatsctl [OPTIONS] rtimes PREFIX\n"}},
		{name: "stats extra", args: []string{"-c", "{comm}", "stats", "extra"}, wantCode: exitArity, stderrHas: []string{"Usage: gstatsctl [OPTIONS] stats\n"}},
		{name: "rtimes unknown prefix", args: []string{"-c", "{comm}", "rtimes", "nope"}, wantCode: exitUsage, stderrHas: []string{`no prefix "nope"`, "known: api"}},
		{name: "rtimes", args: []string{"-c", "{comm}", "rtimes", "api"}, wantCode: exitOK, wantStdout: "12.0\n"},
		{name: "stats", args: []string{"-c", "{comm}", "stats"}, wantCode: exitOK, wantStdout: apiBlock},
		{name: "upper-case command", args: []string{"-c", "{comm}", "STATS"}, wantCode: exitOK, wantStdout: apiBlock},
		{name: "mixed-case command", args: []string{"-c", "{comm}", "Stats"}, wantCode: exitOK, wantStdout: apiBlock},
		{name: "option after the command", args: []string{"stats", "-c", "{comm}"}, wantCode: exitOK, wantStdout: apiBlock},
		{name: "-cADDR", args: []string{"-c{comm}", "stats"}, wantCode: exitOK, wantStdout: apiBlock},
		{name: "-c=ADDR", args: []string{"-c={comm}", "stats"}, wantCode: exitOK, wantStdout: apiBlock},
		{name: "--comm-address=ADDR", args: []string{"--comm-address={comm}", "stats"}, wantCode: exitOK, wantStdout: apiBlock},
		{name: "--comm-address ADDR after", args: []string{"stats", "--comm-address", "{comm}", "--timeout", "29s"}, wantCode: exitOK, wantStdout: apiBlock},
		{name: "json", args: []string{"stats", "--json", "-c", "{comm}"}, wantCode: exitOK, stdoutHas: []string{`{"api":{"started":1,"finished":1,"processing_time":{"avg":12.0,"std":0.0,`}},
		{name: "info", args: []string{"-c", "{comm}", "info"}, wantCode: exitOK, stdoutHas: []string{"version: " + version.Version + "\n", "window: 10m0s in 60 slots\n"}},
		{name: "quit refused inside telegraf", args: []string{"-c", "{comm}", "quit"}, wantCode: exitUsage, stderrHas: []string{"answered ERROR to QUIT"}},
		{name: "-h", args: []string{"-h"}, wantCode: exitOK, stdoutHas: []string{usage, "rtimes PREFIX", "--timeout=DURATION",
			"--curve-server-key=KEY|FILE", "--curve-key=FILE", "[$GSTATS_CURVE_SERVER_KEY]", "[$GSTATS_CURVE_CLIENT_KEY]", "keygen NAME"}},
		{name: "keygen without NAME", args: []string{"keygen"}, wantCode: exitArity, stderrHas: []string{"Usage: gstatsctl keygen NAME\n"}},
		{name: "keygen with two NAMEs", args: []string{"keygen", "a", "b"}, wantCode: exitArity, stderrHas: []string{"Usage: gstatsctl keygen NAME\n"}},
		{name: "version", args: []string{"--version"}, wantCode: exitOK, wantStdout: "gstatsctl " + version.Version + "\n"},
		{name: "unknown option", args: []string{"--bogus", "stats"}, wantCode: exitArity, stderrHas: []string{"flag provided but not defined: -bogus", usage}},
		{name: "zero timeout", args: []string{"--timeout", "0s", "stats"}, wantCode: exitArity, stderrHas: []string{"--timeout must be positive"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := ctlLive(t, c.comm, tt.args...)
			if code != tt.wantCode {
				t.Errorf("gstatsctl %q exit code %d, want %d; stderr:\n%s", tt.args, code, tt.wantCode, stderr)
			}
			if tt.stdoutHas == nil && stdout != tt.wantStdout {
				t.Errorf("stdout:\n%q\nwant:\n%q", stdout, tt.wantStdout)
			}
			for _, want := range tt.stdoutHas {
				if !strings.Contains(stdout, want) {
					t.Errorf("stdout lacks %q:\n%s", want, stdout)
				}
			}
			if tt.stderrHas == nil && stderr != "" {
				t.Errorf("stderr = %q, want nothing", stderr)
			}
			for _, want := range tt.stderrHas {
				if !strings.Contains(stderr, strings.ReplaceAll(want, "{comm}", c.comm)) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr)
				}
			}
		})
	}
}

func TestReset(t *testing.T) {
	c := startCollector(t, nil)
	c.feed(t, []string{"api", ""}, []string{"api", "12"})
	code, stdout, stderr := ctlLive(t, c.comm, "-c", "{comm}", "reset")
	if code != exitOK || stdout != "" || stderr != "" {
		t.Fatalf("reset: exit %d, stdout %q, stderr %q; want 0 and nothing", code, stdout, stderr)
	}
	r, err := wire.NewClient(wire.ClientOptions{Address: c.comm, Timeout: 30 * time.Second}).Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(r) != 0 {
		t.Errorf("STATS after reset = %+v, want {}", r)
	}
	code, stdout, _ = ctlLive(t, c.comm, "-c", "{comm}", "stats")
	if code != exitOK || stdout != "" {
		t.Errorf("stats after reset: exit %d, stdout %q; want 0 and nothing", code, stdout)
	}
}

func TestQuit(t *testing.T) {
	called := make(chan struct{})
	c := startCollector(t, func(g *gstats.Gstats) {
		g.SetQuitHandler(func() { close(called) })
	})
	code, stdout, stderr := ctlLive(t, c.comm, "quit", "-c", "{comm}")
	if code != exitOK || stdout != "" || stderr != "" {
		t.Fatalf("quit: exit %d, stdout %q, stderr %q; want 0 and nothing", code, stdout, stderr)
	}
	select {
	case <-called:
	case <-time.After(30 * time.Second): // bounds a hang
		t.Fatal("the quit handler was not called")
	}
}

// deadAddress is a loopback endpoint nothing listens on: its port stays
// bound, without listening, until the test ends, so no other test's socket
// can take it meanwhile and connections to it are refused.
func deadAddress(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("tcp://127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
}

func TestUnreachable(t *testing.T) {
	tests := []struct {
		name    string
		args    []string // {comm} is the dead address
		timeout time.Duration
	}{
		{"--timeout 300ms", []string{"--timeout", "300ms", "-c", "{comm}", "stats"}, 300 * time.Millisecond},
		{"--timeout=1s after the command", []string{"-c", "{comm}", "stats", "--timeout=1s"}, time.Second},
		{"default timeout", []string{"-c", "{comm}", "stats"}, wire.DefaultTimeout},
	}
	// gstatsctl must wait the whole timeout (it may not give up early)
	// and then give up: the upper bound catches a hang, not a slow
	// machine, so it is far above the timeout.
	const hang = 30 * time.Second
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			addr := deadAddress(t)
			t0 := time.Now()
			code, stdout, stderr := ctl(t, addr, tt.args...)
			took := time.Since(t0)
			if code != exitUnreachable {
				t.Errorf("gstatsctl %q exit code %d, want %d", tt.args, code, exitUnreachable)
			}
			if took < tt.timeout || took > tt.timeout+hang {
				t.Errorf("gstatsctl %q gave up after %s, want %s (+%s at most)", tt.args, took, tt.timeout, hang)
			}
			if stdout != "" {
				t.Errorf("stdout = %q, want nothing", stdout)
			}
			for _, want := range []string{addr, "no reply", tt.timeout.String(), "is gstats-collectd running"} {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr lacks %q: %s", want, stderr)
				}
			}
		})
	}
}

func TestInterleave(t *testing.T) {
	tests := []struct {
		in, want []string
	}{
		{[]string{"stats"}, []string{"--", "stats"}},
		{[]string{"-c", "A", "stats"}, []string{"-c", "A", "--", "stats"}},
		{[]string{"stats", "-c", "A"}, []string{"-c", "A", "--", "stats"}},
		{[]string{"stats", "-cA"}, []string{"-c", "A", "--", "stats"}},
		{[]string{"stats", "-c=A"}, []string{"-c=A", "--", "stats"}},
		{[]string{"rtimes", "--timeout", "1s", "p", "-v"}, []string{"--timeout", "1s", "-v", "--", "rtimes", "p"}},
		{[]string{"--comm-address", "A", "rtimes", "--", "-p"}, []string{"--comm-address", "A", "--", "rtimes", "-p"}},
		{[]string{"-comm-address=A", "info"}, []string{"-comm-address=A", "--", "info"}},
		{[]string{"stats", "--curve-key", "F", "--curve-server-key", "K"}, []string{"--curve-key", "F", "--curve-server-key", "K", "--", "stats"}},
		{[]string{"--curve-key=F", "stats", "-curve-server-key=K"}, []string{"--curve-key=F", "-curve-server-key=K", "--", "stats"}},
		{[]string{"-curve-key", "F", "stats", "-cA"}, []string{"-curve-key", "F", "-c", "A", "--", "stats"}},
		{[]string{"keygen", "-v", "-name"}, []string{"-v", "-name", "--", "keygen"}},
	}
	for _, tt := range tests {
		if got := interleave(tt.in); fmt.Sprintf("%q", got) != fmt.Sprintf("%q", tt.want) {
			t.Errorf("interleave(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
