package gstats

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/influxdata/telegraf/testutil"

	"github.com/gstats/gstats/internal/curvekey"
	"github.com/gstats/gstats/wire"
)

// securityLog records every line logged at Info level and above.
type securityLog struct {
	testutil.Logger
	mu    sync.Mutex
	lines []string
}

func newSecurityLog() *securityLog { return &securityLog{Logger: testutil.Logger{Quiet: true}} }

func (l *securityLog) add(level, msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, level+" "+msg)
}

func (l *securityLog) Error(args ...any)                 { l.add("E!", fmt.Sprint(args...)) }
func (l *securityLog) Errorf(format string, args ...any) { l.add("E!", fmt.Sprintf(format, args...)) }
func (l *securityLog) Warn(args ...any)                  { l.add("W!", fmt.Sprint(args...)) }
func (l *securityLog) Warnf(format string, args ...any)  { l.add("W!", fmt.Sprintf(format, args...)) }
func (l *securityLog) Info(args ...any)                  { l.add("I!", fmt.Sprint(args...)) }
func (l *securityLog) Infof(format string, args ...any)  { l.add("I!", fmt.Sprintf(format, args...)) }

// matching returns the lines holding every one of parts.
func (l *securityLog) matching(parts ...string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, line := range l.lines {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(line, p)
		}
		if ok {
			out = append(out, line)
		}
	}
	return out
}

func (l *securityLog) all() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// testKeys are CURVE key files in a temporary directory: the collector's
// pair and clients' pairs, each client's public key in clients/NAME.key.
type testKeys struct {
	server       curvekey.Pair
	serverSecret string // the server's .key_secret file
	serverPublic string // the server's .key file
	clientDir    string // holds the clients' .key and .key_secret files
	clients      []curvekey.Pair
	clientFiles  []string // the clients' .key files
}

