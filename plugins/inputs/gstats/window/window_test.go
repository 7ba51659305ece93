package window_test

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gstats/gstats/plugins/inputs/gstats/window"
)

// base is the fixed instant every test starts from. It is a whole number of
// seconds, so it starts a slot for every slot width that divides one second
// or a whole number of seconds.
var base = time.Unix(1_700_000_000, 0)

// smallConfig is a 10 s window of ten 1 s slots: slot k covers
// [base+k s, base+(k+1) s), and at instant now the live slots are the ten
// ending with the one that contains now.
func smallConfig() window.Config {
	return window.Config{
		Window:      10 * time.Second,
		Slots:       10,
		Percentiles: []float64{50, 90, 100},
		MaxPrefixes: 100,
		MaxRaw:      100,
	}
}

func newWindow(t testing.TB, cfg window.Config) *window.Window {
	t.Helper()
	w, err := window.New(cfg)
	if err != nil {
		t.Fatalf("window.New(%+v): %v", cfg, err)
	}
	return w
}

func ptr[T any](v T) *T { return &v }

// stepKind is what one step of a scripted scenario does.
type stepKind int

const (
	doStart stepKind = iota
	doFinish
	doReset
	doExpect
	doExpectAbsent
)

func (k stepKind) String() string {
	return [...]string{"start", "finish", "reset", "expect", "expect absent"}[k]
}

// step is one event or one query of a scenario, at base+at.
type step struct {
	kind   stepKind
	at     time.Duration
	prefix string
	ms     float64
	status int
	want   want
}

func start(at time.Duration, prefix string) step {
	return step{kind: doStart, at: at, prefix: prefix}
}

func finish(at time.Duration, prefix string, ms float64, status int) step {
	return step{kind: doFinish, at: at, prefix: prefix, ms: ms, status: status}
}

func reset(at time.Duration) step { return step{kind: doReset, at: at} }

func expect(at time.Duration, prefix string, w want) step {
	return step{kind: doExpect, at: at, prefix: prefix, want: w}
}

func absent(at time.Duration, prefix string) step {
	return step{kind: doExpectAbsent, at: at, prefix: prefix}
}

// want is the expected state of a prefix. The counters and moments are
// always checked (zero means zero); the pointer and slice fields only when
// set.
type want struct {
	started, finished, count int64
	mean, std, min, max      float64
	pct                      []float64 // within RelativeAccuracy
	status                   *[window.NumClass]int64
	inFlight                 *int64
	rate                     *float64
}

func (w want) check(t *testing.T, where string, got window.Stats) {
	t.Helper()
	if got.Started != w.started || got.Finished != w.finished || got.Count != w.count {
		t.Errorf("%s: started, finished, count = %d, %d, %d; want %d, %d, %d",
			where, got.Started, got.Finished, got.Count, w.started, w.finished, w.count)
	}
	for _, f := range []struct {
		name      string
		got, want float64
	}{
		{"mean", got.Mean, w.mean},
		{"std", got.Std, w.std},
		{"min", got.Min, w.min},
		{"max", got.Max, w.max},
	} {
		if !closeRel(f.got, f.want, 1e-12) {
			t.Errorf("%s: %s = %v, want %v", where, f.name, f.got, f.want)
		}
	}
	if w.pct != nil {
		if len(got.Percentiles) != len(w.pct) {
			t.Errorf("%s: percentiles = %v, want %v", where, got.Percentiles, w.pct)
		} else {
			for i := range w.pct {
				if !withinSketchAccuracy(got.Percentiles[i], w.pct[i]) {
					t.Errorf("%s: percentile #%d = %v, want %v ±%v%%",
						where, i, got.Percentiles[i], w.pct[i], 100*window.RelativeAccuracy)
				}
			}
		}
	}
	if w.status != nil && got.Status != *w.status {
		t.Errorf("%s: status classes = %v, want %v", where, got.Status, *w.status)
	}
	if w.inFlight != nil && got.InFlight() != *w.inFlight {
		t.Errorf("%s: in flight = %d, want %d", where, got.InFlight(), *w.inFlight)
	}
	if w.rate != nil && !closeRel(got.Rate, *w.rate, 1e-12) {
		t.Errorf("%s: rate = %v, want %v", where, got.Rate, *w.rate)
	}
}

// closeRel reports whether got is within rel of want, relative to |want|,
// with an absolute slack of 1e-12 so that zero matches zero.
func closeRel(got, want, rel float64) bool {
	return math.Abs(got-want) <= rel*math.Abs(want)+1e-12
}

// withinSketchAccuracy is the percentile guarantee: the relative accuracy of
// the sketch, with an absolute slack of 1e-12 so that zero matches zero.
func withinSketchAccuracy(got, want float64) bool {
	return math.Abs(got-want) <= window.RelativeAccuracy*math.Abs(want)+1e-12
}

// run plays steps on a fresh window. Every query goes through both
// PrefixStats and Stats, which must agree.
func run(t *testing.T, cfg window.Config, steps []step) {
	t.Helper()
	w := newWindow(t, cfg)
	for i, s := range steps {
		now := base.Add(s.at)
		where := fmt.Sprintf("step %d (%s %q at +%v)", i, s.kind, s.prefix, s.at)
		switch s.kind {
		case doStart:
			if err := w.Start(s.prefix, now); err != nil {
				t.Fatalf("%s: %v", where, err)
			}
		case doFinish:
			if err := w.Finish(s.prefix, s.ms, s.status, now); err != nil {
				t.Fatalf("%s: %v", where, err)
			}
		case doReset:
			w.Reset(now)
		case doExpect:
			got, ok := w.PrefixStats(s.prefix, now)
			if !ok {
				t.Errorf("%s: prefix not tracked", where)
				continue
			}
			if all := w.Stats(now); !reflect.DeepEqual(all[s.prefix], got) {
				t.Errorf("%s: Stats gives %+v, PrefixStats gives %+v", where, all[s.prefix], got)
			}
			s.want.check(t, where, got)
		case doExpectAbsent:
			if got, ok := w.PrefixStats(s.prefix, now); ok {
				t.Errorf("%s: prefix tracked with %+v", where, got)
			}
			if got, ok := w.Stats(now)[s.prefix]; ok {
				t.Errorf("%s: Stats lists the prefix with %+v", where, got)
			}
		}
	}
}

