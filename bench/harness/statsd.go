package main

import (
	"context"
	"fmt"
	"os/exec"
	"strings"

	"github.com/gstats/gstats/bench/statsdpeer"
)

// statsdResults are Telegraf statsd's figures: the peer.
type statsdResults struct {
	Version string `json:"version"`
	Ladder  ladder `json:"ladder"`
	Common  step   `json:"common"`
}

// telegrafVersion is the Telegraf version go.mod requires.
func telegrafVersion(ctx context.Context) string {
	out, err := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Version}}", "github.com/influxdata/telegraf").Output()
	if err != nil {
		return "(unknown version)"
	}
	return strings.TrimSpace(string(out))
}

// fromPeer turns one statsd step into the harness's step. What the kernel
// dropped at statsd's socket counts as lost: UDP has no queue to fall
// behind in.
func fromPeer(r statsdpeer.StepResult) step {
	s := step{
		Target:   float64(r.Rate),
		Achieved: r.Achieved,
		Sent:     r.Sent,
		Dropped:  r.SendErrors,
		Received: r.Received,
		CPU:      r.CPU,
		Elapsed:  r.Elapsed,
		LossFree: r.LossFree(),
	}
	s.CPUPerMsg = float64(r.CPUPerMessage().Nanoseconds())
	return s
}

func statsdPhase(ctx context.Context, o options, work string, logf func(string, ...any)) (*statsdResults, error) {
	res := &statsdResults{Version: telegrafVersion(ctx)}
	peer, err := statsdpeer.Start(ctx, o.telegraf, work, o.cpus)
	if err != nil {
		return nil, err
	}
	defer peer.Close()
	durations := accuracySample(100_000)
	c, err := peer.Step(ctx, commonRate, o.step, durations)
	if err != nil {
		return nil, fmt.Errorf("statsd at %d/s: %w", commonRate, err)
	}
	res.Common = fromPeer(c)
	logf("Telegraf statsd %9d/s: sent %d, received %d, %0.f ns CPU/timing", commonRate, c.Sent, c.Received, res.Common.CPUPerMsg)
	rates := []int{10_000, 25_000, 50_000, 75_000, 100_000, 150_000, 200_000}
	if o.quick {
		rates = []int{10_000, 50_000}
	}
	l, err := peer.Ladder(ctx, rates, o.step, durations)
	if err != nil {
		return nil, fmt.Errorf("statsd ladder: %w", err)
	}
	res.Ladder = ladder{Name: "Telegraf statsd (UDP)", Unit: "timing", MaxLossFree: float64(l.MaxLossFree)}
	for _, r := range l.Steps {
		s := fromPeer(r)
		res.Ladder.Steps = append(res.Ladder.Steps, s)
		logf("%-24s %9.0f/s: achieved %9.0f/s, sent %9d, received %9d (kernel drops %d), %6.0f ns CPU/timing, loss-free %v",
			res.Ladder.Name, s.Target, s.Achieved, s.Sent, s.Received, r.KernelDrops, s.CPUPerMsg, s.LossFree)
	}
	return res, nil
}

// statsdRuns is how many times statsd's percentiles are taken: it samples
// at random (unseeded), so one run says little.
const statsdRuns = 3

// statsdAccuracy feeds the sample to Telegraf statsd, statsdRuns times.
func statsdAccuracy(ctx context.Context, o options, work string, ds []float64, a *accuracyResults, logf func(string, ...any)) error {
	a.StatsdNote = fmt.Sprintf("Telegraf %s's statsd input on its defaults (it keeps a random sample of `percentile_limit` = 1000 values per interval), fed every duration over its TCP listener into one aggregation, %d runs", telegrafVersion(ctx), statsdRuns)
	for range statsdRuns {
		r, err := statsdpeer.Percentiles(ctx, o.telegraf, work, ds)
		if err != nil {
			return fmt.Errorf("statsd percentiles: %w", err)
		}
		run := statsdRun{P: []float64{r.P50, r.P90, r.P99}, Count: r.Count}
		for i := range run.P {
			run.Err = append(run.Err, relErr(run.P[i], a.Exact[i]))
		}
		a.Statsd = append(a.Statsd, run)
		logf("statsd percentiles %v (error %% %v), count %d", run.P, run.Err, run.Count)
	}
	return nil
}