func newTestKeys(t testing.TB, clients int) testKeys {
	t.Helper()
	dir := t.TempDir()
	var k testKeys
	var err error
	if k.server, err = curvekey.Generate(); err != nil {
		t.Fatalf("%v (install a libzmq with CURVE: apt-get install libzmq5)", err)
	}
	now := time.Now()
	if k.serverPublic, k.serverSecret, err = curvekey.Write(filepath.Join(dir, "collector"), k.server, now); err != nil {
		t.Fatal(err)
	}
	k.clientDir = filepath.Join(dir, "clients")
	if err := os.Mkdir(k.clientDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range clients {
		p, err := curvekey.Generate()
		if err != nil {
			t.Fatal(err)
		}
		pub, _, err := curvekey.Write(filepath.Join(k.clientDir, fmt.Sprintf("web%d", i+1)), p, now)
		if err != nil {
			t.Fatal(err)
		}
		k.clients = append(k.clients, p)
		k.clientFiles = append(k.clientFiles, pub)
	}
	return k
}

// curve turns CURVE on in g with the server key and keys as the allowed
// client keys.
func (k testKeys) curve(g *Gstats, keys ...string) {
	g.CurveSecretKeyFile = k.serverSecret
	g.CurveClientKeys = keys
}

// clientSocket connects a socket of type typ to addr, as a CURVE client
// with key pair client unless it is the zero Pair. It is closed at cleanup.
func clientSocket(t *testing.T, typ zmq.Type, addr, serverKey string, client curvekey.Pair) *zmq.Socket {
	t.Helper()
	s, err := zmq.NewSocket(typ)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	_ = s.SetLinger(0)
	if client != (curvekey.Pair{}) {
		if err := s.ClientAuthCurve(serverKey, client.Public, client.Secret); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Connect(addr); err != nil {
		t.Fatal(err)
	}
	return s
}

// watchedSocket is a client socket whose connection events a test reads
// (a ZeroMQ socket monitor): it tells a refused handshake from one that has
// simply not happened yet, so that a test can prove a refusal instead of
// waiting a while and seeing nothing.
type watchedSocket struct {
	*zmq.Socket
	events *zmq.Socket
	// admitted and refused count the handshakes seen so far that
	// succeeded, and the connections that ended before any did.
	admitted, refused int
}

var monitorSeq atomic.Int64

// watchedClientSocket is clientSocket with a monitor set up before the
// connection. Both are closed at cleanup.
func watchedClientSocket(t *testing.T, typ zmq.Type, addr, serverKey string, client curvekey.Pair) *watchedSocket {
	t.Helper()
	s, err := zmq.NewSocket(typ)
	if err != nil {
		t.Fatal(err)
	}
	_ = s.SetLinger(0)
	monAddr := fmt.Sprintf("inproc://security-test-monitor-%d", monitorSeq.Add(1))
	if err := s.Monitor(monAddr, zmq.EVENT_HANDSHAKE_SUCCEEDED|zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL|
		zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL|zmq.EVENT_HANDSHAKE_FAILED_AUTH|zmq.EVENT_DISCONNECTED); err != nil {
		_ = s.Close()
		t.Fatal(err)
	}
	events, err := zmq.NewSocket(zmq.PAIR)
	if err != nil {
		_ = s.Close()
		t.Fatal(err)
	}
	_ = events.SetLinger(0)
	t.Cleanup(func() {
		// Disable the monitor before closing its reader, or libzmq may
		// block writing an event nobody reads.
		_ = s.Monitor("", 0)
		_ = events.Close()
		_ = s.Close()
	})
	if err := events.Connect(monAddr); err != nil {
		t.Fatal(err)
	}
	if client != (curvekey.Pair{}) {
		if err := s.ClientAuthCurve(serverKey, client.Public, client.Secret); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Connect(addr); err != nil {
		t.Fatal(err)
	}
	return &watchedSocket{Socket: s, events: events}
}

// read takes the events that arrived within wait.
func (w *watchedSocket) read(t *testing.T, wait time.Duration) {
	t.Helper()
	if err := w.events.SetRcvtimeo(wait); err != nil {
		t.Fatal(err)
	}
	for {
		ev, _, _, err := w.events.RecvEvent(0)
		if err != nil {
			return
		}
		switch ev {
		case zmq.EVENT_HANDSHAKE_SUCCEEDED:
			w.admitted++
		case zmq.EVENT_DISCONNECTED:
			if w.admitted == 0 {
				w.refused++
			}
		}
		if err := w.events.SetRcvtimeo(0); err != nil {
			t.Fatal(err)
		}
	}
}

// waitRefused waits until the server has ended a connection of the
// socket's before any handshake succeeded, and fails the test if one
// succeeded.
func (w *watchedSocket) waitRefused(t *testing.T, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for w.refused == 0 && w.admitted == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%s: no handshake refused after 10 s", what)
		}
		w.read(t, 100*time.Millisecond)
	}
	w.neverAdmitted(t, what)
}

// neverAdmitted fails the test if a handshake of the socket succeeded, in
// the events so far.
func (w *watchedSocket) neverAdmitted(t *testing.T, what string) {
	t.Helper()
	w.read(t, 0)
	if w.admitted != 0 {
		t.Errorf("%s: %d handshake(s) succeeded, want every one refused", what, w.admitted)
	}
}

// request sends cmd on a REQ socket and waits up to wait for the reply;
// ok is false if none came.
func request(t *testing.T, s *zmq.Socket, cmd string, wait time.Duration) (reply string, ok bool) {
	t.Helper()
	if _, err := s.Send(cmd, 0); err != nil {
		t.Fatalf("sending %s: %v", cmd, err)
	}
	if err := s.SetRcvtimeo(wait); err != nil {
		t.Fatal(err)
	}
	r, err := s.Recv(0)
	if err != nil {
		return "", false
	}
	return r, true
}

func TestAllowedCommandsInit(t *testing.T) {
	all := []wire.Command{wire.CmdStats, wire.CmdRTimes, wire.CmdReset, wire.CmdQuit, wire.CmdInfo}
	cases := []struct {
		name    string
		list    []string
		stored  []string       // g.AllowedCommands after Init
		allowed []wire.Command // commandAllowed true for exactly these
		err     string
	}{
		{name: "absent: all", list: nil, stored: nil, allowed: all},
		{name: "upper", list: []string{"STATS", "INFO"}, stored: []string{"STATS", "INFO"}, allowed: []wire.Command{wire.CmdStats, wire.CmdInfo}},
		{name: "any case, stored upper", list: []string{"stats", "Rtimes", " info "}, stored: []string{"STATS", "RTIMES", "INFO"}, allowed: []wire.Command{wire.CmdStats, wire.CmdRTimes, wire.CmdInfo}},
		{name: "duplicates kept once", list: []string{"RESET", "reset", "QUIT"}, stored: []string{"RESET", "QUIT"}, allowed: []wire.Command{wire.CmdReset, wire.CmdQuit}},
		{name: "every one", list: []string{"QUIT", "RESET", "RTIMES", "STATS", "INFO"}, stored: []string{"QUIT", "RESET", "RTIMES", "STATS", "INFO"}, allowed: all},
		{name: "unknown", list: []string{"STATS", "SHUTDOWN"}, err: `allowed_commands: unknown command "SHUTDOWN"; valid commands: STATS, RTIMES, RESET, QUIT, INFO`},
		{name: "empty name", list: []string{""}, err: `unknown command ""`},
		{name: "explicitly empty", list: []string{}, err: `allowed_commands is empty: to answer no command at all, turn the control socket off with comm_address = ""`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := New()
			g.StatsAddress, g.CommAddress = "tcp://127.0.0.1:0", "tcp://127.0.0.1:0"
			g.Log = testutil.Logger{Quiet: true}
			g.AllowedCommands = tc.list
			err := g.Init()
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Init() = %v, want an error containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Init() = %v", err)
			}
			if !slices.Equal(g.AllowedCommands, tc.stored) || (tc.stored == nil) != (g.AllowedCommands == nil) {
				t.Errorf("allowed_commands stored as %#v, want %#v", g.AllowedCommands, tc.stored)
			}
			for _, c := range all {
				if got, want := g.commandAllowed(c), slices.Contains(tc.allowed, c); got != want {
					t.Errorf("commandAllowed(%s) = %v, want %v", c, got, want)
				}
			}
			wantList := tc.stored
			if wantList == nil {
				wantList = []string{"STATS", "RTIMES", "RESET", "QUIT", "INFO"}
			}
			if got := g.allowedCommandList(); !slices.Equal(got, wantList) {
				t.Errorf("allowedCommandList() = %v, want %v", got, wantList)
			}
		})
	}
}

