package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/gstats/gstats/internal/testbin"
	"github.com/gstats/gstats/internal/testport"
	"github.com/gstats/gstats/internal/version"
	"github.com/gstats/gstats/plugins/inputs/gstats"
	"github.com/gstats/gstats/wire"
)

// Bounds of the integration tests. They are generous because the binaries
// run under the race detector when the tests do.
const (
	startTimeout = 30 * time.Second // from exec to the "listening" log line
	exitTimeout  = 30 * time.Second // from a stop request to the exit
	pollTimeout  = 30 * time.Second // for a STATS reply to show what was pushed
	buildTimeout = 10 * time.Minute
	ctlTimeout   = 15 * time.Second // per control request
)

// bins are the binaries TestMain builds for the integration tests.
var bins testbin.Paths

// TestMain builds gstats-collectd and gstatsctl once into a temporary
// directory. With -short the integration tests are skipped and nothing is
// built.
func TestMain(m *testing.M) {
	os.Exit(testbin.Main(m, &bins))
}

func TestParseFlags(t *testing.T) {
	const addr = "tcp://127.0.0.1:5000"
	tests := []struct {
		name string
		args []string
		want options
		set  []string // the flags reported as given
	}{
		{"none", nil, options{logLevel: "info"}, nil},
		{"-s ADDR", []string{"-s", addr}, options{statsAddress: addr, logLevel: "info"}, []string{"s"}},
		{"--stats-address=ADDR", []string{"--stats-address=" + addr}, options{statsAddress: addr, logLevel: "info"}, []string{"stats-address"}},
		{"--stats-address ADDR", []string{"--stats-address", addr}, options{statsAddress: addr, logLevel: "info"}, []string{"stats-address"}},
		{"-sADDR", []string{"-s" + addr}, options{statsAddress: addr, logLevel: "info"}, []string{"s"}},
		{"-s=ADDR", []string{"-s=" + addr}, options{statsAddress: addr, logLevel: "info"}, []string{"s"}},
		{"-stats-address ADDR", []string{"-stats-address", addr}, options{statsAddress: addr, logLevel: "info"}, []string{"stats-address"}},
		{"-c ADDR", []string{"-c", addr}, options{commAddress: addr, logLevel: "info"}, []string{"c"}},
		{"-cADDR", []string{"-c" + addr}, options{commAddress: addr, logLevel: "info"}, []string{"c"}},
		{"--comm-address=ADDR", []string{"--comm-address=" + addr}, options{commAddress: addr, logLevel: "info"}, []string{"comm-address"}},
		{"-comm-address=ADDR", []string{"-comm-address=" + addr}, options{commAddress: addr, logLevel: "info"}, []string{"comm-address"}},
		{"-l 600", []string{"-l", "600"}, options{bufferLength: "600", logLevel: "info"}, []string{"l"}},
		{"-l600", []string{"-l600"}, options{bufferLength: "600", logLevel: "info"}, []string{"l"}},
		{"--buffer-length=1.5", []string{"--buffer-length=1.5"}, options{bufferLength: "1.5", logLevel: "info"}, []string{"buffer-length"}},
		{"--buffer-length 10m", []string{"--buffer-length", "10m"}, options{bufferLength: "10m", logLevel: "info"}, []string{"buffer-length"}},
		{"--config FILE", []string{"--config", "/etc/gstats.conf"}, options{configFile: "/etc/gstats.conf", logLevel: "info"}, []string{"config"}},
		// One-dash long options start with a value-taking letter; they must
		// not be split like -sADDR.
		{"-config=FILE", []string{"-config=/etc/gstats.conf"}, options{configFile: "/etc/gstats.conf", logLevel: "info"}, []string{"config"}},
		{"-log-level=debug", []string{"-log-level=debug"}, options{logLevel: "debug"}, []string{"log-level"}},
		{"-sample-config", []string{"-sample-config"}, options{sampleConfig: true, logLevel: "info"}, []string{"sample-config"}},
		{"--version", []string{"--version"}, options{version: true, logLevel: "info"}, []string{"version"}},
		{"--execd", []string{"--execd", "--config", "p.conf"}, options{execd: true, configFile: "p.conf", logLevel: "info"}, []string{"config", "execd"}},
		{"--poll-interval 0", []string{"--execd", "--poll-interval", "0"}, options{execd: true, pollInterval: -1, logLevel: "info"}, []string{"execd", "poll-interval"}},
		{"--poll-interval=1m", []string{"--execd", "--poll-interval=1m"}, options{execd: true, pollInterval: time.Minute, logLevel: "info"}, []string{"execd", "poll-interval"}},
		{
			"all three, mixed styles",
			[]string{"-stcp://127.0.0.2:7000", "--comm-address", addr, "-l", "60"},
			options{statsAddress: "tcp://127.0.0.2:7000", commAddress: addr, bufferLength: "60", logLevel: "info"},
			[]string{"comm-address", "l", "s"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			got, set, err := parseFlags(tt.args, &stdout, &stderr)
			if err != nil {
				t.Fatalf("parseFlags(%q): %v\nstderr: %s", tt.args, err, stderr.String())
			}
			switch tt.want.pollInterval {
			case 0: // the default
				tt.want.pollInterval = 10 * time.Second
			case -1: // given as 0
				tt.want.pollInterval = 0
			}
			if got != tt.want {
				t.Errorf("parseFlags(%q) = %+v, want %+v", tt.args, got, tt.want)
			}
			want := map[string]bool{}
			for _, name := range tt.set {
				want[name] = true
			}
			if fmt.Sprint(set) != fmt.Sprint(want) {
				t.Errorf("parseFlags(%q) reports %v given, want %v", tt.args, set, want)
			}
			if stdout.Len()+stderr.Len() > 0 {
				t.Errorf("parseFlags(%q) printed stdout %q, stderr %q; want nothing", tt.args, stdout.String(), stderr.String())
			}
		})
	}
}

