package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gstats/gstats/client"
	"github.com/gstats/gstats/internal/testbin"
	"github.com/gstats/gstats/internal/testport"
	"github.com/gstats/gstats/wire"
)

// listeningLine is the line the collector logs once its sockets are bound,
// with the endpoints.
var listeningLine = regexp.MustCompile(`listening: stats \(PULL\) on ([^\s,]+), control \(REP\) on ([^\s;]+);`)

// childExitBound bounds how long gstats-collectd may take to exit once
// the test sends Telegraf SIGTERM. Telegraf's execd then closes the child's
// stdin and sends it SIGTERM only 5 s later: since that timer starts after
// the test's signal, a child gone within 5 s of it left by itself, however
// slow the machine. (A child that needs longer gets execd's SIGTERM, which
// is the product's failure, not the test's.)
const childExitBound = 5 * time.Second

// TestIntegrationFaultTelegrafRestart runs gstats-collectd under a real
// Telegraf (inputs.execd, signal = "STDIN", as deployed) on fixed loopback
// ports with a state file. Stopping Telegraf must end the child by itself
// and free its ports; a new Telegraf must start a new child on the same
// ports, with the counters of the previous one; a SIGHUP (Telegraf reloads
// its configuration and restarts its plugins) must replace the child the
// same way. Traffic is counted exactly at every step.
func TestIntegrationFaultTelegrafRestart(t *testing.T) {
	integration(t)
	telegrafBin := requireBinary(t, stockTelegraf)
	const prefix = "restart"
	dir := t.TempDir()
	// Fixed ports, since every new child must bind the same ones: testport
	// holds them for the whole test, so nothing takes them between a child
	// leaving and the next one binding.
	statsAddr, commAddr := testport.TCP(t), testport.TCP(t)
	stateFile := filepath.Join(dir, "gstats.state")
	plugin := writeFile(t, dir, "plugin.conf", readDeploy(t, "telegraf/plugin.conf",
		`stats_address = "tcp://127.0.0.2:2345"`, fmt.Sprintf("stats_address = %q", statsAddr),
		`comm_address = "tcp://127.0.0.1:2345"`, fmt.Sprintf("comm_address = %q", commAddr))+
		fmt.Sprintf("  state_file = %q\n  state_interval = \"1s\"\n", stateFile))
	snippet := writeFile(t, dir, "gstats.conf", readDeploy(t, "telegraf/telegraf.d/gstats.conf",
		"/usr/local/bin/gstats-collectd", bin.Collectd,
		"/etc/gstats/plugin.conf", plugin,
		`restart_delay = "10s"`, `restart_delay = "1s"`))
	main := writeFile(t, dir, "telegraf.conf", agentConf("1s")+fmt.Sprintf("[[outputs.file]]\n  files = [%q]\n", filepath.Join(dir, "out.lp")))

	var tg *process // the running Telegraf, stopped at cleanup
	t.Cleanup(func() {
		if tg != nil && !tg.exited() {
			tg.stop(t, true)
		}
	})
	// child waits for the n-th start of gstats-collectd in Telegraf's log,
	// checks it bound the configured ports, and returns its pid.
	child := func(n int) int {
		t.Helper()
		starts := logMatches(t, tg, execdPID, n, fmt.Sprintf("start %d of gstats-collectd", n), startTimeout)
		bound := logMatches(t, tg, listeningLine, n, fmt.Sprintf("gstats-collectd's listening line %d", n), startTimeout)
		if s, c := bound[n-1][1], bound[n-1][2]; s != statsAddr || c != commAddr {
			t.Fatalf("gstats-collectd %d bound %s and %s, want %s and %s", n, s, c, statsAddr, commAddr)
		}
		pid, _ := strconv.Atoi(starts[n-1][1])
		return pid
	}
	c := newCollector(nil, statsAddr, commAddr)
	push := blockingPush(t, statsAddr) // reconnects by itself across restarts
	want := int64(0)
	// traffic sends n pairs and waits until the collector counted them, on
	// top of what it counted before.
	traffic := func(n int, step string) {
		t.Helper()
		sendPairs(t, push, prefix, n, func(i int) float64 { return float64(1 + i%40) })
		want += int64(n)
		s := c.waitStats(t, prefix, fmt.Sprintf("%s: finished = %d", step, want), func(s wire.PrefixStats) bool { return s.Finished >= want })
		if s.Started != want || s.Finished != want || s.ProcessingTime.Count != want {
			t.Fatalf("%s: started %d, finished %d, count %d; want %d each", step, s.Started, s.Finished, s.ProcessingTime.Count, want)
		}
	}
	// restored checks, before any new traffic, that the new child came
	// back with what the previous one counted.
	restored := func(step string) {
		t.Helper()
		s, ok := c.stats(t, prefix)
		if !ok || s.Started != want || s.Finished != want || s.ProcessingTime.Count != want {
			t.Errorf("%s: STATS %q before new traffic: present %v, started %d, finished %d, count %d; want %d each (restored from %s)",
				step, prefix, ok, s.Started, s.Finished, s.ProcessingTime.Count, want, stateFile)
		}
		if info := c.info(t); info.Accepted != 2*want {
			t.Errorf("%s: INFO accepted %d, want %d (restored)", step, info.Accepted, 2*want)
		}
	}

	tg = startTelegraf(t, telegrafBin, main, snippet)
	pid1 := child(1)
	traffic(300, "first Telegraf")

	// Telegraf stops: it closes the child's stdin; the child must leave by
	// itself, write its state and free both ports.
	t0 := time.Now()
	if err := tg.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if !waitGone(pid1, childExitBound) {
		t.Fatalf("gstats-collectd (pid %d) still running %s after Telegraf got SIGTERM", pid1, childExitBound)
	}
	exitTook := time.Since(t0)
	tg.stop(t, true) // Telegraf exits 0 and leaves no process behind
	for _, addr := range []string{statsAddr, commAddr} {
		if err := portFree(hostPort(t, addr)); err != nil {
			t.Errorf("port of %s still taken after Telegraf stopped: %v", addr, err)
		}
	}
	for _, line := range []string{"I! [inputs.execd] gstats-collectd stopped", "state written to " + stateFile} {
		if !strings.Contains(tg.log(), line) {
			t.Errorf("Telegraf's log lacks %q:\n%s", line, tg.log())
		}
	}

	// A new Telegraf: a new child on the same ports, with the counters.
	tg = startTelegraf(t, telegrafBin, main, snippet)
	pid2 := child(1)
	if pid2 == pid1 {
		t.Fatalf("the second Telegraf reports the first child's pid %d", pid1)
	}
	restored("after Telegraf restarted")
	traffic(200, "second Telegraf")

	// SIGHUP: Telegraf reloads, stopping and starting its plugins.
	t0 = time.Now()
	if err := tg.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	pid3 := child(2)
	reloadTook := time.Since(t0)
	if pid3 == pid2 {
		t.Fatalf("after SIGHUP the child is still pid %d", pid2)
	}
	// Bounds a hang only: a new child is listening already.
	if !waitGone(pid2, stopTimeout) {
		t.Errorf("the child before SIGHUP (pid %d) still runs %s after the new one listened", pid2, stopTimeout)
	}
	if !strings.Contains(tg.log(), "Reloading Telegraf config") {
		t.Errorf("Telegraf did not log its reload:\n%s", tg.log())
	}
	restored("after SIGHUP")
	traffic(100, "after SIGHUP")
	t.Logf("child gone %s after Telegraf's SIGTERM; SIGHUP to new child listening: %s; pids %d, %d, %d",
		exitTook.Round(time.Millisecond), reloadTook.Round(time.Millisecond), pid1, pid2, pid3)
}

