package client

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	zmq "github.com/pebbe/zmq4"

	"github.com/gstats/gstats/internal/curvekey"
	"github.com/gstats/gstats/wire"
)

// MaxPrefixLength is the longest prefix a client sends, in bytes: the
// collector's default max_prefix_length.
const MaxPrefixLength = 255

// Defaults of Options.
const (
	DefaultQueueSize         = 4096
	DefaultSendHWM           = 1000
	DefaultReconnectInterval = 100 * time.Millisecond
	DefaultReconnectMax      = time.Second
	DefaultLogInterval       = time.Minute
)

// closeTimeout bounds Close. Every step of the sender is non-blocking, so
// it is only reached if libzmq itself misbehaves.
const closeTimeout = 5 * time.Second

// Options configure a Client. The zero value of every field selects its
// default.
type Options struct {
	// Address is the collector's stats (PULL) address, e.g.
	// "tcp://127.0.0.2:2345" (the default, wire.DefaultStatsAddress) or
	// "ipc:///run/gstats/stats.sock".
	Address string
	// Prefix names the application in the collector's statistics. It is
	// used by Middleware, and by Start and Finish when they are given an
	// empty prefix. Default "default", which is also what the collector
	// calls an empty prefix frame.
	Prefix string
	// QueueSize is how many events may wait for the sender goroutine;
	// events beyond it are dropped and counted in Stats.QueueFull.
	// Default DefaultQueueSize.
	QueueSize int
	// SendHWM is how many messages may wait inside the socket for a
	// connected collector that is not keeping up; beyond it they are
	// dropped and counted in Stats.WouldBlock. Default DefaultSendHWM.
	SendHWM int
	// ReconnectInterval is the wait before the first reconnection attempt
	// after the collector went away; the wait doubles after each failed
	// attempt up to ReconnectMax. Defaults DefaultReconnectInterval and
	// DefaultReconnectMax.
	ReconnectInterval time.Duration
	ReconnectMax      time.Duration
	// Logger receives a warning, at most once per LogInterval, when
	// messages were dropped or could not be sent. Default slog.Default().
	Logger *slog.Logger
	// LogInterval throttles those warnings; drops not reported to the
	// collector yet are reported at the same pace while no event comes
	// (see Stats.Reported). Default DefaultLogInterval.
	LogInterval time.Duration
	// Classic sends every event as its own classic message (two or three
	// frames), which the original Python collector also reads. By default
	// the sender packs the events it finds queued into packed messages
	// (wire.BatchHeader, at most MaxPackedBytes each): one message per
	// batch instead of one per event, which costs the sender and the
	// collector far less. Events whose prefix holds a tab or a newline
	// always go as classic messages.
	//
	// Packed messages also report the events dropped since the last packed
	// message the socket accepted (Stats.Reported), which the collector
	// counts as client_dropped. Classic messages cannot: with Classic, the
	// collector never learns of this client's drops.
	Classic bool
	// CurveServerKey turns ZeroMQ CURVE on: the connection is encrypted
	// and the collector must prove it holds the secret key of this public
	// key, 40 characters of Z85 (the public half of the collector's
	// curve_secret_key_file; gstatsctl keygen NAME writes it to NAME.key).
	// CurveClientKey must then be set too. LoadCurveKeys reads both from
	// key files. A client whose keys the collector does not accept never
	// gets a connection: its events are dropped and counted (WouldBlock),
	// as with no collector at all.
	CurveServerKey string
	// CurveClientKey is this client's CURVE key pair in Z85; the collector
	// accepts it if its public key is in its curve_client_keys. Public may
	// be left empty: it is derived from Secret.
	CurveClientKey KeyPair
}

// KeyPair is a CURVE key pair, each key 40 characters of Z85, as in the
// key files gstatsctl keygen writes.
type KeyPair = curvekey.Pair