func TestParseFlagsErrors(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantStderr []string
	}{
		{"unknown flag", []string{"--bogus"}, []string{"flag provided but not defined: -bogus", "Usage: gstats-collectd [options]"}},
		{"missing value", []string{"-s"}, []string{"flag needs an argument: -s", "Usage: gstats-collectd"}},
		{"positional argument", []string{"-s", "tcp://127.0.0.1:5000", "extra"}, []string{`unexpected argument "extra"`, "Usage: gstats-collectd"}},
		{"after --", []string{"--", "-stcp://127.0.0.1:5000"}, []string{`unexpected argument "-stcp://127.0.0.1:5000"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			_, _, err := parseFlags(tt.args, &stdout, &stderr)
			if err == nil || errors.Is(err, flag.ErrHelp) {
				t.Fatalf("parseFlags(%q) error = %v, want a usage error", tt.args, err)
			}
			for _, want := range tt.wantStderr {
				if !strings.Contains(stderr.String(), want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
				}
			}
			if stdout.Len() > 0 {
				t.Errorf("stdout = %q, want nothing", stdout.String())
			}
		})
	}
}

func TestSplitShort(t *testing.T) {
	long := map[string]bool{"stats-address": true, "comm-address": true, "buffer-length": true, "config": true, "log-level": true, "sample-config": true}
	tests := []struct {
		in, want []string
	}{
		{[]string{"-stcp://a:1"}, []string{"-s", "tcp://a:1"}},
		{[]string{"-ctcp://a:1", "-l600"}, []string{"-c", "tcp://a:1", "-l", "600"}},
		{[]string{"-s", "tcp://a:1"}, []string{"-s", "tcp://a:1"}},
		{[]string{"-s=tcp://a:1"}, []string{"-s=tcp://a:1"}},
		{[]string{"--stats-address=tcp://a:1"}, []string{"--stats-address=tcp://a:1"}},
		{[]string{"-stats-address=tcp://a:1"}, []string{"-stats-address=tcp://a:1"}},
		{[]string{"-config=f.conf", "-log-level", "debug", "-sample-config"}, []string{"-config=f.conf", "-log-level", "debug", "-sample-config"}},
		{[]string{"-x1"}, []string{"-x1"}},
		{[]string{"--", "-stcp://a:1"}, []string{"--", "-stcp://a:1"}},
		{nil, []string{}},
	}
	for _, tt := range tests {
		if got := splitShort(tt.in, "scl", long); fmt.Sprintf("%q", got) != fmt.Sprintf("%q", tt.want) {
			t.Errorf("splitShort(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParseLength(t *testing.T) {
	ok := []struct {
		in   string
		want time.Duration
	}{
		{"600", 600 * time.Second},
		{"1.5", 1500 * time.Millisecond},
		{"0.001", time.Millisecond},
		{"10m", 10 * time.Minute},
		{"1h30m", 90 * time.Minute},
		{"250ms", 250 * time.Millisecond},
	}
	for _, tt := range ok {
		got, err := parseLength(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("parseLength(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	for _, in := range []string{"0", "-5", "0s", "-1m", "abc", "", "NaN", "inf", "-Inf", "1e30", "1e400", "1e-12"} {
		if got, err := parseLength(in); err == nil {
			t.Errorf("parseLength(%q) = %v, want an error", in, got)
		} else if !strings.Contains(err.Error(), "-l/--buffer-length") || !strings.Contains(err.Error(), strconv.Quote(in)) {
			t.Errorf("parseLength(%q) error %q does not name the flag and the value", in, err)
		}
	}
}

// TestRun covers the runs that stop before binding anything.
func TestRun(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantErr    string // "" for success; "usage" for a usageError
		wantStdout string // exact, unless contains is set
		contains   []string
		wantStderr []string
	}{
		{name: "version", args: []string{"--version"}, wantStdout: "gstats-collectd " + version.Version + "\n"},
		{name: "-h", args: []string{"-h"}, contains: []string{"Usage: gstats-collectd [options]", "-s ADDR, --stats-address=ADDR", "-c ADDR, --comm-address=ADDR", "-l LENGTH, --buffer-length=LENGTH", "[tcp://127.0.0.2:2345]", "SIGUSR1"}},
		{name: "--help", args: []string{"--help"}, contains: []string{"Usage: gstats-collectd [options]"}},
		{name: "sample config", args: []string{"--sample-config"}, wantStdout: gstats.New().SampleConfig()},
		{name: "unknown flag", args: []string{"--no-such-flag"}, wantErr: "usage", wantStderr: []string{"-no-such-flag", "Usage: gstats-collectd"}},
		{name: "extra argument", args: []string{"stats"}, wantErr: "usage", wantStderr: []string{`unexpected argument "stats"`}},
		{name: "-l 0", args: []string{"-l", "0"}, wantErr: `-l/--buffer-length must be a positive number of seconds`},
		{name: "-l abc", args: []string{"-l", "abc"}, wantErr: `-l/--buffer-length "abc" is not a positive number of seconds`},
		{name: "bad log level", args: []string{"--log-level", "loud"}, wantErr: `log level "loud"`},
		{name: "missing config", args: []string{"--config", "/nonexistent/gstats.conf"}, wantErr: "/nonexistent/gstats.conf"},
		{name: "host name", args: []string{"-s", "tcp://localhost:5555"}, wantErr: `invalid configuration: stats_address "tcp://localhost:5555"`},
		{name: "no transport", args: []string{"-c", "127.0.0.1:5555"}, wantErr: `comm_address "127.0.0.1:5555" has no transport`},
		{name: "pprof not loopback", args: []string{"--pprof-addr", "0.0.0.0:6060"}, wantErr: `--pprof-addr "0.0.0.0:6060": profiles are served on a loopback address only`},
		{name: "pprof no port", args: []string{"--pprof-addr", "127.0.0.1"}, wantErr: `--pprof-addr "127.0.0.1"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel() // nothing here may get as far as serving
			var stdout, stderr bytes.Buffer
			err := run(ctx, tt.args, &stdout, &stderr)
			switch tt.wantErr {
			case "":
				if err != nil {
					t.Fatalf("run(%q) = %v, want success; stderr:\n%s", tt.args, err, stderr.String())
				}
			case "usage":
				var u usageError
				if !errors.As(err, &u) {
					t.Fatalf("run(%q) = %v, want a usage error (exit 2)", tt.args, err)
				}
			default:
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("run(%q) = %v, want an error containing %q", tt.args, err, tt.wantErr)
				}
				var u usageError
				if errors.As(err, &u) {
					t.Errorf("run(%q) = %v is a usage error; want exit 1", tt.args, err)
				}
			}
			if tt.contains == nil && stdout.String() != tt.wantStdout {
				t.Errorf("stdout = %q, want %q", stdout.String(), tt.wantStdout)
			}
			for _, want := range tt.contains {
				if !strings.Contains(stdout.String(), want) {
					t.Errorf("stdout lacks %q:\n%s", want, stdout.String())
				}
			}
			for _, want := range tt.wantStderr {
				if !strings.Contains(stderr.String(), want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
				}
			}
			if tt.wantStderr == nil && stderr.Len() > 0 {
				t.Errorf("stderr = %q, want nothing", stderr.String())
			}
		})
	}
	if !strings.Contains(gstats.New().SampleConfig(), "[[inputs.gstats]]") {
		t.Error("the sample configuration has no [[inputs.gstats]] section")
	}
}

