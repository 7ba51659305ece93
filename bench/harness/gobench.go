package main

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// goBench holds what the Go and Python benchmarks printed: each Go
// benchmark's metrics by unit, and the Python benchmarks' summary lines.
type goBench struct {
	metrics map[string]map[string]float64 // benchmark name (no -N suffix) → unit → value
	order   []string
	lines   []string // Python summary lines, as printed
	// entries are every result line, with the package go test named
	// before it ("pkg: ..."), in output order.
	entries []benchEntry
}

// benchEntry is one result line of a Go benchmark.
type benchEntry struct {
	pkg, name string // import path; name without the -N suffix
	metrics   map[string]float64
	units     []string // the metrics' units in output order
}

// top is the benchmark function the entry belongs to.
func (e benchEntry) top() string { name, _, _ := strings.Cut(e.name, "/"); return name }

var procSuffix = regexp.MustCompile(`-\d+$`)

// parseGoBench reads `go test -bench` output (and the Python benchmarks'
// lines around it).
func parseGoBench(out string) goBench {
	g := goBench{metrics: map[string]map[string]float64{}}
	pkg := ""
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == "pkg:" {
			pkg = f[1]
			continue
		}
		if len(f) >= 4 && strings.HasPrefix(f[0], "Benchmark") {
			if _, err := strconv.ParseInt(f[1], 10, 64); err != nil {
				continue // not a result line
			}
			name := procSuffix.ReplaceAllString(f[0], "")
			m := map[string]float64{}
			e := benchEntry{pkg: pkg, name: name, metrics: m}
			// f[1] is the iteration count; then value/unit pairs.
			for i := 2; i+1 < len(f); i += 2 {
				v, err := strconv.ParseFloat(f[i], 64)
				if err != nil {
					break
				}
				m[f[i+1]] = v
				e.units = append(e.units, f[i+1])
			}
			g.entries = append(g.entries, e)
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

// ran reports whether benchmark function name of package pkg printed a
// result.
func (g goBench) ran(pkg, name string) bool {
	for _, e := range g.entries {
		if e.pkg == pkg && e.top() == name {
			return true
		}
	}
	return false
}

// benchFunc is a benchmark function of the repository.
type benchFunc struct {
	Pkg, Name string
}

var benchDecl = regexp.MustCompile(`(?m)^func (Benchmark\w*)\(\w+ \*testing\.B\)`)

// listBenchmarks finds every benchmark function in the _test.go files of
// the module rooted at root (vendor, testdata and hidden directories left
// out), with its package's import path.
func listBenchmarks(root string) ([]benchFunc, error) {
	mod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		return nil, err
	}
	m := regexp.MustCompile(`(?m)^module\s+(\S+)`).FindSubmatch(mod)
	if m == nil {
		return nil, fmt.Errorf("%s/go.mod names no module", root)
	}
	module := string(m[1])
	var out []benchFunc
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			n := d.Name()
			if path != root && (n == "vendor" || n == "testdata" || strings.HasPrefix(n, ".") || strings.HasPrefix(n, "_")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, filepath.Dir(path))
		if err != nil {
			return err
		}
		pkg := module
		if rel != "." {
			pkg += "/" + filepath.ToSlash(rel)
		}
		for _, fm := range benchDecl.FindAllSubmatch(b, -1) {
			out = append(out, benchFunc{Pkg: pkg, Name: string(fm[1])})
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool {
		if out[i].Pkg != out[j].Pkg {
			return out[i].Pkg < out[j].Pkg
		}
		return out[i].Name < out[j].Name
	})
	return out, err
}
