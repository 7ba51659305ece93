package gstats

import (
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/gstats/gstats/internal/zbatch"

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
// long it took to receive n messages: in batches, as the collector reads
// them, or frame by frame through the zmq4 binding.
func drainBare(b *testing.B, addr string, n int, batched bool) time.Duration {
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
	rx, err := zbatch.NewReceiver(s, batchSize, batchBytes)
	if err != nil {
		b.Fatal(err)
	}
	defer rx.Close()
	t0 := time.Now()
	if err := s.Bind(addr); err != nil {
		b.Fatal(err)
	}
	poller := zmq.NewPoller()
	poller.Add(s, zmq.POLLIN)
	for got := 0; got < n; {
		if !batched {
			if _, err := s.RecvMessageBytes(0); err != nil {
				b.Fatal(err)
			}
			got++
			continue
		}
		batch, err := rx.Recv()
		if err != nil {
			b.Fatal(err)
		}
		if batch.Len() == 0 {
			if _, err := poller.Poll(time.Second); err != nil {
				b.Fatal(err)
			}
		}
		got += batch.Len()
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

// BenchmarkIngest has bare PULL receivers and the collector drain the same
// backlog of classic messages over real loopback TCP, in the same run, and
// reports the rates, the collector's ratio to the batched bare receiver
// (the limit: the same receive path, minus the collector's work) and the
// messages it lost.
func BenchmarkIngest(b *testing.B) {
	for _, n := range []int{100_000, 400_000} {
		b.Run(fmt.Sprintf("msgs=%d", n), func(b *testing.B) {
			msgs := benchMessages(n)
			var bare, frames, coll time.Duration
			var accepted int64
			for b.Loop() {
				for _, batched := range []bool{true, false} {
					addr := freeAddr(b)
					s := queueAll(b, addr, msgs)
					d := drainBare(b, addr, n, batched)
					_ = s.Close()
					if batched {
						bare += d
					} else {
						frames += d
					}
				}
				addr := freeAddr(b)
				s := queueAll(b, addr, msgs)
				d, acc := drainGstats(b, addr, n)
				_ = s.Close()
				coll += d
				accepted += acc
			}
			rate := func(d time.Duration) float64 { return float64(n*b.N) / d.Seconds() }
			b.ReportMetric(rate(bare), "bare_msgs/s")
			b.ReportMetric(rate(frames), "bare_per_frame_msgs/s")
			b.ReportMetric(rate(coll), "gstats_msgs/s")
			b.ReportMetric(rate(coll)/rate(bare), "ratio")
			b.ReportMetric(float64(int64(n*b.N)-accepted), "lost")
		})
	}
}
