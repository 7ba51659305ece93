package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/gstats/gstats/bench/statsdpeer"
	"github.com/gstats/gstats/wire"
)

// mib is a mebibyte, for memory figures.
const mib = 1 << 20

// plainCollectd builds, once per test binary, gstats-collectd without the
// race detector: the memory tests measure the collector's own resident set,
// which the detector's shadow memory would multiply.
var plainCollectd = sync.OnceValues(func() (string, error) {
	out := filepath.Join(bin.Dir, "gstats-collectd-plain")
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "github.com/gstats/gstats/cmd/gstats-collectd")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building gstats-collectd without -race: %w\n%s", err, b)
	}
	return out, nil
})

// hostPort is the host:port of a tcp:// ZeroMQ endpoint.
func hostPort(t *testing.T, endpoint string) string {
	t.Helper()
	hp, ok := strings.CutPrefix(endpoint, "tcp://")
	if !ok {
		t.Fatalf("%q is not a tcp:// endpoint", endpoint)
	}
	return hp
}

// collectdConfig writes a gstats-collectd configuration file holding one
// [[inputs.gstats]] section bound at stats and comm, plus settings (TOML
// lines of that section), and returns its path.
func collectdConfig(t *testing.T, dir, stats, comm, settings string) string {
	t.Helper()
	return writeFile(t, dir, "gstats.conf", fmt.Sprintf("[[inputs.gstats]]\n  stats_address = %q\n  comm_address = %q\n%s\n", stats, comm, settings))
}

// ownedCollector is a gstats-collectd a test started with a configuration
// file, and may kill; its cleanup stops it unless the test did.
type ownedCollector struct {
	*collector
	finished bool   // stopped or killed by the test
	pprof    string // the base URL of its Go profiles (--pprof-addr)
}

// pprofListening is the line gstats-collectd logs when it serves its Go
// profiles, with the address.
var pprofListening = regexp.MustCompile(`profiles served on (http://[^/\s"]+)/debug/pprof/`)

// runCollectd starts binary with the configuration file conf and its Go
// profiles on a loopback port the kernel chooses, waits for its listening
// line and registers a cleanup that stops it (a clean exit is expected)
// unless the test stopped or killed it itself.
func runCollectd(t *testing.T, binary, conf string) *ownedCollector {
	t.Helper()
	p := startProcess(t, "gstats-collectd", exec.Command(binary, "--config", conf, "--pprof-addr", "127.0.0.1:0"), false)
	oc := &ownedCollector{}
	t.Cleanup(func() {
		if !oc.finished {
			p.stop(t, false)
		}
	})
	stats, comm := endpointsIn(t, p)
	oc.collector = newCollector(p, stats, comm)
	oc.pprof = waitLog(t, p, pprofListening, "the profiles' address")[1]
	return oc
}

// pid is the collector's process id.
func (c *collector) pid() int { return c.proc.cmd.Process.Pid }

// killNow sends SIGKILL to the collector and waits until it is gone.
func (oc *ownedCollector) killNow(t *testing.T) {
	t.Helper()
	oc.finished = true
	oc.proc.kill(t, false)
	if !oc.proc.exited() {
		t.Fatalf("gstats-collectd (pid %d) survived SIGKILL", oc.pid())
	}
}

// rss returns the resident set size and its peak of process pid.
func rss(t *testing.T, pid int) (cur, peak int64) {
	t.Helper()
	cur, peak, err := statsdpeer.Memory(pid)
	if err != nil {
		t.Fatal(err)
	}
	return cur, peak
}

// memStat matches one figure of runtime.MemStats in a heap profile of
// debug=1.
var memStat = regexp.MustCompile(`(?m)^# (HeapIdle|HeapReleased) = (\d+)$`)

