package client_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/gstats/gstats/client"
	"github.com/gstats/gstats/internal/testbin"
	"github.com/gstats/gstats/wire"
)

// collectdProcess is a gstats-collectd process started by a test.
type collectdProcess struct {
	*collector
	cmd    *exec.Cmd
	stderr *testbin.Buffer
}

// startCollectdAt builds gstats-collectd and runs it with its stats socket
// on statsAddr, its control socket on a free loopback port and, if conf is
// not empty, a configuration file holding conf. It is killed at cleanup (a
// stopped process is continued first).
func startCollectdAt(tb testing.TB, statsAddr, conf string) *collectdProcess {
	tb.Helper()
	dir := tb.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := testbin.Build(ctx, dir, testbin.Collectd); err != nil {
		tb.Fatal(err)
	}
	args := []string{"-s", statsAddr, "-c", "tcp://127.0.0.1:0"}
	if conf != "" {
		path := filepath.Join(dir, "gstats.conf")
		if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
			tb.Fatal(err)
		}
		args = append(args, "--config", path)
	}
	p := &collectdProcess{stderr: &testbin.Buffer{}}
	p.cmd = exec.Command(filepath.Join(dir, "gstats-collectd"), args...)
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		tb.Fatalf("starting gstats-collectd: %v", err)
	}
	p.collector = &collector{stopFn: func() {
		_ = p.cmd.Process.Signal(syscall.SIGCONT)
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
	}}
	tb.Cleanup(p.stop)
	var stats, comm string
	waitFor(tb, 10*time.Second, "gstats-collectd to listen", func() error {
		if p.cmd.ProcessState != nil {
			return fmt.Errorf("it exited: %s", p.stderr.String())
		}
		var ok bool
		if stats, comm, ok = testbin.Endpoints(p.stderr.String()); !ok {
			return fmt.Errorf("no endpoints in its log yet: %q", p.stderr.String())
		}
		return nil
	})
	p.stats = stats
	p.ctl = wire.NewClient(wire.ClientOptions{Address: comm, Timeout: 5 * time.Second})
	return p
}

// signal sends sig to the collector process.
func (p *collectdProcess) signal(tb testing.TB, sig syscall.Signal) {
	tb.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		tb.Fatalf("signal %s to gstats-collectd (PID %d): %v", sig, p.cmd.Process.Pid, err)
	}
}

func (p *collectdProcess) info(tb testing.TB) wire.InfoReply {
	tb.Helper()
	info, err := p.ctl.Info(context.Background())
	if err != nil {
		tb.Fatalf("INFO: %v", err)
	}
	return info
}

// reportAll sends starts under probePrefix until a packed message has
// reported every drop: Reported == Dropped once the sender has caught up.
func reportAll(tb testing.TB, c *client.Client) client.Stats {
	tb.Helper()
	var s client.Stats
	waitFor(tb, 20*time.Second, "every drop to be reported", func() error {
		c.Start(probePrefix)
		waitFor(tb, 10*time.Second, "the sender to catch up", func() error {
			s = c.Stats()
			return settled(c, s.Sent+s.Dropped+s.Errors)
		})
		time.Sleep(20 * time.Millisecond)
		if s = c.Stats(); s.Reported != s.Dropped {
			return fmt.Errorf("client %+v", s)
		}
		return nil
	})
	return s
}

