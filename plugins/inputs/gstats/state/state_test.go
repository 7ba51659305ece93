package state

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gstats/gstats/plugins/inputs/gstats/window"
)

var testBase = time.Unix(1_700_000_000, 0)

// sampleFile builds the state of a window after random traffic: prefixes
// with durations of three decimals (as clients send them) and others with
// any float, starts without finishes, zeros.
func sampleFile(tb testing.TB, seed uint64, prefixes int) *File {
	tb.Helper()
	cfg := window.Config{Window: 60 * time.Second, Slots: 12, Percentiles: []float64{50}, MaxPrefixes: prefixes, MaxRaw: 50}
	w, err := window.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 99))
	at := testBase
	for range 2000 {
		at = at.Add(time.Duration(rng.Int64N(int64(100 * time.Millisecond))))
		name := fmt.Sprintf("app-%d", rng.IntN(prefixes))
		if rng.IntN(4) == 0 {
			if err := w.Start(name, at); err != nil {
				tb.Fatal(err)
			}
			continue
		}
		ms := math.Exp(rng.NormFloat64() + 3)
		switch rng.IntN(4) {
		case 0:
			ms = 0
		case 1, 2:
			ms = math.Round(ms*1000) / 1000
		}
		if err := w.Finish(name, ms, []int{0, 200, 302, 404, 500}[rng.IntN(5)], at); err != nil {
			tb.Fatal(err)
		}
	}
	f := &File{Meta: Meta{
		WrittenAt: time.Unix(0, at.UnixNano()),
		Window:    cfg.Window,
		Slots:     cfg.Slots,
		Counters:  []Counter{{"accepted", 2000}, {"rejected_bad_duration", 3}, {"command_STATS", 0}},
	}}
	for _, name := range w.Prefixes() {
		var ps window.PrefixState
		w.Export(name, at, &ps)
		f.Prefixes = append(f.Prefixes, ps)
	}
	return f
}

// normalize gives decoded and original files the same empty slices.
func normalize(f *File) {
	for i := range f.Prefixes {
		p := &f.Prefixes[i]
		if len(p.Slots) == 0 {
			p.Slots = nil
		}
		if len(p.Raw) == 0 {
			p.Raw = nil
		}
		for j := range p.Slots {
			if len(p.Slots[j].Bins) == 0 {
				p.Slots[j].Bins = nil
			}
		}
	}
	if len(f.Counters) == 0 {
		f.Counters = nil
	}
}

func sameFile(t *testing.T, got, want *File) {
	t.Helper()
	normalize(got)
	normalize(want)
	if !got.WrittenAt.Equal(want.WrittenAt) {
		t.Errorf("written at %v, want %v", got.WrittenAt, want.WrittenAt)
	}
	g, w := *got, *want
	g.WrittenAt, w.WrittenAt = time.Time{}, time.Time{}
	if !reflect.DeepEqual(&g, &w) {
		t.Errorf("decoded file differs:\n got %+v\nwant %+v", got, want)
	}
}

func TestRoundTrip(t *testing.T) {
	for seed := range uint64(10) {
		f := sampleFile(t, seed, 1+int(seed)*3)
		data := Encode(f)
		got, err := Decode(data)
		if err != nil {
			t.Fatalf("seed %d: Decode: %v", seed, err)
		}
		sameFile(t, got, f)

		// The encoder, reused, writes the same bytes through WriteTo.
		var e Encoder
		e.Add(&f.Prefixes[0]) // left over from a previous file
		e.Reset()
		for i := range f.Prefixes {
			e.Add(&f.Prefixes[i])
		}
		var buf bytes.Buffer
		n, err := e.WriteTo(&buf, &f.Meta)
		if err != nil || n != int64(len(data)) || !bytes.Equal(buf.Bytes(), data) {
			t.Fatalf("seed %d: WriteTo wrote %d bytes (%v), differing from Encode's %d", seed, n, err, len(data))
		}
		if e.Prefixes() != len(f.Prefixes) {
			t.Errorf("Prefixes() = %d, want %d", e.Prefixes(), len(f.Prefixes))
		}
	}
	// An empty state.
	empty := &File{Meta: Meta{WrittenAt: testBase, Window: time.Minute, Slots: 6}}
	got, err := Decode(Encode(empty))
	if err != nil {
		t.Fatal(err)
	}
	sameFile(t, got, empty)
}

