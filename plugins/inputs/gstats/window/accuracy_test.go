package window_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/gstats/gstats/plugins/inputs/gstats/window"
)

// Accuracy data: accuracyN log-normal durations with a median of
// accuracyMedian ms and a sigma of accuracySigma (of the natural
// logarithm): 40·exp(0.8·Z) ms for Z standard normal, drawn from
// math/rand/v2's PCG seeded (seed, 1). Its p50 is about 40 ms, p90 110 ms,
// p99 257 ms.
const (
	accuracyN      = 1_000_000
	accuracyMedian = 40.0
	accuracySigma  = 0.8
)

// accuracyPercentiles are the percentiles whose error is measured: every
// whole one, and 99.9.
func accuracyPercentiles() []float64 {
	ps := make([]float64, 0, 100)
	for p := 1; p <= 99; p++ {
		ps = append(ps, float64(p))
	}
	return append(ps, 99.9)
}

func accuracyDurations(seed uint64) []float64 {
	rng := rand.New(rand.NewPCG(seed, 1))
	ds := make([]float64, accuracyN)
	for i := range ds {
		ds[i] = accuracyMedian * math.Exp(accuracySigma*rng.NormFloat64())
	}
	return ds
}

// accuracyErrors fills one prefix of a default window with the durations
// spread evenly over it and returns the relative error of each of
// accuracyPercentiles against the exact percentile (the sorted duration at
// index floor(q·(n−1))), with the window and the query instant.
func accuracyErrors(tb testing.TB, ds []float64) (errs []float64, w *window.Window, now time.Time) {
	tb.Helper()
	cfg := defaultConfig()
	cfg.Percentiles = accuracyPercentiles()
	w = newWindow(tb, cfg)
	fillEvenly(tb, w, []string{"app"}, len(ds), ds)
	now = base.Add(cfg.Window - time.Nanosecond)
	st, _ := w.PrefixStats("app", now)
	if st.Count != int64(len(ds)) {
		tb.Fatalf("the window holds %d durations, want %d", st.Count, len(ds))
	}
	sorted := slices.Clone(ds)
	slices.Sort(sorted)
	last := float64(len(sorted) - 1)
	for i, p := range cfg.Percentiles {
		exact := sorted[int(math.Floor(float64(p/100*last)))]
		errs = append(errs, math.Abs(st.Percentiles[i]-exact)/exact)
	}
	return errs, w, now
}

// TestPercentileAccuracy checks the 1 % relative accuracy on 1e6
// log-normal durations (median 40 ms, sigma 0.8), for several draws.
func TestPercentileAccuracy(t *testing.T) {
	ps := accuracyPercentiles()
	for seed := uint64(1); seed <= 3; seed++ {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			errs, _, _ := accuracyErrors(t, accuracyDurations(seed))
			worst := 0
			for i, e := range errs {
				if e > window.RelativeAccuracy*(1+1e-9) {
					t.Errorf("p%v: relative error %.4f%%, over %.0f%%", ps[i], 100*e, 100*window.RelativeAccuracy)
				}
				if e > errs[worst] {
					worst = i
				}
			}
			t.Logf("largest relative error %.4f%% at p%v", 100*errs[worst], ps[worst])
		})
	}
}

// BenchmarkPercentileAccuracy reports the relative error of p50, p90, p99
// and the largest over p1..p99 and p99.9, in percent, on 1e6 log-normal
// durations (median 40 ms, sigma 0.8; see accuracyDurations) spread over a
// default window, against the exact percentiles. The timed loop is a query
// of the prefix with those 100 percentiles.
func BenchmarkPercentileAccuracy(b *testing.B) {
	errs, w, now := accuracyErrors(b, accuracyDurations(1))
	ps := accuracyPercentiles()
	at := func(p float64) float64 { return 100 * errs[slices.Index(ps, p)] }
	for b.Loop() {
		w.PrefixStats("app", now)
	}
	b.ReportMetric(at(50), "p50_relerr_%")
	b.ReportMetric(at(90), "p90_relerr_%")
	b.ReportMetric(at(99), "p99_relerr_%")
	b.ReportMetric(100*slices.Max(errs), "max_relerr_%")
}
