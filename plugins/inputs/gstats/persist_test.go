package gstats

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/testutil"

	"github.com/gstats/gstats/plugins/inputs/gstats/state"
	"github.com/gstats/gstats/plugins/inputs/gstats/window"
	"github.com/gstats/gstats/wire"
)

// withState configures the state file at path and a capturing logger;
// more, if set, adjusts the rest. The interval is long, so that only the
// write at Stop happens unless more shortens it.
func withState(path string, log *testutil.CaptureLogger, more func(*Gstats)) func(*Gstats) {
	return func(g *Gstats) {
		g.StateFile = path
		g.StateInterval = config.Duration(time.Hour)
		g.Log = log
		if more != nil {
			more(g)
		}
	}
}

// logged returns the first message of log at level that contains every
// one of parts, or "".
func logged(log *testutil.CaptureLogger, level byte, parts ...string) string {
	for _, m := range log.Messages() {
		if m.Level != level {
			continue
		}
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(m.Text, p)
		}
		if ok {
			return m.Text
		}
	}
	return ""
}

// requireLog fails unless log has a message at level containing parts.
func requireLog(t *testing.T, log *testutil.CaptureLogger, level byte, parts ...string) string {
	t.Helper()
	m := logged(log, level, parts...)
	if m == "" {
		var all []string
		for _, e := range log.Messages() {
			all = append(all, e.String())
		}
		t.Fatalf("no %c! log line containing %q; the log:\n%s", level, parts, strings.Join(all, "\n"))
	}
	return m
}

// sendTraffic sends a mix of starts, finishes with and without status and
// a rejected message to g, and waits until g has handled them all.
func sendTraffic(t *testing.T, g *Gstats, seed uint64) {
	t.Helper()
	push := newPusher(t, g)
	defer func() { _ = push.Close() }()
	rng := rand.New(rand.NewPCG(seed, 5))
	before := handled(g)
	n := int64(0)
	for i := range 120 {
		prefix := []string{"app", "api", ""}[i%3]
		send(t, push, prefix, "")
		ms := strconv.FormatFloat(math.Round(math.Exp(rng.NormFloat64()+3)*1000)/1000, 'f', -1, 64)
		switch i % 4 {
		case 0:
			send(t, push, prefix, ms)
		case 1, 2:
			send(t, push, prefix, ms, []string{"200", "404", "503", "302"}[rng.IntN(4)])
		default:
			n-- // a request still in flight
		}
		n += 2
	}
	send(t, push, "app", "twelve") // rejected: bad_duration
	n++
	waitFor(t, fmt.Sprintf("%d messages", n), func() bool { return handled(g) == before+n })
}

// noRate clears the rates of a STATS reply: they depend on the instant of
// the query.
func noRate(r wire.StatsReply) wire.StatsReply {
	for k, v := range r {
		v.Rate = 0
		r[k] = v
	}
	return r
}

// infoCounters keeps the counters of an INFO reply.
func infoCounters(r wire.InfoReply) wire.InfoReply {
	return wire.InfoReply{
		Accepted: r.Accepted, Rejected: r.Rejected, RejectedTotal: r.RejectedTotal, Disconnects: r.Disconnects,
		ControlRequests: r.ControlRequests, ControlErrors: r.ControlErrors, CommandsRefused: r.CommandsRefused,
		AuthFailures: r.AuthFailures, ClientDropped: r.ClientDropped, Commands: r.Commands,
		StateWriteErrors: r.StateWriteErrors, Prefixes: r.Prefixes,
	}
}

func TestIntegrationStateRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gstats.state")
	logA := &testutil.CaptureLogger{}
	a, _ := startPlugin(t, withState(path, logA, nil))
	requireLog(t, logA, testutil.LevelInfo, "no state file at "+path+"; starting fresh")
	sendTraffic(t, a, 1)
	ctx := t.Context()
	ca := control(t, a)
	if r, err := ca.Do(ctx, "BOGUS"); err != nil || !wire.IsErrorReply(r) {
		t.Fatalf("BOGUS: %q, %v", r, err)
	}
	statsA, err := ca.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rtA, err := ca.RTimes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	infoA, err := ca.Info(ctx) // the last request: the counters stop here
	if err != nil {
		t.Fatal(err)
	}
	if infoA.StateFile != path || infoA.StateSavedAt != "" {
		t.Errorf("INFO state_file %q, state_saved_at %q; want %q and no write yet", infoA.StateFile, infoA.StateSavedAt, path)
	}
	a.Stop()
	requireLog(t, logA, testutil.LevelInfo, "state written to "+path, "3 prefixes")
	if final := a.infoReply(); final.Disconnects != infoA.Disconnects {
		// The pusher's disconnection reached the monitor after INFO.
		infoA.Disconnects = final.Disconnects
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("state file mode %v, want 0600", info.Mode().Perm())
	}

	logB := &testutil.CaptureLogger{}
	b, acc := startPlugin(t, withState(path, logB, nil))
	requireLog(t, logB, testutil.LevelInfo, "state restored from "+path, "3 prefixes", "0 slots expired while stopped",
		fmt.Sprintf("%d messages accepted and 1 rejected before", infoA.Accepted))
	cb := control(t, b)
	infoB, err := cb.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	statsB, err := cb.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rtB, err := cb.RTimes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(noRate(statsB), noRate(statsA)) {
		t.Errorf("STATS after the restart differs:\n before %+v\n  after %+v", statsA, statsB)
	}
	if len(statsA["app"].ProcessingTime.Percentiles) != 4 || statsA["app"].ProcessingTime.Count == 0 || statsA["default"].Started != 40 {
		t.Errorf("the traffic did not reach STATS as expected: %+v", statsA)
	}
	if !reflect.DeepEqual(rtB, rtA) || len(rtA["app"]) != 30 {
		t.Errorf("RTIMES after the restart differs:\n before %v\n  after %v", rtA, rtB)
	}
	// B answered INFO once more than A had.
	wantInfo := infoCounters(infoA)
	wantInfo.ControlRequests++
	wantInfo.Commands = map[string]int64{}
	for k, v := range infoA.Commands {
		wantInfo.Commands[k] = v
	}
	wantInfo.Commands["INFO"]++
	if got := infoCounters(infoB); !reflect.DeepEqual(got, wantInfo) {
		t.Errorf("INFO counters after the restart:\n got %+v\nwant %+v", got, wantInfo)
	}
	if infoB.Accepted == 0 || infoB.RejectedTotal != 1 || infoB.ControlErrors != 1 {
		t.Errorf("INFO after the restart %+v: want the traffic's counters", infoB)
	}
	// Telegraf's counters carry on.
	if err := b.Gather(acc); err != nil {
		t.Fatal(err)
	}
	if f := fieldsOf(t, acc, "app"); f["started"] != statsA["app"].Started || f["finished"] != statsA["app"].Finished {
		t.Errorf("gathered %v, want started %d and finished %d", f, statsA["app"].Started, statsA["app"].Finished)
	}
	if m, ok := acc.Get("gstats_internal"); !ok || m.Fields["accepted"] != infoA.Accepted || m.Fields["rejected_bad_duration"] != int64(1) {
		t.Errorf("gstats_internal %v, want accepted %d and one bad_duration", m, infoA.Accepted)
	}
	// New traffic adds to the restored counters.
	sendTraffic(t, b, 2)
	if st, err := cb.Stats(ctx); err != nil || st["api"].Started != 2*statsA["api"].Started {
		t.Errorf("STATS after more traffic: api started %d, want %d (%v)", st["api"].Started, 2*statsA["api"].Started, err)
	}
}

func TestIntegrationStateAfterDowntimeLongerThanTheWindow(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gstats.state")
	short := func(g *Gstats) { g.Window = config.Duration(time.Second); g.WindowSlots = 4 }
	a, _ := startPlugin(t, withState(path, &testutil.CaptureLogger{}, short))
	sendTraffic(t, a, 3)
	before := a.statsReply()
	if before["app"].ProcessingTime.Count == 0 {
		t.Fatalf("no duration in the window before the stop: %+v", before)
	}
	a.Stop()
	time.Sleep(1100 * time.Millisecond) // the window is 1s
	log := &testutil.CaptureLogger{}
	b, _ := startPlugin(t, withState(path, log, short))
	requireLog(t, log, testutil.LevelInfo, "state restored", "3 prefixes; 0 durations in 0 slots of the window")
	after := b.statsReply()
	for name, st := range before {
		got := after[name]
		if got.Started != st.Started || got.Finished != st.Finished || got.Status != st.Status {
			t.Errorf("%s: counters %+v after the downtime, want %+v", name, got, st)
		}
		if got.ProcessingTime.Count != 0 {
			t.Errorf("%s: %d durations in the window after a downtime longer than it", name, got.ProcessingTime.Count)
		}
	}
	if raw := b.win.Raw(b.now()); len(raw["app"]) != 0 {
		t.Errorf("RTIMES after the downtime: %v, want none", raw)
	}
}

