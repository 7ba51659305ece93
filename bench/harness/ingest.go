package main

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/gstats/gstats/internal/zbatch"
	"github.com/gstats/gstats/wire"
)

// stream is a message stream a sender cycles through.
type stream struct {
	msgs   zbatch.Messages
	events []int // events in each message
}

// logNormalMS draws a request duration: log-normal, median 40 ms.
func logNormalMS(r *rand.Rand) float64 { return 40 * math.Exp(0.8*r.NormFloat64()) }

var streamPrefixes = []string{"shop", "api", "admin", "static"}

// classicStream is n classic messages, as the original hooks send them: a
// start then a finish for each request, over four prefixes, status mostly
// 200.
func classicStream(n int) (*stream, error) {
	r := rand.New(rand.NewPCG(1, 2))
	s := &stream{}
	for i := range n {
		p := []byte(streamPrefixes[(i/2)%len(streamPrefixes)])
		var err error
		if i%2 == 0 {
			err = s.msgs.Append(p, nil)
		} else {
			err = s.msgs.Append(p, strconv.AppendFloat(nil, logNormalMS(r), 'f', 3, 64), []byte(status(r)))
		}
		if err != nil {
			return nil, err
		}
		s.events = append(s.events, 1)
	}
	return s, nil
}

func status(r *rand.Rand) string {
	if r.IntN(50) == 0 {
		return "503"
	}
	return "200"
}

// packedStream is n packed messages of perMsg events each, as the gstats
// clients send them. With finishesOnly, every event is a finish and the
// prefixes cycle over nPrefixes names; otherwise starts and finishes
// alternate over the four stream prefixes.
func packedStream(n, perMsg int, finishesOnly bool, nPrefixes int) (*stream, error) {
	r := rand.New(rand.NewPCG(3, 4))
	s := &stream{}
	ev := 0
	for range n {
		b := []byte(wire.BatchHeader)
		for range perMsg {
			var p string
			if finishesOnly {
				p = prefixName(ev % nPrefixes)
			} else {
				p = streamPrefixes[(ev/2)%len(streamPrefixes)]
			}
			var ok bool
			if !finishesOnly && ev%2 == 0 {
				b, ok = wire.AppendBatchRecord(b, []byte(p), nil)
			} else {
				b, ok = wire.AppendBatchRecord(b, []byte(p), strconv.AppendFloat(nil, logNormalMS(r), 'f', 3, 64), []byte(status(r)))
			}
			if !ok {
				return nil, fmt.Errorf("prefix %q cannot be packed", p)
			}
			ev++
		}
		if err := s.msgs.Append(b); err != nil {
			return nil, err
		}
		s.events = append(s.events, perMsg)
	}
	return s, nil
}

func prefixName(i int) string { return fmt.Sprintf("app%05d", i) }

// step is one paced run of a sender against a receiver.
type step struct {
	Target    float64       `json:"target_per_s"`   // messages (or events) per second asked for
	Achieved  float64       `json:"achieved_per_s"` // what the sender managed
	Sent      int64         `json:"sent"`           // taken by the sender's socket
	Dropped   int64         `json:"dropped"`        // refused by the sender's socket (a client drops them)
	Received  int64         `json:"received"`       // counted by the receiver once settled
	Behind    int64         `json:"behind"`         // not yet received when sending ended
	CPU       time.Duration `json:"cpu_ns"`         // receiver process CPU for the step
	CPUPerMsg float64       `json:"cpu_ns_per_msg"`
	// ZMQPerMsg is the part of CPUPerMsg spent in libzmq's own threads.
	ZMQPerMsg float64       `json:"zmq_thread_cpu_ns_per_msg"`
	Elapsed   time.Duration `json:"elapsed_ns"`
	LossFree  bool          `json:"loss_free"`
}

// pacedSend sends st through a fresh PUSH socket connected to addr at rate
// units per second for d, paced every 100 µs, dropping what the socket
// refuses as a client does. Units are events when events is set, messages
// otherwise; with limit above 0, sending also ends once limit units are
// sent or dropped. onEnd runs as sending ends, before the socket closes.
func pacedSend(addr string, st *stream, rate float64, d time.Duration, limit int64, events bool, onEnd func()) (sent, dropped int64, elapsed time.Duration, err error) {
	return pacedSendLive(addr, st, rate, d, limit, events, onEnd, nil)
}

// sendProgress is what a paced sender has done so far, for a reader in
// another goroutine, and a way to end it early.
type sendProgress struct {
	sent, dropped atomic.Int64
	stop          atomic.Bool
}

