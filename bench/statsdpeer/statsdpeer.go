// Package statsdpeer measures Telegraf's statsd input, the aggregator a
// gunicorn user would otherwise run, so benchmark figures for gstats can be
// set beside it: the rate statsd holds without loss over UDP, its CPU time
// per message and memory, and the accuracy of its percentiles.
//
// It runs a stock Telegraf built from the version in go.mod, as a separate
// process on loopback, and talks to it the way gunicorn's statsd
// instrumentation does: one UDP datagram "<name>:<ms>|ms" per request.
// Telegraf writes what it aggregates, in line protocol, to a file that this
// package reads back, so every figure is Telegraf's own count.
//
// A harness uses it like this:
//
//	bin, err := statsdpeer.Build(ctx, binDir) // ~15 s with a warm build cache
//	if err != nil {
//		return err
//	}
//	peer, err := statsdpeer.Start(ctx, bin, workDir, "1") // Telegraf on CPU 1
//	if err != nil {
//		return err
//	}
//	defer peer.Close()
//	lad, err := peer.Ladder(ctx, nil, 0, durations) // default rates, 2 s each
//	if err != nil {
//		return err
//	}
//	for _, s := range lad.Steps {
//		fmt.Printf("%d/s: loss %.2f%%, %v CPU per message\n", s.Rate, 100*s.Loss(), s.CPUPerMessage())
//	}
//	fmt.Println("loss-free up to", lad.MaxLossFree, "timings/s")
//	q, err := statsdpeer.Percentiles(ctx, bin, workDir, durations)
//	if err != nil {
//		return err
//	}
//	fmt.Println(q.P50, q.P90, q.P99, q.Count)
//
// Only loopback addresses are used, and only the processes this package
// starts are signalled, by PID. Every wait is bounded.
package statsdpeer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Tags are the build tags of the stock Telegraf: a custom build with only
// the plugins this package configures.
const Tags = "custom,inputs.statsd,inputs.internal,outputs.file,serializers.influx"

// Percentiles Telegraf's statsd computes here, and the names of their fields.
var percentileFields = [...]string{"50_percentile", "90_percentile", "99_percentile"}

const (
	// interval is Telegraf's gather and flush interval during Steps.
	interval = time.Second
	// markerDelay is how long after its last timing a Step sends its first
	// marker datagram, and then the pause between markers.
	markerDelay = 100 * time.Millisecond
	// drainTimeout bounds a Step's wait for Telegraf's output after sending.
	drainTimeout = 30 * time.Second
	// buildTimeout bounds Build when the caller's context has no deadline.
	buildTimeout = 10 * time.Minute
)

// Build compiles a stock Telegraf, at the version go.mod requires and with
// the plugins in Tags, into dir/telegraf and returns that path. It runs the
// go command, so the working directory must be inside this module.
func Build(ctx context.Context, dir string) (string, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, buildTimeout)
		defer cancel()
	}
	v, err := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Version}}", "github.com/influxdata/telegraf").Output()
	if err != nil {
		return "", fmt.Errorf("finding Telegraf's version in go.mod (go list -m github.com/influxdata/telegraf): %w", err)
	}
	version := strings.TrimPrefix(strings.TrimSpace(string(v)), "v")
	out, err := filepath.Abs(filepath.Join(dir, "telegraf"))
	if err != nil {
		return "", fmt.Errorf("telegraf's output path: %w", err)
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-tags", Tags,
		"-ldflags", "-X github.com/influxdata/telegraf/internal.Version="+version,
		"-o", out, "github.com/influxdata/telegraf/cmd/telegraf")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building Telegraf %s (%s): %w\n%s", version, strings.Join(cmd.Args, " "), err, b)
	}
	return out, nil
}