// writeStateAt writes a state file at path holding, for prefix "p", one
// duration (ms = 1, 2, ...) in each of the slots at the given offsets from
// the slot of written (window 600s in 60 slots).
func writeStateAt(t *testing.T, path string, written time.Time, offsets []int) {
	t.Helper()
	cfg := window.Config{Window: 600 * time.Second, Slots: 60, MaxPrefixes: 1, MaxRaw: 100}
	w, err := window.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	width := cfg.Window / time.Duration(cfg.Slots)
	slotStart := written.Truncate(width)
	for i, off := range offsets {
		if err := w.Finish("p", float64(i+1), 200, slotStart.Add(time.Duration(off)*width)); err != nil {
			t.Fatal(err)
		}
	}
	var ps window.PrefixState
	w.Export("p", written, &ps)
	if len(ps.Slots) != len(offsets) {
		t.Fatalf("exported %d slots, want %d", len(ps.Slots), len(offsets))
	}
	f := &state.File{Meta: state.Meta{WrittenAt: written, Window: cfg.Window, Slots: cfg.Slots}, Prefixes: []window.PrefixState{ps}}
	if err := os.WriteFile(path, state.Encode(f), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestIntegrationStatePartlyExpired(t *testing.T) {
	// Written 300s ago (30 slots), with durations 85, 70, 50 and 31 slots
	// before now: the first two left the window while the collector was
	// stopped.
	path := filepath.Join(t.TempDir(), "gstats.state")
	writeStateAt(t, path, time.Now().Add(-300*time.Second), []int{-55, -40, -20, -1})
	log := &testutil.CaptureLogger{}
	g, _ := startPlugin(t, withState(path, log, nil))
	requireLog(t, log, testutil.LevelInfo, "state restored", "2 durations in 2 slots of the window, 2 slots expired while stopped", "2 raw durations",
		"2 raw durations left out")
	st := g.statsReply()["p"]
	if st.Finished != 4 || st.ProcessingTime.Count != 2 || st.ProcessingTime.Min != 3 || st.ProcessingTime.Max != 4 {
		t.Errorf("STATS %+v: want 4 finished, the 2 durations 3 and 4 in the window", st)
	}
}

func TestIntegrationStateFromTheFuture(t *testing.T) {
	// Written 100s ahead of now (the clock went back since): the slots
	// after now are left out, and the window's clock is not moved ahead,
	// so that new durations count at once.
	path := filepath.Join(t.TempDir(), "gstats.state")
	writeStateAt(t, path, time.Now().Add(100*time.Second), []int{-30, -15, -5, 0})
	log := &testutil.CaptureLogger{}
	g, _ := startPlugin(t, withState(path, log, nil))
	requireLog(t, log, testutil.LevelInfo, "state restored", "in the future: the clock went back", "2 slots after the present left out")
	if st := g.statsReply()["p"]; st.ProcessingTime.Count != 2 || st.ProcessingTime.Max != 2 {
		t.Errorf("STATS %+v: want the 2 durations before now", st)
	}
	push := pusher(t, g)
	send(t, push, "p", "500")
	waitFor(t, "the new finish", func() bool { return handled(g) == 1 })
	if st := g.statsReply()["p"]; st.ProcessingTime.Count != 3 || st.ProcessingTime.Max != 500 {
		t.Errorf("STATS %+v after a finish: want it counted in the window", st)
	}
	if raw := g.win.Raw(g.now())["p"]; !reflect.DeepEqual(raw, []float64{1, 2, 500}) {
		t.Errorf("RTIMES %v, want [1 2 500]", raw)
	}
}

func TestIntegrationStateUnusableFiles(t *testing.T) {
	valid := func() []byte {
		f := &state.File{Meta: state.Meta{WrittenAt: time.Now(), Window: 600 * time.Second, Slots: 60,
			Counters: []state.Counter{{Name: "accepted", Value: 7}}}}
		f.Prefixes = []window.PrefixState{{Name: "x", Since: time.Now().UnixNano(), Started: 1}}
		return state.Encode(f)
	}()
	inconsistent := func() []byte {
		f := &state.File{Meta: state.Meta{WrittenAt: time.Now(), Window: 600 * time.Second, Slots: 60}}
		f.Prefixes = []window.PrefixState{{Name: "x", Finished: 2, Status: [window.NumClass]int64{0, 0, 1}}}
		return state.Encode(f)
	}()
	cases := []struct {
		name    string
		content []byte // nil: a symbolic link to itself, which cannot be opened
		want    string
	}{
		{"empty", []byte{}, `not a gstats state file: it starts with ""`},
		{"foreign", []byte(`{"app": {"requests_started": 3}}`), "not a gstats state file"},
		{"truncated", valid[:len(valid)-3], "truncated state file: the header announces"},
		{"checksum", append(valid[:len(valid)-1:len(valid)-1], valid[len(valid)-1]^1), "state file checksum mismatch"},
		{"version", func() []byte {
			b := append([]byte(nil), valid...)
			b[len(state.Magic)+3] = 9
			return b
		}(), "unsupported state file version at byte 13: format version 9; this build reads version 1"},
		{"trailing", append(append([]byte(nil), valid...), 0), "1 bytes after the"},
		{"inconsistent", inconsistent, `corrupt state file at byte 47: inconsistent state: prefix "x": the status classes count 1 finishes, finished says 2`},
		{"unreadable", nil, "too many levels of symbolic links"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "gstats.state")
			if tc.content == nil {
				if err := os.Symlink("gstats.state", path); err != nil {
					t.Fatal(err)
				}
			} else if err := os.WriteFile(path, tc.content, 0o600); err != nil {
				t.Fatal(err)
			}
			log := &testutil.CaptureLogger{}
			g, _ := startPlugin(t, withState(path, log, nil))
			msg := requireLog(t, log, testutil.LevelWarn, "state file "+path+" is unusable: ", tc.want, "; moved it aside to "+path+".bad-", "; starting fresh")
			moved := msg[strings.Index(msg, "moved it aside to ")+len("moved it aside to ") : strings.Index(msg, "; starting fresh")]
			if _, err := time.Parse(state.BadSuffixLayout, strings.TrimPrefix(moved, path+".bad-")); err != nil {
				t.Errorf("moved to %s: %v", moved, err)
			}
			if tc.content == nil {
				if target, err := os.Readlink(moved); err != nil || target != "gstats.state" {
					t.Errorf("%s: link to %q, %v; want the moved link", moved, target, err)
				}
			} else if b, err := os.ReadFile(moved); err != nil || string(b) != string(tc.content) {
				t.Errorf("%s holds %d bytes (%v), want the %d of the unusable file", moved, len(b), err, len(tc.content))
			}
			if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s still exists: %v", path, err)
			}
			// A fresh start that works.
			if st := g.statsReply(); len(st) != 0 || g.stats.accepted.Load() != 0 {
				t.Errorf("STATS %v, accepted %d: want a fresh start", st, g.stats.accepted.Load())
			}
			push := pusher(t, g)
			send(t, push, "y", "5")
			waitFor(t, "a message", func() bool { return handled(g) == 1 })
			g.Stop()
			if f, err := state.Read(path); err != nil || len(f.Prefixes) != 1 || f.Prefixes[0].Name != "y" {
				t.Errorf("the state written at stop: %+v, %v; want prefix y", f, err)
			}
		})
	}
}

