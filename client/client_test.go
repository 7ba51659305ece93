package client_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/gstats/gstats/client"
	"github.com/gstats/gstats/internal/testbin"
	"github.com/gstats/gstats/internal/testport"
	"github.com/gstats/gstats/wire"
)

// deadAddress returns a loopback address nothing listens on, reserved for
// the test: a port that had been released by the kernel's port-0 bind
// could be taken meanwhile by another process's connection or listener.
func deadAddress(t *testing.T) string {
	t.Helper()
	return testport.TCP(t)
}

func TestNewRejectsBadOptions(t *testing.T) {
	cases := []struct {
		name string
		opts client.Options
		want string
	}{
		{"long prefix", client.Options{Prefix: strings.Repeat("x", 256)}, "is 256 bytes long; the limit is 255"},
		{"prefix not UTF-8", client.Options{Prefix: "app\xff"}, "not valid UTF-8"},
		{"negative queue", client.Options{QueueSize: -1}, "QueueSize must not be negative"},
		{"negative hwm", client.Options{SendHWM: -5}, "SendHWM must not be negative"},
		{"negative reconnect", client.Options{ReconnectInterval: -time.Second}, "ReconnectInterval must not be negative"},
		{"negative log interval", client.Options{LogInterval: -time.Second}, "LogInterval must not be negative"},
		{"no transport", client.Options{Address: "127.0.0.1:2345"}, `cannot connect to "127.0.0.1:2345"`},
		{"unknown transport", client.Options{Address: "udp://127.0.0.1:2345"}, `cannot connect to "udp://127.0.0.1:2345"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := client.New(tc.opts)
			if err == nil {
				_ = c.Close()
				t.Fatalf("New(%+v) succeeded, want an error containing %q", tc.opts, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestNewDefaults(t *testing.T) {
	c := newClient(t, client.Options{})
	if c.Prefix() != wire.DefaultPrefix || c.Address() != wire.DefaultStatsAddress {
		t.Errorf("defaults: prefix %q address %q, want %q %q", c.Prefix(), c.Address(), wire.DefaultPrefix, wire.DefaultStatsAddress)
	}
	longest := strings.Repeat("é", client.MaxPrefixLength/2)
	if c := newClient(t, client.Options{Prefix: longest, Address: "tcp://127.0.0.1:1"}); c.Prefix() != longest {
		t.Errorf("prefix %q, want %q", c.Prefix(), longest)
	}
}

func TestValidatePrefix(t *testing.T) {
	cases := []struct {
		prefix string
		ok     bool
	}{
		{"", true},
		{"my_app", true},
		{"café/ünïcode", true},
		{strings.Repeat("x", 255), true},
		{strings.Repeat("x", 256), false},
		{"bad\xffbyte", false},
		{"\xc3", false}, // a truncated two-byte sequence
	}
	for _, tc := range cases {
		err := client.ValidatePrefix(tc.prefix)
		if (err == nil) != tc.ok {
			t.Errorf("ValidatePrefix(%q) = %v, want ok=%v", tc.prefix, err, tc.ok)
		}
	}
}

func TestInvalidPrefixesAreCountedNotSent(t *testing.T) {
	c := newClient(t, client.Options{Address: "tcp://127.0.0.1:1"})
	if c.Start(strings.Repeat("x", 256)) {
		t.Error("Start with a 256-byte prefix was queued")
	}
	if c.Finish("\xff", time.Millisecond, 200) {
		t.Error("Finish with a non-UTF-8 prefix was queued")
	}
	s := c.Stats()
	if s.InvalidPrefix != 2 || s.Errors != 2 || s.Sent != 0 || s.Dropped != 0 {
		t.Errorf("stats %+v, want 2 invalid prefixes counted as errors, nothing else", s)
	}
}

func TestIntegrationStartFinish(t *testing.T) {
	for _, classic := range []bool{false, true} {
		t.Run(fmt.Sprintf("classic=%v", classic), func(t *testing.T) { testStartFinish(t, classic) })
	}
}

func testStartFinish(t *testing.T, classic bool) {
	col := startCollector(t, "tcp://127.0.0.1:*")
	c := newClient(t, client.Options{Address: col.stats, Prefix: "app", Classic: classic})
	// The probes sent while connecting may be dropped: count from here.
	before := connected(t, c, col)

	finishes := []struct {
		d      time.Duration
		status int
	}{
		{1500 * time.Microsecond, 200},
		{0, 204},                   // a 0 ms request is a finish, not a start
		{400 * time.Nanosecond, 0}, // rounds to 0.000 ms; no status
		{-time.Second, 503},        // a clock that went backwards: 0 ms
		{2 * time.Second, 700},     // not an HTTP status: sent without one
		{250 * time.Millisecond, 404},
	}
	for range 3 {
		c.Start("")
		c.Start("other")
	}
	for _, f := range finishes {
		if !c.Finish("", f.d, f.status) {
			t.Fatalf("Finish(%s, %d) not queued", f.d, f.status)
		}
	}
	waitFor(t, 10*time.Second, "the messages to arrive", func() error {
		st := col.statsOf(t)
		if st["app"].Finished != int64(len(finishes)) || st["other"].Started != 3 {
			return fmt.Errorf("app %+v, other %+v", st["app"], st["other"])
		}
		return nil
	})
	st := col.statsOf(t)["app"]
	want := wire.StatusCounts{S2xx: 2, S4xx: 1, S5xx: 1, None: 2}
	if st.Started != 3 || st.Status != want {
		t.Errorf("app: started %d status %+v, want 3 and %+v", st.Started, st.Status, want)
	}
	if st.ProcessingTime.Min != 0 || st.ProcessingTime.Max != 2000 {
		t.Errorf("processing time min %v max %v, want 0 and 2000 ms", st.ProcessingTime.Min, st.ProcessingTime.Max)
	}
	rt, err := col.ctl.RTimes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	wantMS := []wire.Float{1.5, 0, 0, 0, 2000, 250}
	if fmt.Sprint(rt["app"]) != fmt.Sprint(wantMS) {
		t.Errorf("RTIMES app = %v, want %v", rt["app"], wantMS)
	}
	assertNothingRejected(t, col)
	waitFor(t, 10*time.Second, "the client to account for every event", func() error {
		return settled(c, accountedFor(before)+6+uint64(len(finishes)))
	})
	if s := c.Stats(); s.Dropped != before.Dropped || s.Errors != before.Errors {
		t.Errorf("client stats %+v (after connecting %+v), want nothing dropped once connected", s, before)
	}
}

// assertNothingRejected checks that the collector accepted every message.
func assertNothingRejected(t *testing.T, col *collector) {
	t.Helper()
	info, err := col.ctl.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.RejectedTotal != 0 {
		t.Errorf("the collector rejected %d messages: %v", info.RejectedTotal, info.Rejected)
	}
}

func TestIntegrationFullQueueNeverBlocks(t *testing.T) {
	col := startCollector(t, "tcp://127.0.0.1:*")
	c := newClient(t, client.Options{Address: col.stats, Prefix: "flood", QueueSize: 4})
	before := connected(t, c, col)

	// Each goroutine floods for a while, so the sender runs meanwhile.
	const goroutines, flood = 8, 100 * time.Millisecond
	var wg sync.WaitGroup
	var mu sync.Mutex
	var slowest time.Duration
	var total uint64
	for range goroutines {
		wg.Go(func() {
			var worst time.Duration
			var n uint64
			for end := time.Now().Add(flood); time.Now().Before(end); n++ {
				t0 := time.Now()
				c.Finish("", time.Millisecond, 200)
				worst = max(worst, time.Since(t0))
			}
			mu.Lock()
			slowest = max(slowest, worst)
			total += n
			mu.Unlock()
		})
	}
	wg.Wait()
	waitFor(t, 10*time.Second, "the sender to catch up", func() error {
		return settled(c, before.Sent+before.Dropped+before.Errors+total)
	})
	s := c.Stats()
	sent, dropped := s.Sent-before.Sent, s.Dropped-before.Dropped
	t.Logf("%d finishes: %d sent, %d dropped (%d queue full, %d would block); slowest Finish %s",
		total, sent, dropped, s.QueueFull-before.QueueFull, s.WouldBlock-before.WouldBlock, slowest)
	if s.QueueFull == before.QueueFull {
		t.Errorf("a queue of 4 took %d finishes from %d goroutines without dropping any", total, goroutines)
	}
	if sent == 0 {
		t.Error("nothing was sent")
	}
	if s.Errors != 0 {
		t.Errorf("%d errors", s.Errors)
	}
	// A scheduler pause can stretch one call; a blocked one would take
	// far longer.
	if slowest > hangBound {
		t.Errorf("the slowest Finish took %s", slowest)
	}
	// What the client counts as sent is what the collector receives.
	waitFor(t, 10*time.Second, "the sent finishes to arrive", func() error {
		if got := col.statsOf(t)["flood"].Finished; got != int64(sent) {
			return fmt.Errorf("the collector has %d finishes, the client sent %d", got, sent)
		}
		return nil
	})
}

func TestIntegrationDeadCollector(t *testing.T) {
	addr := deadAddress(t)
	c := newClient(t, client.Options{Address: addr, Prefix: "app"})
	srv := newServer(t, c.Middleware(okHandler()))

	const n = 100
	slowest := getAll(t, srv.URL, n)
	t.Logf("%d requests with no collector; slowest %s", n, slowest)
	if slowest > hangBound {
		t.Errorf("a request took %s with no collector listening", slowest)
	}
	waitFor(t, 10*time.Second, "the sender to catch up", func() error { return settled(c, 2*n) })
	// IMMEDIATE: with no connection the socket refuses every message at
	// once; nothing is queued towards the absent collector.
	if s := c.Stats(); s.Sent != 0 || s.WouldBlock != 2*n || s.QueueFull != 0 || s.Errors != 0 {
		t.Errorf("stats %+v, want all %d messages refused by the socket (WouldBlock)", s, 2*n)
	}

	// A collector appears at the address: counting resumes.
	col := startCollector(t, addr)
	t0 := time.Now()
	connected(t, c, col)
	t.Logf("reconnected %s after the collector started", time.Since(t0).Round(time.Millisecond))
	getAll(t, srv.URL, n)
	waitFor(t, 10*time.Second, "the requests to be counted", func() error {
		if st := col.statsOf(t)["app"]; st.Started != n || st.Finished != n || st.Status.S2xx != n {
			return fmt.Errorf("app %+v", st)
		}
		return nil
	})

	t0 = time.Now()
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if d := time.Since(t0); d > closeBound {
		t.Errorf("Close took %s", d)
	}
}

// hangBound tells a request that waited on the collector from a slow one:
// a send that blocked would never return, while a loaded machine running
// the race detector can take seconds to serve a request. Speed itself is
// measured by the benchmarks.
const hangBound = 5 * time.Second

// closeBound tells a Close that returned from one that hung: Close gives
// up on its sender after 5 s (and then returns an error), so a Close that
// takes longer than this is stuck elsewhere. A loaded machine may stretch
// a normal Close well past its usual few milliseconds.
const closeBound = 10 * time.Second

func TestIntegrationCollectorRestart(t *testing.T) {
	// A reserved port: the restarted collector binds it again, and a port
	// from the kernel's port-0 range could be taken meanwhile.
	addr := testport.TCP(t)
	col := startCollector(t, addr)
	c := newClient(t, client.Options{Address: addr, Prefix: "app"})
	srv := newServer(t, c.Middleware(okHandler()))
	before := connected(t, c, col)
	const n = 50
	getAll(t, srv.URL, n)
	waitFor(t, 10*time.Second, "the first requests", func() error {
		if st := col.statsOf(t)["app"]; st.Finished != n {
			return fmt.Errorf("app %+v", st)
		}
		return nil
	})

	col.stop()
	if slowest := getAll(t, srv.URL, n); slowest > hangBound {
		t.Errorf("with the collector stopped, a request took %s", slowest)
	}
	// Every event so far is accounted for before connected probes again.
	waitFor(t, 10*time.Second, "the sender to catch up", func() error {
		return settled(c, accountedFor(before)+4*n)
	})

	col = startCollector(t, addr)
	connected(t, c, col)
	getAll(t, srv.URL, n)
	waitFor(t, 10*time.Second, "the requests after the restart", func() error {
		if st := col.statsOf(t)["app"]; st.Started != n || st.Finished != n {
			return fmt.Errorf("app %+v", st)
		}
		return nil
	})
	s := c.Stats()
	t.Logf("client stats across the restart: %+v", s)
	if s.Errors != 0 {
		t.Errorf("%d errors", s.Errors)
	}
}

func TestCloseIsBoundedAndIdempotent(t *testing.T) {
	c, err := client.New(client.Options{Address: "tcp://127.0.0.1:1", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	for range 1000 {
		c.Start("")
	}
	t0 := time.Now()
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if d := time.Since(t0); d > closeBound {
		t.Errorf("Close took %s", d)
	}
	before := c.Stats()
	if c.Start("") || c.Finish("", time.Millisecond, 200) {
		t.Error("an event was queued after Close")
	}
	s := c.Stats()
	if s.QueueFull != before.QueueFull+2 {
		t.Errorf("after Close: %+v, want the 2 events counted as dropped", s)
	}
	if s.Sent != 0 || s.Dropped+s.Errors != 1002 {
		t.Errorf("stats %+v: every event should be dropped and counted", s)
	}
}

// wouldBlockLogged returns the warnings logged so far and the sum of their
// would_block counts.
func wouldBlockLogged(t *testing.T, out *testbin.Buffer) (warnings []string, sum int) {
	t.Helper()
	for line := range strings.Lines(out.String()) {
		if !strings.Contains(line, "level=WARN") {
			continue
		}
		warnings = append(warnings, line)
		_, after, ok := strings.Cut(line, " would_block=")
		if !ok {
			t.Fatalf("a warning without would_block: %q", line)
		}
		n, _, _ := strings.Cut(after, " ")
		var v int
		if _, err := fmt.Sscan(n, &v); err != nil {
			t.Fatalf("would_block=%q in %q: %v", n, line, err)
		}
		sum += v
	}
	return warnings, sum
}

func TestDropsAreLoggedWithAHint(t *testing.T) {
	var out testbin.Buffer
	log := slog.New(slog.NewTextHandler(&out, nil))
	addr := deadAddress(t)
	const every = 20 * time.Millisecond
	c := newClient(t, client.Options{Address: addr, Logger: log, LogInterval: every})
	for range 10 {
		c.Start("")
	}
	// Usually one warning counts all 10; on a loaded machine a LogInterval
	// may end between two of the Start calls, and two warnings share them.
	// Either way every drop is logged once.
	var warnings []string
	waitFor(t, 10*time.Second, "warnings for all 10 drops", func() error {
		var sum int
		if warnings, sum = wouldBlockLogged(t, &out); sum != 10 {
			return fmt.Errorf("would_block adds up to %d; log so far: %q", sum, out.String())
		}
		return nil
	})
	for _, want := range []string{"messages not sent", "collector=" + addr, "no collector is connected"} {
		if !strings.Contains(warnings[0], want) {
			t.Errorf("warning %q does not contain %q", warnings[0], want)
		}
	}
	// Nothing new, nothing logged: let several intervals pass, then drop
	// one more event and wait for its warning. A warning logged for the
	// quiet intervals would come before it (with would_block=0).
	quiet := time.Now()
	for time.Since(quiet) < 5*every {
		time.Sleep(every)
	}
	c.Start("")
	var after []string
	waitFor(t, 10*time.Second, "the warning for the 11th drop", func() error {
		var sum int
		if after, sum = wouldBlockLogged(t, &out); sum != 11 {
			return fmt.Errorf("would_block adds up to %d; log so far: %q", sum, out.String())
		}
		return nil
	})
	if len(after) != len(warnings)+1 {
		t.Errorf("%d warnings for two bursts of drops (%d for the first), want one more for the second:\n%s",
			len(after), len(warnings), out.String())
	}
}

func TestConcurrentUseWithClose(t *testing.T) {
	// Under -race: Start, Finish, Stats and Close from many goroutines.
	c, err := client.New(client.Options{Address: "tcp://127.0.0.1:1", QueueSize: 16, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for j := range 2000 {
				c.Start("")
				c.Finish(fmt.Sprint("p", i), time.Duration(j), 200)
				_ = c.Stats()
			}
		})
	}
	// Close while the callers are at work: once some of their events are
	// counted (a fixed sleep could end before any goroutine ran).
	waitFor(t, 10*time.Second, "the callers to start", func() error {
		if s := c.Stats(); s.Dropped == 0 {
			return fmt.Errorf("nothing counted yet: %+v", s)
		}
		return nil
	})
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	wg.Wait()
	if s := c.Stats(); s.Sent != 0 || s.Dropped == 0 {
		t.Errorf("stats %+v", s)
	}
}

// TestIntegrationPackedOnTheWire reads what the client sends from a plain
// PULL socket: packed messages within MaxPackedBytes by default, classic
// messages with Classic or for a prefix holding a tab.
func TestIntegrationPackedOnTheWire(t *testing.T) {
	for _, classic := range []bool{false, true} {
		t.Run(fmt.Sprintf("classic=%v", classic), func(t *testing.T) {
			pull, err := zmq.NewSocket(zmq.PULL)
			if err != nil {
				t.Fatal(err)
			}
			defer pull.Close()
			_ = pull.SetLinger(0)
			if err := pull.Bind("tcp://127.0.0.1:*"); err != nil {
				t.Fatal(err)
			}
			addr, _ := pull.GetLastEndpoint()
			c := newClient(t, client.Options{Address: addr, Prefix: strings.Repeat("p", 200), Classic: classic, QueueSize: 1 << 14, SendHWM: 1 << 14})
			// Until the connection is up, events are refused: probe.
			_ = pull.SetRcvtimeo(20 * time.Millisecond)
			probes, received := uint64(0), uint64(0)
			waitFor(t, 10*time.Second, "a probe", func() error {
				c.Start("probe")
				probes++
				frames, err := pull.RecvMessageBytes(0)
				if err != nil {
					return err
				}
				received += eventsIn(t, frames)
				return nil
			})
			// Take every probe the client sent off the socket, so that
			// none is counted below: a quiet spell does not prove that
			// none is still on its way.
			waitFor(t, 10*time.Second, "the sender to catch up", func() error { return settled(c, probes) })
			before := c.Stats()
			_ = pull.SetRcvtimeo(10 * time.Second)
			for received < before.Sent {
				frames, err := pull.RecvMessageBytes(0)
				if err != nil {
					t.Fatalf("after %d of the %d probes sent: %v", received, before.Sent, err)
				}
				received += eventsIn(t, frames)
			}
			const n = 3000
			for i := range n {
				c.Start("")
				c.Finish("", time.Duration(i)*time.Microsecond, 200)
			}
			c.Start("tab\there")
			var events, packed, plain int
			for events < 2*n+1 {
				frames, err := pull.RecvMessageBytes(0)
				if err != nil {
					t.Fatalf("after %d events: %v", events, err)
				}
				if wire.IsBatch(frames) {
					packed++
					if len(frames[0]) > client.MaxPackedBytes {
						t.Fatalf("packed message of %d bytes", len(frames[0]))
					}
					wire.ParseBatch(frames[0], wire.Limits{MaxPrefixLength: 255, MaxDuration: 1e9}, func(_ wire.Message, err error) {
						if err != nil {
							t.Fatalf("packed event rejected: %v", err)
						}
						events++
					})
					continue
				}
				if _, err := wire.ParseMessage(frames, wire.Limits{MaxPrefixLength: 255, MaxDuration: 1e9}); err != nil {
					t.Fatalf("classic message rejected: %v", err)
				}
				plain++
				events++
			}
			if classic && (packed != 0 || plain != 2*n+1) {
				t.Errorf("classic client: %d packed and %d classic messages, want 0 and %d", packed, plain, 2*n+1)
			}
			if !classic && (plain != 1 || packed == 0 || packed > 2*n/10) {
				t.Errorf("packing client: %d packed and %d classic messages, want 1 classic (the tab) and at most %d packed", packed, plain, 2*n/10)
			}
			// The sender counts a message after the socket took it: the
			// reader may have it first.
			waitFor(t, 10*time.Second, "the sender to catch up", func() error { return settled(c, accountedFor(before)+2*n+1) })
			if s := c.Stats(); s.Sent-before.Sent != 2*n+1 || s.Dropped != before.Dropped {
				t.Errorf("client stats %+v (before %+v), want %d more sent and nothing dropped", s, before, 2*n+1)
			}
		})
	}
}

// eventsIn returns the number of events in a message: those of a packed
// message, or 1.
func eventsIn(t *testing.T, frames [][]byte) uint64 {
	t.Helper()
	if !wire.IsBatch(frames) {
		return 1
	}
	n, _ := wire.ParseBatch(frames[0], wire.Limits{MaxPrefixLength: 255, MaxDuration: 1e9}, func(_ wire.Message, err error) {
		if err != nil {
			t.Fatalf("packed event rejected: %v", err)
		}
	})
	return uint64(n)
}
