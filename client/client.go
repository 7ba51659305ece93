package client

import (
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
	// LogInterval throttles those warnings. Default DefaultLogInterval.
	LogInterval time.Duration
	// Classic sends every event as its own classic message (two or three
	// frames), which the original Python collector also reads. By default
	// the sender packs the events it finds queued into packed messages
	// (wire.BatchHeader, at most MaxPackedBytes each): one message per
	// batch instead of one per event, which costs the sender and the
	// collector far less. Events whose prefix holds a tab or a newline
	// always go as classic messages.
	Classic bool
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
	_          [40]byte

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
	s := &sender{c: c, zctx: zctx, sock: sock, log: opts.Logger, logEvery: opts.LogInterval, classic: opts.Classic}
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
	for _, o := range []struct {
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
	} {
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
	s := Stats{
		Sent:          c.sent.Load(),
		QueueFull:     c.queueFull.Load(),
		WouldBlock:    c.wouldBlock.Load(),
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
		} else {
			idle++
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
		case <-c.stop:
			// Try what is queued now, once, without waiting.
			s.drain()
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
	p := &s.pack
	if p.events == 0 {
		return
	}
	n := uint64(p.events)
	_, err := s.sock.SendBytes(p.buf, zmq.DONTWAIT)
	p.reset()
	switch {
	case err == nil:
		s.c.sent.Add(n)
	case zmq.AsErrno(err) == errAgain:
		s.refused(n)
	default:
		s.c.sendErrs.Add(n)
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
// message.
type packer struct {
	buf    []byte
	events int
}

// maxRecord bounds one packed event: prefix, two tabs, the duration (at
// most 20 digits, a point and 3 decimals), a status and a newline.
const maxRecord = MaxPrefixLength + 2 + 24 + 3 + 1

func (p *packer) reset() {
	if p.buf == nil {
		p.buf = make([]byte, 0, MaxPackedBytes)
	}
	p.buf = append(p.buf[:0], wire.BatchHeader...)
	p.events = 0
}

// fits reports whether ev certainly fits in the message being built.
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
		"hint", hint(now, prev))
}

func hint(now, prev Stats) string {
	switch {
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
