package gstats

import (
	"encoding/json"
	"fmt"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/gstats/gstats/internal/version"
	"github.com/gstats/gstats/plugins/inputs/gstats/window"
	"github.com/gstats/gstats/wire"
)

// controlLinger lets the last reply (QUIT's) leave before the socket closes.
const controlLinger = 500 * time.Millisecond

// controlLoop owns the control socket (a ROUTER speaking to REQ clients)
// and its wake socket.
type controlLoop struct {
	g    *Gstats
	rep  *zmq.Socket
	wake *zmq.Socket
	logs *throttle
}

func (g *Gstats) bindControl() (*controlLoop, error) {
	// A ROUTER socket, with the REQ envelope handled here: a REP socket
	// (libzmq 4.3) can silently drop the reply to a good request after a
	// peer sent a message without the envelope and disconnected before it
	// was read.
	rep, err := g.newSocket(zmq.ROUTER, "control",
		sockOpt{"linger", func(s *zmq.Socket) error { return s.SetLinger(controlLinger) }},
		sockOpt{"max message size", func(s *zmq.Socket) error { return s.SetMaxmsgsize(int64(g.MaxMessageSize)) }},
		// A reply to a client that stopped reading is dropped after this.
		sockOpt{"send timeout", func(s *zmq.Socket) error { return s.SetSndtimeo(time.Second) }},
	)
	if err != nil {
		return nil, err
	}
	if err := g.secureSocket(rep, "control"); err != nil {
		_ = rep.Close()
		return nil, err
	}
	if err := rep.Bind(g.CommAddress); err != nil {
		_ = rep.Close()
		return nil, bindError("control", "comm_address", "-c/--comm-address", g.CommAddress, err)
	}
	return &controlLoop{g: g, rep: rep, logs: newThrottle(time.Duration(g.RejectLogInterval))}, nil
}

func (l *controlLoop) run() {
	defer l.g.wg.Done()
	defer func() {
		for _, s := range []*zmq.Socket{l.rep, l.wake} {
			if err := s.Close(); err != nil {
				l.g.Log.Errorf("closing a control socket: %v", err)
			}
		}
	}()
	poller := zmq.NewPoller()
	poller.Add(l.rep, zmq.POLLIN)
	poller.Add(l.wake, zmq.POLLIN)
	for {
		polled, err := poller.Poll(-1)
		if err != nil {
			if retryable(err) {
				continue
			}
			l.g.Log.Errorf("control socket: poll failed, no longer answering: %v", err)
			return
		}
		for _, p := range polled {
			if p.Socket == l.wake {
				return
			}
		}
		l.serveOne()
	}
}

// serveOne answers one queued request, if any.
func (l *controlLoop) serveOne() {
	msg, err := l.rep.RecvMessageBytes(zmq.DONTWAIT)
	if err != nil {
		return // EAGAIN (spurious wake-up) or EINTR: the next poll retries
	}
	g := l.g
	g.stats.controlRequests.Add(1)
	envelope, frames, ok := splitEnvelope(msg)
	if !ok {
		// Nothing can be answered: a REQ client would not read it.
		g.stats.controlErrors.Add(1)
		l.logs.warn(g.Log, "no-envelope", time.Now(), fmt.Sprintf("control socket %s: a request of %d frames without the REQ envelope was ignored; control clients must use a REQ socket", g.commEP, len(msg)-1))
		return
	}
	cmd, perr := wire.ParseCommand(frames)
	var reply []byte
	quit := false
	if perr != nil {
		g.stats.controlErrors.Add(1)
		l.logs.warn(g.Log, "bad-command", time.Now(), fmt.Sprintf("control socket %s: %v; answered ERROR (commands: STATS, RTIMES, RESET, QUIT, INFO)", g.commEP, perr))
		reply = []byte(wire.ReplyError)
	} else if !g.commandAllowed(cmd) {
		g.stats.controlErrors.Add(1)
		g.stats.commandsRefused.Add(1)
		l.logs.warn(g.Log, "refused-command", time.Now(), fmt.Sprintf("control socket %s: %s refused: it is not in allowed_commands %v; answered ERROR", g.commEP, cmd, g.allowedCommandList()))
		reply = []byte(wire.ReplyError)
	} else {
		g.stats.commands[cmd].Add(1)
		reply, quit = l.answer(cmd)
	}
	// A ROUTER socket never blocks a send: a reply to a client that left,
	// or that stopped reading, is dropped.
	if err := sendFrames(l.rep, append(envelope, reply)); err != nil {
		g.Log.Warnf("control socket %s: reply to %s not sent: %v", g.commEP, cmd, err)
	}
	if quit {
		g.Log.Info("QUIT received on the control socket; stopping")
		g.onQuit()
	}
}

// sendFrames sends one message, frame by frame, retrying a frame that a
// signal interrupted.
func sendFrames(s *zmq.Socket, frames [][]byte) error {
	for i, f := range frames {
		flag := zmq.SNDMORE
		if i == len(frames)-1 {
			flag = 0
		}
		for {
			_, err := s.SendBytes(f, flag)
			if err == nil {
				break
			}
			if !retryable(err) {
				return err
			}
		}
	}
	return nil
}

