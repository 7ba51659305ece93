package wire_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/gstats/gstats/wire"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func TestParseCommand(t *testing.T) {
	cases := []struct {
		name    string
		frames  [][]byte
		want    wire.Command // "" when refused
		errText string       // part of the error when refused
	}{
		{name: "STATS", frames: frames("STATS"), want: wire.CmdStats},
		{name: "RTIMES", frames: frames("RTIMES"), want: wire.CmdRTimes},
		{name: "RESET", frames: frames("RESET"), want: wire.CmdReset},
		{name: "QUIT", frames: frames("QUIT"), want: wire.CmdQuit},
		{name: "INFO", frames: frames("INFO"), want: wire.CmdInfo},
		{name: "lower case", frames: frames("stats"), errText: `unknown command "stats"`},
		{name: "mixed case", frames: frames("Stats"), errText: `unknown command "Stats"`},
		{name: "trailing newline", frames: frames("STATS\n"), errText: `unknown command "STATS\n"`},
		{name: "trailing blank", frames: frames("STATS "), errText: "unknown command"},
		{name: "leading blank", frames: frames(" STATS"), errText: "unknown command"},
		{name: "twice", frames: frames("STATSSTATS"), errText: "unknown command"},
		{name: "ERROR is a reply, not a command", frames: frames("ERROR"), errText: "unknown command"},
		{name: "JSON string", frames: frames(`"STATS"`), errText: "unknown command"},
		{name: "empty frame", frames: frames(""), errText: `unknown command ""`},
		{name: "garbage", frames: frames("\xff\x00STATS\x80"), errText: `unknown command "\xff\x00STATS\x80"`},
		{name: "NUL after command", frames: frames("STATS\x00"), errText: "unknown command"},
		{name: "long garbage is cut", frames: frames(strings.Repeat("Z", 5000)), errText: "...(5000 bytes)"},
		{name: "no frames", frames: nil, errText: "request has 0 frames, want 1"},
		{name: "two frames", frames: frames("STATS", ""), errText: "request has 2 frames, want 1"},
		{name: "command twice", frames: frames("STATS", "STATS"), errText: "request has 2 frames"},
		{name: "RTIMES with an argument", frames: frames("RTIMES", "my_app"), errText: "request has 2 frames"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := wire.ParseCommand(tc.frames)
			if tc.want != "" {
				if err != nil || got != tc.want {
					t.Fatalf("ParseCommand(%q) = %q, %v, want %q", tc.frames, got, err, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseCommand(%q) = %q, want an error", tc.frames, got)
			}
			if got != "" {
				t.Errorf("ParseCommand(%q) returned command %q with its error", tc.frames, got)
			}
			if !strings.Contains(err.Error(), tc.errText) {
				t.Errorf("ParseCommand(%q) error %q does not contain %q", tc.frames, err, tc.errText)
			}
		})
	}
}

