package wire_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/gstats/gstats/wire"
)

// slack is how much longer than its timeout a request may take to fail:
// creating and terminating a zmq context, and a loaded test machine.
const slack = 2 * time.Second

// controlServer is a control socket bound to an ephemeral loopback port
// and owned by one goroutine, which creates, serves and closes it.
type controlServer struct {
	endpoint string
	// requests receives every request, in arrival order (a request is
	// dropped if nobody reads and 1000 are waiting).
	requests chan string
}

// startControlServer starts a REP server that answers each request with
// answer(request), or, with answer nil, a ROUTER that reads requests and
// never answers. The server stops in t.Cleanup: terminating its context
// wakes the owner goroutine with ETERM, and it closes the socket.
func startControlServer(t *testing.T, answer func(req string) []byte) *controlServer {
	t.Helper()
	zctx, err := zmq.NewContext()
	if err != nil {
		t.Fatalf("creating zmq context: %v; is libzmq installed? (apt-get install libzmq3-dev)", err)
	}
	srv := &controlServer{requests: make(chan string, 1000)}
	ready := make(chan error, 1)
	done := make(chan error, 1)
	go func() { done <- srv.serve(zctx, answer, ready) }()
	if err := <-ready; err != nil {
		<-done
		_ = zctx.Term()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := zctx.Term(); err != nil {
			t.Errorf("terminating the server's zmq context: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("control server: %v", err)
		}
	})
	return srv
}

// serve owns the server socket. It reports on ready once bound, and
// returns nil when the context is terminated.
func (s *controlServer) serve(zctx *zmq.Context, answer func(string) []byte, ready chan<- error) error {
	typ := zmq.REP
	if answer == nil {
		typ = zmq.ROUTER
	}
	sock, err := zctx.NewSocket(typ)
	if err != nil {
		ready <- fmt.Errorf("creating %s socket: %w", typ, err)
		return nil
	}
	defer func() { _ = sock.Close() }()
	if err := sock.SetLinger(0); err != nil {
		ready <- err
		return nil
	}
	if err := sock.Bind("tcp://127.0.0.1:*"); err != nil {
		ready <- fmt.Errorf("binding %s socket: %w", typ, err)
		return nil
	}
	if s.endpoint, err = sock.GetLastEndpoint(); err != nil {
		ready <- err
		return nil
	}
	ready <- nil
	for {
		msg, err := sock.RecvMessageBytes(0)
		if err != nil {
			if zmq.AsErrno(err) == zmq.ETERM {
				return nil
			}
			return fmt.Errorf("receiving: %w", err)
		}
		req := string(msg[len(msg)-1]) // a ROUTER also gets the peer id and an empty frame
		select {
		case s.requests <- req:
		default:
		}
		if answer == nil {
			continue
		}
		if _, err := sock.SendBytes(answer(req), 0); err != nil {
			if zmq.AsErrno(err) == zmq.ETERM {
				return nil
			}
			return fmt.Errorf("sending: %w", err)
		}
	}
}

// nextRequest waits for the server's next request.
func (s *controlServer) nextRequest(t *testing.T) string {
	t.Helper()
	select {
	case r := <-s.requests:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("the server got no request within 10s")
		return ""
	}
}

// deadAddress returns a loopback endpoint where nothing listens: a port
// that was just bound by a REP socket and released.
func deadAddress(t *testing.T) string {
	t.Helper()
	zctx, err := zmq.NewContext()
	if err != nil {
		t.Fatalf("creating zmq context: %v", err)
	}
	sock, err := zctx.NewSocket(zmq.REP)
	if err != nil {
		t.Fatalf("creating REP socket: %v", err)
	}
	_ = sock.SetLinger(0)
	if err := sock.Bind("tcp://127.0.0.1:*"); err != nil {
		t.Fatalf("binding REP socket: %v", err)
	}
	ep, err := sock.GetLastEndpoint()
	if err != nil {
		t.Fatal(err)
	}
	if err := sock.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zctx.Term(); err != nil {
		t.Fatal(err)
	}
	return ep
}

