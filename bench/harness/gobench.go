package main

import (
	"regexp"
	"strconv"
	"strings"
)

// goBench holds what the Go and Python benchmarks printed: each Go
// benchmark's metrics by unit, and the Python benchmarks' summary lines.
type goBench struct {
	metrics map[string]map[string]float64 // benchmark name (no -N suffix) → unit → value
	order   []string
	lines   []string // Python summary lines, as printed
}

var procSuffix = regexp.MustCompile(`-\d+$`)

// parseGoBench reads `go test -bench` output (and the Python benchmarks'
// lines around it).
func parseGoBench(out string) goBench {
	g := goBench{metrics: map[string]map[string]float64{}}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 4 && strings.HasPrefix(f[0], "Benchmark") {
			name := procSuffix.ReplaceAllString(f[0], "")
			m := map[string]float64{}
			// f[1] is the iteration count; then value/unit pairs.
			for i := 2; i+1 < len(f); i += 2 {
				v, err := strconv.ParseFloat(f[i], 64)
				if err != nil {
					break
				}
				m[f[i+1]] = v
			}
			if _, seen := g.metrics[name]; !seen {
				g.order = append(g.order, name)
			}
			g.metrics[name] = m
			continue
		}
		for _, p := range pythonLines {
			if strings.HasPrefix(line, p) {
				g.lines = append(g.lines, line)
			}
		}
	}
	return g
}

// pythonLines are the prefixes of the Python benchmarks' summary lines.
var pythonLines = []string{"hooks: ", "a socket per message", "median requests/s", "ON/OFF per round", "median worker CPU", "side by side ON/OFF"}

// get returns a benchmark's metric and whether it was found.
func (g goBench) get(name, unit string) (float64, bool) {
	v, ok := g.metrics[name][unit]
	return v, ok
}

// matching lists the benchmarks whose name starts with prefix, in output
// order.
func (g goBench) matching(prefix string) []string {
	var out []string
	for _, n := range g.order {
		if strings.HasPrefix(n, prefix) {
			out = append(out, n)
		}
	}
	return out
}

// pythonFigure finds a number after label in the Python lines, e.g.
// pythonFigure("hooks: ", "inline, ") for the CPU per pair.
func (g goBench) pythonFigure(line, re string) (float64, bool) {
	r := regexp.MustCompile(re)
	for _, l := range g.lines {
		if strings.HasPrefix(l, line) {
			if m := r.FindStringSubmatch(l); m != nil {
				v, err := strconv.ParseFloat(m[1], 64)
				return v, err == nil
			}
		}
	}
	return 0, false
}