// TestScenarios feeds events at chosen instants and asks at chosen
// instants. All scenarios use smallConfig (ten 1 s slots) unless they say
// otherwise, so "slot k" is [k s, (k+1) s) after base.
func TestScenarios(t *testing.T) {
	const ns = time.Nanosecond
	const s = time.Second
	// Eight values with mean 5 and population standard deviation 2.
	textbook := []float64{2, 4, 4, 4, 5, 5, 7, 9}
	textbookWant := func(started, finished int64) want {
		return want{started: started, finished: finished, count: 8, mean: 5, std: 2, min: 2, max: 9,
			// sorted index floor(q·7): p50 → 3, p90 → 6, p100 → 7
			pct: []float64{4, 7, 9}}
	}

	tests := []struct {
		name  string
		cfg   func(*window.Config) // optional change to smallConfig
		steps []step
	}{
		{
			name: "stats decay to zero once traffic stops; counters stay",
			steps: []step{
				start(0, "a"),
				finish(0, "a", 100, 200),
				finish(500*time.Millisecond, "a", 300, 200),
				// sorted index floor(q·1): p50 → 0, p90 → 0, p100 → 1
				expect(500*time.Millisecond, "a", want{started: 1, finished: 2, count: 2,
					mean: 200, std: 100, min: 100, max: 300, pct: []float64{100, 100, 300}}),
				expect(10*s-ns, "a", want{started: 1, finished: 2, count: 2,
					mean: 200, std: 100, min: 100, max: 300}),
				expect(10*s, "a", want{started: 1, finished: 2, pct: []float64{0, 0, 0},
					inFlight: ptr(int64(0)), rate: ptr(0.0)}),
				expect(time.Hour, "a", want{started: 1, finished: 2, pct: []float64{0, 0, 0}}),
			},
		},
		{
			name: "edge: a duration at the first instant of slot 2 stays exactly Window",
			steps: []step{
				finish(2*s, "a", 7, 200),
				expect(2*s+10*s-ns, "a", want{finished: 1, count: 1, mean: 7, min: 7, max: 7, pct: []float64{7, 7, 7}}),
				expect(2*s+10*s, "a", want{finished: 1}),
			},
		},
		{
			name: "edge: a duration at the last instant of slot 2 stays Window-SlotWidth",
			steps: []step{
				finish(3*s-ns, "a", 7, 200),
				expect(3*s-ns+10*s-1*s, "a", want{finished: 1, count: 1, mean: 7, min: 7, max: 7}),
				expect(3*s-ns+10*s-1*s+ns, "a", want{finished: 1}),
			},
		},
		{
			name: "edge: adjacent slots leave one slot width apart",
			steps: []step{
				finish(3*s-ns, "a", 1, 200), // slot 2, leaves at 12 s
				finish(3*s, "a", 3, 200),    // slot 3, leaves at 13 s
				expect(12*s-ns, "a", want{finished: 2, count: 2, mean: 2, std: 1, min: 1, max: 3}),
				expect(12*s, "a", want{finished: 2, count: 1, mean: 3, min: 3, max: 3}),
				expect(13*s-ns, "a", want{finished: 2, count: 1, mean: 3, min: 3, max: 3}),
				expect(13*s, "a", want{finished: 2}),
			},
		},
		{
			name: "edge: Window not a multiple of Slots covers Slots·floor(Window/Slots)",
			cfg: func(c *window.Config) {
				c.Window = 10*s + ns
				c.Slots = 2 // slots of 5 s; base is a multiple of 5 s
			},
			steps: []step{
				finish(0, "a", 1, 200),
				expect(10*s-ns, "a", want{finished: 1, count: 1, mean: 1, min: 1, max: 1}),
				expect(10*s, "a", want{finished: 1}),
			},
		},
		{
			name: "population std within one slot",
			steps: func() []step {
				var st []step
				for _, v := range textbook {
					st = append(st, finish(500*time.Millisecond, "a", v, 200))
				}
				return append(st, expect(500*time.Millisecond, "a", textbookWant(0, 8)))
			}(),
		},
		{
			name: "population std merged across slots, then the oldest slot leaves",
			steps: func() []step {
				var st []step
				for i, v := range textbook { // value i in slot i
					st = append(st, finish(time.Duration(i)*s, "a", v, 200))
				}
				return append(st,
					expect(8*s-ns, "a", textbookWant(0, 8)),
					// slot 0 (the 2) has left: 4,4,4,5,5,7,9, Σx=38, Σx²=228
					expect(10*s, "a", want{finished: 8, count: 7, mean: 38.0 / 7,
						std: math.Sqrt(152) / 7, min: 4, max: 9, pct: []float64{5, 7, 9}}),
				)
			}(),
		},
		{
			name: "a 0 ms finish is a 0 ms request, not a start",
			steps: []step{
				finish(0, "a", 0, 200),
				expect(0, "a", want{started: 0, finished: 1, count: 1, pct: []float64{0, 0, 0},
					status: &[window.NumClass]int64{2: 1}, inFlight: ptr(int64(0))}),
			},
		},
		{
			name: "zeros among durations give zero low percentiles",
			steps: []step{
				finish(0, "a", 0, 200),
				finish(0, "a", 0, 200),
				finish(0, "a", 0, 200),
				finish(0, "a", 10, 200),
				// Σx=10, Σx²=100, m2=75; sorted index floor(q·3): 1, 2, 3
				expect(0, "a", want{finished: 4, count: 4, mean: 2.5, std: math.Sqrt(75.0 / 4),
					min: 0, max: 10, pct: []float64{0, 0, 10}}),
			},
		},
		{
			name: "status classes are code/100 for 100..599, none otherwise, and cumulative",
			steps: func() []step {
				var st []step
				for _, code := range []int{200, 201, 404, 0, 99, 600, 100, 599, 503, 302, -1} {
					st = append(st, finish(0, "a", 1, code))
				}
				classes := &[window.NumClass]int64{window.ClassNone: 4, 1: 1, 2: 2, 3: 1, 4: 1, 5: 2}
				return append(st,
					expect(0, "a", want{finished: 11, count: 11, mean: 1, min: 1, max: 1, status: classes}),
					expect(time.Hour, "a", want{finished: 11, status: classes}),
				)
			}(),
		},
		{
			name: "in flight is started minus finished, never negative",
			steps: []step{
				finish(0, "a", 1, 0),
				finish(0, "a", 1, 0),
				expect(0, "a", want{finished: 2, count: 2, mean: 1, min: 1, max: 1, inFlight: ptr(int64(0))}),
				start(0, "a"),
				start(0, "a"),
				start(0, "a"),
				expect(0, "a", want{started: 3, finished: 2, count: 2, mean: 1, min: 1, max: 1, inFlight: ptr(int64(1))}),
				start(0, "b"),
				expect(0, "b", want{started: 1, inFlight: ptr(int64(1)), pct: []float64{0, 0, 0}}),
			},
		},
		{
			name: "rate of a young prefix is count per second since it appeared",
			steps: func() []step {
				st := []step{start(0, "a")}
				for range 20 {
					st = append(st, finish(1*s, "a", 5, 200))
				}
				return append(st, expect(4*s, "a", want{started: 1, finished: 20, count: 20,
					mean: 5, min: 5, max: 5, rate: ptr(20.0 / 4)}))
			}(),
		},
		{
			name: "rate of a prefix younger than one second is count per second",
			steps: []step{
				finish(0, "a", 5, 200),
				finish(0, "a", 5, 200),
				finish(0, "a", 5, 200),
				expect(200*time.Millisecond, "a", want{finished: 3, count: 3, mean: 5, min: 5, max: 5, rate: ptr(3.0)}),
			},
		},
		{
			name: "rate of an old prefix is count over the time since the oldest live slot began",
			steps: func() []step {
				st := []step{finish(0, "a", 5, 200)}
				for range 18 {
					st = append(st, finish(20*s+500*time.Millisecond, "a", 5, 200))
				}
				// now 25.5 s: live slots 16..25, so 9.5 s are covered
				return append(st, expect(25*s+500*time.Millisecond, "a", want{finished: 19, count: 18,
					mean: 5, min: 5, max: 5, rate: ptr(18 / 9.5)}))
			}(),
		},
		{
			name: "a clock stepping back does not revive expired durations",
			steps: []step{
				finish(0, "a", 5, 200),
				expect(20*s, "a", want{finished: 1}),
				expect(5*s, "a", want{finished: 1}),
				// recorded at the newest instant seen (20 s), not at 1 s
				finish(1*s, "a", 7, 200),
				expect(1*s, "a", want{finished: 2, count: 1, mean: 7, min: 7, max: 7}),
				expect(30*s-ns, "a", want{finished: 2, count: 1, mean: 7, min: 7, max: 7}),
				expect(30*s, "a", want{finished: 2}),
			},
		},
		{
			name: "RESET forgets prefixes, counters and durations",
			steps: []step{
				start(0, "a"),
				finish(0, "a", 5, 200),
				finish(0, "b", 6, 500),
				reset(1 * s),
				absent(1*s, "a"),
				absent(1*s, "b"),
				finish(2*s, "a", 9, 404),
				expect(2*s, "a", want{started: 0, finished: 1, count: 1, mean: 9, min: 9, max: 9,
					status: &[window.NumClass]int64{4: 1}, rate: ptr(1.0)}),
				absent(2*s, "b"),
			},
		},
		{
			name: "prefixes are independent",
			steps: []step{
				finish(0, "a", 10, 200),
				finish(5*s, "b", 20, 500),
				expect(5*s, "a", want{finished: 1, count: 1, mean: 10, min: 10, max: 10}),
				expect(5*s, "b", want{finished: 1, count: 1, mean: 20, min: 20, max: 20}),
				expect(10*s, "a", want{finished: 1}),
				expect(10*s, "b", want{finished: 1, count: 1, mean: 20, min: 20, max: 20}),
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := smallConfig()
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			run(t, cfg, tc.steps)
		})
	}
}