// TestIntegrationDropsReportedToTheCollector drops events in the two ways
// a collector causes, and checks that the collector learns of every one:
// first no collector listens (the socket refuses everything), then a
// gstats-collectd with a tiny receive_queue is stopped (SIGSTOP) while the
// client floods it, so its queue, the kernel's buffers and the client's
// SendHWM fill and the socket refuses again; the client's own queue
// overflows too. Once the collector runs again and one packed message has
// gone out, its client_dropped is the client's Dropped and its accepted
// count the client's Sent, exactly.
func TestIntegrationDropsReportedToTheCollector(t *testing.T) {
	addr := deadAddress(t)
	c := newClient(t, client.Options{Address: addr, Prefix: "flood", QueueSize: 64, SendHWM: 4})

	// No collector: every event is refused.
	const early = 1000
	for range early {
		c.Finish("", time.Millisecond, 200)
	}
	waitFor(t, 10*time.Second, "the sender to catch up", func() error { return settled(c, early) })
	if s := c.Stats(); s.Dropped != early || s.WouldBlock == 0 || s.Sent != 0 {
		t.Fatalf("with no collector: %+v, want all %d events dropped", s, early)
	}

	col := startCollectdAt(t, addr, "[[inputs.gstats]]\n  receive_queue = 4\n")
	connected(t, c, col.collector)
	if info := col.info(t); info.ClientDropped < early {
		t.Errorf("after connecting, client_dropped = %d, want at least the %d early drops", info.ClientDropped, early)
	}

	// The collector stops reading: flood until the socket refuses.
	col.signal(t, syscall.SIGSTOP)
	before := c.Stats()
	deadline := time.Now().Add(30 * time.Second)
	var flooded uint64
	for c.Stats().WouldBlock < before.WouldBlock+10_000 {
		if time.Now().After(deadline) {
			col.signal(t, syscall.SIGCONT)
			t.Fatalf("after %d finishes in 30 s to a stopped collector, the socket refused only %d: %+v", flooded, c.Stats().WouldBlock-before.WouldBlock, c.Stats())
		}
		for range 1000 {
			c.Finish("", time.Millisecond, 200)
		}
		flooded += 1000
	}
	col.signal(t, syscall.SIGCONT)
	s := c.Stats()
	t.Logf("stopped collector: %d finishes, %d refused by the socket, %d dropped at the full queue",
		flooded, s.WouldBlock-before.WouldBlock, s.QueueFull-before.QueueFull)
	if s.QueueFull == before.QueueFull {
		t.Errorf("the queue of 64 never overflowed during the flood: %+v", s)
	}

	s = reportAll(t, c)
	var info wire.InfoReply
	waitFor(t, 20*time.Second, "the collector to count what the client sent and dropped", func() error {
		info = col.info(t)
		if uint64(info.Accepted) != s.Sent || uint64(info.ClientDropped) != s.Dropped {
			return fmt.Errorf("collector accepted %d and client_dropped %d; client sent %d and dropped %d (%+v)",
				info.Accepted, info.ClientDropped, s.Sent, s.Dropped, s)
		}
		return nil
	})
	if info.RejectedTotal != 0 || s.Errors != 0 {
		t.Errorf("collector rejected %d (%v), client errors %d", info.RejectedTotal, info.Rejected, s.Errors)
	}
	if got := c.Stats(); got != s {
		t.Errorf("client stats moved after the last report: %+v, then %+v", s, got)
	}
	t.Logf("client %+v; collector accepted %d, client_dropped %d", s, info.Accepted, info.ClientDropped)
}

// packedReader reads a PULL socket, adding up the events and the drop
// counts of the packed messages, and counting classic messages.
type packedReader struct {
	pull            *zmq.Socket
	mu              sync.Mutex
	events, classic int
	dropped         int64
	headers         []string // headers that reported drops
	reportsOnly     int      // packed messages with drops and no event
}

func newPackedReader(t *testing.T) (*packedReader, string) {
	t.Helper()
	pull, addr := rawPull(t, 10*time.Millisecond)
	return &packedReader{pull: pull}, addr
}

// read takes what arrived until the socket is quiet for 10 ms.
func (r *packedReader) read(t *testing.T) {
	t.Helper()
	for {
		frames, err := r.pull.RecvMessageBytes(0)
		if err != nil {
			return
		}
		r.mu.Lock()
		if !wire.IsBatch(frames) {
			r.classic++
			r.events++
			r.mu.Unlock()
			continue
		}
		n, dropped := wire.ParseBatch(frames[0], wire.Limits{MaxPrefixLength: 255, MaxDuration: 1e9}, func(_ wire.Message, err error) {
			if err != nil {
				t.Errorf("packed event rejected: %v", err)
			}
			r.events++
		})
		if dropped > 0 {
			header, _, _ := strings.Cut(string(frames[0]), "\n")
			r.headers = append(r.headers, header)
			if n == 0 {
				r.reportsOnly++
			}
		}
		r.dropped += dropped
		r.mu.Unlock()
	}
}

