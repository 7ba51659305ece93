// Package window keeps the per-prefix request statistics of gstats over a
// sliding wall-time window.
//
// The window is divided into a fixed number of time slots. Each slot holds
// the exact moments (count, mean, sum of squared deviations, min, max) of the
// durations that finished in it, and a histogram of them in logarithmic bins
// for percentiles. A slot expires as a whole once it falls out of the
// window, so a duration stays in the window for at least Window−Window/Slots
// and at most Window (slot widths are whole nanoseconds: Window/Slots rounded
// down).
//
// # Percentiles
//
// The bins are those of a DDSketch at RelativeAccuracy (its logarithmic
// mapping): a bin holds the durations in [γ^k, γ^(k+1)) ms for an integer
// k, γ = 1.01/0.99, and reports them all as one value within 1 % of each.
// The 2048 bins cover every duration from MinBinned (1 µs) to about
// 6·10^14 ms (19 000 years), so a percentile is within 1 % of the exact one
// whenever that lies in this range. A duration under 1 µs counts as 0 for
// the percentiles (an absolute error under 1 µs; clients send milliseconds
// with three decimals, so 0.000 is the shortest they report), and one
// beyond the last bin counts in the last bin. Percentiles are then clamped
// to the exact Min and Max. The moments, Min and Max are exact for every
// duration.
//
// # Cost of a query
//
// Besides its slots, every prefix keeps the sum of the histograms of the
// slots in the window, updated on every finish and, when slots leave the
// window, by subtracting theirs (counts are integers, so the sum stays
// exact). A query merges the moments of the slots and walks that one
// histogram: its cost depends on the number of slots and of bins, never on
// the number of durations, and does not grow with the request rate.
//
// # Memory
//
// A slot's histogram is a list of bin numbers (4 bytes a duration) while
// that takes less room than counting, so a quiet slot takes a few bytes; it
// becomes an array of 4-byte counts over the range of bins its durations
// span once that is smaller. The sum has 8-byte counts. A prefix never
// takes more heap than MaxPrefixBytes, whatever the rate and the durations:
// 535 632 bytes (523 KiB) with 60 slots and 1000 raw durations, reached
// only when every slot holds durations in every bin. With log-normal
// durations (median 50 ms, sigma 1) in every slot, a prefix takes about
// 55 KB at 100 durations a slot and 130 KB at 10 000, 16 KB of which are
// the 1000 raw durations.
//
// The package has no sockets, goroutines, locks or logging, and it never
// reads the clock: callers pass now into every method. A Window is not safe
// for concurrent use, queries included (they update the sums).
package window

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/DataDog/sketches-go/ddsketch/mapping"
)

// RelativeAccuracy is the bound on the relative error of every reported
// percentile of durations of 1 µs or more: the reported value v of an exact
// value x satisfies |v−x| ≤ RelativeAccuracy·x.
const RelativeAccuracy = 0.01

// MinBinned is the shortest duration, in milliseconds, that the percentiles
// tell apart from 0 (1 µs).
const MinBinned = 1e-3

// numBins is the number of histogram bins, from MinBinned up. At 1 %
// accuracy they span a ratio of about 6·10^17.
const numBins = 2048

// binPad is the number of bins a count array grows by beyond the bin that
// made it grow, so that a widening range is not copied at every new bin.
const binPad = 16

// Bytes of heap a prefix takes at most, besides its histograms' arrays and
// raw durations: its state, map entry and slot ring (per slot), rounded up
// to the allocator's size classes.
const (
	prefixOverheadBytes = 2048
	slotOverheadBytes   = 128
	rawEntryBytes       = 18 // 16, and up to 1/8 more for the size class
)

// MaxPrefixBytes is the most heap memory one prefix takes in a window of
// configuration cfg, its name aside: the ring of slots, every slot's
// histogram at its largest (4 bytes for each of the 2048 bins), the sum of
// the slots' histograms (8 bytes a bin) and the raw durations. It holds as
// long as no bin of one slot counts 2^32 durations (each 2^32 more take a
// few dozen bytes).
func MaxPrefixBytes(cfg Config) int64 {
	return prefixOverheadBytes +
		int64(cfg.Slots)*(slotOverheadBytes+4*numBins) +
		8*numBins +
		rawEntryBytes*int64(cfg.MaxRaw)
}

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
	// RelativeAccuracy elsewhere (for durations from MinBinned to about
	// 6·10^14 ms; see the package documentation).
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
	mapping *mapping.LogarithmicMapping
	base    int     // mapping index of bin 0: the bin of MinBinned
	top     float64 // durations from here up count in the last bin
	latest  int64   // newest instant seen, in Unix nanoseconds
	prefix  map[string]*prefixState
	quant   []float64 // configured percentiles as quantiles in [0, 1]
	order   []int     // indexes of quant by increasing quantile
}