// loadGen sends GET requests from a few goroutines at a steady pace and
// records how each went. A request that takes longer than the HTTP
// client's timeout fails.
type loadGen struct {
	stop    chan struct{}
	wg      sync.WaitGroup
	started time.Time

	mu       sync.Mutex
	n        int
	failures []string
	slowest  time.Duration
}

// startLoad starts workers goroutines, each sending GET url every pace.
func startLoad(t *testing.T, url string, workers int, pace time.Duration) *loadGen {
	client := newHTTPClient(t)
	client.Timeout = loadRequestTimeout
	l := &loadGen{stop: make(chan struct{}), started: time.Now()}
	for range workers {
		l.wg.Go(func() {
			tick := time.NewTicker(pace)
			defer tick.Stop()
			for {
				select {
				case <-l.stop:
					return
				case <-tick.C:
				}
				t0 := time.Now()
				code, err := get(client, url)
				took := time.Since(t0)
				l.mu.Lock()
				l.n++
				l.slowest = max(l.slowest, took)
				if err != nil || code != http.StatusOK {
					l.failures = append(l.failures, fmt.Sprintf("status %d, error %v, after %s", code, err, took))
				}
				l.mu.Unlock()
			}
		})
	}
	return l
}

// answered returns how many requests have been answered 200 so far.
func (l *loadGen) answered() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n - len(l.failures)
}

