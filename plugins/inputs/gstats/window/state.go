package window

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"sort"
	"time"
	"unicode/utf8"

	"github.com/DataDog/sketches-go/ddsketch/mapping"
)

// PrefixState is the state of one prefix as Export gives it and Import takes
// it: its counters, the non-empty slots of its window and its raw durations.
// It holds plain values only, so that it can be written to a file and read
// back by another process.
type PrefixState struct {
	// Name is the prefix.
	Name string
	// Since is the instant the prefix was first seen or last reset, in Unix
	// nanoseconds.
	Since int64
	// Started, Finished and Status are the counters of Stats.
	Started, Finished int64
	Status            [NumClass]int64
	// Slots are the non-empty slots of the window, by increasing index.
	Slots []SlotState
	// Raw are the raw durations kept for Raw, oldest first.
	Raw []RawDuration
}

// SlotState is one slot of a prefix's window.
type SlotState struct {
	// Index is the absolute slot number: the instant of its durations, in
	// Unix nanoseconds, divided by the slot width.
	Index int64
	// Count is the number of durations in the slot; Mean, M2 (the sum of
	// squared deviations from the mean), Min and Max are their exact
	// moments, in milliseconds.
	Count              int64
	Mean, M2, Min, Max float64
	// Bins is the histogram of the durations of MinBinned and more, by
	// increasing bin; the Count durations that are not in a bin were under
	// MinBinned.
	Bins []BinCount
}

// BinCount is the number of durations of one histogram bin, numbered from 0
// (the bin of MinBinned) to NumBins−1.
type BinCount struct {
	Bin   int
	Count uint64
}

// RawDuration is one raw duration and the slot it finished in.
type RawDuration struct {
	Slot int64 // SlotState.Index of its slot
	MS   float64
}

// NumBins is the number of histogram bins of a slot.
const NumBins = numBins

// ImportReport says what Import restored and what it left out.
type ImportReport struct {
	// Prefixes is the number of prefixes restored.
	Prefixes int
	// Slots and Durations count the slots restored and their durations.
	Slots     int
	Durations int64
	// ExpiredSlots counts the slots that had left the window by the time of
	// the import, FutureSlots those later than it (the clock went back).
	ExpiredSlots, FutureSlots int
	// Raw counts the raw durations restored; RawDropped those left out
	// because their slot was, or over Config.MaxRaw (the oldest).
	Raw, RawDropped int
}

// Export copies the state of one prefix at instant now into dst, reusing
// dst's memory, and reports whether the prefix is tracked. Only the slots
// still in the window at now are exported, and the raw durations in them.
func (w *Window) Export(prefix string, now time.Time, dst *PrefixState) bool {
	p, ok := w.prefix[prefix]
	if !ok {
		return false
	}
	cur := w.clock(now) / w.width
	dst.Name = prefix
	dst.Since = p.since
	dst.Started, dst.Finished, dst.Status = p.started, p.finished, p.status
	dst.Slots = dst.Slots[:0]
	dst.Raw = dst.Raw[:0]
	if len(p.slots) > 0 {
		n := int64(len(p.slots))
		for idx := cur - n + 1; idx <= cur; idx++ {
			s := &p.slots[((idx%n)+n)%n]
			if s.index != idx || s.n == 0 {
				continue
			}
			dst.Slots = slices.Grow(dst.Slots, 1)[:len(dst.Slots)+1]
			ss := &dst.Slots[len(dst.Slots)-1]
			ss.Index = idx
			ss.Count, ss.Mean, ss.M2, ss.Min, ss.Max = s.n, s.mean, s.m2, s.min, s.max
			ss.Bins = exportBins(p, s, ss.Bins[:0])
		}
	}
	for i := range p.raw {
		e := p.raw[(p.rawNext+i)%len(p.raw)]
		if w.live(e.slot, cur) {
			dst.Raw = append(dst.Raw, RawDuration{Slot: e.slot, MS: e.ms})
		}
	}
	return true
}

// exportBins appends the histogram of slot s to dst, by increasing bin.
func exportBins(p *prefixState, s *slot, dst []BinCount) []BinCount {
	if !s.dense {
		// At most 1024 bin numbers, in arrival order, which matters to
		// nothing: sorted in place (a list sorted by a previous export is
		// mostly sorted), then counted.
		if !slices.IsSorted(s.bins) {
			slices.Sort(s.bins)
		}
		for _, b := range s.bins {
			if k := len(dst) - 1; k >= 0 && dst[k].Bin == int(b) {
				dst[k].Count++
			} else {
				dst = append(dst, BinCount{Bin: int(b), Count: 1})
			}
		}
		return dst
	}
	for i, c := range s.bins {
		b := int(s.lo) + i
		n := uint64(c)
		if p.wraps != nil {
			n += p.wraps[wrapKey{s.index, b}] << 32
		}
		if n > 0 {
			dst = append(dst, BinCount{Bin: b, Count: n})
		}
	}
	return dst
}

