package window_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/gstats/gstats/plugins/inputs/gstats/window"
)

// defaultConfig is the plugin's default window: 600 s in 60 slots of 10 s.
func defaultConfig() window.Config {
	return window.Config{
		Window:      600 * time.Second,
		Slots:       60,
		Percentiles: []float64{50, 90, 95, 99},
		MaxPrefixes: 1000,
		MaxRaw:      1000,
	}
}

// benchDurations returns n request durations in ms, log-normal around
// 50 ms with a few zeros, always the same for a given n.
func benchDurations(n int) []float64 {
	rng := rand.New(rand.NewPCG(7, uint64(n)))
	ds := make([]float64, n)
	for i := range ds {
		if rng.IntN(50) == 0 {
			continue // a request under 1 ms, sent as 0
		}
		ds[i] = math.Exp(rng.NormFloat64() + math.Log(50))
	}
	return ds
}

// wideDurations returns n durations in ms spread evenly in log scale over
// the whole range one sketch holds without collapsing (about 2000 bins of
// 2 %), from 1 µs to 10^14 ms: the most sketch bins traffic can fill.
func wideDurations(n int) []float64 {
	rng := rand.New(rand.NewPCG(11, uint64(n)))
	ds := make([]float64, n)
	for i := range ds {
		ds[i] = 1e-3 * math.Exp(rng.Float64()*math.Log(1e17))
	}
	return ds
}

// boundedDurations returns n durations in ms spread evenly in log scale from
// 1 ms to 10 s: the sketch bins they fill do not depend on n.
func boundedDurations(n int) []float64 {
	rng := rand.New(rand.NewPCG(13, uint64(n)))
	ds := make([]float64, n)
	for i := range ds {
		ds[i] = math.Exp(rng.Float64() * math.Log(1e4))
	}
	return ds
}

// fillEvenly finishes n requests of each prefix, spread evenly over the
// window [base, base+Window) and side by side in time (the window's clock
// never goes back), with durations taken in turn from ds. At
// base+Window−1ns every slot of every prefix holds n/Slots durations.
func fillEvenly(tb testing.TB, w *window.Window, prefixes []string, n int, ds []float64) {
	tb.Helper()
	step := w.Config().Window / time.Duration(n)
	for i := range n {
		now := base.Add(time.Duration(i) * step)
		for _, p := range prefixes {
			if err := w.Finish(p, ds[i%len(ds)], 200, now); err != nil {
				tb.Fatal(err)
			}
		}
	}
}

