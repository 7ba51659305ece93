package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gstats/gstats/bench/statsdpeer"
	"github.com/gstats/gstats/wire"
)

// The soak's verdict bounds. After the warm-up the collector's goroutines
// and open files must stay within a small spread, its RSS within a bound.
const (
	// soakGoroutineSlack: goroutines that may come and go around a sample
	// without a leak. The profile's own HTTP request always counts one
	// (the same one each time); Go's net/http may still hold the previous
	// request's connection goroutine for a moment, and a periodic task
	// (a gather, a state write) can be mid-flight when a sample is taken.
	// A leak per message, per control request or per sample would add at
	// least one goroutine per sample (dozens over a soak), far beyond it.
	soakGoroutineSlack = 4
	// soakFDSlack: file descriptors that may come and go around a sample.
	// Each INFO request opens a fresh TCP connection to the control
	// socket and each profile read one HTTP connection; libzmq and
	// net/http close theirs asynchronously, so one of each may still be
	// open when the next sample counts. A leak per request or per
	// connection would again add one per sample.
	soakFDSlack = 2
	// soakRSSMin and soakRSSRel bound RSS drift: the larger of 4 MiB and
	// 5 % of the RSS after the warm-up. Below that, RSS moves with the Go
	// heap's garbage-collection cycles and the runtime returning memory to
	// the kernel, not with what the collector keeps.
	soakRSSMin = 4 << 20
	soakRSSRel = 0.05
	// soakMinPerFifth is the fewest samples a fifth of the measured part
	// needs for its median to mean something.
	soakMinPerFifth = 3
)

// soakSample is one look at the collector during the soak.
type soakSample struct {
	At         time.Duration `json:"at_ns"` // since the soak began
	RSS        int64         `json:"rss_bytes"`
	FDs        int           `json:"open_fds"`
	Goroutines int           `json:"goroutines"`
	CPU        time.Duration `json:"cpu_ns"` // the collector's CPU time since it started
	Sent       int64         `json:"sent"`   // taken by the sender's socket so far
	Dropped    int64         `json:"dropped"`
	Accepted   int64         `json:"accepted"` // INFO's accepted
	Rejected   int64         `json:"rejected"` // INFO's rejected_total
}

// soakVerdict is the soak judged: flat, or the reasons it is not.
type soakVerdict struct {
	Flat     bool          `json:"flat"`
	Problems []string      `json:"problems,omitempty"`
	Warmup   time.Duration `json:"warmup_ns"`
	Measured int           `json:"samples_after_warmup"`
	// Goroutines and FDs are the minimum and maximum after the warm-up.
	Goroutines [2]int `json:"goroutines_min_max"`
	FDs        [2]int `json:"fds_min_max"`
	// RSSFirst and RSSLast are the medians of the first and last fifths of
	// the part after the warm-up; RSSTrend is the least-squares slope of
	// RSS over that part times the soak's duration.
	RSSFirst int64 `json:"rss_first_fifth_median_bytes"`
	RSSLast  int64 `json:"rss_last_fifth_median_bytes"`
	RSSTrend int64 `json:"rss_trend_bytes"`
	RSSBound int64 `json:"rss_bound_bytes"`
}

// soakResults is the soak phase: gstats-collectd under a steady stream.
type soakResults struct {
	Rate float64 `json:"rate_per_s"`
	// MaxLossFree is the ingest figure Rate is half of (0 when the rate was
	// given); RateSource says where it came from.
	MaxLossFree float64       `json:"max_loss_free_per_s,omitempty"`
	RateSource  string        `json:"rate_source"`
	Duration    time.Duration `json:"duration_ns"`
	Every       time.Duration `json:"sample_every_ns"`
	Window      time.Duration `json:"window_ns"`
	Sent        int64         `json:"sent"`
	Dropped     int64         `json:"dropped"`
	Accepted    int64         `json:"accepted"` // once the queue drained
	Rejected    int64         `json:"rejected"`
	PeakRSS     int64         `json:"rss_peak_bytes"`
	Samples     []soakSample  `json:"samples"`
	Verdict     soakVerdict   `json:"verdict"`
}

// soakWarmup is the part of a soak of d left out of the verdict: a tenth
// of it, raised towards 30 s in shorter runs but never past a fifth.
func soakWarmup(d time.Duration) time.Duration {
	return max(d/10, min(30*time.Second, d/5))
}

