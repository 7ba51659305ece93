package client_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gstats/gstats/client"
	"github.com/gstats/gstats/wire"
)

// newServer serves h on loopback until cleanup; net/http's own log (a
// panicking handler's stack) is discarded.
func newServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

func okHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})
}

var httpClient = &http.Client{Timeout: 10 * time.Second}

// get requests url and returns the status code, or 0 when the server
// closed the connection without a response.
func get(t *testing.T, url string) int {
	t.Helper()
	return do(t, http.MethodGet, url)
}

// do sends a request without a body. Use POST for a handler that panics:
// the transport retries an idempotent request (GET) when the server closed
// a reused connection without answering, and the handler would run twice.
func do(t *testing.T, method, url string) int {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		if errors.Is(err, io.EOF) || strings.Contains(err.Error(), "EOF") {
			return 0
		}
		t.Errorf("%s %s: %v", method, url, err)
		return -1
	}
	defer func() { _ = resp.Body.Close() }()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Errorf("%s %s: reading the body: %v", method, url, err)
	}
	return resp.StatusCode
}

// getAll requests url n times in a row, expecting 200, and returns the
// slowest request's latency.
func getAll(t *testing.T, url string, n int) time.Duration {
	t.Helper()
	var slowest time.Duration
	for range n {
		t0 := time.Now()
		if code := get(t, url); code != http.StatusOK {
			t.Fatalf("GET %s: status %d", url, code)
		}
		slowest = max(slowest, time.Since(t0))
	}
	return slowest
}

func mustHandler(t *testing.T, c *client.Client, prefix string, h http.HandlerFunc) http.Handler {
	t.Helper()
	wrapped, err := c.Handler(prefix, h)
	if err != nil {
		t.Fatal(err)
	}
	return wrapped
}

func TestHandlerRejectsBadPrefix(t *testing.T) {
	c := newClient(t, client.Options{Address: "tcp://127.0.0.1:1"})
	for _, p := range []string{strings.Repeat("p", 256), "\xfe"} {
		if _, err := c.Handler(p, okHandler()); err == nil {
			t.Errorf("Handler(%q) accepted", p)
		}
	}
}