func TestManyPrefixes(t *testing.T) {
	const n = 5000
	w := newWindow(t, window.Config{Window: 10 * time.Second, Slots: 10, MaxPrefixes: n, Percentiles: []float64{50}})
	name := func(i int) string { return fmt.Sprintf("app%04d", i) }
	// Prefix i gets i%5+1 durations of i ms at base+i ms (slots 0..4) and
	// i%3 starts.
	for i := range n {
		now := base.Add(time.Duration(i) * time.Millisecond)
		for range i % 3 {
			if err := w.Start(name(i), now); err != nil {
				t.Fatal(err)
			}
		}
		for range i%5 + 1 {
			if err := w.Finish(name(i), float64(i), 200, now); err != nil {
				t.Fatal(err)
			}
		}
	}
	if w.Len() != n {
		t.Fatalf("Len = %d, want %d", w.Len(), n)
	}
	names := w.Prefixes()
	if len(names) != n || !slices.IsSorted(names) || names[0] != name(0) || names[n-1] != name(n-1) {
		t.Fatalf("Prefixes = %d names from %q to %q, sorted %v", len(names), names[0], names[len(names)-1], slices.IsSorted(names))
	}
	check := func(now time.Time, live func(i int) bool) {
		t.Helper()
		all := w.Stats(now)
		if len(all) != n {
			t.Fatalf("Stats at %v lists %d prefixes, want %d", now.Sub(base), len(all), n)
		}
		for i := range n {
			got := all[name(i)]
			wantCount, v := int64(i%5+1), float64(i)
			if !live(i) {
				wantCount, v = 0, 0
			}
			if got.Started != int64(i%3) || got.Finished != int64(i%5+1) || got.Count != wantCount ||
				got.Mean != v || got.Min != v || got.Max != v || got.Std != 0 || got.Percentiles[0] != v {
				t.Fatalf("at +%v prefix %s: %+v; want started %d, finished %d, count %d, all values %v",
					now.Sub(base), name(i), got, i%3, i%5+1, wantCount, v)
			}
		}
	}
	check(base.Add(5*time.Second), func(int) bool { return true })
	// At 10.5 s slot 0 (prefixes 0..999) has left the window.
	check(base.Add(10500*time.Millisecond), func(i int) bool { return i >= 1000 })
	check(base.Add(time.Hour), func(int) bool { return false })
}