// Peer is a running Telegraf whose statsd input listens on a loopback UDP
// port. Its methods are not safe for concurrent use.
type Peer struct {
	proc       *process
	udp        *net.UDPAddr
	socket     string // statsd's socket as /proc/net/udp names it
	out        *outputReader
	steps      int
	queueDrops int64 // statsd's udp_packets_dropped, as last seen
}

// Start runs bin (from Build) with statsd on a free 127.0.0.1 UDP port,
// percentiles 50, 90 and 99, delete_timings = true, a 1 s gather and flush
// interval, and outputs.file writing line protocol into workDir. Telegraf's
// own statsd counters (inputs.internal) go to the same file. With cpus not
// empty, Telegraf runs under `taskset -c cpus`. Start returns once statsd
// has logged its address.
func Start(ctx context.Context, bin, workDir, cpus string) (*Peer, error) {
	output, err := filepath.Abs(filepath.Join(workDir, "statsdpeer-udp.lp"))
	if err != nil {
		return nil, fmt.Errorf("telegraf's output path: %w", err)
	}
	conf := fmt.Sprintf(`[agent]
  interval = %[1]q
  round_interval = true
  collection_jitter = "0s"
  flush_interval = %[1]q
  flush_jitter = "0s"
  omit_hostname = true

[[inputs.statsd]]
  protocol = "udp"
  service_address = "127.0.0.1:0"
  percentiles = [50.0, 90.0, 99.0]
  delete_timings = true

[[inputs.internal]]
  collect_memstats = false
  namepass = ["internal_statsd"]

[[outputs.file]]
  files = [%[2]q]
  data_format = "influx"
`, interval.String(), output)
	out, err := newOutputReader(output)
	if err != nil {
		return nil, err
	}
	proc, err := startProcess(ctx, bin, workDir, "statsdpeer-udp", conf, output, cpus)
	if err != nil {
		return nil, err
	}
	p := &Peer{proc: proc, out: out}
	if err := p.resolve(); err != nil {
		return nil, errors.Join(err, proc.stop())
	}
	return p, nil
}

// resolve checks statsd's logged address is an IPv4 loopback one.
func (p *Peer) resolve() error {
	addr, err := net.ResolveUDPAddr("udp4", p.proc.addr)
	if err != nil {
		return fmt.Errorf("statsd's address %q: %w", p.proc.addr, err)
	}
	ip := addr.IP.To4()
	if ip == nil || !ip.IsLoopback() || addr.Port == 0 {
		return fmt.Errorf("statsd listens on %q, not on an IPv4 loopback port", p.proc.addr)
	}
	p.udp = addr
	p.socket = procNetAddr([4]byte(ip), addr.Port)
	return nil
}

// Addr is statsd's UDP address.
func (p *Peer) Addr() string { return p.udp.String() }

// PID is Telegraf's process id.
func (p *Peer) PID() int { return p.proc.pid }

// Close stops Telegraf: SIGTERM, then SIGKILL if it has not exited within
// 10 s. It signals only the process Start started.
func (p *Peer) Close() error { return p.proc.stop() }

// StepResult is what one Step sent and what Telegraf made of it.
type StepResult struct {
	Metric   string        // statsd name of this step's timings
	Rate     int           // target timings per second
	Duration time.Duration // target sending time

	Sent       int64         // datagrams the kernel accepted
	SendErrors int64         // sends that failed
	SendErr    string        // the first send error, if any
	Elapsed    time.Duration // time from the first to the last send
	Achieved   float64       // Sent per second of Elapsed

	// Received is the sum of the count fields Telegraf wrote for Metric:
	// the timings statsd aggregated.
	Received int64
	// KernelDrops are datagrams the kernel dropped at statsd's socket (its
	// receive buffer was full), from /proc/net/udp.
	KernelDrops int64
	// QueueDrops are datagrams statsd read but dropped because its queue
	// (allowed_pending_messages) was full: its udp_packets_dropped counter.
	QueueDrops int64

	// CPU is Telegraf's CPU time, all threads, from the first send until
	// Telegraf had processed the step's datagrams (its flush showed a
	// marker sent after them).
	CPU time.Duration
	// RSS and HWM are Telegraf's resident set and its peak (VmRSS, VmHWM)
	// after the step, in bytes.
	RSS, HWM int64
}