// TestDropsReportedWithoutFurtherEvents floods a PULL socket that does not
// read until the socket refuses every event (its queue, the kernel's
// buffers and the client's SendHWM are full), then reads without any
// further event: the sender reports the drops in a packed message holding
// no event, by LogInterval at the latest.
func TestDropsReportedWithoutFurtherEvents(t *testing.T) {
	pull, addr := rawPull(t, 10*time.Millisecond,
		func(s *zmq.Socket) error { return s.SetRcvhwm(1) },
		func(s *zmq.Socket) error { return s.SetRcvbuf(4096) },
	)
	r := &packedReader{pull: pull}
	c := newClient(t, client.Options{Address: addr, Prefix: "q", SendHWM: 1, LogInterval: 50 * time.Millisecond})
	waitFor(t, 10*time.Second, "a probe", func() error {
		c.Start(probePrefix)
		r.read(t)
		if r.events == 0 {
			return fmt.Errorf("nothing received yet (%+v)", c.Stats())
		}
		return nil
	})
	// Flood, without reading, until a whole burst is dropped.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s the socket still takes events: %+v", c.Stats())
		}
		before := c.Stats()
		for range 1000 {
			c.Finish("", time.Millisecond, 200)
		}
		waitFor(t, 10*time.Second, "the sender to catch up", func() error {
			return settled(c, before.Sent+before.Dropped+before.Errors+1000)
		})
		if c.Stats().Sent == before.Sent {
			break
		}
	}
	// No event from here on.
	var s client.Stats
	waitFor(t, 10*time.Second, "the sender to catch up", func() error {
		s = c.Stats()
		return settled(c, s.Sent+s.Dropped+s.Errors)
	})
	messages := 0
	waitFor(t, 20*time.Second, "every event and every drop to arrive", func() error {
		r.read(t)
		s = c.Stats()
		r.mu.Lock()
		defer r.mu.Unlock()
		messages = len(r.headers)
		if uint64(r.events) != s.Sent || uint64(r.dropped) != s.Dropped {
			return fmt.Errorf("received %d events reporting %d dropped; client %+v", r.events, r.dropped, s)
		}
		return nil
	})
	if s.Reported != s.Dropped || s.WouldBlock == 0 {
		t.Errorf("client %+v: want Reported == Dropped, and drops refused by the socket", s)
	}
	if r.reportsOnly == 0 {
		t.Errorf("no packed message without events reported drops (%d headers: %q)", messages, r.headers)
	}
	t.Logf("%d drops reported in %d headers, %d of them with no event; client %+v", r.dropped, messages, r.reportsOnly, s)
}

// TestDropsReportedInPackedHeaders reads what a client sends from a plain
// PULL socket while its callers overflow its queue of 2: the drops come in
// the packed messages' headers, and when the callers stop, the sender
// reports the last ones in a message of its own, without any further event.
// A classic client sends no header, so it reports nothing.
func TestDropsReportedInPackedHeaders(t *testing.T) {
	for _, classic := range []bool{false, true} {
		t.Run(fmt.Sprintf("classic=%v", classic), func(t *testing.T) {
			r, addr := newPackedReader(t)
			c := newClient(t, client.Options{Address: addr, Prefix: "q", QueueSize: 2, Classic: classic})
			waitFor(t, 10*time.Second, "a probe", func() error {
				c.Start(probePrefix)
				r.read(t)
				if r.events == 0 {
					return fmt.Errorf("nothing received yet (%+v)", c.Stats())
				}
				return nil
			})
			var wg sync.WaitGroup
			for range 4 {
				wg.Go(func() {
					for range 20_000 {
						c.Finish("", time.Millisecond, 200)
					}
				})
			}
			wg.Wait()
			var s client.Stats
			waitFor(t, 20*time.Second, "every event and every drop to arrive", func() error {
				r.read(t)
				s = c.Stats()
				r.mu.Lock()
				defer r.mu.Unlock()
				if uint64(r.events) != s.Sent || (!classic && uint64(r.dropped) != s.Dropped) {
					return fmt.Errorf("received %d events reporting %d dropped; client %+v", r.events, r.dropped, s)
				}
				return nil
			})
			if s.QueueFull == 0 {
				t.Fatalf("a queue of 2 fed by 4 goroutines dropped nothing: %+v", s)
			}
			if classic {
				if r.dropped != 0 || s.Reported != 0 || r.classic != r.events {
					t.Errorf("classic client: %d packed events, %d reported dropped (client %+v); want none", r.events-r.classic, r.dropped, s)
				}
				return
			}
			if s.Reported != s.Dropped {
				t.Errorf("client %+v: Reported != Dropped", s)
			}
			t.Logf("%d drops reported in %d headers, the last %q; client %+v", r.dropped, len(r.headers), r.headers[len(r.headers)-1], s)
		})
	}
}
