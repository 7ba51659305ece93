package gstats

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	zmq "github.com/pebbe/zmq4"

	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/selfstat"
	"github.com/influxdata/telegraf/testutil"

	"github.com/gstats/gstats/plugins/inputs/gstats/window"
	"github.com/gstats/gstats/wire"
)

// initPlugin returns an initialised plugin with a quiet logger bound to the
// given addresses ("" disables the control socket); edit, if set, adjusts
// the configuration before Init.
func initPlugin(tb testing.TB, stats, comm string, edit func(*Gstats)) *Gstats {
	tb.Helper()
	g := New()
	g.StatsAddress = stats
	g.CommAddress = comm
	g.Log = testutil.Logger{Quiet: true}
	if edit != nil {
		edit(g)
	}
	if err := g.Init(); err != nil {
		tb.Fatalf("Init: %v", err)
	}
	return g
}

// startPlugin starts a plugin on ephemeral loopback ports; edit adjusts the
// configuration first. Stop runs at cleanup.
func startPlugin(t *testing.T, edit func(*Gstats)) (*Gstats, *testutil.Accumulator) {
	t.Helper()
	g := initPlugin(t, "tcp://127.0.0.1:*", "tcp://127.0.0.1:*", edit)
	acc := &testutil.Accumulator{}
	if err := g.Start(acc); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(g.Stop)
	return g, acc
}

// pusher connects a PUSH socket to the plugin's stats endpoint, closed at
// cleanup.
func pusher(t *testing.T, g *Gstats) *zmq.Socket {
	t.Helper()
	s := newPusher(t, g)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// newPusher connects a PUSH socket the caller closes. Sends block rather
// than drop, and Close waits for what is queued to leave.
func newPusher(t *testing.T, g *Gstats) *zmq.Socket {
	t.Helper()
	stats, _ := g.Endpoints()
	s, err := zmq.NewSocket(zmq.PUSH)
	if err != nil {
		t.Fatal(err)
	}
	connectPusher(t, s, stats, 10*time.Second)
	return s
}

// connectPusher sets a PUSH socket's linger and unbounded send queue and
// connects it to stats; it closes the socket and fails t on an error.
func connectPusher(t *testing.T, s *zmq.Socket, stats string, linger time.Duration) {
	t.Helper()
	for _, set := range []func() error{
		func() error { return s.SetLinger(linger) },
		func() error { return s.SetSndhwm(0) },
		func() error { return s.Connect(stats) },
	} {
		if err := set(); err != nil {
			_ = s.Close()
			t.Fatal(err)
		}
	}
}

// ownPusher connects a PUSH socket in a ZeroMQ context of its own. flush
// closes it and terminates the context, which returns once every message
// sent is written to the kernel, where the collector can read it: closing
// the socket alone returns at once, and a loaded machine may still be
// sending long after.
func ownPusher(t *testing.T, g *Gstats) (push *zmq.Socket, flush func()) {
	t.Helper()
	ctx, err := zmq.NewContext()
	if err != nil {
		t.Fatal(err)
	}
	stats, _ := g.Endpoints()
	push, err = ctx.NewSocket(zmq.PUSH)
	if err != nil {
		t.Fatal(err)
	}
	connectPusher(t, push, stats, 30*time.Second)
	var once sync.Once
	flush = func() {
		once.Do(func() {
			_ = push.Close()
			if err := ctx.Term(); err != nil {
				t.Errorf("terminating the pusher's context: %v", err)
			}
		})
	}
	t.Cleanup(flush)
	return push, flush
}

func send(t *testing.T, s *zmq.Socket, frames ...string) {
	t.Helper()
	parts := make([]any, len(frames))
	for i, f := range frames {
		parts[i] = []byte(f)
	}
	if _, err := s.SendMessage(parts...); err != nil {
		t.Fatalf("send %q: %v", frames, err)
	}
}

// waitFor polls cond until it holds or the deadline passes (generous: a
// loaded machine running the race detector is slow, and a condition that
// holds returns at once).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// handled is the number of ingest messages accepted or rejected so far.
func handled(g *Gstats) int64 {
	return g.stats.accepted.Load() + g.stats.rejectedTotal()
}

func control(t *testing.T, g *Gstats) *wire.Client {
	_, comm := g.Endpoints()
	return wire.NewClient(wire.ClientOptions{Address: comm, Timeout: 10 * time.Second})
}

func TestSampleConfigDocumentsTheDefaults(t *testing.T) {
	// Uncommenting every "# key = value" line of sample.conf must give
	// exactly the factory defaults, so the documentation cannot drift.
	var lines []string
	for _, line := range strings.Split(sampleConfig, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "# ") && strings.Contains(trimmed, " = ") && !strings.HasPrefix(trimmed, "## ") {
			line = strings.Replace(line, "# ", "", 1)
		}
		lines = append(lines, line)
	}
	text := strings.Join(lines, "\n")
	var f struct {
		Inputs struct {
			Gstats []toml.Primitive `toml:"gstats"`
		} `toml:"inputs"`
	}
	md, err := toml.Decode(text, &f)
	if err != nil {
		t.Fatalf("sample.conf with its defaults uncommented: %v", err)
	}
	if len(f.Inputs.Gstats) != 1 {
		t.Fatalf("sample.conf holds %d [[inputs.gstats]] sections", len(f.Inputs.Gstats))
	}
	got, want := &Gstats{}, New()
	if err := md.PrimitiveDecode(f.Inputs.Gstats[0], got); err != nil {
		t.Fatal(err)
	}
	if u := md.Undecoded(); len(u) > 0 {
		t.Errorf("sample.conf has keys the plugin does not know: %v", u)
	}
	gotJSON, _ := json.Marshal(got)
	wantJSON, _ := json.Marshal(want)
	if string(gotJSON) != string(wantJSON) {
		t.Errorf("sample.conf defaults differ from New():\n sample: %s\n    New: %s", gotJSON, wantJSON)
	}
	// Every exported config field is documented.
	for _, key := range []string{"stats_address", "comm_address", "window", "window_slots", "percentiles", "max_prefixes",
		"max_prefix_length", "max_raw_durations", "max_duration", "max_message_size", "receive_queue", "reject_log_interval"} {
		if !strings.Contains(sampleConfig, "# "+key+" = ") {
			t.Errorf("sample.conf does not document %s", key)
		}
	}
}