// daemon is a gstats-collectd process started by a test.
type daemon struct {
	cmd    *exec.Cmd
	stdout *testbin.Buffer
	stderr *testbin.Buffer
	done   chan struct{}  // closed once the process has exited
	stdin  io.WriteCloser // with launchWith(t, true, ...)
	// stats and comm are the bound endpoints, read from the log.
	stats, comm string
}

var (
	stoppedRE = regexp.MustCompile(`stopped in [^:]+: (\d+) messages accepted`)
	// finishedRE reads the finished field of a gstats line-protocol line.
	finishedRE = regexp.MustCompile(`[ ,]finished=(\d+)i`)
	// levelRE is the level prefix Telegraf's execd reads on stderr.
	levelRE = regexp.MustCompile(`^[EWIDT]! `)
)

// requireBinaries skips the integration tests under -short; otherwise
// TestMain has built the binaries.
func requireBinaries(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: runs the built binaries; run without -short")
	}
	if bins.Collectd == "" {
		t.Fatal("TestMain did not build gstats-collectd")
	}
}

// launch starts gstats-collectd with args and stdin on /dev/null. The
// process is killed at cleanup if it is still running.
func launch(t *testing.T, args ...string) *daemon {
	t.Helper()
	return launchWith(t, false, args...)
}