func TestMaxPrefixes(t *testing.T) {
	cfg := smallConfig()
	cfg.MaxPrefixes = 3
	w := newWindow(t, cfg)
	now := base
	for _, p := range []string{"a", "b"} {
		if err := w.Finish(p, 1, 200, now); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Start("c", now); err != nil {
		t.Fatal(err)
	}
	if err := w.Start("d", now); !errors.Is(err, window.ErrTooManyPrefixes) {
		t.Errorf("Start of a 4th prefix: %v, want ErrTooManyPrefixes", err)
	}
	if err := w.Finish("d", 1, 200, now); !errors.Is(err, window.ErrTooManyPrefixes) {
		t.Errorf("Finish of a 4th prefix: %v, want ErrTooManyPrefixes", err)
	}
	// Known prefixes keep working at the limit.
	if err := w.Start("a", now); err != nil {
		t.Errorf("Start of a known prefix at the limit: %v", err)
	}
	if err := w.Finish("c", 3, 200, now); err != nil {
		t.Errorf("Finish of a known prefix at the limit: %v", err)
	}
	if got := w.Prefixes(); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("Prefixes = %q, want [a b c]", got)
	}
	all := w.Stats(now)
	if _, ok := all["d"]; ok || len(all) != 3 {
		t.Errorf("Stats lists %d prefixes (d: %v), want a, b, c", len(all), ok)
	}
	if a := all["a"]; a.Started != 1 || a.Finished != 1 || a.Count != 1 {
		t.Errorf("a = %+v, want started 1, finished 1, count 1", a)
	}
	if c := all["c"]; c.Started != 1 || c.Finished != 1 || c.Mean != 3 {
		t.Errorf("c = %+v, want started 1, finished 1, mean 3", c)
	}
	// RESET frees the room.
	w.Reset(now)
	if err := w.Start("d", now); err != nil {
		t.Errorf("Start after reset: %v", err)
	}
}