func TestInitRejectsBadConfig(t *testing.T) {
	cases := []struct {
		name string
		edit func(*Gstats)
		want string
	}{
		{"no stats address", func(g *Gstats) { g.StatsAddress = "" }, "stats_address must be set"},
		{"no transport", func(g *Gstats) { g.StatsAddress = "127.0.0.1:2345" }, "stats_address \"127.0.0.1:2345\" has no transport"},
		{"localhost", func(g *Gstats) { g.CommAddress = "tcp://localhost:2345" }, "not a host name; use tcp://127.0.0.1:2345"},
		{"bad port", func(g *Gstats) { g.StatsAddress = "tcp://127.0.0.1:http" }, "port \"http\" is not a number"},
		{"udp", func(g *Gstats) { g.StatsAddress = "udp://127.0.0.1:1" }, "transport \"udp\" is not supported"},
		{"same address", func(g *Gstats) { g.CommAddress = g.StatsAddress }, "they must differ"},
		{"long ipc path", func(g *Gstats) { g.StatsAddress = "ipc:///" + strings.Repeat("x", 120) }, "limited to 107"},
		{"zero window", func(g *Gstats) { g.Window = 0 }, "window must be positive"},
		{"zero slots", func(g *Gstats) { g.WindowSlots = 0 }, "window_slots must be at least 1"},
		{"tiny slots", func(g *Gstats) { g.Window = config.Duration(time.Second); g.WindowSlots = 5000 }, "shorter than 1ms"},
		{"percentile 0", func(g *Gstats) { g.Percentiles = []float64{0} }, "percentiles must be in (0, 100]"},
		{"percentile 101", func(g *Gstats) { g.Percentiles = []float64{50, 101} }, "got 101"},
		{"no prefixes", func(g *Gstats) { g.MaxPrefixes = 0 }, "max_prefixes must be at least 1"},
		{"prefix length", func(g *Gstats) { g.MaxPrefixLength = 0 }, "max_prefix_length must be at least 1"},
		{"raw", func(g *Gstats) { g.MaxRawDurations = -1 }, "max_raw_durations must not be negative"},
		{"max duration", func(g *Gstats) { g.MaxDuration = 0 }, "max_duration must be positive"},
		{"message size", func(g *Gstats) { g.MaxMessageSize = 10 }, "max_message_size must be between"},
		{"message below prefix", func(g *Gstats) { g.MaxPrefixLength = 9000 }, "raise max_message_size"},
		{"queue", func(g *Gstats) { g.ReceiveQueue = 0 }, "receive_queue must be at least 1"},
		{"log interval", func(g *Gstats) { g.RejectLogInterval = 0 }, "reject_log_interval must be positive"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := New()
			g.Log = testutil.Logger{Quiet: true}
			tc.edit(g)
			err := g.Init()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Init() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	g := New()
	g.Log = testutil.Logger{Quiet: true}
	if err := g.Init(); err != nil {
		t.Fatalf("defaults rejected: %v", err)
	}
}

func TestIntegrationIngestAndGather(t *testing.T) {
	g, acc := startPlugin(t, func(g *Gstats) { g.Percentiles = []float64{50, 99.9} })
	push := pusher(t, g)
	for range 10 {
		send(t, push, "app", "")
		send(t, push, "app", "10", "200")
	}
	send(t, push, "app", "0", "503") // a 0 ms finish is a request, not a start
	send(t, push, "", "")            // empty prefix: "default"
	waitFor(t, "22 messages", func() bool { return handled(g) == 22 })

	if err := g.Gather(acc); err != nil {
		t.Fatal(err)
	}
	app := fieldsOf(t, acc, "app")
	wantApp := map[string]any{
		"started": int64(10), "finished": int64(11), "in_flight": int64(0), "count": int64(11),
		"rate":    11.0,
		"mean_ms": 100.0 / 11, "stddev_ms": stddev(append(repeat(10, 10), 0)),
		"min_ms": 0.0, "max_ms": 10.0, "p50_ms": 10.0, "p99_9_ms": 10.0,
		"status_1xx": int64(0), "status_2xx": int64(10), "status_3xx": int64(0), "status_4xx": int64(0),
		"status_5xx": int64(1), "status_none": int64(0),
	}
	if len(app) != len(wantApp) {
		t.Errorf("fields %v, want %v", app, wantApp)
	}
	for k, want := range wantApp {
		got := app[k]
		if wf, ok := want.(float64); ok {
			gf, ok := got.(float64)
			if !ok || math.Abs(gf-wf) > 1e-9*math.Max(1, math.Abs(wf)) {
				t.Errorf("field %s = %v, want %v", k, got, want)
			}
			continue
		}
		if got != want {
			t.Errorf("field %s = %v (%T), want %v (%T)", k, got, got, want, want)
		}
	}
	acc.AssertContainsTaggedFields(t, "gstats", map[string]any{
		"started": int64(1), "finished": int64(0), "in_flight": int64(1), "count": int64(0), "rate": 0.0,
		"status_1xx": int64(0), "status_2xx": int64(0), "status_3xx": int64(0), "status_4xx": int64(0),
		"status_5xx": int64(0), "status_none": int64(0),
	}, map[string]string{"prefix": "default"})
	if !acc.HasMeasurement("gstats_internal") {
		t.Error("no gstats_internal metric")
	}
	if v, ok := acc.Get("gstats_internal"); !ok || v.Fields["accepted"] != int64(22) {
		t.Errorf("gstats_internal = %v, want accepted=22", v)
	}
}

func fieldsOf(t *testing.T, acc *testutil.Accumulator, prefix string) map[string]any {
	t.Helper()
	for _, m := range acc.GetTelegrafMetrics() {
		if m.Name() == "gstats" && m.Tags()["prefix"] == prefix {
			return m.Fields()
		}
	}
	t.Fatalf("no gstats metric for prefix %q", prefix)
	return nil
}

func repeat(v float64, n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func stddev(xs []float64) float64 {
	var sum, sq float64
	for _, x := range xs {
		sum += x
	}
	mean := sum / float64(len(xs))
	for _, x := range xs {
		sq += (x - mean) * (x - mean)
	}
	return math.Sqrt(sq / float64(len(xs)))
}

func TestIntegrationStatsReplyShape(t *testing.T) {
	g, _ := startPlugin(t, nil)
	push := pusher(t, g)
	send(t, push, "my_app", "")
	send(t, push, "my_app", "153")
	send(t, push, "my_app", "12.5", "404")
	waitFor(t, "3 messages", func() bool { return handled(g) == 3 })

	reply, err := control(t, g).Do(t.Context(), "STATS")
	if err != nil {
		t.Fatal(err)
	}
	// The original keys, as an old client reads them.
	var old map[string]struct {
		Started        int64 `json:"started"`
		Finished       int64 `json:"finished"`
		ProcessingTime struct {
			Avg *float64 `json:"avg"`
			Std *float64 `json:"std"`
		} `json:"processing_time"`
	}
	if err := json.Unmarshal(reply, &old); err != nil {
		t.Fatalf("STATS reply %s: %v", reply, err)
	}
	app := old["my_app"]
	if app.Started != 1 || app.Finished != 2 || app.ProcessingTime.Avg == nil || *app.ProcessingTime.Avg != 82.75 ||
		app.ProcessingTime.Std == nil || *app.ProcessingTime.Std != 70.25 {
		t.Errorf("STATS reply %s: original keys wrong", reply)
	}
	for _, key := range []string{`"in_flight":0`, `"rate":2.0`, `"count":2`, `"min":12.5`, `"max":153.0`, `"p50":`, `"p90":`, `"p95":`, `"p99":`, `"4xx":1`, `"none":1`} {
		if !strings.Contains(string(reply), key) {
			t.Errorf("STATS reply lacks %s: %s", key, reply)
		}
	}
}

func TestIntegrationCommands(t *testing.T) {
	quit := make(chan struct{}, 1)
	g, _ := startPlugin(t, func(g *Gstats) { g.SetQuitHandler(func() { quit <- struct{}{} }) })
	push := pusher(t, g)
	send(t, push, "a", "5")
	send(t, push, "a", "7")
	waitFor(t, "2 messages", func() bool { return handled(g) == 2 })
	c := control(t, g)
	ctx := t.Context()

	rt, err := c.RTimes(ctx)
	if err != nil || len(rt["a"]) != 2 || rt["a"][0] != 5 || rt["a"][1] != 7 {
		t.Errorf("RTIMES = %v, %v; want a: [5 7]", rt, err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stats, comm := g.Endpoints()
	if info.Accepted != 2 || info.Prefixes != 1 || info.WindowSeconds != 600 || info.StatsAddress != stats || info.CommAddress != comm || info.Version == "" {
		t.Errorf("INFO = %+v", info)
	}
	for _, raw := range []string{"stats", "BOGUS", "", "STATS ", strings.Repeat("x", 3000), "\xff\xfe"} {
		reply, err := c.Do(ctx, raw)
		if err != nil || string(reply) != "ERROR" {
			t.Errorf("%q: reply %q, %v; want ERROR", raw, reply, err)
		}
	}
	if reply, err := c.Do(ctx, "RESET"); err != nil || string(reply) != "null" {
		t.Errorf("RESET: reply %q, %v; want null", reply, err)
	}
	if st, err := c.Stats(ctx); err != nil || len(st) != 0 {
		t.Errorf("STATS after RESET = %v, %v; want {}", st, err)
	}
	if reply, err := c.Do(ctx, "QUIT"); err != nil || string(reply) != "null" {
		t.Errorf("QUIT: reply %q, %v; want null", reply, err)
	}
	select {
	case <-quit:
	case <-time.After(10 * time.Second):
		t.Error("QUIT did not call the quit handler")
	}
	if n := g.stats.controlErrors.Load(); n != 6 {
		t.Errorf("control errors = %d, want 6", n)
	}
}

func TestIntegrationQuitRefusedInsideTelegraf(t *testing.T) {
	g, _ := startPlugin(t, nil)
	reply, err := control(t, g).Do(t.Context(), "QUIT")
	if err != nil || string(reply) != "ERROR" {
		t.Fatalf("QUIT without a host: reply %q, %v; want ERROR", reply, err)
	}
	if _, err := control(t, g).Stats(t.Context()); err != nil {
		t.Fatalf("STATS after refused QUIT: %v", err)
	}
}

func TestIntegrationMultiFrameControlRequests(t *testing.T) {
	g, _ := startPlugin(t, nil)
	_, comm := g.Endpoints()
	req, err := zmq.NewSocket(zmq.REQ)
	if err != nil {
		t.Fatal(err)
	}
	defer req.Close()
	_ = req.SetLinger(0)
	_ = req.SetRcvtimeo(10 * time.Second)
	if err := req.Connect(comm); err != nil {
		t.Fatal(err)
	}
	for _, frames := range [][]any{{"STATS", "STATS"}, {"", ""}, {"INFO", "x", "y"}} {
		if _, err := req.SendMessage(frames...); err != nil {
			t.Fatal(err)
		}
		reply, err := req.RecvMessage(0)
		if err != nil || len(reply) != 1 || reply[0] != "ERROR" {
			t.Errorf("%q: reply %q, %v; want ERROR", frames, reply, err)
		}
	}
}

func TestIntegrationBadInputLosesNothingElse(t *testing.T) {
	g, _ := startPlugin(t, func(g *Gstats) {
		g.MaxPrefixes = 3
		g.MaxPrefixLength = 16
		g.MaxDuration = config.Duration(time.Minute)
	})
	push := pusher(t, g)
	bad := []struct {
		frames []string
		reason wire.Reason
	}{
		{[]string{"good"}, wire.ReasonFrames},
		{[]string{"good", "1", "200", "extra"}, wire.ReasonFrames},
		{[]string{"good", "", "200"}, wire.ReasonFrames},
		{[]string{strings.Repeat("p", 17), "1"}, wire.ReasonPrefixTooLong},
		{[]string{"\xff\xfe", "1"}, wire.ReasonPrefixNotUTF8},
		{[]string{"good", "abc"}, wire.ReasonBadDuration},
		{[]string{"good", " "}, wire.ReasonBadDuration},
		{[]string{"good", "-1"}, wire.ReasonNegativeDuration},
		{[]string{"good", "NaN"}, wire.ReasonNonFinite},
		{[]string{"good", "inf"}, wire.ReasonNonFinite},
		{[]string{"good", "1e400"}, wire.ReasonNonFinite},
		{[]string{"good", "60001"}, wire.ReasonDurationTooLarge},
		{[]string{"good", "1", "abc"}, wire.ReasonBadStatus},
		{[]string{"good", "1", "99"}, wire.ReasonBadStatus},
		{[]string{"p1", ""}, ""}, {[]string{"p2", ""}, ""}, // with "good": 3 prefixes
		{[]string{"p3", "1"}, wire.ReasonTooManyPrefixes},
	}
	const rounds = 50
	good := 0
	for range rounds {
		for _, b := range bad {
			send(t, push, "good", "")
			send(t, push, b.frames...)
			send(t, push, "good", "2", "200")
			good += 2
			if b.reason == "" {
				good++
			}
		}
	}
	total := int64(rounds * (len(bad) + 2*len(bad)))
	waitFor(t, "every message", func() bool { return handled(g) == total })

	if got := g.stats.accepted.Load(); got != int64(good) {
		t.Errorf("accepted = %d, want %d", got, good)
	}
	want := map[wire.Reason]int64{}
	for _, b := range bad {
		if b.reason != "" {
			want[b.reason] += rounds
		}
	}
	st := checkRejected(t, g, want)
	if s := st["good"]; s.Started != rounds*int64(len(bad)) || s.Finished != rounds*int64(len(bad)) || s.Status.S2xx != s.Finished {
		t.Errorf("good prefix = %+v, want %d started and finished", s, rounds*len(bad))
	}
}

func TestIntegrationOversizedFrameDisconnectsOnlyItsSender(t *testing.T) {
	g, _ := startPlugin(t, func(g *Gstats) { g.MaxMessageSize = 1024 })
	honest := pusher(t, g)
	hostile := pusher(t, g)
	send(t, honest, "ok", "1")
	waitFor(t, "first message", func() bool { return handled(g) == 1 })
	send(t, hostile, "big", strings.Repeat("9", 10<<20)) // a 10 MB frame
	waitFor(t, "the hostile peer's disconnect", func() bool { return g.stats.disconnects.Load() >= 1 })
	for range 100 {
		send(t, honest, "ok", "1")
	}
	waitFor(t, "101 messages", func() bool { return g.stats.accepted.Load() == 101 })
	if st, err := control(t, g).Stats(t.Context()); err != nil || st["ok"].Finished != 101 || len(st) != 1 {
		t.Errorf("STATS = %v, %v; want only ok with 101 finishes", st, err)
	}
}

func TestIntegrationVanishedControlClientDoesNotStallIngest(t *testing.T) {
	g, _ := startPlugin(t, nil)
	_, comm := g.Endpoints()
	// Clients that ask and never read, or vanish before the reply.
	for range 20 {
		s, err := zmq.NewSocket(zmq.DEALER)
		if err != nil {
			t.Fatal(err)
		}
		_ = s.SetLinger(0)
		if err := s.Connect(comm); err != nil {
			t.Fatal(err)
		}
		if _, err := s.SendMessage("", "STATS"); err != nil {
			t.Fatal(err)
		}
		defer s.Close()
	}
	for range 20 {
		s, _ := zmq.NewSocket(zmq.REQ)
		_ = s.SetLinger(0)
		_ = s.Connect(comm)
		_, _ = s.Send("STATS", 0)
		_ = s.Close()
	}
	push := pusher(t, g)
	for range 1000 {
		send(t, push, "app", "1")
	}
	waitFor(t, "1000 messages", func() bool { return g.stats.accepted.Load() == 1000 })
	if _, err := control(t, g).Stats(t.Context()); err != nil {
		t.Fatalf("control socket no longer answers: %v", err)
	}
}

func TestIntegrationStopProcessesWhatWasReceivedAndLeavesNothing(t *testing.T) {
	var before, fdsBefore int
	// The first round opens what a process opens once (the runtime's
	// poller, libzmq's first context); the later rounds must add nothing.
	for round := range 4 {
		if round == 1 {
			before = runtime.NumGoroutine()
			fdsBefore = countFDs(t)
		}
		g := initPlugin(t, "tcp://127.0.0.1:*", "tcp://127.0.0.1:*", nil)
		if err := g.Start(&testutil.Accumulator{}); err != nil {
			t.Fatal(err)
		}
		push, flush := ownPusher(t, g)
		const n = 20000
		for range n {
			send(t, push, "app", "1")
		}
		flush()
		// libzmq has written them all (they are in the kernel's buffers,
		// received); the collector has not necessarily processed them.
		waitFor(t, "the first messages", func() bool { return handled(g) > 0 })
		g.Stop()
		if got := g.stats.accepted.Load(); got != n {
			t.Errorf("after Stop: %d accepted, want %d", got, n)
		}
		g.Stop() // idempotent
	}
	waitFor(t, "goroutines to end", func() bool { return runtime.NumGoroutine() <= before })
	if fds := countFDs(t); fds > fdsBefore+2 {
		t.Errorf("file descriptors: %d before, %d after", fdsBefore, fds)
	}
}

func countFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

func TestIntegrationBindErrors(t *testing.T) {
	g, _ := startPlugin(t, nil)
	stats, _ := g.Endpoints()
	g2 := initPlugin(t, stats, "tcp://127.0.0.1:*", nil)
	err := g2.Start(&testutil.Accumulator{})
	if err == nil {
		g2.Stop()
		t.Fatal("second plugin bound the same address")
	}
	for _, want := range []string{"cannot bind stats socket", stats, "address already in use", "is another gstats-collectd running?", "stats_address"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	g2.Stop() // safe after a failed Start

	// A control address in use: the ingest socket already bound is released.
	_, comm := g.Endpoints()
	g4 := initPlugin(t, "tcp://127.0.0.1:*", comm, nil)
	done := make(chan error, 1)
	go func() { done <- g4.Start(&testutil.Accumulator{}) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "cannot bind control socket") || !strings.Contains(err.Error(), "comm_address") {
			g4.Stop()
			t.Errorf("second control socket on %s: %v", comm, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Start hung after a failed control bind")
	}

	g3 := initPlugin(t, "tcp://192.0.2.1:2345", "", nil) // TEST-NET-1: not on this machine
	if err := g3.Start(&testutil.Accumulator{}); err == nil || !strings.Contains(err.Error(), "not on this machine") {
		g3.Stop()
		t.Errorf("bind to a foreign address: %v", err)
	}
}

func TestIntegrationIPC(t *testing.T) {
	dir, err := os.MkdirTemp("/tmp", "gs")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	g, _ := startPlugin(t, func(g *Gstats) {
		g.StatsAddress = "ipc://" + filepath.Join(dir, "s")
		g.CommAddress = "ipc://" + filepath.Join(dir, "c")
	})
	push := pusher(t, g)
	send(t, push, "ipc", "3")
	waitFor(t, "1 message", func() bool { return handled(g) == 1 })
	if st, err := control(t, g).Stats(t.Context()); err != nil || st["ipc"].Finished != 1 {
		t.Errorf("STATS over ipc = %v, %v", st, err)
	}
}

func mathExp(x float64) float64 { return math.Exp(x) }

func newWindowFor(g *Gstats) (*window.Window, error) { return window.New(g.windowConfig()) }

func TestIntegrationStopGathersWhatItReceived(t *testing.T) {
	g := initPlugin(t, "tcp://127.0.0.1:*", "", nil)
	acc := &testutil.Accumulator{}
	if err := g.Start(acc); err != nil {
		t.Fatal(err)
	}
	push, flush := ownPusher(t, g)
	const n = 5000
	for i := range n {
		send(t, push, "final", "")
		send(t, push, "final", strconv.Itoa(i%7), "200")
	}
	flush()
	waitFor(t, "the first messages", func() bool { return handled(g) > 0 })
	// No Gather was called: everything must come from the one in Stop.
	if acc.NMetrics() != 0 {
		t.Fatalf("metrics before Stop: %d", acc.NMetrics())
	}
	g.Stop()
	f := fieldsOf(t, acc, "final")
	if f["started"] != int64(n) || f["finished"] != int64(n) || f["status_2xx"] != int64(n) || f["count"] != int64(n) {
		t.Errorf("final gather fields: %v; want started = finished = status_2xx = count = %d", f, n)
	}
	if f["max_ms"] != 6.0 {
		t.Errorf("final gather max_ms = %v, want 6", f["max_ms"])
	}
	internal, ok := acc.Get("gstats_internal")
	if !ok || internal.Fields["accepted"] != int64(2*n) {
		t.Errorf("final gstats_internal: %v", internal)
	}
	g.Stop() // idempotent: no second final gather
	if got := len(acc.GetTelegrafMetrics()); got != 2 {
		t.Errorf("%d metrics after two Stops, want 2 (gstats and gstats_internal once)", got)
	}
}

func TestIntegrationSelfStatsRegistered(t *testing.T) {
	g, acc := startPlugin(t, nil)
	push := pusher(t, g)
	send(t, push, "s", "")
	send(t, push, "s", "nope")
	waitFor(t, "both messages", func() bool { return handled(g) == 2 })
	if err := g.Gather(acc); err != nil {
		t.Fatal(err)
	}
	stats, _ := g.Endpoints()
	want := map[string]int64{"accepted": 1, "rejected": 1, "rejected_bad_duration": 1, "prefixes": 1}
	got := map[string]int64{}
	for _, m := range selfstat.Metrics() {
		if m.Name() != "internal_gstats" {
			continue
		}
		if addr, _ := m.GetTag("stats_address"); addr != stats {
			continue
		}
		for _, f := range m.FieldList() {
			if v, ok := f.Value.(int64); ok {
				got[f.Key] = v
			}
		}
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("internal_gstats %s = %d, want %d (all: %v)", k, got[k], v, got)
		}
	}
}

func TestIntegrationPackedMessages(t *testing.T) {
	g, _ := startPlugin(t, func(g *Gstats) {
		g.MaxPrefixes = 3
		g.MaxPrefixLength = 16
		g.MaxDuration = config.Duration(time.Minute)
		g.MaxMessageSize = config.Size(64 << 10)
	})
	push := pusher(t, g)
	// Each packed message: a good start, one event (bad or not), a good
	// finish; then a classic pair, so both forms mix on one socket.
	events := []struct {
		record string
		reason wire.Reason
	}{
		{"good", wire.ReasonFrames},
		{"good\t1\t200\textra", wire.ReasonFrames},
		{"good\t\t200", wire.ReasonFrames},
		{"", wire.ReasonFrames},
		{strings.Repeat("p", 17) + "\t1", wire.ReasonPrefixTooLong},
		{"\xff\xfe\t1", wire.ReasonPrefixNotUTF8},
		{"good\tabc", wire.ReasonBadDuration},
		{"good\t-1", wire.ReasonNegativeDuration},
		{"good\tNaN", wire.ReasonNonFinite},
		{"good\t60001", wire.ReasonDurationTooLarge},
		{"good\t1\t99", wire.ReasonBadStatus},
		{"p1\t", ""}, {"p2\t", ""},
		{"p3\t1", wire.ReasonTooManyPrefixes},
	}
	const rounds = 40
	var good, total int64
	want := map[wire.Reason]int64{}
	for range rounds {
		for _, e := range events {
			send(t, push, wire.BatchHeader+"good\t\n"+e.record+"\ngood\t2\t500\n")
			send(t, push, "good", "")
			send(t, push, "good", "1.5", "200")
			good += 4
			total += 5
			if e.reason == "" {
				good++
			} else {
				want[e.reason]++
			}
		}
	}
	// A single frame without the header is one rejected message.
	send(t, push, "good\t\n")
	want[wire.ReasonFrames]++
	total++
	// A large packed message (100 000 events over 16 messages).
	var big []byte
	for i := range 100_000 {
		if i%2 == 0 {
			big, _ = wire.AppendBatchRecord(big, []byte("good"), nil)
		} else {
			big, _ = wire.AppendBatchRecord(big, []byte("good"), []byte("3.25"), []byte("200"))
		}
		if len(big) > 60_000 || i == 99_999 {
			send(t, push, wire.BatchHeader+string(big))
			big = big[:0]
		}
	}
	good += 100_000
	total += 100_000
	waitFor(t, "every event", func() bool { return handled(g) == total })

	if got := g.stats.accepted.Load(); got != good {
		t.Errorf("accepted = %d, want %d", got, good)
	}
	st := checkRejected(t, g, want)
	n := int64(rounds*len(events)) * 2
	if s := st["good"]; s.Started != n+50_000 || s.Finished != n+50_000 || s.Status.S5xx != n/2 || s.Status.S2xx != n/2+50_000 {
		t.Errorf("good prefix = %+v, want %d started and finished, %d 5xx", s, n+50_000, n/2)
	}
}

// checkRejected checks INFO's rejection counters against want (every reason
// not in it must be 0) and returns STATS.
func checkRejected(t *testing.T, g *Gstats, want map[wire.Reason]int64) wire.StatsReply {
	t.Helper()
	info, err := control(t, g).Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range wire.AllReasons() {
		if info.Rejected[r] != want[r] {
			t.Errorf("rejected[%s] = %d, want %d", r, info.Rejected[r], want[r])
		}
	}
	st, err := control(t, g).Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return st
}
