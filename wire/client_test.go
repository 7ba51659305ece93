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
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/gstats/gstats/internal/testport"
	"github.com/gstats/gstats/wire"
)

// slack is how much longer than its timeout a request may take to fail:
// creating and terminating a zmq context, and a loaded test machine. It is
// a hang bound: a request that did not give up would take its timeout (a
// minute in the tests that fail at once).
const slack = 5 * time.Second

// controlServer is a control socket bound to an ephemeral loopback port
// and owned by one goroutine, which creates, serves and closes it.
type controlServer struct {
	endpoint string
	// requests receives every request, in arrival order (a request is
	// dropped if nobody reads and 1000 are waiting).
	requests chan request
}

// request is one request a controlServer received.
type request struct {
	frame string
	// userID is the User-Id the ZAP handler gave the connection: the
	// client's CURVE public key; "" without one.
	userID string
}

// serverOptions make a test server a CURVE server.
type serverOptions struct {
	// secretKey, if set, makes the socket a CURVE server with this key.
	secretKey string
	// allowed, if not nil, starts a ZAP handler that accepts these
	// client public keys only; with nil, a CURVE server accepts any key.
	allowed []string
}

// startControlServer starts a REP server that answers each request with
// answer(request), or, with answer nil, a ROUTER that reads requests and
// never answers. The server stops in t.Cleanup: terminating its context
// wakes the owner goroutine with ETERM, and it closes the socket.
func startControlServer(t *testing.T, answer func(req string) []byte) *controlServer {
	t.Helper()
	return startServer(t, answer, serverOptions{})
}

// startServer is startControlServer with security options.
func startServer(t testing.TB, answer func(req string) []byte, o serverOptions) *controlServer {
	t.Helper()
	zctx, err := zmq.NewContext()
	if err != nil {
		t.Fatalf("creating zmq context: %v; is libzmq installed? (apt-get install libzmq3-dev)", err)
	}
	srv := &controlServer{requests: make(chan request, 1000)}
	var zapDone chan error
	if o.allowed != nil {
		zapReady := make(chan error, 1)
		zapDone = make(chan error, 1)
		go func() { zapDone <- serveZAP(zctx, o.allowed, zapReady) }()
		if err := <-zapReady; err != nil {
			<-zapDone
			_ = zctx.Term()
			t.Fatal(err)
		}
	}
	ready := make(chan error, 1)
	done := make(chan error, 1)
	go func() { done <- srv.serve(zctx, answer, o, ready) }()
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
		if zapDone != nil {
			if err := <-zapDone; err != nil {
				t.Errorf("ZAP handler: %v", err)
			}
		}
	})
	return srv
}

// serve owns the server socket. It reports on ready once bound, and
// returns nil when the context is terminated.
func (s *controlServer) serve(zctx *zmq.Context, answer func(string) []byte, o serverOptions, ready chan<- error) error {
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
	if o.secretKey != "" {
		if err := sock.ServerAuthCurve("test", o.secretKey); err != nil {
			ready <- fmt.Errorf("making a CURVE server: %w", err)
			return nil
		}
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
		msg, meta, err := sock.RecvMessageBytesWithMetadata(0, "User-Id")
		if err != nil {
			if zmq.AsErrno(err) == zmq.ETERM {
				return nil
			}
			return fmt.Errorf("receiving: %w", err)
		}
		req := request{frame: string(msg[len(msg)-1]), userID: meta["User-Id"]} // a ROUTER also gets the peer id and an empty frame
		select {
		case s.requests <- req:
		default:
		}
		if answer == nil {
			continue
		}
		if _, err := sock.SendBytes(answer(req.frame), 0); err != nil {
			if zmq.AsErrno(err) == zmq.ETERM {
				return nil
			}
			return fmt.Errorf("sending: %w", err)
		}
	}
}