// pacedSendLive is pacedSend that also keeps live (when not nil) up to
// date as it sends, and ends early once live.stop is set.
func pacedSendLive(addr string, st *stream, rate float64, d time.Duration, limit int64, events bool, onEnd func(), live *sendProgress) (sent, dropped int64, elapsed time.Duration, err error) {
	push, err := zmq.NewSocket(zmq.PUSH)
	if err != nil {
		return 0, 0, 0, err
	}
	defer push.Close()
	_ = push.SetLinger(time.Second)
	_ = push.SetSndhwm(100000) // loss comes from the receiver, not from the sender's own CPU
	if err := push.Connect(addr); err != nil {
		return 0, 0, 0, err
	}
	snd, err := zbatch.NewSender(push)
	if err != nil {
		return 0, 0, 0, err
	}
	time.Sleep(200 * time.Millisecond) // connected before the clock starts
	unit := func(i int) int64 {
		if events {
			return int64(st.events[i])
		}
		return 1
	}
	n := st.msgs.Len()
	idx := 0
	var done int64 // units sent or dropped
	start := time.Now()
	for {
		el := time.Since(start)
		if el >= d || (limit > 0 && done >= limit) {
			break
		}
		due := int64(rate*el.Seconds()) - done
		if limit > 0 {
			due = min(due, limit-done)
		}
		if due <= 0 {
			if live != nil && live.stop.Load() {
				break
			}
			time.Sleep(100 * time.Microsecond)
			continue
		}
		// Messages covering the due units, within the stream's end.
		hi := idx
		for u := int64(0); u < due && hi < n && hi-idx < 4096; hi++ {
			u += unit(hi)
		}
		k, err := snd.Send(&st.msgs, idx, hi)
		if err != nil {
			return sent, dropped, time.Since(start), err
		}
		for i := idx; i < idx+k; i++ {
			sent += unit(i)
		}
		idx += k
		if idx < hi { // refused: a client drops it and goes on
			dropped += unit(idx)
			idx++
		}
		if idx == n {
			idx = 0
		}
		done = sent + dropped
		if live != nil {
			live.sent.Store(sent)
			live.dropped.Store(dropped)
		}
	}
	elapsed = time.Since(start)
	if onEnd != nil {
		onEnd()
	}
	return sent, dropped, elapsed, nil
}

// runStep sends at rate for d to r and measures what r took and its CPU.
func runStep(ctx context.Context, r receiver, st *stream, rate float64, d time.Duration, events bool) (step, error) {
	before, err := r.Count(ctx)
	if err != nil {
		return step{}, err
	}
	cpu0, zmq0, err := cpuTime(r.PID())
	if err != nil {
		return step{}, err
	}
	var atEnd int64
	var endErr error
	sent, dropped, el, err := pacedSend(r.Addr(), st, rate, d, 0, events, func() {
		atEnd, endErr = r.Count(ctx)
	})
	if err != nil {
		return step{}, err
	}
	if endErr != nil {
		return step{}, endErr
	}
	got, err := waitSettled(ctx, r.Count, before+sent, settleQuiet, 30*time.Second)
	if err != nil {
		return step{}, err
	}
	cpu1, zmq1, err := cpuTime(r.PID())
	if err != nil {
		return step{}, err
	}
	s := step{
		Target:   rate,
		Achieved: float64(sent+dropped) / el.Seconds(),
		Sent:     sent,
		Dropped:  dropped,
		Received: got - before,
		Behind:   sent - (atEnd - before),
		CPU:      cpu1 - cpu0,
		Elapsed:  el,
	}
	if s.Received > 0 {
		s.CPUPerMsg = float64(s.CPU.Nanoseconds()) / float64(s.Received)
		s.ZMQPerMsg = float64((zmq1 - zmq0).Nanoseconds()) / float64(s.Received)
	}
	// Loss-free and keeping up: nothing dropped or lost, and no more than
	// 100 ms of traffic still queued when sending ended (a receiver slower
	// than the stream would fill its queue, then lose).
	s.LossFree = dropped == 0 && s.Received == sent && float64(s.Behind) <= rate*0.1
	return s, nil
}

// ladder is the steps of one receiver at rising rates, and the highest
// rate it held without loss.
type ladder struct {
	Name          string  `json:"name"`
	Unit          string  `json:"unit"`
	Steps         []step  `json:"steps"`
	MaxLossFree   float64 `json:"max_loss_free_per_s"`
	SenderLimited bool    `json:"sender_limited"` // the sender, not the receiver, ended the ladder
}

// contender is a receiver in a ladder, under the name the report uses.
type contender struct {
	name string
	r    receiver
}

// runLadders runs, at each rate in turn, one step of every contender still
// in the race, so that the host's drifts hit them alike. A contender leaves
// after its second lossy step, or when the sender could not keep the pace.
func runLadders(ctx context.Context, unit string, cs []contender, st *stream, rates []float64, d time.Duration, events bool, logf func(string, ...any)) ([]ladder, error) {
	out := make([]ladder, len(cs))
	lossy := make([]int, len(cs))
	active := make([]bool, len(cs))
	for i, c := range cs {
		out[i] = ladder{Name: c.name, Unit: unit}
		active[i] = true
	}
	for _, rate := range rates {
		for i, c := range cs {
			if !active[i] {
				continue
			}
			if err := ctx.Err(); err != nil {
				return out, err
			}
			s, err := runStep(ctx, c.r, st, rate, d, events)
			if err != nil {
				return out, fmt.Errorf("%s at %.0f/s: %w", c.name, rate, err)
			}
			l := &out[i]
			l.Steps = append(l.Steps, s)
			logf("%-24s %9.0f/s: achieved %9.0f/s, sent %9d, dropped %7d, received %9d, behind %7d, %6.0f ns CPU/%s (libzmq threads %4.0f), loss-free %v",
				c.name, rate, s.Achieved, s.Sent, s.Dropped, s.Received, s.Behind, s.CPUPerMsg, unit, s.ZMQPerMsg, s.LossFree)
			switch {
			case s.Achieved < 0.97*rate:
				l.SenderLimited = true
				active[i] = false
			case s.LossFree:
				l.MaxLossFree = rate
			default:
				if lossy[i]++; lossy[i] == 2 {
					active[i] = false
				}
			}
		}
	}
	return out, nil
}
