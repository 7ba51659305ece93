// Package state reads and writes the gstats state file: the counters and
// the sliding window of every prefix, and the collector's own counters, so
// that a restarted collector carries on where it stopped.
//
// # Format
//
// A state file is a fixed header followed by a payload:
//
//	offset  size  field
//	0       13    magic line "gstats-state\n"
//	13      4     format version, big-endian (1)
//	17      8     payload length in bytes, big-endian
//	25      4     CRC-32C (Castagnoli) of the payload, big-endian
//	29      ...   payload
//
// The payload of version 1 is a sequence of unsigned varints (u), signed
// zigzag varints (s), strings (a u length, then UTF-8 bytes), 8-byte
// little-endian IEEE 754 floats (f) and durations (d: a u holding 2k for
// k/1000 ms, which is how clients send milliseconds, or the u 1 followed by
// an f):
//
//	s written at (Unix ns); s window (ns); u slots
//	u counters, each: string name, u value
//	u prefixes, each:
//	  string name; s since (Unix ns); u started; u finished
//	  u × 6 finishes by status class (none, 1xx to 5xx)
//	  u slots, each (by increasing index):
//	    u index (the first), or the gap to the previous one minus 1
//	    u durations; d min; d max; f mean; f sum of squared deviations
//	    u bins, each: u bin (the first), or the gap minus 1; u count
//	  u raw durations, each (oldest first):
//	    u position of its slot in the list, minus the previous one's; d
//
// Decode and Scan check every count against the bytes left before
// allocating, so that a hostile file cannot make them allocate more than a
// small multiple of its size, and validate every prefix (window.Validator)
// so that a file they accept can be imported whole.
package state

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/gstats/gstats/plugins/inputs/gstats/window"
)

// Magic is the line a state file starts with.
const Magic = "gstats-state\n"

// Version is the format version this package writes and reads.
const Version = 1

// HeaderSize is the size of the fixed header before the payload.
const HeaderSize = len(Magic) + 4 + 8 + 4

// MaxFileSize is the size of the largest state file Read accepts (1 GiB);
// 1000 busy prefixes take about 13 MB.
const MaxFileSize = 1 << 30

// Meta is what a state file holds besides its prefixes.
type Meta struct {
	// WrittenAt is the instant the state was taken.
	WrittenAt time.Time
	// Window and Slots are the window's configuration when it was written:
	// slot indexes are instants divided by Window/Slots.
	Window time.Duration
	Slots  int
	// Counters are the collector's own counters, by name.
	Counters []Counter
}

// Counter is one of the collector's own counters.
type Counter struct {
	Name  string
	Value int64
}

// File is the content of a state file.
type File struct {
	Meta
	Prefixes []window.PrefixState
}

// Sentinel errors, one per kind of unusable file; every error of Decode
// and Read about the content wraps one of them.
var (
	// ErrForeign: the file is not a gstats state file.
	ErrForeign = errors.New("not a gstats state file")
	// ErrVersion: a format version this build does not read.
	ErrVersion = errors.New("unsupported state file version")
	// ErrTruncated: the file ends before its header says.
	ErrTruncated = errors.New("truncated state file")
	// ErrChecksum: the payload does not match its checksum.
	ErrChecksum = errors.New("state file checksum mismatch")
	// ErrCorrupt: the payload is malformed or inconsistent.
	ErrCorrupt = errors.New("corrupt state file")
	// ErrTooLarge: the file is larger than MaxFileSize.
	ErrTooLarge = errors.New("state file too large")
)

// Error is an unusable state file: the kind (one of the sentinel errors),
// where in the file, and what.
type Error struct {
	Kind   error
	Offset int64 // byte offset in the file, -1 when the file as a whole
	Msg    string
}

func (e *Error) Error() string {
	if e.Offset < 0 {
		return fmt.Sprintf("%v: %s", e.Kind, e.Msg)
	}
	return fmt.Sprintf("%v at byte %d: %s", e.Kind, e.Offset, e.Msg)
}

// Unwrap returns the kind, for errors.Is.
func (e *Error) Unwrap() error { return e.Kind }

func castagnoli() *crc32.Table { return crc32.MakeTable(crc32.Castagnoli) }

// Encoder writes a state file. Prefixes are added one by one, so the caller
// can take each from the window under its lock and encode it outside; the
// encoder keeps its memory from one file to the next (Reset).
type Encoder struct {
	body []byte // the encoded prefixes
	n    int    // how many
	head []byte // scratch for the header and meta
}