// serveZAP answers ZAP requests in zctx (RFC 27): 200 with the client's
// public key as User-Id for a key in allowed, 400 for any other. It reports
// on ready once bound and returns nil when the context is terminated.
func serveZAP(zctx *zmq.Context, allowed []string, ready chan<- error) error {
	sock, err := zctx.NewSocket(zmq.REP)
	if err != nil {
		ready <- err
		return nil
	}
	defer func() { _ = sock.Close() }()
	if err := sock.SetLinger(0); err != nil {
		ready <- err
		return nil
	}
	if err := sock.Bind("inproc://zeromq.zap.01"); err != nil {
		ready <- fmt.Errorf("binding the ZAP handler: %w", err)
		return nil
	}
	ready <- nil
	for {
		req, err := sock.RecvMessageBytes(0)
		if err != nil {
			if zmq.AsErrno(err) == zmq.ETERM {
				return nil
			}
			return fmt.Errorf("receiving a ZAP request: %w", err)
		}
		// version, request id, domain, address, identity, mechanism, key
		if len(req) != 7 || string(req[5]) != "CURVE" {
			return fmt.Errorf("unexpected ZAP request %q", req)
		}
		key := zmq.Z85encode(string(req[6]))
		status, text, user := "400", "key not allowed", ""
		if slices.Contains(allowed, key) {
			status, text, user = "200", "OK", key
		}
		if _, err := sock.SendMessage(req[0], req[1], status, text, user, ""); err != nil {
			if zmq.AsErrno(err) == zmq.ETERM {
				return nil
			}
			return fmt.Errorf("answering a ZAP request: %w", err)
		}
	}
}

// nextRequest waits for the server's next request.
func (s *controlServer) nextRequest(t *testing.T) string {
	t.Helper()
	return s.next(t).frame
}

// next waits for the server's next request.
func (s *controlServer) next(t *testing.T) request {
	t.Helper()
	select {
	case r := <-s.requests:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("the server got no request within 10s")
		return request{}
	}
}

// deadAddress returns a loopback address nothing listens on, reserved for
// the test (testport): a port released by the kernel's port-0 bind could
// be taken meanwhile by another process's listener or connection.
func deadAddress(t *testing.T) string {
	t.Helper()
	return testport.TCP(t)
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
			if d := time.Since(cancelled); d > slack {
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
		if !errors.Is(err, context.Canceled) || time.Since(began) > slack {
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

// keyPair makes a CURVE key pair, failing t if libzmq has no CURVE.
func keyPair(t *testing.T) (public, secret string) {
	t.Helper()
	if !zmq.HasCurve() {
		t.Fatal("this libzmq has no CURVE support; install Debian's libzmq5 (built with libsodium)")
	}
	public, secret, err := zmq.NewCurveKeypair()
	if err != nil {
		t.Fatal(err)
	}
	return public, secret
}

// TestIntegrationClientCurve checks requests to CURVE servers: with the
// right keys they are answered, and the collector sees the client's key;
// with keys the server refuses they get no reply, and the error says why.
func TestIntegrationClientCurve(t *testing.T) {
	serverPub, serverSec := keyPair(t)
	clientPub, clientSec := keyPair(t)
	otherPub, otherSec := keyPair(t)
	answer := func(req string) []byte { return []byte(`{"` + strings.ToLower(req) + `": [1.5]}`) }
	// One server that authenticates clients (ZAP), one that accepts any
	// key, one without CURVE.
	zap := startServer(t, answer, serverOptions{secretKey: serverSec, allowed: []string{clientPub}})
	open := startServer(t, answer, serverOptions{secretKey: serverSec})
	plain := startControlServer(t, answer)

	t.Run("answered", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			srv  *controlServer
			opts wire.ClientOptions
			user string // User-Id the server's ZAP handler gave
		}{
			{"allowed key", zap, wire.ClientOptions{CurveServerKey: serverPub, CurvePublicKey: clientPub, CurveSecretKey: clientSec}, clientPub},
			{"public key derived", zap, wire.ClientOptions{CurveServerKey: serverPub, CurveSecretKey: clientSec}, clientPub},
			{"server without ZAP", open, wire.ClientOptions{CurveServerKey: serverPub, CurveSecretKey: otherSec}, ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				tc.opts.Address, tc.opts.Timeout = tc.srv.endpoint, 10*time.Second
				r, err := wire.NewClient(tc.opts).RTimes(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(r, wire.RTimesReply{"rtimes": {1.5}}) {
					t.Errorf("reply %v", r)
				}
				if req := tc.srv.next(t); req.frame != "RTIMES" || req.userID != tc.user {
					t.Errorf("the server got %q from User-Id %q, want RTIMES from %q", req.frame, req.userID, tc.user)
				}
			})
		}
	})

	t.Run("refused", func(t *testing.T) {
		// Long enough for a loaded machine to see the refusal before the
		// request gives up (the error's diagnosis depends on it); the
		// cases run in parallel, so the wait is paid once.
		const timeout = 5 * time.Second
		for _, tc := range []struct {
			name string
			srv  *controlServer
			opts wire.ClientOptions
			want []string // in the error
			// or, if not empty, these: the security mechanisms differ,
			// and whether the client reads the server's greeting (and
			// sees the mismatch) before the server closes the
			// connection (a broken handshake) is a race both outcomes
			// of which are right.
			or []string
		}{
			{"key not allowed", zap, wire.ClientOptions{CurveServerKey: serverPub, CurveSecretKey: otherSec},
				[]string{"refused the CURVE handshake (ZAP status 400)", "public key " + otherPub, "curve_client_keys"}, nil},
			{"wrong server key", zap, wire.ClientOptions{CurveServerKey: otherPub, CurveSecretKey: clientSec},
				[]string{"broke off the CURVE handshake", "the collector may require CURVE or not accept this key", clientPub}, nil},
			{"no CURVE to a CURVE server", zap, wire.ClientOptions{},
				[]string{"the collector requires CURVE and this client does not use it"},
				[]string{"the peer broke off the handshake", "if the collector requires CURVE"}},
			{"CURVE to a server without", plain, wire.ClientOptions{CurveServerKey: serverPub, CurveSecretKey: clientSec},
				[]string{"the collector does not use CURVE on this socket and this client does"},
				[]string{"the collector broke off the CURVE handshake", "the collector may require CURVE", clientPub}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				tc.opts.Address, tc.opts.Timeout = tc.srv.endpoint, timeout
				began := time.Now()
				_, err := wire.NewClient(tc.opts).Stats(t.Context())
				took := time.Since(began)
				if !errors.Is(err, wire.ErrNoReply) {
					t.Fatalf("error %v, want wire.ErrNoReply", err)
				}
				if took > timeout+slack {
					t.Errorf("gave up after %s, the timeout is %s", took, timeout)
				}
				has := func(parts []string) bool {
					for _, part := range parts {
						if !strings.Contains(err.Error(), part) {
							return false
						}
					}
					return true
				}
				if !has(append(tc.want, "no reply to STATS from "+tc.srv.endpoint+" within 5s")) &&
					(tc.or == nil || !has(append(tc.or, "no reply to STATS from "+tc.srv.endpoint+" within 5s"))) {
					t.Errorf("error %q does not contain all of %q (nor of %q)", err, tc.want, tc.or)
				}
				select {
				case r := <-tc.srv.requests:
					t.Errorf("the server got %q through a refused handshake", r.frame)
				default:
				}
			})
		}
	})
}