func TestIntegrationMiddleware(t *testing.T) {
	col := startCollector(t, "tcp://127.0.0.1:*")
	c := newClient(t, client.Options{Address: col.stats, Prefix: "app"})
	const sleep = 30 * time.Millisecond
	mux := http.NewServeMux()
	mux.Handle("/fast", c.Middleware(okHandler()))
	mux.Handle("/slow", mustHandler(t, c, "slow", func(w http.ResponseWriter, _ *http.Request) {
		time.Sleep(sleep)
		_, _ = io.WriteString(w, "slow\n")
	}))
	mux.Handle("/missing", mustHandler(t, c, "missing", http.NotFound))
	mux.Handle("/fail", mustHandler(t, c, "fail", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "failed", http.StatusInternalServerError)
	}))
	mux.Handle("/panic", mustHandler(t, c, "panic", func(http.ResponseWriter, *http.Request) {
		panic("handler bug")
	}))
	srv := newServer(t, mux)
	// The probes sent while connecting may be dropped (the socket refuses
	// them until the connection is up): count from here.
	before := connected(t, c, col)

	// Sequential and concurrent requests.
	type load struct {
		method, path string
		workers, by  int
		status       int
	}
	loads := []load{
		{"GET", "/fast", 1, 40, 200},
		{"GET", "/fast", 8, 10, 200},
		{"GET", "/slow", 10, 2, 200},
		{"GET", "/missing", 4, 5, 404},
		{"GET", "/fail", 2, 5, 500},
		{"POST", "/panic", 1, 5, 0}, // the server drops the connection
	}
	var wg sync.WaitGroup
	for _, l := range loads {
		for range l.workers {
			wg.Go(func() {
				for range l.by {
					if got := do(t, l.method, srv.URL+l.path); got != l.status {
						t.Errorf("%s %s: status %d, want %d", l.method, l.path, got, l.status)
					}
				}
			})
		}
	}
	wg.Wait()
	var requests uint64
	for _, l := range loads {
		requests += uint64(l.workers * l.by)
	}

	want := map[string]wire.StatusCounts{
		"app":     {S2xx: 120},
		"slow":    {S2xx: 20},
		"missing": {S4xx: 20},
		"fail":    {S5xx: 10},
		"panic":   {S5xx: 5},
	}
	waitFor(t, 10*time.Second, "every request to be counted", func() error {
		st := col.statsOf(t)
		for prefix, status := range want {
			n := status.S2xx + status.S4xx + status.S5xx
			if got := st[prefix]; got.Started != n || got.Finished != n {
				return fmt.Errorf("%s: started %d finished %d, want %d", prefix, got.Started, got.Finished, n)
			}
		}
		return nil
	})
	st := col.statsOf(t)
	for prefix, status := range want {
		if got := st[prefix]; got.Status != status || got.InFlight != 0 {
			t.Errorf("%s: status %+v in flight %d, want %+v and 0", prefix, got.Status, got.InFlight, status)
		}
	}
	rt, err := col.ctl.RTimes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(rt["slow"]) != 20 {
		t.Fatalf("RTIMES slow has %d durations, want 20", len(rt["slow"]))
	}
	// Durations are the handler's, timed on the server, in milliseconds:
	// at least the sleep. The upper bound is a hang bound, not a speed
	// test (a loaded machine under -race may stretch a request to
	// seconds): it catches a wrong unit (microseconds would read 30000)
	// or a duration taken from the wrong clock.
	sleepMS := wire.Float(sleep.Seconds() * 1000)
	const boundMS = 10_000
	for _, d := range rt["slow"] {
		if d < sleepMS || d > sleepMS+boundMS {
			t.Errorf("slow request took %v ms, want at least %v ms and less than %v ms more", d, sleepMS, boundMS)
		}
	}
	for _, d := range rt["app"] {
		if d > boundMS {
			t.Errorf("a fast request took %v ms", d)
		}
	}
	assertNothingRejected(t, col)
	// Every request's start and finish is accounted for, and none was
	// dropped or failed once the client was connected.
	waitFor(t, 10*time.Second, "the client to account for every request", func() error {
		return settled(c, accountedFor(before)+2*requests)
	})
	if s := c.Stats(); s.Dropped != before.Dropped || s.Errors != before.Errors {
		t.Errorf("client stats %+v (after connecting %+v), want nothing dropped once connected", s, before)
	}
}

// statusCases are handlers and the status class the middleware must
// report for them.
var statusCases = []struct {
	name  string
	class string // "2xx" ... or "none"
	h     http.HandlerFunc
}{
	{"writes nothing", "2xx", func(http.ResponseWriter, *http.Request) {}},
	{"body without WriteHeader", "2xx", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("x")) }},
	{"WriteString", "2xx", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "x") }},
	{"ReadFrom", "2xx", func(w http.ResponseWriter, _ *http.Request) {
		// A LimitReader has no WriteTo, so io.Copy uses w's ReadFrom.
		_, _ = io.Copy(w, io.LimitReader(strings.NewReader("xyz"), 2))
	}},
	{"Flush first", "2xx", func(w http.ResponseWriter, _ *http.Request) { w.(http.Flusher).Flush() }},
	{"204", "2xx", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }},
	{"second WriteHeader ignored", "2xx", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusCreated)
		w.WriteHeader(http.StatusInternalServerError)
	}},
	{"redirect", "3xx", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/elsewhere", http.StatusFound) }},
	{"404", "4xx", http.NotFound},
	{"early hints, then 503", "5xx", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusEarlyHints)
		w.WriteHeader(http.StatusServiceUnavailable)
	}},
	{"panic", "5xx", func(http.ResponseWriter, *http.Request) { panic("bug") }},
	{"panic after 200", "5xx", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("partial"))
		panic("bug")
	}},
	{"ErrAbortHandler", "5xx", func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) }},
	{"hijacked", "none", func(w http.ResponseWriter, _ *http.Request) {
		conn, brw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			panic(err)
		}
		defer func() { _ = conn.Close() }()
		_, _ = brw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
		_ = brw.Flush()
	}},
	{"hijacked through ResponseController", "none", func(w http.ResponseWriter, _ *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			panic(err)
		}
		defer func() { _ = conn.Close() }()
		_, _ = brw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
		_ = brw.Flush()
	}},
}

