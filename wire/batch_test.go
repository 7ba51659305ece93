package wire_test

import (
	"errors"
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
