package e2e

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/gstats/gstats/plugins/inputs/gstats/window"
	"github.com/gstats/gstats/wire"
)

// Control-socket garbage of TestIntegrationHostileControlClients, one kind
// per client (client i sends kind i % numGarbageKinds).
const (
	garbageUnknown     = iota // REQ: one frame that is no command
	garbageMultiFrame         // REQ: 2 to 8 frames
	garbageEmpty              // REQ: one empty frame
	garbageHuge               // REQ: one frame over max_message_size
	garbageDealer             // DEALER: frames without the REQ envelope
	garbageRawRandom          // TCP: random bytes, then close
	garbageRawGreeting        // TCP: part of a ZMTP greeting, then silence
	numGarbageKinds
)

var garbageNames = [numGarbageKinds]string{"unknown command", "multi-frame", "empty frame", "huge frame", "DEALER without envelope", "raw random bytes", "half ZMTP greeting"}

// zmtpGreeting is the start of a ZMTP 3 greeting: signature, then version.
var zmtpGreeting = []byte{0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 3, 0}

// garbageTally counts what the garbage clients did and got.
type garbageTally struct {
	sent        [numGarbageKinds]atomic.Int64 // requests or connections
	errorReplys atomic.Int64                  // ERROR replies to REQ garbage
}

// garbageClient runs one hostile control client of kind until stop is
// closed. It reports protocol surprises (a reply where none may come, a
// reply other than ERROR) with t.Errorf.
func garbageClient(t *testing.T, addr string, kind int, seed uint64, tally *garbageTally, stop <-chan struct{}) {
	rng := rand.New(rand.NewPCG(seed, uint64(kind)))
	stopped := func() bool {
		select {
		case <-stop:
			return true
		default:
			return false
		}
	}
	switch kind {
	case garbageRawRandom, garbageRawGreeting:
		hp := addr[len("tcp://"):]
		for !stopped() {
			// The collector's listen backlog may overflow under the
			// garbage; a dropped SYN is retried after a second.
			conn, err := net.DialTimeout("tcp", hp, requestTimeout)
			if err != nil {
				t.Errorf("%s client: connecting to %s: %v", garbageNames[kind], hp, err)
				return
			}
			var payload []byte
			hang := 50 * time.Millisecond
			if kind == garbageRawRandom {
				payload = randomBytes(rng, 1+rng.IntN(512))
			} else {
				payload = zmtpGreeting[:1+rng.IntN(9)]
				hang = time.Duration(500+rng.IntN(1000)) * time.Millisecond
			}
			tally.sent[kind].Add(1)
			_, _ = conn.Write(payload) // the collector may already have hung up
			_ = conn.SetReadDeadline(time.Now().Add(hang))
			_, _ = bytes.NewBuffer(nil).ReadFrom(conn) // its greeting, until EOF or the deadline
			_ = conn.Close()
		}
		return
	}
	typ := zmq.REQ
	if kind == garbageDealer {
		typ = zmq.DEALER
	}
	var sock *zmq.Socket
	closeSock := func() {
		if sock != nil {
			_ = sock.Close()
			sock = nil
		}
	}
	defer closeSock()
	for !stopped() {
		if sock == nil {
			var err error
			if sock, err = garbageSocket(typ, addr); err != nil {
				t.Errorf("%s client: %v", garbageNames[kind], err)
				return
			}
		}
		var frames [][]byte
		switch kind {
		case garbageUnknown:
			frames = [][]byte{unknownCommand(rng)}
		case garbageMultiFrame:
			frames = [][]byte{[]byte("STATS")}
			for range 1 + rng.IntN(7) {
				frames = append(frames, randomBytes(rng, rng.IntN(64)))
			}
			if rng.IntN(2) == 0 {
				frames[0] = randomBytes(rng, 1+rng.IntN(16))
			}
		case garbageEmpty:
			frames = [][]byte{{}}
		case garbageHuge:
			frames = [][]byte{randomBytes(rng, 4097+rng.IntN(1<<20))}
		case garbageDealer:
			// No empty delimiter anywhere: REP cannot route a reply.
			for range 1 + rng.IntN(3) {
				frames = append(frames, append([]byte("STATS"), randomBytes(rng, rng.IntN(8))...))
			}
			frames[0] = []byte("STATS")
		}
		parts := make([]any, len(frames))
		for i, f := range frames {
			parts[i] = f
		}
		if _, err := sock.SendMessage(parts...); err != nil {
			t.Errorf("%s client: sending: %v", garbageNames[kind], err)
			return
		}
		tally.sent[kind].Add(1)
		switch kind {
		case garbageHuge, garbageDealer:
			// No reply may come: the collector drops the connection
			// (huge frame) or cannot route the message (no envelope).
			_ = sock.SetRcvtimeo(300 * time.Millisecond)
			reply, err := sock.RecvMessageBytes(0)
			if err == nil {
				t.Errorf("%s client: got a reply %q, want none", garbageNames[kind], reply)
			}
			closeSock() // a REQ that got no reply cannot send again
		default:
			reply, err := sock.RecvBytes(0)
			if err != nil {
				t.Errorf("%s client: no reply to %q within %s: %v", garbageNames[kind], frames, requestTimeout, err)
				return
			}
			if !wire.IsErrorReply(reply) {
				t.Errorf("%s client: reply %q to %q, want ERROR", garbageNames[kind], reply, frames)
			}
			tally.errorReplys.Add(1)
		}
	}
}