// launchWith is launch, with stdin a pipe (d.stdin) when pipe is set.
func launchWith(t *testing.T, pipe bool, args ...string) *daemon {
	t.Helper()
	requireBinaries(t)
	ctx, cancel := context.WithCancel(context.Background())
	d := &daemon{
		cmd:    exec.CommandContext(ctx, bins.Collectd, args...),
		stdout: &testbin.Buffer{},
		stderr: &testbin.Buffer{},
		done:   make(chan struct{}),
	}
	d.cmd.Stdin = nil // /dev/null: the daemon must not need a terminal
	if pipe {
		w, err := d.cmd.StdinPipe()
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		d.stdin = w
	}
	// A race-enabled binary sleeps a second before exiting by default.
	d.cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=100")
	d.cmd.Stdout = d.stdout
	d.cmd.Stderr = d.stderr
	d.cmd.WaitDelay = 5 * time.Second
	if err := d.cmd.Start(); err != nil {
		cancel()
		t.Fatalf("starting %s: %v", bins.Collectd, err)
	}
	go func() {
		_ = d.cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(func() {
		select {
		case <-d.done:
		default:
			_ = d.cmd.Process.Kill()
			<-d.done
		}
		cancel()
		if t.Failed() {
			t.Logf("gstats-collectd %q stderr:\n%s", args, d.stderr.String())
		}
	})
	return d
}

// startDaemon launches gstats-collectd and waits for its "listening" log
// line, which gives the bound endpoints.
func startDaemon(t *testing.T, args ...string) *daemon {
	t.Helper()
	return waitListening(t, launch(t, args...), args)
}

// waitListening waits for d's "listening" log line and records the bound
// endpoints; args name the run in failures.
func waitListening(t *testing.T, d *daemon, args []string) *daemon {
	t.Helper()
	deadline := time.Now().Add(startTimeout)
	for {
		if stats, comm, ok := testbin.Endpoints(d.stderr.String()); ok {
			d.stats, d.comm = stats, comm
			return d
		}
		select {
		case <-d.done:
			t.Fatalf("gstats-collectd %q exited with code %d before listening; stderr:\n%s", args, d.cmd.ProcessState.ExitCode(), d.stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("gstats-collectd %q did not log its endpoints within %s; stderr:\n%s", args, startTimeout, d.stderr.String())
		}
	}
}

// signal sends sig to the daemon.
func (d *daemon) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := d.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("sending %v to gstats-collectd: %v", sig, err)
	}
}

// wait waits for the daemon to exit and returns its exit code.
func (d *daemon) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-d.done:
		return d.cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		t.Fatalf("gstats-collectd did not exit within %s; stderr:\n%s", timeout, d.stderr.String())
		return -1
	}
}

// state describes the process for a failure message.
func (d *daemon) state() string {
	select {
	case <-d.done:
		return fmt.Sprintf("exit code %d", d.cmd.ProcessState.ExitCode())
	default:
		return "still running"
	}
}

