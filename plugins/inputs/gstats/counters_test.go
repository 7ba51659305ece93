package gstats

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/testutil"

	"github.com/gstats/gstats/wire"
)

// recordingLogger keeps the warnings it is given.
type recordingLogger struct {
	testutil.Logger
	mu    sync.Mutex
	warns []string
}

func (l *recordingLogger) Warn(args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.warns = append(l.warns, fmt.Sprint(args...))
}

var _ telegraf.Logger = (*recordingLogger)(nil)

func TestThrottleLogsOncePerIntervalAndCountsTheRest(t *testing.T) {
	log := &recordingLogger{}
	th := newThrottle(30 * time.Second)
	t0 := time.Unix(1_700_000_000, 0)
	steps := []struct {
		at      time.Duration
		key     string
		logged  bool
		contain string
	}{
		{0, "bad_duration", true, "first"},
		{time.Second, "bad_duration", false, ""},
		{2 * time.Second, "bad_duration", false, ""},
		{3 * time.Second, "bad_status", true, "first"}, // another key has its own budget
		{29 * time.Second, "bad_duration", false, ""},
		{30 * time.Second, "bad_duration", true, "(and 3 more like it in the last 30s)"},
		{31 * time.Second, "bad_duration", false, ""},
		{90 * time.Second, "bad_duration", true, "(and 1 more like it in the last 1m0s)"},
		{200 * time.Second, "bad_duration", true, "first"},
	}
	for i, s := range steps {
		before := len(log.warns)
		th.warn(log, s.key, t0.Add(s.at), "first")
		logged := len(log.warns) > before
		if logged != s.logged {
			t.Fatalf("step %d (%s at %s): logged = %v, want %v", i, s.key, s.at, logged, s.logged)
		}
		if logged && !strings.Contains(log.warns[len(log.warns)-1], s.contain) {
			t.Errorf("step %d: %q lacks %q", i, log.warns[len(log.warns)-1], s.contain)
		}
	}
	if strings.Contains(log.warns[len(log.warns)-1], "more like it") {
		t.Errorf("a quiet interval still reported held-back messages: %q", log.warns[len(log.warns)-1])
	}
}

func TestEveryReasonHasAHint(t *testing.T) {
	for _, r := range wire.AllReasons() {
		if h := rejectHint(r); h == "" || strings.Contains(h, "README") {
			t.Errorf("reason %s has no specific hint: %q", r, h)
		}
	}
}

func TestIntegrationRejectsAreLoggedWithTheSettingToChange(t *testing.T) {
	log := &recordingLogger{}
	g, _ := startPlugin(t, func(g *Gstats) {
		g.Log = log
		g.MaxPrefixLength = 8
	})
	push := pusher(t, g)
	for range 500 {
		send(t, push, "much-too-long-prefix", "1")
	}
	waitFor(t, "500 rejections", func() bool { return handled(g) == 500 })
	log.mu.Lock()
	defer log.mu.Unlock()
	if len(log.warns) != 1 {
		t.Fatalf("%d warnings for 500 rejections in one interval, want 1: %q", len(log.warns), log.warns)
	}
	for _, want := range []string{"prefix_too_long", "max_prefix_length = 8", "raise max_prefix_length", "\"much-too-long-prefix\""} {
		if !strings.Contains(log.warns[0], want) {
			t.Errorf("warning %q lacks %q", log.warns[0], want)
		}
	}
}