// garbageSocket is a REQ or DEALER socket connected to addr.
func garbageSocket(typ zmq.Type, addr string) (*zmq.Socket, error) {
	s, err := zmq.NewSocket(typ)
	if err != nil {
		return nil, err
	}
	for _, set := range []func() error{
		func() error { return s.SetLinger(0) },
		func() error { return s.SetSndtimeo(requestTimeout) },
		func() error { return s.SetRcvtimeo(requestTimeout) },
		func() error { return s.Connect(addr) },
	} {
		if err := set(); err != nil {
			_ = s.Close()
			return nil, err
		}
	}
	return s, nil
}

// unknownCommand is a frame that is not one of the commands: near misses
// and random bytes of up to max_message_size.
func unknownCommand(rng *rand.Rand) []byte {
	near := []string{"stats", "STATS ", " STATS", "STATS\n", "STATS\x00", "QUITX", "INF", "RTIMESS", "reset", "HELP", "GET / HTTP/1.0\r\n\r\n"}
	var f []byte
	switch rng.IntN(3) {
	case 0:
		f = []byte(near[rng.IntN(len(near))])
	case 1:
		f = randomBytes(rng, 1+rng.IntN(64))
	default:
		f = randomBytes(rng, 1+rng.IntN(4096))
	}
	if slices.Contains(wire.AllCommands(), wire.Command(f)) {
		f = append(f, '?')
	}
	return f
}

func randomBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// stableFDs returns the descriptor count of pid once two reads 200 ms apart
// agree (connections closed by peers are released asynchronously).
func stableFDs(t *testing.T, pid int) int {
	t.Helper()
	deadline := time.Now().Add(settleTimeout)
	last := openFDs(t, pid)
	for {
		time.Sleep(200 * time.Millisecond)
		n := openFDs(t, pid)
		if n == last || time.Now().After(deadline) {
			return n
		}
		last = n
	}
}