// LoadCurveKeys sets CurveServerKey from serverKey, the collector's public
// key given as 40 characters of Z85 or as the path of a key file holding it
// (NAME.key), and CurveClientKey from clientKeyFile, the path of this
// client's secret key file (NAME.key_secret, readable by its owner only).
func (o *Options) LoadCurveKeys(serverKey, clientKeyFile string) error {
	server, err := curvekey.LoadPublic(serverKey)
	if err != nil {
		return fmt.Errorf("gstats client: CURVE server key: %w", err)
	}
	pair, err := curvekey.LoadSecret(clientKeyFile)
	if err != nil {
		return fmt.Errorf("gstats client: CURVE client key: %w", err)
	}
	o.CurveServerKey, o.CurveClientKey = server, pair
	return nil
}

// checkCurve validates the CURVE options and fills in the client's public
// key when only its secret key is given.
func checkCurve(opts *Options) error {
	if opts.CurveServerKey == "" {
		if opts.CurveClientKey != (KeyPair{}) {
			return errors.New("gstats client: Options.CurveClientKey is set but CurveServerKey is not, so CURVE would be off; set the collector's public key too")
		}
		return nil
	}
	if !zmq.HasCurve() {
		return errors.New("gstats client: Options.CurveServerKey is set but this libzmq has no CURVE support (it was built without libsodium)")
	}
	if _, err := curvekey.Decode(opts.CurveServerKey); err != nil {
		return fmt.Errorf("gstats client: Options.CurveServerKey: %w", err)
	}
	k := &opts.CurveClientKey
	if k.Secret == "" {
		return errors.New("gstats client: Options.CurveServerKey is set but CurveClientKey.Secret is not; the collector only accepts the public keys in its curve_client_keys (gstatsctl keygen NAME writes a pair; see LoadCurveKeys)")
	}
	if _, err := curvekey.Decode(k.Secret); err != nil {
		return fmt.Errorf("gstats client: Options.CurveClientKey.Secret: %w", err)
	}
	pub, err := zmq.AuthCurvePublic(k.Secret)
	if err != nil {
		return fmt.Errorf("gstats client: deriving the CURVE public key of CurveClientKey.Secret: %w", err)
	}
	if k.Public == "" {
		k.Public = pub
	} else if k.Public != pub {
		return errors.New("gstats client: Options.CurveClientKey.Public is not the public key of CurveClientKey.Secret")
	}
	return nil
}

// MaxPackedBytes is the largest packed message the client builds: within
// the collector's default max_message_size (4 KiB).
const MaxPackedBytes = 4096

// refusalPause is how long the sender drops events without trying after
// the socket refused one (no collector connected, or SendHWM reached): a
// refused send costs a call into libzmq for nothing, and under a flood
// those calls would compete with the application for the CPU.
const refusalPause = 10 * time.Millisecond

// Stats counts what happened to the events given to a client. Once the
// sender has caught up, Sent + Dropped + Errors is the number of Start and
// Finish calls (middleware requests count twice).
type Stats struct {
	// Sent counts events handed to a connected socket, alone or packed.
	// ZeroMQ delivers them unless the connection breaks before they are
	// written.
	Sent uint64
	// Dropped counts events discarded so the application is never held
	// up: QueueFull + WouldBlock.
	Dropped uint64
	// QueueFull counts events dropped because the queue was full
	// (QueueSize) or the client was closed.
	QueueFull uint64
	// WouldBlock counts events the socket refused without waiting (no
	// collector is connected, or SendHWM messages already wait for it),
	// and the events dropped without trying in the 10 ms after a refusal.
	WouldBlock uint64
	// Reported counts the dropped events reported to the collector in the
	// header of a packed message its socket accepted: the collector adds
	// them to its client_dropped. Dropped - Reported wait for the next
	// packed message (a client that sends only classic messages never
	// reports them).
	Reported uint64
	// Errors counts events not sent for another reason: an invalid prefix
	// given to Start or Finish (InvalidPrefix), or a socket error.
	Errors uint64
	// InvalidPrefix counts the Start and Finish calls refused because their
	// prefix was longer than MaxPrefixLength or not valid UTF-8.
	InvalidPrefix uint64
}