// TestIntegrationClientNoReplyDiagnosis checks what the error of a request
// without reply says of the connection, CURVE aside.
func TestIntegrationClientNoReplyDiagnosis(t *testing.T) {
	for _, tc := range []struct {
		name    string
		address func(t *testing.T) string
		want    string
	}{
		{"nothing listens", deadAddress, "is gstats-collectd running there? Nothing accepted the connection"},
		{"peer never answers", func(t *testing.T) string { return startControlServer(t, nil).endpoint },
			"is gstats-collectd running there? It accepted the connection but did not answer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Long enough for a loaded machine to see what happened to the
			// connection before the request gives up; in parallel, so the
			// wait is paid once.
			t.Parallel()
			c := wire.NewClient(wire.ClientOptions{Address: tc.address(t), Timeout: 5 * time.Second})
			_, err := c.Info(t.Context())
			if !errors.Is(err, wire.ErrNoReply) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want wire.ErrNoReply saying %q", err, tc.want)
			}
		})
	}
}

// TestCurveSettings checks that unusable CURVE settings are refused by
// Validate, and that a client made with them fails every request at once
// without sending anything.
func TestCurveSettings(t *testing.T) {
	serverPub, _ := keyPair(t)
	clientPub, clientSec := keyPair(t)
	otherPub, _ := keyPair(t)
	tests := []struct {
		name string
		opts wire.ClientOptions
		want string // "" for valid settings
	}{
		{"no CURVE", wire.ClientOptions{}, ""},
		{"full", wire.ClientOptions{CurveServerKey: serverPub, CurvePublicKey: clientPub, CurveSecretKey: clientSec}, ""},
		{"public key derived", wire.ClientOptions{CurveServerKey: serverPub, CurveSecretKey: clientSec}, ""},
		{"server key only", wire.ClientOptions{CurveServerKey: serverPub}, "the collector's CURVE public key is given but not the client's secret key"},
		{"client keys only", wire.ClientOptions{CurvePublicKey: clientPub, CurveSecretKey: clientSec}, "the client's CURVE key is given but not the collector's public key"},
		{"client public key only", wire.ClientOptions{CurvePublicKey: clientPub}, "not the collector's public key"},
		{"short server key", wire.ClientOptions{CurveServerKey: serverPub[:39], CurveSecretKey: clientSec}, "the collector's public key: a CURVE key is 40 characters of Z85, got 39"},
		{"bad character", wire.ClientOptions{CurveServerKey: serverPub, CurveSecretKey: `"` + clientSec[1:]}, "the client's secret key: character 1 of the key"},
		{"pair mismatch", wire.ClientOptions{CurveServerKey: serverPub, CurvePublicKey: otherPub, CurveSecretKey: clientSec},
			"the client's public key " + otherPub + " is not the one of its secret key (" + clientPub + ")"},
		{"bad public key", wire.ClientOptions{CurveServerKey: serverPub, CurvePublicKey: "x", CurveSecretKey: clientSec}, "the client's public key: a CURVE key is 40"},
	}
	srv := startControlServer(t, func(string) []byte { return []byte("{}") })
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.opts.Validate()
			if tt.want == "" {
				if err != nil {
					t.Errorf("Validate: %v", err)
				}
				return
			}
			if !errors.Is(err, wire.ErrCurveSettings) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate: %v; want wire.ErrCurveSettings saying %q", err, tt.want)
			}
			if !tt.opts.Curve() {
				t.Error("Curve() is false for settings with a CURVE key")
			}
			tt.opts.Address, tt.opts.Timeout = srv.endpoint, time.Minute
			began := time.Now()
			_, err = wire.NewClient(tt.opts).Stats(t.Context())
			if !errors.Is(err, wire.ErrCurveSettings) || errors.Is(err, wire.ErrNoReply) || !strings.Contains(err.Error(), tt.want) ||
				!strings.Contains(err.Error(), "STATS to "+srv.endpoint+" not sent") {
				t.Errorf("Stats: %v; want a wire.ErrCurveSettings error saying STATS was not sent", err)
			}
			if took := time.Since(began); took > slack {
				t.Errorf("took %s to fail", took)
			}
		})
	}
	// A sentinel request from a usable client, sent after every refusal:
	// once the server has it, anything a bad client had sent before would
	// have come in too.
	if _, err := wire.NewClient(wire.ClientOptions{Address: srv.endpoint, Timeout: time.Minute}).Info(t.Context()); err != nil {
		t.Fatalf("the sentinel INFO: %v", err)
	}
	for done := false; !done; {
		select {
		case r := <-srv.requests:
			if r.frame != "INFO" {
				t.Errorf("the server got %q from a client with unusable CURVE settings", r.frame)
			}
		default:
			done = true
		}
	}
	if (wire.ClientOptions{}).Curve() {
		t.Error("Curve() is true without keys")
	}
}