// TestIntegrationHostileControlClients runs 100 hostile control clients
// against a real gstats-collectd while a PUSH sender sends a known number
// of good messages: unknown commands, multi-frame and empty requests,
// frames over max_message_size, DEALER frames without the REQ envelope,
// raw TCP connections writing random bytes or half a ZMTP greeting. Every
// good message must be counted, STATS must keep answering promptly, every
// bad request must be answered ERROR and counted, and the collector's file
// descriptors must come back to their number before the clients came.
//
// STATS round trips are logged, not bounded: a loaded machine's scheduler
// alone can delay one beyond any bound tight enough to mean anything. A
// STATS that gets no reply (lost, or hung behind the garbage) fails the
// test through the client's timeout.
func TestIntegrationHostileControlClients(t *testing.T) {
	integration(t)
	const (
		clients = 100
		pairs   = 5000
		prefix  = "good"
		// minAnswered STATS must be answered while the garbage flows.
		minAnswered = 10
		// minPerKind garbage requests or connections of each kind at
		// least are sent before the garbage stops.
		minPerKind = 3
	)
	c := startCollector(t)
	pid := c.pid()
	push := blockingPush(t, c.StatsAddr)
	duration := func(i int) float64 { return 1 + float64(i%200)/10 }
	sendPairs(t, push, prefix, 1, duration)
	c.waitStats(t, prefix, "finished = 1", func(s wire.PrefixStats) bool { return s.Finished == 1 })

	var normal latencies
	for range 10 {
		_, d := c.timedStats(t)
		normal = append(normal, d)
	}
	fd0 := stableFDs(t, pid)
	info0 := c.info(t)
	t.Logf("before: %d open descriptors; STATS %s", fd0, normal)

	var tally garbageTally
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() { garbageClient(t, c.CommAddr, i%numGarbageKinds, uint64(i), &tally, stop) })
	}

	// STATS every 50 ms while the garbage flows.
	monitor := wire.NewClient(wire.ClientOptions{Address: c.CommAddr, Timeout: requestTimeout})
	var during latencies
	var statsCalls, statsLost, statsAnswered atomic.Int64
	monitorDone := make(chan struct{})
	go func() {
		defer close(monitorDone)
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			t0 := time.Now()
			_, err := monitor.Stats(context.Background())
			statsCalls.Add(1)
			if err != nil {
				statsLost.Add(1)
				t.Errorf("STATS during the garbage (after %s): %v", time.Since(t0).Round(time.Millisecond), err)
				continue
			}
			during = append(during, time.Since(t0))
			statsAnswered.Add(1)
		}
	}()

	// garbageFlowing waits until every kind of garbage client has sent at
	// least n requests or connections (and the monitor had its answers,
	// if answered is set), failing t after settleTimeout.
	garbageFlowing := func(n int64, answered bool, what string) {
		t.Helper()
		deadline := time.Now().Add(settleTimeout)
		for {
			ok := !answered || statsAnswered.Load() >= minAnswered
			for k := range numGarbageKinds {
				ok = ok && tally.sent[k].Load() >= n
			}
			if ok {
				return
			}
			if time.Now().After(deadline) {
				var sent []int64
				for k := range numGarbageKinds {
					sent = append(sent, tally.sent[k].Load())
				}
				t.Fatalf("%s: within %s the garbage clients sent %v per kind (want %d each), %d STATS answered", what, settleTimeout, sent, n, statsAnswered.Load())
			}
			time.Sleep(pollInterval)
		}
	}

	// The good messages, paced over a few seconds, start once every kind
	// of garbage flows, so that they overlap it; blocking sends, so none
	// is dropped by the sender. The garbage stops once every kind has
	// been sent a few times and STATS answered often enough meanwhile.
	garbageFlowing(1, false, "before the good messages")
	for i := range pairs / 100 {
		sendPairs(t, push, prefix, 100, func(j int) float64 { return duration(i*100 + j) })
		time.Sleep(30 * time.Millisecond) // pacing
	}
	garbageFlowing(minPerKind, true, "after the good messages")
	close(stop)
	<-monitorDone
	waitGroup(t, &wg, 30*time.Second, "the garbage clients")

	if c.proc.exited() {
		t.Fatalf("gstats-collectd exited under the garbage: %v\n%s", c.proc.err, c.proc.log())
	}
	mid := c.info(t) // the control counters, before the checks below send more
	want := int64(pairs + 1)
	s := c.waitStats(t, prefix, fmt.Sprintf("finished = %d", want), func(s wire.PrefixStats) bool { return s.Finished >= want })
	if s.Started != want || s.Finished != want || s.ProcessingTime.Count != want || s.Status.S2xx != want {
		t.Errorf("STATS %q: started %d, finished %d, count %d, 2xx %d; want %d each", prefix, s.Started, s.Finished, s.ProcessingTime.Count, s.Status.S2xx, want)
	}

	var after latencies
	for range 10 {
		_, d := c.timedStats(t)
		after = append(after, d)
	}
	info := c.info(t)
	if got := info.Accepted - info0.Accepted; got != 2*pairs {
		t.Errorf("INFO accepted grew by %d, want %d (every good message)", got, 2*pairs)
	}
	if got := info.RejectedTotal - info0.RejectedTotal; got != 0 {
		t.Errorf("INFO rejected grew by %d, want 0: %v", got, info.Rejected)
	}

	// Every garbage request that reached the REP socket was counted as a
	// control error; ZMTP 1.0 framing may also turn raw random bytes into
	// requests, answered ERROR and counted too.
	errs := mid.ControlErrors - info0.ControlErrors
	if errs < tally.errorReplys.Load() {
		t.Errorf("INFO control_errors grew by %d, want at least %d (the ERROR replies the clients got)", errs, tally.errorReplys.Load())
	}
	var cmds int64
	for cmd, n := range mid.Commands {
		d := n - info0.Commands[cmd]
		cmds += d
		switch cmd {
		case string(wire.CmdStats):
			if d != statsCalls.Load() {
				t.Errorf("INFO commands[STATS] grew by %d, want %d (the test's STATS calls)", d, statsCalls.Load())
			}
		case string(wire.CmdInfo):
			if d != 1 {
				t.Errorf("INFO commands[INFO] grew by %d, want 1", d)
			}
		default:
			if d != 0 {
				t.Errorf("INFO commands[%s] grew by %d, want 0", cmd, d)
			}
		}
	}
	if reqs := mid.ControlRequests - info0.ControlRequests; reqs != errs+cmds {
		t.Errorf("INFO control_requests grew by %d, want control_errors + commands = %d + %d", reqs, errs, cmds)
	}

	if len(during) < minAnswered {
		t.Errorf("only %d STATS answered during the garbage", len(during))
	}
	fds := waitFDs(t, pid, fd0, settleTimeout)
	if fds != fd0 {
		t.Errorf("gstats-collectd holds %d descriptors after the clients left, %d before", fds, fd0)
	}

	var sent []string
	for k := range numGarbageKinds {
		sent = append(sent, fmt.Sprintf("%s %d", garbageNames[k], tally.sent[k].Load()))
	}
	t.Logf("garbage sent: %v", sent)
	t.Logf("ERROR replies %d, control_errors +%d (+%d decoded from raw bytes); STATS during %s, after %s; descriptors %d -> %d",
		tally.errorReplys.Load(), errs, errs-tally.errorReplys.Load(), during, after, fd0, fds)
}