// judgeSoak decides whether the samples of a soak of d are flat and
// nothing was lost: the totals are the sender's and the collector's once
// its queue drained.
func judgeSoak(samples []soakSample, d time.Duration, sent, dropped, accepted, rejected int64) soakVerdict {
	v := soakVerdict{Warmup: soakWarmup(d)}
	bad := func(format string, a ...any) { v.Problems = append(v.Problems, fmt.Sprintf(format, a...)) }
	switch {
	case sent == 0:
		bad("nothing was sent")
	case dropped != 0 || accepted != sent || rejected != 0:
		bad("lost messages: sent %d, dropped by the sender %d, accepted %d, rejected %d", sent, dropped, accepted, rejected)
	}
	var post []soakSample
	for _, s := range samples {
		if s.At >= v.Warmup {
			post = append(post, s)
		}
	}
	v.Measured = len(post)
	span := d - v.Warmup
	var first, last []float64
	for _, s := range post {
		if s.At <= v.Warmup+span/5 {
			first = append(first, float64(s.RSS))
		}
		if s.At >= d-span/5 {
			last = append(last, float64(s.RSS))
		}
	}
	if len(first) < soakMinPerFifth || len(last) < soakMinPerFifth {
		bad("too few samples after the warm-up (%d, %d in the first fifth, %d in the last): sample more often", len(post), len(first), len(last))
		v.Flat = false
		return v
	}
	v.Goroutines = [2]int{post[0].Goroutines, post[0].Goroutines}
	v.FDs = [2]int{post[0].FDs, post[0].FDs}
	for _, s := range post {
		v.Goroutines = [2]int{min(v.Goroutines[0], s.Goroutines), max(v.Goroutines[1], s.Goroutines)}
		v.FDs = [2]int{min(v.FDs[0], s.FDs), max(v.FDs[1], s.FDs)}
	}
	if spread := v.Goroutines[1] - v.Goroutines[0]; spread > soakGoroutineSlack {
		bad("goroutines went from %d to %d (spread %d > %d)", v.Goroutines[0], v.Goroutines[1], spread, soakGoroutineSlack)
	}
	if spread := v.FDs[1] - v.FDs[0]; spread > soakFDSlack {
		bad("open files went from %d to %d (spread %d > %d)", v.FDs[0], v.FDs[1], spread, soakFDSlack)
	}
	v.RSSFirst = int64(median(first))
	v.RSSLast = int64(median(last))
	v.RSSBound = max(soakRSSMin, int64(soakRSSRel*float64(v.RSSFirst)))
	if diff := v.RSSLast - v.RSSFirst; diff > v.RSSBound || -diff > v.RSSBound {
		bad("RSS moved from %.1f MiB to %.1f MiB (more than %.1f MiB)", mib(v.RSSFirst), mib(v.RSSLast), mib(v.RSSBound))
	}
	v.RSSTrend = int64(rssSlope(post) * d.Seconds())
	if v.RSSTrend > v.RSSBound {
		bad("RSS trends upwards by %.1f MiB over %s (more than %.1f MiB)", mib(v.RSSTrend), d, mib(v.RSSBound))
	}
	v.Flat = len(v.Problems) == 0
	return v
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// rssSlope is the least-squares slope of RSS over time, in bytes per
// second (0 with fewer than two distinct times).
func rssSlope(ss []soakSample) float64 {
	var mt, mr float64
	for _, s := range ss {
		mt += s.At.Seconds()
		mr += float64(s.RSS)
	}
	n := float64(len(ss))
	mt, mr = mt/n, mr/n
	var num, den float64
	for _, s := range ss {
		dt := s.At.Seconds() - mt
		num += dt * (float64(s.RSS) - mr)
		den += dt * dt
	}
	if den == 0 {
		return 0
	}
	return num / den
}

// soakRate picks the soak's rate: -soak-rate when given, else half the
// highest loss-free rate gstats held on classic messages in this run's
// ingest phase, else half the one in the results of a previous run (the
// -json file, read before this run replaces it).
func soakRate(o options, in *ingestResults) (rate, base float64, source string, err error) {
	if o.soakRate > 0 {
		return o.soakRate, 0, "given with -soak-rate", nil
	}
	if in != nil {
		l, ok := findLadder(in.Classic, "gstats")
		if !ok || l.MaxLossFree == 0 {
			return 0, 0, "", errors.New("soak: the ingest phase found no loss-free rate for gstats; give -soak-rate")
		}
		return l.MaxLossFree / 2, l.MaxLossFree, "half the highest loss-free rate the ingest phase measured in this run", nil
	}
	if o.jsonOut == "" {
		return 0, 0, "", errors.New("soak: no rate: run the ingest phase too, give -soak-rate, or -json with a previous run's results")
	}
	b, err := os.ReadFile(o.jsonOut)
	if err != nil {
		return 0, 0, "", fmt.Errorf("soak: no -soak-rate and no ingest phase in this run, so the rate comes from a previous run's results: %w", err)
	}
	var prev results
	if err := json.Unmarshal(b, &prev); err != nil {
		return 0, 0, "", fmt.Errorf("soak: reading the previous run's results %s: %w", o.jsonOut, err)
	}
	if prev.Ingest != nil {
		if l, ok := findLadder(prev.Ingest.Classic, "gstats"); ok && l.MaxLossFree > 0 {
			base = l.MaxLossFree
		}
	}
	if base == 0 && prev.Soak != nil {
		base = prev.Soak.MaxLossFree
	}
	if base == 0 {
		return 0, 0, "", fmt.Errorf("soak: %s has no loss-free ingest rate for gstats; run the ingest phase or give -soak-rate", o.jsonOut)
	}
	return base / 2, base, fmt.Sprintf("half the highest loss-free rate in %s, from the run of %s", o.jsonOut, prev.Started.Format("2006-01-02 15:04 UTC")), nil
}

var pprofURL = regexp.MustCompile(`profiles served on (http://\S+/debug/pprof/)`)

// goroutineTotal reads the "goroutine profile: total N" line that starts a
// debug=1 goroutine profile.
func goroutineTotal(first string) (int, error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(first), "goroutine profile: total ")
	if !ok {
		return 0, fmt.Errorf("not a goroutine profile: %q", first)
	}
	n, err := strconv.Atoi(rest)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("bad goroutine total %q", rest)
	}
	return n, nil
}