// Client sends start and finish messages to a collector without ever
// blocking its caller. It is safe for concurrent use. Close releases it.
type Client struct {
	prefix  string
	address string
	epoch   time.Time // origin of the middleware's monotonic readings
	queue   *ring
	// halfMask is half the queue's capacity minus one: every position
	// with these bits clear wakes the sender.
	halfMask uint64
	// Read on every call: closed once, sleeping when the sender is idle.
	closed   atomic.Bool
	sleeping atomic.Bool // the sender waits for wake, not for its timer
	wake     chan struct{}
	stop     chan struct{}
	done     chan struct{}

	// Counted by the callers, when they drop an event.
	queueFull atomic.Uint64
	invalid   atomic.Uint64
	// Counted by the sender, for every message: on a cache line of their
	// own, away from the fields every caller reads.
	_          [64]byte
	sent       atomic.Uint64
	wouldBlock atomic.Uint64
	sendErrs   atomic.Uint64
	reported   atomic.Uint64
	_          [32]byte

	recorders sync.Pool // *recorder, for the middleware

	closeOnce sync.Once
	closeErr  error // set by Close
	senderErr error // set by the sender before done is closed
}

type kind uint8

const (
	kindStart kind = iota + 1
	kindFinish
)

// event is what the request path puts in the queue: a fixed-size value
// whose prefix shares the caller's string data.
type event struct {
	prefix string
	dur    time.Duration
	status int32
	kind   kind
}