// Validate checks states as Import does, for a window of the given number of
// slots, without a window: the consistency of every field, the counters
// with the slots, the histograms with the moments, the raw durations with
// their slots, and that no name appears twice. The error names the prefix
// and the slot.
func Validate(states []PrefixState, slots int) error {
	v, err := NewValidator(slots)
	if err != nil {
		return err
	}
	for i := range states {
		if err := v.Check(&states[i]); err != nil {
			return err
		}
	}
	return nil
}

// Validator checks prefix states one at a time, as Validate does, for
// callers that decode them one at a time.
type Validator struct {
	w     *Window // for its bins only
	slots int
	names map[string]struct{}
}

// NewValidator returns a Validator for a window of the given number of
// slots.
func NewValidator(slots int) (*Validator, error) {
	if slots < 1 {
		return nil, fmt.Errorf("%d slots: there must be at least 1", slots)
	}
	m, err := mapping.NewLogarithmicMapping(RelativeAccuracy)
	if err != nil {
		return nil, fmt.Errorf("creating sketch mapping: %w", err)
	}
	w := &Window{mapping: m, base: m.Index(MinBinned)}
	w.top = m.LowerBound(w.base + numBins - 1)
	return &Validator{w: w, slots: slots, names: make(map[string]struct{})}, nil
}

// Check validates one prefix state, and that no prefix checked before had
// its name.
func (v *Validator) Check(p *PrefixState) error {
	if _, dup := v.names[p.Name]; dup {
		return fmt.Errorf("prefix %q appears twice", p.Name)
	}
	v.names[p.Name] = struct{}{}
	if err := v.w.validatePrefix(p, v.slots); err != nil {
		return fmt.Errorf("prefix %q: %w", p.Name, err)
	}
	return nil
}

func (w *Window) validate(states []PrefixState, slots int) error {
	v := &Validator{w: w, slots: slots, names: make(map[string]struct{}, len(states))}
	if slots < 1 {
		return fmt.Errorf("%d slots: there must be at least 1", slots)
	}
	for i := range states {
		if err := v.Check(&states[i]); err != nil {
			return err
		}
	}
	return nil
}

func (w *Window) validatePrefix(p *PrefixState, slots int) error {
	switch {
	case p.Name == "":
		return errors.New("empty name")
	case !utf8.ValidString(p.Name):
		return errors.New("name is not UTF-8")
	case p.Started < 0 || p.Finished < 0:
		return fmt.Errorf("negative counter: started %d, finished %d", p.Started, p.Finished)
	}
	var classes int64
	for c, n := range p.Status {
		if n < 0 {
			return fmt.Errorf("negative status count %d in class %d", n, c)
		}
		if classes > math.MaxInt64-n {
			return errors.New("the status classes count more than 2^63 finishes")
		}
		classes += n
	}
	if classes != p.Finished {
		return fmt.Errorf("the status classes count %d finishes, finished says %d", classes, p.Finished)
	}
	if len(p.Slots) > slots {
		return fmt.Errorf("%d slots, the window has %d", len(p.Slots), slots)
	}
	var inSlots int64
	for i := range p.Slots {
		s := &p.Slots[i]
		if err := w.validateSlot(s); err != nil {
			return fmt.Errorf("slot %d: %w", s.Index, err)
		}
		if i > 0 && s.Index <= p.Slots[i-1].Index {
			return fmt.Errorf("slot %d: after slot %d; slots must be by increasing index", s.Index, p.Slots[i-1].Index)
		}
		if first := p.Slots[0].Index; s.Index-first >= int64(slots) {
			return fmt.Errorf("slot %d: %d slots after slot %d, more than the window's %d", s.Index, s.Index-first, first, slots)
		}
		if inSlots > math.MaxInt64-s.Count {
			return errors.New("the slots hold more than 2^63 durations")
		}
		inSlots += s.Count
	}
	if inSlots > p.Finished {
		return fmt.Errorf("the slots hold %d durations, more than the %d finishes", inSlots, p.Finished)
	}
	// Raw durations: oldest first, each in a slot and within its moments,
	// and no more for a slot than it counts.
	j := 0
	var inSlot int64
	for i, r := range p.Raw {
		if i > 0 && r.Slot < p.Raw[i-1].Slot {
			return fmt.Errorf("raw duration %d: slot %d after slot %d; raw durations must be oldest first", i, r.Slot, p.Raw[i-1].Slot)
		}
		if i > 0 && r.Slot != p.Raw[i-1].Slot {
			inSlot = 0
		}
		for j < len(p.Slots) && p.Slots[j].Index < r.Slot {
			j++
		}
		if j == len(p.Slots) || p.Slots[j].Index != r.Slot {
			return fmt.Errorf("raw duration %d: slot %d is not among the slots", i, r.Slot)
		}
		s := &p.Slots[j]
		inSlot++
		switch {
		case !(r.MS >= s.Min && r.MS <= s.Max):
			return fmt.Errorf("raw duration %d: %v ms in slot %d, outside its minimum %v and maximum %v", i, r.MS, r.Slot, s.Min, s.Max)
		case inSlot > s.Count:
			return fmt.Errorf("raw duration %d: more raw durations in slot %d than its %d durations", i, r.Slot, s.Count)
		}
	}
	return nil
}

