package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gstats/gstats/internal/testbin"
)

const sampleBench = `goos: linux
pkg: github.com/gstats/gstats/plugins/inputs/gstats
BenchmarkIngest/msgs=100000-2   3   1015437388 ns/op   634953 bare_msgs/s   319374 bare_per_frame_msgs/s   518237 gstats_msgs/s   0 lost   0.8162 ratio
BenchmarkStatsGrid/durations=1e3/prefixes=1/op=stats-2   20   30000 ns/op   30.0 us/stats   350 reply_bytes
BenchmarkStatsGrid/durations=6e6/prefixes=1/op=stats-2   20   36000 ns/op   36.0 us/stats   350 reply_bytes
BenchmarkStatsGrid/durations=6e6/prefixes=1/op=gather-2   20   20000 ns/op   20.0 us/gather
BenchmarkStatsGrowth-2   5000   13000 ns/op   6.70 us/stats_1e3   6.80 us/stats_6e6   1.015 growth
BenchmarkStateWrite-2   5   201584607 ns/op   14768615 bytes/file   152.2 cpu-ms/write   201.6 ms/write   56.21 µs/lock   8107 µs/max-lock   82592776 B/op   600 allocs/op
BenchmarkStateRestore-2   5   293285207 ns/op   297.3 cpu-ms/restore   293.4 ms/restore   86493164 B/op   678019 allocs/op
BenchmarkHTTPEndpoints/api/stats-2   2280   519659 ns/op   34417 bytes/op-body   213907 B/op   2126 allocs/op
PASS
ok  	github.com/gstats/gstats/plugins/inputs/gstats	27.429s
pkg: github.com/gstats/gstats/plugins/inputs/gstats/window
BenchmarkPrefix/idle-2   100   72 ns/op   166.7 B/prefix
pkg: github.com/gstats/gstats/client
BenchmarkMiddleware/collector=up/load=paced-2   100   176.1 ns/op   0 dropped/op   0 B/op   0 allocs/op
--- BENCH: BenchmarkMiddleware
hooks: 2.14 us inline, 6.81 us CPU per pair (target <= 8 us): OK
side by side ON/OFF: median 96.3 % (rounds 95.6 96.3 99.1; target >= 95 %)
PASS
`

// sampleBenches are the benchmark functions sampleBench holds.
var sampleBenches = []benchFunc{
	{"github.com/gstats/gstats/client", "BenchmarkMiddleware"},
	{"github.com/gstats/gstats/plugins/inputs/gstats", "BenchmarkHTTPEndpoints"},
	{"github.com/gstats/gstats/plugins/inputs/gstats", "BenchmarkIngest"},
	{"github.com/gstats/gstats/plugins/inputs/gstats", "BenchmarkStateRestore"},
	{"github.com/gstats/gstats/plugins/inputs/gstats", "BenchmarkStateWrite"},
	{"github.com/gstats/gstats/plugins/inputs/gstats", "BenchmarkStatsGrid"},
	{"github.com/gstats/gstats/plugins/inputs/gstats", "BenchmarkStatsGrowth"},
	{"github.com/gstats/gstats/plugins/inputs/gstats/window", "BenchmarkPrefix"},
}

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
		{"BenchmarkStateWrite", "µs/lock", 56.21},
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
	for _, b := range sampleBenches {
		if !gb.ran(b.Pkg, b.Name) {
			t.Errorf("%s.%s did not run", b.Pkg, b.Name)
		}
	}
	if gb.ran("github.com/gstats/gstats/plugins/inputs/gstats", "BenchmarkPrefix") || gb.ran("github.com/gstats/gstats/client", "BenchmarkBench") {
		t.Error("a benchmark ran in the wrong package, or a --- BENCH line counted as a result")
	}
	if n := len(gb.entries); n != 10 {
		t.Errorf("%d result lines, want 10", n)
	}
}

