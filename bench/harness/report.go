package main

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// targets of the report, as ratios and bounds measured in the same run.
const (
	targetBareRatio    = 0.85
	targetStatsdFactor = 5
	targetCPUPerMsgNS  = 1000
	targetStatsMS      = 1.0
	targetStatsGrowth  = 1.5
	targetRSSMiB       = 64
	targetRelErrPct    = 1.0
	targetHooksCPUUS   = 8
	targetGunicornPct  = 95
	targetMiddlewareNS = 250
	targetStateLockUS  = 100
	// targetDurations is the window the STATS and RSS targets are about:
	// 600 s at 10 k requests/s.
	targetDurations = 6e6
	// targetSoak is how long the soak must run to judge its target.
	targetSoak = 10 * time.Minute
)

// Target identifiers, in the order of the report's table.
const (
	tIngestBare = iota
	tIngestStatsd
	tCPUPerMsg
	tStats
	tStatsGrowth
	tRSS
	tAccuracy
	tMiddleware
	tHooks
	tGunicorn
	tSoak
	tStateLock
	tBenchmarks
	nTargets
)

// targetDef is a target as the report's table names it, and its section.
type targetDef struct {
	name    string
	section string
}

// targets are every target of the report. Each is listed in every report:
// one whose figures are missing reads "not measured" and counts as missed.
var targets = [nTargets]targetDef{
	tIngestBare:   {"ingest ≥ 85 % of the bare receiver's capacity (CPU per message at equal rates, and loss-free rate)", "1"},
	tIngestStatsd: {"ingest ≥ 5× Telegraf statsd's loss-free rate", "1"},
	tCPUPerMsg:    {"≤ 1 µs collector CPU per message", "1"},
	tStats:        {"STATS ≤ 1 ms, one prefix, 6000000 durations", "2"},
	tStatsGrowth:  {"STATS at 6e6 durations ≤ 1.5× its time at 1e3 (one prefix)", "2"},
	tRSS:          {"RSS ≤ 64 MiB with 6000000 durations, one prefix", "3"},
	tAccuracy:     {"percentile relative error ≤ 1 %", "4"},
	tMiddleware:   {"Go middleware ≤ 250 ns and 0 allocations per request", "5"},
	tHooks:        {"Python hooks ≤ 8 µs CPU per request pair", "5"},
	tGunicorn:     {"gunicorn ≥ 95 % of its requests/s without hooks", "5"},
	tSoak:         {"Soak: 10 min at half the max loss-free rate, RSS, fds and goroutines flat, nothing lost", "6"},
	tStateLock:    {"state file write holds the window lock ≤ 0.1 ms per prefix (mean)", "7"},
	tBenchmarks:   {"every Go benchmark of the repository ran", "8"},
}

// verdict is what the run says of one target.
type verdict struct {
	set      bool
	measured string
	met      bool
}

// Verdicts as the table writes them.
const (
	verdictMet         = "met"
	verdictMissed      = "**missed**"
	verdictNotMeasured = "**not measured** (missed)"
)

// report accumulates the markdown text and the targets' verdicts.
type report struct {
	b        strings.Builder
	verdicts [nTargets]verdict
}

func (r *report) p(format string, a ...any) { fmt.Fprintf(&r.b, format+"\n", a...) }

// target records a measured target. A target recorded twice keeps its
// first verdict.
func (r *report) target(id int, measured string, ok bool) {
	if !r.verdicts[id].set {
		r.verdicts[id] = verdict{set: true, measured: measured, met: ok}
	}
}

// unmeasured records that a target has no figure in this run: it is missed.
func (r *report) unmeasured(id int, why string) {
	if !r.verdicts[id].set {
		r.verdicts[id] = verdict{set: true, measured: "not measured: " + why}
	}
}

// targetRow is one row of the targets table.
type targetRow struct {
	Name, Measured, Verdict, Section string
	Met                              bool
}

// rows lists every target, in order: one nothing recorded reads "not
// measured".
func (r *report) rows() []targetRow {
	out := make([]targetRow, 0, nTargets)
	for id, def := range targets {
		v := r.verdicts[id]
		row := targetRow{Name: def.name, Section: def.section, Measured: v.measured, Met: v.set && v.met}
		switch {
		case !v.set:
			row.Measured = "not measured: no figure in this run"
			row.Verdict = verdictNotMeasured
		case v.met:
			row.Verdict = verdictMet
		case strings.HasPrefix(v.measured, "not measured"):
			row.Verdict = verdictNotMeasured
		default:
			row.Verdict = verdictMissed
		}
		out = append(out, row)
	}
	return out
}

// misses lists the targets not met, each with what was measured.
func misses(rows []targetRow) []string {
	var out []string
	for _, t := range rows {
		if !t.Met {
			out = append(out, t.Name+": "+t.Measured)
		}
	}
	return out
}

// capacity is the rate one CPU sustains at ns a message, rounded.
func capacity(ns float64) string {
	v := 1e9 / ns
	if v >= 1e6 {
		return fmt.Sprintf("%.2f M/s", v/1e6)
	}
	return fmt.Sprintf("%.0f k/s", v/1e3)
}

func rate(v float64) string {
	switch {
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', -1, 64) + " M/s"
	case v >= 1e3:
		return strconv.FormatFloat(v/1e3, 'f', -1, 64) + " k/s"
	}
	return strconv.FormatFloat(v, 'f', 0, 64) + "/s"
}

