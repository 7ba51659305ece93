package main

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/gstats/gstats/plugins/inputs/gstats/window"
)

// accuracyResults compare percentiles with the exact values on one sample.
type accuracyResults struct {
	N           int         `json:"n"`
	Median      float64     `json:"median_ms"`
	Sigma       float64     `json:"sigma"`
	Percentiles []float64   `json:"percentiles"`
	Exact       []float64   `json:"exact"`
	Gstats      []float64   `json:"gstats"`
	GstatsErr   []float64   `json:"gstats_rel_err_pct"`
	Statsd      []statsdRun `json:"statsd,omitempty"`
	StatsdNote  string      `json:"statsd_note,omitempty"`
}

// statsdRun is one run of Telegraf statsd on the sample.
type statsdRun struct {
	P     []float64 `json:"percentiles"`
	Err   []float64 `json:"rel_err_pct"`
	Count int64     `json:"count"`
}

// accuracySample is n log-normal durations (median 40 ms, sigma 0.8), the
// same for every run.
func accuracySample(n int) []float64 {
	r := rand.New(rand.NewPCG(2026, 11))
	ds := make([]float64, n)
	for i := range ds {
		ds[i] = 40 * math.Exp(0.8*r.NormFloat64())
	}
	return ds
}

// exactPercentile is the value at sorted index floor(q·(n−1)), the rank
// gstats documents.
func exactPercentile(sorted []float64, p float64) float64 {
	return sorted[int(math.Floor(p/100*float64(len(sorted)-1)))]
}

func relErr(got, exact float64) float64 { return 100 * math.Abs(got-exact) / exact }

// gstatsPercentiles puts every duration in one collector window and reads
// its percentiles.
func gstatsPercentiles(ds, ps []float64) ([]float64, error) {
	w, err := window.New(window.Config{Window: 600 * time.Second, Slots: 60, Percentiles: ps, MaxPrefixes: 1})
	if err != nil {
		return nil, err
	}
	now := time.Now()
	for i, d := range ds {
		// Spread over the window as real traffic is.
		at := now.Add(-590 * time.Second).Add(time.Duration(i) * 590 * time.Second / time.Duration(len(ds)))
		if err := w.Finish("app", d, 200, at); err != nil {
			return nil, err
		}
	}
	st, ok := w.PrefixStats("app", now)
	if !ok || st.Count != int64(len(ds)) {
		return nil, fmt.Errorf("window holds %d durations, want %d", st.Count, len(ds))
	}
	return st.Percentiles, nil
}

func accuracyPhase(ctx context.Context, o options, work string, logf func(string, ...any)) (*accuracyResults, error) {
	a := &accuracyResults{N: 1_000_000, Median: 40, Sigma: 0.8, Percentiles: []float64{50, 90, 99}}
	if o.quick {
		a.N = 100_000
	}
	ds := accuracySample(a.N)
	sorted := slices.Clone(ds)
	slices.Sort(sorted)
	for _, p := range a.Percentiles {
		a.Exact = append(a.Exact, exactPercentile(sorted, p))
	}
	var err error
	if a.Gstats, err = gstatsPercentiles(ds, a.Percentiles); err != nil {
		return nil, err
	}
	for i := range a.Percentiles {
		a.GstatsErr = append(a.GstatsErr, relErr(a.Gstats[i], a.Exact[i]))
	}
	logf("accuracy on %d log-normal durations: exact %v, gstats %v (error %% %v)", a.N, a.Exact, a.Gstats, a.GstatsErr)
	if err := statsdAccuracy(ctx, o, work, ds, a, logf); err != nil {
		return nil, err
	}
	return a, nil
}