// ladderOf is a ladder whose steps at rates all took cpuNS per message, at
// the rate asked, loss-free unless lossy says otherwise.
func ladderOf(name string, cpuNS float64, senderLimited bool, lossy map[float64]bool, rates ...float64) ladder {
	l := ladder{Name: name, Unit: "msg", SenderLimited: senderLimited}
	for _, r := range rates {
		n := int64(r * 3)
		s := step{Target: r, Achieved: r, Sent: n, Received: n, CPU: time.Duration(cpuNS * float64(n)), CPUPerMsg: cpuNS, LossFree: !lossy[r]}
		l.Steps = append(l.Steps, s)
		if s.LossFree {
			l.MaxLossFree = r
		}
	}
	return l
}

// metResults are a run's results that meet every target (with sampleBench).
func metResults() results {
	rates := []float64{2e5, 4e5, 8e5, 1.2e6, 1.6e6}
	return results{
		Started: time.Now(), Finished: time.Now(), Machine: machine{CPU: "test CPU", CPUs: 2},
		Ingest: &ingestResults{
			Classic: []ladder{
				ladderOf("bare PULL (batched)", 600, true, nil, rates...),
				ladderOf("gstats", 620, true, nil, rates...),
			},
			Packed: ladder{Name: "gstats (packed)", Unit: "event"},
		},
		Statsd:   &statsdResults{Ladder: ladder{Name: "Telegraf statsd", Unit: "timing", MaxLossFree: 5e4}},
		Memory:   []memPoint{{Durations: 6e6, Prefixes: 1, RSS: 30 << 20, Peak: 31 << 20}},
		Accuracy: &accuracyResults{N: 10, Percentiles: []float64{50}, Exact: []float64{10}, Gstats: []float64{10.05}, GstatsErr: []float64{0.5}},
		Soak: &soakResults{Rate: 8e5, MaxLossFree: 1.6e6, RateSource: "half", Duration: 10 * time.Minute, Every: 10 * time.Second, Sent: 1, Accepted: 1,
			Samples: soakRun(10*time.Minute, 10*time.Second, func(time.Duration) (int64, int, int) { return 30 << 20, 20, 11 }),
			Verdict: soakVerdict{Flat: true, Goroutines: [2]int{11, 11}, FDs: [2]int{20, 20}, RSSFirst: 30 << 20, RSSLast: 30 << 20, RSSBound: 4 << 20}},
	}
}

// missedNames are the names of the rows not met.
func missedNames(rows []targetRow) []string {
	var out []string
	for _, r := range rows {
		if !r.Met {
			out = append(out, r.Name)
		}
	}
	return out
}

