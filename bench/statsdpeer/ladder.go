package statsdpeer

import (
	"context"
	"fmt"
	"time"
)

// DefaultStep is how long each ladder step sends when Ladder is given 0.
const DefaultStep = 2 * time.Second

// DefaultRates are the ladder's target rates (timings per second) when
// Ladder is given none.
func DefaultRates() []int {
	return []int{25_000, 50_000, 75_000, 100_000, 150_000, 200_000, 300_000}
}

// LadderResult is a run of Steps at increasing rates.
type LadderResult struct {
	Steps []StepResult
	// MaxLossFree is the highest target rate whose step was loss-free
	// (StepResult.LossFree), or 0 when none was.
	MaxLossFree int
}

// Ladder runs one Step of duration d (DefaultStep when 0) at each rate in
// rates (DefaultRates when empty), in order, and stops after the second
// step that was not loss-free.
func (p *Peer) Ladder(ctx context.Context, rates []int, d time.Duration, durations []float64) (LadderResult, error) {
	if len(rates) == 0 {
		rates = DefaultRates()
	}
	if d == 0 {
		d = DefaultStep
	}
	return climb(rates, func(rate int) (StepResult, error) { return p.Step(ctx, rate, d, durations) })
}

// climb runs step at each rate in order and stops after the second step
// that was not loss-free: the ladder's rule, apart from Telegraf.
func climb(rates []int, step func(rate int) (StepResult, error)) (LadderResult, error) {
	var res LadderResult
	lossy := 0
	for _, rate := range rates {
		s, err := step(rate)
		if err != nil {
			return res, fmt.Errorf("ladder step at %d/s: %w", rate, err)
		}
		res.Steps = append(res.Steps, s)
		if s.LossFree() {
			res.MaxLossFree = max(res.MaxLossFree, rate)
			continue
		}
		if lossy++; lossy == 2 {
			break
		}
	}
	return res, nil
}