func TestNewClientDefaults(t *testing.T) {
	if got := wire.NewClient(wire.ClientOptions{}).Address(); got != wire.DefaultCommAddress {
		t.Errorf("default address %q, want %q", got, wire.DefaultCommAddress)
	}
	if got := wire.NewClient(wire.ClientOptions{Address: "ipc:///x"}).Address(); got != "ipc:///x" {
		t.Errorf("address %q, want ipc:///x", got)
	}
}

// TestIntegrationClientReplies checks that each command sends the right
// frame and decodes its reply.
func TestIntegrationClientReplies(t *testing.T) {
	golden, err := os.ReadFile(filepath.Join("testdata", "stats.golden"))
	if err != nil {
		t.Fatal(err)
	}
	info := wire.InfoReply{Version: "1.0.0", WindowSeconds: 600, WindowSlots: 60, Percentiles: []float64{50, 99.9},
		Rejected: map[wire.Reason]int64{wire.ReasonNonFinite: 3}, Commands: map[string]int64{"STATS": 1}}
	infoJSON, err := json.Marshal(info)
	if err != nil {
		t.Fatal(err)
	}
	const original = `{"my_app": {"started": 1234, "finished": 1200, "processing_time": {"avg": 153.2, "std": 20.1}}}`
	replies := map[string][]byte{
		"STATS":  golden,
		"RTIMES": []byte(`{"my_app": [12.5, 0.0, 153.0], "idle": []}`),
		"INFO":   infoJSON,
		"RESET":  []byte("null"),
		"QUIT":   []byte("null"),
	}
	var mu sync.Mutex
	srv := startControlServer(t, func(req string) []byte {
		mu.Lock()
		defer mu.Unlock()
		if r, ok := replies[req]; ok {
			return r
		}
		return []byte(wire.ReplyError)
	})
	c := wire.NewClient(wire.ClientOptions{Address: srv.endpoint, Timeout: 5 * time.Second})
	ctx := t.Context()

	cases := []struct {
		cmd  string
		call func() (any, error)
		want any
	}{
		{"STATS", func() (any, error) { return c.Stats(ctx) }, fullStatsReply()},
		{"RTIMES", func() (any, error) { return c.RTimes(ctx) }, wire.RTimesReply{"my_app": {12.5, 0, 153}, "idle": {}}},
		{"INFO", func() (any, error) { return c.Info(ctx) }, info},
		{"RESET", func() (any, error) { return nil, c.Reset(ctx) }, nil},
		{"QUIT", func() (any, error) { return nil, c.Quit(ctx) }, nil},
	}
	for _, tc := range cases {
		t.Run(tc.cmd, func(t *testing.T) {
			got, err := tc.call()
			if err != nil {
				t.Fatalf("%s: %v", tc.cmd, err)
			}
			if req := srv.nextRequest(t); req != tc.cmd {
				t.Errorf("the client sent %q, want %q", req, tc.cmd)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("%s decoded as\n%+v\nwant\n%+v", tc.cmd, got, tc.want)
			}
		})
	}

	t.Run("original STATS reply", func(t *testing.T) {
		mu.Lock()
		replies["STATS"] = []byte(original)
		mu.Unlock()
		got, err := c.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		srv.nextRequest(t)
		want := wire.StatsReply{"my_app": {Started: 1234, Finished: 1200, ProcessingTime: wire.ProcessingTime{Avg: 153.2, Std: 20.1}}}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got %+v, want %+v", got, want)
		}
	})

	t.Run("Do returns the raw reply", func(t *testing.T) {
		got, err := c.Do(ctx, "RTIMES")
		if err != nil {
			t.Fatal(err)
		}
		srv.nextRequest(t)
		if !bytes.Equal(got, replies["RTIMES"]) {
			t.Errorf("Do(RTIMES) = %q, want %q", got, replies["RTIMES"])
		}
	})
}

