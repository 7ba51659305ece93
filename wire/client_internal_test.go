package wire

import (
	"errors"
	"strings"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"
)

// TestNoReplyMessage checks the explanation of a request without reply
// for each thing a socket monitor can have seen, with and without CURVE.
func TestNoReplyMessage(t *testing.T) {
	const (
		addr = "tcp://10.0.0.1:2345"
		key  = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"
		base = "no reply to STATS from tcp://10.0.0.1:2345 within 3s"
	)
	tests := []struct {
		name  string
		curve bool
		seen  connState
		want  []string
		not   []string
	}{
		{"no monitor", false, connState{}, []string{base + "; is gstats-collectd running there? (if the collector requires CURVE, give this client"}, nil},
		{"no monitor, CURVE", true, connState{}, []string{"is gstats-collectd running there?", "the collector may require CURVE or not accept this key", key}, nil},
		{"nothing listens", false, connState{known: true}, []string{base + "; is gstats-collectd running there? Nothing accepted the connection"}, []string{"CURVE"}},
		{"nothing listens, CURVE", true, connState{known: true}, []string{"Nothing accepted the connection"}, []string{"CURVE"}},
		{"connected, no answer", false, connState{known: true, connected: true, handshook: true}, []string{"is gstats-collectd running there? It accepted the connection but did not answer"}, []string{"CURVE"}},
		{"handshake pending", false, connState{known: true, connected: true}, []string{"the handshake did not complete", "if the collector requires CURVE"}, nil},
		{"handshake pending, CURVE", true, connState{known: true, connected: true}, []string{"the handshake did not complete", "the collector may require CURVE or not accept this key"}, nil},
		{"key refused", true, connState{known: true, connected: true, authStatus: 400, broken: true},
			[]string{base + ": the collector refused the CURVE handshake (ZAP status 400): it does not accept this client's public key " + key + "; add it to the collector's curve_client_keys"}, nil},
		{"authentication broken", true, connState{known: true, connected: true, authStatus: 500}, []string{"refused the connection (ZAP status 500)", "the collector may require CURVE or not accept this key"}, nil},
		{"refused without CURVE", false, connState{known: true, connected: true, authStatus: 400}, []string{"refused the connection (ZAP status 400)", "if the collector requires CURVE"}, nil},
		{"mismatch, CURVE", true, connState{known: true, connected: true, mismatch: true, broken: true}, []string{"the collector does not use CURVE on this socket and this client does", "curve_sockets"}, nil},
		{"mismatch", false, connState{known: true, connected: true, mismatch: true, broken: true}, []string{"the collector requires CURVE and this client does not use it"}, nil},
		{"broken, CURVE", true, connState{known: true, connected: true, broken: true}, []string{base + ": the collector broke off the CURVE handshake; the collector may require CURVE or not accept this key", "public key of its curve_secret_key_file", key}, nil},
		{"broken", false, connState{known: true, connected: true, broken: true}, []string{"broke off the handshake: it is not a gstats control socket (is this the stats address?), or if the collector requires CURVE"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := noReplyMessage("STATS", addr, 3*time.Second, tt.curve, key, tt.seen)
			if !strings.HasPrefix(got, base) {
				t.Errorf("%q does not start with %q", got, base)
			}
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("%q lacks %q", got, w)
				}
			}
			for _, w := range tt.not {
				if strings.Contains(got, w) {
					t.Errorf("%q mentions %q", got, w)
				}
			}
		})
	}
}

// TestConnStateRecord checks how monitor events are read.
func TestConnStateRecord(t *testing.T) {
	tests := []struct {
		ev    zmq.Event
		value int
		want  connState
	}{
		{zmq.EVENT_CONNECTED, 7, connState{connected: true}},
		{zmq.EVENT_HANDSHAKE_SUCCEEDED, 0, connState{handshook: true}},
		{zmq.EVENT_HANDSHAKE_FAILED_AUTH, 400, connState{authStatus: 400}},
		{zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL, mechanismMismatch, connState{mismatch: true}},
		{zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL, 0x11000001, connState{broken: true}},
		{zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL, 32, connState{broken: true}},
		{zmq.EVENT_DISCONNECTED, 7, connState{}},
	}
	for _, tt := range tests {
		var s connState
		s.record(tt.ev, tt.value)
		if s != tt.want {
			t.Errorf("record(%v, %#x) = %+v, want %+v", tt.ev, tt.value, s, tt.want)
		}
	}
}

// TestCurveWithoutSupport checks the error when libzmq lacks CURVE,
// which Debian's libzmq5 never does, so it is simulated.
func TestCurveWithoutSupport(t *testing.T) {
	o := ClientOptions{CurveServerKey: "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7", CurveSecretKey: "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6"}
	_, err := o.curveKeys(false)
	if !errors.Is(err, ErrCurveSettings) || !strings.Contains(err.Error(), "this libzmq has no CURVE support") {
		t.Errorf("error %v, want ErrCurveSettings saying libzmq has no CURVE support", err)
	}
	if _, err := (ClientOptions{}).curveKeys(false); err != nil {
		t.Errorf("no CURVE asked, no CURVE support: %v", err)
	}
}