func TestRaw(t *testing.T) {
	const s = time.Second
	type ev struct {
		at     time.Duration
		prefix string
		ms     float64 // negative: a start
	}
	tests := []struct {
		name   string
		maxRaw int
		events []ev
		at     time.Duration
		want   map[string][]float64
	}{
		{
			name:   "the ring keeps the newest, oldest first",
			maxRaw: 3,
			events: []ev{{0, "a", 1}, {0, "a", 2}, {0, "a", 3}, {0, "a", 4}, {0, "a", 5}, {0, "a", 6}, {0, "a", 7}},
			at:     0,
			want:   map[string][]float64{"a": {5, 6, 7}},
		},
		{
			name:   "a full ring that has not wrapped",
			maxRaw: 3,
			events: []ev{{0, "a", 1}, {0, "a", 2}, {0, "a", 3}},
			at:     0,
			want:   map[string][]float64{"a": {1, 2, 3}},
		},
		{
			name:   "expired slots are dropped",
			maxRaw: 10,
			events: []ev{{0, "a", 1}, {1 * s, "a", 2}, {2 * s, "a", 3}, {3 * s, "a", 4}},
			at:     12 * s, // live slots 3..12
			want:   map[string][]float64{"a": {4}},
		},
		{
			name:   "everything expired",
			maxRaw: 10,
			events: []ev{{0, "a", 1}, {3 * s, "a", 4}},
			at:     13 * s,
			want:   map[string][]float64{"a": {}},
		},
		{
			name:   "ring and expiry together",
			maxRaw: 3,
			events: []ev{{0, "a", 1}, {1 * s, "a", 2}, {2 * s, "a", 3}, {3 * s, "a", 4}},
			at:     11 * s, // live slots 2..11
			want:   map[string][]float64{"a": {3, 4}},
		},
		{
			name:   "zero durations are kept",
			maxRaw: 10,
			events: []ev{{0, "a", 0}, {0, "a", 12.5}, {0, "a", 0}},
			at:     0,
			want:   map[string][]float64{"a": {0, 12.5, 0}},
		},
		{
			name:   "prefixes have their own rings",
			maxRaw: 2,
			events: []ev{{0, "a", 1}, {0, "b", 10}, {0, "a", 2}, {0, "a", 3}, {0, "b", 20}, {0, "c", -1}},
			at:     0,
			want:   map[string][]float64{"a": {2, 3}, "b": {10, 20}, "c": {}},
		},
		{
			name:   "MaxRaw 0 keeps none",
			maxRaw: 0,
			events: []ev{{0, "a", 1}, {0, "a", 2}},
			at:     0,
			want:   map[string][]float64{"a": {}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := smallConfig()
			cfg.MaxRaw = tc.maxRaw
			w := newWindow(t, cfg)
			for _, e := range tc.events {
				var err error
				if e.ms < 0 {
					err = w.Start(e.prefix, base.Add(e.at))
				} else {
					err = w.Finish(e.prefix, e.ms, 200, base.Add(e.at))
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			got := w.Raw(base.Add(tc.at))
			if len(got) != len(tc.want) {
				t.Errorf("Raw lists %d prefixes (%v), want %v", len(got), got, tc.want)
			}
			for p, want := range tc.want {
				if g, ok := got[p]; !ok || !slices.Equal(g, want) {
					t.Errorf("Raw[%q] = %v (present %v), want %v", p, g, ok, want)
				}
			}
		})
	}
}

func TestResetEmptiesEverything(t *testing.T) {
	w := newWindow(t, smallConfig())
	for _, p := range []string{"a", "b", "c"} {
		if err := w.Start(p, base); err != nil {
			t.Fatal(err)
		}
		if err := w.Finish(p, 5, 200, base); err != nil {
			t.Fatal(err)
		}
	}
	w.Reset(base)
	if w.Len() != 0 || len(w.Prefixes()) != 0 || len(w.Stats(base)) != 0 || len(w.Raw(base)) != 0 {
		t.Errorf("after Reset: Len %d, Prefixes %v, Stats %v, Raw %v; want all empty",
			w.Len(), w.Prefixes(), w.Stats(base), w.Raw(base))
	}
}

func TestConfigValidate(t *testing.T) {
	valid := window.Config{
		Window:      600 * time.Second,
		Slots:       60,
		Percentiles: []float64{50, 90, 95, 99},
		MaxPrefixes: 1000,
		MaxRaw:      1000,
	}
	tests := []struct {
		name    string
		change  func(*window.Config)
		wantErr string // "" for a valid config
	}{
		{"defaults", func(*window.Config) {}, ""},
		{"one slot of 1ms", func(c *window.Config) { c.Window, c.Slots = time.Millisecond, 1 }, ""},
		{"no percentiles", func(c *window.Config) { c.Percentiles = nil }, ""},
		{"percentile 100", func(c *window.Config) { c.Percentiles = []float64{100} }, ""},
		{"MaxRaw 0", func(c *window.Config) { c.MaxRaw = 0 }, ""},
		{"window 0", func(c *window.Config) { c.Window = 0 }, "window must be positive, got 0s"},
		{"negative window", func(c *window.Config) { c.Window = -time.Second }, "window must be positive, got -1s"},
		{"slots 0", func(c *window.Config) { c.Slots = 0 }, "window_slots must be at least 1, got 0"},
		{"negative slots", func(c *window.Config) { c.Slots = -3 }, "window_slots must be at least 1, got -3"},
		{"slots under 1ms", func(c *window.Config) { c.Window, c.Slots = time.Second, 2000 }, "shorter than 1ms; use fewer window_slots"},
		{"max prefixes 0", func(c *window.Config) { c.MaxPrefixes = 0 }, "max_prefixes must be at least 1, got 0"},
		{"negative MaxRaw", func(c *window.Config) { c.MaxRaw = -1 }, "max_raw_durations must not be negative, got -1"},
		{"percentile 0", func(c *window.Config) { c.Percentiles = []float64{50, 0} }, "percentiles must be in (0, 100], got 0"},
		{"percentile over 100", func(c *window.Config) { c.Percentiles = []float64{100.5} }, "percentiles must be in (0, 100], got 100.5"},
		{"negative percentile", func(c *window.Config) { c.Percentiles = []float64{-5} }, "got -5"},
		{"NaN percentile", func(c *window.Config) { c.Percentiles = []float64{math.NaN()} }, "got NaN"},
		{"infinite percentile", func(c *window.Config) { c.Percentiles = []float64{math.Inf(1)} }, "got +Inf"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := valid
			cfg.Percentiles = slices.Clone(valid.Percentiles)
			tc.change(&cfg)
			err := cfg.Validate()
			_, newErr := window.New(cfg)
			if tc.wantErr == "" {
				if err != nil || newErr != nil {
					t.Errorf("Validate: %v, New: %v; want both nil", err, newErr)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Validate: %v, want an error containing %q", err, tc.wantErr)
			}
			if newErr == nil || newErr.Error() != fmt.Sprint(err) {
				t.Errorf("New: %v, want the Validate error %v", newErr, err)
			}
		})
	}
}

// TestConfigIsCopied checks that the window keeps its own copy of the
// percentiles and reports them in the configured order.
func TestConfigIsCopied(t *testing.T) {
	cfg := smallConfig()
	cfg.Percentiles = []float64{100, 50}
	w := newWindow(t, cfg)
	cfg.Percentiles[0] = 1
	if got := w.Config().Percentiles; !slices.Equal(got, []float64{100, 50}) {
		t.Errorf("Config().Percentiles = %v after changing the caller's slice, want [100 50]", got)
	}
	if got := w.SlotWidth(); got != time.Second {
		t.Errorf("SlotWidth = %v, want 1s", got)
	}
	for _, v := range []float64{1, 2, 3} {
		if err := w.Finish("a", v, 200, base); err != nil {
			t.Fatal(err)
		}
	}
	st, _ := w.PrefixStats("a", base)
	if st.Percentiles[0] != 3 || !withinSketchAccuracy(st.Percentiles[1], 2) {
		t.Errorf("percentiles [p100 p50] = %v, want [3 2]", st.Percentiles)
	}
}

// ---- Differential test against a naive reference window ----

// refWindow is the specification written the slow way: it keeps every
// finish and recomputes everything from the live ones at each query.
type refWindow struct {
	width  int64 // slot width, ns
	slots  int64
	maxRaw int
	quant  []float64
	latest int64
	prefix map[string]*refPrefix
}

type refPrefix struct {
	since             int64
	started, finished int64
	status            [window.NumClass]int64
	events            []refEvent // every finish, in arrival order
}

type refEvent struct {
	t  int64 // instant, Unix ns (after the clock rule)
	ms float64
}

func newRef(cfg window.Config) *refWindow {
	r := &refWindow{
		width:  int64(cfg.Window) / int64(cfg.Slots),
		slots:  int64(cfg.Slots),
		maxRaw: cfg.MaxRaw,
		prefix: map[string]*refPrefix{},
	}
	for _, p := range cfg.Percentiles {
		r.quant = append(r.quant, p/100)
	}
	return r
}

// clock: an instant earlier than one already seen counts as the latest one.
func (r *refWindow) clock(now time.Time) int64 {
	r.latest = max(r.latest, now.UnixNano())
	return r.latest
}

func (r *refWindow) get(name string, t int64) *refPrefix {
	p, ok := r.prefix[name]
	if !ok {
		p = &refPrefix{since: t}
		r.prefix[name] = p
	}
	return p
}

func (r *refWindow) start(name string, now time.Time) {
	r.get(name, r.clock(now)).started++
}

func (r *refWindow) finish(name string, ms float64, status int, now time.Time) {
	t := r.clock(now)
	p := r.get(name, t)
	p.finished++
	class := window.ClassNone
	if status >= 100 && status <= 599 {
		class = status / 100
	}
	p.status[class]++
	p.events = append(p.events, refEvent{t: t, ms: ms})
}

func (r *refWindow) reset(now time.Time) {
	r.clock(now)
	clear(r.prefix)
}

// live: slot k covers [k·width, (k+1)·width); at t the live slots are the
// Slots slots ending with the one that contains t.
func (r *refWindow) live(e refEvent, t int64) bool {
	cur := t / r.width
	k := e.t / r.width
	return k <= cur && k > cur-r.slots
}

// refStats is the reference answer for one prefix; exact marks the
// percentiles whose index is the first or the last, which must equal Min or
// Max exactly.
type refStats struct {
	window.Stats
	exact []bool
}

func (r *refWindow) stats(now time.Time) map[string]refStats {
	t := r.clock(now)
	out := map[string]refStats{}
	for name, p := range r.prefix {
		var xs []float64
		for _, e := range p.events {
			if r.live(e, t) {
				xs = append(xs, e.ms)
			}
		}
		slices.Sort(xs)
		st := window.Stats{
			Started: p.started, Finished: p.finished, Status: p.status,
			Count:       int64(len(xs)),
			Percentiles: make([]float64, len(r.quant)),
		}
		exact := make([]bool, len(r.quant))
		if n := len(xs); n > 0 {
			var sum float64
			for _, x := range xs {
				sum += x
			}
			st.Mean = sum / float64(n)
			var ss float64
			for _, x := range xs {
				ss += (x - st.Mean) * (x - st.Mean)
			}
			st.Std = math.Sqrt(ss / float64(n))
			st.Min, st.Max = xs[0], xs[n-1]
			for i, q := range r.quant {
				// value at 0-based index floor(q·(n−1)), computed in float64
				k := int(math.Floor(float64(q * (float64(n) - 1))))
				st.Percentiles[i] = xs[k]
				exact[i] = k == 0 || k == n-1
			}
			oldestLiveSlotStart := (t/r.width - r.slots + 1) * r.width
			covered := time.Duration(t - max(oldestLiveSlotStart, p.since))
			st.Rate = float64(n) / max(covered, time.Second).Seconds()
		}
		out[name] = refStats{st, exact}
	}
	return out
}

func (r *refWindow) raw(now time.Time) map[string][]float64 {
	t := r.clock(now)
	out := map[string][]float64{}
	for name, p := range r.prefix {
		list := []float64{}
		kept := p.events[max(0, len(p.events)-r.maxRaw):]
		for _, e := range kept {
			if r.live(e, t) {
				list = append(list, e.ms)
			}
		}
		out[name] = list
	}
	return out
}

// randDuration draws a request duration in ms: some zeros, some whole
// milliseconds (as the original client sends), most log-normal.
func randDuration(rng *rand.Rand) float64 {
	switch x := rng.Float64(); {
	case x < 0.08:
		return 0
	case x < 0.4:
		return math.Round(math.Exp(1.5*rng.NormFloat64() + 4))
	default:
		return math.Exp(2*rng.NormFloat64() + 3)
	}
}

// randAdvance draws the next clock move: mostly small steps, sometimes a
// slot or two, sometimes a gap longer than the window, and rarely a step
// back.
func randAdvance(rng *rand.Rand, cfg window.Config) time.Duration {
	width := int64(cfg.Window) / int64(cfg.Slots)
	switch x := rng.Float64(); {
	case x < 0.001:
		return -time.Duration(rng.Int64N(width))
	case x < 0.0015:
		return cfg.Window + time.Duration(rng.Int64N(2*int64(cfg.Window)))
	case x < 0.005:
		return time.Duration(rng.Int64N(2 * width))
	default:
		return time.Duration(rng.ExpFloat64() * float64(width) / 300)
	}
}

func TestDifferential(t *testing.T) {
	configs := []struct {
		name         string
		window       time.Duration
		slots        int
		maxRaw       int
		steps, seeds int
	}{
		{"10s in 10 slots", 10 * time.Second, 10, 50, 30000, 3},
		{"600s in 60 slots", 600 * time.Second, 60, 1000, 30000, 3},
		{"7s in 3 slots", 7 * time.Second, 3, 7, 30000, 3},
		{"5s in 1 slot", 5 * time.Second, 1, 1, 30000, 3},
	}
	prefixes := []string{"default", "api", "static", "admin"}
	statuses := []int{200, 200, 200, 201, 302, 404, 500, 503, 101, 0, 99, 600}
	for _, c := range configs {
		for seed := uint64(1); seed <= uint64(c.seeds); seed++ {
			t.Run(fmt.Sprintf("%s/seed=%d", c.name, seed), func(t *testing.T) {
				cfg := window.Config{
					Window:      c.window,
					Slots:       c.slots,
					Percentiles: []float64{1, 25, 50, 75, 90, 95, 99, 99.9, 100},
					MaxPrefixes: len(prefixes),
					MaxRaw:      c.maxRaw,
				}
				differential(t, cfg, seed, c.steps, prefixes, statuses)
			})
		}
	}
}

func differential(t *testing.T, cfg window.Config, seed uint64, steps int, prefixes []string, statuses []int) {
	rng := rand.New(rand.NewPCG(seed, 0x6a09e667f3bcc908))
	w := newWindow(t, cfg)
	ref := newRef(cfg)
	now := base
	queries, nonEmpty, empty, largest := 0, 0, 0, int64(0)
	for i := range steps {
		now = now.Add(randAdvance(rng, cfg))
		where := func() string {
			return fmt.Sprintf("seed %d, step %d, now base+%v", seed, i, now.Sub(base))
		}
		prefix := prefixes[rng.IntN(len(prefixes))]
		switch x := rng.Float64(); {
		case x < 0.0005:
			w.Reset(now)
			ref.reset(now)
		case x < 0.3:
			if err := w.Start(prefix, now); err != nil {
				t.Fatalf("%s: Start: %v", where(), err)
			}
			ref.start(prefix, now)
		case x < 0.96:
			ms, status := randDuration(rng), statuses[rng.IntN(len(statuses))]
			if err := w.Finish(prefix, ms, status, now); err != nil {
				t.Fatalf("%s: Finish: %v", where(), err)
			}
			ref.finish(prefix, ms, status, now)
		case x < 0.99:
			queries++
			if rng.IntN(30) == 0 {
				// Ask later, when part or all of the window has left.
				now = now.Add(time.Duration(rng.Int64N(int64(cfg.Window) * 3 / 2)))
			}
			got, want := w.Stats(now), ref.stats(now)
			if len(got) != len(want) {
				t.Fatalf("%s: Stats lists %d prefixes, reference %d", where(), len(got), len(want))
			}
			for name, ws := range want {
				largest = max(largest, ws.Count)
				if ws.Count > 0 {
					nonEmpty++
				} else {
					empty++
				}
				if msg := diffStats(got[name], ws); msg != "" {
					t.Fatalf("%s: prefix %q: %s\ngot  %+v\nwant %+v", where(), name, msg, got[name], ws)
				}
			}
		default:
			got, want := w.Raw(now), ref.raw(now)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%s: Raw = %v\nreference %v", where(), got, want)
			}
		}
	}
	// The comparison must have exercised both full and empty windows.
	if queries < steps/50 || nonEmpty < queries || empty == 0 {
		t.Fatalf("seed %d: only %d queries, %d non-empty and %d empty prefix answers",
			seed, queries, nonEmpty, empty)
	}
	t.Logf("seed %d: %d queries, %d non-empty and %d empty prefix answers, up to %d durations in a window",
		seed, queries, nonEmpty, empty, largest)
}

// diffStats describes how got differs from the reference want: counters,
// counts, min and max exactly; mean, std and rate within 1e-9 relative;
// percentiles within the sketch accuracy, or exactly at the first and last
// index.
func diffStats(got window.Stats, want refStats) string {
	if got.Started != want.Started || got.Finished != want.Finished || got.Status != want.Status {
		return "counters differ"
	}
	if got.Count != want.Count {
		return "count differs"
	}
	if got.Min != want.Min || got.Max != want.Max {
		return "min or max differs"
	}
	if !closeRel(got.Mean, want.Mean, 1e-9) || !closeRel(got.Std, want.Std, 1e-9) {
		return "mean or std beyond 1e-9 relative"
	}
	if !closeRel(got.Rate, want.Rate, 1e-9) {
		return "rate beyond 1e-9 relative"
	}
	if len(got.Percentiles) != len(want.Percentiles) {
		return "number of percentiles differs"
	}
	for i := range want.Percentiles {
		if want.exact[i] && got.Percentiles[i] != want.Percentiles[i] {
			return fmt.Sprintf("percentile #%d: %v vs %v at the first or last index, want it exact",
				i, got.Percentiles[i], want.Percentiles[i])
		}
		if !withinSketchAccuracy(got.Percentiles[i], want.Percentiles[i]) {
			return fmt.Sprintf("percentile #%d: %v vs %v, beyond %v relative",
				i, got.Percentiles[i], want.Percentiles[i], window.RelativeAccuracy)
		}
	}
	return ""
}

// TestMemoryDoesNotGrowWithRate checks PROTOCOL defect 7: with durations
// of the same range, 30 times more requests per slot take no more memory.
func TestMemoryDoesNotGrowWithRate(t *testing.T) {
	cfg := window.Config{Window: 60 * time.Second, Slots: 6, Percentiles: []float64{50}, MaxPrefixes: 10}
	width := cfg.Window / time.Duration(cfg.Slots)
	perPrefix := func(perSlot int) float64 {
		_, b := filledWindow(t, cfg, 4, func(tb testing.TB, w *window.Window, prefixes []string) {
			rng := rand.New(rand.NewPCG(3, 4))
			for k := range cfg.Slots {
				for j := range perSlot {
					now := base.Add(time.Duration(k)*width + time.Duration(j)*width/time.Duration(perSlot))
					// 1 ms to 10 s, evenly in log scale, both ends first:
					// every slot spans the same sketch bins at any rate.
					ms := math.Exp(rng.Float64() * math.Log(1e4))
					switch j {
					case 0:
						ms = 1
					case 1:
						ms = 1e4
					}
					for _, p := range prefixes {
						if err := w.Finish(p, ms, 200, now); err != nil {
							tb.Fatal(err)
						}
					}
				}
			}
		})
		return b
	}
	low, high := perPrefix(1000), perPrefix(30000)
	t.Logf("B/prefix: %.0f at 1000 durations per slot, %.0f at 30000", low, high)
	if high > 1.1*low+2048 {
		t.Errorf("a prefix takes %.0f B at 30000 durations per slot, %.0f B at 1000: memory grows with the rate", high, low)
	}
}

// hostileFill returns a fill that gives every slot of every prefix a
// duration in each of the 2048 sketch bins, in random order (so that a
// slot's list grows to its largest before it turns into counts), plus
// zeros, sub-microsecond durations and durations beyond the last bin: the
// most memory durations can make a prefix take.
func hostileFill(tb testing.TB, w *window.Window, prefixes []string) {
	gamma := (1 + window.RelativeAccuracy) / (1 - window.RelativeAccuracy)
	ds := make([]float64, 0, 2048+4)
	for i := range 2048 {
		ds = append(ds, window.MinBinned*math.Pow(gamma, float64(i)+0.5))
	}
	ds = append(ds, 0, window.MinBinned/3, 1e300, math.MaxFloat64)
	rng := rand.New(rand.NewPCG(17, 19))
	cfg := w.Config()
	width := cfg.Window / time.Duration(cfg.Slots)
	for k := range cfg.Slots {
		rng.Shuffle(len(ds), func(i, j int) { ds[i], ds[j] = ds[j], ds[i] })
		for j, ms := range ds {
			now := base.Add(time.Duration(k)*width + time.Duration(j)*width/time.Duration(len(ds)))
			for _, p := range prefixes {
				if err := w.Finish(p, ms, 200, now); err != nil {
					tb.Fatal(err)
				}
			}
		}
	}
}

// TestPrefixMemoryBound fills prefixes with hostile durations and checks
// that each takes no more heap than MaxPrefixBytes, and that the fill did
// reach the arrays' ceiling the bound is made of (so that the bound is the
// one that counts, not a loose one).
func TestPrefixMemoryBound(t *testing.T) {
	for _, c := range []struct {
		name     string
		window   time.Duration
		slots    int
		maxRaw   int
		prefixes int
	}{
		{"defaults: 600s in 60 slots, 1000 raw", 600 * time.Second, 60, 1000, 4},
		{"one slot, no raw", 10 * time.Second, 1, 0, 20},
		{"600 slots, 10000 raw", 600 * time.Second, 600, 10000, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := window.Config{Window: c.window, Slots: c.slots, MaxRaw: c.maxRaw,
				MaxPrefixes: c.prefixes, Percentiles: []float64{50, 99}}
			w, perPrefix := filledWindow(t, cfg, c.prefixes, hostileFill)
			bound := window.MaxPrefixBytes(cfg)
			arrays := float64(c.slots*4*2048 + 8*2048 + 16*c.maxRaw)
			t.Logf("%.0f B/prefix, bound %d B, arrays at their largest %.0f B", perPrefix, bound, arrays)
			if perPrefix > float64(bound) {
				t.Errorf("a prefix takes %.0f B, more than MaxPrefixBytes = %d", perPrefix, bound)
			}
			if perPrefix < arrays {
				t.Errorf("a prefix takes %.0f B, less than its arrays at their largest (%.0f B): the fill missed the ceiling", perPrefix, arrays)
			}
			st, _ := w.PrefixStats("app0000", base.Add(c.window-time.Nanosecond))
			if want := int64(c.slots * (2048 + 4)); st.Count != want || st.Max != math.MaxFloat64 || st.Min != 0 {
				t.Errorf("count %d, min %v, max %v; want %d, 0, MaxFloat64", st.Count, st.Min, st.Max, want)
			}
		})
	}
}

// TestAppendPrefixes checks that AppendPrefixes lists what Prefixes does,
// after dst's own elements.
func TestAppendPrefixes(t *testing.T) {
	w := newWindow(t, smallConfig())
	for _, p := range []string{"b", "c", "a"} {
		if err := w.Start(p, base); err != nil {
			t.Fatal(err)
		}
	}
	got := w.AppendPrefixes([]string{"x"})
	if got[0] != "x" || !slices.Equal(slices.Sorted(slices.Values(got[1:])), w.Prefixes()) {
		t.Errorf("AppendPrefixes = %q, want x then %q in any order", got, w.Prefixes())
	}
}
