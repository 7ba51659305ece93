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
			b, err := json.Marshal(sr)
			if err != nil {
				t.Fatalf("Marshal(%+v): %v", sr, err)
			}
			var back wire.StatsReply
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatalf("re-encoded %s does not decode: %v", b, err)
			}
			if !reflect.DeepEqual(back, sr) {
				t.Fatalf("%s decodes as %+v, re-encoded as %s, decodes as %+v", data, sr, b, back)
			}
			if again, _ := json.Marshal(back); !bytes.Equal(again, b) {
				t.Fatalf("%s re-encodes as %s, then as %s", data, b, again)
			}
		}
	})
}

// finite is what a non-finite Float is written as: AppendFloat writes NaN
// and ±Inf as 0.0.
func finite(x float64) wire.Float {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return 0
	}
	return wire.Float(x)
}

// FuzzStatsReplyRoundTrip builds a STATS reply of two prefixes from
// arbitrary values and checks that it encodes to JSON that decodes to the
// same reply (non-finite floats as 0.0), byte for byte the same when
// encoded again. Percentiles are those a collector can be configured
// with: in (0, 100], distinct, sorted.
func FuzzStatsReplyRoundTrip(f *testing.F) {
	f.Add("my_app", "default", int64(1234), int64(1200), int64(34), 2.5, 153.2, 20.1, int64(7), 0.0, 400.0, 50.0, 150.0, 99.9, 300.5, int64(3), int64(1000), int64(5))
	f.Add("", "\u00e9\"\\<>&\u2028", int64(0), int64(0), int64(0), math.NaN(), math.Inf(1), math.Copysign(0, -1), int64(0), 5e-324, math.MaxFloat64, 1e-300, 1e16, 100.0, 1e-05, int64(-1), int64(math.MaxInt64), int64(math.MinInt64))
	f.Fuzz(func(t *testing.T, prefix1, prefix2 string, started, finished, inFlight int64, rate, avg, std float64, count int64,
		lo, hi, p1, v1, p2, v2 float64, s2xx, s5xx, none int64) {
		if !utf8.ValidString(prefix1) || !utf8.ValidString(prefix2) {
			return // prefixes are UTF-8: ParseMessage refuses others
		}
		var pcts []wire.Percentile
		for _, p := range [][2]float64{{p1, v1}, {p2, v2}} {
			if p[0] > 0 && p[0] <= 100 && (len(pcts) == 0 || pcts[len(pcts)-1].P < p[0]) {
				pcts = append(pcts, wire.Percentile{P: p[0], Value: wire.Float(p[1])})
			}
		}
		sr := wire.StatsReply{
			prefix1: {
				Started: started, Finished: finished, InFlight: inFlight, Rate: wire.Float(rate),
				ProcessingTime: wire.ProcessingTime{Avg: wire.Float(avg), Std: wire.Float(std), Count: count, Min: wire.Float(lo), Max: wire.Float(hi), Percentiles: pcts},
				Status:         wire.StatusCounts{S1xx: started, S2xx: s2xx, S3xx: finished, S4xx: inFlight, S5xx: s5xx, None: none},
			},
			prefix2: {Started: finished, Finished: started},
		}
		want := wire.StatsReply{}
		for k, ps := range sr {
			ps.Rate = finite(float64(ps.Rate))
			pt := &ps.ProcessingTime
			pt.Avg, pt.Std, pt.Min, pt.Max = finite(float64(pt.Avg)), finite(float64(pt.Std)), finite(float64(pt.Min)), finite(float64(pt.Max))
			pt.Percentiles = slices.Clone(pt.Percentiles)
			for i := range pt.Percentiles {
				pt.Percentiles[i].Value = finite(float64(pt.Percentiles[i].Value))
			}
			want[k] = ps
		}
		b, err := json.Marshal(sr)
		if err != nil {
			t.Fatalf("Marshal(%+v): %v", sr, err)
		}
		var back wire.StatsReply
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("%s does not decode: %v", b, err)
		}
		if !reflect.DeepEqual(back, want) {
			t.Fatalf("%+v encodes as %s, which decodes as %+v", want, b, back)
		}
		for k, ps := range back {
			for i, p := range ps.ProcessingTime.Percentiles {
				if math.Float64bits(p.P) != math.Float64bits(want[k].ProcessingTime.Percentiles[i].P) {
					t.Fatalf("percentile %v reads back as %v", want[k].ProcessingTime.Percentiles[i].P, p.P)
				}
			}
		}
		if again, _ := json.Marshal(back); !bytes.Equal(again, b) {
			t.Fatalf("%+v encodes as %s, then as %s", sr, b, again)
		}
	})
}

// batchEvent is one event ParseBatch reported.
type batchEvent struct {
	m   wire.Message
	err error
}