// soakProbe reads the collector's figures.
type soakProbe struct {
	c      *collector
	pprof  string
	client *http.Client
}

func (p soakProbe) goroutines(ctx context.Context) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.pprof+"goroutine?debug=1", nil)
	if err != nil {
		return 0, err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("goroutine profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("goroutine profile: %s", resp.Status)
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil {
		return 0, fmt.Errorf("goroutine profile: %w", err)
	}
	return goroutineTotal(line)
}

// sample takes one look: the process's own figures first (files, memory,
// CPU), then the goroutines over HTTP and the counters over the control
// socket, so that neither request's connection is among the files counted,
// and last the sender's counts, so that what was accepted was sent.
func (p soakProbe) sample(ctx context.Context, at time.Duration, live *sendProgress) (soakSample, error) {
	s := soakSample{At: at}
	pid := p.c.PID()
	var err error
	if s.FDs, err = statsdpeer.OpenFiles(pid); err != nil {
		return s, fmt.Errorf("the collector: %w", err)
	}
	if s.RSS, _, err = statsdpeer.Memory(pid); err != nil {
		return s, err
	}
	if s.CPU, _, err = cpuTime(pid); err != nil {
		return s, err
	}
	if s.Goroutines, err = p.goroutines(ctx); err != nil {
		return s, err
	}
	var info wire.InfoReply
	if info, err = p.c.client.Info(ctx); err != nil {
		return s, err
	}
	s.Accepted, s.Rejected = info.Accepted, info.RejectedTotal
	s.Sent, s.Dropped = live.sent.Load(), live.dropped.Load()
	return s, nil
}

func soakPhase(ctx context.Context, o options, work string, in *ingestResults, logf func(string, ...any)) (*soakResults, error) {
	r, base, source, err := soakRate(o, in)
	if err != nil {
		return nil, err
	}
	res := &soakResults{Rate: r, MaxLossFree: base, RateSource: source, Duration: o.soakFor, Every: o.soakEvery, Window: o.soakWindow}
	if res.Window == 0 {
		res.Window = soakWarmup(o.soakFor)
	}
	gs, err := startCollectorArgs(o.collectd, work, o.cpus, []string{"--pprof-addr", "127.0.0.1:0"}, `window = "`+res.Window.String()+`"`)
	if err != nil {
		return nil, err
	}
	defer gs.Close()
	m := pprofURL.FindStringSubmatch(gs.p.stderr.String())
	if m == nil {
		return nil, fmt.Errorf("soak: no profile address in the collector's log: %s", gs.p.stderr.String())
	}
	probe := soakProbe{c: gs, pprof: m[1], client: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}}
	st, err := classicStream(1 << 18)
	if err != nil {
		return nil, err
	}
	logf("soak: %s at %s (%s), window %s, a sample every %s", res.Duration, rate(res.Rate), source, res.Window, res.Every)

	type sendResult struct {
		sent, dropped int64
		err           error
	}
	live := &sendProgress{}
	sendDone := make(chan sendResult, 1)
	start := time.Now()
	go func() {
		sent, dropped, _, err := pacedSendLive(gs.Addr(), st, res.Rate, res.Duration, 0, false, nil, live)
		sendDone <- sendResult{sent, dropped, err}
	}()
	// stopSender ends the sender early and waits for it.
	stopSender := func() sendResult {
		live.stop.Store(true)
		return <-sendDone
	}
	for k := time.Duration(0); k*res.Every <= res.Duration; k++ {
		select {
		case <-ctx.Done():
			stopSender()
			return res, ctx.Err()
		case <-time.After(time.Until(start.Add(k * res.Every))):
		}
		s, err := probe.sample(ctx, time.Since(start), live)
		if err != nil {
			stopSender()
			return res, fmt.Errorf("soak at %s: %w (collector log: %s)", time.Since(start).Round(time.Second), err, gs.p.stderr.String())
		}
		res.Samples = append(res.Samples, s)
		logf("soak %8s: sent %11d, dropped %d, accepted %11d, RSS %6.1f MiB, %3d fds, %3d goroutines, CPU %s",
			soakTime(s.At, res.Every), s.Sent, s.Dropped, s.Accepted, mib(s.RSS), s.FDs, s.Goroutines, s.CPU.Round(time.Millisecond))
	}
	var sr sendResult
	select {
	case sr = <-sendDone:
	case <-time.After(30 * time.Second):
		sr = stopSender()
	}
	if sr.err != nil {
		return res, fmt.Errorf("soak sender: %w", sr.err)
	}
	res.Sent, res.Dropped = sr.sent, sr.dropped
	accepted := func(ctx context.Context) (int64, error) {
		info, err := gs.client.Info(ctx)
		return info.Accepted, err
	}
	// The INFO below decides; an error here would show there too.
	_, _ = waitSettled(ctx, accepted, res.Sent, settleQuiet, 30*time.Second)
	info, err := gs.client.Info(ctx)
	if err != nil {
		return res, fmt.Errorf("soak: the collector's counts after sending: %w", err)
	}
	res.Accepted, res.Rejected = info.Accepted, info.RejectedTotal
	if _, res.PeakRSS, err = statsdpeer.Memory(gs.PID()); err != nil {
		return res, err
	}
	res.Verdict = judgeSoak(res.Samples, res.Duration, res.Sent, res.Dropped, res.Accepted, res.Rejected)
	logf("soak: sent %d, dropped %d, accepted %d, rejected %d; flat %v %s", res.Sent, res.Dropped, res.Accepted, res.Rejected, res.Verdict.Flat, strings.Join(res.Verdict.Problems, "; "))
	return res, nil
}