// waitGroup waits for wg, failing t after timeout.
func waitGroup(t *testing.T, wg *sync.WaitGroup, timeout time.Duration, what string) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(timeout):
		t.Fatalf("%s still running %s after they were told to stop", what, timeout)
	}
}

// ingestExpectation predicts, with the wire package's parser (which the
// collector runs), how the collector counts hostile messages once its
// window tracks max_prefixes prefixes: per rejection reason, and accepted.
type ingestExpectation struct {
	limits   wire.Limits
	tracked  map[string]bool // the prefixes the window holds
	accepted int64
	rejected map[wire.Reason]int64
}

func (e *ingestExpectation) event(m wire.Message, err error) {
	switch rej, ok := err.(*wire.RejectError); {
	case ok:
		e.rejected[rej.Reason]++
	case err != nil:
		panic(err) // the parser returns only *RejectError
	case e.tracked[string(m.Prefix)]:
		e.accepted++
	default:
		e.rejected[wire.ReasonTooManyPrefixes]++
	}
}

// message accounts for one message of frames.
func (e *ingestExpectation) message(frames [][]byte) {
	if wire.IsBatch(frames) {
		wire.ParseBatch(frames[0], e.limits, e.event)
		return
	}
	e.event(wire.ParseMessage(frames, e.limits))
}