// meanSlack is the relative rounding error allowed on a slot's mean beyond
// its minimum and maximum.
const meanSlack = 1e-9

func (w *Window) validateSlot(s *SlotState) error {
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	switch {
	case s.Index < 0:
		return errors.New("negative index")
	case s.Count < 1:
		return fmt.Errorf("count %d; an exported slot holds at least one duration", s.Count)
	case !finite(s.Mean) || !finite(s.M2) || !finite(s.Min) || !finite(s.Max):
		return fmt.Errorf("non-finite moments: mean %v, m2 %v, min %v, max %v", s.Mean, s.M2, s.Min, s.Max)
	case s.Min < 0 || s.Min > s.Max:
		return fmt.Errorf("minimum %v and maximum %v: want 0 ≤ minimum ≤ maximum", s.Min, s.Max)
	case s.M2 < 0:
		return fmt.Errorf("negative sum of squared deviations %v", s.M2)
	case s.Mean < s.Min-meanSlack*s.Max || s.Mean > s.Max*(1+meanSlack):
		return fmt.Errorf("mean %v outside the minimum %v and maximum %v", s.Mean, s.Min, s.Max)
	case s.Count == 1 && (s.Min != s.Max || s.Mean != s.Min || s.M2 != 0):
		return fmt.Errorf("one duration with minimum %v, maximum %v, mean %v and sum of squared deviations %v", s.Min, s.Max, s.Mean, s.M2)
	}
	loBin, hiBin := w.bin(s.Min), w.bin(s.Max)
	var binned uint64
	for i, b := range s.Bins {
		switch {
		case b.Bin < 0 || b.Bin >= numBins:
			return fmt.Errorf("bin %d out of range [0, %d)", b.Bin, numBins)
		case i > 0 && b.Bin <= s.Bins[i-1].Bin:
			return fmt.Errorf("bin %d after bin %d; bins must be increasing", b.Bin, s.Bins[i-1].Bin)
		case b.Count == 0:
			return fmt.Errorf("bin %d counts nothing", b.Bin)
		case b.Bin < loBin || b.Bin > hiBin:
			return fmt.Errorf("bin %d outside bins %d to %d of the minimum %v and maximum %v", b.Bin, loBin, hiBin, s.Min, s.Max)
		}
		var carry uint64
		binned, carry = bits.Add64(binned, b.Count, 0)
		if carry != 0 || binned > uint64(s.Count) {
			return fmt.Errorf("the bins count more than the %d durations", s.Count)
		}
	}
	zero := s.Count - int64(binned)
	switch {
	case loBin < 0 && zero == 0:
		return fmt.Errorf("minimum %v is under %v ms but no duration is outside the bins", s.Min, MinBinned)
	case loBin >= 0 && zero > 0:
		return fmt.Errorf("%d durations outside the bins, but the minimum %v is binned", zero, s.Min)
	case loBin >= 0 && (len(s.Bins) == 0 || s.Bins[0].Bin != loBin):
		return fmt.Errorf("no duration in bin %d of the minimum %v", loBin, s.Min)
	case hiBin >= 0 && (len(s.Bins) == 0 || s.Bins[len(s.Bins)-1].Bin != hiBin):
		return fmt.Errorf("no duration in bin %d of the maximum %v", hiBin, s.Max)
	}
	return nil
}

// Import adds the prefixes of states to the window at instant now, as if
// their events had arrived at the instants of their slots: a slot that has
// left the window by now is left out, as is one later than now (the clock
// went back since the export), and the raw durations over Config.MaxRaw
// (the oldest). The sums the queries use are computed from the slots.
//
// Import first validates every state (see Validate) and that the window
// can take every prefix: a name it already tracks, or more prefixes than
// Config.MaxPrefixes, is an error. On error the window is unchanged.
func (w *Window) Import(states []PrefixState, now time.Time) (ImportReport, error) {
	var rep ImportReport
	if err := w.validate(states, w.cfg.Slots); err != nil {
		return rep, err
	}
	for i := range states {
		if _, ok := w.prefix[states[i].Name]; ok {
			return rep, fmt.Errorf("prefix %q is already tracked", states[i].Name)
		}
	}
	if n := len(w.prefix) + len(states); n > w.cfg.MaxPrefixes {
		return rep, fmt.Errorf("%d prefixes, more than max_prefixes = %d", n, w.cfg.MaxPrefixes)
	}
	t := w.clock(now)
	cur := t / w.width
	for i := range states {
		w.importPrefix(&states[i], t, cur, &rep)
	}
	return rep, nil
}

