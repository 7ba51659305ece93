package client

import (
	"bytes"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gstats/gstats/wire"
)

func TestAppendMillis(t *testing.T) {
	cases := []struct {
		d    time.Duration
		want string
	}{
		{0, "0.000"},
		{-time.Second, "0.000"},
		{499 * time.Nanosecond, "0.000"},
		{500 * time.Nanosecond, "0.001"},
		{time.Microsecond, "0.001"},
		{1500 * time.Microsecond, "1.500"},
		{12*time.Millisecond + 345678*time.Nanosecond, "12.346"},
		{153 * time.Millisecond, "153.000"},
		{999999500 * time.Nanosecond, "1000.000"},
		{24 * time.Hour, "86400000.000"},
		{math.MaxInt64, "9223372036854.776"},
	}
	for _, tc := range cases {
		if got := string(appendMillis([]byte("x"), tc.d)); got != "x"+tc.want {
			t.Errorf("appendMillis(%d ns) = %q, want %q", int64(tc.d), got[1:], tc.want)
		}
	}
}

func TestRecorderStatus(t *testing.T) {
	cases := []struct {
		name string
		do   func(w http.ResponseWriter)
		want int
	}{
		{"nothing", func(http.ResponseWriter) {}, 200},
		{"write", func(w http.ResponseWriter) { _, _ = w.Write(nil) }, 200},
		{"418", func(w http.ResponseWriter) { w.WriteHeader(418) }, 418},
		{"first final code wins", func(w http.ResponseWriter) { w.WriteHeader(201); w.WriteHeader(500) }, 201},
		{"write then WriteHeader", func(w http.ResponseWriter) { _, _ = w.Write(nil); w.WriteHeader(500) }, 200},
		{"1xx are interim", func(w http.ResponseWriter) { w.WriteHeader(100); w.WriteHeader(103); w.WriteHeader(302) }, 302},
		{"101 is final", func(w http.ResponseWriter) { w.WriteHeader(101) }, 101},
	}
	r := newRecorder()
	for _, tc := range cases {
		r.reset(httptest.NewRecorder())
		tc.do(r.view())
		if got := r.finalStatus(); got != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, got, tc.want)
		}
	}
	r.reset(httptest.NewRecorder())
	r.hijacked = true
	if got := r.finalStatus(); got != 0 {
		t.Errorf("hijacked: status %d, want 0 (none)", got)
	}
}

