package main

import (
	"context"
	"encoding/json"
	"os"
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
		Soak: &soakResults{Rate: 4e5, MaxLossFree: 8e5, RateSource: "half", Duration: 10 * time.Minute, Every: 10 * time.Second, Sent: 1, Accepted: 1,
			Samples: soakRun(10*time.Minute, 10*time.Second, func(time.Duration) (int64, int, int) { return 30 << 20, 20, 11 }),
			Verdict: soakVerdict{Flat: true, Goroutines: [2]int{11, 11}, FDs: [2]int{20, 20}, RSSFirst: 30 << 20, RSSLast: 30 << 20, RSSBound: 4 << 20}},
	}
	text, misses := writeReport(res, parseGoBench(sampleBench))
	for _, want := range []string{"| ingest ≥ 85 % of the bare receiver's loss-free rate | 80 %", "16.0×", "test CPU", "| p50 | 10.000 | 10.050 | 0.500 % |",
		"| Soak: 10 min at half the max rate, RSS, fds and goroutines flat | flat: goroutines 11–11, fds 20–20, RSS 30.0 → 30.0 MiB (bound 4.0, trend +0.00); 1 sent, all accepted, none dropped, at 400 k/s | met | 6 |",
		"| 10m0s | 600000 | 600000 | 0 | 30.0 MiB | 20 | 11 | 0 % | 0 ns |"} {
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

// soakRun makes the samples of a soak of d sampled every every, with the
// figures f gives at each time; everything sent is accepted.
func soakRun(d, every time.Duration, f func(at time.Duration) (rss int64, fds, goroutines int)) []soakSample {
	var out []soakSample
	for at := time.Duration(0); at <= d; at += every {
		s := soakSample{At: at + 3*time.Millisecond, Sent: int64(at / time.Millisecond), Accepted: int64(at / time.Millisecond)}
		s.RSS, s.FDs, s.Goroutines = f(at)
		out = append(out, s)
	}
	return out
}

func TestJudgeSoak(t *testing.T) {
	const MiB = 1 << 20
	d, every := 10*time.Minute, 10*time.Second
	frac := func(at time.Duration) float64 { // 0 at the end of the warm-up, 1 at the end
		return max(0, float64(at-time.Minute)/float64(d-time.Minute))
	}
	// noise is a deterministic wobble of ±1 MiB, as garbage collection gives.
	noise := func(at time.Duration) int64 { return int64(at/every%3-1) * MiB }
	flat := func(at time.Duration) (int64, int, int) { return 30*MiB + noise(at), 21, 12 }
	tests := []struct {
		name    string
		samples []soakSample
		d       time.Duration
		lost    [3]int64 // dropped, accepted short of sent, rejected
		flat    bool
		problem string // in the first problem
		n       int    // problems found, when more than one
	}{
		{name: "flat", samples: soakRun(d, every, flat), d: d, flat: true},
		{name: "growth during the warm-up only", d: d, flat: true, samples: soakRun(d, every, func(at time.Duration) (int64, int, int) {
			if at < time.Minute {
				return int64(at / time.Second * MiB), 30 - int(at/every), 30 - int(at/every)
			}
			return flat(at)
		})},
		{name: "jitter within the slack", d: d, flat: true, samples: soakRun(d, every, func(at time.Duration) (int64, int, int) {
			r, _, _ := flat(at)
			return r, 21 + int(at/every%3), 12 + int(at/every%5)
		})},
		{name: "slow growth under the bound", d: d, flat: true, samples: soakRun(d, every, func(at time.Duration) (int64, int, int) {
			return 30*MiB + int64(2*MiB*frac(at)), 21, 12
		})},
		{name: "5 % of a large RSS", d: d, flat: true, samples: soakRun(d, every, func(at time.Duration) (int64, int, int) {
			return 200*MiB + int64(6*MiB*frac(at)) + noise(at), 21, 12
		})},
		// 4.2 MiB over the measured part: the fifths' medians are 3.4 MiB
		// apart (under the bound), the trend over 10 min is 4.7 MiB.
		{name: "trend above the bound", d: d, problem: "RSS trends upwards", samples: soakRun(d, every, func(at time.Duration) (int64, int, int) {
			return 30*MiB + int64(4.2*MiB*frac(at)), 21, 12
		})},
		{name: "RSS leak", d: d, problem: "RSS moved from 31.9 MiB to 48.1 MiB", n: 2, samples: soakRun(d, every, func(at time.Duration) (int64, int, int) {
			return 30*MiB + int64(20*MiB*frac(at)), 21, 12
		})},
		{name: "RSS fell", d: d, problem: "RSS moved from 39.1 MiB to 30.9 MiB", samples: soakRun(d, every, func(at time.Duration) (int64, int, int) {
			return 40*MiB - int64(10*MiB*frac(at)), 21, 12
		})},
		{name: "goroutine leak", d: d, problem: "goroutines went from 12 to 66", samples: soakRun(d, every, func(at time.Duration) (int64, int, int) {
			r, f, _ := flat(at)
			return r, f, 12 + int(frac(at)*54)
		})},
		{name: "fd leak", d: d, problem: "open files went from 21 to 24", samples: soakRun(d, every, func(at time.Duration) (int64, int, int) {
			r, _, g := flat(at)
			return r, 21 + int(frac(at)*3), g
		})},
		{name: "dropped by the sender", samples: soakRun(d, every, flat), d: d, lost: [3]int64{1, 0, 0}, problem: "lost messages"},
		{name: "not all accepted", samples: soakRun(d, every, flat), d: d, lost: [3]int64{0, 1, 0}, problem: "lost messages"},
		{name: "rejected", samples: soakRun(d, every, flat), d: d, lost: [3]int64{0, 0, 1}, problem: "lost messages"},
		{name: "too few samples", samples: soakRun(time.Minute, every, flat), d: time.Minute, problem: "too few samples"},
		{name: "short run sampled often", samples: soakRun(5*time.Second, 250*time.Millisecond, flat), d: 5 * time.Second, flat: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			last := tt.samples[len(tt.samples)-1]
			v := judgeSoak(tt.samples, tt.d, last.Sent, tt.lost[0], last.Accepted-tt.lost[1], tt.lost[2])
			if v.Flat != tt.flat {
				t.Errorf("flat = %v, want %v; %+v", v.Flat, tt.flat, v)
			}
			n := max(tt.n, 1)
			if tt.flat {
				n = 0
			}
			if len(v.Problems) != n || (n > 0 && !strings.Contains(v.Problems[0], tt.problem)) {
				t.Errorf("problems %q, want %d, the first containing %q", v.Problems, n, tt.problem)
			}
		})
	}
}

