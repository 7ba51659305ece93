package wire_test

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/gstats/gstats/wire"
)

type event struct {
	prefix   string
	kind     wire.Kind
	duration float64
	status   int
	reason   wire.Reason
}

func parseAll(frame string) []event {
	var got []event
	wire.ParseBatch([]byte(frame), wire.Limits{MaxPrefixLength: 16, MaxDuration: 60_000}, func(m wire.Message, err error) {
		if err != nil {
			var rej *wire.RejectError
			if !errors.As(err, &rej) {
				panic(err)
			}
			got = append(got, event{reason: rej.Reason})
			return
		}
		got = append(got, event{prefix: string(m.Prefix), kind: m.Kind, duration: m.Duration, status: m.Status})
	})
	return got
}

func TestParseBatch(t *testing.T) {
	h := wire.BatchHeader
	tests := []struct {
		name  string
		frame string
		want  []event
	}{
		{"header only", h, nil},
		{"start", h + "shop\t\n", []event{{prefix: "shop", kind: wire.Start}}},
		{"finish with status", h + "shop\t12.5\t404\n", []event{{prefix: "shop", kind: wire.Finish, duration: 12.5, status: 404}}},
		{"finish without status, no final newline", h + "shop\t3", []event{{prefix: "shop", kind: wire.Finish, duration: 3}}},
		{"empty prefix is the default", h + "\t\n\t1\t200\n", []event{
			{prefix: "default", kind: wire.Start}, {prefix: "default", kind: wire.Finish, duration: 1, status: 200}}},
		{"several, bad ones in between", h + "a\t\nnotab\na\t-1\na\t1\t200\tx\na\t1\t99\nb\t2\n", []event{
			{prefix: "a", kind: wire.Start},
			{reason: wire.ReasonFrames},
			{reason: wire.ReasonNegativeDuration},
			{reason: wire.ReasonFrames},
			{reason: wire.ReasonBadStatus},
			{prefix: "b", kind: wire.Finish, duration: 2}}},
		{"empty line", h + "a\t\n\na\t\n", []event{{prefix: "a", kind: wire.Start}, {reason: wire.ReasonFrames}, {prefix: "a", kind: wire.Start}}},
		{"start with a status", h + "a\t\t200\n", []event{{reason: wire.ReasonFrames}}},
		{"prefix too long", h + strings.Repeat("p", 17) + "\t1\n", []event{{reason: wire.ReasonPrefixTooLong}}},
		{"not UTF-8", h + "\xff\t1\n", []event{{reason: wire.ReasonPrefixNotUTF8}}},
		{"no header", "shop\t\n", []event{{reason: wire.ReasonFrames}}},
		{"older header", "gstats-batch/0\nshop\t\n", []event{{reason: wire.ReasonFrames}}},
		{"drops reported, events follow", "gstats-batch/1 dropped=7\nshop\t\n", []event{{prefix: "shop", kind: wire.Start}}},
		{"drops reported, no events", "gstats-batch/1 dropped=7\n", nil},
		{"bad header with events rejects them all", "gstats-batch/1 dropped=x\nshop\t\nshop\t1\n", []event{{reason: wire.ReasonFrames}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parseAll(tt.frame)
			if len(got) != len(tt.want) {
				t.Fatalf("got %d events %+v, want %d %+v", len(got), got, len(tt.want), tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("event %d = %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestParseBatchBoundsTheEventCount(t *testing.T) {
	frame := wire.BatchHeader + strings.Repeat("a\t\n", wire.MaxBatchRecords+10)
	got := parseAll(frame)
	if len(got) != wire.MaxBatchRecords+1 {
		t.Fatalf("got %d events, want %d", len(got), wire.MaxBatchRecords+1)
	}
	if last := got[len(got)-1]; last.reason != wire.ReasonFrames {
		t.Errorf("last event = %+v, want a rejection for the rest", last)
	}
}

func TestIsBatch(t *testing.T) {
	tests := []struct {
		frames [][]byte
		want   bool
	}{
		{[][]byte{[]byte(wire.BatchHeader)}, true},
		{[][]byte{[]byte(wire.BatchHeader + "a\t\n")}, true},
		{[][]byte{[]byte("gstats-batch/1 dropped=3\n")}, true},
		{[][]byte{[]byte("gstats-batch/9\n")}, true}, // a packed message ParseBatch rejects
		{[][]byte{[]byte("gstats-batch")}, false},
		{[][]byte{[]byte(wire.BatchHeader), []byte("")}, false}, // a classic start whose prefix looks like a header
		{[][]byte{[]byte("shop")}, false},
		{nil, false},
	}
	for _, tt := range tests {
		if got := wire.IsBatch(tt.frames); got != tt.want {
			t.Errorf("IsBatch(%q) = %v, want %v", tt.frames, got, tt.want)
		}
	}
}

func TestAppendBatchRecord(t *testing.T) {
	tests := []struct {
		frames []string
		want   string
		ok     bool
	}{
		{[]string{"shop", ""}, "shop\t\n", true},
		{[]string{"shop", "1.5", "200"}, "shop\t1.5\t200\n", true},
		{[]string{"", "1"}, "\t1\n", true},
		{[]string{"sh\top", "1"}, "", false},
		{[]string{"shop\n", "1"}, "", false},
		{[]string{"shop"}, "", false},
		{[]string{"shop", "1", "200", "x"}, "", false},
	}
	for _, tt := range tests {
		frames := make([][]byte, len(tt.frames))
		for i, f := range tt.frames {
			frames[i] = []byte(f)
		}
		got, ok := wire.AppendBatchRecord([]byte("x"), frames...)
		if ok != tt.ok || string(got) != "x"+tt.want {
			t.Errorf("AppendBatchRecord(%q) = %q, %v; want %q, %v", tt.frames, got, ok, "x"+tt.want, tt.ok)
		}
	}
}

func TestParseBatchHeader(t *testing.T) {
	tests := []struct {
		name    string
		header  string
		dropped int64
		detail  string // in the rejection; "" when the header is valid
	}{
		{"plain", "gstats-batch/1\n", 0, ""},
		{"one dropped", "gstats-batch/1 dropped=1\n", 1, ""},
		{"many dropped", "gstats-batch/1 dropped=123456789\n", 123456789, ""},
		{"largest count", "gstats-batch/1 dropped=9007199254740991\n", wire.MaxBatchDropped, ""},
		{"count over 2^53-1", "gstats-batch/1 dropped=9007199254740992\n", 0, "from 1 to 9007199254740991"},
		{"count overflowing int64", "gstats-batch/1 dropped=99999999999999999999\n", 0, "from 1 to 9007199254740991"},
		{"zero", "gstats-batch/1 dropped=0\n", 0, "from 1 to"},
		{"leading zero", "gstats-batch/1 dropped=07\n", 0, "without leading zeros"},
		{"negative", "gstats-batch/1 dropped=-1\n", 0, `got "-1"`},
		{"plus sign", "gstats-batch/1 dropped=+1\n", 0, `got "+1"`},
		{"not a number", "gstats-batch/1 dropped=abc\n", 0, `got "abc"`},
		{"empty count", "gstats-batch/1 dropped=\n", 0, `got ""`},
		{"trailing space", "gstats-batch/1 dropped=5 \n", 0, `got "5 "`},
		{"two fields", "gstats-batch/1 dropped=5 dropped=6\n", 0, "dropped= wants"},
		{"unknown field", "gstats-batch/1 foo\n", 0, `only " dropped=N" may follow`},
		{"upper case field", "gstats-batch/1 DROPPED=5\n", 0, `only " dropped=N" may follow`},
		{"two spaces", "gstats-batch/1  dropped=5\n", 0, `only " dropped=N" may follow`},
		{"tab, not space", "gstats-batch/1\tdropped=5\n", 0, "must start with the line"},
		{"carriage return", "gstats-batch/1\r\n", 0, "must start with the line"},
		{"newer version", "gstats-batch/2\n", 0, "must start with the line"},
		{"version 10", "gstats-batch/10\n", 0, "must start with the line"},
		{"no newline", "gstats-batch/1 dropped=5", 0, "has no newline"},
		{"only the version, no newline", "gstats-batch/1", 0, "has no newline"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			frame := tt.header + "a\t\n"
			if !strings.HasSuffix(tt.header, "\n") {
				frame = tt.header // the frame ends in its header
			}
			var errs []error
			var starts int
			n, dropped := wire.ParseBatch([]byte(frame), wire.Limits{MaxPrefixLength: 16, MaxDuration: 1}, func(m wire.Message, err error) {
				if err != nil {
					errs = append(errs, err)
					return
				}
				starts++
			})
			if tt.detail == "" {
				if len(errs) != 0 || n != 1 || starts != 1 || dropped != tt.dropped {
					t.Fatalf("got %d events (%d starts), dropped %d, errors %v; want the start and dropped %d", n, starts, dropped, errs, tt.dropped)
				}
				return
			}
			if n != 1 || starts != 0 || len(errs) != 1 || dropped != 0 {
				t.Fatalf("got %d events (%d starts), dropped %d, errors %v; want the whole message rejected as one event", n, starts, dropped, errs)
			}
			var rej *wire.RejectError
			if !errors.As(errs[0], &rej) || rej.Reason != wire.ReasonFrames {
				t.Fatalf("error %v, want a %s rejection", errs[0], wire.ReasonFrames)
			}
			if !strings.Contains(rej.Detail, tt.detail) {
				t.Errorf("detail %q does not say %q", rej.Detail, tt.detail)
			}
		})
	}
}

func TestAppendBatchHeader(t *testing.T) {
	tests := []struct {
		dropped uint64
		want    string
	}{
		{0, wire.BatchHeader},
		{1, "gstats-batch/1 dropped=1\n"},
		{wire.MaxBatchDropped, "gstats-batch/1 dropped=9007199254740991\n"},
		{wire.MaxBatchDropped + 1, "gstats-batch/1 dropped=9007199254740991\n"},
		{math.MaxUint64, "gstats-batch/1 dropped=9007199254740991\n"},
	}
	for _, tt := range tests {
		got := wire.AppendBatchHeader([]byte("x"), tt.dropped)
		if string(got) != "x"+tt.want {
			t.Errorf("AppendBatchHeader(%d) = %q, want %q", tt.dropped, got, "x"+tt.want)
		}
		if len(got)-1 > wire.MaxBatchHeaderLen {
			t.Errorf("AppendBatchHeader(%d) is %d bytes, over MaxBatchHeaderLen %d", tt.dropped, len(got)-1, wire.MaxBatchHeaderLen)
		}
		_, dropped := wire.ParseBatch(got[1:], wire.Limits{}, func(_ wire.Message, err error) { t.Errorf("header %q: %v", got[1:], err) })
		if want := min(tt.dropped, wire.MaxBatchDropped); uint64(dropped) != want {
			t.Errorf("header %q parses as dropped %d, want %d", got[1:], dropped, want)
		}
	}
}