func TestReportAllMet(t *testing.T) {
	text, rows := writeReport(metResults(), parseGoBench(sampleBench), sampleBenches)
	if m := missedNames(rows); len(m) != 0 {
		t.Fatalf("missed %q; want every target met:\n%s", m, targetsText(rows))
	}
	for _, want := range []string{
		"| ingest ≥ 85 % of the bare receiver's capacity (CPU per message at equal rates, and loss-free rate) | 97 % by CPU per message at equal rates (bare 600 vs gstats 620 ns/msg, 3 loss-free steps, 800 k/s to 1.6 M/s); loss-free rate ≥ 1.6 M/s (the sender's limit) vs ≥ 1.6 M/s (the sender's limit): both held the fastest stream one sender CPU produces, which tells them apart no further | met | 1 |",
		"| STATS ≤ 1 ms, one prefix, 6000000 durations | 36.0 µs | met | 2 |",
		"| state file write holds the window lock ≤ 0.1 ms per prefix (mean) | 56.2 µs (longest 8107 µs) | met | 7 |",
		"| every Go benchmark of the repository ran | all 8 ran | met | 8 |",
		"Here, 3 steps from 800 k/s to 1.6 M/s: bare 600 ns/msg (≤ 1.67 M/s on one CPU), gstats 620 ns/msg (≤ 1.61 M/s).",
		"| write, CPU | 152 ms (1.5 % of a core at the default `state_interval` of 10s) |",
		"| plugins/inputs/gstats | HTTPEndpoints/api/stats | 5.197e+05 ns/op, 3.442e+04 bytes/op-body, 2.139e+05 B/op, 2126 allocs/op |",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if strings.Contains(text, "| Ingest/") || strings.Contains(text, "| StateWrite") {
		t.Error("section 8 repeats benchmarks shown above")
	}
}

func TestReportVerdicts(t *testing.T) {
	res := metResults()
	// The bare receiver held 1 M/s at 600 ns a message; gstats took 1.2 µs
	// and lost at 1 M/s: missed on both counts.
	res.Ingest.Classic = []ladder{
		ladderOf("bare PULL (batched)", 600, false, nil, 4e5, 8e5, 1e6),
		ladderOf("gstats", 1200, false, map[float64]bool{1e6: true}, 4e5, 8e5, 1e6),
	}
	res.Memory[0].Peak = 70 << 20
	text, rows := writeReport(res, parseGoBench(sampleBench), sampleBenches)
	for _, want := range []string{
		"| ingest ≥ 85 % of the bare receiver's capacity (CPU per message at equal rates, and loss-free rate) | 50 % by CPU per message at equal rates (bare 600 vs gstats 1200 ns/msg, 2 loss-free steps, 400 k/s to 800 k/s); loss-free rate 80 % of the bare receiver's (800 k/s vs 1 M/s) | **missed** | 1 |",
		"16.0×", "test CPU", "| p50 | 10.000 | 10.050 | 0.500 % |",
		"| Soak: 10 min at half the max loss-free rate, RSS, fds and goroutines flat, nothing lost | flat: goroutines 11–11, fds 20–20, RSS 30.0 → 30.0 MiB (bound 4.0, trend +0.00); 1 sent, all accepted, none dropped, at 800 k/s | met | 6 |",
		"| 10m0s | 600000 | 600000 | 0 | 30.0 MiB | 20 | 11 | 0 % | 0 ns |"} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	want := []string{targets[tIngestBare].name, targets[tCPUPerMsg].name, targets[tRSS].name}
	if got := missedNames(rows); !slices.Equal(got, want) {
		t.Errorf("missed %q, want exactly %q", got, want)
	}
	if len(rows) != int(nTargets) {
		t.Errorf("%d rows, want %d", len(rows), nTargets)
	}
}

// TestReportNothingMeasured: a run with no figures at all still lists
// every target, each "not measured" and missed.
func TestReportNothingMeasured(t *testing.T) {
	text, rows := writeReport(results{}, parseGoBench(""), nil)
	if len(rows) != int(nTargets) {
		t.Fatalf("%d rows, want %d", len(rows), nTargets)
	}
	for i, r := range rows {
		if r.Met || r.Verdict != verdictNotMeasured || !strings.HasPrefix(r.Measured, "not measured") || r.Name != targets[i].name {
			t.Errorf("row %d: %+v; want %q not measured", i, r, targets[i].name)
		}
		if !strings.Contains(text, "| "+r.Name+" | not measured") {
			t.Errorf("the report does not list %q as not measured", r.Name)
		}
	}
	if n := len(misses(rows)); n != int(nTargets) {
		t.Errorf("%d misses, want %d", n, nTargets)
	}
}

// TestReportMissingFigures takes one figure away at a time from a run
// that meets everything: the target it feeds reads "not measured", is
// missed, and every other target is still listed and met.
func TestReportMissingFigures(t *testing.T) {
	drop := func(prefix string) string {
		var keep []string
		for _, l := range strings.Split(sampleBench, "\n") {
			if !strings.HasPrefix(l, prefix) {
				keep = append(keep, l)
			}
		}
		return strings.Join(keep, "\n")
	}
	tests := []struct {
		name    string
		res     func(*results)
		bench   string
		benches []benchFunc
		target  int
		also    []int // targets the same figures feed
	}{
		{name: "no ingest phase", res: func(r *results) { r.Ingest = nil }, target: tIngestBare, also: []int{tIngestStatsd, tCPUPerMsg}},
		{name: "no common loss-free step", res: func(r *results) {
			r.Ingest.Classic[1] = ladderOf("gstats", 620, true, nil, 3e5, 9e5, 1.7e6) // at other rates
		}, target: tIngestBare},
		{name: "no statsd phase", res: func(r *results) { r.Statsd = nil }, target: tIngestStatsd},
		{name: "no grid", bench: drop("BenchmarkStatsGrid/"), target: tStats},
		{name: "no 6e6 cell", bench: drop("BenchmarkStatsGrid/durations=6e6/prefixes=1/op=stats"), target: tStats},
		{name: "no growth", bench: drop("BenchmarkStatsGrowth"), target: tStatsGrowth},
		{name: "no memory phase", res: func(r *results) { r.Memory = nil }, target: tRSS},
		{name: "memory short of 6e6", res: func(r *results) { r.Memory[0].Durations = 1e6 }, target: tRSS},
		{name: "no accuracy phase", res: func(r *results) { r.Accuracy = nil }, target: tAccuracy},
		{name: "no percentiles", res: func(r *results) { r.Accuracy.Percentiles = nil }, target: tAccuracy},
		{name: "no middleware", bench: drop("BenchmarkMiddleware"), target: tMiddleware},
		{name: "middleware without -benchmem", bench: strings.Replace(sampleBench, "0 B/op   0 allocs/op", "", 1), target: tMiddleware},
		{name: "no hooks", bench: drop("hooks: "), target: tHooks},
		{name: "no gunicorn", bench: drop("side by side"), target: tGunicorn},
		{name: "no soak", res: func(r *results) { r.Soak = nil }, target: tSoak},
		{name: "short soak", res: func(r *results) { r.Soak.Duration = time.Minute }, target: tSoak},
		{name: "soak at a given rate", res: func(r *results) { r.Soak.MaxLossFree = 0 }, target: tSoak},
		{name: "no state write", bench: drop("BenchmarkStateWrite"), target: tStateLock},
		{name: "no benchmark at all", benches: []benchFunc{}, target: tBenchmarks},
		{name: "benchmarks not listed", benches: nil, target: tBenchmarks},
		{name: "a benchmark did not run", benches: append(slices.Clone(sampleBenches), benchFunc{"github.com/gstats/gstats/wire", "BenchmarkIntegrationClientRequest"}), target: tBenchmarks},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := metResults()
			if tt.res != nil {
				tt.res(&res)
			}
			bench := sampleBench
			if tt.bench != "" {
				bench = tt.bench
			}
			gb := parseGoBench(bench)
			benches := benchesOf(gb) // every one that ran
			if tt.target == tBenchmarks {
				benches = tt.benches
			}
			text, rows := writeReport(res, gb, benches)
			if len(rows) != int(nTargets) {
				t.Fatalf("%d rows, want %d", len(rows), nTargets)
			}
			ids := append([]int{tt.target}, tt.also...)
			slices.Sort(ids)
			var want []string
			for _, id := range ids {
				want = append(want, targets[id].name)
			}
			if got := missedNames(rows); !slices.Equal(got, want) {
				t.Errorf("missed %q, want exactly %q\n%s", got, want, targetsText(rows))
			}
			for _, id := range ids {
				r := rows[id]
				if !strings.Contains(text, "| "+r.Name+" | "+r.Measured+" | "+r.Verdict+" |") {
					t.Errorf("the table lacks the row %+v", r)
				}
				if id != tBenchmarks && (r.Verdict != verdictNotMeasured || !strings.HasPrefix(r.Measured, "not measured")) {
					t.Errorf("row %+v: want it not measured", r)
				}
			}
		})
	}
}