type prefixState struct {
	since    int64 // creation or reset instant, Unix nanoseconds
	started  int64
	finished int64
	status   [NumClass]int64
	slots    []slot
	// sum is the sum of the histograms of the slots whose index is above
	// floor: every slot in the window, and possibly slots that have left
	// it since the last query, which subtracts them.
	sum   sumHist
	floor int64
	// wraps counts, in units of 2^32, the durations that a slot's 32-bit
	// bin count wrapped past; nil until one does.
	wraps   map[wrapKey]uint64
	raw     []rawEntry // ring buffer, len ≤ cfg.MaxRaw
	rawNext int        // next write position once the ring is full
}

type wrapKey struct {
	slot int64
	bin  int
}

type slot struct {
	index int64 // absolute slot number: instant / width
	moments
	// bins lists the bin number of every duration from MinBinned up while
	// dense is false; once dense, bins[i] counts the durations of bin lo+i.
	// The durations under MinBinned are the n that are not in bins.
	bins  []uint32
	lo    int32
	dense bool
}

// sumHist is a histogram with 64-bit counts: counts[i] is bin lo+i.
type sumHist struct {
	zero   int64
	lo     int
	counts []uint64
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
		base:    m.Index(MinBinned),
		prefix:  make(map[string]*prefixState),
	}
	w.top = m.LowerBound(w.base + numBins - 1)
	w.cfg.Percentiles = append([]float64(nil), cfg.Percentiles...)
	for i, p := range cfg.Percentiles {
		w.quant = append(w.quant, p/100)
		w.order = append(w.order, i)
	}
	sort.SliceStable(w.order, func(a, b int) bool { return w.quant[w.order[a]] < w.quant[w.order[b]] })
	return w, nil
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
	p := &prefixState{since: t, floor: math.MinInt64}
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
		// The slot's previous content has left the window: take it out of
		// the sum if no query has yet.
		if s.index > p.floor {
			p.forget(s)
		}
		s.reuse(idx)
	}
	s.add(ms)
	if b := w.bin(ms); b < 0 {
		p.sum.zero++
	} else {
		p.addBin(s, b)
		p.sum.add(b)
	}

	if w.cfg.MaxRaw > 0 {
		e := rawEntry{slot: idx, ms: ms}
		if len(p.raw) < w.cfg.MaxRaw {
			if len(p.raw) == cap(p.raw) {
				// Grown by hand, so that the ring never holds more than
				// MaxRaw entries of memory.
				p.raw = append(make([]rawEntry, 0, min(max(1, 2*cap(p.raw)), w.cfg.MaxRaw)), p.raw...)
			}
			p.raw = append(p.raw, e)
		} else {
			p.raw[p.rawNext] = e
			p.rawNext = (p.rawNext + 1) % len(p.raw)
		}
	}
	return nil
}

// bin returns the histogram bin of a duration, or −1 for one under
// MinBinned (and NaN).
func (w *Window) bin(ms float64) int {
	switch {
	case !(ms >= MinBinned):
		return -1
	case ms >= w.top:
		return numBins - 1
	}
	return min(max(w.mapping.Index(ms)-w.base, 0), numBins-1)
}

func statusClass(code int) int {
	if code >= 100 && code <= 599 {
		return code / 100
	}
	return ClassNone
}

// reuse empties a slot for index idx, keeping its memory.
func (s *slot) reuse(idx int64) {
	s.index = idx
	s.moments = moments{}
	if s.dense {
		clear(s.bins)
	} else {
		s.bins = s.bins[:0]
	}
}

// addBin counts one duration of bin b in slot s of p.
func (p *prefixState) addBin(s *slot, b int) {
	if !s.dense {
		if len(s.bins) < cap(s.bins) || !s.densify(b) {
			s.bins = append(s.bins, uint32(b))
			return
		}
	}
	i := b - int(s.lo)
	if i < 0 || i >= len(s.bins) {
		var lo int
		s.bins, lo = widen(s.bins, int(s.lo), b)
		s.lo = int32(lo)
		i = b - lo
	}
	s.bins[i]++
	if s.bins[i] == 0 {
		if p.wraps == nil {
			p.wraps = make(map[wrapKey]uint64)
		}
		p.wraps[wrapKey{s.index, b}]++
	}
}

// densify is called when the list of a sparse slot is full and bin b comes.
// It turns the list into counts if they take no more room than the list
// would once doubled, and reports whether it did; otherwise it doubles the
// list. A list thus never exceeds 1024 entries, nor counts numBins.
func (s *slot) densify(b int) bool {
	if cap(s.bins) == 0 {
		s.bins = make([]uint32, 0, 4)
		return false
	}
	lo, hi := b, b
	for _, x := range s.bins {
		lo = min(lo, int(x))
		hi = max(hi, int(x))
	}
	if hi-lo+1 > 2*cap(s.bins) {
		s.bins = append(make([]uint32, 0, 2*cap(s.bins)), s.bins...)
		return false
	}
	counts := make([]uint32, hi-lo+1)
	for _, x := range s.bins {
		counts[int(x)-lo]++
	}
	s.bins, s.lo, s.dense = counts, int32(lo), true
	return true
}

