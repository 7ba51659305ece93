package client_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/influxdata/telegraf/testutil"

	"github.com/gstats/gstats/client"
	"github.com/gstats/gstats/internal/testbin"
	"github.com/gstats/gstats/plugins/inputs/gstats"
	"github.com/gstats/gstats/wire"
)

// collector is a gstats collector on loopback: in-process, or a
// gstats-collectd process.
type collector struct {
	stats  string // resolved stats (PULL) endpoint
	ctl    *wire.Client
	stopFn func()
}

// startCollector starts a collector whose stats socket binds statsAddr
// ("tcp://127.0.0.1:*" for a free port) and whose control socket binds a
// free port. It is stopped at cleanup, or earlier by stop.
func startCollector(tb testing.TB, statsAddr string) *collector {
	tb.Helper()
	g := gstats.New()
	g.StatsAddress = statsAddr
	g.CommAddress = "tcp://127.0.0.1:*"
	g.Log = testutil.Logger{Quiet: true}
	if err := g.Init(); err != nil {
		tb.Fatalf("collector Init: %v", err)
	}
	if err := g.Start(&testutil.Accumulator{}); err != nil {
		tb.Fatalf("collector Start: %v", err)
	}
	stats, comm := g.Endpoints()
	col := &collector{stats: stats, ctl: wire.NewClient(wire.ClientOptions{Address: comm, Timeout: 5 * time.Second}), stopFn: g.Stop}
	tb.Cleanup(col.stop)
	return col
}

// startCollectd builds gstats-collectd and runs it on free loopback ports,
// so that its work is not counted in the calling process (benchmarks). It
// is killed at cleanup.
func startCollectd(tb testing.TB) *collector {
	tb.Helper()
	dir := tb.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := testbin.Build(ctx, dir, testbin.Collectd); err != nil {
		tb.Fatal(err)
	}
	var stderr testbin.Buffer
	cmd := exec.Command(filepath.Join(dir, "gstats-collectd"), "-s", "tcp://127.0.0.1:0", "-c", "tcp://127.0.0.1:0")
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		tb.Fatalf("starting gstats-collectd: %v", err)
	}
	col := &collector{stopFn: func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}}
	tb.Cleanup(col.stop)
	var stats, comm string
	waitFor(tb, 10*time.Second, "gstats-collectd to listen", func() error {
		var ok bool
		if stats, comm, ok = testbin.Endpoints(stderr.String()); !ok {
			return fmt.Errorf("no endpoints in its log yet: %q", stderr.String())
		}
		return nil
	})
	col.stats = stats
	col.ctl = wire.NewClient(wire.ClientOptions{Address: comm, Timeout: 5 * time.Second})
	return col
}

// stop stops the collector; it may be called more than once.
func (col *collector) stop() {
	if col.stopFn != nil {
		col.stopFn()
		col.stopFn = nil
	}
}

func (col *collector) statsOf(tb testing.TB) wire.StatsReply {
	tb.Helper()
	r, err := col.ctl.Stats(context.Background())
	if err != nil {
		tb.Fatalf("STATS: %v", err)
	}
	return r
}

// waitFor polls cond until it holds, failing the test after limit.
func waitFor(tb testing.TB, limit time.Duration, what string, cond func() error) {
	tb.Helper()
	deadline := time.Now().Add(limit)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("after %s, still waiting for %s: %v", limit, what, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// newClient returns a client closed at cleanup, logging nothing unless log
// is given.
func newClient(tb testing.TB, opts client.Options) *client.Client {
	tb.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	c, err := client.New(opts)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// settled reports an error until every one of want events is accounted for.
func settled(c *client.Client, want uint64) error {
	s := c.Stats()
	if got := s.Sent + s.Dropped + s.Errors; got != want {
		return fmt.Errorf("sent+dropped+errors = %d, want %d (%+v)", got, want, s)
	}
	return nil
}

// probePrefix is the prefix connected sends under, apart from the ones a
// test counts.
const probePrefix = "probe"

// connected sends starts under probePrefix until one reaches the
// collector: from then on the client's connection is up. It then waits
// until the client has accounted for every probe (sent, dropped while
// connecting, or failed), and returns the client's stats: a baseline that
// no probe moves any more. Every event given to c before the call must be
// accounted for already (see settled).
func connected(tb testing.TB, c *client.Client, col *collector) client.Stats {
	tb.Helper()
	s := c.Stats()
	accounted := s.Sent + s.Dropped + s.Errors
	waitFor(tb, 10*time.Second, "the client to connect", func() error {
		if st, ok := col.statsOf(tb)[probePrefix]; ok && st.Started > 0 {
			return nil
		}
		c.Start(probePrefix)
		accounted++
		return fmt.Errorf("no start under %q at the collector yet (client %+v)", probePrefix, c.Stats())
	})
	waitFor(tb, 10*time.Second, "the probes to be accounted for", func() error { return settled(c, accounted) })
	return c.Stats()
}

// accountedFor is the number of events s accounts for.
func accountedFor(s client.Stats) uint64 { return s.Sent + s.Dropped + s.Errors }

// rawPull is a PULL socket bound to a free loopback port, closed at
// cleanup, with linger 0, a receive timeout and opts (applied before the
// bind), and its endpoint: a stand-in collector that shows the wire.
func rawPull(tb testing.TB, recvTimeout time.Duration, opts ...func(*zmq.Socket) error) (*zmq.Socket, string) {
	tb.Helper()
	pull, err := zmq.NewSocket(zmq.PULL)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = pull.Close() })
	opts = append([]func(*zmq.Socket) error{
		func(s *zmq.Socket) error { return s.SetLinger(0) },
		func(s *zmq.Socket) error { return s.SetRcvtimeo(recvTimeout) },
	}, opts...)
	for _, set := range opts {
		if err := set(pull); err != nil {
			tb.Fatal(err)
		}
	}
	if err := pull.Bind("tcp://127.0.0.1:*"); err != nil {
		tb.Fatal(err)
	}
	addr, err := pull.GetLastEndpoint()
	if err != nil {
		tb.Fatal(err)
	}
	return pull, addr
}