func (w *Window) importPrefix(st *PrefixState, t, cur int64, rep *ImportReport) {
	n := int64(w.cfg.Slots)
	p := &prefixState{
		since:    min(st.Since, t),
		started:  st.Started,
		finished: st.Finished,
		status:   st.Status,
		floor:    cur - n,
	}
	w.prefix[st.Name] = p
	rep.Prefixes++

	// The slots are by increasing index: those in the window at cur are
	// a run between the expired ones and the future ones.
	from := sort.Search(len(st.Slots), func(i int) bool { return st.Slots[i].Index > cur-n })
	to := sort.Search(len(st.Slots), func(i int) bool { return st.Slots[i].Index > cur })
	kept := st.Slots[from:to]
	rep.ExpiredSlots += from
	rep.FutureSlots += len(st.Slots) - to
	sumLo, sumHi := numBins, -1
	for i := range kept {
		if b := kept[i].Bins; len(b) > 0 {
			sumLo = min(sumLo, b[0].Bin)
			sumHi = max(sumHi, b[len(b)-1].Bin)
		}
	}
	if len(kept) > 0 {
		p.slots = make([]slot, n)
		if sumHi >= 0 {
			p.sum.lo = sumLo
			p.sum.counts = make([]uint64, sumHi-sumLo+1)
		}
	}
	for i := range kept {
		ks := &kept[i]
		s := &p.slots[ks.Index%n]
		s.index = ks.Index
		s.moments = moments{n: ks.Count, mean: ks.Mean, m2: ks.M2, min: ks.Min, max: ks.Max}
		var binned uint64
		for _, b := range ks.Bins {
			p.sum.counts[b.Bin-p.sum.lo] += b.Count
			binned += b.Count
		}
		p.sum.zero += ks.Count - int64(binned)
		p.importBins(s, ks.Bins, binned)
		rep.Slots++
		rep.Durations += ks.Count
	}

	// The raw durations of the slots kept, the newest MaxRaw of them.
	inKept := func(slots []SlotState, idx int64) bool {
		_, ok := slices.BinarySearchFunc(slots, idx, func(s SlotState, idx int64) int { return cmp.Compare(s.Index, idx) })
		return ok
	}
	usable := 0
	for _, r := range st.Raw {
		if inKept(kept, r.Slot) {
			usable++
		}
	}
	skip := max(0, usable-w.cfg.MaxRaw)
	rep.RawDropped += len(st.Raw) - usable + skip
	if keep := usable - skip; keep > 0 {
		p.raw = make([]rawEntry, 0, keep)
		for _, r := range st.Raw {
			if !inKept(kept, r.Slot) {
				continue
			}
			if skip > 0 {
				skip--
				continue
			}
			p.raw = append(p.raw, rawEntry{slot: r.Slot, ms: r.MS})
		}
	}
	rep.Raw += len(p.raw)
}

// importBins fills the histogram of slot s, in the form Finish would have
// given it: a list of bin numbers while that is smaller than counting, with
// the capacity a growing list has; counts over the bins' range otherwise.
func (p *prefixState) importBins(s *slot, bins []BinCount, binned uint64) {
	if len(bins) == 0 {
		return
	}
	lo, hi := bins[0].Bin, bins[len(bins)-1].Bin
	span := uint64(hi - lo + 1)
	if listCap := listCapacity(binned); listCap <= 1024 && uint64(listCap) < span {
		s.bins = make([]uint32, 0, listCap)
		for _, b := range bins {
			for range b.Count {
				s.bins = append(s.bins, uint32(b.Bin))
			}
		}
		return
	}
	s.dense = true
	s.lo = int32(lo)
	s.bins = make([]uint32, span)
	for _, b := range bins {
		s.bins[b.Bin-lo] = uint32(b.Count)
		if wrapped := b.Count >> 32; wrapped > 0 {
			if p.wraps == nil {
				p.wraps = make(map[wrapKey]uint64)
			}
			p.wraps[wrapKey{s.index, b.Bin}] = wrapped
		}
	}
}

// listCapacity is the capacity a slot's list of bin numbers has once it
// holds n of them: 4, then doubled as it fills.
func listCapacity(n uint64) int {
	c := uint64(4)
	for c < n && c <= 1024 {
		c *= 2
	}
	return int(c)
}