// Loss is the fraction of the sent timings statsd did not aggregate.
func (r StepResult) Loss() float64 {
	if r.Sent == 0 {
		return 0
	}
	return float64(r.Sent-r.Received) / float64(r.Sent)
}

// LossFree reports whether statsd aggregated every timing, no send failed,
// and the sender achieved at least 97 % of the target rate.
func (r StepResult) LossFree() bool {
	return r.Sent > 0 && r.Received == r.Sent && r.SendErrors == 0 &&
		r.Achieved >= 0.97*float64(r.Rate)
}

// CPUPerMessage is Telegraf's CPU time per timing it aggregated.
func (r StepResult) CPUPerMessage() time.Duration {
	if r.Received == 0 {
		return 0
	}
	return r.CPU / time.Duration(r.Received)
}

// Step sends timings at rate per second for d over UDP, one datagram per
// timing, paced in 1 ms ticks from the calling goroutine. The values cycle
// through durations (milliseconds; a constant 25 ms when empty). Every Step
// uses its own metric name, so its count is its own. After the last timing
// Step sends marker datagrams until a flush carries one, waits two more
// flushes so nothing Telegraf received is still unwritten (about 3 s in
// all), and returns what Telegraf counted.
func (p *Peer) Step(ctx context.Context, rate int, d time.Duration, durations []float64) (StepResult, error) {
	if rate <= 0 || d <= 0 {
		return StepResult{}, fmt.Errorf("step needs a positive rate and duration, got %d/s for %s", rate, d)
	}
	if p.proc.exited() {
		return StepResult{}, fmt.Errorf("telegraf has exited: %v\n%s", p.proc.exitErr(), p.proc.logTail())
	}
	// Take in anything written since the last step (counters, markers).
	if err := p.consume(func(string, int64) {}, nil); err != nil {
		return StepResult{}, err
	}
	p.steps++
	res := StepResult{Metric: fmt.Sprintf("statsdpeer_step%d", p.steps), Rate: rate, Duration: d}
	mark := fmt.Sprintf("statsdpeer_mark%d", p.steps)
	msgs := timingDatagrams(res.Metric, durations)

	conn, err := net.DialUDP("udp4", nil, p.udp)
	if err != nil {
		return res, fmt.Errorf("UDP socket to statsd %s: %w", p.udp, err)
	}
	defer conn.Close()

	drops0 := p.queueDrops
	kernel0, err := socketDrops(p.socket)
	if err != nil {
		return res, err
	}
	cpu0, _, err := CPUTime(p.proc.pid, "")
	if err != nil {
		return res, err
	}
	if err := send(ctx, conn, msgs, rate, d, &res); err != nil {
		return res, err
	}

	// Wait for the marker, then for a flush two intervals after it.
	var markAt, lastInternal time.Time
	var cpu1 time.Duration
	var cpuErr error
	markMsg := []byte(mark + ":1|ms")
	nextMark := time.Now().Add(markerDelay)
	deadline := time.Now().Add(drainTimeout)
	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()
	for {
		if markAt.IsZero() && !time.Now().Before(nextMark) {
			_, _ = conn.Write(markMsg) // a lost marker is sent again
			nextMark = time.Now().Add(markerDelay)
		}
		err := p.consume(func(name string, count int64) {
			if name == res.Metric {
				res.Received += count
			}
		}, func(name string, at time.Time) {
			switch {
			case name == mark && markAt.IsZero():
				markAt = at
				cpu1, _, cpuErr = CPUTime(p.proc.pid, "")
			case name == internalStatsd && at.After(lastInternal):
				lastInternal = at
			}
		})
		if err := errors.Join(err, cpuErr); err != nil {
			return res, err
		}
		if !markAt.IsZero() && !lastInternal.Before(markAt.Add(2*interval)) {
			break
		}
		if p.proc.exited() {
			return res, fmt.Errorf("telegraf exited during step %s: %v\n%s", res.Metric, p.proc.exitErr(), p.proc.logTail())
		}
		if time.Now().After(deadline) {
			return res, fmt.Errorf("telegraf wrote no flush with step %s's marker and two after it within %s of the last send (marker seen: %v)\n%s",
				res.Metric, drainTimeout, !markAt.IsZero(), p.proc.logTail())
		}
		select {
		case <-poll.C:
		case <-ctx.Done():
			return res, fmt.Errorf("waiting for Telegraf's flush: %w", ctx.Err())
		}
	}

	res.CPU = cpu1 - cpu0
	res.QueueDrops = p.queueDrops - drops0
	kernel1, err := socketDrops(p.socket)
	if err != nil {
		return res, err
	}
	res.KernelDrops = kernel1 - kernel0
	if res.RSS, res.HWM, err = Memory(p.proc.pid); err != nil {
		return res, err
	}
	return res, nil
}

