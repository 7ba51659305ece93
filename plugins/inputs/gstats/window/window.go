// Package window keeps the per-prefix request statistics of gstats over a
// sliding wall-time window.
//
// The window is divided into a fixed number of time slots. Each slot holds
// the exact moments (count, mean, sum of squared deviations, min, max) of the
// durations that finished in it, and a DDSketch of them for percentiles. A
// slot expires as a whole once it falls out of the window, so a duration
// stays in the window for at least Window−Window/Slots and at most Window
// (slot widths are whole nanoseconds: Window/Slots rounded down).
// Answering a query merges the live slots: its cost depends on the number of
// slots and on the number of sketch bins, never on the number of durations,
// and the memory of a prefix does not grow with the request rate.
//
// The package has no sockets, goroutines, locks or logging, and it never
// reads the clock: callers pass now into every method. A Window is not safe
// for concurrent use.
package window

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/DataDog/sketches-go/ddsketch/mapping"
	"github.com/DataDog/sketches-go/ddsketch/store"
)

// RelativeAccuracy is the bound on the relative error of every reported
// percentile: the reported value v of an exact value x satisfies
// |v−x| ≤ RelativeAccuracy·x.
const RelativeAccuracy = 0.01

// maxSketchBins bounds each sketch's memory. At 1 % accuracy 2048 bins span
// a ratio of about 6·10^17 between the smallest and the largest duration, so
// real traffic never reaches it; hostile traffic makes the lowest bins
// collapse (low percentiles lose accuracy) instead of growing memory.
const maxSketchBins = 2048

// ErrTooManyPrefixes is returned when a message names a new prefix while the
// window already tracks Config.MaxPrefixes of them.
var ErrTooManyPrefixes = errors.New("too many prefixes")

// Status classes counted per prefix. A finish message may carry an HTTP
// status code; its class is code/100 (1 to 5). ClassNone counts finishes
// that carried no status code.
const (
	ClassNone = 0
	NumClass  = 6
)

// Config describes a Window. Zero values are not defaults: Validate rejects
// them, and the plugin fills in its documented defaults before calling New.
type Config struct {
	// Window is the length of the sliding window.
	Window time.Duration
	// Slots is the number of slots the window is divided into.
	Slots int
	// Percentiles to report, each in (0, 100].
	Percentiles []float64
	// MaxPrefixes is the number of prefixes tracked at most.
	MaxPrefixes int
	// MaxRaw is the number of raw durations kept per prefix for Raw (the
	// newest are kept). Zero keeps none.
	MaxRaw int
}

// Validate reports the first problem with c, naming the field.
func (c Config) Validate() error {
	switch {
	case c.Window <= 0:
		return fmt.Errorf("window must be positive, got %s", c.Window)
	case c.Slots < 1:
		return fmt.Errorf("window_slots must be at least 1, got %d", c.Slots)
	case c.Window/time.Duration(c.Slots) < time.Millisecond:
		return fmt.Errorf("window %s divided into %d slots gives slots shorter than 1ms; use fewer window_slots", c.Window, c.Slots)
	case c.MaxPrefixes < 1:
		return fmt.Errorf("max_prefixes must be at least 1, got %d", c.MaxPrefixes)
	case c.MaxRaw < 0:
		return fmt.Errorf("max_raw_durations must not be negative, got %d", c.MaxRaw)
	}
	for _, p := range c.Percentiles {
		if !(p > 0 && p <= 100) {
			return fmt.Errorf("percentiles must be in (0, 100], got %v", p)
		}
	}
	return nil
}

// Stats is the state of one prefix at a given instant.
type Stats struct {
	// Started and Finished count the start and finish messages since the
	// prefix was first seen or the window was last reset.
	Started, Finished int64
	// Status counts finishes by status class (index ClassNone, then 1–5).
	Status [NumClass]int64
	// Count is the number of durations in the window.
	Count int64
	// Rate is Count per second of the time the window covers.
	Rate float64
	// Mean, Std (population), Min and Max of the durations in the window, in
	// milliseconds; all zero when Count is zero.
	Mean, Std, Min, Max float64
	// Percentiles holds one value per configured percentile, in the
	// configured order; zero when Count is zero. Percentile q is the
	// duration at 0-based index floor(q/100·(Count−1)) of the sorted
	// durations: exactly Min or Max at the first and last index, within
	// RelativeAccuracy elsewhere.
	Percentiles []float64
}

// InFlight is the number of requests started and not yet finished; never
// negative (clients may send finishes without starts).
func (s Stats) InFlight() int64 {
	return max(0, s.Started-s.Finished)
}

