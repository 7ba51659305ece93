package wire_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gstats/gstats/wire"
)

// fuzzLimits are small enough for the fuzzer to cross them.
var fuzzLimits = wire.Limits{MaxPrefixLength: 32, MaxDuration: 86_400_000}

// plainDuration reports whether b is what the original client sends: one
// to fifteen ASCII digits (the original formats milliseconds with %i).
func plainDuration(b []byte) bool {
	if len(b) == 0 || len(b) > 15 {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// FuzzParseMessage feeds ParseMessage 0 to 4 arbitrary frames: n%5 of
// prefix, duration, status and extra, in that order.
func FuzzParseMessage(f *testing.F) {
	// The PROTOCOL.md examples, then the optional status frame.
	f.Add([]byte("my_app"), []byte(""), []byte(""), []byte(""), uint8(2))
	f.Add([]byte(""), []byte(""), []byte(""), []byte(""), uint8(2))
	f.Add([]byte("my_app"), []byte("0"), []byte(""), []byte(""), uint8(2))
	f.Add([]byte("my_app"), []byte("153"), []byte(""), []byte(""), uint8(2))
	f.Add([]byte("my_app"), []byte("12.5"), []byte(""), []byte(""), uint8(2))
	f.Add([]byte("my_app"), []byte("153"), []byte("200"), []byte(""), uint8(3))
	f.Add([]byte("my_app"), []byte(""), []byte("200"), []byte(""), uint8(3))
	f.Add([]byte("my_app"), []byte("153"), []byte("200"), []byte("x"), uint8(4))
	f.Add([]byte("\xff"), []byte("-0"), []byte(""), []byte(""), uint8(2))
	f.Add([]byte("my_app"), []byte("1e400"), []byte(""), []byte(""), uint8(2))
	f.Add([]byte("my_app"), []byte(" 0x1p4 "), []byte(""), []byte(""), uint8(2))
	f.Fuzz(func(t *testing.T, prefix, duration, status, extra []byte, n uint8) {
		fr := [][]byte{prefix, duration, status, extra}[:n%5]
		m, err := wire.ParseMessage(fr, fuzzLimits)
		if err != nil {
			var rej *wire.RejectError
			if !errors.As(err, &rej) {
				t.Fatalf("ParseMessage(%q): error %v is not a *RejectError", fr, err)
			}
			if !slices.Contains(wire.AllReasons(), rej.Reason) {
				t.Fatalf("ParseMessage(%q): reason %q is not in wire.AllReasons()", fr, rej.Reason)
			}
			if len(fr) == 2 && len(prefix) <= fuzzLimits.MaxPrefixLength && utf8.Valid(prefix) && plainDuration(duration) {
				if d, _ := strconv.ParseFloat(string(duration), 64); d <= fuzzLimits.MaxDuration {
					t.Fatalf("ParseMessage(%q) refused a message the original client sends: %v", fr, err)
				}
			}
			return
		}
		if len(fr) != 2 && len(fr) != 3 {
			t.Fatalf("ParseMessage accepted %d frames", len(fr))
		}
		wantPrefix := prefix
		if len(prefix) == 0 {
			wantPrefix = []byte(wire.DefaultPrefix)
		}
		if !bytes.Equal(m.Prefix, wantPrefix) {
			t.Fatalf("ParseMessage(%q): prefix %q, want %q", fr, m.Prefix, wantPrefix)
		}
		if len(prefix) > fuzzLimits.MaxPrefixLength || !utf8.Valid(m.Prefix) {
			t.Fatalf("ParseMessage(%q) accepted prefix %q over the limit or not UTF-8", fr, m.Prefix)
		}
		if (m.Kind == wire.Start) != (len(duration) == 0) {
			t.Fatalf("ParseMessage(%q): kind %d, but the duration frame is %q", fr, m.Kind, duration)
		}
		switch m.Kind {
		case wire.Start:
			if len(fr) != 2 || m.Duration != 0 || m.Status != 0 {
				t.Fatalf("ParseMessage(%q): start message %+v", fr, m)
			}
		case wire.Finish:
			d := m.Duration
			if math.IsNaN(d) || math.IsInf(d, 0) || d < 0 || math.Signbit(d) || d > fuzzLimits.MaxDuration {
				t.Fatalf("ParseMessage(%q): duration %v outside [0, %v]", fr, d, fuzzLimits.MaxDuration)
			}
			if bytes.ContainsAny(duration, "xX") {
				t.Fatalf("ParseMessage(%q) accepted a hexadecimal duration", fr)
			}
			if (len(fr) == 2) != (m.Status == 0) || (m.Status != 0 && (m.Status < 100 || m.Status > 599)) {
				t.Fatalf("ParseMessage(%q): status %d", fr, m.Status)
			}
		default:
			t.Fatalf("ParseMessage(%q): kind %d", fr, m.Kind)
		}
	})
}

// FuzzParseCommand feeds ParseCommand n%3 frames: none, first, or first
// and second.
func FuzzParseCommand(f *testing.F) {
	for _, c := range wire.AllCommands() {
		f.Add([]byte(c), []byte(""), uint8(1))
	}
	f.Add([]byte("stats"), []byte(""), uint8(1))
	f.Add([]byte("STATS"), []byte("STATS"), uint8(2))
	f.Add([]byte(""), []byte(""), uint8(0))
	f.Add([]byte("\xffSTATS"), []byte(""), uint8(1))
	f.Fuzz(func(t *testing.T, first, second []byte, n uint8) {
		fr := [][]byte{first, second}[:n%3]
		c, err := wire.ParseCommand(fr)
		want := len(fr) == 1 && slices.Contains(wire.AllCommands(), wire.Command(first))
		switch {
		case want && (err != nil || string(c) != string(first)):
			t.Fatalf("ParseCommand(%q) = %q, %v; want %q", fr, c, err, first)
		case !want && err == nil:
			t.Fatalf("ParseCommand(%q) = %q, want an error", fr, c)
		case !want && c != "":
			t.Fatalf("ParseCommand(%q) returned %q with error %v", fr, c, err)
		case !want && (len(err.Error()) > 200 || !utf8.ValidString(err.Error())):
			t.Fatalf("ParseCommand(%q): error %q is long or not UTF-8", fr, err)
		}
	})
}

// FuzzFormatFloat checks that FormatFloat reads back exactly, always looks
// like a float, and is a JSON number.
func FuzzFormatFloat(f *testing.F) {
	for _, x := range []float64{0, 153.2, 12.5, 12, 1e-05, 1.5e-05, 1e16, 9999999999999998, math.MaxFloat64, 5e-324, -1} {
		f.Add(x)
	}
	f.Fuzz(func(t *testing.T, x float64) {
		s := wire.FormatFloat(x)
		if got := string(wire.AppendFloat([]byte("{"), x)); got != "{"+s {
			t.Fatalf("AppendFloat(\"{\", %v) = %q, want %q", x, got, "{"+s)
		}
		if math.IsNaN(x) || math.IsInf(x, 0) {
			if s != "0.0" {
				t.Fatalf("FormatFloat(%v) = %q, want \"0.0\"", x, s)
			}
			return
		}
		back, err := strconv.ParseFloat(s, 64)
		if err != nil || math.Float64bits(back) != math.Float64bits(x) {
			t.Fatalf("FormatFloat(%b) = %q reads back as %b, %v", x, s, back, err)
		}
		if !strings.ContainsAny(s, ".e") {
			t.Fatalf("FormatFloat(%v) = %q has neither '.' nor 'e'", x, s)
		}
		if !json.Valid([]byte(s)) {
			t.Fatalf("FormatFloat(%v) = %q is not a JSON number", x, s)
		}
		exp := x != 0 && (math.Abs(x) < 1e-4 || math.Abs(x) >= 1e16)
		if strings.Contains(s, "e") != exp {
			t.Fatalf("FormatFloat(%v) = %q: exponent form should be used iff 0 < |x| < 1e-4 or |x| >= 1e16", x, s)
		}
	})
}

// FuzzProcessingTimeJSON decodes arbitrary JSON as a processing_time
// object and as a whole STATS reply. Decoding never panics, and what
// decodes re-encodes to JSON that decodes to the same value.
func FuzzProcessingTimeJSON(f *testing.F) {
	f.Add([]byte(`{"avg": 153.2, "std": 20.1}`))
	f.Add([]byte(`{"avg":153.2,"std":20.1,"count":7,"min":0.0,"max":400.0,"p50":150.0,"p99.9":300.5}`))
	f.Add([]byte(`{"p50": 1, "p050": 2, "p5e1": 3, "pNaN": 4, "p": 5, "p-1": 6}`))
	f.Add([]byte(`{"avg": null, "count": 1.5}`))
	f.Add([]byte(`{"my_app": {"started": 1234, "finished": 1200, "processing_time": {"avg": 153.2, "std": 20.1}}}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var pt wire.ProcessingTime
		if err := json.Unmarshal(data, &pt); err == nil {
			b, err := json.Marshal(pt)
			if err != nil {
				t.Fatalf("Marshal(%+v): %v", pt, err)
			}
			var back wire.ProcessingTime
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatalf("re-encoded %s does not decode: %v", b, err)
			}
			if !reflect.DeepEqual(back, pt) {
				t.Fatalf("%s decodes as %+v, re-encoded as %s, decodes as %+v", data, pt, b, back)
			}
			for i, p := range pt.Percentiles {
				if !(p.P > 0 && p.P <= 100) || (i > 0 && pt.Percentiles[i-1].P >= p.P) {
					t.Fatalf("%s: percentiles %+v are not distinct, sorted and in (0, 100]", data, pt.Percentiles)
				}
			}
		}
		var sr wire.StatsReply
		if err := json.Unmarshal(data, &sr); err == nil {
			if _, err := json.Marshal(sr); err != nil {
				t.Fatalf("Marshal(%+v): %v", sr, err)
			}
		}
	})
}

// FuzzParseBatch checks that a packed frame never panics, that every event
// is reported once, that each event parsed from the packed form equals
// what its classic frames give, and that a drop count is only reported
// from a valid header, which reads back as AppendBatchHeader writes it.
func FuzzParseBatch(f *testing.F) {
	f.Add([]byte(wire.BatchHeader + "shop\t\nshop\t12.5\t200\n"))
	f.Add([]byte(wire.BatchHeader + "\t1\nnotab\n\n\t\t\t\n"))
	f.Add([]byte(wire.BatchHeader + "a\t1e400\t200\na\t-0\n"))
	f.Add([]byte("gstats-batch/1"))
	f.Add([]byte("gstats-batch/1 dropped=42\nshop\t1\t200\n"))
	f.Add([]byte("gstats-batch/1 dropped=9007199254740991\n"))
	f.Add([]byte("gstats-batch/1 dropped=9007199254740992\nshop\t\n"))
	f.Add([]byte("gstats-batch/1 dropped=-1\nshop\t\n"))
	f.Add([]byte("gstats-batch/1 dropped=007\n"))
	f.Add([]byte("gstats-batch/1 foo\nshop\t\n"))
	f.Add([]byte("gstats-batch/2\nshop\t\n"))
	f.Fuzz(func(t *testing.T, frame []byte) {
		var events, rejected int
		n, dropped := wire.ParseBatch(frame, fuzzLimits, func(m wire.Message, err error) {
			events++
			if err != nil {
				rejected++
				var rej *wire.RejectError
				if !errors.As(err, &rej) || !slices.Contains(wire.AllReasons(), rej.Reason) {
					t.Fatalf("event error %v is not a known *RejectError", err)
				}
				return
			}
			var frames [][]byte
			if m.Kind == wire.Start {
				frames = [][]byte{m.Prefix, nil}
			} else {
				frames = [][]byte{m.Prefix, []byte(wire.FormatFloat(m.Duration))}
				if m.Status != 0 {
					frames = append(frames, []byte(strconv.Itoa(m.Status)))
				}
			}
			again, err := wire.ParseMessage(frames, fuzzLimits)
			if err != nil || !bytes.Equal(again.Prefix, m.Prefix) || again.Kind != m.Kind || again.Duration != m.Duration || again.Status != m.Status {
				t.Fatalf("event %+v does not round-trip through classic frames: %+v, %v", m, again, err)
			}
		})
		if n != events {
			t.Fatalf("ParseBatch returned %d but reported %d events", n, events)
		}
		if dropped < 0 || dropped > wire.MaxBatchDropped {
			t.Fatalf("ParseBatch(%q) reported %d dropped", frame, dropped)
		}
		header, _, _ := bytes.Cut(frame, []byte("\n"))
		if dropped > 0 {
			if want := wire.AppendBatchHeader(nil, uint64(dropped)); !bytes.HasPrefix(frame, want) {
				t.Fatalf("ParseBatch(%q) reported %d dropped, but the header is not %q", frame, dropped, want)
			}
		} else if !bytes.HasPrefix(frame, []byte(wire.BatchHeader)) && (events != 1 || rejected != 1) {
			t.Fatalf("ParseBatch(%q): header %q is not valid, but %d events (%d rejected) were reported", frame, header, events, rejected)
		}
	})
}
