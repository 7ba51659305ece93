package state

import (
	"bytes"
	"errors"
	"testing"

	"github.com/gstats/gstats/plugins/inputs/gstats/window"
)

// FuzzDecode feeds Decode arbitrary files, seeded with real states and
// damaged ones (testdata/fuzz/FuzzDecode holds more). Decode must never
// panic; what it accepts must encode back to a file that decodes to the same
// state, and import into a window of its configuration; what it refuses
// must be a *Error of a known kind.
func FuzzDecode(f *testing.F) {
	for seed := range uint64(3) {
		valid := Encode(sampleFile(f, seed, 1+int(seed)))
		f.Add(valid)
		f.Add(valid[:len(valid)/2])
		f.Add(rewrite(valid, func(p []byte) []byte { return p[:len(p)-3] }))
	}
	f.Add([]byte(Magic))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Decode(data)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v is not a *state.Error", err)
			}
			known := false
			for _, kind := range []error{ErrForeign, ErrVersion, ErrTruncated, ErrChecksum, ErrCorrupt} {
				known = known || errors.Is(err, kind)
			}
			if !known {
				t.Fatalf("error %v of no known kind", err)
			}
			return
		}
		again := Encode(file)
		back, err := Decode(again)
		if err != nil {
			t.Fatalf("re-encoded state does not decode: %v", err)
		}
		if !bytes.Equal(Encode(back), again) {
			t.Fatal("decoding and encoding again changes the file")
		}
		if file.Slots*len(file.Prefixes) > 100_000 {
			// Each prefix with a slot takes the memory of every slot of the
			// window: the collector bounds that with its own configuration
			// (max_prefixes, window_slots), and a file of another window
			// gives it the counters only.
			return
		}
		w, err := window.New(window.Config{Window: file.Window, Slots: file.Slots, MaxPrefixes: max(1, len(file.Prefixes)), MaxRaw: 10})
		if err != nil {
			t.Fatalf("the file's window %s in %d slots: %v", file.Window, file.Slots, err)
		}
		if _, err := w.Import(file.Prefixes, file.WrittenAt); err != nil {
			t.Fatalf("a decoded state does not import: %v", err)
		}
	})
}