func TestAllowedCommandsRefusedOnTheControlSocket(t *testing.T) {
	cases := []struct {
		name    string
		allowed []string
	}{
		{"read only", []string{"STATS", "RTIMES", "INFO"}},
		{"no QUIT", []string{"stats", "rtimes", "reset", "info"}},
		{"STATS only", []string{"STATS"}},
		{"QUIT and INFO", []string{"QUIT", "INFO"}},
	}
	order := []wire.Command{wire.CmdStats, wire.CmdRTimes, wire.CmdReset, wire.CmdInfo, wire.CmdQuit} // QUIT last: it ends the run
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var quits atomic.Int64
			log := newSecurityLog()
			g, acc := startPlugin(t, func(g *Gstats) {
				g.AllowedCommands = tc.allowed
				g.Log = log
				g.SetQuitHandler(func() { quits.Add(1) })
			})
			push := pusher(t, g)
			send(t, push, "a", "5")
			waitFor(t, "a message", func() bool { return handled(g) == 1 })
			c := control(t, g)
			var refused int64
			for _, cmd := range order {
				allowed := slices.ContainsFunc(tc.allowed, func(s string) bool { return strings.EqualFold(s, string(cmd)) })
				for range 2 { // twice: the second refusal is counted, not logged
					reply, err := c.Do(t.Context(), string(cmd))
					if err != nil {
						t.Fatalf("%s: %v", cmd, err)
					}
					if refusedReply := string(reply) == wire.ReplyError; refusedReply == allowed {
						t.Errorf("%s: reply %.40q; allowed = %v", cmd, reply, allowed)
					}
					if !allowed {
						refused++
					}
					if cmd == wire.CmdQuit && allowed {
						break
					}
				}
			}
			if got := g.stats.commandsRefused.Load(); got != refused {
				t.Errorf("commands refused = %d, want %d", got, refused)
			}
			if got := g.stats.controlErrors.Load(); got != refused {
				t.Errorf("control errors = %d, want %d (the refusals)", got, refused)
			}
			wantQuits := int64(0)
			if slices.Contains(tc.allowed, "QUIT") {
				wantQuits = 1
				waitFor(t, "the quit handler", func() bool { return quits.Load() == 1 })
			}
			if got := quits.Load(); got != wantQuits {
				t.Errorf("quit handler called %d times, want %d (a refused QUIT must not stop the collector)", got, wantQuits)
			}
			for _, cmd := range order {
				want := int64(2)
				switch {
				case !g.commandAllowed(cmd):
					want = 0
				case cmd == wire.CmdQuit:
					want = 1
				}
				if got := g.stats.commands[cmd].Load(); got != want {
					t.Errorf("%s answered %d times, want %d", cmd, got, want)
				}
			}
			// Refusals are logged at most once per reject_log_interval.
			first := order[slices.IndexFunc(order, func(c wire.Command) bool { return !g.commandAllowed(c) })]
			if lines := log.matching("W! ", "refused", "not in allowed_commands"); len(lines) != 1 ||
				!strings.Contains(lines[0], string(first)+" refused") || !strings.Contains(lines[0], "["+strings.Join(g.AllowedCommands, " ")+"]") {
				t.Errorf("%d refusals logged as:\n%s\nwant one line naming %s and allowed_commands", refused, strings.Join(lines, "\n"), first)
			}
			if err := g.Gather(acc); err != nil {
				t.Fatal(err)
			}
			if v, ok := acc.Get("gstats_internal"); !ok || v.Fields["commands_refused"] != refused {
				t.Errorf("gstats_internal commands_refused = %v, want %d", v, refused)
			}
			if slices.Contains(tc.allowed, "STATS") && !slices.Contains(tc.allowed, "RESET") {
				if st, err := c.Stats(t.Context()); err != nil || st["a"].Finished != 1 {
					t.Errorf("STATS after a refused RESET = %v, %v; want prefix a kept", st, err)
				}
			}
		})
	}
}

func TestCurveClientWithAnAllowedKey(t *testing.T) {
	k := newTestKeys(t, 1)
	log := newSecurityLog()
	g, _ := startPlugin(t, func(g *Gstats) {
		k.curve(g, k.clientFiles[0])
		g.Log = log
	})
	stats, comm := g.Endpoints()
	push := clientSocket(t, zmq.PUSH, stats, k.server.Public, k.clients[0])
	send(t, push, "shop", "")
	send(t, push, "shop", "12.5", "200")
	waitFor(t, "2 messages over CURVE", func() bool { return g.stats.accepted.Load() == 2 })

	req := clientSocket(t, zmq.REQ, comm, k.server.Public, k.clients[0])
	reply, ok := request(t, req, "STATS", 10*time.Second)
	if !ok || !strings.Contains(reply, `"shop":{"started":1,"finished":1`) {
		t.Fatalf("STATS over CURVE: %q, %v", reply, ok)
	}
	if n := g.stats.authFailures.Load(); n != 0 {
		t.Errorf("auth failures = %d, want 0", n)
	}
	if lines := log.matching("CURVE on the stats and control socket(s): 1 client key(s) allowed", k.server.Public); len(lines) != 1 {
		t.Errorf("no start line naming the server's public key:\n%s", log.all())
	}
}