func TestIntegrationMiddlewareStatus(t *testing.T) {
	col := startCollector(t, "tcp://127.0.0.1:*")
	c := newClient(t, client.Options{Address: col.stats})
	mux := http.NewServeMux()
	for i, tc := range statusCases {
		mux.Handle(fmt.Sprintf("/%d", i), mustHandler(t, c, fmt.Sprintf("case%d", i), tc.h))
	}
	srv := newServer(t, mux)
	connected(t, c, col)
	// One after the other, so the pooled writers are reused from case to
	// case.
	for i := range statusCases {
		do(t, http.MethodPost, fmt.Sprintf("%s/%d", srv.URL, i))
	}
	waitFor(t, 10*time.Second, "every case to be counted", func() error {
		st := col.statsOf(t)
		for i := range statusCases {
			if st[fmt.Sprintf("case%d", i)].Finished != 1 {
				return fmt.Errorf("case %d (%s) not finished yet", i, statusCases[i].name)
			}
		}
		return nil
	})
	st := col.statsOf(t)
	for i, tc := range statusCases {
		got := st[fmt.Sprintf("case%d", i)]
		classes := map[string]int64{"1xx": got.Status.S1xx, "2xx": got.Status.S2xx, "3xx": got.Status.S3xx,
			"4xx": got.Status.S4xx, "5xx": got.Status.S5xx, "none": got.Status.None}
		if classes[tc.class] != 1 || got.Started != 1 {
			t.Errorf("%s: started %d, status %v, want one %s", tc.name, got.Started, classes, tc.class)
		}
	}
	assertNothingRejected(t, col)
}

func TestPanicGoesOnUnchanged(t *testing.T) {
	c := newClient(t, client.Options{Address: "tcp://127.0.0.1:1"})
	type bug struct{ n int }
	value := &bug{42}
	h := c.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic(value) }))
	got := func() (p any) {
		defer func() { p = recover() }()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
		return nil
	}()
	if got != value {
		t.Fatalf("recovered %v, want the handler's own panic value %v", got, value)
	}
	// Start and finish both went to the sender.
	waitFor(t, 10*time.Second, "start and finish", func() error { return settled(c, 2) })
}

func TestHTTP1PassThrough(t *testing.T) {
	c := newClient(t, client.Options{Address: "tcp://127.0.0.1:1"})
	firstRead := make(chan struct{})
	var checks problems
	srv := newServer(t, c.Middleware(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, isFlusher := w.(http.Flusher)
		_, isHijacker := w.(http.Hijacker)
		_, isReaderFrom := w.(io.ReaderFrom)
		if !isFlusher || !isHijacker || !isReaderFrom {
			checks.add(fmt.Sprintf("Flusher %v, Hijacker %v, ReaderFrom %v; want all three", isFlusher, isHijacker, isReaderFrom))
		}
		rc := http.NewResponseController(w)
		if err := rc.SetWriteDeadline(time.Now().Add(time.Minute)); err != nil {
			checks.add("SetWriteDeadline: " + err.Error())
		}
		if err := rc.SetReadDeadline(time.Now().Add(time.Minute)); err != nil {
			checks.add("SetReadDeadline: " + err.Error())
		}
		if err := rc.EnableFullDuplex(); err != nil {
			checks.add("EnableFullDuplex: " + err.Error())
		}
		_, _ = io.WriteString(w, "first\n")
		if err := rc.Flush(); err != nil {
			checks.add("Flush: " + err.Error())
		}
		// The client reads the first line before the handler returns
		// only if Flush went through.
		select {
		case <-firstRead:
		case <-time.After(30 * time.Second): // a hang bound
			checks.add("the client never read the flushed line")
		}
		_, _ = io.WriteString(w, "second\n")
	})))
	resp, err := httpClient.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	if err != nil || line != "first\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	close(firstRead)
	rest, err := io.ReadAll(br)
	if err != nil || string(rest) != "second\n" {
		t.Fatalf("rest %q, %v", rest, err)
	}
	checks.report(t)
}