func TestJudgeSoakFigures(t *testing.T) {
	const MiB = 1 << 20
	ss := soakRun(10*time.Minute, 10*time.Second, func(at time.Duration) (int64, int, int) {
		if at < time.Minute {
			return 5 * MiB, 40, 40 // the warm-up is left out
		}
		return 100*MiB + int64(at/time.Second)*1024, 20 + int(at/(10*time.Second))%2, 11
	})
	v := judgeSoak(ss, 10*time.Minute, 1, 0, 1, 0)
	if !v.Flat || v.Warmup != time.Minute || v.Measured != 55 {
		t.Fatalf("%+v: want flat, a 1 min warm-up, 55 samples after it", v)
	}
	if v.Goroutines != [2]int{11, 11} || v.FDs != [2]int{20, 21} {
		t.Errorf("goroutines %v, fds %v; want [11 11] and [20 21]", v.Goroutines, v.FDs)
	}
	// 1 KiB a second: medians at 110 s and 550 s (plus the 3 ms lag),
	// slope 1 KiB/s over 600 s; bound 5 % of the first median.
	if v.RSSFirst != 100*MiB+110*1024 || v.RSSLast != 100*MiB+550*1024 {
		t.Errorf("RSS medians %d, %d", v.RSSFirst, v.RSSLast)
	}
	if v.RSSTrend != 600*1024 || v.RSSBound != int64(0.05*float64(v.RSSFirst)) {
		t.Errorf("RSS trend %d, bound %d; want %d and 5 %% of %d", v.RSSTrend, v.RSSBound, 600*1024, v.RSSFirst)
	}
}

func TestSoakWarmup(t *testing.T) {
	for _, tt := range []struct{ d, want time.Duration }{
		{time.Hour, 6 * time.Minute},
		{10 * time.Minute, time.Minute},
		{5 * time.Minute, 30 * time.Second},
		{2 * time.Minute, 24 * time.Second},
		{time.Minute, 12 * time.Second},
		{5 * time.Second, time.Second},
	} {
		if got := soakWarmup(tt.d); got != tt.want {
			t.Errorf("soakWarmup(%s) = %s, want %s", tt.d, got, tt.want)
		}
	}
}

func TestSoakRows(t *testing.T) {
	flat := func(time.Duration) (int64, int, int) { return 1, 1, 1 }
	tests := []struct {
		d, every time.Duration
		want     int
	}{
		{10 * time.Minute, 10 * time.Second, 11},              // 0, 1 min, …, 10 min
		{10*time.Minute + 5*time.Second, 5 * time.Second, 12}, // and 10 min 5 s
		{time.Minute, time.Second, 11},                        // every 6 s
		{5 * time.Second, 250 * time.Millisecond, 11},         // every 0.5 s
	}
	for _, tt := range tests {
		ss := soakRun(tt.d, tt.every, flat)
		rows := soakRows(ss, tt.d)
		if len(rows) != tt.want || rows[0] != 0 || rows[len(rows)-1] != len(ss)-1 {
			t.Errorf("%s every %s: rows %v, want %d from the first to the last sample", tt.d, tt.every, rows, tt.want)
		}
	}
}