func TestCurveRefusesUnknownKeysAndPlainClients(t *testing.T) {
	k := newTestKeys(t, 2) // web1 allowed, web2 not
	log := newSecurityLog()
	g, acc := startPlugin(t, func(g *Gstats) {
		k.curve(g, k.client0Public())
		g.Log = log
	})
	stats, comm := g.Endpoints()
	stranger := k.clients[1]

	// A control client with an unknown key: refused by the ZAP handler,
	// no reply, nothing served. A reply can only come over a connection
	// whose handshake succeeded: each client's monitor shows its
	// handshake refused, and none admitted.
	req := watchedClientSocket(t, zmq.REQ, comm, k.server.Public, stranger)
	if _, err := req.Send("STATS", 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a refused handshake", func() bool { return g.stats.authFailures.Load() >= 1 })
	req.waitRefused(t, "control client with an unknown key")
	plainReq := watchedClientSocket(t, zmq.REQ, comm, "", curvekey.Pair{})
	if _, err := plainReq.Send("STATS", 0); err != nil {
		t.Fatal(err)
	}
	plainReq.waitRefused(t, "control client without CURVE")
	for _, c := range []*watchedSocket{req, plainReq} {
		if reply, err := c.Recv(zmq.DONTWAIT); err == nil {
			t.Errorf("a refused control client got a reply: %q", reply)
		}
	}

	// Ingest: an unknown key, a client without CURVE and a client with
	// the wrong server key get nothing in.
	before := g.stats.authFailures.Load()
	bad := watchedClientSocket(t, zmq.PUSH, stats, k.server.Public, stranger)
	send(t, bad.Socket, "evil", "")
	plain := watchedClientSocket(t, zmq.PUSH, stats, "", curvekey.Pair{})
	send(t, plain.Socket, "evil", "")
	impostor, err := curvekey.Generate() // an allowed client key, but another server's key
	if err != nil {
		t.Fatal(err)
	}
	misdirected := watchedClientSocket(t, zmq.PUSH, stats, impostor.Public, k.clients[0])
	send(t, misdirected.Socket, "evil", "")
	waitFor(t, "the ingest handshake refused", func() bool { return g.stats.authFailures.Load() > before })
	refused := map[string]*watchedSocket{"unknown key": bad, "no CURVE": plain, "wrong server key": misdirected}
	for what, w := range refused {
		w.waitRefused(t, "stats client with "+what)
	}
	// Every bad client has been refused (and tries again the same way):
	// the allowed client's message, sent after, is the only one counted.
	good := clientSocket(t, zmq.PUSH, stats, k.server.Public, k.clients[0])
	send(t, good, "shop", "")
	waitFor(t, "the allowed client's message", func() bool { return handled(g) >= 1 })
	for what, w := range refused {
		w.neverAdmitted(t, "stats client with "+what)
	}
	if a, r := g.stats.accepted.Load(), g.stats.rejectedTotal(); a != 1 || r != 0 {
		t.Errorf("accepted %d, rejected %d; want only the allowed client's message", a, r)
	}
	if n := g.stats.controlRequests.Load(); n != 0 {
		t.Errorf("control requests = %d, want 0: refused clients must not reach the control loop", n)
	}
	if err := g.Gather(acc); err != nil {
		t.Fatal(err)
	}
	v, _ := acc.Get("gstats_internal")
	if n, _ := v.Fields["auth_failures"].(int64); n < 2 {
		t.Errorf("gstats_internal auth_failures = %v, want at least 2", v.Fields["auth_failures"])
	}
	if _, ok := v.Fields["auth_failures"]; !ok {
		t.Error("gstats_internal has no auth_failures field")
	}
	// The ZAP handler counts a refusal before it logs it: wait for the
	// lines.
	for _, socket := range []string{"control", "stats"} {
		waitFor(t, "a warning naming the "+socket+" socket, the refused key and the peer", func() bool {
			return len(log.matching("W! CURVE handshake refused on the "+socket+" socket", stranger.Public, "from 127.0.0.1", "curve_client_keys")) > 0
		})
	}
}

// client0Public is the first client's public key as a Z85 string (the
// form curve_client_keys takes inline).
func (k testKeys) client0Public() string { return k.clients[0].Public }

func TestCurveClientKeysFromADirectory(t *testing.T) {
	k := newTestKeys(t, 3)
	other := newTestKeys(t, 1) // a client whose key is elsewhere
	g, _ := startPlugin(t, func(g *Gstats) {
		k.curve(g, k.clientDir)
		g.Log = newSecurityLog()
	})
	if n := len(g.security.clientKeys); n != 3 {
		t.Fatalf("%d keys loaded from %s, want 3 (the .key files, not the .key_secret ones)", n, k.clientDir)
	}
	_, comm := g.Endpoints()
	for i, c := range k.clients {
		req := clientSocket(t, zmq.REQ, comm, k.server.Public, c)
		if reply, ok := request(t, req, "INFO", 10*time.Second); !ok || !strings.Contains(reply, `"version"`) {
			t.Errorf("client %d from the directory: INFO = %q, %v", i+1, reply, ok)
		}
	}
	req := clientSocket(t, zmq.REQ, comm, k.server.Public, other.clients[0])
	if _, err := req.Send("INFO", 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the outsider refused", func() bool { return g.stats.authFailures.Load() == 1 })
}

func TestCurveOnTheStatsSocketOnly(t *testing.T) {
	k := newTestKeys(t, 1)
	g, _ := startPlugin(t, func(g *Gstats) {
		k.curve(g, k.clientFiles[0])
		g.CurveSockets = []string{"Stats"}
	})
	stats, comm := g.Endpoints()
	if reply, ok := request(t, clientSocket(t, zmq.REQ, comm, "", curvekey.Pair{}), "INFO", 10*time.Second); !ok || !strings.Contains(reply, `"version"`) {
		t.Fatalf("plain control client: %q, %v", reply, ok)
	}
	send(t, clientSocket(t, zmq.PUSH, stats, k.server.Public, k.clients[0]), "a", "")
	waitFor(t, "the CURVE client's message", func() bool { return g.stats.accepted.Load() == 1 })
	plain := watchedClientSocket(t, zmq.PUSH, stats, "", curvekey.Pair{})
	send(t, plain.Socket, "b", "")
	// Proved, not waited for: the plain client's handshake is refused,
	// then a sentinel from the CURVE client is the only other message
	// counted.
	plain.waitRefused(t, "stats client without CURVE")
	send(t, clientSocket(t, zmq.PUSH, stats, k.server.Public, k.clients[0]), "c", "")
	waitFor(t, "the CURVE client's sentinel", func() bool { return handled(g) >= 2 })
	plain.neverAdmitted(t, "stats client without CURVE")
	if a, r := g.stats.accepted.Load(), g.stats.rejectedTotal(); a != 2 || r != 0 {
		t.Errorf("accepted %d, rejected %d; want 2 and 0: the stats socket must refuse clients without CURVE", a, r)
	}
}

func TestCurveHandshakeWithTheSmallestMaxMessageSize(t *testing.T) {
	// max_message_size applies to encrypted frames and to the handshake:
	// a 64-byte limit must still let a CURVE client in and a 64-byte
	// message through.
	k := newTestKeys(t, 1)
	g, _ := startPlugin(t, func(g *Gstats) {
		k.curve(g, k.clientFiles[0])
		g.MaxMessageSize = 64
		g.MaxPrefixLength = 60
	})
	stats, _ := g.Endpoints()
	push := clientSocket(t, zmq.PUSH, stats, k.server.Public, k.clients[0])
	prefix := strings.Repeat("p", 60)
	send(t, push, prefix, "1234") // a 60-byte frame and a 4-byte one
	waitFor(t, "the message", func() bool { return g.stats.accepted.Load() == 1 })
	if n := g.stats.disconnects.Load(); n != 0 {
		t.Errorf("disconnects = %d, want 0", n)
	}
	for _, tc := range []struct{ in, want int64 }{{64, 512}, {479, 512}, {480, 513}, {4096, 4129}} {
		if got := curveMaxMessageSize(tc.in); got != tc.want {
			t.Errorf("curveMaxMessageSize(%d) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestCurveTwoInstancesHaveTheirOwnKeys(t *testing.T) {
	// Each plugin instance answers ZAP in its own context: a key allowed
	// by one is refused by the other.
	ka, kb := newTestKeys(t, 1), newTestKeys(t, 1)
	a, _ := startPlugin(t, func(g *Gstats) { ka.curve(g, ka.clientFiles[0]) })
	b, _ := startPlugin(t, func(g *Gstats) {
		kb.curve(g, kb.clientFiles[0])
		g.Log = newSecurityLog()
	})
	_, commA := a.Endpoints()
	_, commB := b.Endpoints()
	if _, ok := request(t, clientSocket(t, zmq.REQ, commA, ka.server.Public, ka.clients[0]), "INFO", 10*time.Second); !ok {
		t.Fatal("a's client got no reply from a")
	}
	if _, ok := request(t, clientSocket(t, zmq.REQ, commB, kb.server.Public, kb.clients[0]), "INFO", 10*time.Second); !ok {
		t.Fatal("b's client got no reply from b")
	}
	req := clientSocket(t, zmq.REQ, commB, kb.server.Public, ka.clients[0])
	if _, err := req.Send("INFO", 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b refusing a's client", func() bool { return b.stats.authFailures.Load() == 1 })
	if n := a.stats.authFailures.Load(); n != 0 {
		t.Errorf("a counted %d auth failures, want 0", n)
	}
}

func TestCurveStopAndFailedStartLeaveNothing(t *testing.T) {
	k := newTestKeys(t, 1)
	g, _ := startPlugin(t, func(g *Gstats) { k.curve(g, k.clientFiles[0]) })
	stats, _ := g.Endpoints()

	// A second plugin on the same stats address fails to start, after its
	// ZAP handler started: it must stop it and terminate its context.
	g2 := initPlugin(t, stats, "tcp://127.0.0.1:*", func(g *Gstats) { k.curve(g, k.clientFiles[0]) })
	done := make(chan error, 1)
	go func() { done <- g2.Start(&testutil.Accumulator{}) }()
	select {
	case err := <-done:
		if err == nil {
			g2.Stop()
			t.Fatal("Start on an address in use succeeded")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a failed Start with CURVE did not return")
	}
	g2.stopAuth() // idempotent

	stopped := make(chan struct{})
	go func() { g.Stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(15 * time.Second):
		t.Fatal("Stop with CURVE did not return")
	}
	if g.security.zap != nil {
		t.Error("the ZAP handler is still set after Stop")
	}
	g.stopAuth()
}

// writeFile writes data to a new file in dir with mode perm.
func writeFile(t *testing.T, dir, name, data string, perm os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(data), perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, perm); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCurveInitErrors(t *testing.T) {
	k := newTestKeys(t, 1)
	dir := t.TempDir()
	secret, err := os.ReadFile(k.serverSecret)
	if err != nil {
		t.Fatal(err)
	}
	worldReadable := writeFile(t, dir, "open.key_secret", string(secret), 0o644)
	groupReadable := writeFile(t, dir, "group.key_secret", string(secret), 0o640)
	badZ85 := writeFile(t, dir, "bad.key", "curve\n    public-key = \"this is not a key, it has spaces in it!\"\n", 0o644)
	emptyDir := filepath.Join(dir, "empty")
	if err := os.Mkdir(emptyDir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, emptyDir, "README", "no keys here", 0o644)
	mismatched := writeFile(t, dir, "mismatch.key_secret",
		strings.Replace(string(secret), k.server.Public, k.clients[0].Public, 1), 0o600)

	cases := []struct {
		name string
		edit func(*Gstats)
		want []string
	}{
		{"secret file mode 0644", func(g *Gstats) { k.curve(g, k.clientFiles[0]); g.CurveSecretKeyFile = worldReadable },
			[]string{"curve_secret_key_file", "has mode 0644", "chmod 600"}},
		{"secret file mode 0640", func(g *Gstats) { k.curve(g, k.clientFiles[0]); g.CurveSecretKeyFile = groupReadable },
			[]string{"has mode 0640"}},
		{"public file as secret", func(g *Gstats) { k.curve(g, k.clientFiles[0]); g.CurveSecretKeyFile = k.serverPublic },
			[]string{"holds no secret-key", "give the .key_secret file, not the .key one"}},
		{"secret file missing", func(g *Gstats) { k.curve(g, k.clientFiles[0]); g.CurveSecretKeyFile = filepath.Join(dir, "nope") },
			[]string{"curve_secret_key_file", "no such file"}},
		{"halves do not match", func(g *Gstats) { k.curve(g, k.clientFiles[0]); g.CurveSecretKeyFile = mismatched },
			[]string{"its public-key is not the one of its secret-key"}},
		{"no client keys", func(g *Gstats) { k.curve(g) },
			[]string{"curve_client_keys is empty, so no client could connect", "gstatsctl keygen"}},
		{"client keys without a secret", func(g *Gstats) { g.CurveClientKeys = []string{k.clients[0].Public} },
			[]string{"curve_client_keys is set but curve_secret_key_file is not"}},
		{"sockets without a secret", func(g *Gstats) { g.CurveSockets = []string{"stats"} },
			[]string{"curve_sockets is set but curve_secret_key_file is not"}},
		{"bad Z85 inline", func(g *Gstats) { k.curve(g, "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf\"") },
			[]string{"curve_client_keys: entry 1", "neither a 40-character Z85 key nor a key file"}},
		{"short inline key", func(g *Gstats) { k.curve(g, k.clients[0].Public, "abc") },
			[]string{"curve_client_keys: entry 2", `"abc" is neither`}},
		{"bad Z85 in a file", func(g *Gstats) { k.curve(g, badZ85) },
			[]string{"curve_client_keys", "bad.key", "line 2: public-key"}},
		{"empty entry", func(g *Gstats) { k.curve(g, k.clients[0].Public, " ") },
			[]string{"curve_client_keys: entry 2 is empty"}},
		{"directory without keys", func(g *Gstats) { k.curve(g, emptyDir) },
			[]string{"directory " + emptyDir + " holds no *.key file"}},
		{"unknown socket", func(g *Gstats) { k.curve(g, k.clientFiles[0]); g.CurveSockets = []string{"stats", "http"} },
			[]string{`curve_sockets: unknown socket "http"`, `"stats", "control"`}},
		{"no socket", func(g *Gstats) { k.curve(g, k.clientFiles[0]); g.CurveSockets = []string{} },
			[]string{"curve_sockets is empty"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := New()
			g.StatsAddress, g.CommAddress = "tcp://127.0.0.1:0", "tcp://127.0.0.1:0"
			g.Log = testutil.Logger{Quiet: true}
			tc.edit(g)
			err := g.Init()
			if err == nil {
				t.Fatalf("Init() succeeded, want an error containing %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Init() = %v\nwant it to contain %q", err, w)
				}
			}
		})
	}
}

func TestCurveClientKeyForms(t *testing.T) {
	// Every form curve_client_keys takes, and a key given twice counted once.
	k := newTestKeys(t, 3)
	clientSecret := strings.TrimSuffix(k.clientFiles[1], ".key") + ".key_secret"
	g := initPlugin(t, "tcp://127.0.0.1:0", "tcp://127.0.0.1:0", func(g *Gstats) {
		k.curve(g, k.clients[0].Public, k.clientFiles[1], clientSecret, k.clientFiles[2], k.clients[2].Public)
	})
	if n := len(g.security.clientKeys); n != 3 {
		t.Errorf("%d distinct client keys, want 3", n)
	}
	for i, c := range k.clients {
		raw, err := curvekey.Decode(c.Public)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := g.security.clientKeys[[32]byte(raw)]; !ok {
			t.Errorf("client %d's key is not allowed", i+1)
		}
	}
}

func TestInsecureControlRefusedAtInit(t *testing.T) {
	k := newTestKeys(t, 1)
	local := []string{"tcp://127.0.0.1:0", "tcp://127.8.9.10:0", "tcp://[::1]:0", "ipc:///tmp/gstats-test-comm.sock"}
	remote := []string{"tcp://*:0", "tcp://0.0.0.0:0", "tcp://[::]:0", "tcp://10.1.2.3:2345", "tcp://[2001:db8::1]:0", "tcp://eth0:0", "tcp://[fe80::1%eth0]:0"}
	type curveMode int
	const (
		curveOff curveMode = iota
		curveBoth
		curveStatsOnly
	)
	commands := []struct {
		list  []string
		risky bool // RESET or QUIT allowed
	}{
		{nil, true},
		{[]string{"STATS", "RTIMES", "INFO"}, false},
		{[]string{"STATS", "RESET"}, true},
		{[]string{"QUIT"}, true},
	}
	guidance := []string{
		"can be reached from other hosts",
		`comm_address = "tcp://127.0.0.1:`,
		"ipc://",
		`allowed_commands = ["STATS", "RTIMES", "INFO"]`,
		"allow_insecure_control = true",
		"docs/SECURITY.md",
	}
	n := 0
	for _, addr := range append(append([]string{}, local...), remote...) {
		isRemote := slices.Contains(remote, addr)
		for _, cmds := range commands {
			for _, mode := range []curveMode{curveOff, curveBoth, curveStatsOnly} {
				for _, insecure := range []bool{false, true} {
					name := fmt.Sprintf("%s/%v/curve%d/insecure=%v", addr, cmds.list, mode, insecure)
					n++
					g := New()
					g.StatsAddress, g.CommAddress = "tcp://127.0.0.1:0", addr
					g.Log = testutil.Logger{Quiet: true}
					g.AllowedCommands = slices.Clone(cmds.list)
					g.AllowInsecureControl = insecure
					if mode != curveOff {
						k.curve(g, k.clientFiles[0])
					}
					if mode == curveStatsOnly {
						g.CurveSockets = []string{"stats"}
					}
					err := g.Init()
					refuse := isRemote && cmds.risky && mode != curveBoth && !insecure
					if !refuse {
						if err != nil {
							t.Errorf("%s: Init() = %v, want success", name, err)
						}
						continue
					}
					if err == nil {
						t.Errorf("%s: Init() succeeded, want a refusal", name)
						continue
					}
					msg := err.Error()
					for _, w := range guidance {
						if !strings.Contains(msg, w) {
							t.Errorf("%s: %q lacks %q", name, msg, w)
						}
					}
					if !strings.Contains(msg, fmt.Sprintf("comm_address %q", addr)) {
						t.Errorf("%s: %q does not name the address", name, msg)
					}
					wantCurve := "curve_secret_key_file and curve_client_keys"
					if mode == curveStatsOnly {
						wantCurve = `add "control" to curve_sockets`
					}
					if !strings.Contains(msg, wantCurve) {
						t.Errorf("%s: %q lacks %q", name, msg, wantCurve)
					}
					var wantRisk string
					switch {
					case cmds.list == nil:
						wantRisk = "allows RESET and QUIT without CURVE: anyone who can connect could reset the statistics and stop the collector"
					case slices.Contains(cmds.list, "RESET"):
						wantRisk = "allows RESET without CURVE: anyone who can connect could reset the statistics;"
					default:
						wantRisk = "allows QUIT without CURVE: anyone who can connect could stop the collector;"
					}
					if !strings.Contains(msg, wantRisk) {
						t.Errorf("%s: %q lacks %q", name, msg, wantRisk)
					}
				}
			}
		}
	}
	if n != (len(local)+len(remote))*len(commands)*3*2 {
		t.Fatalf("ran %d cases", n)
	}
}

func TestInsecureSocketsWarnAtStart(t *testing.T) {
	cases := []struct {
		name  string
		edit  func(*Gstats)
		warns []string // each a substring of one warning
	}{
		{"loopback", func(*Gstats) {}, nil},
		{"stats on every interface", func(g *Gstats) { g.StatsAddress = "tcp://*:*" },
			[]string{"stats socket tcp://*:* can be reached from other hosts without CURVE: anyone who can connect can add requests"}},
		{"control on every interface, trusted", func(g *Gstats) { g.CommAddress = "tcp://0.0.0.0:*"; g.AllowInsecureControl = true },
			[]string{"control socket tcp://0.0.0.0:* can be reached from other hosts without CURVE and answers [STATS RTIMES RESET QUIT INFO]"}},
		{"control on every interface, read only", func(g *Gstats) {
			g.CommAddress = "tcp://0.0.0.0:*"
			g.AllowedCommands = []string{"STATS", "INFO"}
		}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Through startAuth (which Start calls) rather than Start: the
			// test binds nothing on other interfaces.
			log := newSecurityLog()
			g := initPlugin(t, "tcp://127.0.0.1:*", "tcp://127.0.0.1:*", func(g *Gstats) {
				g.Log = log
				tc.edit(g)
			})
			if err := g.startAuth(); err != nil {
				t.Fatal(err)
			}
			g.stopAuth()
			warns := log.matching("W! ")
			if len(warns) != len(tc.warns) {
				t.Errorf("warnings:\n%s\nwant %d", strings.Join(warns, "\n"), len(tc.warns))
			}
			for _, w := range tc.warns {
				if len(log.matching("W! ", w)) != 1 {
					t.Errorf("no warning %q in:\n%s", w, log.all())
				}
			}
		})
	}
}

func TestIsLocalAddress(t *testing.T) {
	cases := map[string]bool{
		"tcp://127.0.0.1:2345":        true,
		"tcp://127.0.0.2:2345":        true,
		"tcp://127.255.255.254:1":     true,
		"tcp://[::1]:2345":            true,
		"tcp://[::ffff:127.0.0.1]:1":  true,
		"ipc:///run/gstats/comm.sock": true,
		"inproc://x":                  true,
		"tcp://*:2345":                false,
		"tcp://0.0.0.0:2345":          false,
		"tcp://[::]:2345":             false,
		"tcp://192.168.1.5:2345":      false,
		"tcp://128.0.0.1:2345":        false,
		"tcp://lo:2345":               false, // interface names are not checked
		"tcp://eth0:2345":             false,
		"tcp://[fe80::1%lo]:2345":     false,
		"tcp://127.0.0.1":             false, // malformed: not local
		"udp://127.0.0.1:1":           false,
	}
	for addr, want := range cases {
		if got := isLocalAddress(addr); got != want {
			t.Errorf("isLocalAddress(%q) = %v, want %v", addr, got, want)
		}
	}
}

// BenchmarkCurveHandshake measures a control client's first request: a new
// socket, the connection (and CURVE handshake with ZAP), STATS and its
// reply.
func BenchmarkCurveHandshake(b *testing.B) {
	k := newTestKeys(b, 1)
	for _, curve := range []bool{false, true} {
		name := "plain"
		if curve {
			name = "curve"
		}
		b.Run(name, func(b *testing.B) {
			g := initPlugin(b, "tcp://127.0.0.1:*", "tcp://127.0.0.1:*", func(g *Gstats) {
				if curve {
					k.curve(g, k.clientFiles[0])
				}
			})
			if err := g.Start(&testutil.Accumulator{}); err != nil {
				b.Fatal(err)
			}
			defer g.Stop()
			_, comm := g.Endpoints()
			for b.Loop() {
				s, err := zmq.NewSocket(zmq.REQ)
				if err != nil {
					b.Fatal(err)
				}
				_ = s.SetLinger(0)
				_ = s.SetRcvtimeo(10 * time.Second)
				if curve {
					_ = s.ClientAuthCurve(k.server.Public, k.clients[0].Public, k.clients[0].Secret)
				}
				if err := s.Connect(comm); err != nil {
					b.Fatal(err)
				}
				if _, err := s.Send("STATS", 0); err != nil {
					b.Fatal(err)
				}
				if _, err := s.Recv(0); err != nil {
					b.Fatalf("no reply: %v", err)
				}
				_ = s.Close()
			}
		})
	}
}

// BenchmarkCurveIngest measures the events per second one PUSH client
// gets through to the window, with and without CURVE, as classic messages
// (one event each) and as packed ones (about 4 KiB, what the gstats
// clients send by default).
func BenchmarkCurveIngest(b *testing.B) {
	k := newTestKeys(b, 1)
	msgs := benchMessages(1 << 16)
	var packed [][]byte // frames of at most 4 KiB
	frame := wire.AppendBatchHeader(nil, 0)
	for _, m := range msgs {
		next, ok := wire.AppendBatchRecord(frame, m...)
		if !ok {
			b.Fatalf("cannot pack %q", m)
		}
		if len(next) > 4096 {
			packed = append(packed, frame)
			next, _ = wire.AppendBatchRecord(wire.AppendBatchHeader(nil, 0), m...)
		}
		frame = next
	}
	for _, curve := range []bool{false, true} {
		for _, pack := range []bool{false, true} {
			name := map[bool]string{false: "plain", true: "curve"}[curve] + "/" + map[bool]string{false: "classic", true: "packed"}[pack]
			b.Run(name, func(b *testing.B) {
				g := initPlugin(b, "tcp://127.0.0.1:*", "", func(g *Gstats) {
					g.MaxPrefixes = 10
					g.ReceiveQueue = 1 << 20
					if curve {
						k.curve(g, k.clientFiles[0])
					}
				})
				if err := g.Start(&testutil.Accumulator{}); err != nil {
					b.Fatal(err)
				}
				defer g.Stop()
				stats, _ := g.Endpoints()
				s, err := zmq.NewSocket(zmq.PUSH)
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				_ = s.SetLinger(0)
				_ = s.SetSndhwm(0)
				if curve {
					_ = s.ClientAuthCurve(k.server.Public, k.clients[0].Public, k.clients[0].Secret)
				}
				if err := s.Connect(stats); err != nil {
					b.Fatal(err)
				}
				sent := int64(0)
				t0 := time.Now()
				for i := 0; b.Loop(); i++ {
					if pack {
						f := packed[i%len(packed)]
						if _, err := s.SendBytes(f, 0); err != nil {
							b.Fatal(err)
						}
						sent += int64(bytes.Count(f, []byte{'\n'}) - 1) // the header's newline
						continue
					}
					m := msgs[i%len(msgs)]
					last := len(m) - 1
					for j, f := range m {
						flag := zmq.SNDMORE
						if j == last {
							flag = 0
						}
						if _, err := s.SendBytes(f, flag); err != nil {
							b.Fatal(err)
						}
					}
					sent++
				}
				deadline := time.Now().Add(time.Minute)
				for handled(g) < sent {
					if time.Now().After(deadline) {
						b.Fatalf("%d of %d events handled after a minute", handled(g), sent)
					}
					time.Sleep(time.Millisecond)
				}
				b.ReportMetric(float64(sent)/time.Since(t0).Seconds(), "events/s")
			})
		}
	}
}