// randomIngest is a random message: 1 to 8 frames (ZeroMQ cannot send a
// message of no frame; a lone empty frame comes closest) of random bytes,
// sometimes shaped like a message, sometimes a packed message with random
// lines.
func randomIngest(rng *rand.Rand) [][]byte {
	n := 1 + rng.IntN(8)
	frames := make([][]byte, n)
	for i := range frames {
		frames[i] = randomBytes(rng, rng.IntN(48))
	}
	switch rng.IntN(6) {
	case 0: // a packed message of random lines
		b := []byte(wire.BatchHeader)
		for range 1 + rng.IntN(20) {
			line := randomBytes(rng, rng.IntN(24))
			if rng.IntN(2) == 0 {
				line = fmt.Appendf(nil, "x%d\t%s", rng.IntN(1000), []string{"", "1.5", "-3", "nan", "1e999", "12\t200", "12\t99", "\t"}[rng.IntN(8)])
			}
			b = append(append(b, line...), '\n')
		}
		frames = [][]byte{b}
	case 1: // prefix and duration shaped
		frames = [][]byte{[]byte("rnd" + strconv.Itoa(rng.IntN(1e6))), []byte([]string{"", "5", "-1", "inf", "0x10", "1e12", " 7 "}[rng.IntN(7)])}
		if rng.IntN(2) == 0 {
			frames = append(frames, []byte([]string{"200", "600", "2000", "abc"}[rng.IntN(4)]))
		}
	case 2:
		frames[0] = []byte{0xff, 0xfe} // not UTF-8
	case 3:
		frames[0] = bytes.Repeat([]byte("p"), 250+rng.IntN(10)) // around max_prefix_length
	}
	return frames
}

