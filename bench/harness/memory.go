package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/gstats/gstats/bench/statsdpeer"
)

// memPoint is the collector's memory and STATS latency with a given number
// of durations in its window.
type memPoint struct {
	Durations  int64         `json:"durations"`
	Prefixes   int           `json:"prefixes"`
	RSSIdle    int64         `json:"rss_idle_bytes"`
	RSS        int64         `json:"rss_bytes"`
	Peak       int64         `json:"rss_peak_bytes"`
	StatsRTT   time.Duration `json:"stats_rtt_ns"` // median STATS round trip over the control socket
	ReplyBytes int           `json:"stats_reply_bytes"`
	FillTime   time.Duration `json:"fill_ns"`
}

// memWindow and memFill give the collector a window of the default shape
// (60 slots) that fills in seconds: the durations spread over the slots as
// 10 k requests/s spread over the default 600 s window.
const (
	memWindow = 12 * time.Second
	memFill   = 11 * time.Second
)

// memFillSlack is how much longer than the fill time the sender may take to
// send everything (a tenth more): past it the first durations would start
// leaving the window. Tests, which fill far less than a window, raise it
// so that a loaded machine still sends them all.
var memFillSlack = 0.1

func memoryPhase(ctx context.Context, o options, work string, logf func(string, ...any)) ([]memPoint, error) {
	type size struct {
		n int64
		p int
	}
	sizes := []size{{1e3, 1}, {1e5, 1}, {1e6, 1}, {6e6, 1}, {1e5, 100}, {6e6, 100}, {1e5, 10000}, {6e6, 10000}}
	fill := memFill
	if o.quick {
		sizes = []size{{1e3, 1}, {1e5, 1}}
		fill = 2 * time.Second
	}
	var out []memPoint
	for _, sz := range sizes {
		mp, err := memoryPoint(ctx, o, work, sz.n, sz.p, fill)
		if err != nil {
			return out, fmt.Errorf("%d durations over %d prefixes: %w", sz.n, sz.p, err)
		}
		logf("memory: %8d durations, %5d prefixes: RSS %6.1f MiB (idle %5.1f, peak %6.1f), STATS round trip %s, %d bytes",
			mp.Durations, mp.Prefixes, mib(mp.RSS), mib(mp.RSSIdle), mib(mp.Peak), mp.StatsRTT, mp.ReplyBytes)
		out = append(out, mp)
	}
	return out, nil
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func memoryPoint(ctx context.Context, o options, work string, n int64, prefixes int, fill time.Duration) (memPoint, error) {
	mp := memPoint{Prefixes: prefixes}
	gs, err := startCollector(o.collectd, work, o.cpus,
		`window = "`+memWindow.String()+`"`, "max_prefixes = "+strconv.Itoa(max(1000, prefixes)))
	if err != nil {
		return mp, err
	}
	defer gs.Close()
	if mp.RSSIdle, _, err = statsdpeer.Memory(gs.PID()); err != nil {
		return mp, err
	}
	per := int(min(100, n))
	st, err := packedStream(max(prefixes/per+1, 64), per, true, prefixes)
	if err != nil {
		return mp, err
	}
	t0 := time.Now()
	sent, dropped, _, err := pacedSend(gs.Addr(), st, float64(n)/fill.Seconds(), fill+time.Duration(memFillSlack*float64(fill)), n, true, nil)
	if err != nil {
		return mp, err
	}
	got, err := waitSettled(ctx, gs.Count, sent, settleQuiet, 30*time.Second)
	if err != nil {
		return mp, err
	}
	mp.FillTime = time.Since(t0)
	if dropped != 0 || got != sent {
		return mp, fmt.Errorf("filling lost events: sent %d, dropped %d, accepted %d", sent, dropped, got)
	}
	mp.Durations = got
	rtts, reply, err := statsRoundTrips(gs.comm, 15)
	if err != nil {
		return mp, err
	}
	mp.ReplyBytes = len(reply)
	slices.Sort(rtts)
	mp.StatsRTT = rtts[len(rtts)/2]
	if mp.RSS, mp.Peak, err = statsdpeer.Memory(gs.PID()); err != nil {
		return mp, err
	}
	return mp, nil
}

// statsRoundTrips asks STATS n times over one connected REQ socket and
// returns each round trip and the last reply.
func statsRoundTrips(addr string, n int) ([]time.Duration, []byte, error) {
	req, err := zmq.NewSocket(zmq.REQ)
	if err != nil {
		return nil, nil, err
	}
	defer req.Close()
	_ = req.SetLinger(0)
	_ = req.SetRcvtimeo(10 * time.Second)
	if err := req.Connect(addr); err != nil {
		return nil, nil, err
	}
	var rtts []time.Duration
	var reply []byte
	for range n {
		t0 := time.Now()
		if _, err := req.Send("STATS", 0); err != nil {
			return nil, nil, fmt.Errorf("sending STATS: %w", err)
		}
		if reply, err = req.RecvBytes(0); err != nil {
			return nil, nil, fmt.Errorf("waiting for the STATS reply: %w", err)
		}
		rtts = append(rtts, time.Since(t0))
	}
	return rtts, reply, nil
}
