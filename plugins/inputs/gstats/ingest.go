package gstats

import (
	"errors"
	"fmt"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/gstats/gstats/internal/zbatch"
	"github.com/gstats/gstats/wire"
)

// batchSize is how many messages are received in one call and parsed
// before the window lock is taken once for all of them.
const batchSize = 512

// batchBytes bounds the frame bytes received in one call (more only when a
// single message is larger).
const batchBytes = 256 << 10

// pollRound bounds the messages read between two polls, so a flood cannot
// keep Stop's wake-up or the monitor waiting.
const pollRound = 16 * batchSize

// ingestPause is how long the loop lets messages gather after it emptied
// the queue, before it waits for the next one: under steady traffic the
// loop then wakes at most about 1/ingestPause times a second, whatever the
// message rate, instead of once for every few messages. Events reach the
// window up to this much later.
const ingestPause = 5 * time.Millisecond

// finalDrainTime bounds the drain at Stop when senders keep sending.
const finalDrainTime = 2 * time.Second

// stopQuiet is how long the stats socket must stay quiet at Stop before it
// is closed: messages already in the kernel's buffers reach the queue
// within it.
const stopQuiet = 100 * time.Millisecond

// ingestLoop owns the PULL socket, its monitor and its wake socket.
type ingestLoop struct {
	g       *Gstats
	pull    *zmq.Socket
	rx      *zbatch.Receiver // reads pull in batches
	frames  [][]byte         // reused for the frames of each message
	monitor *zmq.Socket
	wake    *zmq.Socket
	limits  wire.Limits
	batch   []wire.Message
	logs    *throttle
	// names interns prefixes, so that applying an event of a known
	// prefix allocates nothing; at most maxNames entries.
	names    map[string]string
	maxNames int
	// onEvent takes each event of a packed message (a method value made
	// once, so parsing a packed message allocates no closure).
	onEvent func(wire.Message, error)
}

func (g *Gstats) bindIngest() (*ingestLoop, error) {
	pull, err := g.newSocket(zmq.PULL, "stats",
		sockOpt{"linger", func(s *zmq.Socket) error { return s.SetLinger(0) }},
		sockOpt{"receive queue (receive_queue)", func(s *zmq.Socket) error { return s.SetRcvhwm(g.ReceiveQueue) }},
		sockOpt{"max message size (max_message_size)", func(s *zmq.Socket) error { return s.SetMaxmsgsize(int64(g.MaxMessageSize)) }},
		sockOpt{"receive buffer", func(s *zmq.Socket) error { return s.SetRcvbuf(4 << 20) }},
	)
	if err != nil {
		return nil, err
	}
	if err := g.secureSocket(pull, "stats"); err != nil {
		_ = pull.Close()
		return nil, err
	}
	monAddr := "inproc://gstats-ingest-monitor"
	if err := pull.Monitor(monAddr, zmq.EVENT_DISCONNECTED); err != nil {
		_ = pull.Close()
		return nil, fmt.Errorf("monitoring the stats socket: %w", err)
	}
	mon, err := g.zctx.NewSocket(zmq.PAIR)
	if err != nil {
		_ = pull.Close()
		return nil, fmt.Errorf("creating monitor socket: %w", err)
	}
	if err := mon.Connect(monAddr); err != nil {
		_ = pull.Close()
		_ = mon.Close()
		return nil, fmt.Errorf("connecting monitor socket: %w", err)
	}
	_ = mon.SetLinger(0)
	if err := pull.Bind(g.StatsAddress); err != nil {
		_ = pull.Close()
		_ = mon.Close()
		return nil, bindError("stats", "stats_address", "-s/--stats-address", g.StatsAddress, err)
	}
	rx, err := zbatch.NewReceiver(pull, batchSize, batchBytes)
	if err != nil {
		_ = pull.Close()
		_ = mon.Close()
		return nil, fmt.Errorf("stats socket: %w", err)
	}
	l := &ingestLoop{
		g:       g,
		pull:    pull,
		rx:      rx,
		frames:  make([][]byte, 0, zbatch.KeptFrames),
		monitor: mon,
		limits: wire.Limits{
			MaxPrefixLength: g.MaxPrefixLength,
			MaxDuration:     float64(time.Duration(g.MaxDuration)) / float64(time.Millisecond),
		},
		batch: make([]wire.Message, 0, batchSize),
		names: make(map[string]string),
		// Room for every tracked prefix and as many refused ones.
		maxNames: 2 * g.MaxPrefixes,
		logs:     newThrottle(time.Duration(g.RejectLogInterval)),
	}
	l.onEvent = l.event
	return l, nil
}

func (l *ingestLoop) run() {
	defer l.g.wg.Done()
	defer l.close()
	poller := zmq.NewPoller()
	poller.Add(l.pull, zmq.POLLIN)
	poller.Add(l.monitor, zmq.POLLIN)
	poller.Add(l.wake, zmq.POLLIN)
	wait := time.Duration(-1) // block until something happens
	for {
		polled, err := poller.Poll(wait)
		if err != nil {
			if retryable(err) {
				continue
			}
			l.g.Log.Errorf("stats socket: poll failed, no longer receiving: %v", err)
			return
		}
		stop := false
		for _, p := range polled {
			switch p.Socket {
			case l.wake:
				stop = true
			case l.monitor:
				l.readEvents()
			}
		}
		if stop {
			t0 := time.Now()
			n := l.finalDrain(time.Now().Add(finalDrainTime))
			l.readEvents()
			l.g.Log.Infof("stats socket drained in %s: %d messages processed after the stop request", time.Since(t0).Round(time.Microsecond), n)
			return
		}
		switch n := l.drain(time.Time{}, pollRound); {
		case n >= pollRound:
			wait = 0 // more is queued: only look at the other sockets
		case n > 0:
			// Traffic, and the queue is empty: let messages gather.
			// A Go sleep, not a blocking poll, which would cost a
			// thread hand-off in the runtime every time.
			time.Sleep(ingestPause)
			wait = 0
		default:
			wait = -1
		}
	}
}

