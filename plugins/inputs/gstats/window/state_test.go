package window

import (
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

// exportAll exports every prefix of w at now, by name.
func exportAll(t *testing.T, w *Window, now time.Time) []PrefixState {
	t.Helper()
	var out []PrefixState
	for _, name := range w.Prefixes() {
		var ps PrefixState
		if !w.Export(name, now, &ps) {
			t.Fatalf("Export(%q) = false for a tracked prefix", name)
		}
		out = append(out, ps)
	}
	return out
}

// restorableDuration is hostileDuration up to 10^15 ms, past the last bin
// but short of durations whose squares overflow the moments: the plugin
// accepts at most max_duration, a few 10^12 ms at most.
func restorableDuration(rng *rand.Rand) float64 {
	return min(hostileDuration(rng), 1e15)
}

// sameWindows checks that a and b answer the same Stats and Raw at now, bit
// for bit, and that b's sums match its slots.
func sameWindows(t *testing.T, where string, a, b *Window, now time.Time) {
	t.Helper()
	sa, sb := a.Stats(now), b.Stats(now)
	if !reflect.DeepEqual(sa, sb) {
		t.Fatalf("%s: stats differ:\n original %+v\n imported %+v", where, sa, sb)
	}
	ra, rb := a.Raw(now), b.Raw(now)
	if !reflect.DeepEqual(ra, rb) {
		t.Fatalf("%s: raw durations differ:\n original %v\n imported %v", where, ra, rb)
	}
	for name, p := range b.prefix {
		if err := checkSum(p); err != nil {
			t.Fatalf("%s: imported prefix %q: %v", where, name, err)
		}
	}
}

// TestExportImportRandom plays random traffic into a window, exports it at
// a random instant and imports it into a new window at that instant or
// later (a restart after some downtime): the new window must answer exactly
// what the original answers at every later instant, and keep doing so as
// both receive the same further traffic.
func TestExportImportRandom(t *testing.T) {
	configs := []Config{
		{Window: 10 * time.Second, Slots: 10, Percentiles: []float64{50, 90, 99.9}, MaxPrefixes: 5, MaxRaw: 20},
		{Window: 7 * time.Second, Slots: 3, Percentiles: []float64{1, 50, 100}, MaxPrefixes: 5, MaxRaw: 1},
		{Window: 60 * time.Second, Slots: 60, Percentiles: []float64{99}, MaxPrefixes: 5, MaxRaw: 0},
		{Window: time.Second, Slots: 1, Percentiles: []float64{50}, MaxPrefixes: 5, MaxRaw: 1000},
	}
	prefixes := []string{"a", "b", "api/v1", "ünïcode", "default"}
	var total ImportReport // what the cases covered, over all of them
	for ci, cfg := range configs {
		for seed := range uint64(25) {
			rng := rand.New(rand.NewPCG(seed, uint64(ci)))
			a := mustNew(t, cfg)
			at, latest := testBase, testBase // latest: the windows' clock
			play := func(ws []*Window, steps int) {
				for range steps {
					at = at.Add(time.Duration(rng.Int64N(int64(cfg.Window) / 4)))
					if rng.IntN(40) == 0 {
						at = at.Add(-time.Duration(rng.Int64N(int64(cfg.Window)))) // clock back
					}
					if at.After(latest) {
						latest = at
					}
					name := prefixes[rng.IntN(len(prefixes))]
					isStart := rng.IntN(3) == 0
					ms, status := restorableDuration(rng), []int{0, 200, 404, 503, 999}[rng.IntN(5)]
					for _, w := range ws {
						var err error
						if isStart {
							err = w.Start(name, at)
						} else {
							err = w.Finish(name, ms, status, at)
						}
						if err != nil {
							t.Fatal(err)
						}
					}
				}
			}
			// Burst traffic, so that slots get many durations each.
			for range 1 + rng.IntN(4) {
				play([]*Window{a}, rng.IntN(60))
				for range rng.IntN(300) {
					if err := a.Finish(prefixes[rng.IntN(2)], restorableDuration(rng), 200, at); err != nil {
						t.Fatal(err)
					}
				}
			}
			exported := latest.Add(time.Duration(rng.Int64N(int64(cfg.Window))))
			states := exportAll(t, a, exported)
			// Restored soon after, or after a downtime of up to two windows.
			downtime := []time.Duration{cfg.Window / 4, 2 * cfg.Window}[rng.IntN(2)]
			restored := exported.Add(time.Duration(rng.Int64N(int64(downtime))))
			b := mustNew(t, cfg)
			rep, err := b.Import(states, restored)
			if err != nil {
				t.Fatalf("config %d seed %d: Import: %v", ci, seed, err)
			}
			if rep.Prefixes != len(states) || rep.FutureSlots != 0 {
				t.Fatalf("config %d seed %d: report %+v for %d prefixes", ci, seed, rep, len(states))
			}
			total.Slots += rep.Slots
			total.ExpiredSlots += rep.ExpiredSlots
			total.Raw += rep.Raw
			total.RawDropped += rep.RawDropped
			where := fmt.Sprintf("config %d seed %d", ci, seed)
			sameWindows(t, where+": at the import", a, b, restored)
			at = restored
			for i := range 5 {
				play([]*Window{a, b}, 20)
				sameWindows(t, fmt.Sprintf("%s: after more traffic (%d)", where, i), a, b, at)
			}
			sameWindows(t, where+": once the window has passed", a, b, at.Add(cfg.Window))
		}
	}
	if total.Slots < 100 || total.ExpiredSlots < 50 || total.Raw < 100 || total.RawDropped < 50 {
		t.Errorf("the cases restored too little to tell anything: %+v", total)
	}
	t.Logf("over all cases: %+v", total)
}

// TestImportAfterDowntime exports a window with a duration in each of 6
// slots and imports it after downtimes of 0 to 8 slots: the slots that
// left the window meanwhile are gone, the others kept, the counters all.
func TestImportAfterDowntime(t *testing.T) {
	cfg := Config{Window: 6 * time.Second, Slots: 6, Percentiles: []float64{50}, MaxPrefixes: 2, MaxRaw: 100}
	a := mustNew(t, cfg)
	for i := range 6 {
		for range 3 {
			if err := a.Finish("p", float64(10*(i+1)), 200, testBase.Add(time.Duration(i)*time.Second)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := a.Start("p", testBase.Add(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	exported := testBase.Add(5500 * time.Millisecond)
	states := exportAll(t, a, exported)
	if len(states) != 1 || len(states[0].Slots) != 6 || len(states[0].Raw) != 18 {
		t.Fatalf("exported %+v, want 6 slots and 18 raw durations", states)
	}
	for down := range 9 {
		b := mustNew(t, cfg)
		at := exported.Add(time.Duration(down) * time.Second)
		rep, err := b.Import(states, at)
		if err != nil {
			t.Fatal(err)
		}
		kept := max(0, 6-down)
		want := ImportReport{Prefixes: 1, Slots: kept, Durations: int64(3 * kept), ExpiredSlots: 6 - kept, Raw: 3 * kept, RawDropped: 18 - 3*kept}
		if rep != want {
			t.Errorf("down %ds: report %+v, want %+v", down, rep, want)
		}
		st, _ := b.PrefixStats("p", at)
		if st.Started != 1 || st.Finished != 18 || st.Status[2] != 18 || st.Count != int64(3*kept) {
			t.Errorf("down %ds: stats %+v, want started 1, finished 18, count %d", down, st, 3*kept)
		}
		sameWindows(t, fmt.Sprintf("down %ds", down), a, b, at)
	}
}

// TestImportClockBack imports a state written at a later instant than the
// import's (the wall clock went back between the two runs): the slots after
// the import's instant are dropped, and the window's clock is not moved to
// the file's, so that new durations land in the present slots.
func TestImportClockBack(t *testing.T) {
	cfg := Config{Window: 10 * time.Second, Slots: 10, Percentiles: []float64{50}, MaxPrefixes: 1, MaxRaw: 10}
	a := mustNew(t, cfg)
	for i := range 4 {
		if err := a.Finish("p", float64(i+1), 0, testBase.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	states := exportAll(t, a, testBase.Add(3*time.Second))
	b := mustNew(t, cfg)
	at := testBase.Add(1500 * time.Millisecond) // slots 0 and 1 are not in the future
	rep, err := b.Import(states, at)
	if err != nil {
		t.Fatal(err)
	}
	if rep.FutureSlots != 2 || rep.Slots != 2 || rep.Raw != 2 || rep.RawDropped != 2 {
		t.Errorf("report %+v, want 2 slots kept, 2 in the future, 2 raw durations kept and 2 dropped", rep)
	}
	if err := b.Finish("p", 100, 0, at); err != nil {
		t.Fatal(err)
	}
	st, _ := b.PrefixStats("p", at)
	if st.Count != 3 || st.Max != 100 || st.Finished != 5 {
		t.Errorf("stats %+v, want the 2 kept durations and the new one (max 100), finished 5", st)
	}
	if raw := b.Raw(at)["p"]; !reflect.DeepEqual(raw, []float64{1, 2, 100}) {
		t.Errorf("raw %v, want [1 2 100]", raw)
	}
	if err := checkSum(b.prefix["p"]); err != nil {
		t.Fatal(err)
	}
}

// TestImportTrimsRaw imports more raw durations than the window keeps: the
// newest stay, and new ones then replace the oldest.
func TestImportTrimsRaw(t *testing.T) {
	big := Config{Window: 10 * time.Second, Slots: 10, MaxPrefixes: 1, MaxRaw: 100}
	a := mustNew(t, big)
	for i := range 10 {
		if err := a.Finish("p", float64(i), 0, testBase.Add(time.Duration(i)*500*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
	}
	at := testBase.Add(5 * time.Second)
	states := exportAll(t, a, at)
	small := big
	small.MaxRaw = 3
	b := mustNew(t, small)
	rep, err := b.Import(states, at)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Raw != 3 || rep.RawDropped != 7 {
		t.Errorf("report %+v, want 3 raw durations kept, 7 dropped", rep)
	}
	if raw := b.Raw(at)["p"]; !reflect.DeepEqual(raw, []float64{7, 8, 9}) {
		t.Errorf("raw %v, want the newest [7 8 9]", raw)
	}
	if err := b.Finish("p", 10, 0, at); err != nil {
		t.Fatal(err)
	}
	if raw := b.Raw(at)["p"]; !reflect.DeepEqual(raw, []float64{8, 9, 10}) {
		t.Errorf("raw after a finish %v, want [8 9 10]", raw)
	}
	if st, _ := b.PrefixStats("p", at); st.Count != 11 {
		t.Errorf("count %d, want 11: the histograms do not depend on max_raw", st.Count)
	}
}

// TestImportHistogramForms checks that imported slots take the memory form
// Finish gives them (a list while it is smaller, counts otherwise), that
// wrapped 32-bit counts come back, and that such slots leave the sums whole.
func TestImportHistogramForms(t *testing.T) {
	cfg := Config{Window: 10 * time.Second, Slots: 10, Percentiles: []float64{50}, MaxPrefixes: 3}
	a := mustNew(t, cfg)
	finish := func(name string, ms float64, n int, at time.Duration) {
		t.Helper()
		for range n {
			if err := a.Finish(name, ms, 200, testBase.Add(at)); err != nil {
				t.Fatal(err)
			}
		}
	}
	finish("sparse", 5, 1, 0)
	finish("sparse", 5000, 2, 0)
	finish("sparse", 0, 1, 0)
	for i := range 300 {
		finish("dense", 1+float64(i%40), 1, 0)
	}
	finish("wrapped", 5, 5, 0)
	p := a.prefix["wrapped"]
	s := &p.slots[(testBase.UnixNano()/a.width)%10]
	b5 := a.bin(5)
	const preset = math.MaxUint32 - 2 - 5
	s.bins[b5-int(s.lo)] += preset
	s.n += preset
	p.sum.counts[b5-p.sum.lo] += preset
	p.finished += preset
	p.status[2] += preset
	finish("wrapped", 5, 5, 0)
	finish("wrapped", 50, 1, time.Second)

	at := testBase.Add(time.Second)
	states := exportAll(t, a, at)
	b := mustNew(t, cfg)
	if _, err := b.Import(states, at); err != nil {
		t.Fatal(err)
	}
	sameWindows(t, "imported", a, b, at)
	idx := testBase.UnixNano() / b.width
	slotOf := func(name string) *slot { return &b.prefix[name].slots[idx%10] }
	if s := slotOf("sparse"); s.dense || len(s.bins) != 3 || cap(s.bins) != 4 {
		t.Errorf("sparse slot: dense %v, %d of %d listed, want a list of 3 in 4", s.dense, len(s.bins), cap(s.bins))
	}
	if s := slotOf("dense"); !s.dense || len(s.bins) != b.bin(40)-b.bin(1)+1 {
		t.Errorf("dense slot: dense %v over %d bins, want counts over the bins of 1 to 40 ms", s.dense, len(s.bins))
	}
	wp := b.prefix["wrapped"]
	if ws := slotOf("wrapped"); !ws.dense || ws.bins[b5-int(ws.lo)] != 2 || wp.wraps[wrapKey{idx, b5}] != 1 {
		t.Errorf("wrapped slot: count %d and wraps %v, want 2 and one wrap", ws.bins[b5-int(ws.lo)], wp.wraps)
	}
	if st, _ := b.PrefixStats("wrapped", at); st.Count != 1<<32+2+1 {
		t.Errorf("wrapped count %d, want %d", st.Count, int64(1<<32+2+1))
	}
	// Slot 0 leaves the window: the sums stay exact in both forms.
	later := testBase.Add(cfg.Window)
	sameWindows(t, "once slot 0 has left", a, b, later)
	if len(wp.wraps) != 0 {
		t.Errorf("wraps %v left after the slot left", wp.wraps)
	}
	if err := b.Finish("sparse", 7, 0, later); err != nil {
		t.Fatal(err)
	}
	if err := checkSum(b.prefix["sparse"]); err != nil {
		t.Fatal(err)
	}
}

// validState is a state with every kind of field set, for the validation
// cases to break one at a time.
func validState() PrefixState {
	return PrefixState{
		Name: "api", Since: testBase.UnixNano(), Started: 5, Finished: 4,
		Status: [NumClass]int64{1, 0, 3, 0, 0, 0},
		Slots: []SlotState{
			{Index: 100, Count: 1, Mean: 0, M2: 0, Min: 0, Max: 0},
			{Index: 102, Count: 3, Mean: 20, M2: 200, Min: 10, Max: 30, Bins: []BinCount{{Bin: 461, Count: 1}, {Bin: 495, Count: 1}, {Bin: 516, Count: 1}}},
		},
		Raw: []RawDuration{{Slot: 100, MS: 0}, {Slot: 102, MS: 10}, {Slot: 102, MS: 30}},
	}
}

func TestValidate(t *testing.T) {
	w := mustNew(t, Config{Window: 10 * time.Second, Slots: 10, MaxPrefixes: 10, MaxRaw: 10})
	base := validState()
	// The bins of validState must be those of its durations.
	for i, ms := range []float64{10, 20, 30} {
		if got := w.bin(ms); got != base.Slots[1].Bins[i].Bin {
			t.Fatalf("bin(%v) = %d; fix validState", ms, got)
		}
	}
	if err := Validate([]PrefixState{base}, 10); err != nil {
		t.Fatalf("the valid state: %v", err)
	}
	cases := []struct {
		name  string
		edit  func(*PrefixState)
		slots int
		want  string
	}{
		{"empty name", func(p *PrefixState) { p.Name = "" }, 10, `prefix "": empty name`},
		{"not UTF-8", func(p *PrefixState) { p.Name = "\xff" }, 10, "not UTF-8"},
		{"negative started", func(p *PrefixState) { p.Started = -1 }, 10, "negative counter"},
		{"negative status", func(p *PrefixState) { p.Status[1] = -1; p.Status[2] = 4 }, 10, "negative status count -1 in class 1"},
		{"status sum", func(p *PrefixState) { p.Status[2] = 2 }, 10, "the status classes count 3 finishes, finished says 4"},
		{"status overflow", func(p *PrefixState) { p.Status[3] = math.MaxInt64; p.Finished = math.MaxInt64 }, 10, "the status classes count"},
		{"more slots than the window", nil, 1, "2 slots, the window has 1"},
		{"span", func(p *PrefixState) { p.Slots[1].Index = 110; p.Raw[1].Slot, p.Raw[2].Slot = 110, 110 }, 10, "slot 110: 10 slots after slot 100, more than the window's 10"},
		{"order", func(p *PrefixState) { p.Slots[1].Index = 99 }, 10, "slot 99: after slot 100"},
		{"same index", func(p *PrefixState) { p.Slots[1].Index = 100 }, 10, "slot 100: after slot 100"},
		{"negative index", func(p *PrefixState) { p.Slots[0].Index = -1 }, 10, "slot -1: negative index"},
		{"zero count", func(p *PrefixState) { p.Slots[0].Count = 0 }, 10, "slot 100: count 0"},
		{"NaN mean", func(p *PrefixState) { p.Slots[1].Mean = math.NaN() }, 10, "slot 102: non-finite moments"},
		{"infinite max", func(p *PrefixState) { p.Slots[1].Max = math.Inf(1) }, 10, "non-finite moments"},
		{"negative min", func(p *PrefixState) { p.Slots[0].Min = -1 }, 10, "want 0 ≤ minimum ≤ maximum"},
		{"min over max", func(p *PrefixState) { p.Slots[1].Min = 40 }, 10, "minimum 40 and maximum 30"},
		{"negative m2", func(p *PrefixState) { p.Slots[1].M2 = -1 }, 10, "negative sum of squared deviations"},
		{"mean outside", func(p *PrefixState) { p.Slots[1].Mean = 31 }, 10, "mean 31 outside"},
		{"one duration, two values", func(p *PrefixState) { p.Slots[0].Max = 1 }, 10, "one duration with minimum 0, maximum 1"},
		{"bin out of range", func(p *PrefixState) { p.Slots[1].Bins[2].Bin = NumBins }, 10, "slot 102: bin 2048 out of range [0, 2048)"},
		{"negative bin", func(p *PrefixState) { p.Slots[1].Bins[0].Bin = -1 }, 10, "bin -1 out of range"},
		{"bins not increasing", func(p *PrefixState) { p.Slots[1].Bins[1].Bin = 461 }, 10, "bin 461 after bin 461"},
		{"empty bin", func(p *PrefixState) { p.Slots[1].Bins[1].Count = 0 }, 10, "bin 495 counts nothing"},
		{"bin outside the moments", func(p *PrefixState) { p.Slots[1].Bins[1].Bin = 520 }, 10, "bin 520 outside bins 461 to 516"},
		{"bins over the count", func(p *PrefixState) { p.Slots[1].Bins[1].Count = 2 }, 10, "the bins count more than the 3 durations"},
		{"bins overflow", func(p *PrefixState) { p.Slots[1].Bins[1].Count = math.MaxUint64 }, 10, "the bins count more than"},
		{"zeros but binned minimum", func(p *PrefixState) { p.Slots[1].Count = 4; p.Finished, p.Status[2] = 5, 4 }, 10, "1 durations outside the bins, but the minimum 10 is binned"},
		{"no zero for a tiny minimum", func(p *PrefixState) { p.Slots[1].Min = 0 }, 10, "minimum 0 is under 0.001 ms but no duration is outside the bins"},
		{"minimum's bin empty", func(p *PrefixState) { p.Slots[1].Bins[0].Bin = 462 }, 10, "no duration in bin 461 of the minimum 10"},
		{"maximum's bin empty", func(p *PrefixState) { p.Slots[1].Bins[2].Bin = 515 }, 10, "no duration in bin 516 of the maximum 30"},
		{"slots over finished", func(p *PrefixState) { p.Finished, p.Status[2] = 3, 2 }, 10, "the slots hold 4 durations, more than the 3 finishes"},
		{"raw not in a slot", func(p *PrefixState) { p.Raw[0].Slot = 101 }, 10, "raw duration 0: slot 101 is not among the slots"},
		{"raw order", func(p *PrefixState) { p.Raw[0], p.Raw[1] = p.Raw[1], p.Raw[0] }, 10, "raw duration 1: slot 100 after slot 102"},
		{"raw outside the moments", func(p *PrefixState) { p.Raw[1].MS = 31 }, 10, "raw duration 1: 31 ms in slot 102, outside its minimum 10 and maximum 30"},
		{"raw NaN", func(p *PrefixState) { p.Raw[1].MS = math.NaN() }, 10, "raw duration 1: NaN ms"},
		{"raw over the count", func(p *PrefixState) {
			p.Raw = append(p.Raw, RawDuration{Slot: 102, MS: 20}, RawDuration{Slot: 102, MS: 20})
		}, 10, "raw duration 4: more raw durations in slot 102 than its 3 durations"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := validState()
			if tc.edit != nil {
				tc.edit(&p)
			}
			err := Validate([]PrefixState{p}, tc.slots)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want an error containing %q", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "prefix ") {
				t.Errorf("error %q does not name the prefix first", err)
			}
			// Import refuses the same, and leaves the window empty.
			w := mustNew(t, Config{Window: time.Duration(tc.slots) * time.Second, Slots: tc.slots, MaxPrefixes: 10, MaxRaw: 10})
			if _, err := w.Import([]PrefixState{p}, testBase.Add(1000*time.Second)); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Import = %v, want an error containing %q", err, tc.want)
			}
			if w.Len() != 0 {
				t.Errorf("the refused import left %d prefixes", w.Len())
			}
		})
	}
	if err := Validate([]PrefixState{base, base}, 10); err == nil || !strings.Contains(err.Error(), `prefix "api" appears twice`) {
		t.Errorf("Validate of a duplicate = %v", err)
	}
}

func TestImportRefusesConflicts(t *testing.T) {
	w := mustNew(t, Config{Window: 10 * time.Second, Slots: 10, MaxPrefixes: 2, MaxRaw: 10})
	at := testBase.Add(102 * time.Second)
	if err := w.Start("api", at); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Import([]PrefixState{validState()}, at); err == nil || !strings.Contains(err.Error(), `prefix "api" is already tracked`) {
		t.Errorf("Import over a tracked prefix = %v", err)
	}
	two := []PrefixState{validState(), validState()}
	two[0].Name, two[1].Name = "x", "y"
	if _, err := w.Import(two, at); err == nil || !strings.Contains(err.Error(), "3 prefixes, more than max_prefixes = 2") {
		t.Errorf("Import over max_prefixes = %v", err)
	}
	if w.Len() != 1 {
		t.Errorf("the refused imports left %d prefixes, want 1", w.Len())
	}
}

// TestExportReusesMemory checks that exporting into the same PrefixState
// again allocates nothing once it has grown.
func TestExportReusesMemory(t *testing.T) {
	cfg := Config{Window: 10 * time.Second, Slots: 10, MaxPrefixes: 1, MaxRaw: 100}
	w := mustNew(t, cfg)
	rng := rand.New(rand.NewPCG(1, 1))
	for i := range 1000 {
		if err := w.Finish("p", math.Exp(rng.NormFloat64()+3), 200, testBase.Add(time.Duration(i)*10*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
	}
	at := testBase.Add(10 * time.Second)
	var ps PrefixState
	w.Export("p", at, &ps)
	if allocs := testing.AllocsPerRun(10, func() { w.Export("p", at, &ps) }); allocs != 0 {
		t.Errorf("Export allocates %v times into a grown PrefixState, want 0", allocs)
	}
	if w.Export("absent", at, &ps) {
		t.Error("Export of an unknown prefix reports true")
	}
}
