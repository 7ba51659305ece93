package statsdpeer

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// The single-flush window of Percentiles: with a collection_offset Telegraf
// skips the gather it otherwise makes at start and first gathers one
// interval (plus the offset) later, so every value must be sent and parsed
// within that interval. Telegraf takes in about
// 4 µs per TCP line here (1e6 values in about 4 s); the window allows 20 µs
// and 5 s more.
const (
	percentileBase     = 5 * time.Second
	percentilePerValue = 20 * time.Microsecond
	percentileMetric   = "statsdpeer_percentiles"
)

// PercentileResult is Telegraf statsd's view of a set of durations.
type PercentileResult struct {
	P50, P90, P99 float64 // its 50th, 90th and 99th percentile fields
	Count         int64   // its count field: equals the number of durations
	Feed          time.Duration
}

// Percentiles sends durations (milliseconds) to a fresh Telegraf's statsd
// input over its TCP listener and returns the percentiles statsd computes
// for them. Statsd keeps its defaults (percentile_limit = 1000) except
// protocol = "tcp" and an allowed_pending_messages as large as the input,
// which bounds only its queue, so that no value is dropped: Percentiles
// fails unless statsd counts every value in one aggregation (one flush).
// The gather interval grows with the input (about 25 s for 1e6 values),
// and Percentiles waits for it.
func Percentiles(ctx context.Context, bin, workDir string, durations []float64) (PercentileResult, error) {
	var res PercentileResult
	if len(durations) == 0 {
		return res, errors.New("percentiles of no durations")
	}
	window := (percentileBase + time.Duration(len(durations))*percentilePerValue).Round(time.Second)
	output, err := filepath.Abs(filepath.Join(workDir, "statsdpeer-percentiles.lp"))
	if err != nil {
		return res, fmt.Errorf("telegraf's output path: %w", err)
	}
	conf := fmt.Sprintf(`[agent]
  interval = %q
  round_interval = false
  collection_jitter = "0s"
  collection_offset = "1ms"
  flush_interval = "1s"
  flush_jitter = "0s"
  omit_hostname = true

[[inputs.statsd]]
  protocol = "tcp"
  service_address = "127.0.0.1:0"
  percentiles = [50.0, 90.0, 99.0]
  allowed_pending_messages = %d

[[outputs.file]]
  files = [%q]
  data_format = "influx"
`, window.String(), max(len(durations)+1000, 10000), output)
	// A file left by an earlier run in workDir would be read as this one's.
	if err := os.Remove(output); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return res, fmt.Errorf("removing an old output file: %w", err)
	}
	out, err := newOutputReader(output)
	if err != nil {
		return res, err
	}
	proc, err := startProcess(ctx, bin, workDir, "statsdpeer-percentiles", conf, output, "")
	if err != nil {
		return res, err
	}
	started := time.Now()
	res, err = feedAndRead(ctx, proc, out, durations, started.Add(window))
	return res, errors.Join(err, proc.stop())
}

// feedAndRead sends durations over one TCP connection before gatherAt and
// waits for the flush that follows.
func feedAndRead(ctx context.Context, proc *process, out *outputReader, durations []float64, gatherAt time.Time) (PercentileResult, error) {
	var res PercentileResult
	addr, err := net.ResolveTCPAddr("tcp4", proc.addr)
	if err != nil || !addr.IP.IsLoopback() {
		return res, fmt.Errorf("statsd's TCP address %q is not an IPv4 loopback one (%v)", proc.addr, err)
	}
	start := time.Now()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp4", addr.String())
	if err != nil {
		return res, fmt.Errorf("connecting to statsd's TCP listener %s: %w", addr, err)
	}
	// The values must all be written, and parsed, before the gather.
	if err := conn.SetWriteDeadline(gatherAt.Add(-time.Second)); err != nil {
		conn.Close()
		return res, fmt.Errorf("statsd TCP write deadline: %w", err)
	}
	w := bufio.NewWriterSize(conn, 256*1024)
	line := make([]byte, 0, 64)
	for _, v := range durations {
		line = append(line[:0], percentileMetric+":"...)
		line = strconv.AppendFloat(line, v, 'f', -1, 64)
		line = append(line, "|ms\n"...)
		if _, err := w.Write(line); err != nil {
			break // reported by Flush
		}
	}
	err = w.Flush()
	if cerr := conn.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return res, fmt.Errorf("sending %d timings to statsd over TCP: %w", len(durations), err)
	}
	res.Feed = time.Since(start)

	deadline := gatherAt.Add(30 * time.Second)
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
	for {
		ms, err := out.next()
		if err != nil {
			return res, err
		}
		for _, m := range ms {
			if m.Name() != percentileMetric {
				continue
			}
			res.Count, _ = intField(m, "count")
			if res.Count != int64(len(durations)) {
				return res, fmt.Errorf("statsd's flush counted %d timings, %d were sent in %s (the gather came %s after the start): some were dropped or parsed after the gather",
					res.Count, len(durations), res.Feed, time.Until(gatherAt).Round(time.Millisecond))
			}
			for i, p := range []*float64{&res.P50, &res.P90, &res.P99} {
				v, ok := floatField(m, percentileFields[i])
				if !ok {
					return res, fmt.Errorf("statsd's flush has no %s field: %v", percentileFields[i], m.Fields())
				}
				*p = v
			}
			return res, nil
		}
		if proc.exited() {
			return res, fmt.Errorf("telegraf exited before its flush: %v\n%s", proc.exitErr(), proc.logTail())
		}
		if time.Now().After(deadline) {
			return res, fmt.Errorf("telegraf wrote no %s metric by 30 s after its gather\n%s", percentileMetric, proc.logTail())
		}
		select {
		case <-poll.C:
		case <-ctx.Done():
			return res, fmt.Errorf("waiting for Telegraf's flush: %w", ctx.Err())
		}
	}
}
