package gstats

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/influxdata/telegraf/config"

	"github.com/gstats/gstats/plugins/inputs/gstats/state"
	"github.com/gstats/gstats/plugins/inputs/gstats/window"
	"github.com/gstats/gstats/wire"
)

// State file settings.
const (
	// defaultStateInterval is state_interval when it is not set.
	defaultStateInterval = 10 * time.Second
	// minStateInterval bounds how often the state file may be written.
	minStateInterval = 100 * time.Millisecond
	// stateStopWait bounds how long Stop waits for a periodic write in
	// progress, and then for the last write to start.
	stateStopWait = 5 * time.Second
	// stateLogInterval throttles the log lines of failed writes.
	stateLogInterval = time.Minute
	// droppedNamesLogged is how many of the prefixes left out at restore
	// the log line names.
	droppedNamesLogged = 10
)

// persistState is the state file's part of the plugin: the periodic
// writer, and what its writes reuse from one to the next.
type persistState struct {
	interval time.Duration
	stop     chan struct{} // closed by stopStateWriter; nil while no writer runs
	done     chan struct{} // closed by the writer goroutine when it returns
	savedAt  atomic.Int64  // Unix ns of the last successful write; 0 before

	// sem holds one token per write in progress (at most one): the
	// periodic writer and the last write at Stop take turns. What follows
	// is used by the holder only.
	sem   chan struct{}
	logs  *throttle
	enc   state.Encoder
	buf   window.PrefixState
	names []string
}

// namedCounter is one of the collector's counters as a state file keeps it.
type namedCounter struct {
	name string
	v    *atomic.Int64
}

// persisted lists the collector's counters a state file keeps, under the
// names of their gstats_internal fields ("command_" and the command for
// the commands).
func (c *counters) persisted() []namedCounter {
	list := []namedCounter{
		{"accepted", &c.accepted},
		{"disconnects", &c.disconnects},
		{"control_requests", &c.controlRequests},
		{"control_errors", &c.controlErrors},
		{"commands_refused", &c.commandsRefused},
		{"client_dropped", &c.clientDropped},
		{"auth_failures", &c.authFailures},
		{"state_write_errors", &c.stateErrors},
	}
	for _, r := range wire.AllReasons() {
		list = append(list, namedCounter{"rejected_" + string(r), c.rejected[r]})
	}
	for _, cmd := range wire.AllCommands() {
		list = append(list, namedCounter{"command_" + string(cmd), c.commands[cmd]})
	}
	return list
}

// initState validates state_file and state_interval (called by Init): the
// state file's directory must exist and take new files.
func (g *Gstats) initState() error {
	if g.StateFile == "" {
		return nil
	}
	if g.StateInterval == 0 {
		g.StateInterval = config.Duration(defaultStateInterval)
	}
	if d := time.Duration(g.StateInterval); d < minStateInterval {
		return fmt.Errorf("state_interval must be at least %s, got %s", minStateInterval, d)
	}
	if err := state.CheckWritable(g.StateFile); err != nil {
		return fmt.Errorf("state_file %q cannot be written: %w", g.StateFile, err)
	}
	g.persist.interval = time.Duration(g.StateInterval)
	g.persist.sem = make(chan struct{}, 1)
	g.persist.logs = newThrottle(stateLogInterval)
	return nil
}

