package gstats

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/influxdata/telegraf"

	"github.com/gstats/gstats/internal/curvekey"
)

// The ZAP handler (ZeroMQ RFC 27) decides which CURVE clients may complete
// their handshake. libzmq asks it over a REP socket bound to zapEndpoint in
// the context of the socket being connected to, so each plugin instance
// serves its own context (zmq4's AuthStart serves only zmq4's default
// context, once per process).
//
// Without a handler bound, libzmq lets every CURVE client in: the handler
// is therefore started before the sockets are bound, stopped only after
// they are closed, and keeps serving whatever goes wrong in between.

// zapEndpoint is where libzmq sends ZAP requests.
const zapEndpoint = "inproc://zeromq.zap.01"

// zapVersion is the only ZAP version there is.
const zapVersion = "1.0"

// ZAP status codes.
const (
	zapOK       = "200"
	zapDenied   = "400"
	zapInternal = "500"
)

// zapStopTimeout bounds how long stop waits for the handler's goroutine.
const zapStopTimeout = 5 * time.Second

// zapSendTimeout bounds a reply to libzmq, so the handler always gets back
// to its wake socket.
const zapSendTimeout = time.Second

// zapRequest is a parsed ZAP 1.0 request.
type zapRequest struct {
	RequestID   []byte
	Domain      string
	Address     string // the peer's IP address, for tcp://
	RoutingID   []byte
	Mechanism   string // NULL, PLAIN, CURVE, GSSAPI
	Credentials [][]byte
}

// parseZAP parses the frames of a ZAP request. It never panics; the frames
// are not retained.
func parseZAP(frames [][]byte) (zapRequest, error) {
	if len(frames) < 6 {
		return zapRequest{}, fmt.Errorf("ZAP request has %d frames, want at least 6", len(frames))
	}
	if string(frames[0]) != zapVersion {
		return zapRequest{}, fmt.Errorf("ZAP version %.16q, want %q", frames[0], zapVersion)
	}
	r := zapRequest{
		RequestID:   clone(frames[1]),
		Domain:      string(frames[2]),
		Address:     string(frames[3]),
		RoutingID:   clone(frames[4]),
		Mechanism:   string(frames[5]),
		Credentials: make([][]byte, 0, len(frames)-6),
	}
	for _, c := range frames[6:] {
		r.Credentials = append(r.Credentials, clone(c))
	}
	if r.Mechanism == "CURVE" {
		if len(r.Credentials) != 1 {
			return zapRequest{}, fmt.Errorf("CURVE ZAP request has %d credential frames, want 1", len(r.Credentials))
		}
		if len(r.Credentials[0]) != 32 {
			return zapRequest{}, fmt.Errorf("CURVE ZAP request has a %d-byte client key, want 32", len(r.Credentials[0]))
		}
	}
	return r, nil
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }

// zapDecision is what the handler answered, for counting and logging.
type zapDecision struct {
	Status string // zapOK, zapDenied or zapInternal
	Text   string
	Key    string // the client's public key (Z85) when it gave one
	Socket string // the socket, from the ZAP domain; "" if unknown
	Peer   string // the peer's address
}

// decideZAP answers the frames of one ZAP request: 200 for a CURVE client
// whose key is in keys on a domain of domains (ZAP domain → socket name),
// 400 for any other well-formed request, 500 for a malformed one. It
// returns the reply frames, always six, with the request id echoed when
// there is one.
func decideZAP(frames [][]byte, domains map[string]string, keys map[[32]byte]string) ([][]byte, zapDecision) {
	var id []byte
	if len(frames) >= 2 {
		id = frames[1]
	}
	var d zapDecision
	userID := ""
	req, err := parseZAP(frames)
	switch {
	case err != nil:
		d = zapDecision{Status: zapInternal, Text: "malformed ZAP request: " + err.Error()}
	case domains[req.Domain] == "":
		d = zapDecision{Status: zapDenied, Text: fmt.Sprintf("unknown ZAP domain %.64q", req.Domain)}
	case req.Mechanism != "CURVE":
		d = zapDecision{Status: zapDenied, Text: fmt.Sprintf("mechanism %.16q refused: CURVE is required", req.Mechanism)}
	default:
		key, _ := curvekey.Encode(req.Credentials[0]) // 32 bytes: cannot fail
		d = zapDecision{Status: zapDenied, Text: "client key not allowed", Key: key}
		if _, ok := keys[[32]byte(req.Credentials[0])]; ok {
			d.Status, d.Text = zapOK, "OK"
			userID = key
		}
	}
	if err == nil {
		d.Socket = domains[req.Domain]
		d.Peer = req.Address
	}
	return [][]byte{[]byte(zapVersion), id, []byte(d.Status), []byte(d.Text), []byte(userID), nil}, d
}

// zapConfig is what a ZAP handler needs from the plugin.
type zapConfig struct {
	domains  map[string]string   // ZAP domain → socket name
	keys     map[[32]byte]string // allowed client keys
	failures *atomic.Int64       // counts refused handshakes
	log      telegraf.Logger
	logs     *throttle // used by the handler's goroutine only
}

// zapHandler serves ZAP requests on its own goroutine until stopped.
type zapHandler struct {
	cfg    zapConfig
	rep    *zmq.Socket // owned by the goroutine
	wake   *zmq.Socket // owned by the goroutine
	wakeTx *zmq.Socket // owned by stop
	done   chan struct{}
}