// TestIntegrationHostileIngest floods a real gstats-collectd's stats socket
// with hostile traffic while a good sender's messages flow: random
// messages, a million distinct prefixes past max_prefixes, and 10 MB frames
// that libzmq cuts off. Every good message must be counted exactly, every
// hostile one rejected for the reason the parser gives, each 10 MB frame
// counted as a disconnect, and the collector's resident memory must stay
// under a bound derived from its limits and must not grow from one flood
// to the next.
func TestIntegrationHostileIngest(t *testing.T) {
	integration(t)
	binary := requireBinary(t, plainCollectd)
	const (
		maxPrefixes     = 200
		slots           = 4
		maxRaw          = 100
		maxPrefixLength = 255
		receiveQueue    = 1000
		maxMessageSize  = 4096
		rounds          = 2
		floodPrefixes   = 500_000 // per round: a million in all
		randomMessages  = 20_000  // per round
		bigFrames       = 5       // per round, 10 MB each
		goodPairs       = 5000    // per round
		goodPrefix      = "good"
	)
	dir := t.TempDir()
	conf := collectdConfig(t, dir, "tcp://127.0.0.1:*", "tcp://127.0.0.1:*", fmt.Sprintf(`
  window = "600s"
  window_slots = %d
  max_prefixes = %d
  max_raw_durations = %d
  max_prefix_length = %d
  receive_queue = %d
  max_message_size = "%dB"
  reject_log_interval = "5s"
`, slots, maxPrefixes, maxRaw, maxPrefixLength, receiveQueue, maxMessageSize))
	c := runCollectd(t, binary, conf)
	pid := c.pid()
	idle := c.settledRSS(t)

	// The window fills up to max_prefixes: the good prefix and fill ones.
	good := blockingPush(t, c.StatsAddr)
	exp := &ingestExpectation{
		limits:   wire.Limits{MaxPrefixLength: maxPrefixLength, MaxDuration: float64(24 * time.Hour / time.Millisecond)},
		tracked:  map[string]bool{goodPrefix: true},
		rejected: map[wire.Reason]int64{},
	}
	duration := func(i int) float64 { return 0.5 + float64(i%977)*1.37 }
	sendPairs(t, good, goodPrefix, 10, duration)
	for i := 1; i < maxPrefixes; i++ {
		name := fmt.Sprintf("fill-%03d", i)
		exp.tracked[name] = true
		sendPairs(t, good, name, 3, func(j int) float64 { return duration(i*3 + j) })
	}
	exp.accepted = 2 * (10 + 3*(maxPrefixes-1))
	c.waitInfo(t, fmt.Sprintf("%d prefixes, %d accepted", maxPrefixes, exp.accepted), func(i wire.InfoReply) bool {
		return i.Prefixes == maxPrefixes && i.Accepted == exp.accepted
	})
	before := c.settledRSS(t)

	cfg := window.Config{Window: 600 * time.Second, Slots: slots, Percentiles: []float64{50, 90, 95, 99}, MaxPrefixes: maxPrefixes, MaxRaw: maxRaw}
	// The bound: the window at its largest (every prefix's histograms full,
	// plus its name) and the interned names (twice max_prefixes), doubled
	// for the garbage collector's headroom (GOGC=100); one full receive
	// queue per sender that gets through (good, flood, random) of messages
	// of at most max_message_size plus eight libzmq message headers each;
	// and 24 MiB for the runtime, libzmq's I/O buffers and stacks.
	windowBytes := int64(maxPrefixes) * (window.MaxPrefixBytes(cfg) + maxPrefixLength)
	internBytes := int64(2*maxPrefixes) * (maxPrefixLength + 64)
	queueBytes := int64(3 * receiveQueue * (maxMessageSize + 8*64))
	bound := idle + 2*(windowBytes+internBytes) + queueBytes + 24*mib
	t.Logf("RSS idle %.1f MiB, with %d prefixes %.1f MiB; bound %.1f MiB (window %.1f MiB, names %.2f MiB, queues %.1f MiB)",
		float64(idle)/mib, maxPrefixes, float64(before)/mib, float64(bound)/mib, float64(windowBytes)/mib, float64(internBytes)/mib, float64(queueBytes)/mib)

	var wantDisconnects int64
	goodStarted := int64(10) // the good prefix's requests so far
	afterRound := make([]int64, 0, rounds)
	for round := range rounds {
		rng := rand.New(rand.NewPCG(uint64(round), 42))
		random := make([][][]byte, randomMessages)
		for i := range random {
			random[i] = randomIngest(rng)
			exp.message(random[i])
		}
		exp.rejected[wire.ReasonTooManyPrefixes] += floodPrefixes
		exp.accepted += 2 * goodPairs

		flood, noise, big := blockingPush(t, c.StatsAddr), blockingPush(t, c.StatsAddr), blockingPush(t, c.StatsAddr)
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		wg.Go(func() { errs <- sendFlood(flood, round, floodPrefixes) })
		wg.Go(func() {
			for _, m := range random {
				if _, err := noise.SendMessage(framesAny(m)...); err != nil {
					errs <- fmt.Errorf("random message: %w", err)
					return
				}
			}
		})
		wg.Go(func() {
			frame := bytes.Repeat([]byte("x"), 10<<20)
			for range bigFrames {
				if _, err := big.SendBytes(frame, 0); err != nil {
					errs <- fmt.Errorf("10 MB frame: %w", err)
					return
				}
			}
		})
		wg.Go(func() {
			for i := range goodPairs {
				for _, m := range [][]any{{goodPrefix, ""}, {goodPrefix, wire.FormatFloat(duration(i)), "200"}} {
					if _, err := good.SendMessage(m...); err != nil {
						errs <- fmt.Errorf("good message: %w", err)
						return
					}
				}
			}
		})
		waitGroup(t, &wg, time.Minute, "the senders")
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}

		// A sentinel, one good request, follows on each connection that
		// stays up (the 10 MB frames' connection is cut at each frame, so
		// its sentinel could be lost with it: its five disconnects are
		// waited for instead). Each connection delivers in order, so once
		// the collector has counted every sentinel and every disconnect it
		// has read all the senders sent, and nothing more can arrive: the
		// counts below are final, not a snapshot of counts still growing.
		for _, s := range []*zmq.Socket{flood, noise, good} {
			sendPairs(t, s, goodPrefix, 1, duration)
		}
		const sentinels = 3
		exp.accepted += 2 * sentinels
		goodStarted += goodPairs + sentinels
		wantDisconnects += bigFrames
		c.waitInfo(t, fmt.Sprintf("round %d counted (accepted %d, disconnects %d)", round, exp.accepted, wantDisconnects), func(i wire.InfoReply) bool {
			return i.Accepted >= exp.accepted && i.Disconnects >= wantDisconnects
		})
		info := c.info(t)
		if info.Accepted != exp.accepted {
			t.Errorf("round %d: INFO accepted %d, want %d", round, info.Accepted, exp.accepted)
		}
		for _, r := range wire.AllReasons() {
			if info.Rejected[r] != exp.rejected[r] {
				t.Errorf("round %d: INFO rejected[%s] = %d, want %d", round, r, info.Rejected[r], exp.rejected[r])
			}
		}
		if info.Disconnects != wantDisconnects {
			t.Errorf("round %d: INFO disconnects %d, want %d (one per 10 MB frame)", round, info.Disconnects, wantDisconnects)
		}
		if info.Prefixes != maxPrefixes {
			t.Errorf("round %d: INFO prefixes %d, want %d", round, info.Prefixes, maxPrefixes)
		}
		s, _ := c.stats(t, goodPrefix)
		if want := goodStarted; s.Started != want || s.Finished != want {
			t.Errorf("round %d: STATS %q started %d, finished %d, want %d", round, goodPrefix, s.Started, s.Finished, want)
		}
		// The senders leave; each is one more disconnect.
		for _, s := range []*zmq.Socket{flood, noise, big} {
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
		}
		wantDisconnects += 3
		c.waitInfo(t, fmt.Sprintf("%d disconnects", wantDisconnects), func(i wire.InfoReply) bool { return i.Disconnects >= wantDisconnects })
		afterRound = append(afterRound, c.settledRSS(t))
		t.Logf("round %d: RSS %.1f MiB; rejected %v", round, float64(afterRound[round])/mib, info.Rejected)
	}

	st, _ := c.timedStats(t)
	if len(st) != maxPrefixes {
		t.Errorf("STATS holds %d prefixes, want the %d tracked ones", len(st), maxPrefixes)
	}
	for name := range st {
		if !exp.tracked[name] {
			t.Errorf("STATS holds prefix %q, which came after max_prefixes", name)
		}
	}
	_, peak := rss(t, pid)
	t.Logf("RSS peak %.1f MiB (bound %.1f MiB); before the floods %.1f MiB, after them %.1f MiB",
		float64(peak)/mib, float64(bound)/mib, float64(before)/mib, float64(afterRound[rounds-1])/mib)
	if peak > bound {
		t.Errorf("peak RSS %.1f MiB over the bound %.1f MiB", float64(peak)/mib, float64(bound)/mib)
	}
	const flat = 8 * mib
	if grow := afterRound[rounds-1] - before; grow > flat {
		t.Errorf("RSS grew by %.1f MiB over %d floods (%.1f -> %.1f MiB), want at most %d MiB",
			float64(grow)/mib, rounds, float64(before)/mib, float64(afterRound[rounds-1])/mib, flat/mib)
	}
	if grow := afterRound[rounds-1] - afterRound[0]; grow > flat/2 {
		t.Errorf("RSS grew by %.1f MiB from the first flood to the second, want at most %d MiB", float64(grow)/mib, flat/2/mib)
	}
}