func TestDurationEncoding(t *testing.T) {
	cases := []struct {
		ms   float64
		size int // encoded bytes
	}{
		{0, 1}, {0.001, 1}, {0.063, 1}, {12.5, 3}, {153, 3}, {1234.567, 4}, {86_400_000, 6},
		{math.Exp(3), 9}, {1e-9, 9}, {1e300, 9}, {math.Copysign(0, -1), 9}, {maxExactMS, 8}, {math.Nextafter(maxExactMS, math.Inf(1)), 9},
	}
	for _, c := range cases {
		b := appendDuration(nil, c.ms)
		d := decoder{buf: b}
		got, err := d.duration("d")
		if err != nil || math.Float64bits(got) != math.Float64bits(c.ms) || d.left() != 0 {
			t.Errorf("%v: decoded %v, %v (%d bytes left)", c.ms, got, err, d.left())
		}
		if len(b) != c.size {
			t.Errorf("%v: %d bytes, want %d", c.ms, len(b), c.size)
		}
	}
	// Every value with three decimals takes the short form.
	rng := rand.New(rand.NewPCG(3, 4))
	for range 10000 {
		k := rng.Uint64N(1 << 40)
		ms := float64(k) / 1000
		if b := appendDuration(nil, ms); b[0]&1 != 0 {
			t.Fatalf("%v takes the long form", ms)
		}
	}
}

// rewrite returns a valid file whose payload is edit(payload), with the
// header's length and checksum fixed.
func rewrite(data []byte, edit func(payload []byte) []byte) []byte {
	payload := edit(append([]byte(nil), data[HeaderSize:]...))
	out := append([]byte(nil), data[:HeaderSize]...)
	binary.BigEndian.PutUint64(out[len(Magic)+4:], uint64(len(payload)))
	binary.BigEndian.PutUint32(out[len(Magic)+12:], crc32.Checksum(payload, crc32.MakeTable(crc32.Castagnoli)))
	return append(out, payload...)
}

// encodeWith encodes a one-prefix file after edit changed the prefix (the
// encoder does not validate).
func encodeWith(t *testing.T, edit func(*window.PrefixState)) []byte {
	t.Helper()
	f := sampleFile(t, 1, 1)
	if len(f.Prefixes[0].Slots) < 2 || len(f.Prefixes[0].Raw) < 2 {
		t.Fatalf("sample prefix too small: %+v", f.Prefixes[0])
	}
	edit(&f.Prefixes[0])
	return Encode(f)
}