// New validates opts, connects the socket and starts the sender. It does
// not wait for a collector: until one is connected, messages are dropped
// and counted.
func New(opts Options) (*Client, error) {
	if opts.Address == "" {
		opts.Address = wire.DefaultStatsAddress
	}
	if opts.Prefix == "" {
		opts.Prefix = wire.DefaultPrefix
	}
	if err := ValidatePrefix(opts.Prefix); err != nil {
		return nil, fmt.Errorf("gstats client: Options.Prefix: %w", err)
	}
	for _, o := range []struct {
		name string
		v    *int
		def  int
	}{{"QueueSize", &opts.QueueSize, DefaultQueueSize}, {"SendHWM", &opts.SendHWM, DefaultSendHWM}} {
		switch {
		case *o.v == 0:
			*o.v = o.def
		case *o.v < 0:
			return nil, fmt.Errorf("gstats client: Options.%s must not be negative, got %d", o.name, *o.v)
		}
	}
	for _, o := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"ReconnectInterval", &opts.ReconnectInterval, DefaultReconnectInterval},
		{"ReconnectMax", &opts.ReconnectMax, DefaultReconnectMax},
		{"LogInterval", &opts.LogInterval, DefaultLogInterval},
	} {
		switch {
		case *o.v == 0:
			*o.v = o.def
		case *o.v < 0:
			return nil, fmt.Errorf("gstats client: Options.%s must not be negative, got %s", o.name, *o.v)
		}
	}
	if opts.ReconnectMax < opts.ReconnectInterval {
		opts.ReconnectMax = opts.ReconnectInterval
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if err := checkCurve(&opts); err != nil {
		return nil, err
	}

	zctx, sock, err := connect(opts)
	if err != nil {
		return nil, err
	}
	c := &Client{
		prefix:  opts.Prefix,
		address: opts.Address,
		epoch:   time.Now(),
		queue:   newRing(opts.QueueSize),
		wake:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	c.halfMask = uint64(c.queue.capacity()/2 - 1)
	c.recorders.New = func() any { return newRecorder() }
	s := &sender{c: c, zctx: zctx, sock: sock, log: opts.Logger, logEvery: opts.LogInterval, classic: opts.Classic,
		curve: opts.CurveServerKey != ""}
	s.pack.reset()
	go s.run()
	return c, nil
}

// connect creates the context and the PUSH socket, sets its options and
// connects it.
func connect(opts Options) (*zmq.Context, *zmq.Socket, error) {
	zctx, err := zmq.NewContext()
	if err != nil {
		return nil, nil, fmt.Errorf("gstats client: creating zmq context: %w", err)
	}
	sock, err := zctx.NewSocket(zmq.PUSH)
	if err != nil {
		_ = zctx.Term()
		return nil, nil, fmt.Errorf("gstats client: creating PUSH socket: %w", err)
	}
	fail := func(err error) (*zmq.Context, *zmq.Socket, error) {
		_ = sock.Close()
		_ = zctx.Term()
		return nil, nil, err
	}
	opt := []struct {
		name string
		set  func() error
	}{
		// Close discards what the collector has not taken yet.
		{"linger", func() error { return sock.SetLinger(0) }},
		// No queueing towards a collector that is not connected.
		{"immediate", func() error { return sock.SetImmediate(true) }},
		{"send high-water mark (SendHWM)", func() error { return sock.SetSndhwm(opts.SendHWM) }},
		{"reconnect interval", func() error { return sock.SetReconnectIvl(opts.ReconnectInterval) }},
		{"maximum reconnect interval", func() error { return sock.SetReconnectIvlMax(opts.ReconnectMax) }},
	}
	if opts.CurveServerKey != "" {
		opt = append(opt, []struct {
			name string
			set  func() error
		}{
			{"CURVE server key", func() error { return sock.SetCurveServerkey(opts.CurveServerKey) }},
			{"CURVE public key", func() error { return sock.SetCurvePublickey(opts.CurveClientKey.Public) }},
			{"CURVE secret key", func() error { return sock.SetCurveSecretkey(opts.CurveClientKey.Secret) }},
		}...)
	}
	for _, o := range opt {
		if err := o.set(); err != nil {
			return fail(fmt.Errorf("gstats client: setting %s: %w", o.name, err))
		}
	}
	if err := sock.Connect(opts.Address); err != nil {
		return fail(fmt.Errorf("gstats client: cannot connect to %q: %w; the address should look like %s or ipc:///run/gstats/stats.sock",
			opts.Address, err, wire.DefaultStatsAddress))
	}
	return zctx, sock, nil
}

// ValidatePrefix reports whether p can be sent as a prefix: at most
// MaxPrefixLength bytes of valid UTF-8. The empty prefix is valid; it
// stands for the client's default prefix.
func ValidatePrefix(p string) error {
	if len(p) > MaxPrefixLength {
		return fmt.Errorf("prefix %s is %d bytes long; the limit is %d", wire.Quote([]byte(p), 32), len(p), MaxPrefixLength)
	}
	if !utf8.ValidString(p) {
		return fmt.Errorf("prefix %s is not valid UTF-8", wire.Quote([]byte(p), 32))
	}
	return nil
}

// Prefix is the client's default prefix.
func (c *Client) Prefix() string { return c.prefix }

// Address is the collector address the client sends to.
func (c *Client) Address() string { return c.address }

// Start reports that a request started under prefix ("" for the client's
// default). It never blocks; it reports whether the event was queued.
func (c *Client) Start(prefix string) bool {
	if !validPrefix(prefix) {
		c.invalid.Add(1)
		return false
	}
	return c.enqueue(event{prefix: prefix, kind: kindStart})
}

// Finish reports that a request under prefix ("" for the client's default)
// finished after d with the HTTP status code status. A status outside
// 100-599 (0 when there is none) is sent as no status; a negative d as 0.
// It never blocks; it reports whether the event was queued.
func (c *Client) Finish(prefix string, d time.Duration, status int) bool {
	if !validPrefix(prefix) {
		c.invalid.Add(1)
		return false
	}
	return c.enqueue(finishEvent(prefix, d, status))
}

func finishEvent(prefix string, d time.Duration, status int) event {
	if status < 100 || status > 599 {
		status = 0
	}
	return event{prefix: prefix, dur: d, status: int32(status), kind: kindFinish}
}

// validPrefix is ValidatePrefix without building an error.
func validPrefix(p string) bool {
	return len(p) <= MaxPrefixLength && utf8.ValidString(p)
}

func (c *Client) enqueue(ev event) bool {
	if c.closed.Load() {
		c.queueFull.Add(1)
		return false
	}
	pos, ok := c.queue.put(ev)
	if !ok {
		c.queueFull.Add(1)
		return false
	}
	// Wake the sender if it sleeps, and whenever another half queue has
	// come in, so that a burst does not wait for its next poll.
	if pos&c.halfMask == 0 || (c.sleeping.Load() && c.sleeping.CompareAndSwap(true, false)) {
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
	return true
}

// Stats returns the counters so far.
func (c *Client) Stats() Stats {
	// Reported first: it never exceeds the drops counted before it.
	reported := c.reported.Load()
	s := Stats{
		Sent:          c.sent.Load(),
		QueueFull:     c.queueFull.Load(),
		WouldBlock:    c.wouldBlock.Load(),
		Reported:      reported,
		InvalidPrefix: c.invalid.Load(),
	}
	s.Dropped = s.QueueFull + s.WouldBlock
	s.Errors = s.InvalidPrefix + c.sendErrs.Load()
	return s
}

// Close stops the sender, closes the socket and its context, and returns
// within a bounded time whether or not a collector is listening. Events
// still queued are tried once without waiting; messages the collector has
// not taken yet are discarded. Start and Finish after Close count their
// event as dropped (QueueFull); a call racing with Close may be neither
// sent nor counted. Close is idempotent.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		close(c.stop)
		select {
		case <-c.done:
			c.closeErr = c.senderErr
		case <-time.After(closeTimeout):
			c.closeErr = fmt.Errorf("gstats client: the sender did not stop within %s", closeTimeout)
		}
	})
	return c.closeErr
}