func TestHTTP2PassThrough(t *testing.T) {
	c := newClient(t, client.Options{Address: "tcp://127.0.0.1:1"})
	var checks problems
	srv := httptest.NewUnstartedServer(c.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, isFlusher := w.(http.Flusher)
		_, isPusher := w.(http.Pusher)
		_, isHijacker := w.(http.Hijacker)
		if !isFlusher || !isPusher || isHijacker {
			checks.add(fmt.Sprintf("%s: Flusher %v, Pusher %v, Hijacker %v; want true, true, false", r.Proto, isFlusher, isPusher, isHijacker))
		}
		rc := http.NewResponseController(w)
		if err := rc.SetWriteDeadline(time.Now().Add(time.Minute)); err != nil {
			checks.add("SetWriteDeadline: " + err.Error())
		}
		_, _ = io.WriteString(w, "h2\n")
		if err := rc.Flush(); err != nil {
			checks.add("Flush: " + err.Error())
		}
	})))
	srv.EnableHTTP2 = true
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	hc := srv.Client()
	hc.Timeout = 10 * time.Second
	resp, err := hc.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(resp.Body)
	if resp.ProtoMajor != 2 || string(body) != "h2\n" {
		t.Fatalf("%s %q, want HTTP/2 and h2", resp.Proto, body)
	}
	checks.report(t)
}

// problems collects what a handler found wrong, for the test to report.
type problems struct {
	mu   sync.Mutex
	list []string
}

func (p *problems) add(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.list = append(p.list, s)
}

func (p *problems) report(t *testing.T) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.list {
		t.Error(s)
	}
}

// hijackOnly is a ResponseWriter that can hijack but not flush: the
// middleware hides its Hijack from type assertions, and
// http.ResponseController still finds it.
type hijackOnly struct {
	http.ResponseWriter
	hijacked bool
}

func (h *hijackOnly) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h.hijacked = true
	return nil, nil, nil
}

// plainWriter has nothing but the three ResponseWriter methods.
type plainWriter struct{ http.ResponseWriter }

func TestOtherWriters(t *testing.T) {
	c := newClient(t, client.Options{Address: "tcp://127.0.0.1:1"})
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	serve := func(w http.ResponseWriter, h http.HandlerFunc) { c.Middleware(h).ServeHTTP(w, req) }

	t.Run("httptest.ResponseRecorder", func(t *testing.T) {
		rec := httptest.NewRecorder()
		serve(rec, func(w http.ResponseWriter, _ *http.Request) {
			if _, ok := w.(http.Flusher); !ok {
				t.Error("not a Flusher")
			}
			if _, ok := w.(http.Hijacker); ok {
				t.Error("a Hijacker")
			}
			w.(http.Flusher).Flush()
		})
		if !rec.Flushed {
			t.Error("Flush did not reach the recorder")
		}
	})
	t.Run("plain", func(t *testing.T) {
		serve(plainWriter{httptest.NewRecorder()}, func(w http.ResponseWriter, _ *http.Request) {
			if _, ok := w.(http.Flusher); ok {
				t.Error("a Flusher over a writer that cannot flush")
			}
			if err := http.NewResponseController(w).Flush(); !errors.Is(err, http.ErrNotSupported) {
				t.Errorf("ResponseController.Flush = %v, want ErrNotSupported", err)
			}
		})
	})
	t.Run("hijacker without flusher", func(t *testing.T) {
		hw := &hijackOnly{ResponseWriter: plainWriter{httptest.NewRecorder()}}
		serve(hw, func(w http.ResponseWriter, _ *http.Request) {
			if _, _, err := http.NewResponseController(w).Hijack(); err != nil {
				t.Errorf("ResponseController.Hijack: %v", err)
			}
		})
		if !hw.hijacked {
			t.Error("Hijack did not reach the writer")
		}
	})
	t.Run("Unwrap", func(t *testing.T) {
		rec := httptest.NewRecorder()
		serve(rec, func(w http.ResponseWriter, _ *http.Request) {
			u, ok := w.(interface{ Unwrap() http.ResponseWriter })
			if !ok || u.Unwrap() != rec {
				t.Errorf("Unwrap: %v, want the server's writer", ok)
			}
		})
	})
}
