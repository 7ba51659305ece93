package client_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/telegraf/testutil"
	zmq "github.com/pebbe/zmq4"

	"github.com/gstats/gstats/client"
	"github.com/gstats/gstats/internal/curvekey"
	"github.com/gstats/gstats/plugins/inputs/gstats"
	"github.com/gstats/gstats/wire"
)

// newKeys makes a CURVE key pair and writes it to dir/name.key and
// dir/name.key_secret.
func newKeys(t *testing.T, dir, name string) (pair curvekey.Pair, public, secret string) {
	t.Helper()
	pair, err := curvekey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	public, secret, err = curvekey.Write(filepath.Join(dir, name), pair, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return pair, public, secret
}

func TestNewRejectsBadCurveKeys(t *testing.T) {
	dir := t.TempDir()
	server, _, _ := newKeys(t, dir, "server")
	cl, _, _ := newKeys(t, dir, "client")
	other, _, _ := newKeys(t, dir, "other")
	cases := []struct {
		name string
		opts client.Options
		want string
	}{
		{"server key too short", client.Options{CurveServerKey: "abc", CurveClientKey: cl}, "CurveServerKey: a CURVE key is 40 characters of Z85, got 3"},
		{"server key not Z85", client.Options{CurveServerKey: strings.Repeat("~", 40), CurveClientKey: cl}, "CurveServerKey: character 1"},
		{"no client key", client.Options{CurveServerKey: server.Public}, "CurveClientKey.Secret is not"},
		{"client public key only", client.Options{CurveServerKey: server.Public, CurveClientKey: client.KeyPair{Public: cl.Public}}, "CurveClientKey.Secret is not"},
		{"client secret not Z85", client.Options{CurveServerKey: server.Public, CurveClientKey: client.KeyPair{Secret: "x"}}, "CurveClientKey.Secret: a CURVE key is 40"},
		{"client keys of two pairs", client.Options{CurveServerKey: server.Public, CurveClientKey: client.KeyPair{Public: other.Public, Secret: cl.Secret}}, "is not the public key of"},
		{"client key without server key", client.Options{CurveClientKey: cl}, "CurveServerKey is not"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Address = "tcp://127.0.0.1:1"
			c, err := client.New(tc.opts)
			if err == nil {
				_ = c.Close()
				t.Fatalf("New succeeded, want an error containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want an error containing %q", err, tc.want)
			}
		})
	}
	// The secret key alone is enough: the public key is derived.
	c := newClient(t, client.Options{Address: "tcp://127.0.0.1:1", CurveServerKey: server.Public, CurveClientKey: client.KeyPair{Secret: cl.Secret}})
	_ = c.Close()
}

func TestLoadCurveKeys(t *testing.T) {
	dir := t.TempDir()
	server, serverPub, serverSec := newKeys(t, dir, "server")
	cl, clientPub, clientSec := newKeys(t, dir, "client")
	loose := filepath.Join(dir, "loose.key_secret")
	data, err := os.ReadFile(clientSec)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(loose, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(loose, 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, server, client string
		want                 string // error; "" for success
	}{
		{"key files", serverPub, clientSec, ""},
		{"Z85 server key", server.Public, clientSec, ""},
		{"server's secret key file gives its public key", serverSec, clientSec, ""},
		{"missing server key file", filepath.Join(dir, "nope.key"), clientSec, "CURVE server key: " + `"` + filepath.Join(dir, "nope.key") + `" is neither`},
		{"missing client key file", serverPub, filepath.Join(dir, "nope.key_secret"), "CURVE client key: CURVE secret key file"},
		{"client public key file", serverPub, clientPub, "holds no secret-key"},
		{"client key file readable by others", serverPub, loose, "chmod 600"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var o client.Options
			err := o.LoadCurveKeys(tc.server, tc.client)
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("LoadCurveKeys: %v, want an error containing %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadCurveKeys: %v", err)
			}
			if o.CurveServerKey != server.Public || o.CurveClientKey != cl {
				t.Errorf("loaded server key %q, client %+v; want %q, %+v", o.CurveServerKey, o.CurveClientKey, server.Public, cl)
			}
		})
	}
}

// curvePull is a CURVE server PULL socket on a free loopback port. With no
// ZAP handler, libzmq accepts any client key pair; the client must know the
// server's public key.
func curvePull(t *testing.T, server curvekey.Pair) (*zmq.Socket, string) {
	t.Helper()
	return rawPull(t, 20*time.Millisecond,
		func(s *zmq.Socket) error { return s.SetCurveServer(1) },
		func(s *zmq.Socket) error { return s.SetCurveSecretkey(server.Secret) },
	)
}