// BenchmarkStats measures one STATS query of a prefix with 1e3 to 1e6
// durations in the window (PROTOCOL defect 7): a query merges the moments
// of the slots and walks the prefix's summed histogram once, so ns/stats
// depends on the number of bins the durations span, not on their number.
// Log-normal durations span more bins as more of them reach the tails;
// durations of a fixed range (1ms-10s) show the cost flat; the wide case
// spans the most bins there are: the ceiling of ns/stats.
func BenchmarkStats(b *testing.B) {
	for _, c := range []struct {
		name string
		n    int
		ds   []float64
	}{
		{"events=1e3", 1e3, benchDurations(1e3)},
		{"events=1e5", 1e5, benchDurations(1 << 16)},
		{"events=1e6", 1e6, benchDurations(1 << 16)},
		{"events=1e3/1ms-10s", 1e3, boundedDurations(1 << 16)},
		{"events=1e6/1ms-10s", 1e6, boundedDurations(1 << 16)},
		{"events=1e6/wide", 1e6, wideDurations(1 << 16)},
	} {
		b.Run(c.name, func(b *testing.B) {
			n := c.n
			w := newWindow(b, defaultConfig())
			fillEvenly(b, w, []string{"app"}, n, c.ds)
			now := base.Add(w.Config().Window - time.Nanosecond)
			if st := w.Stats(now)["app"]; st.Count != int64(n) {
				b.Fatalf("window holds %d durations, want %d", st.Count, n)
			}
			b.ReportAllocs()
			for b.Loop() {
				w.Stats(now)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/stats")
		})
	}
}

// BenchmarkFinish measures recording finishes in steady state: every slot
// of every prefix already holds durations, and the clock moves 100 µs per
// finish, so the slots keep rotating.
func BenchmarkFinish(b *testing.B) {
	for _, prefixes := range []int{1, 1000} {
		b.Run(fmt.Sprintf("prefixes=%d", prefixes), func(b *testing.B) {
			w := newWindow(b, defaultConfig())
			names := make([]string, prefixes)
			for i := range names {
				names[i] = fmt.Sprintf("app%04d", i)
			}
			ds := benchDurations(4096)
			// Warm up: one finish every 10 ms for a whole window reaches
			// every slot of every prefix.
			now := base
			for i := range int(w.Config().Window / (10 * time.Millisecond)) {
				now = now.Add(10 * time.Millisecond)
				if err := w.Finish(names[i%len(names)], ds[i%len(ds)], 200, now); err != nil {
					b.Fatal(err)
				}
			}
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				now = now.Add(100 * time.Microsecond)
				if err := w.Finish(names[i%len(names)], ds[i%len(ds)], 200, now); err != nil {
					b.Fatal(err)
				}
				i++
			}
			b.ReportMetric(float64(i)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// prefixKinds are the shapes of prefix whose memory is measured, with the
// number of prefixes to measure at once.
var prefixKinds = []struct {
	name string
	n    int
	fill func(tb testing.TB, w *window.Window, prefixes []string)
}{
	{"idle", 1000, func(tb testing.TB, w *window.Window, prefixes []string) {
		// Seen (a start), no duration yet.
		for _, p := range prefixes {
			if err := w.Start(p, base); err != nil {
				tb.Fatal(err)
			}
		}
	}},
	{"one-duration", 1000, func(tb testing.TB, w *window.Window, prefixes []string) {
		fillEvenly(tb, w, prefixes, 1, []float64{50})
	}},
	{"busy-100/slot", 100, func(tb testing.TB, w *window.Window, prefixes []string) {
		fillEvenly(tb, w, prefixes, 100*w.Config().Slots, benchDurations(1<<16))
	}},
	{"busy-10000/slot", 4, func(tb testing.TB, w *window.Window, prefixes []string) {
		fillEvenly(tb, w, prefixes, 10000*w.Config().Slots, benchDurations(1<<16))
	}},
	{"busy-10000/slot/wide", 4, func(tb testing.TB, w *window.Window, prefixes []string) {
		fillEvenly(tb, w, prefixes, 10000*w.Config().Slots, wideDurations(1<<16))
	}},
	{"hostile", 4, hostileFill},
}

// settledHeap reads the memory statistics once garbage, sync.Pool caches
// included, has been collected: the second GC drops what the first moved to
// the pools' victim caches.
func settledHeap(m *runtime.MemStats) {
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(m)
}

// filledWindow returns a window with n prefixes filled by fill, and the live
// heap that the window takes, divided by n.
func filledWindow(tb testing.TB, cfg window.Config, n int, fill func(testing.TB, *window.Window, []string)) (*window.Window, float64) {
	tb.Helper()
	prefixes := make([]string, n)
	for i := range prefixes {
		prefixes[i] = fmt.Sprintf("app%04d", i)
	}
	var before, after runtime.MemStats
	settledHeap(&before)
	w := newWindow(tb, cfg)
	fill(tb, w, prefixes)
	settledHeap(&after)
	if w.Len() != n {
		tb.Fatalf("window holds %d prefixes, want %d", w.Len(), n)
	}
	return w, float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(n)
}

// BenchmarkPrefix reports the memory of one prefix (B/prefix): an idle one,
// one holding a single duration, busy ones with every slot populated at two
// request rates 100 times apart, with durations filling every bin of every
// slot (wide), and with hostile durations on top (zeros, sub-microsecond
// ones, 1e300 ms): the ceiling, which MaxPrefixBytes bounds. The loop is a
// query of one such prefix.
func BenchmarkPrefix(b *testing.B) {
	for _, k := range prefixKinds {
		b.Run(k.name, func(b *testing.B) {
			w, perPrefix := filledWindow(b, defaultConfig(), k.n, k.fill)
			now := base.Add(w.Config().Window - time.Nanosecond)
			b.ReportAllocs()
			for b.Loop() {
				w.PrefixStats("app0000", now)
			}
			b.ReportMetric(perPrefix, "B/prefix")
			b.ReportMetric(float64(window.MaxPrefixBytes(w.Config())), "max_B/prefix")
		})
	}
}