// sender owns the socket: it is created by New and then used and closed by
// the sender goroutine alone.
type sender struct {
	c        *Client
	zctx     *zmq.Context
	sock     *zmq.Socket
	log      *slog.Logger
	logEvery time.Duration

	classic bool
	curve   bool // CURVE is on (for the warnings' hint)
	buf     frames
	pack    packer
	// pausedUntil: after a refusal, events are dropped without trying
	// until then.
	pausedUntil time.Time
	logged      Stats // counters at the last warning
}

// While events keep coming, the sender polls the queue every pollInterval,
// so the request path does not have to wake it (only every half queue, for
// bursts). After idlePolls empty polls it sleeps until the next event wakes
// it: an idle or quiet application does not pay for the polling.
const (
	pollInterval = time.Millisecond
	idlePolls    = 5
)

func (s *sender) run() {
	c := s.c
	defer close(c.done)
	tick := time.NewTicker(s.logEvery)
	defer tick.Stop()
	poll := time.NewTimer(pollInterval)
	defer poll.Stop()
	idle := 0
	for {
		if s.drain() > 0 {
			idle = 0
		} else if idle++; idle == idlePolls {
			// Going to sleep: report the drops the last messages
			// could not.
			s.reportDrops()
		}
		var polled <-chan time.Time
		deep := idle >= idlePolls
		if !deep {
			poll.Reset(pollInterval)
			polled = poll.C
		} else {
			c.sleeping.Store(true)
			// An event published before the flag was visible would
			// not wake us: look again.
			if c.queue.ready() {
				c.sleeping.Store(false)
				continue
			}
		}
		select {
		case <-polled:
		case <-c.wake:
		case <-tick.C:
			s.warn()
			s.reportDrops()
		case <-c.stop:
			// Try what is queued now, and the drops not reported,
			// once, without waiting.
			s.drain()
			s.reportDrops()
			err := s.sock.Close()
			if terr := s.zctx.Term(); err == nil {
				err = terr
			}
			if err != nil {
				c.senderErr = fmt.Errorf("gstats client: closing the socket: %w", err)
			}
			return
		}
		if deep {
			c.sleeping.Store(false)
		}
	}
}

// drain sends the queued events, at most one queue's worth so that a flood
// cannot keep the sender from noticing Close: packed, as many to a message
// as fit, unless the client is classic.
func (s *sender) drain() int {
	c := s.c
	paused := !s.pausedUntil.IsZero()
	if paused && !time.Now().Before(s.pausedUntil) {
		paused = false
		s.pausedUntil = time.Time{}
	}
	n, skipped := 0, uint64(0)
	for ; n < c.queue.capacity(); n++ {
		ev, ok := c.queue.get()
		if !ok {
			break
		}
		if paused {
			skipped++
			continue
		}
		if ev.prefix == "" {
			ev.prefix = c.prefix
		}
		if s.classic || !packable(ev.prefix) {
			s.send(ev)
			continue
		}
		if !s.pack.fits(ev) {
			s.sendPacked()
		}
		s.pack.add(ev)
	}
	s.sendPacked()
	if skipped > 0 {
		c.wouldBlock.Add(skipped)
	}
	return n
}

