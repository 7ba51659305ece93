package wire

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"syscall"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/gstats/gstats/internal/curvekey"
)

// DefaultTimeout bounds a control request when ClientOptions.Timeout is zero.
const DefaultTimeout = 3 * time.Second

// ClientOptions configure a control client.
type ClientOptions struct {
	// Address of the collector's control (REP) socket.
	Address string
	// Timeout bounds each request: sending and waiting for the reply.
	Timeout time.Duration

	// CurveServerKey is the collector's CURVE public key, 40 characters
	// of Z85: the public-key of its curve_secret_key_file. When it is
	// set, requests are encrypted and the client authenticates with the
	// key pair below, which the collector must list in its
	// curve_client_keys. When it is "" and so are the two below, requests
	// go in the clear (ZeroMQ's NULL mechanism), as the original's did.
	CurveServerKey string
	// CurvePublicKey is the client's CURVE public key, Z85. It may be left
	// "": it is derived from CurveSecretKey.
	CurvePublicKey string
	// CurveSecretKey is the client's CURVE secret key, Z85 (the
	// secret-key of a file gstatsctl keygen wrote).
	CurveSecretKey string
}

// Curve reports whether the options ask for CURVE.
func (o ClientOptions) Curve() bool {
	return o.CurveServerKey != "" || o.CurvePublicKey != "" || o.CurveSecretKey != ""
}

// ErrCurveSettings is wrapped by the error of CURVE settings that cannot
// be used: a key missing, malformed or not matching, or a libzmq without
// CURVE.
var ErrCurveSettings = errors.New("unusable CURVE settings")

// Validate checks the CURVE settings: every request of a client made with
// invalid ones fails with the error Validate returns.
func (o ClientOptions) Validate() error {
	_, err := o.curveKeys(zmq.HasCurve())
	return err
}

// curveKeys checks the CURVE settings and returns them with the client's
// public key filled in. hasCurve tells whether libzmq supports CURVE.
func (o ClientOptions) curveKeys(hasCurve bool) (ClientOptions, error) {
	if !o.Curve() {
		return o, nil
	}
	fail := func(format string, a ...any) (ClientOptions, error) {
		return o, fmt.Errorf("%w: %s", ErrCurveSettings, fmt.Sprintf(format, a...))
	}
	if !hasCurve {
		return fail("CURVE keys are given but this libzmq has no CURVE support (it was built without libsodium); install a libzmq with CURVE (Debian's libzmq5 has it) or leave out the keys")
	}
	switch {
	case o.CurveServerKey == "":
		return fail("the client's CURVE key is given but not the collector's public key")
	case o.CurveSecretKey == "":
		return fail("the collector's CURVE public key is given but not the client's secret key")
	}
	if _, err := curvekey.Decode(o.CurveServerKey); err != nil {
		return fail("the collector's public key: %v", err)
	}
	if _, err := curvekey.Decode(o.CurveSecretKey); err != nil {
		return fail("the client's secret key: %v", err)
	}
	pub, err := zmq.AuthCurvePublic(o.CurveSecretKey)
	if err != nil {
		return fail("deriving the client's public key from its secret key: %v", err)
	}
	switch {
	case o.CurvePublicKey == "":
		o.CurvePublicKey = pub
	case o.CurvePublicKey != pub:
		if _, err := curvekey.Decode(o.CurvePublicKey); err != nil {
			return fail("the client's public key: %v", err)
		}
		return fail("the client's public key %s is not the one of its secret key (%s)", o.CurvePublicKey, pub)
	}
	return o, nil
}

// Client sends control commands to a collector. Each request uses a fresh
// REQ socket, so a request that timed out never blocks the next one. A
// Client is safe for concurrent use.
type Client struct {
	opts ClientOptions
	// curveErr is what Validate said of opts; every request returns it.
	curveErr error
}

// NewClient returns a client; it opens nothing until a request is made.
// Its CURVE settings are checked here: if they are invalid, every request
// fails with the error ClientOptions.Validate gives.
func NewClient(opts ClientOptions) *Client {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Address == "" {
		opts.Address = DefaultCommAddress
	}
	checked, err := opts.curveKeys(zmq.HasCurve())
	return &Client{opts: checked, curveErr: err}
}

