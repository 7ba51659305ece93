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
)

// report accumulates the markdown text and the targets' verdicts.
type report struct {
	b       strings.Builder
	targets [][4]string // target, measured, verdict, where
	misses  []string
}

func (r *report) p(format string, a ...any) { fmt.Fprintf(&r.b, format+"\n", a...) }

func (r *report) target(name, measured string, ok bool, where string) {
	v := "met"
	if !ok {
		v = "**missed**"
		r.misses = append(r.misses, name+": "+measured)
	}
	r.targets = append(r.targets, [4]string{name, measured, v, where})
}

func (r *report) unmeasured(name, why string) {
	r.targets = append(r.targets, [4]string{name, "not measured: " + why, "**missed**", ""})
	r.misses = append(r.misses, name+": not measured ("+why+")")
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

// writeReport renders docs/PERFORMANCE.md and lists the missed targets.
func writeReport(res results, gb goBench) (string, []string) {
	var body report
	body.ingest(res, gb)
	body.queries(gb, res)
	body.memory(res, gb)
	body.accuracy(res)
	body.clients(gb)
	body.soak(res)
	body.profiling()

	var r report
	r.p("# gstats performance")
	r.p("")
	r.p("Written by `make bench` (`bench/harness`) from one run on %s; every ratio compares figures", res.Started.Format("2006-01-02"))
	r.p("taken in that same run, side by side, because the host's speed drifts between runs.")
	r.p("Raw results of the run are in `bench-results.json` and `bench.out` (not committed).")
	r.p("")
	r.p("## Targets")
	r.p("")
	r.p("| target | measured | verdict | section |")
	r.p("| --- | --- | --- | --- |")
	for _, t := range body.targets {
		r.p("| %s | %s | %s | %s |", t[0], t[1], t[2], t[3])
	}
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
	r.p("taskset -c 0 bin/gstats-bench run -collectd bin/gstats-collectd -go-bench bench.out -report docs/PERFORMANCE.md")
	r.p("taskset -c 0 bin/gstats-bench run -quick -report '' -phases ingest   # a smoke run of one phase")
	r.p("taskset -c 0 bin/gstats-bench run -phases soak -soak-rate 600000 -report '' -json soak.json   # the soak alone")
	r.p("```")
	r.p("")
	r.b.WriteString(body.b.String())
	return r.b.String(), body.misses
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

func (r *report) ingest(res results, gb goBench) {
	r.p("## 1. Ingest")
	r.p("")
	in := res.Ingest
	if in == nil {
		r.unmeasured("ingest ≥ 85 % of a bare PULL receiver", "the ingest phase did not run")
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
	if okG && okB && bare.MaxLossFree > 0 {
		ratio := gs.MaxLossFree / bare.MaxLossFree
		note := ""
		if gs.SenderLimited && bare.SenderLimited {
			note = "; both held the fastest stream one sender CPU produces"
		}
		r.target("ingest ≥ 85 % of the bare receiver's loss-free rate", fmt.Sprintf("%.0f %% (%s vs %s%s)", 100*ratio, rate(gs.MaxLossFree), rate(bare.MaxLossFree), note), ratio >= targetBareRatio, "1")
	} else {
		r.unmeasured("ingest ≥ 85 % of the bare receiver's loss-free rate", "no loss-free step")
	}
	if res.Statsd != nil && okG {
		sd := res.Statsd.Ladder.MaxLossFree
		if sd > 0 {
			f := gs.MaxLossFree / sd
			r.target("ingest ≥ 5× Telegraf statsd's loss-free rate", fmt.Sprintf("%.1f× (%s vs %s)", f, rate(gs.MaxLossFree), rate(sd)), f >= targetStatsdFactor, "1")
		} else {
			r.unmeasured("ingest ≥ 5× Telegraf statsd's loss-free rate", "statsd lost traffic at every rate tried")
		}
	} else {
		r.unmeasured("ingest ≥ 5× Telegraf statsd's loss-free rate", "the statsd phase did not run")
	}
	if okG {
		if s, ok := stepAt(gs, gs.MaxLossFree); ok {
			r.target("≤ 1 µs collector CPU per message", fmt.Sprintf("%.0f ns at %s (classic); see the CPU table for every rate", s.CPUPerMsg, rate(s.Target)), s.CPUPerMsg <= targetCPUPerMsgNS, "1")
		}
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
		r.unmeasured("STATS ≤ 1 ms with 6e6 durations", "BenchmarkStatsGrid is not in the Go benchmarks' output")
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
	lo, okLo := cell[[3]string{"stats", fmt.Sprint(ds[0]), "1"}]
	hi, okHi := cell[[3]string{"stats", fmt.Sprint(ds[len(ds)-1]), "1"}]
	if okHi {
		r.target(fmt.Sprintf("STATS ≤ 1 ms, one prefix, %.0f durations", hi.durations), fmt.Sprintf("%.1f µs", hi.us), hi.us <= 1000*targetStatsMS, "2")
	}
	if g, ok := gb.get("BenchmarkStatsGrowth", "growth"); ok {
		small, _ := gb.get("BenchmarkStatsGrowth", "us/stats_1e3")
		large, _ := gb.get("BenchmarkStatsGrowth", "us/stats_6e6")
		r.p("`BenchmarkStatsGrowth` asks STATS of one prefix with 1e3 and with 6e6 durations in turn, in the")
		r.p("same loop, so that the host's drifts hit both alike: medians %.2f µs and %.2f µs, growth %.2f×.", small, large, g)
		r.p("(The grid's cells are taken one after the other; at a few microseconds a call, their ratios move")
		r.p("with the host by more than the window's own growth.)")
		r.p("")
		r.target("STATS at 6e6 durations ≤ 1.5× its time at 1e3 (one prefix)", fmt.Sprintf("%.2f× (%.2f µs vs %.2f µs, side by side)", g, large, small), g <= targetStatsGrowth, "2")
	} else if okLo && okHi {
		g := hi.us / lo.us
		r.target(fmt.Sprintf("STATS at %.0f durations ≤ 1.5× its time at %.0f", hi.durations, lo.durations), fmt.Sprintf("%.2f× (%.1f µs vs %.1f µs)", g, hi.us, lo.us), g <= targetStatsGrowth, "2")
	}
	if len(res.Memory) > 0 {
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
		r.unmeasured("RSS ≤ 64 MiB with 6e6 durations", "the memory phase did not run")
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
		if best != nil {
			r.target(fmt.Sprintf("RSS ≤ 64 MiB with %d durations, one prefix", best.Durations), fmt.Sprintf("%.1f MiB (peak %.1f MiB)", mib(best.RSS), mib(best.Peak)), mib(best.Peak) <= targetRSSMiB, "3")
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
	if a == nil {
		r.unmeasured("percentile relative error ≤ 1 %", "the accuracy phase did not run")
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
	r.target("percentile relative error ≤ 1 %", fmt.Sprintf("%.3f %% at worst (p50/p90/p99)", worst), worst <= targetRelErrPct, "4")
}

func (r *report) clients(gb goBench) {
	r.p("## 5. Clients")
	r.p("")
	r.p("Go client (`client/`, `go test -bench . ./client/`): cost per request of the net/http middleware.")
	r.p("")
	r.p("| benchmark | ns/op | allocs/op | dropped/op |")
	r.p("| --- | ---: | ---: | ---: |")
	worst, allocs := 0.0, 0.0
	names := append(gb.matching("BenchmarkMiddleware"), gb.matching("BenchmarkSender")...)
	for _, n := range names {
		m := gb.metrics[n]
		r.p("| %s | %.1f | %.0f | %.3f |", strings.TrimPrefix(n, "Benchmark"), m["ns/op"], m["allocs/op"], m["dropped/op"])
		if strings.HasPrefix(n, "BenchmarkMiddleware") {
			worst = math.Max(worst, m["ns/op"])
			allocs = math.Max(allocs, m["allocs/op"])
		}
	}
	r.p("")
	if len(names) > 0 {
		r.target("Go middleware ≤ 250 ns and 0 allocations per request", fmt.Sprintf("%.0f ns at worst, %.0f allocs", worst, allocs), worst <= targetMiddlewareNS && allocs == 0, "5")
	} else {
		r.unmeasured("Go middleware ≤ 250 ns and 0 allocations per request", "no client benchmarks in the output")
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
		r.target("Python hooks ≤ 8 µs CPU per request pair", fmt.Sprintf("%.2f µs", v), v <= targetHooksCPUUS, "5")
	} else {
		r.unmeasured("Python hooks ≤ 8 µs CPU per request pair", "no Python figures in the output")
	}
	if v, ok := gb.pythonFigure("side by side ON/OFF", `median ([\d.]+) %`); ok {
		r.target("gunicorn ≥ 95 % of its requests/s without hooks", fmt.Sprintf("%.1f %% (side by side, median)", v), v >= targetGunicornPct, "5")
	} else {
		r.unmeasured("gunicorn ≥ 95 % of its requests/s without hooks", "no gunicorn figures in the output")
	}
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
		r.unmeasured("Soak: 10 min at half the max rate, RSS, fds and goroutines flat", "the soak phase did not run")
		return
	}
	v := k.Verdict
	how := "half the max rate"
	if k.MaxLossFree == 0 {
		how = rate(k.Rate) + " (given)"
	}
	name := fmt.Sprintf("Soak: %s at %s, RSS, fds and goroutines flat", minutes(k.Duration), how)
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
	r.target(name, measured, v.Flat, "6")
}