// splitEnvelope splits a message read on the ROUTER control socket into
// its envelope (the peer's routing id, any further routing frames, and the
// empty delimiter frame a REQ socket puts before the request) and the
// request's frames. ok is false when there is no delimiter after the id.
func splitEnvelope(msg [][]byte) (envelope, frames [][]byte, ok bool) {
	for i := 1; i < len(msg); i++ {
		if len(msg[i]) == 0 {
			return msg[:i+1], msg[i+1:], true
		}
	}
	return nil, nil, false
}

// answer computes the reply to a valid command.
func (l *controlLoop) answer(cmd wire.Command) (reply []byte, quit bool) {
	g := l.g
	switch cmd {
	case wire.CmdStats:
		return mustJSON(g.statsReply()), false
	case wire.CmdRTimes:
		now := g.now()
		g.mu.Lock()
		raw := g.win.Raw(now)
		g.mu.Unlock()
		r := make(wire.RTimesReply, len(raw))
		for name, list := range raw {
			out := make([]wire.Float, len(list))
			for i, v := range list {
				out[i] = wire.Float(v)
			}
			r[name] = out
		}
		return mustJSON(r), false
	case wire.CmdReset:
		g.Reset()
		g.Log.Info("statistics reset by RESET on the control socket")
		return []byte(wire.ReplyNull), false
	case wire.CmdQuit:
		if g.onQuit == nil {
			g.Log.Warn("QUIT refused: the collector runs inside Telegraf and cannot end it; stop Telegraf instead")
			return []byte(wire.ReplyError), false
		}
		return []byte(wire.ReplyNull), true
	case wire.CmdInfo:
		return mustJSON(g.infoReply()), false
	}
	return []byte(wire.ReplyError), false
}

// statsReply builds the STATS reply.
func (g *Gstats) statsReply() wire.StatsReply {
	all := g.snapshot()
	r := make(wire.StatsReply, len(all))
	for name, st := range all {
		r[name] = g.prefixReply(st)
	}
	return r
}

func (g *Gstats) prefixReply(st window.Stats) wire.PrefixStats {
	pt := wire.ProcessingTime{
		Avg:   wire.Float(st.Mean),
		Std:   wire.Float(st.Std),
		Count: st.Count,
		Min:   wire.Float(st.Min),
		Max:   wire.Float(st.Max),
	}
	for i, p := range g.Percentiles {
		pt.Percentiles = append(pt.Percentiles, wire.Percentile{P: p, Value: wire.Float(st.Percentiles[i])})
	}
	return wire.PrefixStats{
		Started:        st.Started,
		Finished:       st.Finished,
		ProcessingTime: pt,
		InFlight:       st.InFlight(),
		Rate:           wire.Float(st.Rate),
		Status: wire.StatusCounts{
			S1xx: st.Status[1], S2xx: st.Status[2], S3xx: st.Status[3],
			S4xx: st.Status[4], S5xx: st.Status[5], None: st.Status[window.ClassNone],
		},
	}
}

// infoReply builds the INFO reply.
func (g *Gstats) infoReply() wire.InfoReply {
	g.mu.Lock()
	n := g.win.Len()
	g.mu.Unlock()
	r := wire.InfoReply{
		Version:         version.Version,
		StartedAt:       g.started.UTC().Format(time.RFC3339),
		UptimeSeconds:   wire.Float(time.Since(g.started).Seconds()),
		WindowSeconds:   wire.Float(time.Duration(g.Window).Seconds()),
		WindowSlots:     g.WindowSlots,
		Percentiles:     append([]float64{}, g.Percentiles...),
		StatsAddress:    g.statsEP,
		CommAddress:     g.commEP,
		Prefixes:        n,
		MaxPrefixes:     g.MaxPrefixes,
		Accepted:        g.stats.accepted.Load(),
		Rejected:        make(map[wire.Reason]int64, len(g.stats.rejected)),
		RejectedTotal:   g.stats.rejectedTotal(),
		Disconnects:     g.stats.disconnects.Load(),
		ControlRequests: g.stats.controlRequests.Load(),
		ControlErrors:   g.stats.controlErrors.Load(),
		CommandsRefused: g.stats.commandsRefused.Load(),
		AuthFailures:    g.stats.authFailures.Load(),
		ClientDropped:   g.stats.clientDropped.Load(),
		Commands:        make(map[string]int64, len(g.stats.commands)),
	}
	r.StateFile = g.StateFile
	r.StateSavedAt = g.persist.savedAtText()
	r.StateWriteErrors = g.stats.stateErrors.Load()
	for reason, v := range g.stats.rejected {
		r.Rejected[reason] = v.Load()
	}
	for cmd, v := range g.stats.commands {
		r.Commands[string(cmd)] = v.Load()
	}
	return r
}

// mustJSON encodes a reply type; they cannot fail to encode (no channels,
// no funcs, floats kept finite by wire.Float).
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		return []byte(wire.ReplyError)
	}
	return b
}