// benchesOf lists the benchmark functions that printed results in gb.
func benchesOf(gb goBench) []benchFunc {
	out := []benchFunc{}
	for _, e := range gb.entries {
		if b := (benchFunc{e.pkg, e.top()}); !slices.Contains(out, b) {
			out = append(out, b)
		}
	}
	return out
}

func TestCompareBare(t *testing.T) {
	rates := []float64{1e5, 2e5, 4e5, 8e5, 1.6e6}
	tests := []struct {
		name      string
		bare, gs  ladder
		met       bool
		measured  string
		noMeasure bool
	}{
		{
			// The case the old rate-only verdict read as 100 %, met.
			name:     "both sender-bound, gstats twice the CPU",
			bare:     ladderOf("bare", 500, true, nil, rates...),
			gs:       ladderOf("gstats", 1000, true, nil, rates...),
			measured: "50 % by CPU per message at equal rates (bare 500 vs gstats 1000 ns/msg, 2 loss-free steps, 800 k/s to 1.6 M/s)",
		},
		{
			name:     "both sender-bound, alike",
			bare:     ladderOf("bare", 500, true, nil, rates...),
			gs:       ladderOf("gstats", 550, true, nil, rates...),
			met:      true,
			measured: "91 % by CPU",
		},
		{
			name:     "cheaper per message but lost at a rate the bare receiver held",
			bare:     ladderOf("bare", 500, false, nil, rates...),
			gs:       ladderOf("gstats", 400, false, map[float64]bool{8e5: true, 1.6e6: true}, rates...),
			measured: "loss-free rate 25 % of the bare receiver's (400 k/s vs 1.6 M/s)",
		},
		{
			name:     "the low rates do not count",
			bare:     ladderOf("bare", 500, true, nil, rates...),
			gs:       ladderOf("gstats", 500, true, nil, rates...),
			met:      true,
			measured: "2 loss-free steps, 800 k/s to 1.6 M/s",
		},
		{
			name:      "no rate both held",
			bare:      ladderOf("bare", 500, false, map[float64]bool{1e5: true, 2e5: true}, 1e5, 2e5),
			gs:        ladderOf("gstats", 500, false, nil, 1e5, 2e5),
			noMeasure: true,
			measured:  "not measured: no rate both held loss-free",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := compareBare(tt.bare, tt.gs)
			if c.met != tt.met || !strings.Contains(c.measured, tt.measured) || strings.HasPrefix(c.measured, "not measured") != tt.noMeasure {
				t.Errorf("met %v, %q; want met %v and %q", c.met, c.measured, tt.met, tt.measured)
			}
		})
	}
	// Steps whose achieved rates differ by more than 5 % are not compared.
	bare := ladderOf("bare", 500, true, nil, 1e6)
	gs := ladderOf("gstats", 500, true, nil, 1e6)
	gs.Steps[0].Achieved = 9e5
	if c := compareBare(bare, gs); c.steps != 0 || c.met {
		t.Errorf("%+v: compared steps at 1 M/s and 900 k/s", c)
	}
}