// startZAP binds the ZAP endpoint in zctx and starts serving it.
func startZAP(zctx *zmq.Context, cfg zapConfig) (*zapHandler, error) {
	h := &zapHandler{cfg: cfg, done: make(chan struct{})}
	var opened []*zmq.Socket
	fail := func(err error) (*zapHandler, error) {
		for _, s := range opened {
			_ = s.Close()
		}
		return nil, err
	}
	rep, err := zctx.NewSocket(zmq.REP)
	if err != nil {
		return fail(fmt.Errorf("creating the ZAP socket: %w", err))
	}
	opened = append(opened, rep)
	if err := rep.SetLinger(0); err != nil {
		return fail(fmt.Errorf("setting linger on the ZAP socket: %w", err))
	}
	if err := rep.SetSndtimeo(zapSendTimeout); err != nil {
		return fail(fmt.Errorf("setting the send timeout of the ZAP socket: %w", err))
	}
	if err := rep.Bind(zapEndpoint); err != nil {
		return fail(fmt.Errorf("binding %s: %w", zapEndpoint, err))
	}
	const wakeEP = "inproc://gstats-wake-zap"
	wake, err := zctx.NewSocket(zmq.PAIR)
	if err != nil {
		return fail(fmt.Errorf("creating the ZAP wake socket: %w", err))
	}
	opened = append(opened, wake)
	if err := wake.Bind(wakeEP); err != nil {
		return fail(fmt.Errorf("binding the ZAP wake socket: %w", err))
	}
	tx, err := zctx.NewSocket(zmq.PAIR)
	if err != nil {
		return fail(fmt.Errorf("creating the ZAP wake socket: %w", err))
	}
	opened = append(opened, tx)
	if err := tx.SetLinger(0); err != nil {
		return fail(fmt.Errorf("setting linger on the ZAP wake socket: %w", err))
	}
	if err := tx.Connect(wakeEP); err != nil {
		return fail(fmt.Errorf("connecting the ZAP wake socket: %w", err))
	}
	h.rep, h.wake, h.wakeTx = rep, wake, tx
	go h.run()
	return h, nil
}

// stop wakes the handler, waits for it (bounded) and closes the last
// socket; the context may then terminate.
func (h *zapHandler) stop() error {
	defer func() { _ = h.wakeTx.Close() }()
	if _, err := h.wakeTx.Send("stop", zmq.DONTWAIT); err != nil {
		return fmt.Errorf("waking the ZAP handler: %w", err)
	}
	select {
	case <-h.done:
		return nil
	case <-time.After(zapStopTimeout):
		return errors.New("the ZAP handler did not stop within " + zapStopTimeout.String())
	}
}

func (h *zapHandler) run() {
	defer close(h.done)
	defer func() {
		for _, s := range []*zmq.Socket{h.rep, h.wake} {
			if err := s.Close(); err != nil {
				h.cfg.log.Errorf("closing a ZAP socket: %v", err)
			}
		}
	}()
	poller := zmq.NewPoller()
	poller.Add(h.rep, zmq.POLLIN)
	poller.Add(h.wake, zmq.POLLIN)
	for {
		polled, err := poller.Poll(-1)
		if err != nil {
			if zmq.AsErrno(err) == zmq.ETERM {
				return
			}
			// Leaving would let every CURVE client in: keep serving.
			h.cfg.logs.warn(h.cfg.log, "zap-poll", time.Now(), fmt.Sprintf("CURVE authentication: poll failed: %v; retrying", err))
			time.Sleep(10 * time.Millisecond)
			continue
		}
		for _, p := range polled {
			if p.Socket == h.wake {
				return
			}
		}
		h.serveOne()
	}
}

// serveOne answers one queued ZAP request, if any.
func (h *zapHandler) serveOne() {
	frames, err := h.rep.RecvMessageBytes(zmq.DONTWAIT)
	if err != nil {
		return // EAGAIN or EINTR: the next poll retries
	}
	reply, d := decideZAP(frames, h.cfg.domains, h.cfg.keys)
	parts := make([]any, len(reply))
	for i, f := range reply {
		parts[i] = f
	}
	for {
		_, err = h.rep.SendMessage(parts...)
		if err == nil || !retryable(err) {
			break
		}
	}
	if err != nil {
		h.cfg.logs.warn(h.cfg.log, "zap-send", time.Now(), fmt.Sprintf("CURVE authentication: reply not sent: %v", err))
	}
	if d.Status == zapOK {
		return
	}
	h.cfg.failures.Add(1)
	now := time.Now()
	switch {
	case d.Status == zapInternal:
		h.cfg.logs.warn(h.cfg.log, "zap-malformed", now, fmt.Sprintf("CURVE authentication: %s; handshake refused", d.Text))
	case d.Key != "":
		h.cfg.logs.warn(h.cfg.log, "zap-refused-"+d.Socket, now, fmt.Sprintf(
			"CURVE handshake refused on the %s socket: client key %s from %s is not in curve_client_keys (add its .key file there if it should connect)",
			d.Socket, d.Key, peerName(d.Peer)))
	default:
		h.cfg.logs.warn(h.cfg.log, "zap-other", now, fmt.Sprintf("CURVE authentication: handshake from %s refused: %s", peerName(d.Peer), d.Text))
	}
}

func peerName(addr string) string {
	if addr == "" {
		return "an unknown address"
	}
	return addr
}