// packable reports whether a prefix can travel in a packed message.
func packable(p string) bool {
	return strings.IndexByte(p, '\t') < 0 && strings.IndexByte(p, '\n') < 0
}

var errAgain = zmq.Errno(syscall.EAGAIN)

// refused notes a refusal of n events by the socket, and pauses sending.
func (s *sender) refused(n uint64) {
	s.c.wouldBlock.Add(n)
	s.pausedUntil = time.Now().Add(refusalPause)
}

// sendPacked sends the packed message being built, if it holds events.
func (s *sender) sendPacked() {
	if s.pack.events > 0 {
		s.sendPack()
	}
}

// reportDrops sends a packed message holding no event when dropped events
// wait to be reported (unless the client is classic). It is called when
// the sender goes idle, at every LogInterval and at Close: one try each,
// so a collector that stays away costs one refused send per LogInterval.
func (s *sender) reportDrops() {
	if s.classic || s.c.unreported() == 0 {
		return
	}
	s.sendPack()
}

// unreported is how many dropped events no accepted packed message has
// reported yet. Only the sender calls it.
func (c *Client) unreported() uint64 {
	return c.queueFull.Load() + c.wouldBlock.Load() - c.reported.Load()
}

// sendPack sends the packed message being built, its header reporting the
// drops not reported yet; if the socket does not take it, they wait for
// the next one.
func (s *sender) sendPack() {
	c := s.c
	p := &s.pack
	n := uint64(p.events)
	dropped := min(c.unreported(), wire.MaxBatchDropped)
	_, err := s.sock.SendBytes(p.message(dropped), zmq.DONTWAIT)
	p.reset()
	switch {
	case err == nil:
		c.sent.Add(n)
		c.reported.Add(dropped)
	case zmq.AsErrno(err) == errAgain:
		s.refused(n)
	default:
		c.sendErrs.Add(n)
	}
}

// send writes one classic message without waiting. ZeroMQ admits a
// multipart message as a whole: once its first frame is accepted, the
// others are.
func (s *sender) send(ev event) {
	c := s.c
	s.buf.build(ev.prefix, ev)
	last := 1
	if s.buf.hasStatus {
		last = 2
	}
	for i := 0; i <= last; i++ {
		flags := zmq.DONTWAIT
		if i < last {
			flags |= zmq.SNDMORE
		}
		if _, err := s.sock.SendBytes(s.buf.frame(i), flags); err != nil {
			if i == 0 && zmq.AsErrno(err) == errAgain {
				s.refused(1)
			} else {
				c.sendErrs.Add(1)
			}
			return
		}
	}
	c.sent.Add(1)
}

// packer builds one packed message in a buffer reused from message to
// message. The buffer starts with room for the longest header, which is
// written when the message is sent (the drop count is known then).
type packer struct {
	buf    []byte
	events int
	header [wire.MaxBatchHeaderLen]byte
}

// headerRoom is where a packed message's events start in packer.buf.
const headerRoom = wire.MaxBatchHeaderLen

// maxRecord bounds one packed event: prefix, two tabs, the duration (at
// most 20 digits, a point and 3 decimals), a status and a newline.
const maxRecord = MaxPrefixLength + 2 + 24 + 3 + 1

func (p *packer) reset() {
	if p.buf == nil {
		p.buf = make([]byte, headerRoom, MaxPackedBytes)
	}
	p.buf = p.buf[:headerRoom]
	p.events = 0
}

// message writes the header reporting dropped events in front of the
// events and returns the whole message.
func (p *packer) message(dropped uint64) []byte {
	h := wire.AppendBatchHeader(p.header[:0], dropped)
	start := headerRoom - len(h)
	copy(p.buf[start:], h)
	return p.buf[start:]
}