func TestIntegrationStateWindowChanged(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gstats.state")
	a, _ := startPlugin(t, withState(path, &testutil.CaptureLogger{}, nil))
	sendTraffic(t, a, 4)
	before := a.statsReply()
	rawBefore := a.win.Raw(a.now())["app"]
	a.Stop()

	// Other percentiles and fewer raw durations: the histograms apply.
	log := &testutil.CaptureLogger{}
	b, _ := startPlugin(t, withState(path, log, func(g *Gstats) {
		g.Percentiles = []float64{50, 99.9}
		g.MaxRawDurations = 3
	}))
	requireLog(t, log, testutil.LevelInfo, "state restored", "raw durations left out (expired, or over max_raw_durations = 3)")
	st := b.statsReply()
	if got, want := st["app"].ProcessingTime.Count, before["app"].ProcessingTime.Count; got != want || got == 0 {
		t.Errorf("count %d after changing percentiles, want %d", got, want)
	}
	if p := st["app"].ProcessingTime.Percentiles; len(p) != 2 || p[1].P != 99.9 || p[1].Value == 0 {
		t.Errorf("percentiles %+v, want p50 and p99.9", p)
	}
	if raw := b.win.Raw(b.now())["app"]; !reflect.DeepEqual(raw, rawBefore[len(rawBefore)-3:]) {
		t.Errorf("RTIMES %v, want the newest 3 of %v", raw, rawBefore)
	}
	b.Stop()
	saved, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	// Another window: the counters only.
	for _, edit := range []func(*Gstats){
		func(g *Gstats) { g.Window = config.Duration(300 * time.Second) },
		func(g *Gstats) { g.WindowSlots = 30 },
	} {
		if err := os.WriteFile(path, saved, 0o600); err != nil { // as b left it
			t.Fatal(err)
		}
		log := &testutil.CaptureLogger{}
		c, _ := startPlugin(t, withState(path, log, edit))
		requireLog(t, log, testutil.LevelWarn, "state file "+path+" was written with window 10m0s in 60 slots", "restoring the counters only",
			fmt.Sprintf("the %d durations of its window are left out", before["app"].ProcessingTime.Count+before["api"].ProcessingTime.Count+before["default"].ProcessingTime.Count))
		after := c.statsReply()
		for name, st := range before {
			got := after[name]
			if got.Started != st.Started || got.Finished != st.Finished || got.Status != st.Status || got.ProcessingTime.Count != 0 {
				t.Errorf("%s: %+v with another window, want the counters of %+v and an empty window", name, got, st)
			}
		}
		if c.stats.accepted.Load() == 0 {
			t.Error("the collector's counters were not restored")
		}
		c.Stop()
	}
}