// widen returns counts, whose first bin is lo, re-allocated to also cover
// bin b, with binPad bins to spare on the side it grew, and its new first
// bin. Counts never cover more than the numBins bins.
func widen[C uint32 | uint64](counts []C, lo, b int) ([]C, int) {
	if len(counts) == 0 {
		nlo := max(0, b-binPad)
		return make([]C, min(numBins-1, b+binPad)-nlo+1), nlo
	}
	hi := lo + len(counts) - 1
	nlo, nhi := lo, hi
	if b < lo {
		nlo = max(0, b-binPad)
	}
	if b > hi {
		nhi = min(numBins-1, b+binPad)
	}
	grown := make([]C, nhi-nlo+1)
	copy(grown[lo-nlo:], counts)
	return grown, nlo
}

func (h *sumHist) add(b int) {
	i := b - h.lo
	if i < 0 || i >= len(h.counts) {
		h.counts, h.lo = widen(h.counts, h.lo, b)
		i = b - h.lo
	}
	h.counts[i]++
}

// forget subtracts the histogram of slot s from the sum. Every duration of
// s was added to the sum, so the sum covers its non-empty bins.
func (p *prefixState) forget(s *slot) {
	if s.n == 0 {
		return
	}
	h := &p.sum
	var binned uint64
	if !s.dense {
		for _, b := range s.bins {
			h.counts[int(b)-h.lo]--
		}
		binned = uint64(len(s.bins))
	} else {
		from := max(int(s.lo), h.lo)
		to := min(int(s.lo)+len(s.bins), h.lo+len(h.counts))
		if from < to {
			dst := h.counts[from-h.lo : to-h.lo]
			for i, c := range s.bins[from-int(s.lo) : to-int(s.lo)] {
				dst[i] -= uint64(c)
				binned += uint64(c)
			}
		}
	}
	for k, v := range p.wraps {
		if k.slot == s.index {
			h.counts[k.bin-h.lo] -= v << 32
			binned += v << 32
			delete(p.wraps, k)
		}
	}
	h.zero -= s.n - int64(binned)
}

// expire takes out of the sum the slots that have left the window ending
// at slot cur.
func (p *prefixState) expire(cur int64, slots int) {
	floor := cur - int64(slots)
	if floor <= p.floor {
		return
	}
	for i := range p.slots {
		if s := &p.slots[i]; s.index > p.floor && s.index <= floor {
			p.forget(s)
		}
	}
	p.floor = floor
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
	p.expire(cur, w.cfg.Slots)
	var all moments
	for i := range p.slots {
		if s := &p.slots[i]; s.n > 0 && w.live(s.index, cur) {
			all.merge(s.moments)
		}
	}
	if all.n == 0 {
		return st
	}
	st.Count = all.n
	st.Mean = all.mean
	st.Std = math.Sqrt(max(0, all.m2/float64(all.n)))
	st.Min, st.Max = all.min, all.max
	w.percentiles(&p.sum, all, st.Percentiles)
	windowStart := (cur - int64(w.cfg.Slots) + 1) * w.width
	covered := time.Duration(t - max(windowStart, p.since))
	st.Rate = float64(all.n) / max(covered, time.Second).Seconds()
	return st
}

// percentiles fills out with the configured percentiles of the all.n
// durations whose histogram is h, walking the bins once.
func (w *Window) percentiles(h *sumHist, all moments, out []float64) {
	last := float64(all.n - 1)
	cum := float64(h.zero) // durations in the bins below i, and zeros
	i := 0
	for _, k := range w.order {
		// As a DDSketch computes it, so that the value is the one at the
		// sorted index floor(q·(n−1)).
		rank := float64(w.quant[k] * last)
		switch {
		case rank >= last:
			// The largest duration is known exactly; its bin's value may
			// be up to 1 % below it.
			out[k] = all.max
			continue
		case rank < 1:
			out[k] = all.min
			continue
		}
		// The value at rank lies in the first bin whose cumulative count
		// exceeds it: zero, or bin i−1 once the loop stops.
		for cum <= rank && i < len(h.counts) {
			cum += float64(h.counts[i])
			i++
		}
		v := 0.0
		if cum > rank && i > 0 && rank >= float64(h.zero) {
			v = w.mapping.Value(w.base + h.lo + i - 1)
		}
		// A bin's value may stray past the exact extremes by up to the
		// relative accuracy; the exact ones are known.
		out[k] = min(max(v, all.min), all.max)
	}
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
	names := w.AppendPrefixes(make([]string, 0, len(w.prefix)))
	sort.Strings(names)
	return names
}

// AppendPrefixes appends the tracked prefixes to dst, in no particular
// order, and returns the extended slice: Prefixes without the sort, which
// takes milliseconds for ten thousand prefixes.
func (w *Window) AppendPrefixes(dst []string) []string {
	for name := range w.prefix {
		dst = append(dst, name)
	}
	return dst
}
