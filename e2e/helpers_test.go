package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gstats/gstats/internal/testbin"
	"github.com/gstats/gstats/wire"
)

// Absolute paths of Debian's gunicorn and of the interpreter it runs on.
// python3 on PATH may be another interpreter without gunicorn or pyzmq.
const (
	gunicornPath = "/usr/bin/gunicorn"
	pythonPath   = "/usr/bin/python3"
	installHint  = "install with: apt-get install gunicorn python3-zmq"
)

// Bounds on the waits of these tests. They bound hangs: each wait polls
// for its condition and ends as soon as it holds, so they are set for a
// loaded machine (two cores, the race detector, other tests beside), not
// for the usual case.
const (
	buildTimeout   = 10 * time.Minute // a cold build compiles Telegraf's dependencies
	startTimeout   = 30 * time.Second // a program is up and answering
	settleTimeout  = 30 * time.Second // the collector has seen what was sent
	stopTimeout    = 30 * time.Second // a program exits after SIGTERM
	killTimeout    = 10 * time.Second // a program is gone after SIGKILL
	requestTimeout = 10 * time.Second // one HTTP request or control command
	pollInterval   = 20 * time.Millisecond
)

// bin holds the paths of the binaries TestMain builds.
var bin testbin.Paths

func TestMain(m *testing.M) {
	os.Exit(testbin.Main(m, &bin))
}

// integration skips t under -short; otherwise the test runs and anything
// missing is a failure.
func integration(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test; run without -short")
	}
}

var gunicornCheck = sync.OnceValue(func() error {
	if _, err := os.Stat(gunicornPath); err != nil {
		return fmt.Errorf("gunicorn not found: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, pythonPath, "-c", "import gunicorn, zmq").CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s cannot import gunicorn and zmq: %w\n%s", pythonPath, err, out)
	}
	return nil
})

// requireGunicorn fails t unless Debian's gunicorn and pyzmq are installed.
func requireGunicorn(t *testing.T) {
	t.Helper()
	if err := gunicornCheck(); err != nil {
		t.Fatalf("%v; %s", err, installHint)
	}
}

// process is a program started by a test, with its output in a log file.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed once Wait has returned
	err     error         // Wait's result, valid after done
}

// startProcess starts cmd with its stdout and stderr in a log file under
// t.TempDir(). With group set, the program leads a new process group, so
// that its children can be found and, as a last resort, killed.
func startProcess(t *testing.T, name string, cmd *exec.Cmd, group bool) *process {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("creating the log of %s: %v", name, err)
	}
	defer func() { _ = logFile.Close() }()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if group {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	p := &process{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p
}

// exited reports whether the program has exited.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// log returns what the program has written so far.
func (p *process) log() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(cannot read the log of %s: %v)", p.name, err)
	}
	return string(b)
}

// stop sends SIGTERM to the program (its PID only, never its group) and
// waits for it to exit; SIGKILL is the last resort. With group set, it
// then waits until no process of the group is left. It reports, as test
// errors, a program that did not exit cleanly or left processes behind.
func (p *process) stop(t *testing.T, group bool) {
	t.Helper()
	pid := p.cmd.Process.Pid
	if !p.exited() {
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			t.Errorf("sending SIGTERM to %s (pid %d): %v", p.name, pid, err)
		}
		select {
		case <-p.done:
		case <-time.After(stopTimeout):
			t.Errorf("%s (pid %d) still running %s after SIGTERM; killing it", p.name, pid, stopTimeout)
			p.kill(t, group)
		}
	}
	if p.err != nil {
		t.Errorf("%s (pid %d) did not exit cleanly: %v", p.name, pid, p.err)
	}
	if group && !waitGroupGone(pid, stopTimeout) {
		t.Errorf("processes of %s's group %d still running %s after it exited; killing them", p.name, pid, stopTimeout)
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		waitGroupGone(pid, killTimeout)
	}
	if t.Failed() {
		t.Logf("log of %s:\n%s", p.name, p.log())
	}
}

// kill sends SIGKILL to the program, or to its whole group, and waits
// (bounded) for it to exit.
func (p *process) kill(t *testing.T, group bool) {
	t.Helper()
	if group {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	} else {
		_ = p.cmd.Process.Kill()
	}
	select {
	case <-p.done:
	case <-time.After(killTimeout):
		t.Errorf("%s (pid %d) still running %s after SIGKILL", p.name, p.cmd.Process.Pid, killTimeout)
	}
}