// TestIntegrationCurveSocket sends to a CURVE PULL socket: with the
// server's public key the events arrive; with another key, or without
// CURVE, no connection is made and every event is dropped at once.
func TestIntegrationCurveSocket(t *testing.T) {
	dir := t.TempDir()
	server, _, _ := newKeys(t, dir, "server")
	cl, _, _ := newKeys(t, dir, "client")
	impostor, _, _ := newKeys(t, dir, "impostor")
	pull, addr := curvePull(t, server)

	good := newClient(t, client.Options{Address: addr, Prefix: "curve", CurveServerKey: server.Public, CurveClientKey: cl})
	got := 0
	waitFor(t, 10*time.Second, "an event over CURVE", func() error {
		good.Start("")
		for {
			frames, err := pull.RecvMessageBytes(0)
			if err != nil {
				break
			}
			wire.ParseBatch(frames[0], wire.Limits{MaxPrefixLength: 255, MaxDuration: 1e9}, func(m wire.Message, err error) {
				if err == nil && string(m.Prefix) == "curve" {
					got++
				}
			})
		}
		if got == 0 {
			return fmt.Errorf("nothing received (client %+v)", good.Stats())
		}
		return nil
	})

	for _, tc := range []struct {
		name string
		opts client.Options
	}{
		{"wrong server key", client.Options{CurveServerKey: impostor.Public, CurveClientKey: cl}},
		{"no CURVE", client.Options{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Address, tc.opts.Prefix = addr, "refused"
			c := newClient(t, tc.opts)
			const n = 200
			deadline := time.Now().Add(time.Second) // time for a handshake to fail
			sent := 0
			for time.Now().Before(deadline) && sent < n {
				t0 := time.Now()
				c.Finish("", time.Millisecond, 200)
				if d := time.Since(t0); d > hangBound {
					t.Fatalf("Finish took %s", d)
				}
				sent++
				time.Sleep(5 * time.Millisecond)
			}
			waitFor(t, 10*time.Second, "the sender to catch up", func() error { return settled(c, uint64(sent)) })
			// Sent == 0 is the proof: the socket never took a message,
			// so none can reach the server, now or later.
			if s := c.Stats(); s.Sent != 0 || s.WouldBlock != uint64(sent) {
				t.Errorf("client %+v, want all %d events refused by the socket", s, sent)
			}
			// What the server has received (the good client's late
			// probes may still come in) holds nothing of this client.
			for {
				frames, err := pull.RecvMessageBytes(0)
				if err != nil {
					break
				}
				if bytes.Contains(bytes.Join(frames, nil), []byte("refused")) {
					t.Errorf("the CURVE server received %q", frames)
				}
			}
		})
	}
}

// curveCollector starts an in-process collector with CURVE on both sockets,
// accepting the client keys listed.
func curveCollector(t *testing.T, serverSecretFile string, clientKeys ...string) *collector {
	t.Helper()
	g := gstats.New()
	g.StatsAddress = "tcp://127.0.0.1:*"
	g.CommAddress = "tcp://127.0.0.1:*"
	g.CurveSecretKeyFile = serverSecretFile
	g.CurveClientKeys = clientKeys
	g.CurveSockets = []string{"stats"} // the test asks the control socket without CURVE
	g.Log = testutil.Logger{Quiet: true}
	if err := g.Init(); err != nil {
		t.Fatalf("collector Init: %v", err)
	}
	if err := g.Start(&testutil.Accumulator{}); err != nil {
		t.Fatalf("collector Start: %v", err)
	}
	stats, comm := g.Endpoints()
	col := &collector{stats: stats, ctl: wire.NewClient(wire.ClientOptions{Address: comm, Timeout: 5 * time.Second}), stopFn: g.Stop}
	t.Cleanup(col.stop)
	return col
}

// TestIntegrationCurveCollector sends to a collector with CURVE on its
// stats socket: a client whose public key is in curve_client_keys, its keys
// loaded from files, is counted; one with another key pair is refused by
// the collector (auth_failures) and drops its events without blocking.
func TestIntegrationCurveCollector(t *testing.T) {
	dir := t.TempDir()
	_, serverPub, serverSec := newKeys(t, dir, "server")
	_, clientPub, clientSec := newKeys(t, dir, "client")
	_, _, strangerSec := newKeys(t, dir, "stranger")
	col := curveCollector(t, serverSec, clientPub)

	var opts client.Options
	if err := opts.LoadCurveKeys(serverPub, clientSec); err != nil {
		t.Fatal(err)
	}
	opts.Address, opts.Prefix = col.stats, "curve"
	c := newClient(t, opts)
	connected(t, c, col)
	const n = 100
	for range n {
		c.Start("")
		c.Finish("", 2*time.Millisecond, 200)
	}
	waitFor(t, 10*time.Second, "the events over CURVE", func() error {
		if st := col.statsOf(t)["curve"]; st.Started != n || st.Finished != n || st.Status.S2xx != n {
			return fmt.Errorf("curve %+v (client %+v)", st, c.Stats())
		}
		return nil
	})

	var stranger client.Options
	if err := stranger.LoadCurveKeys(serverPub, strangerSec); err != nil {
		t.Fatal(err)
	}
	stranger.Address, stranger.Prefix = col.stats, "stranger"
	s := newClient(t, stranger)
	var calls uint64 // the stranger's Start and Finish calls
	waitFor(t, 10*time.Second, "the collector to refuse the stranger's key", func() error {
		s.Start("")
		calls++
		info, err := col.ctl.Info(t.Context())
		if err != nil {
			return err
		}
		if info.AuthFailures == 0 {
			return fmt.Errorf("no auth failure yet (stranger %+v)", s.Stats())
		}
		return nil
	})
	for range n {
		s.Finish("", time.Millisecond, 200)
	}
	calls += n
	waitFor(t, 10*time.Second, "the stranger's sender to catch up", func() error {
		return settled(s, calls)
	})
	if st := s.Stats(); st.Sent != 0 || st.Dropped == 0 {
		t.Errorf("stranger %+v, want nothing sent and its events dropped", st)
	}
	if _, ok := col.statsOf(t)["stranger"]; ok {
		t.Errorf("the collector counted the stranger's events")
	}
}
