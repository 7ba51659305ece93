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
	"github.com/gstats/gstats/wire"
)

// deadAddress returns a loopback address nothing listens on: a port a
// collector had bound and released.
func deadAddress(t *testing.T) string {
	t.Helper()
	col := startCollector(t, "tcp://127.0.0.1:*")
	addr := col.stats
	col.stop()
	return addr
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
	connected(t, c, col)

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
	if s := c.Stats(); s.Dropped != 0 || s.Errors != 0 {
		t.Errorf("client stats %+v, want nothing dropped", s)
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
	connected(t, c, col)
	before := c.Stats()

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
	if slowest > time.Second {
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
	waitFor(t, 5*time.Second, "the sender to catch up", func() error { return settled(c, 2*n) })
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
	if d := time.Since(t0); d > time.Second {
		t.Errorf("Close took %s", d)
	}
}

// hangBound tells a request that waited on the collector from a slow one:
// a send that blocked would never return, while a loaded machine running
// the race detector can take a good part of a second to serve a request.
// Speed itself is measured by the benchmarks.
const hangBound = 2 * time.Second

func TestIntegrationCollectorRestart(t *testing.T) {
	col := startCollector(t, "tcp://127.0.0.1:*")
	addr := col.stats
	c := newClient(t, client.Options{Address: addr, Prefix: "app"})
	srv := newServer(t, c.Middleware(okHandler()))
	connected(t, c, col)
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
	if d := time.Since(t0); d > time.Second {
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

func TestDropsAreLoggedWithAHint(t *testing.T) {
	var out testbin.Buffer
	log := slog.New(slog.NewTextHandler(&out, nil))
	c := newClient(t, client.Options{Address: "tcp://127.0.0.1:1", Logger: log, LogInterval: 20 * time.Millisecond})
	for range 10 {
		c.Start("")
	}
	waitFor(t, 5*time.Second, "a warning", func() error {
		if !strings.Contains(out.String(), "level=WARN") {
			return fmt.Errorf("log so far: %q", out.String())
		}
		return nil
	})
	text := out.String()
	for _, want := range []string{"messages not sent", "collector=tcp://127.0.0.1:1", "would_block=10", "no collector is connected"} {
		if !strings.Contains(text, want) {
			t.Errorf("warning %q does not contain %q", text, want)
		}
	}
	// Nothing new, nothing logged.
	time.Sleep(100 * time.Millisecond)
	if n := strings.Count(out.String(), "level=WARN"); n != 1 {
		t.Errorf("%d warnings for one burst of drops:\n%s", n, out.String())
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
	time.Sleep(5 * time.Millisecond)
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
			waitFor(t, 10*time.Second, "a probe", func() error {
				c.Start("probe")
				if _, err := pull.RecvMessageBytes(0); err != nil {
					return err
				}
				return nil
			})
			for {
				if _, err := pull.RecvMessageBytes(0); err != nil {
					break
				}
			}
			before := c.Stats()
			const n = 3000
			for i := range n {
				c.Start("")
				c.Finish("", time.Duration(i)*time.Microsecond, 200)
			}
			c.Start("tab\there")
			_ = pull.SetRcvtimeo(5 * time.Second)
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
			if s := c.Stats(); s.Sent-before.Sent != 2*n+1 || s.Dropped != before.Dropped {
				t.Errorf("client stats %+v (before %+v), want %d more sent and nothing dropped", s, before, 2*n+1)
			}
		})
	}
}