func TestIsErrorReply(t *testing.T) {
	for in, want := range map[string]bool{
		"ERROR": true, "ERROR\n": false, "error": false, `"ERROR"`: false, "": false, "null": false,
	} {
		if got := wire.IsErrorReply([]byte(in)); got != want {
			t.Errorf("IsErrorReply(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestPercentileKey(t *testing.T) {
	for p, want := range map[float64]string{
		50: "p50", 90: "p90", 99: "p99", 99.9: "p99.9", 99.99: "p99.99", 100: "p100", 0.1: "p0.1", 12.5: "p12.5",
	} {
		if got := (wire.Percentile{P: p}).Key(); got != want {
			t.Errorf("Percentile{P: %v}.Key() = %q, want %q", p, got, want)
		}
	}
}

func TestFloatMarshalJSON(t *testing.T) {
	got, err := json.Marshal(wire.RTimesReply{"my_app": {0, 12.5, 153, 1e-05, 1e16}, "empty": {}})
	if err != nil {
		t.Fatal(err)
	}
	// Integral values keep a decimal point, as Python's json wrote them.
	const want = `{"empty":[],"my_app":[0.0,12.5,153.0,1e-05,1e+16]}`
	if string(got) != want {
		t.Errorf("RTIMES reply encodes as\n%s\nwant\n%s", got, want)
	}
	var back wire.RTimesReply
	if err := json.Unmarshal(got, &back); err != nil {
		t.Fatal(err)
	}
	if want := (wire.RTimesReply{"my_app": {0, 12.5, 153, 1e-05, 1e16}, "empty": {}}); !reflect.DeepEqual(back, want) {
		t.Errorf("RTIMES reply decodes as %v, want %v", back, want)
	}
}

func TestProcessingTimeJSONRoundTrip(t *testing.T) {
	cases := []struct {
		name string
		pt   wire.ProcessingTime
		json string
	}{
		{
			name: "percentiles",
			pt: wire.ProcessingTime{Avg: 153.2, Std: 20.1, Count: 7, Min: 0, Max: 400,
				Percentiles: []wire.Percentile{{P: 50, Value: 150}, {P: 99, Value: 299}, {P: 99.9, Value: 300.5}}},
			json: `{"avg":153.2,"std":20.1,"count":7,"min":0.0,"max":400.0,"p50":150.0,"p99":299.0,"p99.9":300.5}`,
		},
		{
			name: "empty window",
			pt:   wire.ProcessingTime{},
			json: `{"avg":0.0,"std":0.0,"count":0,"min":0.0,"max":0.0}`,
		},
		{
			name: "tiny and huge",
			pt:   wire.ProcessingTime{Avg: 1e-05, Std: 1.5e-05, Count: 1 << 40, Min: 5e-324, Max: 1e16, Percentiles: []wire.Percentile{{P: 0.1, Value: 1e-05}}},
			json: `{"avg":1e-05,"std":1.5e-05,"count":1099511627776,"min":5e-324,"max":1e+16,"p0.1":1e-05}`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := json.Marshal(tc.pt)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.json {
				t.Fatalf("marshal:\n got %s\nwant %s", got, tc.json)
			}
			var back wire.ProcessingTime
			if err := json.Unmarshal(got, &back); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back, tc.pt) {
				t.Fatalf("round trip: got %+v, want %+v", back, tc.pt)
			}
		})
	}
}

// TestProcessingTimeUnmarshal covers replies this version did not write:
// the original's, and ones with keys it does not know.
func TestProcessingTimeUnmarshal(t *testing.T) {
	cases := []struct {
		name string
		json string
		want wire.ProcessingTime
	}{
		{name: "original: avg and std", json: `{"avg": 153.2, "std": 20.1}`, want: wire.ProcessingTime{Avg: 153.2, Std: 20.1}},
		{name: "original: empty window", json: `{"avg": 0.0, "std": 0.0}`, want: wire.ProcessingTime{}},
		{name: "integers", json: `{"avg": 153, "std": 0, "count": 3}`, want: wire.ProcessingTime{Avg: 153, Count: 3}},
		{name: "null values", json: `{"avg": null, "p50": null}`, want: wire.ProcessingTime{Percentiles: []wire.Percentile{{P: 50}}}},
		{name: "empty object", json: `{}`, want: wire.ProcessingTime{}},
		{name: "null", json: `null`, want: wire.ProcessingTime{}},
		{
			name: "percentiles are sorted",
			json: `{"p99.9": 3, "avg": 1, "p50": 1, "p90": 2}`,
			want: wire.ProcessingTime{Avg: 1, Percentiles: []wire.Percentile{{P: 50, Value: 1}, {P: 90, Value: 2}, {P: 99.9, Value: 3}}},
		},
		{
			name: "unknown keys are ignored",
			json: `{"avg": 1, "pending": "x", "p": 1, "pNaN": 1, "pInf": 1, "p1e2": 1, "p050": 1, "p0": 0, "p-5": 1, "p101": 1, "median": 4, "p75": 7}`,
			want: wire.ProcessingTime{Avg: 1, Percentiles: []wire.Percentile{{P: 75, Value: 7}}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Start from a filled value: decoding replaces it entirely.
			got := wire.ProcessingTime{Avg: 9, Std: 9, Count: 9, Min: 9, Max: 9, Percentiles: []wire.Percentile{{P: 1, Value: 9}}}
			if err := json.Unmarshal([]byte(tc.json), &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestProcessingTimeUnmarshalErrors(t *testing.T) {
	cases := []struct{ json, errText string }{
		{`{"avg": "153.2"}`, "processing_time.avg"},
		{`{"std": true}`, "processing_time.std"},
		{`{"max": {}}`, "processing_time.max"},
		{`{"count": 1.5}`, "processing_time.count"},
		{`{"count": "3"}`, "processing_time.count"},
		{`{"p50": "fast"}`, "processing_time.p50"},
		{`{"avg": 1e400}`, "processing_time.avg"},
		{`[1, 2]`, "cannot unmarshal"},
		{`"avg"`, "cannot unmarshal"},
	}
	for _, tc := range cases {
		var pt wire.ProcessingTime
		err := json.Unmarshal([]byte(tc.json), &pt)
		if err == nil || !strings.Contains(err.Error(), tc.errText) {
			t.Errorf("Unmarshal(%s): error %v, want one containing %q", tc.json, err, tc.errText)
		}
	}
}

// TestStatsReplyOriginalShape decodes the STATS reply example of
// PROTOCOL.md, as the original collector sent it.
func TestStatsReplyOriginalShape(t *testing.T) {
	const original = `{
	  "my_app": {
	    "started": 1234,
	    "finished": 1200,
	    "processing_time": {
	      "avg": 153.2,
	      "std": 20.1
	    }
	  },
	  "default": {"started": 0, "finished": 0, "processing_time": {"avg": 0.0, "std": 0.0}}
	}`
	var got wire.StatsReply
	if err := json.Unmarshal([]byte(original), &got); err != nil {
		t.Fatal(err)
	}
	want := wire.StatsReply{
		"my_app":  {Started: 1234, Finished: 1200, ProcessingTime: wire.ProcessingTime{Avg: 153.2, Std: 20.1}},
		"default": {},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

// fullStatsReply is a STATS reply using every field.
func fullStatsReply() wire.StatsReply {
	return wire.StatsReply{
		"my_app": {
			Started:  1234,
			Finished: 1200,
			ProcessingTime: wire.ProcessingTime{
				Avg: 153.2, Std: 20.1, Count: 1100, Min: 0, Max: 2500,
				Percentiles: []wire.Percentile{{P: 50, Value: 150}, {P: 90, Value: 190.5}, {P: 99, Value: 480}, {P: 99.9, Value: 2400.25}},
			},
			InFlight: 34,
			Rate:     1.8333333333333333,
			Status:   wire.StatusCounts{S1xx: 0, S2xx: 1100, S3xx: 20, S4xx: 50, S5xx: 10, None: 20},
		},
		"default": {Started: 3},
		"tiny": {
			Started: 1, Finished: 1,
			ProcessingTime: wire.ProcessingTime{Avg: 1e-05, Std: 0, Count: 1, Min: 1e-05, Max: 1e-05,
				Percentiles: []wire.Percentile{{P: 50, Value: 1e-05}}},
			Rate:   0.0016666666666666668,
			Status: wire.StatusCounts{None: 1},
		},
	}
}

// TestStatsReplyGolden pins the key order and float formatting of a STATS
// reply. The golden file is the reply as the collector sends it (compact,
// one line), indented for reading; json.Indent changes only blanks.
// Refresh it with: go test ./wire/ -run TestStatsReplyGolden -update
func TestStatsReplyGolden(t *testing.T) {
	reply := fullStatsReply()
	compact, err := json.Marshal(reply)
	if err != nil {
		t.Fatal(err)
	}
	var indented bytes.Buffer
	if err := json.Indent(&indented, compact, "", "  "); err != nil {
		t.Fatal(err)
	}
	indented.WriteByte('\n')
	golden := filepath.Join("testdata", "stats.golden")
	if *update {
		if err := os.WriteFile(golden, indented.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v; create it with: go test ./wire/ -run TestStatsReplyGolden -update", err)
	}
	if !bytes.Equal(indented.Bytes(), want) {
		t.Errorf("STATS reply differs from %s (refresh with -update if intended):\n got:\n%s\nwant:\n%s", golden, indented.Bytes(), want)
	}
	var wantCompact bytes.Buffer
	if err := json.Compact(&wantCompact, want); err != nil {
		t.Fatalf("%s is not JSON: %v", golden, err)
	}
	if !bytes.Equal(compact, wantCompact.Bytes()) {
		t.Errorf("compact STATS reply\n%s\ndiffers from compacted %s\n%s", compact, golden, wantCompact.Bytes())
	}

	// The reply decodes back to what was encoded.
	var back wire.StatsReply
	if err := json.Unmarshal(want, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, reply) {
		t.Errorf("%s decodes as\n%+v\nwant\n%+v", golden, back, reply)
	}

	// An old client reads exactly the original's keys, with their
	// original meaning.
	var old map[string]struct {
		Started        *int64 `json:"started"`
		Finished       *int64 `json:"finished"`
		ProcessingTime *struct {
			Avg *float64 `json:"avg"`
			Std *float64 `json:"std"`
		} `json:"processing_time"`
	}
	if err := json.Unmarshal(want, &old); err != nil {
		t.Fatal(err)
	}
	for prefix, ps := range reply {
		o := old[prefix]
		if o.Started == nil || o.Finished == nil || o.ProcessingTime == nil || o.ProcessingTime.Avg == nil || o.ProcessingTime.Std == nil {
			t.Errorf("prefix %q lacks one of started, finished, processing_time.avg/std", prefix)
			continue
		}
		if *o.Started != ps.Started || *o.Finished != ps.Finished ||
			*o.ProcessingTime.Avg != float64(ps.ProcessingTime.Avg) || *o.ProcessingTime.Std != float64(ps.ProcessingTime.Std) {
			t.Errorf("prefix %q: an old client reads %+v", prefix, o)
		}
	}
}

// TestInfoReplyJSON checks the INFO keys and that a reply decodes back.
func TestInfoReplyJSON(t *testing.T) {
	info := wire.InfoReply{
		Version: "1.0.0", StartedAt: "2025-01-02T03:04:05Z", UptimeSeconds: 12.5, WindowSeconds: 600, WindowSlots: 60,
		Percentiles: []float64{50, 99.9}, StatsAddress: wire.DefaultStatsAddress, CommAddress: wire.DefaultCommAddress,
		Prefixes: 2, MaxPrefixes: 1000, Accepted: 10, Rejected: map[wire.Reason]int64{wire.ReasonBadDuration: 2},
		RejectedTotal: 2, Disconnects: 1, ControlRequests: 5, ControlErrors: 1, Commands: map[string]int64{"STATS": 4, "ERROR": 1},
	}
	b, err := json.Marshal(info)
	if err != nil {
		t.Fatal(err)
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(b, &keys); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"version", "started_at", "uptime_seconds", "window_seconds", "window_slots", "percentiles",
		"stats_address", "comm_address", "prefixes", "max_prefixes", "accepted", "rejected", "rejected_total",
		"disconnects", "control_requests", "control_errors", "commands"} {
		if _, ok := keys[k]; !ok {
			t.Errorf("INFO reply lacks key %q: %s", k, b)
		}
	}
	if string(keys["window_seconds"]) != "600.0" || string(keys["rejected"]) != `{"bad_duration":2}` {
		t.Errorf("INFO reply %s: want window_seconds 600.0 and rejected {\"bad_duration\":2}", b)
	}
	var back wire.InfoReply
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, info) {
		t.Errorf("INFO round trip: got %+v, want %+v", back, info)
	}
}