func TestIntegrationStateMaxPrefixesLowered(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gstats.state")
	a, _ := startPlugin(t, withState(path, &testutil.CaptureLogger{}, nil))
	push := newPusher(t, a)
	n := int64(0)
	for i := 1; i <= 5; i++ {
		for range i {
			send(t, push, "p"+strconv.Itoa(i), "")
			n++
		}
	}
	_ = push.Close()
	waitFor(t, "15 messages", func() bool { return handled(a) == n })
	a.Stop()
	log := &testutil.CaptureLogger{}
	b, _ := startPlugin(t, withState(path, log, func(g *Gstats) { g.MaxPrefixes = 2 }))
	requireLog(t, log, testutil.LevelWarn, "holds 5 prefixes, more than max_prefixes = 2: kept the 2 busiest, left out \"p3\", \"p2\", \"p1\"; raise max_prefixes")
	if st := b.statsReply(); len(st) != 2 || st["p5"].Started != 5 || st["p4"].Started != 4 {
		t.Errorf("STATS %+v, want p5 and p4", st)
	}
}

func TestIntegrationStatePeriodicWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gstats.state")
	g, _ := startPlugin(t, withState(path, &testutil.CaptureLogger{}, func(g *Gstats) {
		g.StateInterval = config.Duration(100 * time.Millisecond)
	}))
	push := pusher(t, g)
	for round := 1; round <= 3; round++ {
		for range 10 {
			send(t, push, "app", "")
			send(t, push, "app", "12.5", "200")
		}
		want := int64(10 * round)
		// The collector adds events to the window first and to accepted
		// just after: a write in between holds the finishes and not yet
		// their count. A later periodic write holds both.
		waitFor(t, fmt.Sprintf("a state file with %d finishes and %d accepted messages", want, 2*want), func() bool {
			f, err := state.Read(path)
			if err != nil || len(f.Prefixes) != 1 {
				return false
			}
			return f.Prefixes[0].Finished == want && counterOf(f, "accepted") >= 2*want
		})
	}
	info := g.infoReply()
	saved, err := time.Parse(time.RFC3339, info.StateSavedAt)
	if err != nil || time.Since(saved) > time.Minute || info.StateFile != path || info.StateWriteErrors != 0 {
		t.Errorf("INFO state_file %q, state_saved_at %q (%v), state_write_errors %d", info.StateFile, info.StateSavedAt, err, info.StateWriteErrors)
	}
}

func counterOf(f *state.File, name string) int64 {
	for _, c := range f.Counters {
		if c.Name == name {
			return c.Value
		}
	}
	return -1
}