// Reset empties the encoder for a new file, keeping its memory.
func (e *Encoder) Reset() {
	e.body = e.body[:0]
	e.n = 0
}

// Prefixes is the number of prefixes added since the last Reset.
func (e *Encoder) Prefixes() int { return e.n }

// Add encodes one prefix. It does not validate it: a state Export gives is
// valid, and the tests write invalid ones on purpose.
func (e *Encoder) Add(p *window.PrefixState) {
	b := e.body
	b = appendString(b, p.Name)
	b = binary.AppendVarint(b, p.Since)
	b = binary.AppendUvarint(b, uint64(p.Started))
	b = binary.AppendUvarint(b, uint64(p.Finished))
	for _, n := range p.Status {
		b = binary.AppendUvarint(b, uint64(n))
	}
	b = binary.AppendUvarint(b, uint64(len(p.Slots)))
	for i := range p.Slots {
		s := &p.Slots[i]
		if i == 0 {
			b = binary.AppendUvarint(b, uint64(s.Index))
		} else {
			b = binary.AppendUvarint(b, uint64(s.Index-p.Slots[i-1].Index-1))
		}
		b = binary.AppendUvarint(b, uint64(s.Count))
		b = appendDuration(b, s.Min)
		b = appendDuration(b, s.Max)
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(s.Mean))
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(s.M2))
		b = binary.AppendUvarint(b, uint64(len(s.Bins)))
		for j, bc := range s.Bins {
			if j == 0 {
				b = binary.AppendUvarint(b, uint64(bc.Bin))
			} else {
				b = binary.AppendUvarint(b, uint64(bc.Bin-s.Bins[j-1].Bin-1))
			}
			b = binary.AppendUvarint(b, bc.Count)
		}
	}
	b = binary.AppendUvarint(b, uint64(len(p.Raw)))
	pos, prev := 0, 0
	for _, r := range p.Raw {
		// The raw durations refer to their slot by its position in the
		// list; both are by increasing slot. A slot that is not in the
		// list (an invalid state) gets the position past the end.
		for pos < len(p.Slots) && p.Slots[pos].Index < r.Slot {
			pos++
		}
		at := pos
		if pos < len(p.Slots) && p.Slots[pos].Index != r.Slot {
			at = len(p.Slots)
		}
		b = binary.AppendUvarint(b, uint64(at-prev))
		prev = at
		b = appendDuration(b, r.MS)
	}
	e.body = b
	e.n++
}

// appendMeta appends the payload's beginning: meta and the prefix count.
func (e *Encoder) appendMeta(b []byte, m *Meta) []byte {
	b = binary.AppendVarint(b, m.WrittenAt.UnixNano())
	b = binary.AppendVarint(b, int64(m.Window))
	b = binary.AppendUvarint(b, uint64(m.Slots))
	b = binary.AppendUvarint(b, uint64(len(m.Counters)))
	for _, c := range m.Counters {
		b = appendString(b, c.Name)
		b = binary.AppendUvarint(b, uint64(c.Value))
	}
	return binary.AppendUvarint(b, uint64(e.n))
}

// header returns the file's header and the payload's beginning.
func (e *Encoder) header(m *Meta) (head, meta []byte) {
	buf := append(e.head[:0], make([]byte, HeaderSize)...)
	buf = e.appendMeta(buf, m)
	e.head = buf
	head, meta = buf[:HeaderSize], buf[HeaderSize:]
	copy(head, Magic)
	binary.BigEndian.PutUint32(head[len(Magic):], Version)
	binary.BigEndian.PutUint64(head[len(Magic)+4:], uint64(len(meta)+len(e.body)))
	sum := crc32.Update(crc32.Update(0, castagnoli(), meta), castagnoli(), e.body)
	binary.BigEndian.PutUint32(head[len(Magic)+12:], sum)
	return head, meta
}