// Window is the set of tracked prefixes and their slots.
type Window struct {
	cfg     Config
	width   int64 // slot width in nanoseconds
	mapping mapping.IndexMapping
	latest  int64 // newest instant seen, in Unix nanoseconds
	prefix  map[string]*prefixState
	scratch *ddsketch.DDSketch // merge target for queries
	quant   []float64          // configured percentiles as quantiles in [0, 1]
}

type prefixState struct {
	since    int64 // creation or reset instant, Unix nanoseconds
	started  int64
	finished int64
	status   [NumClass]int64
	slots    []slot
	raw      []rawEntry // ring buffer, len ≤ cfg.MaxRaw
	rawNext  int        // next write position once the ring is full
}

type slot struct {
	index int64 // absolute slot number: instant / width
	moments
	sketch *ddsketch.DDSketch // nil until the slot first holds a duration
}

type rawEntry struct {
	slot int64
	ms   float64
}

// moments are exact running statistics (Welford), mergeable with Chan's
// parallel formula.
type moments struct {
	n        int64
	mean, m2 float64
	min, max float64
}

func (m *moments) add(x float64) {
	if m.n == 0 {
		m.min, m.max = x, x
	} else {
		m.min = min(m.min, x)
		m.max = max(m.max, x)
	}
	m.n++
	d := x - m.mean
	m.mean += d / float64(m.n)
	m.m2 += d * (x - m.mean)
}

func (m *moments) merge(o moments) {
	if o.n == 0 {
		return
	}
	if m.n == 0 {
		*m = o
		return
	}
	n := m.n + o.n
	d := o.mean - m.mean
	m.mean += d * float64(o.n) / float64(n)
	m.m2 += o.m2 + d*d*float64(m.n)*float64(o.n)/float64(n)
	m.min = min(m.min, o.min)
	m.max = max(m.max, o.max)
	m.n = n
}

// New returns an empty window.
func New(cfg Config) (*Window, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m, err := mapping.NewLogarithmicMapping(RelativeAccuracy)
	if err != nil {
		return nil, fmt.Errorf("creating sketch mapping: %w", err)
	}
	w := &Window{
		cfg:     cfg,
		width:   int64(cfg.Window) / int64(cfg.Slots),
		mapping: m,
		prefix:  make(map[string]*prefixState),
	}
	w.cfg.Percentiles = append([]float64(nil), cfg.Percentiles...)
	for _, p := range cfg.Percentiles {
		w.quant = append(w.quant, p/100)
	}
	w.scratch = w.newSketch()
	return w, nil
}

func (w *Window) newSketch() *ddsketch.DDSketch {
	return ddsketch.NewDDSketch(w.mapping,
		store.NewCollapsingLowestDenseStore(maxSketchBins),
		store.NewCollapsingLowestDenseStore(maxSketchBins))
}

// Config returns the configuration the window was created with.
func (w *Window) Config() Config { return w.cfg }

// SlotWidth is the length of one slot.
func (w *Window) SlotWidth() time.Duration { return time.Duration(w.width) }

// Len is the number of tracked prefixes.
func (w *Window) Len() int { return len(w.prefix) }

// clock turns now into Unix nanoseconds, never earlier than any instant seen
// before, so a wall clock stepping back cannot revive expired slots.
func (w *Window) clock(now time.Time) int64 {
	t := now.UnixNano()
	if t < w.latest {
		return w.latest
	}
	w.latest = t
	return t
}

func (w *Window) get(prefix string, t int64) (*prefixState, error) {
	if p, ok := w.prefix[prefix]; ok {
		return p, nil
	}
	if len(w.prefix) >= w.cfg.MaxPrefixes {
		return nil, ErrTooManyPrefixes
	}
	p := &prefixState{since: t}
	w.prefix[prefix] = p
	return p, nil
}

// Start records that a request of prefix started.
func (w *Window) Start(prefix string, now time.Time) error {
	p, err := w.get(prefix, w.clock(now))
	if err != nil {
		return err
	}
	p.started++
	return nil
}