func TestIntegrationStateWriteErrors(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "gstats.state")
	log := &testutil.CaptureLogger{}
	g, acc := startPlugin(t, withState(path, log, func(g *Gstats) {
		g.StateInterval = config.Duration(100 * time.Millisecond)
	}))
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "3 failed writes", func() bool { return g.stats.stateErrors.Load() >= 3 })
	warnings := 0
	for _, m := range log.Messages() {
		if m.Level == testutil.LevelWarn && strings.Contains(m.Text, "writing the state file "+path+" failed: creating a temporary file") {
			warnings++
		}
	}
	if warnings != 1 {
		t.Errorf("%d warnings for %d failed writes, want 1 (throttled)", warnings, g.stats.stateErrors.Load())
	}
	// The collector carries on, and counts the failures.
	push := pusher(t, g)
	send(t, push, "app", "5")
	waitFor(t, "a message", func() bool { return handled(g) == 1 })
	info, err := control(t, g).Info(t.Context())
	if err != nil || info.StateWriteErrors < 3 {
		t.Errorf("INFO state_write_errors %d (%v), want at least 3", info.StateWriteErrors, err)
	}
	if err := g.Gather(acc); err != nil {
		t.Fatal(err)
	}
	if m, ok := acc.Get("gstats_internal"); !ok || m.Fields["state_write_errors"].(int64) < 3 {
		t.Errorf("gstats_internal %v, want state_write_errors ≥ 3", m)
	}
	// The next write after the directory is back succeeds.
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a write once the directory is back", func() bool {
		f, err := state.Read(path)
		return err == nil && len(f.Prefixes) == 1 && counterOf(f, "state_write_errors") >= 3
	})
	// A failed write at Stop is logged as an error, and Stop returns.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	g.Stop()
	requireLog(t, log, testutil.LevelError, "the state at stop was not written to "+path)
}