// Address is the control address the client talks to.
func (c *Client) Address() string { return c.opts.Address }

// ErrNoReply is wrapped by the error of a request that got no reply in time.
var ErrNoReply = errors.New("no reply")

// ErrCommandRefused is wrapped by the error of a request answered ERROR.
var ErrCommandRefused = errors.New("the collector answered ERROR")

// Do sends one command frame and returns the raw reply. It never waits
// longer than the timeout or the context's deadline, whichever is sooner.
// A request that gets no reply in time fails with an error matching
// ErrNoReply, which says what was seen of the connection: nothing
// listening, a CURVE handshake the collector refused (it looks like no
// reply to ZeroMQ), or a collector that accepted the request and did not
// answer.
func (c *Client) Do(ctx context.Context, cmd string) ([]byte, error) {
	if c.curveErr != nil {
		return nil, fmt.Errorf("%s to %s not sent: %w", cmd, c.opts.Address, c.curveErr)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s to %s not sent: %w", cmd, c.opts.Address, err)
	}
	timeout := c.opts.Timeout
	if d, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(d))
	}
	if timeout <= 0 {
		return nil, fmt.Errorf("%s to %s not sent: %w", cmd, c.opts.Address, context.DeadlineExceeded)
	}
	deadline := time.Now().Add(timeout)
	zctx, err := zmq.NewContext()
	if err != nil {
		return nil, fmt.Errorf("creating zmq context: %w", err)
	}
	defer func() { _ = zctx.Term() }()
	sock, err := zctx.NewSocket(zmq.REQ)
	if err != nil {
		return nil, fmt.Errorf("creating REQ socket: %w", err)
	}
	defer func() { _ = sock.Close() }()
	if err := sock.SetLinger(0); err != nil {
		return nil, fmt.Errorf("setting linger: %w", err)
	}
	if err := sock.SetSndtimeo(timeout); err != nil {
		return nil, fmt.Errorf("setting send timeout: %w", err)
	}
	// A reply bigger than this is not from a gstats collector.
	if err := sock.SetMaxmsgsize(256 << 20); err != nil {
		return nil, fmt.Errorf("setting max message size: %w", err)
	}
	if c.opts.Curve() {
		if err := c.setCurve(sock); err != nil {
			return nil, err
		}
	}
	// The monitor tells a refused handshake from nothing listening. Its
	// socket closes before sock, which stops the monitor as it closes.
	mon := startMonitor(zctx, sock)
	if mon != nil {
		defer func() { _ = mon.sock.Close() }()
	}
	if err := sock.Connect(c.opts.Address); err != nil {
		return nil, fmt.Errorf("cannot connect to control address %q: %w; it should look like tcp://127.0.0.1:2345 or ipc:///run/gstats/comm.sock", c.opts.Address, err)
	}
	if _, err := sock.Send(cmd, 0); err != nil {
		return nil, c.noReply(cmd, timeout, mon.drain(), err)
	}
	// Wake up regularly so a cancelled context is honoured.
	for {
		if err := ctx.Err(); err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				return nil, c.noReply(cmd, timeout, mon.drain(), err)
			}
			return nil, fmt.Errorf("%s to %s: %w", cmd, c.opts.Address, err)
		}
		step := min(time.Until(deadline), 100*time.Millisecond)
		if step <= 0 {
			return nil, c.noReply(cmd, timeout, mon.drain(), nil)
		}
		if err := sock.SetRcvtimeo(step); err != nil {
			return nil, fmt.Errorf("setting receive timeout: %w", err)
		}
		reply, err := sock.RecvBytes(0)
		if err == nil {
			return reply, nil
		}
		if errno := zmq.AsErrno(err); errno != zmq.Errno(syscall.EAGAIN) && errno != zmq.Errno(syscall.EINTR) {
			return nil, fmt.Errorf("%s to %s: %w", cmd, c.opts.Address, err)
		}
		mon.drain()
	}
}