// writeReport renders docs/PERFORMANCE.md and returns it with every
// target's row, in order. benches are the repository's benchmark
// functions (listBenchmarks), each of which should have run; nil when they
// were not listed.
func writeReport(res results, gb goBench, benches []benchFunc) (string, []targetRow) {
	var body report
	body.ingest(res, gb)
	body.queries(gb, res)
	body.memory(res, gb)
	body.accuracy(res)
	body.clients(gb)
	body.soak(res)
	body.stateFile(gb)
	body.otherBenchmarks(gb, benches)
	body.profiling()
	rows := body.rows()

	var r report
	r.p("# gstats performance")
	r.p("")
	r.p("Written by `make bench` (`bench/harness`) from one run on %s; every ratio compares figures", res.Started.Format("2006-01-02"))
	r.p("taken in that same run, side by side, because the host's speed drifts between runs.")
	r.p("Raw results of the run are in `bench-results.json` and `bench.out` (not committed).")
	r.p("")
	r.p("## Targets")
	r.p("")
	r.p("Every target is listed in every run. One whose figures are missing reads **not measured** and")
	r.p("counts as missed; `make bench` fails when any target is missed, after writing this file.")
	r.p("")
	r.targetTable(rows)
	r.p("")
	m := res.Machine
	r.p("## Machine")
	r.p("")
	r.p("- CPU: %s, %d logical CPUs (%s)", m.CPU, m.CPUs, orNone(m.Virtual, "bare metal or unknown"))
	r.p("- memory: %s; kernel %s; %s", m.Mem, m.Kernel, m.OS)
	r.p("- %s, libzmq %s", m.Go, m.Libzmq)
	r.p("- the harness and its senders pinned to CPU 0 (`taskset -c 0`), every receiver (bare PULL, gstats-collectd, Telegraf) to CPU %s; each receiver is its own process, so its CPU time (all its threads, from `/proc/PID/task/*/schedstat`) is its own", res.ReceiverCPUs)
	r.p("- run from %s to %s UTC; ladder steps of %s", res.Started.Format("15:04:05"), res.Finished.Format("15:04:05"), res.Step)
	r.p("")
	r.p("## Reproduce")
	r.p("")
	r.p("```sh")
	r.p("make bench          # installs what it needs, runs everything below, rewrites this file")
	r.p("# or piece by piece:")
	r.p("make build && go build -o bin/gstats-bench ./bench/harness")
	r.p("make bench-go bench-python 2>&1 | tee bench.out")
	r.p("taskset -c 0 bin/gstats-bench run -collectd bin/gstats-collectd -go-bench bench.out -report docs/PERFORMANCE.md -readme plugins/inputs/gstats/README.md")
	r.p("taskset -c 0 bin/gstats-bench run -quick -report '' -phases ingest   # a smoke run of one phase")
	r.p("taskset -c 0 bin/gstats-bench run -phases soak -soak-rate 600000 -report '' -json soak.json   # the soak alone")
	r.p("```")
	r.p("")
	r.b.WriteString(body.b.String())
	return r.b.String(), rows
}

// targetTable writes the targets table.
func (r *report) targetTable(rows []targetRow) {
	r.p("| target | measured | verdict | section |")
	r.p("| --- | --- | --- | --- |")
	for _, t := range rows {
		r.p("| %s | %s | %s | %s |", t.Name, t.Measured, t.Verdict, t.Section)
	}
}

// targetsText is the targets table alone, for the end of a run.
func targetsText(rows []targetRow) string {
	var r report
	r.targetTable(rows)
	return r.b.String()
}

func orNone(s, none string) string {
	if s == "" || s == "none" {
		return none
	}
	return s
}