// restoreState loads the state file into g.win and g.stats (called by
// Start once both exist, before any socket is bound). It never fails: a
// missing file is a first start; an unusable one is moved aside, and the
// collector starts fresh.
//
// The file is decoded twice, one prefix at a time, rather than held
// decoded whole: once to validate all of it (a file is used whole or not
// at all) and see which prefixes to keep, once to import them.
func (g *Gstats) restoreState() {
	if g.StateFile == "" {
		return
	}
	path := g.StateFile
	t0 := time.Now()
	data, err := state.ReadBytes(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		g.Log.Infof("no state file at %s; starting fresh", path)
		return
	case err != nil:
		g.setStateAside(err)
		return
	}
	type activity struct {
		name string
		n    int64 // requests started and finished
	}
	var prefixes []activity
	var durations int64
	meta, err := state.Scan(data, func(p *window.PrefixState) error {
		prefixes = append(prefixes, activity{p.Name, min(p.Started, math.MaxInt64-p.Finished) + p.Finished})
		for _, s := range p.Slots {
			durations += s.Count
		}
		return nil
	})
	if err != nil {
		g.setStateAside(err)
		return
	}

	now := g.now()
	cfg := g.windowConfig()
	// Slot indexes are instants divided by the slot width: with another
	// width or count they would land in the wrong slots.
	countersOnly := meta.Window != cfg.Window || meta.Slots != cfg.Slots
	if countersOnly {
		g.Log.Warnf("state file %s was written with window %s in %d slots, the window is now %s in %d slots: restoring the counters only, the %d durations of its window are left out",
			path, meta.Window, meta.Slots, cfg.Window, cfg.Slots, durations)
	}
	var keep map[string]bool // nil: every prefix
	if len(prefixes) > cfg.MaxPrefixes {
		sort.SliceStable(prefixes, func(i, j int) bool {
			if prefixes[i].n != prefixes[j].n {
				return prefixes[i].n > prefixes[j].n
			}
			return prefixes[i].name < prefixes[j].name
		})
		keep = make(map[string]bool, cfg.MaxPrefixes)
		for _, p := range prefixes[:cfg.MaxPrefixes] {
			keep[p.name] = true
		}
		dropped := prefixes[cfg.MaxPrefixes:]
		names := make([]string, 0, droppedNamesLogged)
		for _, p := range dropped[:min(len(dropped), droppedNamesLogged)] {
			names = append(names, wire.Quote([]byte(p.name), 64))
		}
		more := ""
		if len(dropped) > len(names) {
			more = fmt.Sprintf(" and %d more", len(dropped)-len(names))
		}
		g.Log.Warnf("state file %s holds %d prefixes, more than max_prefixes = %d: kept the %d busiest, left out %s%s; raise max_prefixes to keep them",
			path, len(prefixes), cfg.MaxPrefixes, cfg.MaxPrefixes, strings.Join(names, ", "), more)
	}

	var rep window.ImportReport
	one := make([]window.PrefixState, 1)
	_, err = state.Scan(data, func(p *window.PrefixState) error {
		if keep != nil && !keep[p.Name] {
			return nil
		}
		if countersOnly {
			p.Slots, p.Raw = p.Slots[:0], p.Raw[:0]
		}
		one[0] = *p
		g.mu.Lock()
		r, err := g.win.Import(one, now)
		g.mu.Unlock()
		rep.Prefixes += r.Prefixes
		rep.Slots += r.Slots
		rep.Durations += r.Durations
		rep.ExpiredSlots += r.ExpiredSlots
		rep.FutureSlots += r.FutureSlots
		rep.Raw += r.Raw
		rep.RawDropped += r.RawDropped
		return err
	})
	if err != nil {
		// The first pass found the file sound: this is not expected.
		g.mu.Lock()
		g.win.Reset(now)
		g.mu.Unlock()
		g.setStateAside(fmt.Errorf("%w: %v", state.ErrCorrupt, err))
		return
	}

	known := make(map[string]*atomic.Int64)
	for _, c := range g.stats.persisted() {
		known[c.name] = c.v
	}
	var notes, unknown []string
	for _, c := range meta.Counters {
		if v, ok := known[c.Name]; ok {
			v.Store(c.Value)
		} else {
			unknown = append(unknown, c.Name)
		}
	}
	if len(unknown) > 0 {
		notes = append(notes, fmt.Sprintf("counters of another version left out: %s", strings.Join(unknown, ", ")))
	}
	if rep.FutureSlots > 0 {
		notes = append(notes, fmt.Sprintf("%d slots after the present left out (the clock went back)", rep.FutureSlots))
	}
	if rep.RawDropped > 0 {
		notes = append(notes, fmt.Sprintf("%d raw durations left out (expired, or over max_raw_durations = %d)", rep.RawDropped, g.MaxRawDurations))
	}
	age := now.Sub(meta.WrittenAt).Round(time.Millisecond)
	when := fmt.Sprintf("%s ago", age)
	if age < 0 {
		when = fmt.Sprintf("%s in the future: the clock went back", -age)
	}
	extra := ""
	if len(notes) > 0 {
		extra = "; " + strings.Join(notes, "; ")
	}
	g.Log.Infof("state restored from %s in %s: written at %s (%s); %d prefixes; %d durations in %d slots of the window, %d slots expired while stopped; %d raw durations; %d messages accepted and %d rejected before%s",
		path, time.Since(t0).Round(time.Microsecond), meta.WrittenAt.UTC().Format(time.RFC3339), when, rep.Prefixes,
		rep.Durations, rep.Slots, rep.ExpiredSlots, rep.Raw, g.stats.accepted.Load(), g.stats.rejectedTotal(), extra)
}