// setCurve makes sock a CURVE client with the (checked) keys.
func (c *Client) setCurve(sock *zmq.Socket) error {
	for _, o := range []struct {
		what string
		set  func(string) error
		key  string
	}{
		{"the collector's public key", sock.SetCurveServerkey, c.opts.CurveServerKey},
		{"the client's public key", sock.SetCurvePublickey, c.opts.CurvePublicKey},
		{"the client's secret key", sock.SetCurveSecretkey, c.opts.CurveSecretKey},
	} {
		if err := o.set(o.key); err != nil {
			return fmt.Errorf("setting %s on the REQ socket: %w", o.what, err)
		}
	}
	return nil
}

// ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH from zmq.h: the peers use
// different security mechanisms (CURVE and NULL).
const mechanismMismatch = 0x11000002

// monitorEvents are the socket events a request watches.
const monitorEvents = zmq.EVENT_CONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL |
	zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_AUTH

// monitor reads the connection events of a request's REQ socket.
type monitor struct {
	sock *zmq.Socket
	seen connState
}

// connState is what a request saw of its connection attempts.
type connState struct {
	// known is false when no monitor could be started.
	known bool
	// connected: a TCP (or IPC) connection was made at least once.
	connected bool
	// handshook: a ZMTP handshake succeeded (security included).
	handshook bool
	// authStatus is the ZAP status code of a handshake the collector's
	// authentication refused (400 for a key it does not accept), or 0.
	authStatus int
	// mismatch: the collector uses another security mechanism.
	mismatch bool
	// broken: a handshake failed otherwise; the collector closed the
	// connection (a CURVE server does when the client used the wrong
	// server key) or it was not ZMTP.
	broken bool
}

// record notes one event.
func (s *connState) record(ev zmq.Event, value int) {
	switch ev {
	case zmq.EVENT_CONNECTED:
		s.connected = true
	case zmq.EVENT_HANDSHAKE_SUCCEEDED:
		s.handshook = true
	case zmq.EVENT_HANDSHAKE_FAILED_AUTH:
		s.authStatus = value
	case zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
		if value == mechanismMismatch {
			s.mismatch = true
		} else {
			s.broken = true
		}
	case zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL:
		s.broken = true
	}
}

// startMonitor attaches a monitor to sock, which must not be connected
// yet. It returns nil if libzmq cannot monitor the socket: the request
// then goes on without the diagnosis.
func startMonitor(zctx *zmq.Context, sock *zmq.Socket) *monitor {
	// Each request has its own context, so one inproc name serves all.
	const endpoint = "inproc://gstats-control-monitor"
	if err := sock.Monitor(endpoint, monitorEvents); err != nil {
		return nil
	}
	pair, err := zctx.NewSocket(zmq.PAIR)
	if err != nil {
		_ = sock.Monitor("", 0)
		return nil
	}
	if err := pair.SetLinger(0); err != nil || pair.Connect(endpoint) != nil {
		_ = pair.Close()
		_ = sock.Monitor("", 0)
		return nil
	}
	return &monitor{sock: pair, seen: connState{known: true}}
}

// drain reads the events waiting, without blocking, and returns what was
// seen so far; a nil monitor has seen nothing.
func (m *monitor) drain() connState {
	if m == nil {
		return connState{}
	}
	for {
		ev, _, value, err := m.sock.RecvEvent(zmq.DONTWAIT)
		if err != nil {
			return m.seen
		}
		m.seen.record(ev, value)
	}
}

func (c *Client) noReply(cmd string, timeout time.Duration, seen connState, cause error) error {
	msg := noReplyMessage(cmd, c.opts.Address, timeout, c.opts.Curve(), c.opts.CurvePublicKey, seen)
	if cause != nil {
		msg = fmt.Sprintf("%s (%v)", msg, cause)
	}
	return &noReplyError{msg: msg, cause: cause}
}

