package gstats

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/influxdata/telegraf/testutil"
)

// gridDurations and gridPrefixes are the sizes BenchmarkStatsGrid crosses,
// durations named as the benchmark names them: 6e6 durations is a 600 s
// window at 10 000 requests/s.
var (
	gridDurations = []struct {
		name string
		n    int
	}{{"1e3", 1e3}, {"1e4", 1e4}, {"1e5", 1e5}, {"1e6", 1e6}, {"6e6", 6e6}}
	gridPrefixes = []int{1, 100, 10_000}
)

// gridPlugin is a plugin, not started, whose window holds the durations of
// one grid cell.
type gridPlugin struct {
	g         *Gstats
	durations int     // durations in the window, all prefixes together
	heap      float64 // live heap the filled window takes, bytes
}

// newGridPlugin returns a plugin with the default configuration (max_prefixes
// raised to fit) whose window holds n durations split evenly over p
// prefixes, at least one each. The durations are log-normal (median 40 ms,
// sigma 0.8), and their finishes are spread evenly over the window and
// interleaved between prefixes, as steady traffic spreads them.
//
// The window ends one hour ahead, on the last nanosecond of a slot: the
// window's clock never goes back, so every query of the benchmark happens
// at that instant, whatever the time the benchmark takes, and every
// duration stays in the window.
func newGridPlugin(b *testing.B, n, p int) *gridPlugin {
	b.Helper()
	g := New()
	g.Log = testutil.Logger{Quiet: true}
	g.MaxPrefixes = max(g.MaxPrefixes, p)
	if err := g.Init(); err != nil {
		b.Fatal(err)
	}
	g.stats.init()
	g.self = registerSelfStats("inproc://stats-grid")
	g.epoch = time.Now()
	g.started = g.epoch

	names := make([]string, p)
	for i := range names {
		names[i] = fmt.Sprintf("app%05d", i)
	}
	perPrefix := max(1, n/p)
	total := perPrefix * p

	var before, after runtime.MemStats
	settledHeap(&before)
	win, err := newWindowFor(g)
	if err != nil {
		b.Fatal(err)
	}
	width := win.SlotWidth()
	span := time.Duration(g.Window)
	end := g.epoch.Add(time.Hour).Truncate(width).Add(width - time.Nanosecond)
	start := end.Add(time.Nanosecond - span)
	r := rand.New(rand.NewPCG(3, 4))
	for i := range total {
		at := start.Add(time.Duration(float64(span) * float64(i) / float64(total)))
		if err := win.Finish(names[i%p], 40*math.Exp(0.8*r.NormFloat64()), 200, at); err != nil {
			b.Fatal(err)
		}
	}
	settledHeap(&after)
	g.win = win

	if st, ok := win.PrefixStats(names[0], end); !ok || st.Count != int64(perPrefix) {
		b.Fatalf("prefix %s holds %d durations in the window, want %d", names[0], st.Count, perPrefix)
	}
	return &gridPlugin{g: g, durations: total, heap: float64(int64(after.HeapAlloc) - int64(before.HeapAlloc))}
}

// settledHeap reads the memory statistics once garbage has been collected.
func settledHeap(m *runtime.MemStats) {
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(m)
}

// warmUp calls f, untimed, for 20 ms and at least once. Right after a
// window is filled the first calls run up to three times slower (the
// runtime is still returning the fill's garbage, caches are cold); a
// median over 20 calls is not enough to hide that.
func warmUp(f func()) {
	for t0, i := time.Now(), 0; i == 0 || time.Since(t0) < 20*time.Millisecond; i++ {
		f()
	}
}

// timings are the durations of the timed calls of one benchmark.
type timings []time.Duration

// medianMicros is the median call, in microseconds: unlike the mean (ns/op)
// it does not move when a garbage collection or the host's other work
// lands in one of the few calls a short run makes.
func (ts timings) medianMicros() float64 {
	if len(ts) == 0 {
		return 0
	}
	s := slices.Clone(ts)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + m) / 2
	}
	return float64(m.Nanoseconds()) / 1e3
}