// WriteTo writes the state file: meta m and the prefixes added.
func (e *Encoder) WriteTo(w io.Writer, m *Meta) (int64, error) {
	head, meta := e.header(m)
	var total int64
	for _, part := range [][]byte{head[:len(head)+len(meta)], e.body} {
		n, err := w.Write(part)
		total += int64(n)
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// Append appends the state file to dst.
func (e *Encoder) Append(dst []byte, m *Meta) []byte {
	head, meta := e.header(m)
	dst = append(dst, head...)
	dst = append(dst, meta...)
	return append(dst, e.body...)
}

// Encode returns the state file of f.
func Encode(f *File) []byte {
	var e Encoder
	for i := range f.Prefixes {
		e.Add(&f.Prefixes[i])
	}
	return e.Append(nil, &f.Meta)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// maxExactMS bounds the durations written as whole microseconds: their
// count of microseconds is an exact float64.
const maxExactMS = 1 << 53 / 1000

// appendDuration writes ms as 2k when ms is k/1000 exactly (a duration with
// at most three decimals, as clients send them), or as 1 and its bits.
func appendDuration(b []byte, ms float64) []byte {
	if ms >= 0 && ms <= maxExactMS && !math.Signbit(ms) {
		if k := math.Round(ms * 1000); float64(k)/1000 == ms {
			return binary.AppendUvarint(b, uint64(k)<<1)
		}
	}
	b = append(b, 1)
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(ms))
}

// Minimal encoded sizes, which bound the counts a file can hold.
const (
	minCounterBytes = 2                         // empty name, value
	minPrefixBytes  = 1 + 1 + 2 + 6 + 1 + 1     // name length, since, counters, statuses, slot and raw counts
	minSlotBytes    = 1 + 1 + 1 + 1 + 8 + 8 + 1 // index, count, min, max, mean, m2, bin count
	minBinBytes     = 2
	minRawBytes     = 2
	maxCounterName  = 256
)

// Decode parses and validates a state file.
func Decode(data []byte) (*File, error) {
	f := &File{}
	meta, err := scan(data, false, func(p *window.PrefixState) error {
		f.Prefixes = append(f.Prefixes, *p)
		return nil
	})
	if err != nil {
		return nil, err
	}
	f.Meta = *meta
	return f, nil
}

// Scan parses and validates a state file prefix by prefix, so that a large
// file need not be held decoded as a whole: it calls fn with each prefix,
// in a PrefixState whose memory it reuses from one call to the next (fn
// copies what it keeps), and returns the file's meta. It stops at the first
// problem (an *Error; the prefixes before it have been passed to fn), or at
// the first error of fn, which it returns as it is.
func Scan(data []byte, fn func(*window.PrefixState) error) (*Meta, error) {
	return scan(data, true, fn)
}

func scan(data []byte, reuse bool, fn func(*window.PrefixState) error) (*Meta, error) {
	if len(data) < len(Magic) || string(data[:len(Magic)]) != Magic {
		return nil, &Error{Kind: ErrForeign, Offset: -1, Msg: fmt.Sprintf("it starts with %q, not %q", data[:min(len(data), len(Magic))], Magic)}
	}
	if len(data) < HeaderSize {
		return nil, &Error{Kind: ErrTruncated, Offset: -1, Msg: fmt.Sprintf("%d bytes, shorter than the %d-byte header", len(data), HeaderSize)}
	}
	if v := binary.BigEndian.Uint32(data[len(Magic):]); v != Version {
		return nil, &Error{Kind: ErrVersion, Offset: int64(len(Magic)), Msg: fmt.Sprintf("format version %d; this build reads version %d", v, Version)}
	}
	length := binary.BigEndian.Uint64(data[len(Magic)+4:])
	payload := data[HeaderSize:]
	switch {
	case length > uint64(len(payload)):
		return nil, &Error{Kind: ErrTruncated, Offset: -1, Msg: fmt.Sprintf("the header announces %d payload bytes, the file has %d", length, len(payload))}
	case length < uint64(len(payload)):
		return nil, &Error{Kind: ErrCorrupt, Offset: int64(HeaderSize) + int64(length), Msg: fmt.Sprintf("%d bytes after the %d-byte payload the header announces", uint64(len(payload))-length, length)}
	}
	want := binary.BigEndian.Uint32(data[len(Magic)+12:])
	if got := crc32.Checksum(payload, castagnoli()); got != want {
		return nil, &Error{Kind: ErrChecksum, Offset: -1, Msg: fmt.Sprintf("CRC-32C of the payload is %08x, the header says %08x", got, want)}
	}
	d := decoder{buf: payload, base: HeaderSize}
	return d.file(reuse, fn)
}

// decoder reads a payload. where names what is being read, for errors.
type decoder struct {
	buf   []byte
	pos   int
	base  int // offset of buf in the file
	where string
}

// failure is the error of a malformed payload at the current position.
func (d *decoder) failure(format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if d.where != "" {
		msg = d.where + ": " + msg
	}
	return &Error{Kind: ErrCorrupt, Offset: int64(d.base + d.pos), Msg: msg}
}

func (d *decoder) left() int { return len(d.buf) - d.pos }

func (d *decoder) uvarint(what string) (uint64, error) {
	v, n := binary.Uvarint(d.buf[d.pos:])
	return v, d.advance(what, n)
}

func (d *decoder) varint(what string) (int64, error) {
	v, n := binary.Varint(d.buf[d.pos:])
	return v, d.advance(what, n)
}

// advance moves past a number of n bytes, as binary.Uvarint and
// binary.Varint report it (0: the buffer ended, negative: an overflow).
func (d *decoder) advance(what string, n int) error {
	switch {
	case n == 0:
		return d.failure("%s: the payload ends inside a number", what)
	case n < 0:
		return d.failure("%s: number over 64 bits", what)
	}
	d.pos += n
	return nil
}

// int reads a uvarint that must fit an int64.
func (d *decoder) int(what string) (int64, error) {
	at := d.pos
	v, err := d.uvarint(what)
	if err == nil && v > math.MaxInt64 {
		d.pos = at
		return 0, d.failure("%s: %d is over 2^63-1", what, v)
	}
	return int64(v), err
}

// count reads a number of items of at least size bytes each, and checks
// that the bytes left can hold them.
func (d *decoder) count(what string, size int) (int, error) {
	at := d.pos
	v, err := d.uvarint(what)
	if err != nil {
		return 0, err
	}
	if left := d.left(); v > uint64(left/size) {
		d.pos = at
		return 0, d.failure("%d %s, more than the %d bytes left can hold", v, what, left)
	}
	return int(v), nil
}

func (d *decoder) string(what string, limit int) (string, error) {
	at := d.pos
	n, err := d.uvarint(what + " length")
	if err != nil {
		return "", err
	}
	if n > uint64(d.left()) || n > uint64(limit) {
		d.pos = at
		return "", d.failure("%s of %d bytes, more than the %d bytes left or the limit of %d", what, n, d.left(), limit)
	}
	s := string(d.buf[d.pos : d.pos+int(n)])
	if !utf8.ValidString(s) {
		return "", d.failure("%s %q is not UTF-8", what, s)
	}
	d.pos += int(n)
	return s, nil
}

func (d *decoder) float(what string) (float64, error) {
	if d.left() < 8 {
		return 0, d.failure("%s: the payload ends inside a float", what)
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(d.buf[d.pos:]))
	d.pos += 8
	return v, nil
}

func (d *decoder) duration(what string) (float64, error) {
	at := d.pos
	v, err := d.uvarint(what)
	switch {
	case err != nil:
		return 0, err
	case v&1 == 0:
		if v>>1 > 1<<53 {
			d.pos = at
			return 0, d.failure("%s: %d µs is not exact", what, v>>1)
		}
		return float64(v>>1) / 1000, nil
	case v != 1:
		d.pos = at
		return 0, d.failure("%s: marker %d, want 1", what, v)
	}
	return d.float(what)
}

func (d *decoder) file(reuse bool, fn func(*window.PrefixState) error) (*Meta, error) {
	f := &Meta{}
	writtenAt, err := d.varint("written at")
	if err != nil {
		return nil, err
	}
	f.WrittenAt = time.Unix(0, writtenAt)
	win, err := d.varint("window")
	if err != nil {
		return nil, err
	}
	f.Window = time.Duration(win)
	slots, err := d.int("slots")
	if err != nil {
		return nil, err
	}
	if cfg := (window.Config{Window: f.Window, Slots: int(min(slots, math.MaxInt32)), MaxPrefixes: 1}); slots > math.MaxInt32 || cfg.Validate() != nil {
		return nil, d.failure("window %s in %d slots is not a valid window", f.Window, slots)
	}
	f.Slots = int(slots)

	nc, err := d.count("counters", minCounterBytes)
	if err != nil {
		return nil, err
	}
	if nc > 0 {
		f.Counters = make([]Counter, nc)
	}
	seen := make(map[string]bool, nc)
	for i := range f.Counters {
		c := &f.Counters[i]
		if c.Name, err = d.string("counter name", maxCounterName); err != nil {
			return nil, err
		}
		if c.Name == "" || seen[c.Name] {
			return nil, d.failure("counter %d: name %q empty or repeated", i, c.Name)
		}
		seen[c.Name] = true
		if c.Value, err = d.int("counter " + c.Name); err != nil {
			return nil, err
		}
	}

	np, err := d.count("prefixes", minPrefixBytes)
	if err != nil {
		return nil, err
	}
	check, err := window.NewValidator(f.Slots)
	if err != nil {
		return nil, d.failure("%v", err)
	}
	var p window.PrefixState
	for i := range np {
		if !reuse {
			p = window.PrefixState{}
		}
		start := d.pos
		d.where = fmt.Sprintf("prefix %d", i)
		if err := d.prefix(&p, f.Slots); err != nil {
			return nil, err
		}
		if err := check.Check(&p); err != nil {
			d.pos, d.where = start, ""
			return nil, d.failure("inconsistent state: %v", err)
		}
		if err := fn(&p); err != nil {
			return nil, err
		}
	}
	d.where = ""
	if d.left() != 0 {
		return nil, d.failure("%d bytes after the last prefix", d.left())
	}
	return f, nil
}

func (d *decoder) prefix(p *window.PrefixState, maxSlots int) error {
	var err error
	if p.Name, err = d.string("name", d.left()); err != nil {
		return err
	}
	d.where = fmt.Sprintf("%s %q", d.where, p.Name)
	prefix := d.where
	if p.Since, err = d.varint("since"); err != nil {
		return err
	}
	if p.Started, err = d.int("started"); err != nil {
		return err
	}
	if p.Finished, err = d.int("finished"); err != nil {
		return err
	}
	for c := range p.Status {
		if p.Status[c], err = d.int("status class"); err != nil {
			return err
		}
	}
	ns, err := d.count("slots", minSlotBytes)
	if err != nil {
		return err
	}
	if ns > maxSlots {
		return d.failure("%d slots, the window has %d", ns, maxSlots)
	}
	p.Slots = grow(p.Slots, ns)
	for i := range p.Slots {
		d.where = fmt.Sprintf("%s: slot %d", prefix, i)
		if err := d.slot(p.Slots, i); err != nil {
			return err
		}
	}
	d.where = prefix
	nr, err := d.count("raw durations", minRawBytes)
	if err != nil {
		return err
	}
	p.Raw = grow(p.Raw, nr)
	pos := uint64(0)
	for i := range p.Raw {
		step, err := d.uvarint("raw duration slot")
		if err != nil {
			return err
		}
		if step >= uint64(ns)-pos { // pos < ns once there is a slot
			return d.failure("raw duration %d: slot position %d+%d, the prefix has %d slots", i, pos, step, ns)
		}
		pos += step
		p.Raw[i].Slot = p.Slots[pos].Index
		if p.Raw[i].MS, err = d.duration("raw duration"); err != nil {
			return err
		}
	}
	return nil
}

// grow returns s with length n, reusing its memory (its elements' too) when
// it can; nil if s is nil and n is 0.
func grow[T any](s []T, n int) []T {
	return slices.Grow(s[:0], n)[:n]
}

func (d *decoder) slot(slots []window.SlotState, i int) error {
	s := &slots[i]
	gap, err := d.int("index")
	if err != nil {
		return err
	}
	if i == 0 {
		s.Index = gap
	} else {
		prev := slots[i-1].Index
		if gap > math.MaxInt64-1-prev {
			return d.failure("index %d after %d overflows", gap, prev)
		}
		s.Index = prev + 1 + gap
	}
	d.where += fmt.Sprintf(" (index %d)", s.Index)
	if s.Count, err = d.int("durations"); err != nil {
		return err
	}
	if s.Min, err = d.duration("min"); err != nil {
		return err
	}
	if s.Max, err = d.duration("max"); err != nil {
		return err
	}
	if s.Mean, err = d.float("mean"); err != nil {
		return err
	}
	if s.M2, err = d.float("m2"); err != nil {
		return err
	}
	nb, err := d.count("bins", minBinBytes)
	if err != nil {
		return err
	}
	if nb > window.NumBins {
		return d.failure("%d bins, there are %d", nb, window.NumBins)
	}
	s.Bins = grow(s.Bins, nb)
	for j := range s.Bins {
		b, err := d.uvarint("bin")
		if err != nil {
			return err
		}
		if j > 0 {
			if b >= window.NumBins { // a gap that large would overflow
				return d.failure("bin number beyond %d (entry %d) out of range [0, %d)", b, j, window.NumBins)
			}
			b += uint64(s.Bins[j-1].Bin) + 1
		}
		if b >= window.NumBins {
			return d.failure("bin number %d (entry %d) out of range [0, %d)", b, j, window.NumBins)
		}
		s.Bins[j].Bin = int(b)
		if s.Bins[j].Count, err = d.uvarint("bin count"); err != nil {
			return err
		}
	}
	return nil
}