func TestHandlerPrefix(t *testing.T) {
	c, err := New(Options{Address: "tcp://127.0.0.1:1", Prefix: "app"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	for prefix, want := range map[string]string{"": "app", "api": "api"} {
		h, err := c.Handler(prefix, http.NotFoundHandler())
		if err != nil {
			t.Fatal(err)
		}
		if got := h.(*handler).prefix; got != want {
			t.Errorf("Handler(%q) reports under %q, want %q", prefix, got, want)
		}
	}
	if got := c.Middleware(http.NotFoundHandler()).(*handler).prefix; got != "app" {
		t.Errorf("Middleware reports under %q, want app", got)
	}
}

func TestFinishEventStatus(t *testing.T) {
	for status, want := range map[int]int32{0: 0, -1: 0, 99: 0, 100: 100, 200: 200, 599: 599, 600: 0, 999: 0} {
		if got := finishEvent("", 0, status).status; got != want {
			t.Errorf("finishEvent status %d sent as %d, want %d", status, got, want)
		}
	}
}

func TestRingOrderAndBounds(t *testing.T) {
	for _, tc := range []struct{ size, capacity int }{{0, 2}, {1, 2}, {2, 2}, {3, 4}, {4, 4}, {1000, 1024}} {
		r := newRing(tc.size)
		if r.capacity() != tc.capacity {
			t.Fatalf("newRing(%d) holds %d, want %d", tc.size, r.capacity(), tc.capacity)
		}
		// Several laps: fill, refuse, drain in order.
		for lap := range 3 {
			for i := range tc.capacity {
				if _, ok := r.put(event{dur: time.Duration(lap*1000 + i)}); !ok {
					t.Fatalf("size %d lap %d: put %d refused", tc.size, lap, i)
				}
			}
			if _, ok := r.put(event{}); ok {
				t.Fatalf("size %d lap %d: put accepted into a full ring", tc.size, lap)
			}
			for i := range tc.capacity {
				ev, ok := r.get()
				if !ok || ev.dur != time.Duration(lap*1000+i) {
					t.Fatalf("size %d lap %d: get %d = %v %v", tc.size, lap, i, ev.dur, ok)
				}
			}
			if _, ok := r.get(); ok || r.ready() {
				t.Fatalf("size %d lap %d: get from an empty ring", tc.size, lap)
			}
		}
	}
}

func TestRingConcurrentProducers(t *testing.T) {
	// Every accepted event comes out exactly once, each producer's in
	// order; refused ones are the only ones missing.
	const producers, each = 4, 20000
	r := newRing(64)
	var wg sync.WaitGroup
	accepted := make([]int, producers)
	for p := range producers {
		wg.Go(func() {
			for i := range each {
				if _, ok := r.put(event{status: int32(p), dur: time.Duration(i)}); ok {
					accepted[p]++
				}
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	last := []time.Duration{-1, -1, -1, -1}
	got := make([]int, producers)
	for finished := false; ; {
		ev, ok := r.get()
		if !ok {
			if finished {
				break
			}
			select {
			case <-done:
				finished = true
			default:
			}
			continue
		}
		p := ev.status
		if ev.dur <= last[p] {
			t.Fatalf("producer %d: event %d after %d", p, ev.dur, last[p])
		}
		last[p] = ev.dur
		got[p]++
	}
	for p := range producers {
		if got[p] != accepted[p] {
			t.Errorf("producer %d: %d accepted, %d received", p, accepted[p], got[p])
		}
	}
}

// FuzzFrames checks that whatever Start and Finish are given, the frames
// the sender builds are accepted by the collector's parser and carry the
// same values.
func FuzzFrames(f *testing.F) {
	f.Add("", int64(0), 0, false)
	f.Add("my_app", int64(153*time.Millisecond), 200, true)
	f.Add("app", int64(12500*time.Microsecond), 503, true)
	f.Add("x", int64(-1), 700, true)
	f.Add("é", int64(math.MaxInt64), 99, true)
	f.Fuzz(func(t *testing.T, prefix string, ns int64, status int, finish bool) {
		if !validPrefix(prefix) {
			return
		}
		ev := event{prefix: prefix, kind: kindStart}
		if finish {
			ev = finishEvent(prefix, time.Duration(ns), status)
		}
		var fr frames
		fr.build(prefix, ev)
		raw := [][]byte{fr.prefix, fr.dur}
		if fr.hasStatus {
			raw = append(raw, fr.status)
		}
		m, err := wire.ParseMessage(raw, wire.Limits{MaxPrefixLength: MaxPrefixLength, MaxDuration: math.Inf(1)})
		if err != nil {
			t.Fatalf("frames %q rejected: %v", raw, err)
		}
		wantPrefix := prefix
		if prefix == "" {
			wantPrefix = wire.DefaultPrefix
		}
		if string(m.Prefix) != wantPrefix || !utf8.Valid(m.Prefix) {
			t.Fatalf("prefix %q read back as %q", prefix, m.Prefix)
		}
		if !finish {
			if m.Kind != wire.Start {
				t.Fatalf("a start read back as %v", m.Kind)
			}
			return
		}
		if m.Kind != wire.Finish {
			t.Fatalf("a finish (%d ns) read back as a start", ns)
		}
		wantMS := max(float64(ns), 0) / 1e6
		if math.Abs(m.Duration-wantMS) > 0.0005+wantMS*1e-15 {
			t.Fatalf("%d ns read back as %v ms (%q)", ns, m.Duration, fr.dur)
		}
		if wantStatus := int(finishEvent("", 0, status).status); m.Status != wantStatus {
			t.Fatalf("status %d read back as %d", status, m.Status)
		}
		if strings.ContainsAny(string(fr.dur), "eE") {
			t.Fatalf("duration %q has an exponent", fr.dur)
		}
	})
}

// FuzzPacked checks that events packed by the sender are read back by the
// collector's parser with the same values, in order, with the drop count
// given to the header, and that a message never exceeds MaxPackedBytes.
func FuzzPacked(f *testing.F) {
	f.Add("", "my_app", int64(153*time.Millisecond), 200, uint8(3), uint64(0))
	f.Add("é", "x", int64(-1), 700, uint8(200), uint64(17))
	f.Add("a", "", int64(math.MaxInt64), 99, uint8(0), uint64(math.MaxUint64))
	f.Add(strings.Repeat("p", MaxPrefixLength), "q", int64(1), 200, uint8(255), uint64(wire.MaxBatchDropped))
	f.Fuzz(func(t *testing.T, p1, p2 string, ns int64, status int, count uint8, dropped uint64) {
		if !validPrefix(p1) || !validPrefix(p2) || !packable(p1) || !packable(p2) || p1 == "" || p2 == "" {
			return
		}
		var want []event
		var p packer
		p.reset()
		var msgs [][]byte
		for i := range int(count) + 1 {
			ev := event{prefix: p1, kind: kindStart}
			if i%2 == 1 {
				ev = finishEvent(p2, time.Duration(ns)+time.Duration(i), status)
			}
			if !p.fits(ev) {
				msgs = append(msgs, bytes.Clone(p.message(dropped)))
				p.reset()
			}
			p.add(ev)
			want = append(want, ev)
		}
		msgs = append(msgs, bytes.Clone(p.message(dropped)))
		var got []wire.Message
		for _, m := range msgs {
			if len(m) > MaxPackedBytes {
				t.Fatalf("packed message of %d bytes", len(m))
			}
			_, d := wire.ParseBatch(m, wire.Limits{MaxPrefixLength: MaxPrefixLength, MaxDuration: math.Inf(1)}, func(m wire.Message, err error) {
				if err != nil {
					t.Fatalf("packed event rejected: %v", err)
				}
				got = append(got, m)
			})
			if want := min(dropped, wire.MaxBatchDropped); uint64(d) != want {
				t.Fatalf("header reports %d dropped, want %d", d, want)
			}
		}
		if len(got) != len(want) {
			t.Fatalf("read back %d events, packed %d", len(got), len(want))
		}
		for i, ev := range want {
			m := got[i]
			if string(m.Prefix) != ev.prefix || (m.Kind == wire.Finish) != (ev.kind == kindFinish) {
				t.Fatalf("event %d %+v read back as %+v", i, ev, m)
			}
			if ev.kind != kindFinish {
				continue
			}
			wantMS := max(float64(ev.dur), 0) / 1e6
			if math.Abs(m.Duration-wantMS) > 0.0005+wantMS*1e-15 || m.Status != int(ev.status) {
				t.Fatalf("event %d %+v read back as %+v", i, ev, m)
			}
		}
	})
}