// sendFlood sends n events with distinct prefixes of round, most of them in
// packed messages of at most 4000 bytes, one in ten as classic messages.
func sendFlood(s *zmq.Socket, round, n int) error {
	b := []byte(wire.BatchHeader)
	flush := func() error {
		if len(b) == len(wire.BatchHeader) {
			return nil
		}
		_, err := s.SendBytes(b, 0)
		b = b[:len(wire.BatchHeader)]
		return err
	}
	for i := range n {
		prefix := fmt.Sprintf("flood-%d-%07d", round, i)
		if i%10 == 0 {
			if _, err := s.SendMessage(prefix, "2.5", "200"); err != nil {
				return fmt.Errorf("flood: %w", err)
			}
			continue
		}
		if len(b) > 4000-len(prefix)-8 {
			if err := flush(); err != nil {
				return fmt.Errorf("flood: %w", err)
			}
		}
		if i%2 == 0 {
			b = fmt.Appendf(b, "%s\t\n", prefix)
		} else {
			b = fmt.Appendf(b, "%s\t%d.5\t404\n", prefix, i%100)
		}
	}
	if err := flush(); err != nil {
		return fmt.Errorf("flood: %w", err)
	}
	return nil
}

func framesAny(frames [][]byte) []any {
	out := make([]any, len(frames))
	for i, f := range frames {
		out[i] = f
	}
	return out
}