// waitAnswered waits until n more requests than before have been answered
// 200, and fails t if that takes more than settleTimeout.
func (l *loadGen) waitAnswered(t *testing.T, before, n int, what string) {
	t.Helper()
	deadline := time.Now().Add(settleTimeout)
	for l.answered() < before+n {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d requests answered within %s, want %d", what, l.answered()-before, settleTimeout, n)
		}
		time.Sleep(pollInterval)
	}
}

// loadRequestTimeout bounds one request of the HTTP load. It bounds a
// hang (a hook waiting for the collector would block the request for as
// long as the collector is away), not a latency: a loaded machine may
// delay a request by a second or more on its own.
const loadRequestTimeout = requestTimeout

// end stops the load and returns the number of requests, the failures and
// the slowest request.
func (l *loadGen) end(t *testing.T) (int, []string, time.Duration) {
	t.Helper()
	close(l.stop)
	waitGroup(t, &l.wg, requestTimeout, "the HTTP load")
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n, l.failures, l.slowest
}

// TestIntegrationFaultKillUnderLoad SIGKILLs a gstats-collectd that writes
// a state file every 200 ms while a real gunicorn (sync workers, the
// Python package's hooks) serves a few hundred requests a second, then
// restarts it with the same configuration. The application must not
// notice (every response 200, requests answered while no collector runs),
// counting must resume once the new process listens, and the window must
// come back from the state file: counters at least what STATS showed
// before the last state write preceding the kill, and the durations
// RTIMES held.
func TestIntegrationFaultKillUnderLoad(t *testing.T) {
	integration(t)
	requireGunicorn(t)
	const (
		prefix        = "killed"
		markerPrefix  = "marker"
		stateInterval = 200 * time.Millisecond
		// resumeBound bounds a hang, not a latency: libzmq reconnects
		// every 100 ms, so counting that has not resumed by then never
		// will.
		resumeBound = 10 * time.Second
		// answeredWhileDown requests must be answered while no collector
		// runs: hooks that waited for the collector would answer none.
		answeredWhileDown = 100
		// answeredAfter requests are answered, and counted, by the new
		// collector before the load ends.
		answeredAfter = 100
		loadWorkers   = 6
		loadPace      = 20 * time.Millisecond // per worker: 300 requests/s at most
	)
	dir := t.TempDir()
	stateFile := filepath.Join(dir, "gstats.state")
	// Fixed ports (the restart binds the same ones), held by testport so
	// that nothing takes them while no collector runs.
	conf := collectdConfig(t, dir, testport.TCP(t), testport.TCP(t),
		fmt.Sprintf("  state_file = %q\n  state_interval = %q\n", stateFile, stateInterval.String()))
	c1 := runCollectd(t, bin.Collectd, conf)
	g := statusGunicorn(t, c1.StatsAddr, prefix)
	load := startLoad(t, g.URL+"/", loadWorkers, loadPace)
	loadEnded := false
	t.Cleanup(func() {
		if !loadEnded {
			load.end(t)
		}
	})
	c1.waitStats(t, prefix, "traffic", func(s wire.PrefixStats) bool { return s.Finished > 50 })

	// Durations only this test sends, to find in RTIMES after the restart.
	markers := []float64{1234.5, 2345.25, 3456.125}
	push := blockingPush(t, c1.StatsAddr)
	for _, ms := range markers {
		sendFrames(t, push, markerPrefix, "")
		sendFrames(t, push, markerPrefix, wire.FormatFloat(ms), "200")
	}
	c1.waitStats(t, markerPrefix, "the markers", func(s wire.PrefixStats) bool { return s.Finished == int64(len(markers)) })

	// A STATS sample, then two completed state writes (INFO's
	// state_saved_at changes twice): the first may have taken its
	// snapshot before the sample, but the second began after the first
	// ended, so the state file holds at least the sample from then on,
	// however slowly the machine writes. The kill follows.
	before, _ := c1.stats(t, prefix)
	sampledAt := time.Now()
	saved := c1.info(t).StateSavedAt
	for i := range 2 {
		prev := saved
		saved = c1.waitInfo(t, fmt.Sprintf("state write %d after the sample", i+1), func(info wire.InfoReply) bool {
			return info.StateSavedAt != prev
		}).StateSavedAt
	}
	c1.killNow(t)
	killedAt := time.Now()

	// The application goes on while no collector runs.
	load.waitAnswered(t, load.answered(), answeredWhileDown, "while the collector was down")

	c2 := runCollectd(t, bin.Collectd, conf)
	listening := time.Now()
	if c2.StatsAddr != c1.StatsAddr || c2.CommAddr != c1.CommAddr {
		t.Fatalf("the restarted collector bound %s and %s, want %s and %s", c2.StatsAddr, c2.CommAddr, c1.StatsAddr, c1.CommAddr)
	}
	back, ok := c2.stats(t, prefix)
	if !ok || back.Started < before.Started || back.Finished < before.Finished || back.ProcessingTime.Count < before.ProcessingTime.Count {
		t.Errorf("after the restart STATS %q: started %d, finished %d, count %d; want at least %d, %d, %d (STATS before the last two state writes)",
			prefix, back.Started, back.Finished, back.ProcessingTime.Count, before.Started, before.Finished, before.ProcessingTime.Count)
	}
	if rt := c2.rtimes(t, markerPrefix); !slices.Equal(rt, markers) {
		t.Errorf("after the restart RTIMES %q = %v, want the durations sent before the kill %v", markerPrefix, rt, markers)
	}
	resumed := c2.waitStats(t, prefix, "counting to resume", func(s wire.PrefixStats) bool {
		return s.Started > back.Started && s.Finished > back.Finished
	})
	resumeTook := time.Since(listening)
	if resumeTook > resumeBound {
		t.Errorf("counting resumed %s after the new collector listened, want within %s", resumeTook.Round(time.Millisecond), resumeBound)
	}
	if !strings.Contains(c2.proc.log(), "state restored from "+stateFile) {
		t.Errorf("the restarted collector did not log restoring %s:\n%s", stateFile, c2.proc.log())
	}

	// The load goes on against the new collector, which counts it.
	load.waitAnswered(t, load.answered(), answeredAfter, "after the restart")
	c2.waitStats(t, prefix, fmt.Sprintf("finished > %d", resumed.Finished+answeredAfter/2), func(s wire.PrefixStats) bool {
		return s.Finished > resumed.Finished+answeredAfter/2
	})
	n, failures, slowest := load.end(t)
	loadEnded = true
	elapsed := time.Since(load.started)
	if len(failures) > 0 {
		t.Errorf("%d of %d requests failed (or took over %s) while the collector was killed and restarted; first: %s", len(failures), n, loadRequestTimeout, failures[0])
	}
	if strings.Contains(g.proc.log(), "Traceback") {
		t.Errorf("gunicorn logged a traceback:\n%s", g.proc.log())
	}
	t.Logf("%d requests (about %.0f/s), slowest %s; STATS %s before the kill: started %d; restored: started %d, count %d; resumed %s after listening (started %d)",
		n, float64(n)/elapsed.Seconds(), slowest.Round(time.Millisecond), killedAt.Sub(sampledAt).Round(time.Millisecond),
		before.Started, back.Started, back.ProcessingTime.Count, resumeTook.Round(time.Millisecond), resumed.Started)
}

