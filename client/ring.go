package client

import (
	"math/bits"
	"sync/atomic"
)

// ring is a bounded lock-free queue of events with many producers and one
// consumer (D. Vyukov's bounded queue): each slot carries a sequence number
// that says whose turn it is, so a producer claims a slot with one
// compare-and-swap on the tail and publishes it with one store, and never
// waits. A full ring refuses the event.
type ring struct {
	mask  uint64 // read-only after newRing
	slots []slot
	_     [64]byte // tail, written by producers, on a cache line of its own
	tail  atomic.Uint64
	_     [56]byte
	head  uint64 // next slot to read; the consumer's alone
}

type slot struct {
	// seq is pos while the slot is free for the producer of position
	// pos, pos+1 once that producer has published its event, and
	// pos+len(slots) when the consumer has read it.
	seq atomic.Uint64
	ev  event
}

// newRing returns a ring holding at least size events (rounded up to a power
// of two, and at least 2: with one slot, "published" and "free for the next
// lap" would be the same sequence number).
func newRing(size int) *ring {
	n := uint64(2)
	if size > 2 {
		n = 1 << bits.Len64(uint64(size-1))
	}
	r := &ring{mask: n - 1, slots: make([]slot, n)}
	for i := range r.slots {
		r.slots[i].seq.Store(uint64(i))
	}
	return r
}

// capacity is the number of events the ring holds.
func (r *ring) capacity() int { return len(r.slots) }

// put adds ev unless the ring is full, and returns the position it took.
// Safe for concurrent use.
func (r *ring) put(ev event) (pos uint64, ok bool) {
	pos = r.tail.Load()
	for {
		s := &r.slots[pos&r.mask]
		switch seq := s.seq.Load(); {
		case seq == pos:
			if r.tail.CompareAndSwap(pos, pos+1) {
				s.ev = ev
				s.seq.Store(pos + 1)
				return pos, true
			}
			pos = r.tail.Load()
		case int64(seq-pos) < 0:
			// The slot still holds the event from one lap before.
			return pos, false
		default:
			// Another producer took pos; catch up.
			pos = r.tail.Load()
		}
	}
}

// ready reports whether get would return an event. Only the consumer calls
// it.
func (r *ring) ready() bool {
	return r.slots[r.head&r.mask].seq.Load() == r.head+1
}

// get removes the oldest published event. Only the consumer calls it.
func (r *ring) get() (event, bool) {
	s := &r.slots[r.head&r.mask]
	if s.seq.Load() != r.head+1 {
		return event{}, false
	}
	ev := s.ev
	s.ev = event{} // drop the reference to the prefix
	s.seq.Store(r.head + r.mask + 1)
	r.head++
	return ev, true
}