// setStateAside moves an unusable state file aside, so that it is kept for
// a look and the next write does not replace it, and logs why.
func (g *Gstats) setStateAside(problem error) {
	path := g.StateFile
	moved, err := state.MoveAside(path, time.Now())
	if err != nil {
		g.Log.Warnf("state file %s is unusable: %v; starting fresh; it could not be moved aside (%v), so the next write replaces it", path, problem, err)
		return
	}
	g.Log.Warnf("state file %s is unusable: %v; moved it aside to %s; starting fresh", path, problem, moved)
}

// startStateWriter starts writing the state file periodically (called at
// the end of a successful Start).
func (g *Gstats) startStateWriter() {
	if g.StateFile == "" {
		return
	}
	p := &g.persist
	p.stop = make(chan struct{})
	p.done = make(chan struct{})
	go func(stop, done chan struct{}) {
		defer close(done)
		tick := time.NewTicker(p.interval)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				g.saveState(time.Time{})
			}
		}
	}(p.stop, p.done)
}

// stopStateWriter stops the periodic writer and writes the state file one
// last time (called by Stop once the socket loops have ended). It waits at
// most stateStopWait for a periodic write in progress.
func (g *Gstats) stopStateWriter() {
	p := &g.persist
	if p.stop == nil {
		return
	}
	close(p.stop)
	p.stop = nil
	deadline := time.Now().Add(stateStopWait)
	select {
	case <-p.done:
	case <-time.After(stateStopWait):
		g.Log.Warnf("a periodic write of the state file %s has been running for more than %s", g.StateFile, stateStopWait)
	}
	g.saveState(deadline)
}

// saveState writes the state file once, counting and logging a failure. A
// zero deadline marks a periodic write; otherwise it is the last write,
// which waits until deadline at most for a write in progress.
func (g *Gstats) saveState(deadline time.Time) {
	p := &g.persist
	last := !deadline.IsZero()
	if last {
		select {
		case p.sem <- struct{}{}:
		case <-time.After(time.Until(deadline)):
			g.stats.stateErrors.Add(1)
			g.Log.Errorf("the state at stop was not written to %s: a previous write did not end within %s; the next start restores the last complete write",
				g.StateFile, stateStopWait)
			return
		}
	} else {
		p.sem <- struct{}{}
	}
	defer func() { <-p.sem }()
	t0 := time.Now()
	prefixes, size, err := g.writeState()
	took := time.Since(t0).Round(time.Microsecond)
	if err != nil {
		g.stats.stateErrors.Add(1)
		if last {
			g.Log.Errorf("the state at stop was not written to %s: %v; the next start restores the last complete write", g.StateFile, err)
			return
		}
		p.logs.warn(g.Log, "write", time.Now(), fmt.Sprintf("writing the state file %s failed: %v; retrying every %s (state_interval); failures are counted in state_write_errors",
			g.StateFile, err, p.interval))
		return
	}
	p.savedAt.Store(time.Now().UnixNano())
	if last {
		g.Log.Infof("state written to %s in %s: %d prefixes, %d bytes", g.StateFile, took, prefixes, size)
	} else {
		g.Log.Debugf("state written to %s in %s: %d prefixes, %d bytes", g.StateFile, took, prefixes, size)
	}
}

// writeState writes the state file: every prefix, each taken from the
// window under the lock on its own (as snapshot does) and encoded outside
// it, then the collector's counters. It returns the number of prefixes and
// the file's size. The caller holds p.sem.
func (g *Gstats) writeState() (prefixes int, size int64, err error) {
	p := &g.persist
	g.mu.Lock()
	p.names = g.win.AppendPrefixes(p.names[:0])
	g.mu.Unlock()
	sort.Strings(p.names)
	p.enc.Reset()
	for _, name := range p.names {
		now := g.now()
		g.mu.Lock()
		ok := g.win.Export(name, now, &p.buf)
		g.mu.Unlock()
		if ok { // not forgotten by a RESET meanwhile
			p.enc.Add(&p.buf)
		}
	}
	clear(p.names) // the names are the window's; let them go with it
	meta := state.Meta{
		WrittenAt: g.now(),
		Window:    time.Duration(g.Window),
		Slots:     g.WindowSlots,
	}
	for _, c := range g.stats.persisted() {
		meta.Counters = append(meta.Counters, state.Counter{Name: c.name, Value: c.v.Load()})
	}
	err = state.WriteFile(g.StateFile, func(w io.Writer) error {
		n, err := p.enc.WriteTo(w, &meta)
		size = n
		return err
	})
	return p.enc.Prefixes(), size, err
}

// savedAtText is the instant of the last successful write for INFO, or ""
// before the first.
func (p *persistState) savedAtText() string {
	ns := p.savedAt.Load()
	if ns == 0 {
		return ""
	}
	return time.Unix(0, ns).UTC().Format("2006-01-02T15:04:05.000Z07:00")
}