// TestIntegrationFaultFloodDrops floods a stopped (SIGSTOP) collector with
// the Go client's packed messages through a small SendHWM, resumes it, and
// lets the client send one more packed message: the collector's
// client_dropped must equal the client's Dropped exactly, its accepted the
// client's Sent, and its resident memory must stay flat over three rounds.
func TestIntegrationFaultFloodDrops(t *testing.T) {
	integration(t)
	binary := requireBinary(t, plainCollectd)
	const (
		rounds  = 3
		events  = 1_500_000 // per round, from floodProducers goroutines
		workers = 4
		prefix  = "flood"
		flat    = 4 * mib
	)
	dir := t.TempDir()
	conf := collectdConfig(t, dir, "tcp://127.0.0.1:*", "tcp://127.0.0.1:*", "  receive_queue = 100\n")
	c := runCollectd(t, binary, conf)
	pid := c.pid()
	cl, err := client.New(client.Options{Address: c.StatsAddr, Prefix: prefix, SendHWM: 4, QueueSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cl.Close(); err != nil {
			t.Errorf("closing the client: %v", err)
		}
	})
	// The client is connected once its first event is counted.
	var calls uint64 // Start and Finish calls, for sendSentinel
	deadline := time.Now().Add(settleTimeout)
	for c.info(t).Accepted == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the client's first event was never counted")
		}
		cl.Start(prefix)
		calls++
		time.Sleep(50 * time.Millisecond)
	}

	const sentinelPrefix = "flood-sentinel"
	var sentinels int64 // sent and counted so far
	var mem []int64
	for round := range rounds {
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for i := range events / workers {
					if i%2 == 0 {
						cl.Start(prefix)
					} else {
						cl.Finish(prefix, time.Duration(i%5000)*time.Microsecond, 200)
					}
				}
			})
		}
		waitGroup(t, &wg, time.Minute, "the flood")
		calls += events / workers * workers
		flooded := cl.Stats()
		if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		if flooded.Dropped == 0 {
			t.Fatalf("round %d: the client dropped nothing while the collector was stopped (%+v): the flood was too small to test anything", round, flooded)
		}
		// A sentinel, an event of its own prefix, follows the flood on the
		// same connection, in one more packed message that carries the
		// drops not reported yet. The collector may still be draining, so
		// the socket may refuse it (one more drop): then another follows,
		// until one leaves with every drop reported. Once the collector
		// has counted that sentinel it has read everything the client
		// sent before it, and the client sends nothing after it: the
		// counts below are final, not a snapshot of counts still growing.
		st := sendSentinel(t, cl, sentinelPrefix, &calls, round)
		c.waitStats(t, sentinelPrefix, fmt.Sprintf("round %d: sentinel %d", round, sentinels+1), func(s wire.PrefixStats) bool {
			return s.Started >= sentinels+1
		})
		sentinels++
		info := c.info(t)
		if s, _ := c.stats(t, sentinelPrefix); s.Started != sentinels {
			t.Errorf("round %d: the collector counted %d sentinels, the client sent %d", round, s.Started, sentinels)
		}
		if info.ClientDropped != int64(st.Dropped) || info.Accepted != int64(st.Sent) || st.Errors != 0 {
			t.Errorf("round %d: INFO client_dropped %d, accepted %d; client %+v: want client_dropped = Dropped, accepted = Sent, no errors",
				round, info.ClientDropped, info.Accepted, st)
		}
		if info.RejectedTotal != 0 {
			t.Errorf("round %d: the collector rejected %v", round, info.Rejected)
		}
		mem = append(mem, c.settledRSS(t))
		t.Logf("round %d: client %+v; collector client_dropped %d, accepted %d; RSS %.1f MiB", round, st, info.ClientDropped, info.Accepted, float64(mem[round])/mib)
	}
	if grow := mem[rounds-1] - mem[0]; grow > flat {
		t.Errorf("RSS grew by %.1f MiB from the first flood to the last (%.1f -> %.1f MiB), want at most %d MiB",
			float64(grow)/mib, float64(mem[0])/mib, float64(mem[rounds-1])/mib, flat/mib)
	}
}