// internalStatsd is the measurement of statsd's own counters.
const internalStatsd = "internal_statsd"

// consume reads Telegraf's new output: each timing metric goes to count
// with its count field, every metric's name and time to seen (when not
// nil), and statsd's udp_packets_dropped counter to p.queueDrops.
func (p *Peer) consume(count func(name string, n int64), seen func(name string, at time.Time)) error {
	ms, err := p.out.next()
	if err != nil {
		return err
	}
	for _, m := range ms {
		if m.Name() == internalStatsd {
			if n, ok := intField(m, "udp_packets_dropped"); ok {
				p.queueDrops = n
			}
		} else if t, _ := m.GetTag("metric_type"); t == "timing" {
			n, ok := intField(m, "count")
			if !ok {
				return fmt.Errorf("telegraf's timing %s has no integer count field: %v", m.Name(), m.Fields())
			}
			count(m.Name(), n)
		}
		if seen != nil {
			seen(m.Name(), m.Time())
		}
	}
	return nil
}

// timingDatagrams formats one "<name>:<ms>|ms" datagram per duration.
func timingDatagrams(name string, durations []float64) [][]byte {
	if len(durations) == 0 {
		durations = []float64{25}
	}
	msgs := make([][]byte, len(durations))
	for i, v := range durations {
		b := make([]byte, 0, len(name)+32)
		b = append(b, name...)
		b = append(b, ':')
		b = strconv.AppendFloat(b, v, 'f', -1, 64)
		msgs[i] = append(b, "|ms"...)
	}
	return msgs
}

// send writes msgs round-robin at rate per second for d, in 1 ms ticks,
// and fills in res's sending fields. A sender still behind 5 ms after d
// stops there rather than catch up.
func send(ctx context.Context, conn *net.UDPConn, msgs [][]byte, rate int, d time.Duration, res *StepResult) error {
	const grace = 5 * time.Millisecond
	total := int64(float64(rate) * d.Seconds())
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	var attempted int64
	i := 0
	start := time.Now()
	for attempted < total {
		el := time.Since(start)
		if el >= d+grace {
			break
		}
		due := min(total, int64(float64(rate)*el.Seconds()))
		for ; attempted < due; attempted++ {
			if _, err := conn.Write(msgs[i]); err != nil {
				if res.SendErrors == 0 {
					res.SendErr = err.Error()
				}
				res.SendErrors++
			} else {
				res.Sent++
			}
			if i++; i == len(msgs) {
				i = 0
			}
		}
		if attempted == total {
			break
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return fmt.Errorf("sending timings: %w", ctx.Err())
		}
	}
	res.Elapsed = time.Since(start)
	res.Achieved = float64(res.Sent) / res.Elapsed.Seconds()
	return nil
}
