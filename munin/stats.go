package munin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
)

// Number is one figure of a STATS reply as the collector wrote it, or
// absent. Absent and malformed figures print as U.
type Number struct {
	text string // a JSON number, as received
	ok   bool
}

// Num is the figure written as the JSON number text.
func Num(text string) Number { return Number{text: text, ok: true} }

// Float is the figure as a finite float.
func (n Number) Float() (float64, bool) {
	if !n.ok {
		return 0, false
	}
	f, err := strconv.ParseFloat(n.text, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false
	}
	return f, true
}

// Integer formats the figure as munin wants DERIVE values: a decimal
// integer. A fractional figure is truncated.
func (n Number) Integer() (string, bool) {
	if !n.ok {
		return "", false
	}
	if i, err := strconv.ParseInt(n.text, 10, 64); err == nil {
		return strconv.FormatInt(i, 10), true
	}
	f, ok := n.Float()
	if !ok || math.Abs(f) >= math.MaxInt64 {
		return "", false
	}
	return strconv.FormatInt(int64(math.Trunc(f)), 10), true
}

// Gauge formats the figure as a GAUGE value, the way the original's Python
// printed a float: "153.2", "20.0", "1e-05".
func (n Number) Gauge() (string, bool) {
	f, ok := n.Float()
	if !ok {
		return "", false
	}
	return formatFloat(f)
}

// formatFloat formats a finite f as Python's repr does: the shortest text
// that reads back as f, always with a decimal point or an exponent.
func formatFloat(f float64) (string, bool) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "", false
	}
	if f != 0 && (math.Abs(f) < 1e-4 || math.Abs(f) >= 1e16) {
		return strconv.FormatFloat(f, 'e', -1, 64), true
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !bytes.ContainsRune([]byte(s), '.') {
		s += ".0"
	}
	return s, true
}

// PrefixStats are the figures of one prefix that the plug-ins graph. The
// original collector sends only Started, Finished, Avg and Std; the others
// are then absent.
type PrefixStats struct {
	Started, Finished Number
	Avg, Std          Number
	Count, Max        Number
	// Percentiles by processing_time key: "p50", "p99.9".
	Percentiles map[string]Number
	// Status by class: "1xx" ... "5xx", "none".
	Status map[string]Number
}

// Stats is a parsed STATS reply: the figures of every prefix.
type Stats map[string]*PrefixStats

// Prefixes are the prefixes of the reply, sorted.
func (s Stats) Prefixes() []string {
	out := make([]string, 0, len(s))
	for p := range s {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// ErrRefused is returned by ParseStats for the collector's ERROR reply.
var ErrRefused = errors.New("the collector answered ERROR")

// ParseStats reads a STATS reply. The reply must be a JSON object of
// objects; inside a prefix's object it is lenient: a figure that is missing
// or not a number is absent, and unknown keys are ignored, so a reply from
// the original collector or a newer one parses.
func ParseStats(data []byte) (Stats, error) {
	if string(data) == "ERROR" {
		return nil, ErrRefused
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("reply is not a JSON object: %w", err)
	}
	if raw == nil {
		return nil, errors.New("reply is null, want a JSON object")
	}
	out := make(Stats, len(raw))
	for prefix, msg := range raw {
		obj, err := object(msg)
		if err != nil {
			return nil, fmt.Errorf("reply, prefix %q: %w", prefix, err)
		}
		p := &PrefixStats{
			Started:  number(obj["started"]),
			Finished: number(obj["finished"]),
		}
		if pt, err := object(obj["processing_time"]); err == nil {
			p.Avg, p.Std = number(pt["avg"]), number(pt["std"])
			p.Count, p.Max = number(pt["count"]), number(pt["max"])
			for k, v := range pt {
				if len(k) > 1 && k[0] == 'p' {
					if p.Percentiles == nil {
						p.Percentiles = make(map[string]Number)
					}
					p.Percentiles[k] = number(v)
				}
			}
		}
		if st, err := object(obj["status"]); err == nil {
			p.Status = make(map[string]Number, len(st))
			for k, v := range st {
				p.Status[k] = number(v)
			}
		}
		out[prefix] = p
	}
	return out, nil
}

// object decodes a JSON object, keeping its values raw.
func object(msg json.RawMessage) (map[string]json.RawMessage, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(msg, &obj); err != nil {
		return nil, fmt.Errorf("not a JSON object: %w", err)
	}
	if obj == nil {
		return nil, errors.New("null, want a JSON object")
	}
	return obj, nil
}

// number is msg when it is a JSON number, else absent.
func number(msg json.RawMessage) Number {
	msg = bytes.TrimSpace(msg)
	var n json.Number
	if len(msg) == 0 || msg[0] == '"' || json.Unmarshal(msg, &n) != nil || n == "" {
		return Number{}
	}
	return Num(n.String())
}