// sendSentinel sends events of prefix through cl, one at a time, until one
// leaves the client, and returns how many left (one) and the client's
// counters then. calls counts the events the test has given cl so far
// (Start and Finish calls, whatever became of them); sendSentinel adds its
// own. Before each sentinel it waits until the client's sender has dealt
// with every earlier event (sent, dropped or failed), so a sentinel that
// leaves goes alone in a packed message, which reports every drop not
// reported yet (wire.MaxBatchDropped is far above any flood): the client
// sends nothing after it. Once the collector has counted that sentinel, it
// has therefore read everything the client sent.
func sendSentinel(t *testing.T, cl *client.Client, prefix string, calls *uint64, round int) client.Stats {
	t.Helper()
	deadline := time.Now().Add(settleTimeout)
	handled := func() client.Stats {
		t.Helper()
		for {
			st := cl.Stats()
			if st.Sent+st.Dropped+st.Errors == *calls {
				return st
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: the client dealt with %d of %d events within %s: %+v", round, st.Sent+st.Dropped+st.Errors, *calls, settleTimeout, st)
			}
			time.Sleep(pollInterval)
		}
	}
	for {
		before := handled()
		cl.Start(prefix)
		*calls++
		st := handled()
		if st.Sent > before.Sent {
			// Sent is counted just before Reported: wait for both.
			for st.Reported != st.Dropped {
				if time.Now().After(deadline) {
					t.Fatalf("round %d: the sentinel left without reporting every drop: %+v", round, st)
				}
				time.Sleep(pollInterval)
				st = cl.Stats()
			}
			return st
		}
		// The socket refused it while the collector drains: try again.
		if time.Now().After(deadline) {
			t.Fatalf("round %d: no sentinel left the client within %s after the collector resumed: %+v", round, settleTimeout, st)
		}
		time.Sleep(pollInterval)
	}
}

