package client_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/gstats/gstats/client"
)

// benchWriter is a ResponseWriter with everything net/http's HTTP/1 writer
// has (Flusher, Hijacker, ReaderFrom), doing nothing, so that the
// benchmarks measure the middleware and not the writer.
type benchWriter struct {
	h      http.Header
	status int
}

func (w *benchWriter) Header() http.Header         { return w.h }
func (w *benchWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *benchWriter) WriteHeader(code int)        { w.status = code }
func (w *benchWriter) Flush()                      {}
func (w *benchWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return nil, nil, errors.New("not supported")
}
func (w *benchWriter) ReadFrom(r io.Reader) (int64, error) { return io.Copy(io.Discard, r) }

var noop = http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})

// benchClient returns a client sending to a gstats-collectd process (so
// that the figures count only this process's work), or to an address
// nothing listens on.
func benchClient(b *testing.B, up bool) *client.Client {
	b.Helper()
	addr := "tcp://127.0.0.1:1" // nothing listens on port 1
	var col *collector
	if up {
		col = startCollectd(b)
		addr = col.stats
	}
	c := newClient(b, client.Options{Address: addr, Prefix: "bench"})
	if up {
		connected(b, c, col)
	}
	return c
}

// reportSent reports, per operation, what became of the events queued
// during the benchmark, once the sender has caught up: sent, and dropped
// (queue_full of them at the queue, by the caller).
func reportSent(b *testing.B, c *client.Client, before client.Stats, perOp uint64) {
	b.Helper()
	b.StopTimer()
	want := before.Sent + before.Dropped + before.Errors + uint64(b.N)*perOp
	waitFor(b, 30*time.Second, "the sender to catch up", func() error { return settled(c, want) })
	s := c.Stats()
	b.ReportMetric(float64(s.Sent-before.Sent)/float64(b.N), "sent/op")
	b.ReportMetric(float64(s.Dropped-before.Dropped)/float64(b.N), "dropped/op")
	b.ReportMetric(float64(s.QueueFull-before.QueueFull)/float64(b.N), "queue_full/op")
}

// pacer, in paced benchmarks, stops the clock every so many operations
// until the sender has caught up, so that the queue never overflows and
// every event takes the path of an accepted one. A flood (pacer nil)
// fills the queue, and most events are dropped at it.
type pacer struct {
	c     *client.Client
	every int
	n     int
	want  uint64
}

func newPacer(paced bool, c *client.Client, eventsPerOp int) *pacer {
	if !paced {
		return nil
	}
	s := c.Stats()
	return &pacer{c: c, every: client.DefaultQueueSize / 4 / eventsPerOp, want: s.Sent + s.Dropped + s.Errors}
}

func (p *pacer) step(b *testing.B, eventsPerOp int) {
	if p == nil {
		return
	}
	p.want += uint64(eventsPerOp)
	if p.n++; p.n%p.every != 0 {
		return
	}
	b.StopTimer()
	for settled(p.c, p.want) != nil {
		time.Sleep(50 * time.Microsecond)
	}
	b.StartTimer()
}

func loadName(paced bool) string {
	if paced {
		return "load=paced"
	}
	return "load=flood"
}

func BenchmarkBareHandler(b *testing.B) {
	w := &benchWriter{h: http.Header{}}
	r, _ := http.NewRequest(http.MethodGet, "/", nil)
	b.ReportAllocs()
	for b.Loop() {
		noop.ServeHTTP(w, r)
	}
}

// The benchmarks set up their client in the parent benchmark, which runs
// once, and measure in a sub-benchmark, which runs for each b.N tried.

func BenchmarkMiddleware(b *testing.B) {
	for _, up := range []bool{true, false} {
		c := benchClient(b, up)
		h := c.Middleware(noop)
		for _, paced := range []bool{true, false} {
			b.Run(collectorState(up)+"/"+loadName(paced), func(b *testing.B) {
				w := &benchWriter{h: http.Header{}}
				r, _ := http.NewRequest(http.MethodGet, "/", nil)
				before := c.Stats()
				p := newPacer(paced, c, 2)
				b.ReportAllocs()
				for b.Loop() {
					h.ServeHTTP(w, r)
					p.step(b, 2)
				}
				reportSent(b, c, before, 2)
			})
		}
	}
}

// BenchmarkMiddlewareParallel runs the middleware from GOMAXPROCS
// goroutines, as a busy server does.
func BenchmarkMiddlewareParallel(b *testing.B) {
	c := benchClient(b, true)
	h := c.Middleware(noop)
	b.Run(collectorState(true), func(b *testing.B) {
		r, _ := http.NewRequest(http.MethodGet, "/", nil)
		before := c.Stats()
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			w := &benchWriter{h: http.Header{}}
			for pb.Next() {
				h.ServeHTTP(w, r)
			}
		})
		reportSent(b, c, before, 2)
	})
}

// BenchmarkFinish is the cost of Finish for the caller: one enqueue.
func BenchmarkFinish(b *testing.B) {
	c := benchClient(b, true)
	for _, paced := range []bool{true, false} {
		b.Run(collectorState(true)+"/"+loadName(paced), func(b *testing.B) {
			before := c.Stats()
			p := newPacer(paced, c, 1)
			b.ReportAllocs()
			for b.Loop() {
				c.Finish("bench", 1500*time.Microsecond, 200)
				p.step(b, 1)
			}
			reportSent(b, c, before, 1)
		})
	}
}

// BenchmarkSender is the delivery rate to a gstats-collectd process, from
// Finish to the collector's count: finishes are queued in bursts of half
// the queue (the socket's SendHWM holds a whole burst), and each burst is
// waited for at the collector.
func BenchmarkSender(b *testing.B) {
	const queue, burst = 1 << 16, 1 << 15
	col := startCollectd(b)
	c := newClient(b, client.Options{Address: col.stats, Prefix: "bench", QueueSize: queue, SendHWM: queue})
	connected(b, c, col)
	delivered := func() int64 { return col.statsOf(b)["sender"].Finished }
	b.Run(collectorState(true), func(b *testing.B) {
		before := c.Stats()
		want := delivered()
		wait := func() {
			deadline := time.Now().Add(30 * time.Second)
			for delivered() < want {
				if time.Now().After(deadline) {
					b.Fatalf("the collector counted %d finishes, want %d (client %+v)", delivered(), want, c.Stats())
				}
				time.Sleep(5 * time.Millisecond) // each STATS is a new connection
			}
		}
		b.ReportAllocs()
		for b.Loop() {
			c.Finish("sender", 1500*time.Microsecond, 200)
			if want++; want%burst == 0 {
				wait()
			}
		}
		wait()
		s := c.Stats()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		b.ReportMetric(float64(s.Dropped-before.Dropped)/float64(b.N), "dropped/op")
	})
}

func collectorState(up bool) string {
	if up {
		return "collector=up"
	}
	return "collector=down"
}