// TestIntegrationClientCommandRefused checks that an ERROR answer is
// reported as ErrCommandRefused, naming the command and the address.
func TestIntegrationClientCommandRefused(t *testing.T) {
	srv := startControlServer(t, func(string) []byte { return []byte(wire.ReplyError) })
	c := wire.NewClient(wire.ClientOptions{Address: srv.endpoint, Timeout: 5 * time.Second})
	ctx := t.Context()
	calls := map[string]func() error{
		"STATS":  func() error { _, err := c.Stats(ctx); return err },
		"RTIMES": func() error { _, err := c.RTimes(ctx); return err },
		"INFO":   func() error { _, err := c.Info(ctx); return err },
		"RESET":  func() error { return c.Reset(ctx) },
		"QUIT":   func() error { return c.Quit(ctx) },
	}
	for cmd, call := range calls {
		err := call()
		if !errors.Is(err, wire.ErrCommandRefused) {
			t.Errorf("%s answered ERROR: error %v, want wire.ErrCommandRefused", cmd, err)
			continue
		}
		if errors.Is(err, wire.ErrNoReply) || !strings.Contains(err.Error(), cmd) || !strings.Contains(err.Error(), srv.endpoint) {
			t.Errorf("%s: error %q should name the command and %s", cmd, err, srv.endpoint)
		}
		if req := srv.nextRequest(t); req != cmd {
			t.Errorf("sent %q, want %q", req, cmd)
		}
	}
	// Do hands back the raw ERROR: telling it apart is the caller's job.
	reply, err := c.Do(ctx, "BOGUS")
	if err != nil || !wire.IsErrorReply(reply) {
		t.Errorf("Do(BOGUS) = %q, %v; want ERROR, nil", reply, err)
	}
}

// TestIntegrationClientBadReply checks that a reply that is neither JSON
// nor ERROR is an error that says so.
func TestIntegrationClientBadReply(t *testing.T) {
	srv := startControlServer(t, func(string) []byte { return []byte("<html>") })
	c := wire.NewClient(wire.ClientOptions{Address: srv.endpoint, Timeout: 5 * time.Second})
	_, err := c.Stats(t.Context())
	if err == nil || errors.Is(err, wire.ErrCommandRefused) || errors.Is(err, wire.ErrNoReply) ||
		!strings.Contains(err.Error(), "not valid JSON") || !strings.Contains(err.Error(), srv.endpoint) {
		t.Errorf("STATS answered <html>: error %v, want one saying the reply from %s is not valid JSON", err, srv.endpoint)
	}
}

// TestIntegrationClientNoReply checks that a request nobody answers fails
// with ErrNoReply after the timeout, and says where it was sent.
func TestIntegrationClientNoReply(t *testing.T) {
	cases := []struct {
		name    string
		address func(t *testing.T) string
	}{
		{"nothing listens", deadAddress},
		{"peer never answers", func(t *testing.T) string { return startControlServer(t, nil).endpoint }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr := tc.address(t)
			const timeout = 300 * time.Millisecond
			c := wire.NewClient(wire.ClientOptions{Address: addr, Timeout: timeout})
			began := time.Now()
			_, err := c.Stats(t.Context())
			took := time.Since(began)
			if !errors.Is(err, wire.ErrNoReply) {
				t.Fatalf("error %v, want wire.ErrNoReply", err)
			}
			if took > timeout+slack {
				t.Errorf("gave up after %s, the timeout is %s", took, timeout)
			}
			for _, part := range []string{"STATS", addr, "300ms", "gstats-collectd"} {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("error %q does not contain %q", err, part)
				}
			}
		})
	}
}

