package main

import (
	"context"
)

// ingestResults are the ingest phase's ladders.
type ingestResults struct {
	// Classic: the bare receivers and the collector on one stream of
	// classic messages (one event each).
	Classic []ladder `json:"classic"`
	// Packed: the collector on packed messages of PackedPerMsg events,
	// in events per second.
	Packed       ladder `json:"packed"`
	PackedPerMsg int    `json:"packed_events_per_message"`
	// Common: every receiver at the same rate, for CPU per message side by
	// side (the statsd phase adds Telegraf's).
	Common     []ladder `json:"common"`
	CommonRate float64  `json:"common_rate_per_s"`
}

const commonRate = 50_000

func ingestPhase(ctx context.Context, o options, self, work string, logf func(string, ...any)) (*ingestResults, error) {
	res := &ingestResults{PackedPerMsg: 100, CommonRate: commonRate}
	classic, err := classicStream(1 << 18)
	if err != nil {
		return nil, err
	}
	bb, err := startBare(self, o.cpus, "batch")
	if err != nil {
		return nil, err
	}
	defer bb.Close()
	bf, err := startBare(self, o.cpus, "frames")
	if err != nil {
		return nil, err
	}
	defer bf.Close()
	gs, err := startCollector(o.collectd, work, o.cpus)
	if err != nil {
		return nil, err
	}
	defer gs.Close()
	cs := []contender{{"bare PULL (batched)", bb}, {"bare PULL (per frame)", bf}, {"gstats", gs}}

	res.Common, err = runLadders(ctx, "msg", cs, classic, []float64{commonRate}, o.step, false, logf)
	if err != nil {
		return nil, err
	}
	rates := []float64{100e3, 200e3, 400e3, 600e3, 800e3, 1e6, 1.2e6, 1.4e6, 1.6e6, 1.8e6, 2e6, 2.4e6, 2.8e6, 3.2e6}
	if o.quick {
		rates = []float64{200e3, 800e3, 1.6e6}
	}
	if res.Classic, err = runLadders(ctx, "msg", cs, classic, rates, o.step, false, logf); err != nil {
		return nil, err
	}

	packed, err := packedStream(1<<12, res.PackedPerMsg, false, 0)
	if err != nil {
		return nil, err
	}
	prates := []float64{1e6, 2e6, 4e6, 6e6, 8e6, 10e6, 12e6, 16e6}
	if o.quick {
		prates = []float64{1e6}
	}
	pl, err := runLadders(ctx, "event", []contender{{"gstats (packed)", gs}}, packed, prates, o.step, true, logf)
	if err != nil {
		return nil, err
	}
	res.Packed = pl[0]
	return res, nil
}