func TestDecodeErrors(t *testing.T) {
	valid := Encode(sampleFile(t, 1, 3))
	cases := []struct {
		name string
		data []byte
		kind error
		want string
	}{
		{"empty", nil, ErrForeign, `it starts with "", not "gstats-state\n"`},
		{"JSON", []byte(`{"app": {"started": 1}}`), ErrForeign, `it starts with "{\"app\": {\"sta"`},
		{"other magic", append([]byte("gstats-statX\n"), valid[len(Magic):]...), ErrForeign, "not a gstats state file"},
		{"short header", valid[:HeaderSize-1], ErrTruncated, "shorter than the 29-byte header"},
		{"version 2", func() []byte {
			b := bytes.Clone(valid)
			binary.BigEndian.PutUint32(b[len(Magic):], 2)
			return b
		}(), ErrVersion, "format version 2; this build reads version 1"},
		{"truncated", valid[:len(valid)-10], ErrTruncated, fmt.Sprintf("the header announces %d payload bytes, the file has %d", len(valid)-HeaderSize, len(valid)-HeaderSize-10)},
		{"trailing bytes", append(bytes.Clone(valid), 0, 0), ErrCorrupt, fmt.Sprintf("at byte %d: 2 bytes after the", len(valid))},
		{"flipped bit", func() []byte {
			b := bytes.Clone(valid)
			b[len(b)/2] ^= 4
			return b
		}(), ErrChecksum, "CRC-32C of the payload is"},
		{"flipped checksum", func() []byte {
			b := bytes.Clone(valid)
			b[HeaderSize-1] ^= 1
			return b
		}(), ErrChecksum, "the header says"},
		{"payload cut, checksum fixed", rewrite(valid, func(p []byte) []byte { return p[:len(p)-5] }), ErrCorrupt, "prefix 2"},
		{"payload extended, checksum fixed", rewrite(valid, func(p []byte) []byte { return append(p, 7) }), ErrCorrupt, "1 bytes after the last prefix"},
		{"invalid window", rewrite(valid, func(p []byte) []byte {
			_, n := binary.Varint(p)
			return append(append(p[:n:n], 0), p[n+binary.PutVarint(make([]byte, 10), int64(60*time.Second)):]...)
		}), ErrCorrupt, "window 0s in 12 slots is not a valid window"},
		{"huge prefix count", func() []byte {
			f := sampleFile(t, 1, 1)
			f.Prefixes = nil
			b := Encode(f)
			return rewrite(b, func(p []byte) []byte { return binary.AppendUvarint(p[:len(p)-1], 1<<60) })
		}(), ErrCorrupt, "1152921504606846976 prefixes, more than the 0 bytes left can hold"},
		{"bin out of range", encodeWith(t, func(p *window.PrefixState) { p.Slots[1].Bins[0].Bin = 5000 }), ErrCorrupt, `prefix 0 "app-0": slot 1 (index `},
		{"bin out of range, message", encodeWith(t, func(p *window.PrefixState) { p.Slots[1].Bins[0].Bin = 5000 }), ErrCorrupt, `: bin number 5000 (entry 0) out of range [0, 2048)`},
		{"bins not increasing", encodeWith(t, func(p *window.PrefixState) {
			b := p.Slots[0].Bins
			b[len(b)-1].Bin = b[0].Bin
		}), ErrCorrupt, "out of range"},
		{"negative started", encodeWith(t, func(p *window.PrefixState) { p.Started = -1 }), ErrCorrupt, `prefix 0 "app-0": started: 18446744073709551615 is over 2^63-1`},
		{"raw in no slot", encodeWith(t, func(p *window.PrefixState) { p.Raw[0].Slot = p.Slots[len(p.Slots)-1].Index + 1 }), ErrCorrupt, "raw duration 0: slot position"},
		{"inconsistent counts", encodeWith(t, func(p *window.PrefixState) { p.Finished++ }), ErrCorrupt, `inconsistent state: prefix "app-0": the status classes count`},
		{"inconsistent moments", encodeWith(t, func(p *window.PrefixState) { p.Slots[1].Min = p.Slots[1].Max + 1 }), ErrCorrupt, `inconsistent state: prefix "app-0": slot `},
		{"NaN mean", encodeWith(t, func(p *window.PrefixState) { p.Slots[0].Mean = math.NaN() }), ErrCorrupt, "non-finite moments"},
		{"empty name", encodeWith(t, func(p *window.PrefixState) { p.Name = "" }), ErrCorrupt, `prefix "": empty name`},
		{"name not UTF-8", encodeWith(t, func(p *window.PrefixState) { p.Name = "a\xffb" }), ErrCorrupt, `prefix 0: name "a\xffb" is not UTF-8`},
		{"repeated counter", func() []byte {
			f := sampleFile(t, 1, 1)
			f.Counters = []Counter{{"accepted", 1}, {"accepted", 2}}
			return Encode(f)
		}(), ErrCorrupt, `counter 1: name "accepted" empty or repeated`},
		{"duplicate prefix", func() []byte {
			f := sampleFile(t, 1, 1)
			f.Prefixes = append(f.Prefixes, f.Prefixes[0])
			return Encode(f)
		}(), ErrCorrupt, `prefix "app-0" appears twice`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Decode(tc.data)
			if err == nil {
				t.Fatalf("Decode succeeded: %+v", f)
			}
			if !errors.Is(err, tc.kind) {
				t.Errorf("error %q is not %v", err, tc.kind)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Errorf("error %q is not a *state.Error", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

// TestDecodeEveryCut decodes every prefix of a valid file, as is (the
// header then says more than there is) and with the header fixed (the
// payload then ends anywhere): always an error, never a panic.
func TestDecodeEveryCut(t *testing.T) {
	valid := Encode(sampleFile(t, 2, 4))
	for n := range len(valid) {
		if _, err := Decode(valid[:n]); err == nil {
			t.Fatalf("a file cut at %d of %d bytes decoded", n, len(valid))
		}
		if n < HeaderSize {
			continue
		}
		cut := rewrite(valid, func(p []byte) []byte { return p[:n-HeaderSize] })
		if _, err := Decode(cut); err == nil || !errors.Is(err, ErrCorrupt) {
			t.Fatalf("a payload cut at %d decoded or gave %v, want ErrCorrupt", n-HeaderSize, err)
		}
	}
}

// TestDecodeAllocatesInProportion decodes small files that announce huge
// counts at each level (prefixes, slots, bins, raw durations, a name): the
// memory Decode allocates stays within a small multiple of the input.
func TestDecodeAllocatesInProportion(t *testing.T) {
	valid := sampleFile(t, 3, 1)
	inputs := map[string][]byte{}
	huge := func(name string, edit func(*window.PrefixState) []byte) {
		inputs[name] = nil
		p := valid.Prefixes[0]
		inputs[name] = edit(&p)
	}
	var e Encoder
	encodePrefix := func(p *window.PrefixState) []byte {
		e.Reset()
		e.Add(p)
		return e.Append(nil, &valid.Meta)
	}
	huge("prefixes", func(*window.PrefixState) []byte {
		f := *valid
		f.Prefixes = nil
		return rewrite(Encode(&f), func(p []byte) []byte { return append(binary.AppendUvarint(p[:len(p)-1], 1<<40), make([]byte, 64)...) })
	})
	huge("name", func(p *window.PrefixState) []byte {
		p.Name = strings.Repeat("x", 100)
		b := encodePrefix(p)
		i := bytes.Index(b, []byte{100, 'x'})
		return rewrite(b, func(pl []byte) []byte {
			j := i - HeaderSize
			return append(append(pl[:j:j], binary.AppendUvarint(nil, 1<<50)...), pl[j+1:]...)
		})
	})
	huge("slots", func(p *window.PrefixState) []byte {
		p.Slots, p.Raw = nil, nil
		b := encodePrefix(p)
		// The slot count is the second-to-last byte: then the raw count.
		return rewrite(b, func(pl []byte) []byte {
			return append(append(pl[:len(pl)-2:len(pl)-2], binary.AppendUvarint(nil, 1<<40)...), make([]byte, 64)...)
		})
	})
	for name, in := range inputs {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		_, err := Decode(in)
		runtime.ReadMemStats(&after)
		if err == nil || !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: Decode = %v, want ErrCorrupt", name, err)
		}
		t.Logf("%s: %d bytes in, %d allocated: %v", name, len(in), after.TotalAlloc-before.TotalAlloc, err)
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<10+20*uint64(len(in)) {
			t.Errorf("%s: Decode of %d bytes allocated %d bytes", name, len(in), alloc)
		}
	}
}

func TestImportDecoded(t *testing.T) {
	// What Decode accepts, Import takes.
	f := sampleFile(t, 4, 5)
	got, err := Decode(Encode(f))
	if err != nil {
		t.Fatal(err)
	}
	w, err := window.New(window.Config{Window: got.Window, Slots: got.Slots, MaxPrefixes: 5, MaxRaw: 50})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := w.Import(got.Prefixes, got.WrittenAt)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Prefixes != len(f.Prefixes) || rep.Slots == 0 || rep.Raw == 0 {
		t.Errorf("report %+v", rep)
	}
}