// floodScript drives the Python client (the gunicorn hooks, which pack
// events) from commands on stdin, one JSON line of its counters
// (gstats.client_stats()) on stdout after each: "flood N" reports N
// requests (a start and a finish each), "one" reports one start and
// flushes, "sentinel" does the same for the prefix pysentinel (through the
// same socket: the client keeps one per address), "stats" only prints the
// counters.
const floodScript = `
import json, sys
import gstats
from gstats.gunicorn import Hooks

hooks = Hooks(address=sys.argv[1], prefix="pyflood", sndhwm=4, pack=True)
sentinel = Hooks(address=sys.argv[1], prefix="pysentinel", sndhwm=4, pack=True)

class Req:
    pass

class Resp:
    status_code = 200

for line in sys.stdin:
    words = line.split()
    if words[0] == "flood":
        for _ in range(int(words[1])):
            r = Req()
            hooks.pre_request(None, r)
            hooks.post_request(None, r, None, Resp)
    elif words[0] == "one":
        hooks.pre_request(None, Req())
        gstats.flush()
    elif words[0] == "sentinel":
        sentinel.pre_request(None, Req())
        gstats.flush()
    print(json.dumps(gstats.client_stats()), flush=True)
`

// pyCounters are the Python client's counters.
type pyCounters struct {
	Sent, Dropped, Reported, Errors, Queued int64
}