func (r *report) ladderTable(ls []ladder) {
	r.p("| receiver | rate asked | achieved | sent | dropped by sender | received | behind at end | CPU ns/%s (libzmq threads) | loss-free |", ls[0].Unit)
	r.p("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
	for _, l := range ls {
		for _, s := range l.Steps {
			r.p("| %s | %s | %.0f | %d | %d | %d | %d | %.0f (%.0f) | %s |", l.Name, rate(s.Target), s.Achieved, s.Sent, s.Dropped, s.Received, s.Behind, s.CPUPerMsg, s.ZMQPerMsg, yesNo(s.LossFree))
		}
	}
	r.p("")
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func maxNote(l ladder) string {
	s := rate(l.MaxLossFree)
	if l.MaxLossFree == 0 {
		s = "none of the rates"
	}
	if l.SenderLimited {
		s = "≥ " + s + " (the sender's limit)"
	}
	return s
}

// stepAt returns the step of l at its highest loss-free rate.
func stepAt(l ladder, rate float64) (step, bool) {
	for _, s := range l.Steps {
		if s.Target == rate {
			return s, true
		}
	}
	return step{}, false
}

func findLadder(ls []ladder, name string) (ladder, bool) {
	for _, l := range ls {
		if l.Name == name {
			return l, true
		}
	}
	return ladder{}, false
}

// bareComparison is the collector's ingest capacity against the bare
// receiver's.
type bareComparison struct {
	steps        int     // steps compared at equal rates
	from, to     float64 // their rates
	bareNS, gsNS float64 // CPU per message over them
	measured     string
	met          bool
}

// compareBare judges the collector against the bare receiver. The highest
// loss-free rates cannot tell them apart when the one sender CPU limits
// both, so the verdict rests on CPU per message at equal rates: over the
// steps both held loss-free at the same achieved rate (within 5 %), from
// half the highest such rate up, capacity = 1e9 / CPU ns per message. It
// also holds the loss-free rates against each other, which can only show a
// miss (the bare receiver held a rate the collector lost at): a rate
// ratio of 100 % with both sender-bound says nothing.
func compareBare(bare, gs ladder) bareComparison {
	type pair struct{ b, g step }
	var common []pair
	for _, b := range bare.Steps {
		g, ok := stepAt(gs, b.Target)
		if !ok || !b.LossFree || !g.LossFree || b.Received == 0 || g.Received == 0 || b.Achieved <= 0 || g.Achieved <= 0 {
			continue
		}
		if math.Abs(b.Achieved-g.Achieved)/math.Max(b.Achieved, g.Achieved) > 0.05 {
			continue
		}
		common = append(common, pair{b, g})
	}
	var c bareComparison
	rateNote := ""
	rateOK := true
	if bare.MaxLossFree > 0 {
		rr := gs.MaxLossFree / bare.MaxLossFree
		rateOK = rr >= targetBareRatio
		rateNote = fmt.Sprintf("loss-free rate %s vs %s", maxNote(gs), maxNote(bare))
		switch {
		case !rateOK:
			rateNote = fmt.Sprintf("loss-free rate %.0f %% of the bare receiver's (%s vs %s)", 100*rr, maxNote(gs), maxNote(bare))
		case gs.SenderLimited && bare.SenderLimited:
			rateNote += ": both held the fastest stream one sender CPU produces, which tells them apart no further"
		}
	}
	if len(common) == 0 {
		c.measured = "not measured: no rate both held loss-free at the same achieved rate"
		if !rateOK { // missed all the same
			c.measured = rateNote + "; CPU per message not compared: no rate both held loss-free at the same achieved rate"
		} else if rateNote != "" {
			c.measured += "; " + rateNote
		}
		return c
	}
	top := common[len(common)-1].b.Target
	var bCPU, gCPU time.Duration
	var bN, gN int64
	for _, p := range common {
		if p.b.Target < top/2 {
			continue
		}
		if c.steps == 0 {
			c.from = p.b.Target
		}
		c.steps++
		c.to = p.b.Target
		bCPU += p.b.CPU
		gCPU += p.g.CPU
		bN += p.b.Received
		gN += p.g.Received
	}
	c.bareNS = float64(bCPU.Nanoseconds()) / float64(bN)
	c.gsNS = float64(gCPU.Nanoseconds()) / float64(gN)
	ratio := 0.0
	if c.gsNS > 0 {
		ratio = c.bareNS / c.gsNS
	}
	span := rate(c.from)
	if c.to != c.from {
		span += " to " + rate(c.to)
	}
	c.measured = fmt.Sprintf("%.0f %% by CPU per message at equal rates (bare %.0f vs gstats %.0f ns/msg, %d loss-free steps, %s)", 100*ratio, c.bareNS, c.gsNS, c.steps, span)
	if rateNote != "" {
		c.measured += "; " + rateNote
	}
	c.met = ratio >= targetBareRatio && rateOK
	return c
}

func (r *report) ingest(res results, gb goBench) {
	r.p("## 1. Ingest")
	r.p("")
	in := res.Ingest
	if in == nil {
		r.p("Not measured: the ingest phase did not run.")
		r.p("")
		r.unmeasured(tIngestBare, "the ingest phase did not run")
		r.unmeasured(tCPUPerMsg, "the ingest phase did not run")
		r.unmeasured(tIngestStatsd, "the ingest phase did not run")
		return
	}
	r.p("A sender paces a stream at a fixed rate for each step and drops what its socket refuses, as the")
	r.p("clients do (its send queue is 100 000 messages, so a drop means the receiver fell behind, not that")
	r.p("the sender's own CPU hiccuped). A step is **loss-free** when nothing was dropped, everything sent")
	r.p("was received, and no more than 100 ms of traffic was still queued when sending ended (a receiver")
	r.p("slower than the stream fills its queue and loses later). At each rate every receiver gets its step")
	r.p("in turn; a receiver leaves the ladder after its second lossy step, and the ladder ends when the")
	r.p("sender (one CPU) cannot keep the pace.")
	r.p("")
	r.p("The stream: classic messages, as the original hooks send them (a start, then a finish with a")
	r.p("log-normal duration and a status, over four prefixes; 2 or 3 frames each). The limit is a bare")
	r.p("PULL socket with the collector's socket options that only counts: **batched** receives as the")
	r.p("collector does (`internal/zbatch`: all queued messages in one cgo call); **per frame** receives")
	r.p("through the zmq4 binding's `RecvMessageBytes`, as the collector did before.")
	r.p("")
	r.p("### Highest loss-free rate")
	r.p("")
	r.p("| receiver | highest loss-free rate | CPU per message there |")
	r.p("| --- | ---: | ---: |")
	all := append([]ladder{}, in.Classic...)
	if res.Statsd != nil {
		all = append(all, res.Statsd.Ladder)
	}
	all = append(all, in.Packed)
	for _, l := range all {
		cpu := "–"
		if s, ok := stepAt(l, l.MaxLossFree); ok {
			cpu = fmt.Sprintf("%.0f ns/%s", s.CPUPerMsg, l.Unit)
		}
		r.p("| %s | %s | %s |", l.Name, maxNote(l), cpu)
	}
	r.p("")
	gs, okG := findLadder(in.Classic, "gstats")
	bare, okB := findLadder(in.Classic, "bare PULL (batched)")
	if okG && okB {
		c := compareBare(bare, gs)
		if c.steps > 0 {
			r.p("### gstats against the bare receiver")
			r.p("")
			r.p("Each receiver is pinned to its own CPU, so the CPU it spends per message bounds what it can take:")
			r.p("at most 10⁹ / (ns per message) messages per second. The sender has one CPU and may not outrun")
			r.p("either receiver, so their highest loss-free rates alone can read alike when the receivers are not.")
			r.p("The target compares them at equal rates: over the steps of the upper half of the rates both held")
			r.p("loss-free at the same achieved rate (within 5 %%), the bare receiver's CPU per message over the")
			r.p("collector's. Here, %d steps from %s to %s: bare %.0f ns/msg (≤ %s on one CPU), gstats %.0f ns/msg (≤ %s).",
				c.steps, rate(c.from), rate(c.to), c.bareNS, capacity(c.bareNS), c.gsNS, capacity(c.gsNS))
			r.p("")
		}
		r.target(tIngestBare, c.measured, c.met)
	} else {
		r.unmeasured(tIngestBare, "the ladders of gstats and of the bare receiver (batched) are missing")
	}
	if res.Statsd == nil {
		r.unmeasured(tIngestStatsd, "the statsd phase did not run")
	} else if !okG || gs.MaxLossFree == 0 {
		r.unmeasured(tIngestStatsd, "gstats held none of the rates loss-free")
	} else if sd := res.Statsd.Ladder.MaxLossFree; sd > 0 {
		f := gs.MaxLossFree / sd
		r.target(tIngestStatsd, fmt.Sprintf("%.1f× (%s vs %s)", f, rate(gs.MaxLossFree), rate(sd)), f >= targetStatsdFactor)
	} else {
		r.unmeasured(tIngestStatsd, "statsd lost traffic at every rate tried")
	}
	if s, ok := stepAt(gs, gs.MaxLossFree); okG && ok && gs.MaxLossFree > 0 {
		r.target(tCPUPerMsg, fmt.Sprintf("%.0f ns at %s (classic); see the CPU table for every rate", s.CPUPerMsg, rate(s.Target)), s.CPUPerMsg <= targetCPUPerMsgNS)
	} else {
		r.unmeasured(tCPUPerMsg, "gstats held none of the rates loss-free")
	}
	r.p("### CPU per message at the same rate (%s)", rate(in.CommonRate))
	r.p("")
	r.p("| receiver | CPU ns per message | of which libzmq's threads |")
	r.p("| --- | ---: | ---: |")
	for _, l := range in.Common {
		if len(l.Steps) > 0 {
			r.p("| %s | %.0f | %.0f |", l.Name, l.Steps[0].CPUPerMsg, l.Steps[0].ZMQPerMsg)
		}
	}
	if res.Statsd != nil {
		r.p("| Telegraf statsd (UDP) | %.0f | – |", res.Statsd.Common.CPUPerMsg)
	}
	r.p("")
	r.p("At low rates each message costs a wake-up of libzmq's I/O thread and of the receiving thread; the")
	r.p("bare receiver pays them too. The collector lets messages gather for %s after it empties its", "5 ms")
	r.p("queue, so its own thread wakes at most ~200 times a second under steady traffic. Packed messages,")
	r.p("which the gstats clients send, carry up to a few hundred events per wake-up.")
	r.p("")
	r.p("### Every step")
	r.p("")
	r.ladderTable(in.Classic)
	r.ladderTable([]ladder{in.Packed})
	if res.Statsd != nil {
		r.p("Telegraf %s, `inputs.statsd` over UDP, one timing per datagram as gunicorn's statsd instrumentation sends them:", res.Statsd.Version)
		r.p("")
		r.ladderTable([]ladder{res.Statsd.Ladder})
	}
	if names := gb.matching("BenchmarkIngest/"); len(names) > 0 {
		r.p("### Draining a backlog (Go benchmark `BenchmarkIngest`, in one process)")
		r.p("")
		r.p("Each receiver drains the same backlog of classic messages, queued before it binds; this is")
		r.p("capacity with the sender's I/O thread on the other CPU, not a sustained rate.")
		r.p("")
		r.p("| backlog | bare batched msgs/s | bare per frame msgs/s | gstats msgs/s | gstats / bare batched | lost |")
		r.p("| --- | ---: | ---: | ---: | ---: | ---: |")
		for _, n := range names {
			m := gb.metrics[n]
			r.p("| %s | %.0f | %.0f | %.0f | %.2f | %.0f |", strings.TrimPrefix(n, "BenchmarkIngest/msgs="), m["bare_msgs/s"], m["bare_per_frame_msgs/s"], m["gstats_msgs/s"], m["ratio"], m["lost"])
		}
		r.p("")
	}
}

// grid is one BenchmarkStatsGrid entry.
type grid struct {
	durations float64
	prefixes  float64
	op        string
	us        float64
	m         map[string]float64
}

func statsGrid(gb goBench) []grid {
	var out []grid
	for _, n := range gb.matching("BenchmarkStatsGrid/") {
		g := grid{m: gb.metrics[n]}
		for _, part := range strings.Split(strings.TrimPrefix(n, "BenchmarkStatsGrid/"), "/") {
			k, v, _ := strings.Cut(part, "=")
			switch k {
			case "durations":
				g.durations, _ = strconv.ParseFloat(v, 64)
			case "prefixes":
				g.prefixes, _ = strconv.ParseFloat(v, 64)
			case "op":
				g.op = v
			}
		}
		g.us = g.m["us/"+g.op]
		out = append(out, g)
	}
	return out
}

func (r *report) queries(gb goBench, res results) {
	r.p("## 2. STATS and Gather time")
	r.p("")
	gs := statsGrid(gb)
	if len(gs) == 0 {
		r.p("Not measured: BenchmarkStatsGrid is not in the Go benchmarks' output.")
		r.p("")
		r.unmeasured(tStats, "BenchmarkStatsGrid is not in the Go benchmarks' output")
	}
	r.statsGrowth(gb)
	if len(gs) == 0 {
		r.statsRTT(res)
		return
	}
	r.p("`BenchmarkStatsGrid` (Go, in process): a whole STATS reply (window query and JSON, as the control")
	r.p("socket sends it) and a whole Gather (the metrics Telegraf receives), with the durations spread")
	r.p("evenly over the default 600 s window of 60 slots, split evenly over the prefixes. 6e6 durations are")
	r.p("600 s at 10 k requests/s.")
	r.p("")
	prefixes := map[float64]bool{}
	durs := map[float64]bool{}
	cell := map[[3]string]grid{}
	for _, g := range gs {
		prefixes[g.prefixes] = true
		durs[g.durations] = true
		cell[[3]string{g.op, fmt.Sprint(g.durations), fmt.Sprint(g.prefixes)}] = g
	}
	ps := keys(prefixes)
	ds := keys(durs)
	for _, op := range []string{"stats", "gather"} {
		r.p("| %s, µs (median call) | %s |", op, joinf(ps, func(p float64) string { return fmt.Sprintf("%.0f prefixes", p) }))
		r.p("| --- |%s", strings.Repeat(" ---: |", len(ps)))
		for _, d := range ds {
			row := []string{}
			for _, p := range ps {
				if g, ok := cell[[3]string{op, fmt.Sprint(d), fmt.Sprint(p)}]; ok {
					row = append(row, fmt.Sprintf("%.1f", g.us))
				} else {
					row = append(row, "–")
				}
			}
			r.p("| %.0f durations | %s |", d, strings.Join(row, " | "))
		}
		r.p("")
	}
	if hi, ok := cell[[3]string{"stats", fmt.Sprint(float64(targetDurations)), "1"}]; ok {
		r.target(tStats, fmt.Sprintf("%.1f µs", hi.us), hi.us <= 1000*targetStatsMS)
	} else {
		r.unmeasured(tStats, "BenchmarkStatsGrid has no cell of one prefix with 6e6 durations")
	}
	r.statsRTT(res)
}

// statsGrowth reports BenchmarkStatsGrowth: 1e3 and 6e6 durations side by
// side. The grid's cells, taken one after the other, are no substitute.
func (r *report) statsGrowth(gb goBench) {
	g, ok := gb.get("BenchmarkStatsGrowth", "growth")
	small, okS := gb.get("BenchmarkStatsGrowth", "us/stats_1e3")
	large, okL := gb.get("BenchmarkStatsGrowth", "us/stats_6e6")
	if !ok || !okS || !okL {
		r.unmeasured(tStatsGrowth, "BenchmarkStatsGrowth is not in the Go benchmarks' output")
		return
	}
	r.p("`BenchmarkStatsGrowth` asks STATS of one prefix with 1e3 and with 6e6 durations in turn, in the")
	r.p("same loop, so that the host's drifts hit both alike: medians %.2f µs and %.2f µs, growth %.2f×.", small, large, g)
	r.p("(The grid's cells are taken one after the other; at a few microseconds a call, their ratios move")
	r.p("with the host by more than the window's own growth.)")
	r.p("")
	r.target(tStatsGrowth, fmt.Sprintf("%.2f× (%.2f µs vs %.2f µs, side by side)", g, large, small), g <= targetStatsGrowth)
}

// statsRTT is the STATS round trip measured from outside in the memory
// phase.
func (r *report) statsRTT(res results) {
	if len(res.Memory) == 0 {
		return
	}
	r.p("The STATS round trip measured from outside, over the control socket (a REQ socket already")
	r.p("connected), against gstats-collectd in the memory runs below:")
	r.p("")
	r.p("| durations | prefixes | STATS round trip | reply bytes |")
	r.p("| ---: | ---: | ---: | ---: |")
	for _, m := range res.Memory {
		r.p("| %d | %d | %s | %d |", m.Durations, m.Prefixes, m.StatsRTT.Round(time.Microsecond), m.ReplyBytes)
	}
	r.p("")
}

func keys(m map[float64]bool) []float64 {
	out := make([]float64, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Float64s(out)
	return out
}

func joinf(xs []float64, f func(float64) string) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = f(x)
	}
	return strings.Join(s, " | ")
}

func (r *report) memory(res results, gb goBench) {
	r.p("## 3. Memory")
	r.p("")
	if len(res.Memory) == 0 {
		r.p("Not measured: the memory phase did not run.")
		r.p("")
		r.unmeasured(tRSS, "the memory phase did not run")
	} else {
		r.p("gstats-collectd on its defaults but for a %s window (still 60 slots) and `max_prefixes`, fed", memWindow)
		r.p("finishes in packed messages, paced over %s so they spread over the slots as 10 k requests/s", memFill)
		r.p("spread over 600 s. RSS read from `/proc/PID/status` once everything was accepted and STATS answered.")
		r.p("")
		r.p("| durations | prefixes | RSS idle | RSS filled | peak RSS |")
		r.p("| ---: | ---: | ---: | ---: | ---: |")
		for _, m := range res.Memory {
			r.p("| %d | %d | %.1f MiB | %.1f MiB | %.1f MiB |", m.Durations, m.Prefixes, mib(m.RSSIdle), mib(m.RSS), mib(m.Peak))
		}
		r.p("")
		var best *memPoint
		for i, m := range res.Memory {
			if m.Prefixes == 1 && (best == nil || m.Durations > best.Durations) {
				best = &res.Memory[i]
			}
		}
		switch {
		case best == nil:
			r.unmeasured(tRSS, "no memory run with one prefix")
		case best.Durations < targetDurations:
			r.unmeasured(tRSS, fmt.Sprintf("the largest run with one prefix held %d durations", best.Durations))
		default:
			r.target(tRSS, fmt.Sprintf("%.1f MiB (peak %.1f MiB)", mib(best.RSS), mib(best.Peak)), mib(best.Peak) <= targetRSSMiB)
		}
	}
	if names := gb.matching("BenchmarkPrefix/"); len(names) > 0 {
		r.p("Memory per prefix (Go benchmark `BenchmarkPrefix`: live heap of the window divided by the prefixes):")
		r.p("")
		r.p("| prefix | bytes |")
		r.p("| --- | ---: |")
		for _, n := range names {
			r.p("| %s | %.0f |", strings.TrimPrefix(n, "BenchmarkPrefix/"), gb.metrics[n]["B/prefix"])
		}
		r.p("")
	}
}

func (r *report) accuracy(res results) {
	r.p("## 4. Percentile accuracy")
	r.p("")
	a := res.Accuracy
	if a == nil || len(a.Percentiles) == 0 || len(a.GstatsErr) != len(a.Percentiles) {
		r.p("Not measured: the accuracy phase did not run.")
		r.p("")
		r.unmeasured(tAccuracy, "the accuracy phase did not run")
		return
	}
	r.p("%d log-normal durations (median %g ms, σ %g), the same sample for both; exact values are the", a.N, a.Median, a.Sigma)
	r.p("sorted sample at index ⌊q·(n−1)⌋. gstats: one window holding all of them; Telegraf statsd: %s.", orNone(a.StatsdNote, "not measured"))
	r.p("")
	r.p("| percentile | exact ms | gstats ms | gstats error |%s", strings.Repeat(" statsd ms | statsd error |", len(a.Statsd)))
	r.p("| --- | ---: | ---: | ---: |%s", strings.Repeat(" ---: | ---: |", len(a.Statsd)))
	worst := 0.0
	for i, p := range a.Percentiles {
		row := fmt.Sprintf("| p%g | %.3f | %.3f | %.3f %% |", p, a.Exact[i], a.Gstats[i], a.GstatsErr[i])
		for _, run := range a.Statsd {
			row += fmt.Sprintf(" %.3f | %.2f %% |", run.P[i], run.Err[i])
		}
		r.p("%s", row)
		worst = math.Max(worst, a.GstatsErr[i])
	}
	r.p("")
	if len(a.Statsd) > 0 {
		r.p("Telegraf statsd's error changes from run to run: it keeps 1000 values, each new value replacing")
		r.p("one at random, so its percentiles describe mostly the last few thousand durations.")
		r.p("")
	}
	ps := make([]string, len(a.Percentiles))
	for i, p := range a.Percentiles {
		ps[i] = fmt.Sprintf("p%g", p)
	}
	r.target(tAccuracy, fmt.Sprintf("%.3f %% at worst (%s)", worst, strings.Join(ps, "/")), worst <= targetRelErrPct)
}

func (r *report) clients(gb goBench) {
	r.p("## 5. Clients")
	r.p("")
	r.p("Go client (`client/`, `go test -bench . ./client/`): cost per request of the net/http middleware.")
	r.p("")
	r.p("| benchmark | ns/op | allocs/op | dropped/op |")
	r.p("| --- | ---: | ---: | ---: |")
	worst, allocs := 0.0, 0.0
	middleware, complete := 0, true
	names := append(gb.matching("BenchmarkMiddleware"), gb.matching("BenchmarkSender")...)
	for _, n := range names {
		m := gb.metrics[n]
		r.p("| %s | %.1f | %.0f | %.3f |", strings.TrimPrefix(n, "Benchmark"), m["ns/op"], m["allocs/op"], m["dropped/op"])
		if strings.HasPrefix(n, "BenchmarkMiddleware") {
			middleware++
			ns, okNS := m["ns/op"]
			a, okA := m["allocs/op"]
			complete = complete && okNS && okA
			worst = math.Max(worst, ns)
			allocs = math.Max(allocs, a)
		}
	}
	r.p("")
	switch {
	case middleware == 0:
		r.unmeasured(tMiddleware, "no middleware benchmarks in the output")
	case !complete:
		r.unmeasured(tMiddleware, "the middleware benchmarks lack ns/op or allocs/op (run with -benchmem)")
	default:
		r.target(tMiddleware, fmt.Sprintf("%.0f ns at worst, %.0f allocs", worst, allocs), worst <= targetMiddlewareNS && allocs == 0)
	}
	r.p("Python hooks (`python/bench/bench_hooks.py`) and gunicorn with and without them")
	r.p("(`python/bench/bench_gunicorn.sh sync 1`, wrk):")
	r.p("")
	r.p("```")
	for _, l := range gb.lines {
		r.p("%s", l)
	}
	r.p("```")
	r.p("")
	if v, ok := gb.pythonFigure("hooks: ", `([\d.]+) us CPU per pair`); ok {
		r.target(tHooks, fmt.Sprintf("%.2f µs", v), v <= targetHooksCPUUS)
	} else {
		r.unmeasured(tHooks, "no Python figures in the output")
	}
	if v, ok := gb.pythonFigure("side by side ON/OFF", `median ([\d.]+) %`); ok {
		r.target(tGunicorn, fmt.Sprintf("%.1f %% (side by side, median)", v), v >= targetGunicornPct)
	} else {
		r.unmeasured(tGunicorn, "no gunicorn figures in the output")
	}
}

// stateFigures are what BenchmarkStateWrite and BenchmarkStateRestore
// report.
type stateFigures struct {
	fileBytes, writeMS, writeCPUMS, lockUS, maxLockUS float64
	restoreMS, restoreCPUMS                           float64
	write, restore                                    bool // found, with every figure
}

// defaultStateInterval is the plugin's state_interval when it is not set.
const defaultStateInterval = 10 * time.Second

func stateBench(gb goBench) stateFigures {
	var f stateFigures
	var ok [7]bool
	f.fileBytes, ok[0] = gb.get("BenchmarkStateWrite", "bytes/file")
	f.writeMS, ok[1] = gb.get("BenchmarkStateWrite", "ms/write")
	f.writeCPUMS, ok[2] = gb.get("BenchmarkStateWrite", "cpu-ms/write")
	f.lockUS, ok[3] = gb.get("BenchmarkStateWrite", "µs/lock")
	f.maxLockUS, ok[4] = gb.get("BenchmarkStateWrite", "µs/max-lock")
	f.restoreMS, ok[5] = gb.get("BenchmarkStateRestore", "ms/restore")
	f.restoreCPUMS, ok[6] = gb.get("BenchmarkStateRestore", "cpu-ms/restore")
	f.write = ok[0] && ok[1] && ok[2] && ok[3] && ok[4]
	f.restore = ok[5] && ok[6]
	return f
}

// stateShare is the CPU share of one core a write every default interval
// takes, in percent.
func (f stateFigures) stateShare() float64 {
	return 100 * f.writeCPUMS / float64(defaultStateInterval.Milliseconds())
}

func (r *report) stateFile(gb goBench) {
	r.p("## 7. State file")
	r.p("")
	f := stateBench(gb)
	if !f.write && !f.restore {
		r.p("Not measured: BenchmarkStateWrite and BenchmarkStateRestore are not in the Go benchmarks' output.")
		r.p("")
		r.unmeasured(tStateLock, "BenchmarkStateWrite is not in the Go benchmarks' output")
		return
	}
	r.p("`BenchmarkStateWrite` and `BenchmarkStateRestore` (Go, in process): a collector with 1000 busy")
	r.p("prefixes (100 durations in each of 60 slots, 1000 raw durations each) writes its state file, and a")
	r.p("new window restores it. CPU time includes the garbage collector's. The plugin's README quotes")
	r.p("these figures (`make bench` rewrites its passage).")
	r.p("")
	r.p("| figure | value |")
	r.p("| --- | ---: |")
	if f.write {
		r.p("| file size | %.1f MB |", f.fileBytes/1e6)
		r.p("| write, elapsed | %.0f ms |", f.writeMS)
		r.p("| write, CPU | %.0f ms (%.1f %% of a core at the default `state_interval` of %s) |", f.writeCPUMS, f.stateShare(), defaultStateInterval)
		r.p("| window lock held per prefix, mean | %.1f µs |", f.lockUS)
		r.p("| window lock held per prefix, longest | %.0f µs (scheduling hiccups included) |", f.maxLockUS)
	}
	if f.restore {
		r.p("| restore, elapsed | %.0f ms |", f.restoreMS)
		r.p("| restore, CPU | %.0f ms |", f.restoreCPUMS)
	}
	r.p("")
	if f.write {
		r.target(tStateLock, fmt.Sprintf("%.1f µs (longest %.0f µs)", f.lockUS, f.maxLockUS), f.lockUS <= targetStateLockUS)
	} else {
		r.unmeasured(tStateLock, "BenchmarkStateWrite is not in the Go benchmarks' output")
	}
}

// stateCostText is the plugin README's passage on the state file's cost,
// from this run's figures.
func stateCostText(gb goBench, date time.Time) string {
	f := stateBench(gb)
	if !f.write || !f.restore {
		return "1000 busy prefixes (100 durations in each of 60 slots, 1000 raw durations each): not measured by " +
			"the last `make bench` (" + date.Format("2006-01-02") + "); see [docs/PERFORMANCE.md](../../../docs/PERFORMANCE.md)."
	}
	return fmt.Sprintf("1000 busy prefixes (100 durations in each of 60 slots, 1000 raw durations each) make a file of "+
		"%.1f MB, written in %s of CPU time (%.1f %% of a core at the default interval); the window's lock is held "+
		"for one prefix at a time (%.0f µs on average), so ingest never waits for a whole write. Restoring it takes "+
		"%s of CPU time at start (`BenchmarkStateWrite` and `BenchmarkStateRestore` on %s; `make bench` writes these "+
		"figures, see [docs/PERFORMANCE.md](../../../docs/PERFORMANCE.md#7-state-file)).",
		f.fileBytes/1e6, seconds(f.writeCPUMS), f.stateShare(), f.lockUS, seconds(f.restoreCPUMS), date.Format("2006-01-02"))
}

// seconds writes milliseconds as seconds to two significant digits.
func seconds(ms float64) string {
	return strconv.FormatFloat(ms/1000, 'g', 2, 64) + " s"
}

// covered are the benchmarks the sections above report on.
var covered = []string{"BenchmarkIngest", "BenchmarkStatsGrid", "BenchmarkStatsGrowth", "BenchmarkPrefix",
	"BenchmarkMiddleware", "BenchmarkMiddlewareParallel", "BenchmarkSender", "BenchmarkStateWrite", "BenchmarkStateRestore"}

func (r *report) otherBenchmarks(gb goBench, benches []benchFunc) {
	r.p("## 8. Every Go benchmark")
	r.p("")
	r.p("`make bench` (`bench-go`) runs every `func Benchmark…` of the repository's tests, and with them")
	r.p("their checks (a wrong answer fails the benchmark, and `make bench` with it). Their figures, but")
	r.p("for those the sections above show:")
	r.p("")
	r.p("| package | benchmark | figures |")
	r.p("| --- | --- | --- |")
	for _, e := range gb.entries {
		if slices.Contains(covered, e.top()) {
			continue
		}
		fs := make([]string, 0, len(e.units))
		for _, u := range e.units {
			fs = append(fs, strconv.FormatFloat(e.metrics[u], 'g', 4, 64)+" "+u)
		}
		r.p("| %s | %s | %s |", shortPkg(e.pkg), strings.TrimPrefix(e.name, "Benchmark"), strings.Join(fs, ", "))
	}
	r.p("")
	if benches == nil {
		r.unmeasured(tBenchmarks, "the repository's benchmarks were not listed")
		return
	}
	var missing []string
	for _, b := range benches {
		if !gb.ran(b.Pkg, b.Name) {
			missing = append(missing, shortPkg(b.Pkg)+"."+b.Name)
		}
	}
	if len(missing) > 0 {
		r.p("Did not run: %s.", strings.Join(missing, ", "))
		r.p("")
		r.target(tBenchmarks, fmt.Sprintf("%d of %d ran; not %s", len(benches)-len(missing), len(benches), strings.Join(missing, ", ")), false)
		return
	}
	r.target(tBenchmarks, fmt.Sprintf("all %d ran", len(benches)), len(benches) > 0)
}

// shortPkg is an import path without the module's.
func shortPkg(p string) string {
	if s, ok := strings.CutPrefix(p, "github.com/gstats/gstats/"); ok {
		return s
	}
	return p
}

func (r *report) profiling() {
	r.p("## Profiling")
	r.p("")
	r.p("```sh")
	r.p("taskset -c 1 bin/gstats-collectd -s tcp://127.0.0.1:5555 -c tcp://127.0.0.1:5556 --pprof-addr 127.0.0.1:6060 &")
	r.p("taskset -c 0 bin/gstats-bench send -addr tcp://127.0.0.1:5555 -rate 200000 -for 20s &")
	r.p("go tool pprof -top bin/gstats-collectd 'http://127.0.0.1:6060/debug/pprof/profile?seconds=10'")
	r.p("go test -run '^$' -bench 'StatsGrid/durations=6e6' -cpuprofile cpu.out ./plugins/inputs/gstats/")
	r.p("```")
	r.p("")
	r.p("What the profiles showed, and what changed because of them:")
	r.p("")
	r.p("- **Receiving, frame by frame.** The zmq4 binding makes several cgo calls and one allocation per")
	r.p("  frame (three frames per classic message): most of the collector's CPU went there, and it could")
	r.p("  not keep up with a bare receiver. `internal/zbatch` receives every queued message in one cgo call")
	r.p("  into one reused buffer; the frames are parsed in place and applied to the window before the next")
	r.p("  call reuses it.")
	r.p("- **Wake-ups.** Under steady, moderate traffic the loop woke for every few messages; each wake-up")
	r.p("  cost a blocking cgo poll and a thread hand-off in the Go runtime. After it empties the queue the")
	r.p("  loop now sleeps 5 ms in Go (the poll with a zero timeout keeps Stop and the monitor served) and")
	r.p("  blocks in the poll only when a round found nothing.")
}

// minutes writes a soak's duration the way the report's targets do.
func minutes(d time.Duration) string {
	if d >= time.Minute && d%time.Minute == 0 {
		return fmt.Sprintf("%d min", d/time.Minute)
	}
	return d.String()
}

func (r *report) soak(res results) {
	r.p("## 6. Soak")
	r.p("")
	k := res.Soak
	if k == nil {
		r.p("Not measured: the soak phase did not run.")
		r.p("")
		r.unmeasured(tSoak, "the soak phase did not run")
		return
	}
	v := k.Verdict
	r.p("gstats-collectd (with `--pprof-addr` on a free loopback port) takes a paced stream of classic")
	of := ""
	if k.MaxLossFree > 0 {
		of = " (" + rate(k.MaxLossFree) + ")"
	}
	r.p("messages for %s at %s, %s%s.", minutes(k.Duration), rate(k.Rate), k.RateSource, of)
	r.p("The sender drops what its socket refuses, as the clients do.")
	if k.Window == v.Warmup {
		r.p("The collector's window is %s (60 slots), as long as the warm-up, so it is full when measuring", k.Window)
		r.p("starts and every slot is emptied and reused many times afterwards; with the default 600 s window,")
		r.p("a 10-minute soak would still be filling it at the end.")
	} else {
		r.p("The collector's window is %s (60 slots, `-soak-window`).", k.Window)
	}
	r.p("")
	r.p("Every %s the harness reads the collector's RSS (`/proc/PID/status`), its open files", k.Every)
	r.p("(`/proc/PID/fd`), its goroutines (`/debug/pprof/goroutine?debug=1`), its CPU time (all its")
	r.p("threads) and its accepted count (INFO on the control socket). The first %s is a warm-up. After it", v.Warmup)
	r.p("the run is **flat** when: goroutines vary by at most %d and open files by at most %d (a request's", soakGoroutineSlack, soakFDSlack)
	r.p("goroutine or connection may still be closing around a sample; a leak of one per message, per")
	r.p("request or per sample would pass that within a few samples); the median RSS of the last fifth of")
	r.p("the part after the warm-up is within max(5 %%, 4 MiB) of the first fifth's,")
	r.p("and RSS's least-squares slope times the duration is no more than that bound (below")
	r.p("it RSS follows the garbage collector's cycles); and nothing was lost: everything sent accepted,")
	r.p("nothing dropped by the sender, nothing rejected.")
	r.p("")
	r.p("| time | sent | accepted | dropped | RSS | open files | goroutines | CPU (of one) | CPU per message |")
	r.p("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	prev := -1
	for _, i := range soakRows(k.Samples, k.Duration) {
		s := k.Samples[i]
		cpu, per := "–", "–"
		if prev >= 0 {
			pct, ns := cpuShare(k.Samples[prev], s)
			cpu = fmt.Sprintf("%.0f %%", pct)
			if !math.IsNaN(ns) {
				per = fmt.Sprintf("%.0f ns", ns)
			}
		}
		r.p("| %s | %d | %d | %d | %.1f MiB | %d | %d | %s | %s |", soakTime(s.At, k.Every), s.Sent, s.Accepted, s.Dropped, mib(s.RSS), s.FDs, s.Goroutines, cpu, per)
		prev = i
	}
	r.p("")
	r.p("CPU columns are over the interval since the row above.")
	r.p("")
	r.p("- sent %d, dropped by the sender %d, accepted %d once the queue drained, rejected %d", k.Sent, k.Dropped, k.Accepted, k.Rejected)
	if v.Measured > 0 {
		r.p("- after the warm-up (%d samples): goroutines %d–%d, open files %d–%d", v.Measured, v.Goroutines[0], v.Goroutines[1], v.FDs[0], v.FDs[1])
		r.p("- RSS: median %.1f MiB in the first fifth, %.1f MiB in the last (bound %.1f MiB); trend %+.2f MiB over %s; peak %.1f MiB",
			mib(v.RSSFirst), mib(v.RSSLast), mib(v.RSSBound), mib(v.RSSTrend), minutes(k.Duration), mib(k.PeakRSS))
	}
	if i := slices.IndexFunc(k.Samples, func(s soakSample) bool { return s.At >= v.Warmup }); i >= 0 {
		if pct, ns := cpuShare(k.Samples[i], k.Samples[len(k.Samples)-1]); !math.IsNaN(ns) {
			r.p("- collector CPU after the warm-up: %.0f %% of one CPU, %.0f ns per message", pct, ns)
		}
	}
	r.p("")
	if v.Flat {
		r.p("Verdict: **flat**.")
	} else {
		r.p("Verdict: **not flat**: %s.", strings.Join(v.Problems, "; "))
	}
	r.p("")
	measured := fmt.Sprintf("flat: goroutines %d–%d, fds %d–%d, RSS %.1f → %.1f MiB (bound %.1f, trend %+.2f); %d sent, all accepted, none dropped, at %s",
		v.Goroutines[0], v.Goroutines[1], v.FDs[0], v.FDs[1], mib(v.RSSFirst), mib(v.RSSLast), mib(v.RSSBound), mib(v.RSSTrend), k.Sent, rate(k.Rate))
	if !v.Flat {
		measured = "not flat: " + strings.Join(v.Problems, "; ")
	}
	// A shorter soak, or one at a rate given by hand, shows something but
	// not the target.
	var short []string
	if k.Duration < targetSoak {
		short = append(short, "it ran "+minutes(k.Duration)+", not "+minutes(targetSoak))
	}
	if k.MaxLossFree == 0 {
		short = append(short, "at "+rate(k.Rate)+" (given), not half the max loss-free rate")
	}
	if len(short) > 0 {
		r.unmeasured(tSoak, strings.Join(short, ", ")+" ("+measured+")")
		return
	}
	r.target(tSoak, measured, v.Flat)
}
