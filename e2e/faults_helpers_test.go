package e2e

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"regexp"
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
	finished bool // stopped or killed by the test
}

// runCollectd starts binary with the configuration file conf, waits for its
// listening line and registers a cleanup that stops it (a clean exit is
// expected) unless the test stopped or killed it itself.
func runCollectd(t *testing.T, binary, conf string) *ownedCollector {
	t.Helper()
	p := startProcess(t, "gstats-collectd", exec.Command(binary, "--config", conf), false)
	oc := &ownedCollector{}
	t.Cleanup(func() {
		if !oc.finished {
			p.stop(t, false)
		}
	})
	stats, comm := endpointsIn(t, p)
	oc.collector = newCollector(p, stats, comm)
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

// settledRSS waits until the resident set of pid stops changing by more
// than 256 KiB over half a second (at most settleTimeout) and returns it.
func settledRSS(t *testing.T, pid int) int64 {
	t.Helper()
	deadline := time.Now().Add(settleTimeout)
	last, _ := rss(t, pid)
	for {
		time.Sleep(500 * time.Millisecond)
		cur, _ := rss(t, pid)
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