// TestIntegrationClientContext checks that the context bounds a request.
func TestIntegrationClientContext(t *testing.T) {
	t.Run("cancelled while waiting", func(t *testing.T) {
		srv := startControlServer(t, nil)
		c := wire.NewClient(wire.ClientOptions{Address: srv.endpoint, Timeout: time.Minute})
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		errc := make(chan error, 1)
		go func() { _, err := c.Stats(ctx); errc <- err }()
		srv.nextRequest(t) // the client is now waiting for the reply
		cancel()
		cancelled := time.Now()
		select {
		case err := <-errc:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("error %v, want context.Canceled", err)
			}
			if d := time.Since(cancelled); d > time.Second {
				t.Errorf("returned %s after the cancellation", d)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the request did not return within 10s of the cancellation")
		}
	})
	t.Run("cancelled before", func(t *testing.T) {
		c := wire.NewClient(wire.ClientOptions{Address: startControlServer(t, nil).endpoint, Timeout: time.Minute})
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		began := time.Now()
		_, err := c.Stats(ctx)
		if !errors.Is(err, context.Canceled) || time.Since(began) > time.Second {
			t.Errorf("error %v after %s, want context.Canceled at once", err, time.Since(began))
		}
	})
	t.Run("deadline before the timeout", func(t *testing.T) {
		c := wire.NewClient(wire.ClientOptions{Address: startControlServer(t, nil).endpoint, Timeout: time.Minute})
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		defer cancel()
		began := time.Now()
		_, err := c.Stats(ctx)
		// The client's own deadline and the context's expire together:
		// either may be reported.
		if !errors.Is(err, wire.ErrNoReply) && !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("error %v, want wire.ErrNoReply or context.DeadlineExceeded", err)
		}
		if took := time.Since(began); took > 300*time.Millisecond+slack {
			t.Errorf("returned after %s, the context deadline was 300ms", took)
		}
	})
	t.Run("deadline passed", func(t *testing.T) {
		c := wire.NewClient(wire.ClientOptions{Address: deadAddress(t), Timeout: time.Minute})
		ctx, cancel := context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
		defer cancel()
		_, err := c.Stats(ctx)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("error %v, want context.DeadlineExceeded", err)
		}
	})
}

// TestIntegrationClientInvalidAddress checks that an address libzmq cannot
// use fails at once with an error that quotes it and shows a good one.
func TestIntegrationClientInvalidAddress(t *testing.T) {
	for _, addr := range []string{"nonsense", "tcp://127.0.0.1", "tcp://127.0.0.1:port", "bogus://127.0.0.1:1", "127.0.0.1:2345"} {
		t.Run(addr, func(t *testing.T) {
			c := wire.NewClient(wire.ClientOptions{Address: addr, Timeout: time.Minute})
			began := time.Now()
			_, err := c.Stats(t.Context())
			if took := time.Since(began); took > slack {
				t.Errorf("took %s to fail", took)
			}
			if err == nil || errors.Is(err, wire.ErrNoReply) {
				t.Fatalf("error %v, want an invalid address error", err)
			}
			for _, part := range []string{fmt.Sprintf("%q", addr), "tcp://127.0.0.1:2345"} {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("error %q does not contain %s", err, part)
				}
			}
		})
	}
}

// countFDs counts this process's open file descriptors.
func countFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("counting file descriptors: %v", err)
	}
	return len(entries)
}

// TestIntegrationClientNoFDLeak checks that requests release their
// sockets: 200 STATS leave the descriptor count where it was.
func TestIntegrationClientNoFDLeak(t *testing.T) {
	srv := startControlServer(t, func(string) []byte { return []byte(`{}`) })
	c := wire.NewClient(wire.ClientOptions{Address: srv.endpoint, Timeout: 5 * time.Second})
	ctx := t.Context()
	if _, err := c.Stats(ctx); err != nil { // warm up
		t.Fatal(err)
	}
	const requests, allowed = 200, 5
	before := countFDs(t)
	for i := range requests {
		if _, err := c.Stats(ctx); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	// The server closes its side of each connection asynchronously.
	deadline := time.Now().Add(10 * time.Second)
	after := countFDs(t)
	for after > before+allowed && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		after = countFDs(t)
	}
	if after > before+allowed {
		t.Errorf("%d open file descriptors after %d requests, %d before", after, requests, before)
	}
}

// TestIntegrationClientConcurrent checks that one Client serves
// concurrent requests.
func TestIntegrationClientConcurrent(t *testing.T) {
	srv := startControlServer(t, func(req string) []byte { return []byte(`{"` + strings.ToLower(req) + `": []}`) })
	c := wire.NewClient(wire.ClientOptions{Address: srv.endpoint, Timeout: 10 * time.Second})
	ctx := t.Context()
	var wg sync.WaitGroup
	errc := make(chan error, 8*10)
	for range 8 {
		wg.Go(func() {
			for range 10 {
				r, err := c.RTimes(ctx)
				if err == nil && !reflect.DeepEqual(r, wire.RTimesReply{"rtimes": {}}) {
					err = fmt.Errorf("reply %v", r)
				}
				if err != nil {
					errc <- err
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
}