func TestInitState(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		edit func(*Gstats)
		want string
	}{
		{"interval too short", func(g *Gstats) {
			g.StateFile = filepath.Join(dir, "s")
			g.StateInterval = config.Duration(50 * time.Millisecond)
		}, "state_interval must be at least 100ms, got 50ms"},
		{"no directory", func(g *Gstats) { g.StateFile = filepath.Join(dir, "missing", "s") }, "missing does not exist; create it"},
		{"a directory", func(g *Gstats) { g.StateFile = dir }, "is a directory; name a file in it"},
		{"under a file", func(g *Gstats) { g.StateFile = filepath.Join(file, "s") }, "is not a directory"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := New()
			g.Log = testutil.Logger{Quiet: true}
			tc.edit(g)
			err := g.Init()
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "state_") {
				t.Fatalf("Init() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	g := initPlugin(t, "tcp://127.0.0.1:*", "", func(g *Gstats) { g.StateFile = filepath.Join(dir, "s") })
	if time.Duration(g.StateInterval) != defaultStateInterval {
		t.Errorf("state_interval %s when unset, want %s", time.Duration(g.StateInterval), defaultStateInterval)
	}
	// Off: nothing checked.
	initPlugin(t, "tcp://127.0.0.1:*", "", func(g *Gstats) { g.StateInterval = config.Duration(time.Millisecond) })
}

// TestPersistedCoversEveryCounter checks that the state file keeps every
// counter of the collector, so that a new one cannot be forgotten.
func TestPersistedCoversEveryCounter(t *testing.T) {
	var c counters
	c.init()
	list := c.persisted()
	kept := map[*atomic.Int64]string{}
	names := map[string]bool{}
	for _, nc := range list {
		if names[nc.name] {
			t.Errorf("counter name %q twice", nc.name)
		}
		names[nc.name] = true
		kept[nc.v] = nc.name
	}
	v := reflect.ValueOf(&c).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		// An unexported field, read through a pointer to it.
		switch p := reflect.NewAt(f.Type(), f.Addr().UnsafePointer()).Interface().(type) {
		case *atomic.Int64:
			if _, ok := kept[p]; !ok {
				t.Errorf("counter %s is not kept in the state file", v.Type().Field(i).Name)
			}
		case *map[wire.Reason]*atomic.Int64:
			for r, ptr := range *p {
				if _, ok := kept[ptr]; !ok {
					t.Errorf("rejected counter %s is not kept", r)
				}
			}
		case *map[wire.Command]*atomic.Int64:
			for cmd, ptr := range *p {
				if _, ok := kept[ptr]; !ok {
					t.Errorf("command counter %s is not kept", cmd)
				}
			}
		default:
			t.Errorf("counters field %s of type %s: teach persisted() and this test about it", v.Type().Field(i).Name, f.Type())
		}
	}
}

// busyStatePlugin returns an initialised plugin (not started) with a state
// file in a temporary directory and a full default window: 1000 prefixes,
// each with 100 durations in each of the 60 slots, log-normal (median 50 ms,
// sigma 1) with three decimals as clients send them, and 1000 raw ones.
func busyStatePlugin(b *testing.B) *Gstats {
	b.Helper()
	path := filepath.Join(b.TempDir(), "gstats.state")
	g := initPlugin(b, "tcp://127.0.0.1:*", "", func(g *Gstats) { g.StateFile = path })
	win, err := window.New(g.windowConfig())
	if err != nil {
		b.Fatal(err)
	}
	g.win, g.epoch = win, time.Now()
	g.stats.init()
	now := g.now()
	width := win.SlotWidth()
	rng := rand.New(rand.NewPCG(1, 2))
	names := make([]string, 1000)
	for i := range names {
		names[i] = fmt.Sprintf("app-%04d", i)
	}
	for s := range g.WindowSlots { // oldest slot first: the window's clock never goes back
		at := now.Add(-time.Duration(g.WindowSlots-1-s) * width)
		for _, name := range names {
			for range 100 {
				ms := math.Round(math.Exp(rng.NormFloat64()+math.Log(50))*1000) / 1000
				if err := win.Start(name, at); err != nil {
					b.Fatal(err)
				}
				if err := win.Finish(name, ms, []int{200, 200, 200, 404, 500}[rng.IntN(5)], at); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	g.stats.accepted.Store(int64(len(names) * g.WindowSlots * 200))
	return g
}

// BenchmarkStateWrite measures one write of the state file of a busy
// collector (see busyStatePlugin): ms/write (elapsed) and cpu-ms/write
// (CPU time, garbage collection included), the file's size (bytes/file)
// and the time the window lock is held for one prefix, on average
// (µs/lock) and at most (µs/max-lock, which includes the machine's
// scheduling hiccups): the longest an ingest batch waits on a write.
func BenchmarkStateWrite(b *testing.B) {
	g := busyStatePlugin(b)
	var size int64
	start, cpu := time.Now(), cpuTime(b)
	for b.Loop() {
		n, sz, err := g.writeState()
		if err != nil || n != 1000 {
			b.Fatalf("wrote %d prefixes: %v", n, err)
		}
		size = sz
	}
	b.ReportMetric(float64(time.Since(start).Microseconds())/1000/float64(b.N), "ms/write")
	b.ReportMetric(float64((cpuTime(b)-cpu).Microseconds())/1000/float64(b.N), "cpu-ms/write")
	b.ReportMetric(float64(size), "bytes/file")
	var longest, total time.Duration
	var ps window.PrefixState
	names := g.win.Prefixes()
	for _, name := range names {
		now := g.now()
		t0 := time.Now()
		g.mu.Lock()
		g.win.Export(name, now, &ps)
		g.mu.Unlock()
		took := time.Since(t0)
		longest, total = max(longest, took), total+took
	}
	b.ReportMetric(float64(total.Nanoseconds())/1000/float64(len(names)), "µs/lock")
	b.ReportMetric(float64(longest.Nanoseconds())/1000, "µs/max-lock")
}

// BenchmarkStateRestore measures reading, validating and importing the
// state file of a busy collector (see busyStatePlugin) into a new window:
// ms/restore (elapsed) and cpu-ms/restore (CPU time).
func BenchmarkStateRestore(b *testing.B) {
	g := busyStatePlugin(b)
	if _, _, err := g.writeState(); err != nil {
		b.Fatal(err)
	}
	start, cpu := time.Now(), cpuTime(b)
	for b.Loop() {
		win, err := window.New(g.windowConfig())
		if err != nil {
			b.Fatal(err)
		}
		g.win = win
		g.stats.init()
		g.restoreState()
		if g.win.Len() != 1000 {
			b.Fatalf("restored %d prefixes, want 1000", g.win.Len())
		}
	}
	b.ReportMetric(float64(time.Since(start).Microseconds())/1000/float64(b.N), "ms/restore")
	b.ReportMetric(float64((cpuTime(b)-cpu).Microseconds())/1000/float64(b.N), "cpu-ms/restore")
}

// cpuTime is the CPU time (user and system) the process has used: unlike
// the elapsed time, it hardly depends on what else the machine runs. It
// includes the garbage collector's work, done in parallel.
func cpuTime(b *testing.B) time.Duration {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