// finalDrain processes everything already received at Stop: what is queued,
// and what arrives until the socket has been quiet for stopQuiet, at most
// until deadline.
func (l *ingestLoop) finalDrain(deadline time.Time) int {
	n := l.drain(deadline, -1)
	p := zmq.NewPoller()
	p.Add(l.pull, zmq.POLLIN)
	for time.Until(deadline) > 0 {
		polled, err := p.Poll(min(stopQuiet, time.Until(deadline)))
		if err != nil && retryable(err) {
			continue
		}
		if err != nil || len(polled) == 0 {
			break
		}
		n += l.drain(deadline, -1)
	}
	return n
}

// drain reads what is queued without blocking: at least limit messages
// (all of them if negative) unless the queue empties first, and until
// deadline if it is set.
func (l *ingestLoop) drain(deadline time.Time, limit int) int {
	n := 0
	for limit < 0 || n < limit {
		b, err := l.rx.Recv()
		if err != nil || b.Len() == 0 {
			break // nothing queued; a failure: the loop's poll reports it
		}
		for {
			frames, count, ok := b.Next(l.frames)
			if !ok {
				break
			}
			l.frames = frames
			l.parse(frames, count)
		}
		// The batch's frames are reused by the next Recv: the events
		// that alias them are applied first.
		l.apply()
		n += b.Len()
		if !deadline.IsZero() && time.Now().After(deadline) {
			break
		}
	}
	return n
}

// parse handles one message: frames are its first frames, count how many
// it had.
func (l *ingestLoop) parse(frames [][]byte, count int) {
	switch {
	case count > len(frames):
		l.event(wire.Message{}, wire.FrameCountError(count))
	case wire.IsBatch(frames):
		// A client reports in the header what it dropped since its
		// last packed message (a bad header rejects the message).
		if _, dropped := wire.ParseBatch(frames[0], l.limits, l.onEvent); dropped > 0 {
			l.g.stats.clientDropped.Add(dropped)
		}
	default:
		l.event(wire.ParseMessage(frames, l.limits))
	}
}

// event queues one parsed event for the window, or counts its rejection.
func (l *ingestLoop) event(m wire.Message, err error) {
	if err != nil {
		var rej *wire.RejectError
		if errors.As(err, &rej) {
			l.reject(rej.Reason, rej.Detail)
		}
		return
	}
	if len(l.batch) == cap(l.batch) {
		l.apply() // a packed message can hold more events than a batch
	}
	l.batch = append(l.batch, m)
}

// apply adds the parsed batch to the window under one lock.
func (l *ingestLoop) apply() {
	if len(l.batch) == 0 {
		return
	}
	g := l.g
	now := g.now()
	var accepted int64
	var refused []string
	g.mu.Lock()
	for i := range l.batch {
		m := &l.batch[i]
		name := l.name(m.Prefix)
		var err error
		if m.Kind == wire.Start {
			err = g.win.Start(name, now)
		} else {
			err = g.win.Finish(name, m.Duration, m.Status, now)
		}
		if err != nil {
			refused = append(refused, name)
			continue
		}
		accepted++
	}
	g.mu.Unlock()
	g.stats.accepted.Add(accepted)
	for _, p := range refused {
		l.reject(wire.ReasonTooManyPrefixes, fmt.Sprintf("new prefix %s refused: %d prefixes are tracked, the limit is max_prefixes = %d",
			wire.Quote([]byte(p), 32), g.MaxPrefixes, g.MaxPrefixes))
	}
	clear(l.batch)
	l.batch = l.batch[:0]
}

// name returns prefix as a string, the same string every time while it is
// interned.
func (l *ingestLoop) name(prefix []byte) string {
	if s, ok := l.names[string(prefix)]; ok {
		return s
	}
	if len(l.names) >= l.maxNames {
		clear(l.names) // a flood of new prefixes: start over
	}
	s := string(prefix)
	l.names[s] = s
	return s
}

func (l *ingestLoop) reject(r wire.Reason, detail string) {
	l.g.stats.rejected[r].Add(1)
	l.logs.warn(l.g.Log, string(r), time.Now(),
		fmt.Sprintf("rejected a message on %s: %s: %s; %s", l.g.statsEP, r, detail, rejectHint(r)))
}

func (l *ingestLoop) readEvents() {
	for {
		ev, addr, _, err := l.monitor.RecvEvent(zmq.DONTWAIT)
		if err != nil {
			return
		}
		if ev == zmq.EVENT_DISCONNECTED {
			l.g.stats.disconnects.Add(1)
			l.logs.info(l.g.Log, "disconnect", time.Now(), fmt.Sprintf(
				"stats socket %s: a sender disconnected (normal when an application restarts; libzmq also disconnects a sender whose frame is over max_message_size = %d bytes: raise it if your prefixes are longer)",
				addr, int64(l.g.MaxMessageSize)))
		}
	}
}

func (l *ingestLoop) close() {
	// Disable the monitor before closing its socket, or libzmq may block
	// writing an event nobody reads.
	_ = l.pull.Monitor("", 0)
	l.rx.Close()
	for _, s := range []*zmq.Socket{l.pull, l.monitor, l.wake} {
		if err := s.Close(); err != nil {
			l.g.Log.Errorf("closing a stats socket: %v", err)
		}
	}
}

// retryable reports whether a zmq call interrupted by a signal may simply be
// tried again.
func retryable(err error) bool {
	return zmq.AsErrno(err) == zmq.Errno(4) // EINTR
}
