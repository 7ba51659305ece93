package gstats

import (
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/influxdata/telegraf/testutil"
)

// benchMessages builds a realistic stream: start and finish pairs over a few
// prefixes, durations log-normal around 40 ms, status codes mostly 200.
func benchMessages(n int) [][][]byte {
	r := rand.New(rand.NewPCG(1, 2))
	prefixes := [][]byte{[]byte("shop"), []byte("api"), []byte("admin"), []byte("static")}
	out := make([][][]byte, n)
	for i := range out {
		p := prefixes[i%len(prefixes)]
		if i%2 == 0 {
			out[i] = [][]byte{p, {}}
			continue
		}
		ms := 40 * mathExp(r.NormFloat64()*0.8)
		status := []byte("200")
		if r.IntN(50) == 0 {
			status = []byte("503")
		}
		out[i] = [][]byte{p, strconv.AppendFloat(nil, ms, 'f', 3, 64), status}
	}
	return out
}

// queueAll connects a PUSH socket to addr before anything is bound there
// and queues msgs in it; they flow once a receiver binds. Receivers are
// then timed draining the same backlog, which measures their capacity
// rather than the sender's.
func queueAll(b *testing.B, addr string, msgs [][][]byte) *zmq.Socket {
	b.Helper()
	s, err := zmq.NewSocket(zmq.PUSH)
	if err != nil {
		b.Fatal(err)
	}
	_ = s.SetLinger(0)
	_ = s.SetSndhwm(len(msgs) + 1)
	if err := s.Connect(addr); err != nil {
		b.Fatal(err)
	}
	for _, m := range msgs {
		last := len(m) - 1
		for i, f := range m {
			flag := zmq.SNDMORE | zmq.DONTWAIT
			if i == last {
				flag = zmq.DONTWAIT
			}
			if _, err := s.SendBytes(f, flag); err != nil {
				b.Fatalf("queueing: %v", err)
			}
		}
	}
	return s
}

// freeAddr returns a loopback TCP address nobody listens on right now.
func freeAddr(b *testing.B) string {
	b.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return "tcp://" + l.Addr().String()
}

// drainBare binds a bare PULL receiver (the limit) at addr and returns how
// long it took to receive n messages.
func drainBare(b *testing.B, addr string, n int) time.Duration {
	b.Helper()
	// Its own context, as the collector has: the sender's I/O thread is
	// not shared with it.
	zctx, err := zmq.NewContext()
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = zctx.Term() }()
	s, err := zctx.NewSocket(zmq.PULL)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	_ = s.SetLinger(0)
	_ = s.SetRcvhwm(defaultReceiveQueue)
	t0 := time.Now()
	if err := s.Bind(addr); err != nil {
		b.Fatal(err)
	}
	for range n {
		if _, err := s.RecvMessageBytes(0); err != nil {
			b.Fatal(err)
		}
	}
	return time.Since(t0)
}

// drainGstats starts the collector at addr and returns how long it took to
// handle n messages, and how many it accepted.
func drainGstats(b *testing.B, addr string, n int) (time.Duration, int64) {
	b.Helper()
	g := initPlugin(b, addr, "", nil)
	t0 := time.Now()
	if err := g.Start(&testutil.Accumulator{}); err != nil {
		b.Fatal(err)
	}
	defer g.Stop()
	deadline := t0.Add(60 * time.Second)
	for handled(g) < int64(n) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Microsecond)
	}
	return time.Since(t0), g.stats.accepted.Load()
}

// BenchmarkIngest has a bare PULL receiver and the collector drain the same
// backlog over real loopback TCP, in the same run, and reports both rates,
// their ratio and the messages the collector lost.
func BenchmarkIngest(b *testing.B) {
	for _, n := range []int{100_000, 400_000} {
		b.Run(fmt.Sprintf("msgs=%d", n), func(b *testing.B) {
			msgs := benchMessages(n)
			var bare, coll time.Duration
			var accepted int64
			for b.Loop() {
				addr := freeAddr(b)
				s := queueAll(b, addr, msgs)
				bare += drainBare(b, addr, n)
				_ = s.Close()

				addr = freeAddr(b)
				s = queueAll(b, addr, msgs)
				d, acc := drainGstats(b, addr, n)
				_ = s.Close()
				coll += d
				accepted += acc
			}
			bareRate := float64(n*b.N) / bare.Seconds()
			collRate := float64(n*b.N) / coll.Seconds()
			b.ReportMetric(bareRate, "bare_msgs/s")
			b.ReportMetric(collRate, "gstats_msgs/s")
			b.ReportMetric(collRate/bareRate, "ratio")
			b.ReportMetric(float64(int64(n*b.N)-accepted), "lost")
		})
	}
}

// BenchmarkStatsReply times a whole STATS reply (window merge and JSON) for
// one prefix holding 1e3 to 1e6 durations spread over the window.
func BenchmarkStatsReply(b *testing.B) {
	for _, n := range []int{1_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprintf("durations=%d", n), func(b *testing.B) {
			g := New()
			g.Log = testutil.Logger{Quiet: true}
			if err := g.Init(); err != nil {
				b.Fatal(err)
			}
			win, err := newWindowFor(g)
			if err != nil {
				b.Fatal(err)
			}
			g.win = win
			g.stats.init()
			g.epoch = time.Now().Add(-time.Duration(g.Window))
			r := rand.New(rand.NewPCG(3, 4))
			span := time.Duration(g.Window) - time.Second
			for i := range n {
				at := g.epoch.Add(span * time.Duration(i) / time.Duration(n))
				_ = g.win.Finish("app", 40*mathExp(r.NormFloat64()*0.8), 200, at)
			}
			var size int
			for b.Loop() {
				size = len(mustJSON(g.statsReply()))
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/stats")
			b.ReportMetric(float64(size), "reply_bytes")
		})
	}
}