// Finish records that a request of prefix finished after ms milliseconds,
// with an HTTP status code (0 when the message carried none). The caller
// validates ms: it must be finite and not negative.
func (w *Window) Finish(prefix string, ms float64, status int, now time.Time) error {
	t := w.clock(now)
	p, err := w.get(prefix, t)
	if err != nil {
		return err
	}
	p.finished++
	p.status[statusClass(status)]++

	idx := t / w.width
	if p.slots == nil {
		p.slots = make([]slot, w.cfg.Slots)
	}
	s := &p.slots[idx%int64(len(p.slots))]
	if s.index != idx {
		s.index = idx
		s.moments = moments{}
		if s.sketch != nil {
			s.sketch.Clear()
		}
	}
	s.add(ms)
	if s.sketch == nil {
		s.sketch = w.newSketch()
	}
	// The caller has checked ms; the sketch only refuses NaN and values
	// beyond ~1e308.
	_ = s.sketch.Add(ms)

	if w.cfg.MaxRaw > 0 {
		e := rawEntry{slot: idx, ms: ms}
		if len(p.raw) < w.cfg.MaxRaw {
			p.raw = append(p.raw, e)
		} else {
			p.raw[p.rawNext] = e
			p.rawNext = (p.rawNext + 1) % len(p.raw)
		}
	}
	return nil
}

func statusClass(code int) int {
	if code >= 100 && code <= 599 {
		return code / 100
	}
	return ClassNone
}

// live reports whether slot index idx is inside the window ending at slot cur.
func (w *Window) live(idx, cur int64) bool {
	return idx <= cur && idx > cur-int64(w.cfg.Slots)
}

// Stats returns the statistics of every prefix at instant now.
func (w *Window) Stats(now time.Time) map[string]Stats {
	t := w.clock(now)
	out := make(map[string]Stats, len(w.prefix))
	for name, p := range w.prefix {
		out[name] = w.stats(p, t)
	}
	return out
}

// PrefixStats returns the statistics of one prefix at instant now, and
// whether the prefix is tracked.
func (w *Window) PrefixStats(prefix string, now time.Time) (Stats, bool) {
	t := w.clock(now)
	p, ok := w.prefix[prefix]
	if !ok {
		return Stats{}, false
	}
	return w.stats(p, t), true
}

func (w *Window) stats(p *prefixState, t int64) Stats {
	cur := t / w.width
	st := Stats{
		Started:     p.started,
		Finished:    p.finished,
		Status:      p.status,
		Percentiles: make([]float64, len(w.quant)),
	}
	var all moments
	w.scratch.Clear()
	for i := range p.slots {
		s := &p.slots[i]
		if s.n == 0 || !w.live(s.index, cur) {
			continue
		}
		all.merge(s.moments)
		if len(w.quant) > 0 {
			// Both sketches share one mapping, so merging cannot fail.
			_ = w.scratch.MergeWith(s.sketch)
		}
	}
	if all.n == 0 {
		return st
	}
	st.Count = all.n
	st.Mean = all.mean
	st.Std = math.Sqrt(max(0, all.m2/float64(all.n)))
	st.Min, st.Max = all.min, all.max
	last := float64(all.n - 1)
	for i, q := range w.quant {
		// The rank is computed as the sketch computes it, so that both
		// pick the same sorted index floor(q·(n−1)).
		switch rank := float64(q * last); {
		case rank >= last:
			// The largest duration is known exactly; the sketch would
			// give its bin's value, up to 1 % below it.
			st.Percentiles[i] = all.max
		case rank < 1:
			st.Percentiles[i] = all.min
		default:
			v, err := w.scratch.GetValueAtQuantile(q)
			if err == nil {
				// The sketch's bin value may stray past the exact
				// extremes by up to the relative accuracy; the exact ones
				// are known.
				st.Percentiles[i] = min(max(v, all.min), all.max)
			}
		}
	}
	windowStart := (cur - int64(w.cfg.Slots) + 1) * w.width
	covered := time.Duration(t - max(windowStart, p.since))
	st.Rate = float64(all.n) / max(covered, time.Second).Seconds()
	return st
}

// Raw returns, for every prefix, the durations still in the window at now,
// oldest first; at most Config.MaxRaw per prefix (the newest).
func (w *Window) Raw(now time.Time) map[string][]float64 {
	cur := w.clock(now) / w.width
	out := make(map[string][]float64, len(w.prefix))
	for name, p := range w.prefix {
		list := make([]float64, 0, len(p.raw))
		for i := range p.raw {
			e := p.raw[(p.rawNext+i)%len(p.raw)]
			if w.live(e.slot, cur) {
				list = append(list, e.ms)
			}
		}
		out[name] = list
	}
	return out
}

// Reset forgets every prefix, its counters and its window.
func (w *Window) Reset(now time.Time) {
	w.clock(now)
	clear(w.prefix)
}

// Prefixes returns the tracked prefixes, sorted.
func (w *Window) Prefixes() []string {
	names := make([]string, 0, len(w.prefix))
	for name := range w.prefix {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}