// waitLog waits, within startTimeout, for text to appear in the daemon's
// stderr.
func (d *daemon) waitLog(t *testing.T, text string) {
	t.Helper()
	deadline := time.Now().Add(startTimeout)
	for !strings.Contains(d.stderr.String(), text) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q log line within %s:\n%s", text, startTimeout, d.stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// running reports whether the daemon has not exited.
func (d *daemon) running() bool {
	select {
	case <-d.done:
		return false
	default:
		return true
	}
}

// accepted reads the count of the final "stopped in ...: N messages
// accepted" log line.
func (d *daemon) accepted(t *testing.T) int {
	t.Helper()
	m := stoppedRE.FindStringSubmatch(d.stderr.String())
	if m == nil {
		t.Fatalf("no %q line in the log:\n%s", stoppedRE, d.stderr.String())
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// message is one ingest message: its frames.
type message []string

func start(prefix string) message { return message{prefix, ""} }

func finish(prefix string, ms int) message { return message{prefix, strconv.Itoa(ms)} }

// push sends msgs over a PUSH socket of its own context and returns once
// libzmq has handed them all to the kernel (the context's termination waits
// for the linger).
func push(t *testing.T, addr string, msgs ...message) {
	t.Helper()
	zctx, err := zmq.NewContext()
	if err != nil {
		t.Fatal(err)
	}
	s, err := zctx.NewSocket(zmq.PUSH)
	if err != nil {
		t.Fatal(err)
	}
	for _, set := range []func() error{
		// Bounds on a hang, not latencies: past the linger, libzmq would
		// drop what a slow (loaded) machine has not sent yet.
		func() error { return s.SetLinger(pollTimeout) },
		func() error { return s.SetSndhwm(0) }, // no limit: none may be dropped
		func() error { return s.SetSndtimeo(pollTimeout) },
		func() error { return s.Connect(addr) },
	} {
		if err := set(); err != nil {
			t.Fatalf("PUSH socket to %s: %v", addr, err)
		}
	}
	for _, m := range msgs {
		frames := make([]any, len(m))
		for i, f := range m {
			frames[i] = f
		}
		if _, err := s.SendMessage(frames...); err != nil {
			t.Fatalf("pushing %q to %s: %v", m, addr, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zctx.Term(); err != nil {
		t.Fatal(err)
	}
}

// pollStats asks STATS at comm until cond holds and returns that reply.
func pollStats(t *testing.T, comm string, cond func(wire.StatsReply) bool) wire.StatsReply {
	t.Helper()
	c := wire.NewClient(wire.ClientOptions{Address: comm, Timeout: ctlTimeout})
	deadline := time.Now().Add(pollTimeout)
	var last wire.StatsReply
	var lastErr error
	for time.Now().Before(deadline) {
		last, lastErr = c.Stats(context.Background())
		if lastErr == nil && cond(last) {
			return last
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("STATS at %s did not reach the expected state within %s; last reply %+v, error %v", comm, pollTimeout, last, lastErr)
	return nil
}

// burst is n start messages and n finish messages (1..n ms) for prefix.
func burst(prefix string, n int) []message {
	msgs := make([]message, 0, 2*n)
	for i := 1; i <= n; i++ {
		msgs = append(msgs, start(prefix), finish(prefix, i))
	}
	return msgs
}

// wildcard makes a daemon bind ephemeral loopback ports.
var wildcard = []string{"-s", "tcp://127.0.0.1:*", "-c", "tcp://127.0.0.1:*"}

func TestIntegrationPushAndStats(t *testing.T) {
	// The flags in two other spellings than the wildcard helper's.
	d := startDaemon(t, "--stats-address=tcp://127.0.0.1:*", "-ctcp://127.0.0.1:*", "-l", "60")
	for _, ep := range []string{d.stats, d.comm} {
		if !regexp.MustCompile(`^tcp://127\.0\.0\.1:\d+$`).MatchString(ep) {
			t.Fatalf("endpoint %q is not a resolved loopback port", ep)
		}
	}
	push(t, d.stats, start("app"), start("app"), start("app"), finish("app", 10), finish("app", 20), finish("app", 30), start(""))
	r := pollStats(t, d.comm, func(r wire.StatsReply) bool {
		return r["app"].Finished == 3 && r["default"].Started == 1
	})
	app := r["app"]
	if app.Started != 3 || app.Finished != 3 {
		t.Errorf("app: started=%d finished=%d, want 3 and 3", app.Started, app.Finished)
	}
	// avg 20, population std sqrt(200/3).
	if got := float64(app.ProcessingTime.Avg); math.Abs(got-20) > 1e-9 {
		t.Errorf("app avg = %v, want 20", got)
	}
	if got, want := float64(app.ProcessingTime.Std), math.Sqrt(200.0/3); math.Abs(got-want) > 1e-9 {
		t.Errorf("app std = %v, want %v", got, want)
	}
	info, err := wire.NewClient(wire.ClientOptions{Address: d.comm, Timeout: ctlTimeout}).Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.WindowSeconds != 60 || info.StatsAddress != d.stats || info.CommAddress != d.comm {
		t.Errorf("INFO = window %vs, stats %q, comm %q; want 60s, %q, %q", info.WindowSeconds, info.StatsAddress, info.CommAddress, d.stats, d.comm)
	}
	d.signal(t, syscall.SIGTERM)
	if code := d.wait(t, exitTimeout); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
	if got := d.accepted(t); got != 7 {
		t.Errorf("final log says %d messages accepted, want 7", got)
	}
}

func TestIntegrationPprof(t *testing.T) {
	d := startDaemon(t, append([]string{"--pprof-addr", "127.0.0.1:0"}, wildcard...)...)
	d.waitLog(t, "profiles served on http://")
	url := regexp.MustCompile(`http://127\.0\.0\.1:\d+/debug/pprof/`).FindString(d.stderr.String())
	if url == "" {
		t.Fatalf("no profile URL in the log:\n%s", d.stderr.String())
	}
	client := &http.Client{Timeout: pollTimeout} // bounds a hang
	for _, path := range []string{"cmdline", "goroutine?debug=1", "profile?seconds=1"} {
		resp, err := client.Get(url + path)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || len(body) == 0 {
			t.Errorf("GET %s: status %d, %d bytes, err %v", path, resp.StatusCode, len(body), err)
		}
		if path == "cmdline" && !strings.Contains(string(body), "--pprof-addr") {
			t.Errorf("cmdline = %q, want the daemon's own arguments", body)
		}
	}
	d.signal(t, syscall.SIGTERM)
	if code := d.wait(t, exitTimeout); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
}

func TestIntegrationStopSignals(t *testing.T) {
	const n = 1000 // start+finish pairs pushed right before the signal
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			d := startDaemon(t, wildcard...)
			push(t, d.stats, burst("sig", n)...)
			// push returns once libzmq has handed the messages to the
			// kernel, not once the daemon has read them: on a loaded
			// machine its I/O thread may still be reading when the
			// signal's final drain finds the socket quiet. The stop
			// processes what the daemon has received; wait until it has
			// received all of them, so that the count below is exact.
			pollStats(t, d.comm, func(r wire.StatsReply) bool { return r["sig"].Finished == n })
			d.signal(t, sig)
			t0 := time.Now()
			if code := d.wait(t, exitTimeout); code != 0 {
				t.Fatalf("exit code %d after %v, want 0; stderr:\n%s", code, sig, d.stderr.String())
			}
			t.Logf("exited %s after %v", time.Since(t0).Round(time.Millisecond), sig)
			if got := d.accepted(t); got != 2*n {
				t.Errorf("after %v the final log says %d messages accepted, want %d (pushed before the signal)", sig, got, 2*n)
			}
			if !strings.Contains(d.stderr.String(), "stop signal received") {
				t.Errorf("no stop-signal log line:\n%s", d.stderr.String())
			}
		})
	}
}

func TestIntegrationSIGUSR1Resets(t *testing.T) {
	d := startDaemon(t, wildcard...)
	push(t, d.stats, burst("before", 5)...)
	pollStats(t, d.comm, func(r wire.StatsReply) bool { return r["before"].Finished == 5 })

	d.signal(t, syscall.SIGUSR1)
	pollStats(t, d.comm, func(r wire.StatsReply) bool { return len(r) == 0 })
	if !d.running() {
		t.Fatalf("gstats-collectd exited after SIGUSR1; stderr:\n%s", d.stderr.String())
	}
	// The reset is logged after it is done: the line may come a moment
	// after STATS shows it.
	d.waitLog(t, "statistics reset by SIGUSR1")

	// It keeps collecting.
	push(t, d.stats, burst("after", 2)...)
	r := pollStats(t, d.comm, func(r wire.StatsReply) bool { return r["after"].Finished == 2 })
	if _, ok := r["before"]; ok {
		t.Errorf("prefix %q came back after the reset: %+v", "before", r)
	}
	d.signal(t, syscall.SIGTERM)
	if code := d.wait(t, exitTimeout); code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
}

func TestIntegrationQuitViaGstatsctl(t *testing.T) {
	d := startDaemon(t, wildcard...)
	ctx, cancel := context.WithTimeout(context.Background(), exitTimeout)
	defer cancel()
	// gstatsctl's default --timeout (3s) is a latency a loaded machine
	// running race-enabled binaries can exceed; this test is not about it.
	ctl := exec.CommandContext(ctx, bins.Ctl, "-c", d.comm, "--timeout", ctlTimeout.String(), "quit")
	var stdout, stderr bytes.Buffer
	ctl.Stdout, ctl.Stderr = &stdout, &stderr
	if err := ctl.Run(); err != nil {
		t.Fatalf("gstatsctl quit: %v; stderr: %s", err, stderr.String())
	}
	if stdout.Len()+stderr.Len() > 0 {
		t.Errorf("gstatsctl quit printed stdout %q, stderr %q; want nothing", stdout.String(), stderr.String())
	}
	if code := d.wait(t, exitTimeout); code != 0 {
		t.Errorf("gstats-collectd exit code %d after QUIT, want 0", code)
	}
	if !strings.Contains(d.stderr.String(), "QUIT received") {
		t.Errorf("no QUIT log line:\n%s", d.stderr.String())
	}
}

// writeConfig writes a config file into a test directory.
func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "gstats.conf")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestIntegrationConfigFile(t *testing.T) {
	t.Run("applied, flag overrides", func(t *testing.T) {
		// The file's stats_address cannot be bound (no such directory):
		// the daemon only starts if -s overrides it.
		unbindable := "ipc://" + filepath.Join(t.TempDir(), "missing", "stats.sock")
		path := writeConfig(t, fmt.Sprintf(`
[[inputs.gstats]]
  stats_address = %q
  comm_address = "tcp://127.0.0.1:*"
  window = "30s"
  window_slots = 10
  percentiles = [50.0, 99.9]
`, unbindable))
		d := startDaemon(t, "--config", path, "-s", "tcp://127.0.0.1:*")
		if !strings.HasPrefix(d.stats, "tcp://127.0.0.1:") {
			t.Fatalf("stats endpoint %q: -s did not override the file", d.stats)
		}
		if !strings.Contains(d.stderr.String(), "configuration loaded") || !strings.Contains(d.stderr.String(), path) {
			t.Errorf("no log line naming the loaded file:\n%s", d.stderr.String())
		}
		push(t, d.stats, burst("cfg", 10)...)
		pollStats(t, d.comm, func(r wire.StatsReply) bool { return r["cfg"].Finished == 10 })
		raw, err := wire.NewClient(wire.ClientOptions{Address: d.comm, Timeout: ctlTimeout}).Do(context.Background(), "STATS")
		if err != nil {
			t.Fatal(err)
		}
		for _, key := range []string{`"p50":`, `"p99.9":`} {
			if !bytes.Contains(raw, []byte(key)) {
				t.Errorf("STATS lacks %s: %s", key, raw)
			}
		}
		if bytes.Contains(raw, []byte(`"p90":`)) {
			t.Errorf("STATS has the default p90 though the file sets percentiles: %s", raw)
		}
		info, err := wire.NewClient(wire.ClientOptions{Address: d.comm, Timeout: ctlTimeout}).Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if info.WindowSeconds != 30 || info.WindowSlots != 10 {
			t.Errorf("INFO window = %vs in %d slots, want 30s in 10", info.WindowSeconds, info.WindowSlots)
		}
		d.signal(t, syscall.SIGTERM)
		if code := d.wait(t, exitTimeout); code != 0 {
			t.Errorf("exit code %d, want 0", code)
		}
	})

	errorCases := []struct {
		name string
		text string
		want []string // besides the file name
	}{
		{"unknown key", "[[inputs.gstats]]\n  windw = \"30s\"\n", []string{`"inputs.gstats.windw"`, "unknown key"}},
		{"bad value type", "[[inputs.gstats]]\n  window_slots = 10\n  percentiles = \"p99\"\n", []string{"line 3", "percentiles"}},
		{"bad syntax", "[[inputs.gstats]]\n  window = 30s\n", []string{"line 2"}},
	}
	for _, tt := range errorCases {
		t.Run(tt.name, func(t *testing.T) {
			path := writeConfig(t, tt.text)
			d := launch(t, "--config", path, "-s", "tcp://127.0.0.1:*", "-c", "tcp://127.0.0.1:*")
			if code := d.wait(t, exitTimeout); code != 1 {
				t.Errorf("exit code %d, want 1", code)
			}
			stderr := d.stderr.String()
			for _, want := range append([]string{path}, tt.want...) {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr)
				}
			}
			if strings.Contains(stderr, "listening") {
				t.Errorf("the daemon bound its sockets despite the bad file:\n%s", stderr)
			}
		})
	}
}

func TestIntegrationBindFailure(t *testing.T) {
	first := startDaemon(t, wildcard...)
	second := launch(t, "-s", first.stats, "-c", "tcp://127.0.0.1:*")
	if code := second.wait(t, exitTimeout); code != 1 {
		t.Errorf("second daemon exit code %d, want 1", code)
	}
	stderr := second.stderr.String()
	for _, want := range []string{"cannot bind stats socket", strconv.Quote(first.stats), "address already in use", "-s/--stats-address"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if !first.running() {
		t.Fatal("the first daemon exited")
	}
	first.signal(t, syscall.SIGTERM)
	if code := first.wait(t, exitTimeout); code != 0 {
		t.Errorf("first daemon exit code %d, want 0", code)
	}
}

// TestIntegrationDefaultAddresses is the one test that uses the default
// addresses: PULL on 127.0.0.2:2345 and REP on 127.0.0.1:2345, the same
// port on two loopback addresses.
func TestIntegrationDefaultAddresses(t *testing.T) {
	requireBinaries(t)
	// Every test (Go or Python) that binds the default addresses takes this
	// machine-wide lock first, so they never run beside each other.
	testport.Lock(t, "default-addresses", 2*time.Minute)
	d := launch(t)
	deadline := time.Now().Add(startTimeout)
	for {
		if _, _, ok := testbin.Endpoints(d.stderr.String()); ok {
			break
		}
		if !d.running() || time.Now().After(deadline) {
			t.Fatalf("gstats-collectd with no flags did not start (%s); it needs tcp://127.0.0.2:2345 and tcp://127.0.0.1:2345 free: is another gstats-collectd (or anything else) on port 2345? stderr:\n%s",
				d.state(), d.stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	stats, comm, _ := testbin.Endpoints(d.stderr.String())
	if stats != wire.DefaultStatsAddress || comm != wire.DefaultCommAddress {
		t.Fatalf("bound stats %q and control %q, want %q and %q", stats, comm, wire.DefaultStatsAddress, wire.DefaultCommAddress)
	}
	const prefix = "default_addresses"
	push(t, "tcp://127.0.0.2:2345", start(prefix), finish(prefix, 42))
	pollStats(t, "", func(r wire.StatsReply) bool { return r[prefix].Finished == 1 }) // "" is the default address

	ctx, cancel := context.WithTimeout(context.Background(), exitTimeout)
	defer cancel()
	ctl := exec.CommandContext(ctx, bins.Ctl, "--timeout", ctlTimeout.String(), "stats") // the default address
	var stdout, stderr bytes.Buffer
	ctl.Stdout, ctl.Stderr = &stdout, &stderr
	if err := ctl.Run(); err != nil {
		t.Fatalf("gstatsctl stats: %v; stderr: %s", err, stderr.String())
	}
	want := prefix + "\n" + strings.Repeat("=", len(prefix)) + "\nRequests: started=1, finished=1, processing=0\nResponse time: average=42.0, stdev=0.0\n"
	if !strings.Contains(stdout.String(), want) {
		t.Errorf("gstatsctl stats output lacks\n%s\ngot:\n%s", want, stdout.String())
	}
	d.signal(t, syscall.SIGTERM)
	if code := d.wait(t, exitTimeout); code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
}

// fdCount is the number of open file descriptors of pid.
func fdCount(t *testing.T, pid int) int {
	t.Helper()
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatalf("reading the daemon's fds: %v", err)
	}
	return len(entries)
}

func TestIntegrationFileDescriptors(t *testing.T) {
	const requests, slack = 200, 4
	d := startDaemon(t, wildcard...)
	push(t, d.stats, burst("fd", 3)...)
	pollStats(t, d.comm, func(r wire.StatsReply) bool { return r["fd"].Finished == 3 })
	before := fdCount(t, d.cmd.Process.Pid)

	c := wire.NewClient(wire.ClientOptions{Address: d.comm, Timeout: ctlTimeout})
	for i := range requests {
		if _, err := c.Stats(context.Background()); err != nil {
			t.Fatalf("STATS request %d: %v", i, err)
		}
	}
	// Closed peers are reaped asynchronously; wait for that, bounded.
	deadline := time.Now().Add(pollTimeout)
	after := fdCount(t, d.cmd.Process.Pid)
	for after > before+slack && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		after = fdCount(t, d.cmd.Process.Pid)
	}
	t.Logf("fds: %d before, %d after %d STATS requests", before, after, requests)
	if after > before+slack {
		t.Errorf("the daemon holds %d fds after %d STATS requests, %d before (slack %d)", after, requests, before, slack)
	}
	d.signal(t, syscall.SIGTERM)
	if code := d.wait(t, exitTimeout); code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
}

// startExecd runs gstats-collectd --execd with the plugin file text, stdin
// a pipe, and waits for its listening line.
func startExecd(t *testing.T, plugin string, args ...string) *daemon {
	t.Helper()
	args = append([]string{"--execd", "--config", writeConfig(t, plugin)}, args...)
	return waitListening(t, launchWith(t, true, args...), args)
}

// lastFinished is the finished field of the last gstats metric for prefix
// in line protocol, or -1.
func lastFinished(t *testing.T, lp, prefix string) int64 {
	t.Helper()
	last := int64(-1)
	for _, line := range strings.Split(lp, "\n") {
		if !strings.HasPrefix(line, "gstats,prefix="+prefix+" ") {
			continue
		}
		m := finishedRE.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("no finished field: %q", line)
		}
		last, _ = strconv.ParseInt(m[1], 10, 64)
	}
	return last
}

const execdPlugin = "[[inputs.gstats]]\n  stats_address = \"tcp://127.0.0.1:*\"\n  comm_address = \"tcp://127.0.0.1:*\"\n"

func TestIntegrationExecd(t *testing.T) {
	cases := []struct {
		name string
		stop func(*testing.T, *daemon)
	}{
		{"end of stdin", func(t *testing.T, d *daemon) {
			if err := d.stdin.Close(); err != nil {
				t.Fatal(err)
			}
		}},
		{"SIGTERM", func(t *testing.T, d *daemon) { d.signal(t, syscall.SIGTERM) }},
		{"SIGINT", func(t *testing.T, d *daemon) { d.signal(t, syscall.SIGINT) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := startExecd(t, execdPlugin, "--poll-interval", "0")
			push(t, d.stats, burst("x", 40)...)
			pollStats(t, d.comm, func(r wire.StatsReply) bool { return r["x"].Finished == 40 })

			// A line on stdin is Telegraf asking for a gather.
			if _, err := io.WriteString(d.stdin, "\n"); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(startTimeout)
			for lastFinished(t, d.stdout.String(), "x") != 40 {
				if time.Now().After(deadline) {
					t.Fatalf("no metric with finished=40 after a line on stdin; stdout:\n%s", d.stdout.String())
				}
				time.Sleep(10 * time.Millisecond)
			}

			// What arrives after the last gather is in the final one.
			push(t, d.stats, burst("x", 7)...)
			pollStats(t, d.comm, func(r wire.StatsReply) bool { return r["x"].Finished == 47 })
			tc.stop(t, d)
			if code := d.wait(t, exitTimeout); code != 0 {
				t.Fatalf("exit code %d, want 0; stderr:\n%s", code, d.stderr.String())
			}
			if got := lastFinished(t, d.stdout.String(), "x"); got != 47 {
				t.Errorf("final metric finished = %d, want 47; stdout:\n%s", got, d.stdout.String())
			}
			for _, line := range strings.Split(strings.TrimSpace(d.stderr.String()), "\n") {
				if !levelRE.MatchString(line) {
					t.Errorf("stderr line without a level prefix execd reads: %q", line)
				}
			}
		})
	}
}

func TestIntegrationExecdPollInterval(t *testing.T) {
	d := startExecd(t, execdPlugin, "--poll-interval", "100ms")
	push(t, d.stats, burst("p", 5)...)
	deadline := time.Now().Add(startTimeout)
	for lastFinished(t, d.stdout.String(), "p") != 5 {
		if time.Now().After(deadline) {
			t.Fatalf("no metric within %s with --poll-interval 100ms and nothing on stdin; stdout:\n%s", startTimeout, d.stdout.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// QUIT cannot stop a process Telegraf supervises.
	client := wire.NewClient(wire.ClientOptions{Address: d.comm, Timeout: startTimeout})
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := client.Quit(ctx); !errors.Is(err, wire.ErrCommandRefused) {
		t.Errorf("QUIT under --execd: %v, want refused", err)
	}
	if err := d.stdin.Close(); err != nil {
		t.Fatal(err)
	}
	if code := d.wait(t, exitTimeout); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}

func TestIntegrationExecdConfigErrors(t *testing.T) {
	cases := []struct {
		name, conf string
		args       []string
		want       string
	}{
		{"typo", "[[inputs.gstats]]\n  windw = 1\n", nil, `E! gstats-collectd: `},
		{"agent section", "[agent]\n  interval = \"1s\"\n[[inputs.gstats]]\n", nil, "E! gstats-collectd: "},
		{"poll interval without execd", "", []string{"--poll-interval", "1s"}, "--poll-interval needs --execd"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if tc.conf != "" {
				args = append([]string{"--execd", "--config", writeConfig(t, tc.conf)}, args...)
			}
			d := launch(t, args...)
			if code := d.wait(t, exitTimeout); code == 0 {
				t.Fatalf("exit code 0, want an error")
			}
			if !strings.Contains(d.stderr.String(), tc.want) {
				t.Errorf("stderr lacks %q:\n%s", tc.want, d.stderr.String())
			}
		})
	}
}