// Hints for a request that got no reply, when the collector may be
// refusing the handshake: the client uses CURVE, or does not.
const (
	curveHint   = "the collector may require CURVE or not accept this key: check that the server key is the public key of its curve_secret_key_file and that this client's public key %s is in its curve_client_keys"
	noCurveHint = "if the collector requires CURVE, give this client the collector's public key and a client key pair it accepts (its curve_secret_key_file and curve_client_keys)"
)

// noReplyMessage explains a request that got no reply within timeout,
// from what was seen of the connection. clientKey is the client's CURVE
// public key when curve is true.
func noReplyMessage(cmd, addr string, timeout time.Duration, curve bool, clientKey string, seen connState) string {
	base := fmt.Sprintf("no reply to %s from %s within %s", cmd, addr, timeout)
	running := base + "; is gstats-collectd running there?"
	hint := noCurveHint
	if curve {
		hint = fmt.Sprintf(curveHint, clientKey)
	}
	switch {
	case !seen.known:
		return running + " (" + hint + ")"
	case seen.authStatus == 400 && curve:
		return fmt.Sprintf("%s: the collector refused the CURVE handshake (ZAP status %d): it does not accept this client's public key %s; add it to the collector's curve_client_keys", base, seen.authStatus, clientKey)
	case seen.authStatus != 0:
		return fmt.Sprintf("%s: the collector refused the connection (ZAP status %d); %s", base, seen.authStatus, hint)
	case seen.mismatch && curve:
		return base + ": the collector does not use CURVE on this socket and this client does; leave out the client's CURVE keys, or give the collector a curve_secret_key_file (and \"control\" in its curve_sockets)"
	case seen.mismatch:
		return base + ": the collector requires CURVE and this client does not use it; give this client the collector's public key and a client key pair listed in its curve_client_keys"
	case seen.handshook:
		return running + " It accepted the connection but did not answer: it may be overloaded, or not a gstats collector"
	case seen.broken && curve:
		return base + ": the collector broke off the CURVE handshake; " + hint
	case seen.broken:
		return base + ": the peer broke off the handshake: it is not a gstats control socket (is this the stats address?), or " + hint
	case seen.connected:
		return running + " It accepted the connection, but the handshake did not complete; " + hint
	}
	return running + " Nothing accepted the connection"
}

// noReplyError is a request that got no reply in time; it matches
// ErrNoReply with errors.Is, and unwraps to its cause.
type noReplyError struct {
	msg   string
	cause error
}

func (e *noReplyError) Error() string        { return e.msg }
func (e *noReplyError) Is(target error) bool { return target == ErrNoReply }
func (e *noReplyError) Unwrap() error        { return e.cause }

func (c *Client) doJSON(ctx context.Context, cmd Command, dst any) error {
	reply, err := c.Do(ctx, string(cmd))
	if err != nil {
		return err
	}
	if IsErrorReply(reply) {
		return fmt.Errorf("%s to %s: %w", cmd, c.opts.Address, ErrCommandRefused)
	}
	if err := json.Unmarshal(reply, dst); err != nil {
		return fmt.Errorf("%s reply from %s is not valid JSON: %w", cmd, c.opts.Address, err)
	}
	return nil
}

// Stats sends STATS.
func (c *Client) Stats(ctx context.Context) (StatsReply, error) {
	var r StatsReply
	return r, c.doJSON(ctx, CmdStats, &r)
}

// RTimes sends RTIMES.
func (c *Client) RTimes(ctx context.Context) (RTimesReply, error) {
	var r RTimesReply
	return r, c.doJSON(ctx, CmdRTimes, &r)
}

// Info sends INFO.
func (c *Client) Info(ctx context.Context) (InfoReply, error) {
	var r InfoReply
	return r, c.doJSON(ctx, CmdInfo, &r)
}

// Reset sends RESET.
func (c *Client) Reset(ctx context.Context) error {
	var r any
	return c.doJSON(ctx, CmdReset, &r)
}

// Quit sends QUIT and waits for the collector's acknowledgement.
func (c *Client) Quit(ctx context.Context) error {
	var r any
	return c.doJSON(ctx, CmdQuit, &r)
}