// waitGroupGone polls until no process is left in process group pgid.
func waitGroupGone(pgid int, timeout time.Duration) bool {
	return waitGone(-pgid, timeout)
}

// waitGone polls until process pid (or, for a negative pid, every process
// of group -pid) no longer exists.
func waitGone(pid int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(pollInterval)
	}
}

// collector is a running gstats-collectd.
type collector struct {
	proc *process
	// StatsAddr and CommAddr are the bound endpoints, ports resolved.
	StatsAddr, CommAddr string
	client              *wire.Client
}

// startCollector starts gstats-collectd on ephemeral loopback ports, reads
// the bound endpoints from its log, and stops it in t.Cleanup, expecting a
// clean exit.
func startCollector(t *testing.T) *collector {
	t.Helper()
	cmd := exec.Command(bin.Collectd, "-s", "tcp://127.0.0.1:*", "-c", "tcp://127.0.0.1:*")
	p := startProcess(t, "gstats-collectd", cmd, false)
	t.Cleanup(func() { p.stop(t, false) })
	stats, comm := endpointsIn(t, p)
	return newCollector(p, stats, comm)
}

// newCollector is the collector p runs, bound at stats and comm.
func newCollector(p *process, stats, comm string) *collector {
	return &collector{
		proc:      p,
		StatsAddr: stats,
		CommAddr:  comm,
		client:    wire.NewClient(wire.ClientOptions{Address: comm, Timeout: requestTimeout}),
	}
}

// stats sends STATS and returns the entry of prefix (ok false if absent).
func (c *collector) stats(t *testing.T, prefix string) (wire.PrefixStats, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	r, err := c.client.Stats(ctx)
	if err != nil {
		t.Fatalf("STATS: %v", err)
	}
	s, ok := r[prefix]
	return s, ok
}

// waitStats polls STATS until the entry of prefix satisfies cond, and
// returns it. what describes cond in the failure message.
func (c *collector) waitStats(t *testing.T, prefix, what string, cond func(wire.PrefixStats) bool) wire.PrefixStats {
	t.Helper()
	deadline := time.Now().Add(settleTimeout)
	for {
		s, ok := c.stats(t, prefix)
		if ok && cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("prefix %q: waited %s for %s; last STATS entry (present=%v): %+v", prefix, settleTimeout, what, ok, s)
		}
		time.Sleep(pollInterval)
	}
}

// rtimes sends RTIMES and returns the durations of prefix.
func (c *collector) rtimes(t *testing.T, prefix string) []float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	r, err := c.client.RTimes(ctx)
	if err != nil {
		t.Fatalf("RTIMES: %v", err)
	}
	out := make([]float64, len(r[prefix]))
	for i, v := range r[prefix] {
		out[i] = float64(v)
	}
	return out
}

// info sends INFO.
func (c *collector) info(t *testing.T) wire.InfoReply {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	r, err := c.client.Info(ctx)
	if err != nil {
		t.Fatalf("INFO: %v", err)
	}
	return r
}

// forgetProbes waits until the collector has seen the start and finish of
// the probes answered readiness requests (and of any unanswered one that
// reached gunicorn), then sends RESET, so that the test counts only its own
// requests.
func (c *collector) forgetProbes(t *testing.T, prefix string, probes int) {
	t.Helper()
	c.waitStats(t, prefix, fmt.Sprintf("started = finished >= %d (the readiness probes)", probes), func(s wire.PrefixStats) bool {
		return s.Started == s.Finished && s.Started >= int64(probes)
	})
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	if err := c.client.Reset(ctx); err != nil {
		t.Fatalf("RESET: %v", err)
	}
	if s, ok := c.stats(t, prefix); ok {
		t.Fatalf("prefix %q still in STATS after RESET: %+v", prefix, s)
	}
}

// runCtl runs the gstatsctl binary against the collector and returns its
// stdout, stderr and exit code.
func (c *collector) runCtl(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin.Ctl, append([]string{"-c", c.CommAddr}, args...)...)
	var out, errOut testbin.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		t.Fatalf("running gstatsctl %v: %v", args, err)
	}
	return out.String(), errOut.String(), code
}

