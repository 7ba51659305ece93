package gstats

import (
	"errors"
	"fmt"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/gstats/gstats/wire"
)

// batchSize is how many messages are parsed before the window lock is taken
// once for all of them.
const batchSize = 512

// pollRound bounds the messages read between two polls, so a flood cannot
// keep Stop's wake-up or the monitor waiting.
const pollRound = 16 * batchSize

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
	monitor *zmq.Socket
	wake    *zmq.Socket
	limits  wire.Limits
	batch   []wire.Message
	logs    *throttle
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
	l := &ingestLoop{
		g:       g,
		pull:    pull,
		monitor: mon,
		limits: wire.Limits{
			MaxPrefixLength: g.MaxPrefixLength,
			MaxDuration:     float64(time.Duration(g.MaxDuration)) / float64(time.Millisecond),
		},
		batch: make([]wire.Message, 0, batchSize),
		logs:  newThrottle(time.Duration(g.RejectLogInterval)),
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
	for {
		polled, err := poller.Poll(-1)
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
		l.drain(time.Time{}, pollRound)
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

// drain reads what is queued without blocking: at most limit messages
// (unlimited if negative), and until deadline if it is set.
func (l *ingestLoop) drain(deadline time.Time, limit int) int {
	n := 0
	for limit < 0 || n < limit {
		frames, err := l.pull.RecvMessageBytes(zmq.DONTWAIT)
		if err != nil {
			if retryable(err) {
				continue
			}
			break // EAGAIN: nothing queued; anything else: the loop's poll reports it
		}
		n++
		l.parse(frames)
		if len(l.batch) == cap(l.batch) {
			l.apply()
			if !deadline.IsZero() && time.Now().After(deadline) {
				break
			}
		}
	}
	l.apply()
	return n
}

func (l *ingestLoop) parse(frames [][]byte) {
	if wire.IsBatch(frames) {
		wire.ParseBatch(frames[0], l.limits, l.onEvent)
		return
	}
	l.event(wire.ParseMessage(frames, l.limits))
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
		var err error
		if m.Kind == wire.Start {
			err = g.win.Start(string(m.Prefix), now)
		} else {
			err = g.win.Finish(string(m.Prefix), m.Duration, m.Status, now)
		}
		if err != nil {
			refused = append(refused, string(m.Prefix))
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