// BenchmarkIntegrationClientRequest measures one control request on
// loopback, each on a fresh socket as Do makes it: without CURVE, and with
// CURVE, which adds a handshake (with and without a ZAP handler checking
// the client key).
func BenchmarkIntegrationClientRequest(b *testing.B) {
	serverPub, serverSec, err := zmq.NewCurveKeypair()
	if err != nil {
		b.Fatal(err)
	}
	clientPub, clientSec, err := zmq.NewCurveKeypair()
	if err != nil {
		b.Fatal(err)
	}
	answer := func(string) []byte { return []byte(`{"a": []}`) }
	for _, bc := range []struct {
		name string
		srv  serverOptions
		opts wire.ClientOptions
	}{
		{"NULL", serverOptions{}, wire.ClientOptions{}},
		{"CURVE", serverOptions{secretKey: serverSec}, wire.ClientOptions{CurveServerKey: serverPub, CurveSecretKey: clientSec}},
		{"CURVE+ZAP", serverOptions{secretKey: serverSec, allowed: []string{clientPub}}, wire.ClientOptions{CurveServerKey: serverPub, CurveSecretKey: clientSec}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			srv := startServer(b, answer, bc.srv)
			bc.opts.Address, bc.opts.Timeout = srv.endpoint, 10*time.Second
			c := wire.NewClient(bc.opts)
			ctx := b.Context()
			for b.Loop() {
				if _, err := c.Do(ctx, "RTIMES"); err != nil {
					b.Fatal(err)
				}
				<-srv.requests
			}
		})
	}
}
