// Package munin turns a gstats STATS reply into the text munin plug-ins
// print: the graph definition ("config"), the values ("fetch"), the
// autoconf answer and the suggested link names. Everything here is pure
// except Run, which gets the collector, the environment and the output
// streams from its caller; cmd/gstats-munin wires them to the real ones.
//
// Four wildcard plug-ins are known, each linked as <base><label>:
//
//	gunicorn-requests_      started and finished requests (DERIVE), as the original
//	gunicorn-request-time_  average and standard deviation (GAUGE), as the original
//	gstats-latency_         percentiles and maximum of the durations (GAUGE)
//	gstats-status_          finished requests per status class (DERIVE)
//
// The label after the base selects the prefix whose Label equals it.
package munin

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Kind is one of the plug-ins.
type Kind int

// The plug-ins. Requests and RequestTime are the original's.
const (
	Requests Kind = iota
	RequestTime
	Latency
	Status
)

// Kinds lists every plug-in.
func Kinds() []Kind { return []Kind{Requests, RequestTime, Latency, Status} }

// Base is the file name of the plug-in, the part of its link names before
// the label, ending in "_".
func (k Kind) Base() string {
	switch k {
	case Requests:
		return "gunicorn-requests_"
	case RequestTime:
		return "gunicorn-request-time_"
	case Latency:
		return "gstats-latency_"
	case Status:
		return "gstats-status_"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// ParseName splits a plug-in name (the file or link name, a directory is
// ignored) into its kind and label. The label may be empty: munin runs the
// plug-in under its bare name for autoconf and suggest.
func ParseName(name string) (Kind, string, error) {
	base := filepath.Base(name)
	for _, k := range Kinds() {
		if label, ok := strings.CutPrefix(base, k.Base()); ok {
			return k, label, nil
		}
	}
	bases := make([]string, 0, len(Kinds()))
	for _, k := range Kinds() {
		bases = append(bases, k.Base()+"<label>")
	}
	return 0, "", fmt.Errorf("unknown plug-in name %q: want one of %s", base, strings.Join(bases, ", "))
}

// Label is the name a prefix goes by in link names, as the original
// plug-ins computed it: ASCII letters lower-cased, then every character
// outside [0-9a-z_] replaced by "_" (one "_" per character; each byte of
// invalid UTF-8 counts as one character).
func Label(prefix string) string {
	var b strings.Builder
	b.Grow(len(prefix))
	for _, r := range prefix {
		switch {
		case r >= 'A' && r <= 'Z':
			b.WriteRune(r - 'A' + 'a')
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

// Match finds the prefix that a link label stands for: a prefix whose Label
// equals label. When several do ("my.app" and "my-app"), the prefix equal
// to the label itself wins, then the smallest in byte order, so that the
// choice does not depend on the reply's key order.
func Match(label string, prefixes []string) (string, bool) {
	best, found := "", false
	for _, p := range prefixes {
		if Label(p) != label {
			continue
		}
		switch {
		case p == label:
			return p, true
		case !found || p < best:
			best, found = p, true
		}
	}
	return best, found
}

// Labels are the distinct labels of prefixes, sorted: what suggest prints.
func Labels(prefixes []string) []string {
	out := make([]string, 0, len(prefixes))
	for _, p := range prefixes {
		if l := Label(p); l != "" {
			out = append(out, l)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// DefaultTimeout bounds the STATS request, well under munin's 10 s plug-in
// timeout, so that config and fetch answer even when the collector is down.
const DefaultTimeout = 3 * time.Second

// ParseTimeout reads env.timeout: seconds ("3", "2.5") or a Go duration
// ("1500ms"). It must be positive and at most an hour.
func ParseTimeout(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	var d time.Duration
	if secs, err := strconv.ParseFloat(s, 64); err == nil {
		if !(secs > 0 && secs <= 3600) {
			return 0, fmt.Errorf("timeout %q out of range: want seconds in (0, 3600]", s)
		}
		d = time.Duration(secs * float64(time.Second))
	} else {
		var derr error
		d, derr = time.ParseDuration(s)
		if derr != nil {
			return 0, fmt.Errorf("timeout %q: want seconds (3, 2.5) or a duration (1500ms)", s)
		}
		if !(d > 0 && d <= time.Hour) {
			return 0, fmt.Errorf("timeout %q out of range: want (0, 1h]", s)
		}
	}
	if d <= 0 {
		return 0, fmt.Errorf("timeout %q rounds to zero", s)
	}
	return d, nil
}

// DefaultPercentiles are the percentiles gstats-collectd reports unless
// configured otherwise.
func DefaultPercentiles() []float64 { return []float64{50, 90, 95, 99} }

// ParsePercentiles reads env.percentiles: numbers in (0, 100] separated by
// spaces or commas ("50 90 99.9"). The result is sorted and without
// duplicates.
func ParsePercentiles(s string) ([]float64, error) {
	fields := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })
	if len(fields) == 0 {
		return nil, errors.New("no percentiles: want numbers in (0, 100] such as \"50 90 99\"")
	}
	out := make([]float64, 0, len(fields))
	for _, f := range fields {
		p, err := strconv.ParseFloat(f, 64)
		if err != nil || !(p > 0 && p <= 100) {
			return nil, fmt.Errorf("percentile %q: want a number in (0, 100]", f)
		}
		out = append(out, p)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// percentileKey is the processing_time key of percentile p: "p50",
// "p99.9".
func percentileKey(p float64) string { return "p" + strconv.FormatFloat(p, 'f', -1, 64) }

// percentileField is the munin field name of percentile p: "p50",
// "p99_9" (munin field names allow only [A-Za-z0-9_]).
func percentileField(p float64) string { return strings.ReplaceAll(percentileKey(p), ".", "_") }

// Options are the settings a plug-in takes from its environment.
type Options struct {
	// Percentiles are the fields of the latency plug-in.
	Percentiles []float64
}

// field is one munin data source of a graph.
type field struct {
	name  string
	attrs [][2]string // attribute, value; in output order
	// value formats the field's value from a prefix's statistics; ok
	// false prints U.
	value func(p *PrefixStats) (string, bool)
}

// graph is the definition of one plug-in's graph.
type graph struct {
	head   [][2]string // graph_* lines, in order
	fields []field
}

// graphOf returns the graph of kind k for the prefix (or label) named in
// the title.
func graphOf(k Kind, title string, o Options) graph {
	switch k {
	case Requests:
		derive := func(label string, get func(*PrefixStats) Number) field {
			return field{
				name:  label,
				attrs: [][2]string{{"label", label}, {"min", "0"}, {"type", "DERIVE"}},
				value: func(p *PrefixStats) (string, bool) { return get(p).Integer() },
			}
		}
		return graph{
			head: [][2]string{
				{"graph_title", "Gunicorn requests for " + title},
				{"graph_args", "--base 1000 -l 0"},
				{"graph_vlabel", "requests / ${graph_period}"},
				{"graph_category", "gunicorn"},
			},
			fields: []field{
				derive("started", func(p *PrefixStats) Number { return p.Started }),
				derive("finished", func(p *PrefixStats) Number { return p.Finished }),
			},
		}
	case RequestTime:
		return graph{
			head: [][2]string{
				{"graph_title", "Gunicorn request time for " + title},
				{"graph_args", "--base 1000 -l 0"},
				{"graph_vlabel", "ms"},
				{"graph_category", "gunicorn"},
			},
			fields: []field{
				{
					name: "avg_low",
					// An AREA in fully transparent white: the band
					// of one standard deviation is stacked on it.
					attrs: [][2]string{{"label", "low limit"}, {"draw", "AREA"}, {"colour", "ffffff00"}, {"min", "0"}, {"type", "GAUGE"}},
					value: func(p *PrefixStats) (string, bool) {
						avg, ok1 := p.Avg.Float()
						std, ok2 := p.Std.Float()
						if !ok1 || !ok2 {
							return "", false
						}
						return formatFloat(avg - std)
					},
				},
				{
					name:  "avg_std",
					attrs: [][2]string{{"label", "standard deviation"}, {"draw", "STACK"}, {"min", "0"}, {"type", "GAUGE"}},
					value: func(p *PrefixStats) (string, bool) { return p.Std.Gauge() },
				},
				{
					name:  "avg",
					attrs: [][2]string{{"label", "average"}, {"draw", "LINE2"}, {"min", "0"}, {"type", "GAUGE"}},
					value: func(p *PrefixStats) (string, bool) { return p.Avg.Gauge() },
				},
			},
		}
	case Latency:
		ps := o.Percentiles
		if len(ps) == 0 {
			ps = DefaultPercentiles()
		}
		g := graph{
			head: [][2]string{
				{"graph_title", "Gunicorn request latency for " + title},
				{"graph_args", "--base 1000 -l 0"},
				{"graph_vlabel", "ms"},
				{"graph_category", "gunicorn"},
				{"graph_info", "Percentiles and maximum of the request durations in the collector's window (gstats-collectd -l, 600 s by default). Unknown while the window holds no request."},
			},
		}
		// With no duration in the window a percentile is undefined,
		// not 0 ms.
		windowed := func(p *PrefixStats, n Number) (string, bool) {
			if c, ok := p.Count.Integer(); ok && c == "0" {
				return "", false
			}
			return n.Gauge()
		}
		for _, pc := range ps {
			key := percentileKey(pc)
			g.fields = append(g.fields, field{
				name:  percentileField(pc),
				attrs: [][2]string{{"label", strconv.FormatFloat(pc, 'f', -1, 64) + "th percentile"}, {"min", "0"}, {"type", "GAUGE"}},
				value: func(p *PrefixStats) (string, bool) { return windowed(p, p.Percentiles[key]) },
			})
		}
		g.fields = append(g.fields, field{
			name:  "max",
			attrs: [][2]string{{"label", "maximum"}, {"min", "0"}, {"type", "GAUGE"}},
			value: func(p *PrefixStats) (string, bool) { return windowed(p, p.Max) },
		})
		return g
	case Status:
		g := graph{
			head: [][2]string{
				{"graph_title", "Gunicorn responses by status class for " + title},
				{"graph_args", "--base 1000 -l 0"},
				{"graph_vlabel", "responses / ${graph_period}"},
				{"graph_category", "gunicorn"},
				{"graph_info", "Finished requests by the class of their HTTP status code; \"none\" counts finishes reported without a status code."},
			},
		}
		classes := []struct{ key, name, label string }{
			{"1xx", "s1xx", "1xx informational"},
			{"2xx", "s2xx", "2xx success"},
			{"3xx", "s3xx", "3xx redirection"},
			{"4xx", "s4xx", "4xx client error"},
			{"5xx", "s5xx", "5xx server error"},
			{"none", "none", "no status"},
		}
		for _, c := range classes {
			g.fields = append(g.fields, field{
				name:  c.name,
				attrs: [][2]string{{"label", c.label}, {"draw", "AREASTACK"}, {"min", "0"}, {"type", "DERIVE"}},
				value: func(p *PrefixStats) (string, bool) { return p.Status[c.key].Integer() },
			})
		}
		return g
	}
	return graph{}
}

// Config is the output of "config" for a plug-in of kind k whose label
// matched the prefix named title (the label itself when none matched).
func Config(k Kind, title string, o Options) string {
	g := graphOf(k, title, o)
	var b strings.Builder
	for _, h := range g.head {
		b.WriteString(h[0] + " " + h[1] + "\n")
	}
	for _, f := range g.fields {
		for _, a := range f.attrs {
			b.WriteString(f.name + "." + a[0] + " " + a[1] + "\n")
		}
	}
	return b.String()
}

// Fetch is the output of a fetch for a plug-in of kind k: the values of
// the prefix p, or U for every field when p is nil (the collector did not
// answer, or no prefix has the label) and for every figure p lacks.
func Fetch(k Kind, p *PrefixStats, o Options) string {
	g := graphOf(k, "", o)
	var b strings.Builder
	for _, f := range g.fields {
		v := "U"
		if p != nil {
			if s, ok := f.value(p); ok {
				v = s
			}
		}
		b.WriteString(f.name + ".value " + v + "\n")
	}
	return b.String()
}