// gunicornOptions describe a gunicorn run with a hooks configuration file
// from testdata/app.
type gunicornOptions struct {
	Config      string // file name in testdata/app, e.g. original_hooks.py, or an absolute path
	WorkerClass string // sync or gthread
	Workers     int
	Threads     int
	StatsAddr   string // the collector's stats endpoint
	Prefix      string
}

// gunicorn is a running gunicorn serving testdata/app/app.py.
type gunicorn struct {
	proc *process
	// URL is the base URL, e.g. http://127.0.0.1:40123.
	URL string
	// Probes is the number of readiness requests that were answered; each
	// one went through the hooks.
	Probes int
}

// gunicornListening is the line gunicorn's master logs once it has bound
// its socket, with the address (the port the kernel chose for port 0).
var gunicornListening = regexp.MustCompile(`Listening at: http://(\S+) \(`)

// startGunicorn starts /usr/bin/gunicorn on 127.0.0.1 port 0 (the kernel
// picks a free port while gunicorn binds it: no port can be taken between
// choosing and binding), reads the address from its log, waits until it
// answers HTTP, and stops it in t.Cleanup: SIGTERM to the master, then a
// bounded wait until the master and its workers are gone.
func startGunicorn(t *testing.T, o gunicornOptions) *gunicorn {
	t.Helper()
	requireGunicorn(t)
	appDir, err := filepath.Abs(filepath.Join("testdata", "app"))
	if err != nil {
		t.Fatal(err)
	}
	conf := o.Config
	if !filepath.IsAbs(conf) {
		conf = filepath.Join(appDir, conf)
	}
	cmd := exec.Command(gunicornPath, "--chdir", appDir, "-c", conf, "app:application")
	cmd.Env = append(os.Environ(),
		"PYTHONDONTWRITEBYTECODE=1", // keep testdata free of __pycache__
		"GUNI_BIND=127.0.0.1:0",
		"GUNI_WORKER_CLASS="+o.WorkerClass,
		"GUNI_WORKERS="+strconv.Itoa(o.Workers),
		"GUNI_THREADS="+strconv.Itoa(o.Threads),
		"GSTATS_STATS_ADDR="+o.StatsAddr,
		"GSTATS_PREFIX="+o.Prefix,
		"PYTHONPATH="+filepath.Join(appDir, "..", "..", "..", "python", "src"), // the gstats package
	)
	p := startProcess(t, "gunicorn-"+o.WorkerClass, cmd, true)
	t.Cleanup(func() { p.stop(t, true) })
	addr := waitLog(t, p, gunicornListening, "gunicorn's listening line")[1]
	g := &gunicorn{proc: p, URL: "http://" + addr}
	if err := g.waitHTTP(t); err != nil {
		t.Fatalf("%v\n%s", err, p.log())
	}
	return g
}

// waitHTTP polls GET / until gunicorn answers, and counts the answered
// probes in g.Probes.
func (g *gunicorn) waitHTTP(t *testing.T) error {
	client := newHTTPClient(t)
	deadline := time.Now().Add(startTimeout)
	for {
		code, err := get(client, g.URL+"/")
		if err == nil {
			g.Probes++
			if code != http.StatusOK {
				return fmt.Errorf("readiness probe GET %s/: status %d, want 200", g.URL, code)
			}
			return nil
		}
		if g.proc.exited() {
			return fmt.Errorf("gunicorn exited before answering HTTP on %s: %v", g.URL, g.proc.err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("gunicorn did not answer HTTP on %s within %s: %v", g.URL, startTimeout, err)
		}
		time.Sleep(pollInterval)
	}
}

// newHTTPClient returns a client without keep-alive (so that gunicorn's
// shutdown waits for no idle connection), closed in t.Cleanup.
func newHTTPClient(t *testing.T) *http.Client {
	tr := &http.Transport{DisableKeepAlives: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: requestTimeout}
}

// get sends GET url and returns the status code; the body is read and
// discarded.
func get(client *http.Client, url string) (int, error) {
	resp, err := client.Get(url)
	if err != nil {
		return 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return 0, fmt.Errorf("reading the body of %s: %w", url, err)
	}
	return resp.StatusCode, nil
}