func TestGoroutineTotal(t *testing.T) {
	for _, tt := range []struct {
		line string
		want int
	}{
		{"goroutine profile: total 17\n", 17},
		{"goroutine profile: total 0\n", 0},
		{"goroutine profile: total x\n", 0},
		{"heap profile: 1: 2 [3: 4] @ heap/1048576\n", 0},
		{"", 0},
	} {
		got, err := goroutineTotal(tt.line)
		if got != tt.want || (err == nil) != (tt.want > 0) {
			t.Errorf("goroutineTotal(%q) = %d, %v; want %d", tt.line, got, err, tt.want)
		}
	}
}

func TestSoakRate(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, r results) string {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	in := &ingestResults{Classic: []ladder{{Name: "bare PULL (batched)", MaxLossFree: 2e6}, {Name: "gstats", MaxLossFree: 1.2e6}}}
	prevIngest := write("ingest.json", results{Ingest: in})
	prevSoak := write("soak.json", results{Soak: &soakResults{MaxLossFree: 8e5}})
	empty := write("empty.json", results{})
	tests := []struct {
		name    string
		o       options
		in      *ingestResults
		rate    float64
		source  string
		wantErr string
	}{
		{name: "flag first", o: options{soakRate: 1000, jsonOut: prevIngest}, in: in, rate: 1000, source: "-soak-rate"},
		{name: "this run's ingest", o: options{jsonOut: prevSoak}, in: in, rate: 6e5, source: "in this run"},
		{name: "previous run's ingest", o: options{jsonOut: prevIngest}, rate: 6e5, source: "ingest.json"},
		{name: "previous run's soak", o: options{jsonOut: prevSoak}, rate: 4e5, source: "soak.json"},
		{name: "no loss-free rate", o: options{}, in: &ingestResults{Classic: []ladder{{Name: "gstats"}}}, wantErr: "no loss-free rate"},
		{name: "nothing in the file", o: options{jsonOut: empty}, wantErr: "has no loss-free ingest rate"},
		{name: "no file", o: options{jsonOut: filepath.Join(dir, "missing.json")}, wantErr: "previous run's results"},
		{name: "no -json", o: options{}, wantErr: "give -soak-rate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _, src, err := soakRate(tt.o, tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || r != tt.rate || !strings.Contains(src, tt.source) {
				t.Errorf("= %v, %q, %v; want %v from %q", r, src, err, tt.rate, tt.source)
			}
		})
	}
}

// TestIntegrationSoak runs a short soak against the real collector: every
// sample read, everything accepted, the run flat.
func TestIntegrationSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs gstats-collectd")
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := testbin.Build(ctx, dir, testbin.Collectd); err != nil {
		t.Fatal(err)
	}
	o := options{collectd: filepath.Join(dir, "gstats-collectd"), soakFor: 5 * time.Second, soakEvery: 250 * time.Millisecond, soakRate: 2000}
	res, err := soakPhase(ctx, o, dir, nil, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(res.Samples); n != 21 {
		t.Errorf("%d samples, want 21 (0 to 5 s every 250 ms)", n)
	}
	for i, s := range res.Samples {
		if s.RSS <= 0 || s.FDs <= 0 || s.Goroutines <= 0 || s.CPU <= 0 || (i > 0 && (s.CPU < res.Samples[i-1].CPU || s.At <= res.Samples[i-1].At)) {
			t.Errorf("sample %d: %+v; want RSS, files, goroutines and a rising CPU time", i, s)
		}
	}
	if last := res.Samples[len(res.Samples)-1]; last.Sent < 9000 || last.Accepted < 9000 {
		t.Errorf("last sample %+v: want ~10 000 sent and accepted", last)
	}
	if res.Sent < 9500 || res.Accepted != res.Sent || res.Dropped != 0 || res.Rejected != 0 || res.Window != time.Second || res.PeakRSS <= 0 {
		t.Errorf("%+v: want ~10 000 sent, all accepted, a 1 s window, the peak RSS", res)
	}
	if !res.Verdict.Flat {
		t.Errorf("not flat: %q\n%+v", res.Verdict.Problems, res.Samples)
	}
	text, _ := writeReport(results{Soak: res}, goBench{})
	for _, want := range []string{"| Soak: 5s at 2 k/s (given), RSS, fds and goroutines flat | flat: ", "Verdict: **flat**."} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q", want)
		}
	}
}