// sameOutcome reports whether a packed event and the classic parse of the
// same line agree: the same message, or rejections for the same reason.
func sameOutcome(got, want batchEvent) bool {
	if (got.err == nil) != (want.err == nil) {
		return false
	}
	if got.err != nil {
		var g, w *wire.RejectError
		return errors.As(got.err, &g) && errors.As(want.err, &w) && g.Reason == w.Reason
	}
	return bytes.Equal(got.m.Prefix, want.m.Prefix) && got.m.Kind == want.m.Kind &&
		math.Float64bits(got.m.Duration) == math.Float64bits(want.m.Duration) && got.m.Status == want.m.Status
}

// validBatchHeader is the header rule of PROTOCOL.md, written out again:
// "gstats-batch/1" alone, or followed by " dropped=N", N in decimal without
// leading zeros from 1 to MaxBatchDropped. It returns N (0 for none).
func validBatchHeader(line []byte) (int64, bool) {
	if string(line) == "gstats-batch/1" {
		return 0, true
	}
	digits, ok := bytes.CutPrefix(line, []byte("gstats-batch/1 dropped="))
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(string(digits), 10, 64)
	if err != nil || n < 1 || n > wire.MaxBatchDropped || strconv.FormatUint(n, 10) != string(digits) {
		return 0, false
	}
	return int64(n), true
}

// FuzzParseBatch checks that a packed frame never panics, that every event
// is reported once, that each event parsed from the packed form equals
// what its classic frames give (the line split on tabs, parsed by
// ParseMessage as a classic message: the same message or a rejection for
// the same reason), and that the drop count is the one a valid header
// carries, a bad header rejecting the whole frame as one bad_frame_count
// event.
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
	f.Add([]byte(wire.BatchHeader + "a\t1\t200\tx\na\t\t200\na\t1\t\t\n\xff\t1\na\t 7 \t 404 \r\n"))
	f.Add([]byte(wire.BatchHeader + "a\tnan\na\t-1\na\t1_0\na\t0x10\na\t1\t99\na\t1\t2000\n\t"))
	f.Fuzz(func(t *testing.T, frame []byte) {
		var got []batchEvent
		n, dropped := wire.ParseBatch(frame, fuzzLimits, func(m wire.Message, err error) {
			if err != nil {
				var rej *wire.RejectError
				if !errors.As(err, &rej) || !slices.Contains(wire.AllReasons(), rej.Reason) {
					t.Fatalf("event error %v is not a known *RejectError", err)
				}
				if m.Prefix != nil || m.Kind != 0 {
					t.Fatalf("rejected event %v came with message %+v", err, m)
				}
			}
			got = append(got, batchEvent{m, err})
		})
		if n != len(got) {
			t.Fatalf("ParseBatch(%q) returned %d but reported %d events", frame, n, len(got))
		}
		if dropped < 0 || dropped > wire.MaxBatchDropped {
			t.Fatalf("ParseBatch(%q) reported %d dropped", frame, dropped)
		}
		header, rest, found := bytes.Cut(frame, []byte("\n"))
		wantDropped, ok := validBatchHeader(header)
		if !found || !ok {
			var rej *wire.RejectError
			if len(got) != 1 || !errors.As(got[0].err, &rej) || rej.Reason != wire.ReasonFrames || dropped != 0 {
				t.Fatalf("ParseBatch(%q): header %q is not valid, but it reported %d dropped and events %v", frame, header, dropped, got)
			}
			return
		}
		if dropped != wantDropped {
			t.Fatalf("ParseBatch(%q) reported %d dropped, want %d", frame, dropped, wantDropped)
		}
		// The events: one a line, the last newline optional.
		var lines [][]byte
		if len(rest) > 0 {
			lines = bytes.Split(bytes.TrimSuffix(rest, []byte("\n")), []byte("\n"))
		}
		want := len(lines)
		if want > wire.MaxBatchRecords {
			want = wire.MaxBatchRecords + 1 // the rest in one rejection
		}
		if len(got) != want {
			t.Fatalf("ParseBatch(%q) reported %d events for %d lines", frame, len(got), len(lines))
		}
		for i, line := range lines {
			if i == wire.MaxBatchRecords {
				var rej *wire.RejectError
				if !errors.As(got[i].err, &rej) || rej.Reason != wire.ReasonFrames {
					t.Fatalf("event %d past MaxBatchRecords: %v, want a bad_frame_count rejection", i+1, got[i].err)
				}
				break
			}
			var classic batchEvent
			classic.m, classic.err = wire.ParseMessage(bytes.Split(line, []byte("\t")), fuzzLimits)
			if !sameOutcome(got[i], classic) {
				t.Fatalf("packed event %d %q gives %+v, %v; its classic frames give %+v, %v",
					i+1, line, got[i].m, got[i].err, classic.m, classic.err)
			}
			if got[i].err != nil && !strings.HasPrefix(got[i].err.(*wire.RejectError).Detail, "packed event "+strconv.Itoa(i+1)+" ") &&
				!strings.HasPrefix(got[i].err.(*wire.RejectError).Detail, "packed event "+strconv.Itoa(i+1)+":") {
				t.Fatalf("packed event %d %q: rejection %q does not name the event", i+1, line, got[i].err)
			}
		}
	})
}