// soakRows picks the samples the report shows: the first, then the first
// sample of every minute (of every tenth of the run when it is shorter
// than 5 minutes), and the last.
func soakRows(ss []soakSample, d time.Duration) []int {
	step := time.Minute
	if d < 5*time.Minute {
		step = max(d/10, time.Millisecond)
	}
	// Samples are taken a little after their time: allow for it.
	slot := func(at time.Duration) time.Duration { return (at + step/100) / step }
	var out []int
	for i, s := range ss {
		if i == 0 || i == len(ss)-1 || slot(s.At) > slot(ss[i-1].At) {
			out = append(out, i)
		}
	}
	return out
}

// cpuShare is the collector's CPU over the interval from a to b: as a
// share of one CPU, and per message accepted.
func cpuShare(a, b soakSample) (pct, nsPerMsg float64) {
	dt := (b.At - a.At).Seconds()
	cpu := float64((b.CPU - a.CPU).Nanoseconds())
	if dt > 0 {
		pct = 100 * cpu / 1e9 / dt
	}
	if n := b.Accepted - a.Accepted; n > 0 {
		nsPerMsg = cpu / float64(n)
	} else {
		nsPerMsg = math.NaN()
	}
	return pct, nsPerMsg
}

// soakTime rounds a sample's time for reading: to the second, or to 10 ms
// when samples are less than a second apart.
func soakTime(at, every time.Duration) time.Duration {
	if every < time.Second {
		return at.Round(10 * time.Millisecond)
	}
	return at.Round(time.Second)
}