// usedRSS returns the collector's resident set less the memory its Go
// runtime holds free but has not returned to the system yet, right after
// a garbage collection (the heap profile with gc=1 runs one). The Go
// runtime returns free memory in the background, at a pace a loaded
// machine slows down: the plain resident set measures that pace as much
// as the memory in use. This does not.
func (oc *ownedCollector) usedRSS(t *testing.T) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, oc.pprof+"/debug/pprof/heap?gc=1&debug=1", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("the collector's heap profile: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("the collector's heap profile: status %d, %v", resp.StatusCode, err)
	}
	cur, _ := rss(t, oc.pid())
	stats := map[string]int64{}
	for _, m := range memStat.FindAllStringSubmatch(string(body), -1) {
		stats[m[1]], _ = strconv.ParseInt(m[2], 10, 64)
	}
	if len(stats) != 2 {
		t.Fatalf("no HeapIdle and HeapReleased in the collector's heap profile:\n%s", body)
	}
	return cur - (stats["HeapIdle"] - stats["HeapReleased"])
}

// settledRSS waits until the collector's resident set in use (usedRSS)
// stops changing by more than 256 KiB over half a second (at most
// settleTimeout) and returns it.
func (oc *ownedCollector) settledRSS(t *testing.T) int64 {
	t.Helper()
	deadline := time.Now().Add(settleTimeout)
	last := oc.usedRSS(t)
	for {
		time.Sleep(500 * time.Millisecond)
		cur := oc.usedRSS(t)
		if d := cur - last; (d < 256<<10 && d > -256<<10) || time.Now().After(deadline) {
			return cur
		}
		last = cur
	}
}

// openFDs counts the open file descriptors of process pid.
func openFDs(t *testing.T, pid int) int {
	t.Helper()
	n, err := statsdpeer.OpenFiles(pid)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// waitFDs polls until process pid has at most want open descriptors and
// returns the last count.
func waitFDs(t *testing.T, pid, want int, timeout time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		n := openFDs(t, pid)
		if n <= want || time.Now().After(deadline) {
			return n
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// portFree reports whether nothing listens on host:port any more: a
// listener can be opened there.
func portFree(hp string) error {
	l, err := net.Listen("tcp", hp)
	if err != nil {
		return err
	}
	return l.Close()
}

// timedStats sends STATS and returns the reply and how long it took.
func (c *collector) timedStats(t *testing.T) (wire.StatsReply, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	t0 := time.Now()
	r, err := c.client.Stats(ctx)
	took := time.Since(t0)
	if err != nil {
		t.Fatalf("STATS after %s: %v", took, err)
	}
	return r, took
}

// waitInfo polls INFO until cond holds and returns it.
func (c *collector) waitInfo(t *testing.T, what string, cond func(wire.InfoReply) bool) wire.InfoReply {
	t.Helper()
	deadline := time.Now().Add(settleTimeout)
	for {
		info := c.info(t)
		if cond(info) {
			return info
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s; last INFO: %+v", settleTimeout, what, info)
		}
		time.Sleep(pollInterval)
	}
}

// blockingPush is a PUSH socket connected to addr whose sends wait as long
// as needed (up to a minute, then the test fails): no message is dropped by
// the sender.
func blockingPush(t *testing.T, addr string) *zmq.Socket {
	t.Helper()
	s := pushSocket(t, addr)
	if err := s.SetSndtimeo(time.Minute); err != nil {
		t.Fatal(err)
	}
	return s
}

// sendPairs sends n start and finish messages for prefix, the finish of
// pair i lasting durationMs(i) ms with status 200.
func sendPairs(t *testing.T, s *zmq.Socket, prefix string, n int, durationMs func(i int) float64) {
	t.Helper()
	for i := range n {
		sendFrames(t, s, prefix, "")
		sendFrames(t, s, prefix, wire.FormatFloat(durationMs(i)), "200")
	}
}

// logMatches polls p's log until re matches at least n times and returns
// the matches.
func logMatches(t *testing.T, p *process, re *regexp.Regexp, n int, what string, timeout time.Duration) [][]string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if m := re.FindAllStringSubmatch(p.log(), -1); len(m) >= n {
			return m
		}
		if p.exited() {
			t.Fatalf("%s exited before %s: %v\n%s", p.name, what, p.err, p.log())
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s not seen within %s:\n%s", p.name, what, timeout, p.log())
		}
		time.Sleep(pollInterval)
	}
}

// latencies summarises request durations.
type latencies []time.Duration

func (l latencies) max() time.Duration {
	var m time.Duration
	for _, d := range l {
		m = max(m, d)
	}
	return m
}

func (l latencies) String() string {
	return fmt.Sprintf("%d calls, max %s", len(l), l.max().Round(time.Microsecond))
}