// TestJudge: the run fails when a target is missed, after writing the
// report and listing every target.
func TestJudge(t *testing.T) {
	dir := t.TempDir()
	quiet := func(string, ...any) {}
	for _, tt := range []struct {
		name string
		res  results
		fail bool
	}{
		{"met", metResults(), false},
		{"missed", func() results { r := metResults(); r.Memory[0].Peak = 70 << 20; return r }(), true},
		{"not measured", func() results { r := metResults(); r.Soak = nil; return r }(), true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, tt.name, "PERFORMANCE.md")
			var out strings.Builder
			err := judge(path, tt.res, parseGoBench(sampleBench), sampleBenches, &out, quiet)
			if (err != nil) != tt.fail {
				t.Fatalf("judge: %v; want failure %v", err, tt.fail)
			}
			if tt.fail && !strings.Contains(err.Error(), "1 of 13 targets missed") {
				t.Errorf("error %q does not count the misses", err)
			}
			if _, err := os.Stat(path); err != nil {
				t.Errorf("the report was not written: %v", err)
			}
			for _, d := range targets {
				if !strings.Contains(out.String(), "| "+d.name+" |") {
					t.Errorf("the run's output does not list %q", d.name)
				}
			}
		})
	}
}

func TestListBenchmarks(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"go.mod":                    "module example.com/m\n\ngo 1.26\n",
		"a_test.go":                 "package m\n\nfunc BenchmarkRoot(b *testing.B) {}\nfunc TestX(t *testing.T) {}\n",
		"sub/b_test.go":             "package sub_test\n\nfunc BenchmarkOne(b *testing.B) {}\n\n// func BenchmarkComment(b *testing.B) {}\nfunc BenchmarkTwo(tb *testing.B) {\n}\n",
		"sub/b.go":                  "package sub\n\nfunc BenchmarkNotATest(b *testing.B) {}\n",
		"vendor/v/v_test.go":        "package v\n\nfunc BenchmarkVendored(b *testing.B) {}\n",
		"sub/testdata/x_test.go":    "package x\n\nfunc BenchmarkData(b *testing.B) {}\n",
		".hidden/h/h_test.go":       "package h\n\nfunc BenchmarkHidden(b *testing.B) {}\n",
		"sub/helper_test.go":        "package sub\n\nfunc benchmarkHelper(b *testing.B) {}\n",
		"sub/deeper/more_test.go":   "package deeper\n\nfunc BenchmarkDeep(b *testing.B) {}\n",
		"sub/deeper/method_test.go": "package deeper\n\nfunc (s) BenchmarkMethod(b *testing.B) {}\n",
	}
	for name, text := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := listBenchmarks(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []benchFunc{
		{"example.com/m", "BenchmarkRoot"},
		{"example.com/m/sub", "BenchmarkOne"},
		{"example.com/m/sub", "BenchmarkTwo"},
		{"example.com/m/sub/deeper", "BenchmarkDeep"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("listBenchmarks = %v, want %v", got, want)
	}
}

// TestRepositoryBenchmarks: the benchmarks this repository holds include
// the ones whose figures the report and the plugin README quote.
func TestRepositoryBenchmarks(t *testing.T) {
	got, err := listBenchmarks("../..")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []benchFunc{
		{"github.com/gstats/gstats/plugins/inputs/gstats", "BenchmarkStateWrite"},
		{"github.com/gstats/gstats/plugins/inputs/gstats", "BenchmarkStateRestore"},
		{"github.com/gstats/gstats/plugins/inputs/gstats", "BenchmarkStatsGrid"},
		{"github.com/gstats/gstats/client", "BenchmarkMiddleware"},
	} {
		if !slices.Contains(got, want) {
			t.Errorf("listBenchmarks(../..) lacks %v", want)
		}
	}
}

func TestRewriteBlock(t *testing.T) {
	doc := "# T\n\n- **Cost.** " + stateCostBegin + "\n  old figures, two\n  lines." + stateCostEnd + "\n- next\n"
	got, err := rewriteBlock(doc, stateCostBegin, stateCostEnd, "one two three four five six", "  ", 15)
	if err != nil {
		t.Fatal(err)
	}
	want := "# T\n\n- **Cost.** " + stateCostBegin + "\n  one two three\n  four five six" + stateCostEnd + "\n- next\n"
	if got != want {
		t.Errorf("rewriteBlock =\n%s\nwant\n%s", got, want)
	}
	again, err := rewriteBlock(got, stateCostBegin, stateCostEnd, "one two three four five six", "  ", 15)
	if err != nil || again != got {
		t.Errorf("rewriting again changed the text: %v\n%s", err, again)
	}
	for _, bad := range []string{"no markers", stateCostEnd + " " + stateCostBegin, stateCostBegin + stateCostBegin + stateCostEnd} {
		if _, err := rewriteBlock(bad, stateCostBegin, stateCostEnd, "x", "", 10); err == nil {
			t.Errorf("rewriteBlock(%q) did not fail", bad)
		}
	}
}

// TestReadmeStateCost: the plugin README has the passage make bench
// rewrites, and rewriting it from sampleBench gives its figures.
func TestReadmeStateCost(t *testing.T) {
	doc, err := os.ReadFile("../../plugins/inputs/gstats/README.md")
	if err != nil {
		t.Fatal(err)
	}
	date := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	got, err := rewriteBlock(string(doc), stateCostBegin, stateCostEnd, stateCostText(parseGoBench(sampleBench), date), "  ", 76)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"make a file of\n  14.8 MB", "0.15 s of CPU time (1.5 %", "(56 µs on average)", "0.3 s of CPU time at start", "2026-11-26"} {
		if !strings.Contains(strings.ReplaceAll(got, "\n  ", " "), strings.ReplaceAll(want, "\n  ", " ")) {
			t.Errorf("the rewritten passage lacks %q", want)
		}
	}
	missing, err := rewriteBlock(string(doc), stateCostBegin, stateCostEnd, stateCostText(goBench{}, date), "  ", 76)
	if err != nil || !strings.Contains(missing, "not measured") {
		t.Errorf("without figures the passage does not say not measured: %v", err)
	}
}

