package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gstats/gstats/internal/testbin"
)

const sampleBench = `goos: linux
BenchmarkIngest/msgs=100000-2   3   1015437388 ns/op   634953 bare_msgs/s   319374 bare_per_frame_msgs/s   518237 gstats_msgs/s   0 lost   0.8162 ratio
BenchmarkStatsGrid/durations=1e3/prefixes=1/op=stats-2   20   30000 ns/op   30.0 us/stats   350 reply_bytes
BenchmarkStatsGrid/durations=6e6/prefixes=1/op=stats-2   20   36000 ns/op   36.0 us/stats   350 reply_bytes
BenchmarkStatsGrid/durations=6e6/prefixes=1/op=gather-2   20   20000 ns/op   20.0 us/gather
BenchmarkPrefix/idle-2   100   72 ns/op   166.7 B/prefix
BenchmarkMiddleware/collector=up/load=paced-2   100   176.1 ns/op   0 dropped/op   0 B/op   0 allocs/op
hooks: 2.14 us inline, 6.81 us CPU per pair (target <= 8 us): OK
side by side ON/OFF: median 96.3 % (rounds 95.6 96.3 99.1; target >= 95 %)
PASS
`

func TestParseGoBench(t *testing.T) {
	gb := parseGoBench(sampleBench)
	tests := []struct {
		name, unit string
		want       float64
	}{
		{"BenchmarkIngest/msgs=100000", "ratio", 0.8162},
		{"BenchmarkIngest/msgs=100000", "bare_per_frame_msgs/s", 319374},
		{"BenchmarkStatsGrid/durations=6e6/prefixes=1/op=stats", "us/stats", 36},
		{"BenchmarkPrefix/idle", "B/prefix", 166.7},
		{"BenchmarkMiddleware/collector=up/load=paced", "allocs/op", 0},
	}
	for _, tt := range tests {
		if got, ok := gb.get(tt.name, tt.unit); !ok || got != tt.want {
			t.Errorf("%s %s = %v (found %v), want %v", tt.name, tt.unit, got, ok, tt.want)
		}
	}
	if got := len(gb.matching("BenchmarkStatsGrid/")); got != 3 {
		t.Errorf("%d StatsGrid entries, want 3", got)
	}
	if v, ok := gb.pythonFigure("hooks: ", `([\d.]+) us CPU per pair`); !ok || v != 6.81 {
		t.Errorf("hooks CPU = %v, %v; want 6.81", v, ok)
	}
	if v, ok := gb.pythonFigure("side by side ON/OFF", `median ([\d.]+) %`); !ok || v != 96.3 {
		t.Errorf("gunicorn side by side = %v, %v; want 96.3", v, ok)
	}
}

func TestReportVerdicts(t *testing.T) {
	res := results{
		Started: time.Now(), Finished: time.Now(), Machine: machine{CPU: "test CPU", CPUs: 2},
		Ingest: &ingestResults{
			Classic: []ladder{
				{Name: "bare PULL (batched)", Unit: "msg", MaxLossFree: 1e6, Steps: []step{{Target: 1e6, CPUPerMsg: 600, LossFree: true}}},
				{Name: "gstats", Unit: "msg", MaxLossFree: 8e5, Steps: []step{{Target: 8e5, CPUPerMsg: 1200, LossFree: true}}},
			},
			Packed: ladder{Name: "gstats (packed)", Unit: "event"},
		},
		Statsd:   &statsdResults{Ladder: ladder{Name: "Telegraf statsd", Unit: "timing", MaxLossFree: 5e4}},
		Memory:   []memPoint{{Durations: 6e6, Prefixes: 1, RSS: 30 << 20, Peak: 70 << 20}},
		Accuracy: &accuracyResults{N: 10, Percentiles: []float64{50}, Exact: []float64{10}, Gstats: []float64{10.05}, GstatsErr: []float64{0.5}},
	}
	text, misses := writeReport(res, parseGoBench(sampleBench))
	for _, want := range []string{"| ingest ≥ 85 % of the bare receiver's loss-free rate | 80 %", "16.0×", "test CPU", "| p50 | 10.000 | 10.050 | 0.500 % |"} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	// 80 % of the bare rate, 1.2 µs per message, a 70 MiB peak: missed.
	// STATS growth 1.2×, accuracy, middleware, hooks, gunicorn: met.
	wantMissed := []string{"ingest ≥ 85 %", "≤ 1 µs collector CPU", "RSS ≤ 64 MiB"}
	if len(misses) != len(wantMissed) {
		t.Fatalf("missed %q, want exactly %q", misses, wantMissed)
	}
	for i, w := range wantMissed {
		if !strings.HasPrefix(misses[i], w) {
			t.Errorf("miss %d = %q, want it to start with %q", i, misses[i], w)
		}
	}
}

// TestIntegrationStep runs one ladder step against the real collector and
// a bare receiver: what was sent is what they count.
func TestIntegrationStep(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs gstats-collectd")
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := testbin.Build(ctx, dir, testbin.Collectd, "github.com/gstats/gstats/bench/harness"); err != nil {
		t.Fatal(err)
	}
	st, err := classicStream(1000)
	if err != nil {
		t.Fatal(err)
	}
	gs, err := startCollector(filepath.Join(dir, "gstats-collectd"), dir, "")
	if err != nil {
		t.Fatal(err)
	}
	defer gs.Close()
	bb, err := startBare(filepath.Join(dir, "harness"), "", "batch")
	if err != nil {
		t.Fatal(err)
	}
	defer bb.Close()
	for _, c := range []contender{{"gstats", gs}, {"bare", bb}} {
		s, err := runStep(ctx, c.r, st, 20_000, 500*time.Millisecond, false)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if s.Sent < 9000 || s.Received != s.Sent || s.Dropped != 0 || !s.LossFree || s.CPU <= 0 {
			t.Errorf("%s: %+v; want ~10 000 sent, all received, none dropped, CPU measured", c.name, s)
		}
	}
	mp, err := memoryPoint(ctx, options{collectd: filepath.Join(dir, "gstats-collectd")}, dir, 5000, 10, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if mp.Durations < 4500 || mp.RSS <= 0 || mp.Peak < mp.RSS || mp.StatsRTT <= 0 || mp.ReplyBytes < 10*50 {
		t.Errorf("memory point %+v: want ~5000 durations, RSS and peak read, a STATS reply for 10 prefixes", mp)
	}
}