// TestIntegrationFaultFloodDropsPython is TestIntegrationFaultFloodDrops
// with the Python client (packed messages, SNDHWM 4): after a flood of a
// stopped collector and one more message, the collector's client_dropped
// equals the client's dropped and its accepted the client's sent.
func TestIntegrationFaultFloodDropsPython(t *testing.T) {
	integration(t)
	requireGunicorn(t) // Debian's python3 with pyzmq
	binary := requireBinary(t, plainCollectd)
	const (
		rounds   = 2
		requests = 150_000 // per round: twice as many events
	)
	dir := t.TempDir()
	c := runCollectd(t, binary, collectdConfig(t, dir, "tcp://127.0.0.1:*", "tcp://127.0.0.1:*", "  receive_queue = 100\n"))
	pid := c.pid()

	py := exec.Command(pythonPath, "-c", floodScript, c.StatsAddr)
	py.Env = append(os.Environ(), "PYTHONPATH="+filepath.Join(repoRoot(t), "python", "src"), "PYTHONDONTWRITEBYTECODE=1")
	stdin, err := py.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := py.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr testbin.Buffer
	py.Stderr = &stderr
	if err := py.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- py.Wait() }()
	t.Cleanup(func() {
		_ = stdin.Close() // the script ends at the end of its input
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("the Python client exited with %v:\n%s", err, stderr.String())
			}
		case <-time.After(stopTimeout):
			t.Errorf("the Python client (pid %d) still running %s after its input closed; killing it", py.Process.Pid, stopTimeout)
			_ = py.Process.Kill()
			<-exited
		}
	})
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	do := func(cmd string) pyCounters {
		t.Helper()
		if _, err := io.WriteString(stdin, cmd+"\n"); err != nil {
			t.Fatalf("writing %q to the Python client: %v\n%s", cmd, err, stderr.String())
		}
		select {
		case line, ok := <-lines:
			var pc pyCounters
			if !ok {
				t.Fatalf("the Python client ended before answering %q:\n%s", cmd, stderr.String())
			}
			if err := json.Unmarshal([]byte(line), &pc); err != nil {
				t.Fatalf("the Python client's answer to %q, %q: %v", cmd, line, err)
			}
			return pc
		case <-time.After(time.Minute):
			t.Fatalf("no answer to %q from the Python client within a minute:\n%s", cmd, stderr.String())
		}
		return pyCounters{}
	}

	deadline := time.Now().Add(settleTimeout)
	for c.info(t).Accepted == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the Python client's first event was never counted")
		}
		do("one")
		time.Sleep(50 * time.Millisecond)
	}
	var sentinels int64 // sent by the Python client so far
	for round := range rounds {
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		flooded := do(fmt.Sprintf("flood %d", requests))
		floodTook := time.Since(t0)
		if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		if flooded.Dropped == 0 {
			t.Fatalf("round %d: the Python client dropped nothing while the collector was stopped (%+v)", round, flooded)
		}
		// One more packed message carries the drops not reported yet;
		// while the collector drains, the socket may refuse it.
		pc := do("one")
		for deadline := time.Now().Add(settleTimeout); pc.Reported != pc.Dropped || pc.Queued != 0; pc = do("one") {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: no packed message left the Python client within %s after the collector resumed: %+v", round, settleTimeout, pc)
			}
			time.Sleep(50 * time.Millisecond)
		}
		// Then a sentinel of its own prefix on the same connection, alone
		// (nothing is queued), until one leaves with every drop reported:
		// once the collector has counted it, it has read everything the
		// client sent, and the client sends nothing after it, so the
		// counts below are final.
		for deadline := time.Now().Add(settleTimeout); ; {
			before := pc
			pc = do("sentinel")
			if pc.Sent == before.Sent+1 {
				sentinels++
				if pc.Reported == pc.Dropped && pc.Queued == 0 {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: no sentinel left the Python client with every drop reported within %s: %+v", round, settleTimeout, pc)
			}
			time.Sleep(pollInterval)
		}
		c.waitStats(t, "pysentinel", fmt.Sprintf("round %d: %d sentinels", round, sentinels), func(s wire.PrefixStats) bool { return s.Started >= sentinels })
		info := c.info(t)
		if s, _ := c.stats(t, "pysentinel"); s.Started != sentinels {
			t.Errorf("round %d: the collector counted %d sentinels, the Python client sent %d", round, s.Started, sentinels)
		}
		if pc = do("stats"); info.ClientDropped != pc.Dropped || info.Accepted != pc.Sent {
			t.Errorf("round %d: INFO client_dropped %d, accepted %d; Python client %+v: want client_dropped = dropped, accepted = sent",
				round, info.ClientDropped, info.Accepted, pc)
		}
		if pc.Errors != 0 || info.RejectedTotal != 0 {
			t.Errorf("round %d: Python client errors %d, collector rejected %v", round, pc.Errors, info.Rejected)
		}
		t.Logf("round %d: flood of %d requests in %s; Python client %+v; collector client_dropped %d, accepted %d",
			round, requests, floodTook.Round(time.Millisecond), pc, info.ClientDropped, info.Accepted)
	}
}