// TestIntegrationHostileControlEnvelope checks that a control peer which
// sends a message without the REQ envelope and leaves at once costs no
// other client its reply. Bursts of such DEALER peers alternate with STATS
// requests from a well-behaved client, each of which must be answered.
func TestIntegrationHostileControlEnvelope(t *testing.T) {
	integration(t)
	const (
		bursts  = 5
		dealers = 20 // per burst
		checks  = 5  // STATS after each burst
	)
	c := startCollector(t)
	client := wire.NewClient(wire.ClientOptions{Address: c.CommAddr, Timeout: requestTimeout})
	info0 := c.info(t)
	lost := 0
	for burst := range bursts {
		var wg sync.WaitGroup
		for range dealers {
			wg.Go(func() {
				d, err := garbageSocket(zmq.DEALER, c.CommAddr)
				if err != nil {
					t.Errorf("DEALER: %v", err)
					return
				}
				// The message leaves before the connection closes, however
				// long connecting takes on a loaded machine.
				_ = d.SetLinger(requestTimeout)
				if _, err := d.SendMessage("STATS", "INFO"); err != nil {
					t.Errorf("DEALER send: %v", err)
				}
				if err := d.Close(); err != nil {
					t.Errorf("DEALER close: %v", err)
				}
			})
		}
		waitGroup(t, &wg, requestTimeout, "the DEALER peers")
		// The collector counts each envelope-less message as a control
		// error: the STATS requests follow once it has read them all.
		want := info0.ControlErrors + int64((burst+1)*dealers)
		c.waitInfo(t, fmt.Sprintf("burst %d: control_errors = %d", burst, want), func(i wire.InfoReply) bool { return i.ControlErrors >= want })
		for range checks {
			if _, err := client.Stats(context.Background()); err != nil {
				lost++
				t.Logf("STATS: %v", err)
			}
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d STATS requests got no reply after peers sent frames without the REQ envelope and left", lost, bursts*checks)
	}
	info := c.info(t)
	if got, want := info.Commands[string(wire.CmdStats)]-info0.Commands[string(wire.CmdStats)], int64(bursts*checks); got != want {
		t.Errorf("INFO commands[STATS] grew by %d, want %d: the envelope-less messages must not count as commands", got, want)
	}
}