func (gp *gridPlugin) reportMemory(b *testing.B, prefixes int) {
	b.ReportMetric(gp.heap/float64(prefixes), "B/prefix")
	b.ReportMetric(gp.heap/(1<<20), "heap_MiB")
	b.ReportMetric(float64(gp.durations), "durations")
}

// BenchmarkStatsGrid times the two queries over the window with 1e3 to 6e6
// durations split over 1, 100 and 10 000 prefixes:
//
//   - op=stats: a whole STATS reply, built and JSON-encoded as the control
//     socket does (us/stats, reply_bytes);
//   - op=gather: a Telegraf Gather into a cleared accumulator (us/gather).
//
// us/stats and us/gather are the median call, after 20 ms of untimed
// calls; ns/op is the mean, garbage collection included. Each also reports
// the live heap of the filled window (heap_MiB, B/prefix) and the
// durations it holds (at least one per prefix, so more than N when N is
// below the number of prefixes). The window is filled once per cell,
// directly (not over sockets): 6e6 finishes take about a second.
func BenchmarkStatsGrid(b *testing.B) {
	for _, d := range gridDurations {
		for _, p := range gridPrefixes {
			b.Run(fmt.Sprintf("durations=%s/prefixes=%d", d.name, p), func(b *testing.B) {
				gp := newGridPlugin(b, d.n, p)
				b.Run("op=stats", func(b *testing.B) {
					var size int
					var times timings
					warmUp(func() { mustJSON(gp.g.statsReply()) })
					for b.Loop() {
						t0 := time.Now()
						size = len(mustJSON(gp.g.statsReply()))
						times = append(times, time.Since(t0))
					}
					b.ReportMetric(times.medianMicros(), "us/stats")
					b.ReportMetric(float64(size), "reply_bytes")
					gp.reportMemory(b, p)
				})
				b.Run("op=gather", func(b *testing.B) {
					acc := &testutil.Accumulator{}
					var times timings
					warmUp(func() {
						acc.ClearMetrics()
						if err := gp.g.Gather(acc); err != nil {
							b.Fatal(err)
						}
					})
					for b.Loop() {
						acc.ClearMetrics()
						t0 := time.Now()
						if err := gp.g.Gather(acc); err != nil {
							b.Fatal(err)
						}
						times = append(times, time.Since(t0))
					}
					if got := acc.NMetrics(); got != uint64(p+1) {
						b.Fatalf("Gather emitted %d metrics, want %d", got, p+1)
					}
					b.ReportMetric(times.medianMicros(), "us/gather")
					gp.reportMemory(b, p)
				})
			})
		}
	}
}

// BenchmarkStatsGrowth measures how STATS for one prefix grows from 1e3 to
// 6e6 durations in the window, side by side: each iteration asks both
// windows in turn, so a change of the host's speed hits both alike. It
// reports each median and their ratio (growth).
func BenchmarkStatsGrowth(b *testing.B) {
	small := newGridPlugin(b, 1e3, 1)
	large := newGridPlugin(b, 6e6, 1)
	for _, gp := range []*gridPlugin{small, large} {
		warmUp(func() { mustJSON(gp.g.statsReply()) })
	}
	var ts, tl timings
	for b.Loop() {
		for _, c := range []struct {
			gp *gridPlugin
			ts *timings
		}{{small, &ts}, {large, &tl}} {
			t0 := time.Now()
			mustJSON(c.gp.g.statsReply())
			*c.ts = append(*c.ts, time.Since(t0))
		}
	}
	b.ReportMetric(ts.medianMicros(), "us/stats_1e3")
	b.ReportMetric(tl.medianMicros(), "us/stats_6e6")
	b.ReportMetric(tl.medianMicros()/ts.medianMicros(), "growth")
}
