package window

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

var testBase = time.Unix(1_700_000_000, 0)

func mustNew(t *testing.T, cfg Config) *Window {
	t.Helper()
	w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// slotCounts returns the durations of slot s per bin (wrapped counts
// included) and the number of them under MinBinned.
func (p *prefixState) slotCounts(s *slot) (bins map[int]uint64, zero int64) {
	bins = map[int]uint64{}
	var binned uint64
	if s.dense {
		for i, c := range s.bins {
			if c > 0 {
				bins[int(s.lo)+i] += uint64(c)
				binned += uint64(c)
			}
		}
	} else {
		for _, b := range s.bins {
			bins[int(b)]++
			binned++
		}
	}
	for k, v := range p.wraps {
		if k.slot == s.index {
			bins[k.bin] += v << 32
			binned += v << 32
		}
	}
	return bins, s.n - int64(binned)
}

// checkSum verifies the invariant the queries rely on: the sum holds
// exactly the histograms of the slots whose index is above the floor, and
// no array exceeds its bound.
func checkSum(p *prefixState) error {
	want := map[int]uint64{}
	var wantZero int64
	for i := range p.slots {
		s := &p.slots[i]
		switch {
		case s.dense && len(s.bins) > numBins:
			return fmt.Errorf("slot %d counts %d bins, more than %d", s.index, len(s.bins), numBins)
		case !s.dense && cap(s.bins) > 1024:
			return fmt.Errorf("slot %d lists %d durations, more than 1024", s.index, cap(s.bins))
		}
		if s.index <= p.floor {
			continue
		}
		bins, zero := p.slotCounts(s)
		for b, c := range bins {
			want[b] += c
		}
		wantZero += zero
	}
	if len(p.sum.counts) > numBins {
		return fmt.Errorf("the sum counts %d bins, more than %d", len(p.sum.counts), numBins)
	}
	if p.sum.zero != wantZero {
		return fmt.Errorf("the sum counts %d durations under MinBinned, the slots %d", p.sum.zero, wantZero)
	}
	for i, c := range p.sum.counts {
		if b := p.sum.lo + i; c != want[b] {
			return fmt.Errorf("the sum counts %d durations in bin %d, the slots %d", c, b, want[b])
		}
		delete(want, p.sum.lo+i)
	}
	for b, c := range want {
		if c != 0 {
			return fmt.Errorf("the slots count %d durations in bin %d, outside the sum", c, b)
		}
	}
	return nil
}

// event is one finish kept by the naive model.
type event struct {
	t  int64
	ms float64
}

// hostileDuration draws durations of every kind the window may see: zeros,
// sub-microsecond ones, real ones, and ones far beyond any real request.
func hostileDuration(rng *rand.Rand) float64 {
	switch x := rng.Float64(); {
	case x < 0.05:
		return 0
	case x < 0.1:
		return MinBinned * rng.Float64() // under 1 µs
	case x < 0.12:
		return MinBinned
	case x < 0.15:
		return math.Exp(rng.Float64() * 700) // up to 1e304 ms
	case x < 0.5:
		return math.Round(math.Exp(1.5*rng.NormFloat64() + 4))
	default:
		return math.Exp(2*rng.NormFloat64() + 3)
	}
}

// TestSumAgainstRecomputation plays random traffic (slot rotations, queries
// long after, clock steps back, resets, hostile durations) and checks after
// every step that each prefix's sum equals the sum recomputed from its
// slots, and at every query that each percentile is exactly the value of
// the bin that holds the exact duration at its rank, computed from a naive
// list of every finish.
func TestSumAgainstRecomputation(t *testing.T) {
	configs := []struct {
		window time.Duration
		slots  int
	}{
		{10 * time.Second, 10},
		{7 * time.Second, 3},
		{5 * time.Second, 1},
		{600 * time.Second, 60},
	}
	prefixes := []string{"a", "b", "c"}
	for _, c := range configs {
		for seed := uint64(1); seed <= 3; seed++ {
			t.Run(fmt.Sprintf("%v in %d slots/seed=%d", c.window, c.slots, seed), func(t *testing.T) {
				cfg := Config{Window: c.window, Slots: c.slots, MaxPrefixes: len(prefixes),
					Percentiles: []float64{99.9, 1, 50, 25, 75, 90, 95, 99, 100, 5}}
				w := mustNew(t, cfg)
				rng := rand.New(rand.NewPCG(seed, 0xbb67ae8584caa73b))
				width := int64(cfg.Window) / int64(cfg.Slots)
				events := map[string][]event{}
				now := testBase
				queries, checked := 0, int64(0)
				for step := range 20000 {
					switch x := rng.Float64(); {
					case x < 0.001:
						now = now.Add(-time.Duration(rng.Int64N(width)))
					case x < 0.002:
						now = now.Add(cfg.Window + time.Duration(rng.Int64N(int64(cfg.Window))))
					case x < 0.01:
						now = now.Add(time.Duration(rng.Int64N(2 * width)))
					default:
						now = now.Add(time.Duration(rng.ExpFloat64() * float64(width) / 200))
					}
					name := prefixes[rng.IntN(len(prefixes))]
					switch x := rng.Float64(); {
					case x < 0.0005:
						w.Reset(now)
						clear(events)
					case x < 0.97:
						ms := hostileDuration(rng)
						if err := w.Finish(name, ms, 200, now); err != nil {
							t.Fatal(err)
						}
						events[name] = append(events[name], event{w.latest, ms})
					default:
						queries++
						if rng.IntN(20) == 0 {
							now = now.Add(time.Duration(rng.Int64N(int64(cfg.Window))))
						}
						got := w.Stats(now)
						for pname, p := range w.prefix {
							if err := checkSum(p); err != nil {
								t.Fatalf("step %d, prefix %s, after a query: %v", step, pname, err)
							}
						}
						for pname, st := range got {
							checked += st.Count
							if msg := checkPercentiles(w, st, events[pname], w.latest); msg != "" {
								t.Fatalf("step %d, prefix %s: %s", step, pname, msg)
							}
						}
					}
					if step%16 != 0 {
						continue // the check is slow; a broken sum stays broken
					}
					for pname, p := range w.prefix {
						if err := checkSum(p); err != nil {
							t.Fatalf("step %d, prefix %s: %v", step, pname, err)
						}
					}
				}
				if queries < 300 || checked == 0 {
					t.Fatalf("only %d queries over %d durations", queries, checked)
				}
			})
		}
	}
}

// checkPercentiles compares st with the naive answer from the events of
// its prefix at instant t.
func checkPercentiles(w *Window, st Stats, events []event, t int64) string {
	cur := t / w.width
	var xs []float64
	for _, e := range events {
		if w.live(e.t/w.width, cur) {
			xs = append(xs, e.ms)
		}
	}
	if int64(len(xs)) != st.Count {
		return fmt.Sprintf("count %d, naive %d", st.Count, len(xs))
	}
	if len(xs) == 0 {
		return ""
	}
	slices.Sort(xs)
	lo, hi := xs[0], xs[len(xs)-1]
	last := float64(len(xs) - 1)
	for i, q := range w.quant {
		rank := float64(q * last)
		var want float64
		switch {
		case rank >= last:
			want = hi
		case rank < 1:
			want = lo
		default:
			x := xs[int(rank)]
			if b := w.bin(x); b >= 0 {
				want = w.mapping.Value(w.base + b)
			}
			want = min(max(want, lo), hi)
			if x >= MinBinned && x < w.top && math.Abs(want-x) > RelativeAccuracy*x*(1+1e-9) {
				return fmt.Sprintf("p%v = %v for exact %v: beyond the relative accuracy", w.cfg.Percentiles[i], want, x)
			}
		}
		if st.Percentiles[i] != want {
			return fmt.Sprintf("p%v = %v, want %v (the value of the bin of the exact one, %d durations)",
				w.cfg.Percentiles[i], st.Percentiles[i], want, len(xs))
		}
	}
	return ""
}

// TestWrappedCounts fills one bin of a slot past 2^32 (the count is set
// close to it by hand) and checks that queries count the wrapped durations
// and that the slot leaves the sum whole, by expiry and by rotation.
func TestWrappedCounts(t *testing.T) {
	for _, leave := range []string{"expiry", "rotation"} {
		t.Run(leave, func(t *testing.T) {
			cfg := Config{Window: 10 * time.Second, Slots: 10, MaxPrefixes: 1, Percentiles: []float64{50}}
			w := mustNew(t, cfg)
			finish := func(ms float64, at time.Duration) {
				t.Helper()
				if err := w.Finish("a", ms, 200, testBase.Add(at)); err != nil {
					t.Fatal(err)
				}
			}
			for range 5 { // the fifth makes the slot dense
				finish(5, 0)
			}
			p := w.prefix["a"]
			s := &p.slots[(testBase.UnixNano()/w.width)%int64(cfg.Slots)]
			b := w.bin(5)
			if !s.dense || s.bins[b-int(s.lo)] != 5 {
				t.Fatalf("slot dense %v with bins %v, want 5 durations in bin %d", s.dense, s.bins, b)
			}
			const preset = math.MaxUint32 - 2 - 5 // 3 finishes from wrapping
			s.bins[b-int(s.lo)] += preset
			s.n += preset
			p.sum.counts[b-p.sum.lo] += preset
			for range 5 {
				finish(5, 0)
			}
			if got := s.bins[b-int(s.lo)]; got != 2 || p.wraps[wrapKey{s.index, b}] != 1 {
				t.Fatalf("bin count %d and wraps %v, want 2 and one wrap", got, p.wraps)
			}
			finish(500, time.Second) // in the next slot, which stays
			if err := checkSum(p); err != nil {
				t.Fatal(err)
			}
			st, _ := w.PrefixStats("a", testBase.Add(time.Second))
			if want := int64(1<<32 + 2 + 1); st.Count != want || !withinAccuracy(st.Percentiles[0], 5) {
				t.Fatalf("count %d and p50 %v, want %d and 5", st.Count, st.Percentiles[0], want)
			}
			at := cfg.Window // slot 0 has left; slot 1 has not
			if leave == "rotation" {
				finish(7, at) // reuses slot 0's place before any query
			} else {
				w.PrefixStats("a", testBase.Add(at))
			}
			if len(p.wraps) != 0 {
				t.Errorf("wraps %v left after the slot left", p.wraps)
			}
			if err := checkSum(p); err != nil {
				t.Fatal(err)
			}
			st, _ = w.PrefixStats("a", testBase.Add(at))
			var total uint64
			for _, c := range p.sum.counts {
				total += c
			}
			if int64(total)+p.sum.zero != st.Count {
				t.Errorf("the sum holds %d durations, the window %d", int64(total)+p.sum.zero, st.Count)
			}
		})
	}
}

func withinAccuracy(got, want float64) bool {
	return math.Abs(got-want) <= RelativeAccuracy*want
}

// TestBins checks the range of the bins: 1 µs is the first, anything under
// it counts as zero, and every duration up to the last bin's bound comes
// back within the relative accuracy.
func TestBins(t *testing.T) {
	w := mustNew(t, Config{Window: time.Second, Slots: 1, MaxPrefixes: 1})
	for _, c := range []struct {
		ms   float64
		want int
	}{
		{MinBinned, 0},
		{math.Nextafter(MinBinned, 0), -1},
		{0, -1},
		{-1, -1},
		{math.NaN(), -1},
		{w.top, numBins - 1},
		{1e300, numBins - 1},
		{math.MaxFloat64, numBins - 1},
		{math.Inf(1), numBins - 1},
	} {
		if got := w.bin(c.ms); got != c.want {
			t.Errorf("bin(%v) = %d, want %d", c.ms, got, c.want)
		}
	}
	if w.top < 5.9e14 {
		t.Errorf("the last bin starts at %v ms, want at least 5.9e14 (18 700 years)", w.top)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for range 100000 {
		x := MinBinned * math.Exp(rng.Float64()*math.Log(w.top/MinBinned))
		b := w.bin(x)
		if v := w.mapping.Value(w.base + b); b < 0 || b >= numBins || math.Abs(v-x) > RelativeAccuracy*x*(1+1e-9) {
			t.Fatalf("%v ms is in bin %d of value %v: beyond the relative accuracy", x, b, v)
		}
	}
}

// TestSlotMemoryForms checks the two forms of a slot's histogram: a list
// while it is the smaller, counts once a list would take more room.
func TestSlotMemoryForms(t *testing.T) {
	cfg := Config{Window: 10 * time.Second, Slots: 1, MaxPrefixes: 3}
	w := mustNew(t, cfg)
	add := func(name string, ms float64) *slot {
		t.Helper()
		if err := w.Finish(name, ms, 200, testBase); err != nil {
			t.Fatal(err)
		}
		return &w.prefix[name].slots[0]
	}
	// Durations 1 to 1000 ms span about 350 bins: 100 of them stay a list.
	var s *slot
	for i := range 100 {
		s = add("spread", float64(1+i*10))
	}
	if s.dense || len(s.bins) != 100 || cap(s.bins) != 128 {
		t.Errorf("100 spread durations: dense %v, %d entries of %d; want a list of 100 in 128", s.dense, len(s.bins), cap(s.bins))
	}
	// The same duration again and again is one bin: counts at once.
	for range 5 {
		s = add("narrow", 40)
	}
	if !s.dense || len(s.bins) != 1 {
		t.Errorf("5 equal durations: dense %v, %d bins; want counts of 1 bin", s.dense, len(s.bins))
	}
	for range 1000 {
		s = add("narrow", 40)
	}
	if !s.dense || len(s.bins) != 1 || s.bins[0] != 1005 {
		t.Errorf("1005 equal durations: dense %v, bins %v; want [1005]", s.dense, s.bins)
	}
	// A bin far away widens the counts by the gap and binPad bins only.
	s = add("narrow", 400)
	if want := w.bin(400) - w.bin(40) + 1 + binPad; len(s.bins) != want {
		t.Errorf("after a duration 116 bins away: %d bins, want %d", len(s.bins), want)
	}
}

// remember adds slot s back into the sum, undoing forget (test use only;
// the sum already covers the slot's bins).
func (p *prefixState) remember(s *slot) {
	bins, zero := p.slotCounts(s)
	for b, c := range bins {
		p.sum.counts[b-p.sum.lo] += c
	}
	p.sum.zero += zero
}

// BenchmarkForgetSlot measures taking one slot out of a prefix's sum,
// which happens once per slot width and prefix as the window moves (in the
// first query or finish that finds the slot gone): ns/forget for a busy
// slot (1e5 log-normal durations, median 40 ms, sigma 0.8) and for a slot
// with a duration in every bin (the most work).
func BenchmarkForgetSlot(b *testing.B) {
	for _, c := range []struct {
		name string
		ds   func() []float64
	}{
		{"busy", func() []float64 {
			rng := rand.New(rand.NewPCG(1, 2))
			ds := make([]float64, 100_000)
			for i := range ds {
				ds[i] = 40 * math.Exp(0.8*rng.NormFloat64())
			}
			return ds
		}},
		{"every-bin", func() []float64 {
			gamma := (1 + RelativeAccuracy) / (1 - RelativeAccuracy)
			ds := make([]float64, numBins)
			for i := range ds {
				ds[i] = MinBinned * math.Pow(gamma, float64(i)+0.5)
			}
			return ds
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			w, err := New(Config{Window: 600 * time.Second, Slots: 60, MaxPrefixes: 1})
			if err != nil {
				b.Fatal(err)
			}
			for _, ms := range c.ds() {
				if err := w.Finish("a", ms, 200, testBase); err != nil {
					b.Fatal(err)
				}
			}
			p := w.prefix["a"]
			s := &p.slots[(testBase.UnixNano()/w.width)%60]
			var spent time.Duration
			for b.Loop() {
				t0 := time.Now()
				p.forget(s)
				spent += time.Since(t0)
				p.remember(s)
			}
			if err := checkSum(p); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(spent.Nanoseconds())/float64(b.N), "ns/forget")
		})
	}
}
