package statsdpeer

import (
	"context"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	// binDir holds the Telegraf that the tests of one test binary share.
	binDir    string
	buildOnce = sync.OnceValues(func() (string, error) { return Build(context.Background(), binDir) })

	cpus = flag.String("statsdpeer.cpus", "", "taskset CPU list for Telegraf in the benchmarks (e.g. 1); empty: no pinning")
)

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "statsdpeer-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// telegrafBin builds Telegraf once per test binary, or fails the test.
func telegrafBin(tb testing.TB) string {
	tb.Helper()
	bin, err := buildOnce()
	if err != nil {
		tb.Fatalf("%v\nTelegraf is built from the Go module cache: run `go mod download github.com/influxdata/telegraf` with network access to the Go module proxy", err)
	}
	return bin
}

func startPeer(tb testing.TB, cpus string) *Peer {
	tb.Helper()
	bin := telegrafBin(tb)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := Start(ctx, bin, tb.TempDir(), cpus)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := p.Close(); err != nil {
			tb.Error(err)
		}
	})
	return p
}

// TestStep sends two low-rate steps: each is counted whole, and apart.
// The steps total 150 datagrams, few enough to sit in the kernel's default
// UDP receive buffer (rmem_default, about 200 KiB) even if Telegraf is not
// scheduled at all while they are sent, so a loaded machine cannot make
// the kernel drop any.
func TestStep(t *testing.T) {
	p := startPeer(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	steps := []struct {
		rate int
		d    time.Duration
	}{
		{100, time.Second},
		{100, 500 * time.Millisecond},
	}
	names := map[string]bool{}
	for _, st := range steps {
		r, err := p.Step(ctx, st.rate, st.d, []float64{1.5, 12, 250.25})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%+v; CPU per message %v", r, r.CPUPerMessage())
		want := int64(float64(st.rate) * st.d.Seconds())
		if r.Sent == 0 || r.Sent > want || r.SendErrors != 0 {
			t.Errorf("%d/s for %s: sent %d (at most %d), %d send errors (%s)", st.rate, st.d, r.Sent, want, r.SendErrors, r.SendErr)
		}
		if r.Received != r.Sent || r.KernelDrops != 0 || r.QueueDrops != 0 || r.Loss() != 0 {
			t.Errorf("%d/s: Telegraf counted %d of %d (kernel drops %d, queue drops %d, loss %g)",
				st.rate, r.Received, r.Sent, r.KernelDrops, r.QueueDrops, r.Loss())
		}
		if r.CPU <= 0 || r.CPUPerMessage() <= 0 {
			t.Errorf("%d/s: Telegraf's CPU time %v, per message %v", st.rate, r.CPU, r.CPUPerMessage())
		}
		if r.RSS <= 0 || r.HWM < r.RSS {
			t.Errorf("%d/s: RSS %d, HWM %d", st.rate, r.RSS, r.HWM)
		}
		if names[r.Metric] {
			t.Errorf("metric name %s used twice", r.Metric)
		}
		names[r.Metric] = true
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if !p.proc.exited() {
		t.Fatalf("Telegraf (pid %d) still runs after Close", p.PID())
	}
}

// TestLadderStops runs a real ladder whose steps cannot be loss-free: no
// sender here reaches 1e8 timings a second, so each step fails the 97 %
// rule whatever the machine's load, and the ladder ends after the second.
// (The rule on loss-free steps is TestClimb's, without timing.)
func TestLadderStops(t *testing.T) {
	p := startPeer(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	lad, err := p.Ladder(ctx, []int{1e8, 1e8, 1000}, 200*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(lad.Steps) != 2 {
		t.Fatalf("ladder ran %d steps, want 2 (it stops after the second lossy one): %+v", len(lad.Steps), lad.Steps)
	}
	if lad.MaxLossFree != 0 {
		t.Errorf("MaxLossFree = %d, want 0; steps %+v", lad.MaxLossFree, lad.Steps)
	}
	for _, s := range lad.Steps {
		if s.LossFree() || s.Achieved >= 0.97*float64(s.Rate) {
			t.Errorf("step at %d/s sent %d, achieved %.0f/s, loss-free %v: want it short of the rate", s.Rate, s.Sent, s.Achieved, s.LossFree())
		}
	}
}

// TestClimb checks the ladder's rule on made-up steps: it keeps the
// highest loss-free rate, and stops after the second lossy step.
func TestClimb(t *testing.T) {
	clean := func(rate int) StepResult {
		return StepResult{Rate: rate, Sent: 100, Received: 100, Achieved: float64(rate)}
	}
	lossy := func(rate int) StepResult {
		r := clean(rate)
		r.Received = 90
		return r
	}
	tests := []struct {
		name    string
		rates   []int
		lossyAt map[int]bool
		steps   int
		max     int
	}{
		{"all clean", []int{10, 20, 30}, nil, 3, 30},
		{"stops after the second lossy step", []int{10, 20, 30, 40, 50}, map[int]bool{20: true, 40: true}, 4, 30},
		{"one lossy step is forgiven", []int{10, 20, 30}, map[int]bool{20: true}, 3, 30},
		{"none clean", []int{10, 20, 30}, map[int]bool{10: true, 20: true, 30: true}, 2, 0},
		{"no rates", nil, nil, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var asked []int
			lad, err := climb(tt.rates, func(rate int) (StepResult, error) {
				asked = append(asked, rate)
				if tt.lossyAt[rate] {
					return lossy(rate), nil
				}
				return clean(rate), nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(lad.Steps) != tt.steps || len(asked) != tt.steps || lad.MaxLossFree != tt.max {
				t.Errorf("ran %d steps (asked %v), max loss-free %d; want %d steps, max %d", len(lad.Steps), asked, lad.MaxLossFree, tt.steps, tt.max)
			}
		})
	}
	_, err := climb([]int{10, 20}, func(rate int) (StepResult, error) {
		if rate == 20 {
			return StepResult{}, fmt.Errorf("boom")
		}
		return clean(rate), nil
	})
	if err == nil || !strings.Contains(err.Error(), "20/s") {
		t.Errorf("err = %v, want the failing step's rate", err)
	}
}

// TestPercentiles feeds 20 000 shuffled values spread evenly over
// (0, 100) ms. Statsd keeps 1000 of them (percentile_limit) by overwriting
// a random slot with each new value, so its p50 is the median of about 1000
// random values: standard error about 1.6 ms, 3 % of 50 ms. The test allows
// 10 %. (Overwriting favours recent values, so shuffled input matters.)
func TestPercentiles(t *testing.T) {
	bin := telegrafBin(t)
	const n = 20_000
	vals := make([]float64, n)
	for i := range vals {
		vals[i] = (float64(i) + 0.5) * 100 / n
	}
	exact := vals[int(math.Floor(0.5*(n-1)))]
	r := rand.New(rand.NewPCG(7, 11))
	r.Shuffle(n, func(i, j int) { vals[i], vals[j] = vals[j], vals[i] })

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := Percentiles(ctx, bin, t.TempDir(), vals)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v, exact p50 %g", res, exact)
	if res.Count != n {
		t.Errorf("count %d, want %d", res.Count, n)
	}
	if math.Abs(res.P50-exact)/exact > 0.10 {
		t.Errorf("p50 %g, want within 10 %% of %g", res.P50, exact)
	}
	if !(0 < res.P50 && res.P50 < res.P90 && res.P90 < res.P99 && res.P99 < 100) {
		t.Errorf("percentiles %g, %g, %g are not increasing within (0, 100)", res.P50, res.P90, res.P99)
	}
}

func TestStepResult(t *testing.T) {
	cases := []struct {
		name     string
		r        StepResult
		loss     float64
		lossFree bool
		perMsg   time.Duration
	}{
		{"clean", StepResult{Rate: 1000, Sent: 1000, Received: 1000, Achieved: 990, CPU: 5 * time.Millisecond}, 0, true, 5 * time.Microsecond},
		{"lost", StepResult{Rate: 1000, Sent: 1000, Received: 900, Achieved: 1000, CPU: 9 * time.Millisecond}, 0.1, false, 10 * time.Microsecond},
		{"slow sender", StepResult{Rate: 1000, Sent: 960, Received: 960, Achieved: 960}, 0, false, 0},
		{"send errors", StepResult{Rate: 1000, Sent: 1000, Received: 1000, Achieved: 1000, SendErrors: 1}, 0, false, 0},
		{"nothing", StepResult{Rate: 1000}, 0, false, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.r.Loss(); math.Abs(got-tc.loss) > 1e-12 {
				t.Errorf("Loss() = %g, want %g", got, tc.loss)
			}
			if got := tc.r.LossFree(); got != tc.lossFree {
				t.Errorf("LossFree() = %v, want %v", got, tc.lossFree)
			}
			if got := tc.r.CPUPerMessage(); got != tc.perMsg {
				t.Errorf("CPUPerMessage() = %v, want %v", got, tc.perMsg)
			}
		})
	}
}

func TestParsers(t *testing.T) {
	t.Run("listenAddr", func(t *testing.T) {
		cases := []struct {
			line, addr string
			ok         bool
		}{
			{`2025-01-01T00:00:00Z I! [inputs.statsd] UDP listening on "127.0.0.1:41234"`, "127.0.0.1:41234", true},
			{`2025-01-01T00:00:00Z I! [inputs.statsd] TCP listening on "127.0.0.1:80"`, "127.0.0.1:80", true},
			{`2025-01-01T00:00:00Z I! [inputs.statsd] Started the statsd service on "127.0.0.1:0"`, "", false},
			{`I! [inputs.other] UDP listening on "1.2.3.4:5"`, "", false},
		}
		for _, tc := range cases {
			addr, ok := listenAddr(tc.line)
			if addr != tc.addr || ok != tc.ok {
				t.Errorf("listenAddr(%q) = %q, %v; want %q, %v", tc.line, addr, ok, tc.addr, tc.ok)
			}
		}
	})
	t.Run("schedstat", func(t *testing.T) {
		cases := []struct {
			in   string
			want time.Duration
			ok   bool
		}{
			{"123456 789 10\n", 123456, true},
			{"0 0 0", 0, true},
			{"", 0, false},
			{"-5 1 1", 0, false},
			{"x 1 1", 0, false},
		}
		for _, tc := range cases {
			got, err := schedstatRuntime(tc.in)
			if got != tc.want || (err == nil) != tc.ok {
				t.Errorf("schedstatRuntime(%q) = %v, %v; want %v, ok %v", tc.in, got, err, tc.want, tc.ok)
			}
		}
	})
	t.Run("status", func(t *testing.T) {
		status := "Name:\ttelegraf\nVmHWM:\t   51200 kB\nVmRSS:\t   40960 kB\nThreads:\t9\n"
		cases := []struct {
			key  string
			want int64
			ok   bool
		}{
			{"VmRSS", 40960 * 1024, true},
			{"VmHWM", 51200 * 1024, true},
			{"VmSwap", 0, false},
			{"Threads", 0, false}, // no kB unit
		}
		for _, tc := range cases {
			got, err := statusBytes(status, tc.key)
			if got != tc.want || (err == nil) != tc.ok {
				t.Errorf("statusBytes(%s) = %d, %v; want %d, ok %v", tc.key, got, err, tc.want, tc.ok)
			}
		}
	})
	t.Run("udpDrops", func(t *testing.T) {
		table := "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n" +
			"  1: 0100007F:A0B2 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 12345 2 0000000000000000 17\n" +
			"  2: 0100007F:1F90 0100007F:A0B2 01 00000000:00000000 00:00000000 00000000     0        0 12346 2 0000000000000000 0\n"
		local := procNetAddr([4]byte{127, 0, 0, 1}, 0xA0B2)
		if local != "0100007F:A0B2" {
			t.Fatalf("procNetAddr = %s", local)
		}
		if n, err := udpDrops(table, local); n != 17 || err != nil {
			t.Errorf("udpDrops = %d, %v; want 17", n, err)
		}
		if _, err := udpDrops(table, "0100007F:0001"); err == nil {
			t.Error("udpDrops found an unbound port")
		}
	})
	t.Run("timingDatagrams", func(t *testing.T) {
		got := timingDatagrams("a_b", []float64{40, 0.125, 1e-7})
		want := []string{"a_b:40|ms", "a_b:0.125|ms", "a_b:0.0000001|ms"}
		for i := range want {
			if string(got[i]) != want[i] {
				t.Errorf("datagram %d = %q, want %q", i, got[i], want[i])
			}
		}
		if d := timingDatagrams("x", nil); len(d) != 1 || string(d[0]) != "x:25|ms" {
			t.Errorf("default datagrams %q", d)
		}
	})
}

// FuzzParsers feeds arbitrary text to the /proc and log parsers: no panic,
// and whatever they accept is non-negative.
func FuzzParsers(f *testing.F) {
	f.Add(`I! [inputs.statsd] UDP listening on "127.0.0.1:41234"`)
	f.Add("123 4 5\n")
	f.Add("VmRSS:\t 100 kB\nVmHWM: 200 kB\n")
	f.Add("  1: 0100007F:A0B2 00000000:0000 07 00000000:00000000 00:00000000 00000000 0 0 1 2 0 3\n")
	f.Fuzz(func(t *testing.T, s string) {
		if addr, ok := listenAddr(s); ok && (addr == "" || strings.Contains(addr, `"`)) {
			t.Errorf("listenAddr(%q) = %q", s, addr)
		}
		if d, err := schedstatRuntime(s); err == nil && d < 0 {
			t.Errorf("schedstatRuntime(%q) = %v", s, d)
		}
		for _, key := range []string{"VmRSS", "VmHWM"} {
			if n, err := statusBytes(s, key); err == nil && n < 0 {
				t.Errorf("statusBytes(%q, %s) = %d", s, key, n)
			}
		}
		if n, err := udpDrops(s, "0100007F:A0B2"); err == nil && n < 0 {
			t.Errorf("udpDrops(%q) = %d", s, n)
		}
	})
}

// logNormal returns n log-normal durations (median 40 ms, sigma 0.8) from
// a seeded PCG, the same on every run.
func logNormal(n int) []float64 {
	r := rand.New(rand.NewPCG(2026, 40))
	v := make([]float64, n)
	for i := range v {
		v[i] = 40 * math.Exp(0.8*r.NormFloat64())
	}
	return v
}

// exactQuantile is the value of rank floor(q·(n−1)) in sorted.
func exactQuantile(sorted []float64, q float64) float64 {
	return sorted[int(math.Floor(q*float64(len(sorted)-1)))]
}

// BenchmarkLadder runs the default ladder once per iteration against a
// Telegraf pinned to -statsdpeer.cpus and reports the highest loss-free
// rate; the steps are logged.
func BenchmarkLadder(b *testing.B) {
	p := startPeer(b, *cpus)
	durations := logNormal(100_000)
	ctx := context.Background()
	var lad LadderResult
	for b.Loop() {
		var err error
		if lad, err = p.Ladder(ctx, nil, 0, durations); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("telegraf pinned to %q; %8s %9s %9s %8s %8s %7s %7s %12s %9s %9s",
		*cpus, "rate/s", "sent", "received", "loss%", "kdrops", "qdrops", "µs/msg", "achieved/s", "RSS MiB", "HWM MiB")
	for _, s := range lad.Steps {
		b.Logf("%8d %9d %9d %8.3f %8d %7d %7.2f %12.0f %9.1f %9.1f lossfree=%v",
			s.Rate, s.Sent, s.Received, 100*s.Loss(), s.KernelDrops, s.QueueDrops,
			float64(s.CPUPerMessage())/1e3, s.Achieved, float64(s.RSS)/(1<<20), float64(s.HWM)/(1<<20), s.LossFree())
	}
	b.ReportMetric(float64(lad.MaxLossFree), "lossfree-timings/s")
	for _, s := range lad.Steps {
		if s.Rate == lad.MaxLossFree {
			b.ReportMetric(float64(s.CPUPerMessage().Nanoseconds()), "cpu-ns/msg")
		}
	}
}

// BenchmarkPercentiles feeds 1e6 log-normal durations to statsd and
// reports its percentiles' relative errors against the exact ones.
func BenchmarkPercentiles(b *testing.B) {
	bin := telegrafBin(b)
	vals := logNormal(1_000_000)
	sorted := slices.Clone(vals)
	slices.Sort(sorted)
	ctx := context.Background()
	var res PercentileResult
	for b.Loop() {
		var err error
		if res, err = Percentiles(ctx, bin, b.TempDir(), vals); err != nil {
			b.Fatal(err)
		}
	}
	for _, q := range []struct {
		name string
		q    float64
		got  float64
	}{{"p50", 0.5, res.P50}, {"p90", 0.9, res.P90}, {"p99", 0.99, res.P99}} {
		exact := exactQuantile(sorted, q.q)
		rel := 100 * (q.got - exact) / exact
		b.Logf("%s: statsd %.4f ms, exact %.4f ms, relative error %+.2f %%", q.name, q.got, exact, rel)
		b.ReportMetric(math.Abs(rel), q.name+"-relerr-%")
	}
	b.Logf("count %d, fed in %v", res.Count, res.Feed)
}
