package gstats

import (
	"strings"
	"testing"
	"time"

	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/testutil"

	"github.com/gstats/gstats/wire"
)

// TestIntegrationClientDropsAreCounted sends packed messages whose headers
// report drops, and bad headers, between good traffic on a real socket:
// every reported drop is added to client_dropped, every bad header rejects
// its whole message as one bad_frame_count with a detail naming the
// problem, and every good event around them is counted.
func TestIntegrationClientDropsAreCounted(t *testing.T) {
	log := &testutil.CaptureLogger{}
	g, acc := startPlugin(t, func(g *Gstats) {
		g.Log = log
		g.RejectLogInterval = config.Duration(time.Nanosecond) // log every rejection
	})
	push := pusher(t, g)

	cases := []struct {
		name    string
		frame   string
		starts  int64  // start events accepted
		good    int64  // events accepted
		dropped int64  // added to client_dropped
		bad     int64  // bad_frame_count rejections
		detail  string // logged for a rejected header
	}{
		{"no drops", wire.BatchHeader + "good\t\ngood\t1.5\t200\n", 1, 2, 0, 0, ""},
		{"drops and events", "gstats-batch/1 dropped=5\ngood\t\ngood\t1.5\t200\n", 1, 2, 5, 0, ""},
		{"drops only", "gstats-batch/1 dropped=1000\n", 0, 0, 1000, 0, ""},
		{"largest count", "gstats-batch/1 dropped=9007199254740991\ngood\t\n", 1, 1, wire.MaxBatchDropped, 0, ""},
		{"drops, one bad event", "gstats-batch/1 dropped=3\ngood\t\nnotab\ngood\t2\n", 1, 2, 3, 1, "has no tab"},
		{"unknown field", "gstats-batch/1 foo\ngood\t\ngood\t1\n", 0, 0, 0, 1, `only " dropped=N" may follow`},
		{"negative", "gstats-batch/1 dropped=-1\ngood\t\n", 0, 0, 0, 1, `got "-1"`},
		{"not a number", "gstats-batch/1 dropped=abc\ngood\t\n", 0, 0, 0, 1, `got "abc"`},
		{"over 2^53-1", "gstats-batch/1 dropped=9007199254740992\ngood\t\n", 0, 0, 0, 1, "from 1 to 9007199254740991"},
		{"zero", "gstats-batch/1 dropped=0\ngood\t\n", 0, 0, 0, 1, "from 1 to 9007199254740991"},
		{"other version", "gstats-batch/2\ngood\t\n", 0, 0, 0, 1, "must start with the line"},
		{"header without newline", "gstats-batch/1 dropped=7", 0, 0, 0, 1, "has no newline"},
	}
	const rounds = 3
	var good, starts, dropped, bad int64
	for range rounds {
		for _, tc := range cases {
			// Good traffic on both sides of each case, classic and
			// packed.
			send(t, push, "good", "")
			send(t, push, tc.frame)
			send(t, push, wire.BatchHeader+"good\t2\t404\n")
			good += 2 + tc.good
			starts += 1 + tc.starts
			dropped += tc.dropped
			bad += tc.bad
		}
	}
	waitFor(t, "every message", func() bool { return handled(g) == good+bad })

	if got := g.stats.accepted.Load(); got != good {
		t.Errorf("accepted = %d, want %d", got, good)
	}
	if got := g.stats.clientDropped.Load(); got != dropped {
		t.Errorf("client_dropped = %d, want %d", got, dropped)
	}
	st := checkRejected(t, g, map[wire.Reason]int64{wire.ReasonFrames: bad})
	if s := st["good"]; s.Started != starts || s.Finished != good-starts {
		t.Errorf("good = %d started, %d finished; want %d and %d", s.Started, s.Finished, starts, good-starts)
	}

	// The count is in INFO and in the gstats_internal metric.
	info, err := control(t, g).Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.ClientDropped != dropped {
		t.Errorf("INFO client_dropped = %d, want %d", info.ClientDropped, dropped)
	}
	if err := g.Gather(acc); err != nil {
		t.Fatal(err)
	}
	if v, ok := acc.Get("gstats_internal"); !ok || v.Fields["client_dropped"] != dropped {
		t.Errorf("gstats_internal = %+v, want client_dropped = %d", v, dropped)
	}

	// Each bad header was logged with what is wrong with it.
	logged := strings.Join(log.Warnings(), "\n")
	for _, tc := range cases {
		if tc.detail != "" && !strings.Contains(logged, tc.detail) {
			t.Errorf("%s: no warning says %q; warnings:\n%s", tc.name, tc.detail, logged)
		}
	}
}