// fits reports whether ev certainly fits in the message being built, with
// the longest header.
func (p *packer) fits(ev event) bool {
	return len(p.buf)+len(ev.prefix)+maxRecord-MaxPrefixLength <= MaxPackedBytes
}

// add appends ev: "prefix\t\n" for a start, "prefix\tms[\tstatus]\n" for a
// finish.
func (p *packer) add(ev event) {
	b := append(p.buf, ev.prefix...)
	b = append(b, '\t')
	if ev.kind == kindFinish {
		b = appendMillis(b, ev.dur)
		if ev.status > 0 {
			b = append(b, '\t')
			b = strconv.AppendInt(b, int64(ev.status), 10)
		}
	}
	p.buf = append(b, '\n')
	p.events++
}

// warn logs what was dropped or failed since the last warning, if anything.
func (s *sender) warn() {
	now := s.c.Stats()
	prev := s.logged
	s.logged = now
	if now.Dropped == prev.Dropped && now.Errors == prev.Errors {
		return
	}
	s.log.Warn("gstats client: messages not sent",
		"collector", s.c.address,
		"sent", now.Sent-prev.Sent,
		"queue_full", now.QueueFull-prev.QueueFull,
		"would_block", now.WouldBlock-prev.WouldBlock,
		"invalid_prefix", now.InvalidPrefix-prev.InvalidPrefix,
		"errors", now.Errors-prev.Errors-(now.InvalidPrefix-prev.InvalidPrefix),
		"interval", s.logEvery,
		"hint", hint(now, prev, s.curve))
}

func hint(now, prev Stats, curve bool) string {
	switch {
	case now.WouldBlock > prev.WouldBlock && now.Sent == prev.Sent && curve:
		return "no collector is connected; is gstats-collectd listening at this address, with CURVE on, the public key of its curve_secret_key_file in Options.CurveServerKey and this client's public key in its curve_client_keys?"
	case now.WouldBlock > prev.WouldBlock && now.Sent == prev.Sent:
		return "no collector is connected; is gstats-collectd listening at this address?"
	case now.WouldBlock > prev.WouldBlock:
		return "the collector is not keeping up; raise Options.SendHWM or the collector's receive_queue"
	case now.QueueFull > prev.QueueFull:
		return "the sender is not keeping up; raise Options.QueueSize"
	case now.InvalidPrefix > prev.InvalidPrefix:
		return "prefixes must be at most " + strconv.Itoa(MaxPrefixLength) + " bytes of UTF-8; check them with ValidatePrefix"
	}
	return "socket errors; see the collector's log"
}

// frames holds the frames of one message in buffers reused from message to
// message.
type frames struct {
	prefix    []byte
	dur       []byte
	status    []byte
	hasStatus bool
}

func (f *frames) frame(i int) []byte {
	switch i {
	case 0:
		return f.prefix
	case 1:
		return f.dur
	}
	return f.status
}

// build formats ev under prefix: the duration frame is empty for a start,
// milliseconds with three decimals for a finish.
func (f *frames) build(prefix string, ev event) {
	f.prefix = append(f.prefix[:0], prefix...)
	f.dur = f.dur[:0]
	f.hasStatus = false
	if ev.kind != kindFinish {
		return
	}
	f.dur = appendMillis(f.dur, ev.dur)
	if ev.status > 0 {
		f.status = strconv.AppendInt(f.status[:0], int64(ev.status), 10)
		f.hasStatus = true
	}
}

// appendMillis appends d in milliseconds, rounded to the microsecond, with
// exactly three decimals: "0.000", "12.500", "1500.000". A negative d is
// written as 0.
func appendMillis(b []byte, d time.Duration) []byte {
	if d < 0 {
		d = 0
	}
	us := d / time.Microsecond
	if d%time.Microsecond >= 500 {
		us++ // round half up
	}
	b = strconv.AppendInt(b, int64(us/1000), 10)
	frac := int64(us % 1000)
	return append(b, '.', byte('0'+frac/100), byte('0'+frac/10%10), byte('0'+frac%10))
}