// patient makes the harness wait for whatever a receiver still has to
// take, however long a loaded machine stalls it, for the rest of the test:
// the integration tests below check counts, not speed.
func patient(t *testing.T) {
	quiet, slack := settleQuiet, memFillSlack
	settleQuiet, memFillSlack = 10*time.Second, 30
	t.Cleanup(func() { settleQuiet, memFillSlack = quiet, slack })
}

// TestIntegrationStep runs one ladder step against the real collector and
// a bare receiver: what was sent is what they count.
func TestIntegrationStep(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs gstats-collectd")
	}
	patient(t)
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
		// At most 10 000 (20 000/s for 500 ms; fewer when the machine
		// stalls the sender), far under the sender's queue: nothing can
		// drop, and everything sent is received. Whether 100 ms of traffic
		// was still queued at the end (loss-free) depends on the machine's
		// load, so only its rule is checked.
		if s.Sent <= 0 || s.Sent > 10_000 || s.Received != s.Sent || s.Dropped != 0 || s.CPU <= 0 {
			t.Errorf("%s: %+v; want up to 10 000 sent, all received, none dropped, CPU measured", c.name, s)
		}
		if s.LossFree != (s.Behind <= 2000) {
			t.Errorf("%s: %d behind at the end, loss-free %v", c.name, s.Behind, s.LossFree)
		}
	}
	mp, err := memoryPoint(ctx, options{collectd: filepath.Join(dir, "gstats-collectd")}, dir, 5000, 10, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if mp.Durations != 5000 || mp.RSS <= 0 || mp.Peak < mp.RSS || mp.StatsRTT <= 0 || mp.ReplyBytes < 10*50 {
		t.Errorf("memory point %+v: want 5000 durations, RSS and peak read, a STATS reply for 10 prefixes", mp)
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
	patient(t)
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
	// Up to 10 000 sent (2000/s for 5 s; fewer when the machine stalls
	// the sender), all accepted.
	if last := res.Samples[len(res.Samples)-1]; last.Sent <= 0 || last.Sent > res.Sent || last.Accepted > last.Sent {
		t.Errorf("last sample %+v: want some sent, no more than in all, no more accepted than sent", last)
	}
	if res.Sent <= 0 || res.Sent > 10_000 || res.Accepted != res.Sent || res.Dropped != 0 || res.Rejected != 0 || res.Window != time.Second || res.PeakRSS <= 0 {
		t.Errorf("%+v: want up to 10 000 sent, all accepted, a 1 s window, the peak RSS", res)
	}
	if !res.Verdict.Flat {
		t.Errorf("not flat: %q\n%+v", res.Verdict.Problems, res.Samples)
	}
	text, _ := writeReport(results{Soak: res}, goBench{}, nil)
	for _, want := range []string{"| Soak: 10 min at half the max loss-free rate, RSS, fds and goroutines flat, nothing lost | not measured: it ran 5s, not 10 min, at 2 k/s (given), not half the max loss-free rate (flat: ", "Verdict: **flat**."} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q", want)
		}
	}
}
