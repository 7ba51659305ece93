package agentconf

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/telegraf/plugins/outputs/file"
	"github.com/influxdata/telegraf/plugins/outputs/influxdb"
	"github.com/influxdata/telegraf/plugins/outputs/influxdb_v2"

	"github.com/gstats/gstats/plugins/inputs/gstats"
)

func TestRootSampleConfigLoads(t *testing.T) {
	cfg, err := Load(filepath.Join("..", "sample.conf"))
	if err != nil {
		t.Fatalf("root sample.conf: %v", err)
	}
	want := gstats.New()
	if cfg.Gstats.StatsAddress != want.StatsAddress || cfg.Gstats.CommAddress != want.CommAddress ||
		cfg.Gstats.Window != want.Window || !reflect.DeepEqual(cfg.Gstats.Percentiles, want.Percentiles) {
		t.Errorf("root sample.conf does not give the defaults: %+v", cfg.Gstats)
	}
	root, err := os.ReadFile(filepath.Join("..", "sample.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(root), gstats.New().SampleConfig()) {
		t.Error("root sample.conf must hold the plugin's sample.conf verbatim")
	}
	if time.Duration(cfg.Agent.Interval) != DefaultInterval || len(cfg.Outputs) != 1 || cfg.Outputs[0].Label() != "outputs.file" {
		t.Errorf("root sample.conf: agent %+v, outputs %v; want the defaults and line protocol to stdout", cfg.Agent, cfg.Outputs)
	}
}

func TestParse(t *testing.T) {
	t.Setenv("GSTATS_TEST_ADDR", "tcp://127.0.0.1:4000")
	t.Setenv("GSTATS_TEST_EMPTY", "")
	cases := []struct {
		name    string
		text    string
		check   func(*testing.T, *gstats.Gstats)
		wantErr []string
	}{
		{
			name: "every key",
			text: `
[[inputs.gstats]]
  stats_address = "tcp://127.0.0.1:3000"
  comm_address = "ipc:///tmp/gstats-comm"
  window = "5m"
  window_slots = 30
  percentiles = [50.0, 99.9]
  max_prefixes = 10
  max_prefix_length = 64
  max_raw_durations = 0
  max_duration = "1h"
  max_message_size = "8KiB"
  receive_queue = 500
  reject_log_interval = "1m"
`,
			check: func(t *testing.T, g *gstats.Gstats) {
				if g.StatsAddress != "tcp://127.0.0.1:3000" || g.CommAddress != "ipc:///tmp/gstats-comm" ||
					time.Duration(g.Window) != 5*time.Minute || g.WindowSlots != 30 ||
					!reflect.DeepEqual(g.Percentiles, []float64{50, 99.9}) || g.MaxPrefixes != 10 ||
					g.MaxPrefixLength != 64 || g.MaxRawDurations != 0 || time.Duration(g.MaxDuration) != time.Hour ||
					int64(g.MaxMessageSize) != 8192 || g.ReceiveQueue != 500 || time.Duration(g.RejectLogInterval) != time.Minute {
					t.Errorf("decoded %+v", g)
				}
			},
		},
		{
			name: "defaults kept for keys not set; window as integer seconds",
			text: "[[inputs.gstats]]\n  window = 60\n",
			check: func(t *testing.T, g *gstats.Gstats) {
				if time.Duration(g.Window) != time.Minute || g.StatsAddress != gstats.New().StatsAddress || g.WindowSlots != 60 {
					t.Errorf("decoded %+v", g)
				}
			},
		},
		{
			name: "environment variables",
			text: "[[inputs.gstats]]\n  stats_address = \"${GSTATS_TEST_ADDR}\"\n  comm_address = \"${GSTATS_TEST_EMPTY:-tcp://127.0.0.1:4001}\"\n  # a comment may name ${UNSET_VARIABLE_IN_COMMENT}\n",
			check: func(t *testing.T, g *gstats.Gstats) {
				if g.StatsAddress != "tcp://127.0.0.1:4000" || g.CommAddress != "tcp://127.0.0.1:4001" {
					t.Errorf("decoded %+v", g)
				}
			},
		},
		{name: "typo", text: "[[inputs.gstats]]\n  windw = \"5m\"\n", wantErr: []string{"test.conf", `"inputs.gstats.windw"`, "unknown key"}},
		{name: "unknown section", text: "[[inputs.gstats]]\n[[outputs.nope]]\n  x = 1\n", wantErr: []string{"test.conf", "outputs.nope"}},
		{name: "wrong type", text: "[[inputs.gstats]]\n  window_slots = \"many\"\n", wantErr: []string{"test.conf", "window_slots"}},
		{name: "bad duration", text: "[[inputs.gstats]]\n  window = \"soon\"\n", wantErr: []string{"test.conf", "window", "soon"}},
		{name: "syntax", text: "[[inputs.gstats]\n", wantErr: []string{"test.conf", "line 2", "table array name"}},
		{name: "no section", text: "# nothing\n", wantErr: []string{"test.conf", "no [[inputs.gstats]] section"}},
		{name: "two sections", text: "[[inputs.gstats]]\n[[inputs.gstats]]\n", wantErr: []string{"test.conf", "2 [[inputs.gstats]] sections"}},
		{name: "unset variable", text: "[[inputs.gstats]]\n  stats_address = \"${GSTATS_TEST_UNSET_VAR}\"\n", wantErr: []string{"test.conf", "line 2", "GSTATS_TEST_UNSET_VAR is not set"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse("test.conf", []byte(tc.text))
			if len(tc.wantErr) > 0 {
				if err == nil {
					t.Fatalf("Parse succeeded, want an error containing %q", tc.wantErr)
				}
				for _, want := range tc.wantErr {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q lacks %q", err, want)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, cfg.Gstats)
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "absent.conf"))
	if err == nil || !strings.Contains(err.Error(), "absent.conf") {
		t.Fatalf("Load of a missing file: %v", err)
	}
}

func TestParseAgentAndOutputs(t *testing.T) {
	t.Setenv("GSTATS_TEST_TOKEN", "s3cret")
	t.Setenv("GSTATS_TEST_EMPTY", "")
	text := `
[agent]
  interval = "2s"
  flush_interval = "3s"
  metric_batch_size = 50
  metric_buffer_limit = 500
  hostname = "web-1"
[global_tags]
  dc = "par1"
[[inputs.gstats]]
  window = "1m"
[[outputs.file]]
  files = ["stdout", "/tmp/gstats.lp"]
  influx_sort_fields = true
[[outputs.influxdb]]
  urls = ["http://127.0.0.1:8086"]
  database = "${GSTATS_TEST_DB-gstats}"
  timeout = "7s"
  startup_error_behavior = "retry"
[[outputs.influxdb]]
  alias = "backup"
  urls = ["http://127.0.0.2:8086"]
  database = "${GSTATS_TEST_EMPTY:-fallback}"
[[outputs.influxdb_v2]]
  urls = ["http://127.0.0.1:8087"]
  token = "${GSTATS_TEST_TOKEN}"
  organization = "org"
  bucket = "gstats"
  metric_batch_size = 10
`
	cfg, err := Parse("full.conf", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	a := cfg.Agent
	if time.Duration(a.Interval) != 2*time.Second || time.Duration(a.FlushInterval) != 3*time.Second ||
		a.MetricBatchSize != 50 || a.MetricBufferLimit != 500 || a.Hostname != "web-1" || a.OmitHostname {
		t.Errorf("agent: %+v", a)
	}
	if !reflect.DeepEqual(cfg.GlobalTags, map[string]string{"dc": "par1"}) {
		t.Errorf("global tags: %v", cfg.GlobalTags)
	}
	if time.Duration(cfg.Gstats.Window) != time.Minute {
		t.Errorf("window: %s", time.Duration(cfg.Gstats.Window))
	}
	wantSections := []string{"agent", "global_tags", "outputs.file", "outputs.influxdb", "outputs.influxdb_v2"}
	if !reflect.DeepEqual(cfg.Sections, wantSections) {
		t.Errorf("sections %v, want %v", cfg.Sections, wantSections)
	}
	var labels []string
	for _, o := range cfg.Outputs {
		labels = append(labels, o.Label())
	}
	if want := []string{"outputs.file", "outputs.influxdb", "outputs.influxdb #2", "outputs.influxdb_v2"}; !reflect.DeepEqual(labels, want) {
		t.Fatalf("outputs %v, want %v", labels, want)
	}
	f := cfg.Outputs[0].Plugin.(*file.File)
	if !reflect.DeepEqual(f.Files, []string{"stdout", "/tmp/gstats.lp"}) || !cfg.Outputs[0].Serializer.SortFields || cfg.Outputs[0].Serializer.DataFormat != "influx" {
		t.Errorf("file output: %+v %+v", f, cfg.Outputs[0].Serializer)
	}
	v1 := cfg.Outputs[1].Plugin.(*influxdb.InfluxDB)
	if !reflect.DeepEqual(v1.URLs, []string{"http://127.0.0.1:8086"}) || v1.Database != "gstats" || time.Duration(v1.Timeout) != 7*time.Second ||
		cfg.Outputs[1].Common.StartupErrorBehavior != "retry" {
		t.Errorf("influxdb output: urls %v db %q timeout %s common %+v", v1.URLs, v1.Database, time.Duration(v1.Timeout), cfg.Outputs[1].Common)
	}
	v1b := cfg.Outputs[2].Plugin.(*influxdb.InfluxDB)
	if v1b.Database != "fallback" || cfg.Outputs[2].Common.Alias != "backup" {
		t.Errorf("second influxdb output: db %q alias %q", v1b.Database, cfg.Outputs[2].Common.Alias)
	}
	v2 := cfg.Outputs[3].Plugin.(*influxdb_v2.InfluxDB)
	tok, err := v2.Token.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Destroy()
	if tok.String() != "s3cret" || v2.Bucket != "gstats" || v2.Organization != "org" || cfg.Outputs[3].Common.MetricBatchSize != 10 {
		t.Errorf("influxdb_v2 output: %+v token %q", v2, tok.String())
	}
}

func TestParseDefaultsWithoutAgent(t *testing.T) {
	cfg, err := Parse("min.conf", []byte("[[inputs.gstats]]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if time.Duration(cfg.Agent.Interval) != DefaultInterval || time.Duration(cfg.Agent.FlushInterval) != DefaultFlushInterval ||
		cfg.Agent.MetricBatchSize != DefaultMetricBatchSize || cfg.Agent.MetricBufferLimit != DefaultMetricBufferLimit {
		t.Errorf("agent defaults: %+v", cfg.Agent)
	}
	if len(cfg.Outputs) != 0 || len(cfg.Sections) != 0 {
		t.Errorf("outputs %v sections %v", cfg.Outputs, cfg.Sections)
	}
}

func TestParseErrorsNameFileAndKey(t *testing.T) {
	cases := []struct {
		name    string
		text    string
		wantErr []string
	}{
		{"agent typo", "[agent]\n  intervall = \"1s\"\n[[inputs.gstats]]\n", []string{"bad.conf", `"agent.intervall"`, "unknown key"}},
		{"agent bad duration", "[agent]\n  interval = \"often\"\n[[inputs.gstats]]\n", []string{"bad.conf", "[agent]", "interval", "often"}},
		{"agent zero interval", "[agent]\n  interval = \"0s\"\n[[inputs.gstats]]\n", []string{"bad.conf", "[agent]", "interval must be positive"}},
		{"agent buffer below batch", "[agent]\n  metric_batch_size = 100\n  metric_buffer_limit = 10\n[[inputs.gstats]]\n", []string{"bad.conf", "metric_buffer_limit (10)"}},
		{"output typo", "[[inputs.gstats]]\n[[outputs.influxdb]]\n  url = \"http://127.0.0.1:8086\"\n", []string{"bad.conf", `"outputs.influxdb.url"`, "unknown key"}},
		{"output wrong type", "[[inputs.gstats]]\n[[outputs.influxdb]]\n  urls = \"http://127.0.0.1:8086\"\n", []string{"bad.conf", "[[outputs.influxdb]] #1", "urls"}},
		{"second output bad duration", "[[inputs.gstats]]\n[[outputs.influxdb]]\n[[outputs.influxdb]]\n  timeout = \"soon\"\n", []string{"bad.conf", "[[outputs.influxdb]] #2", "timeout", "soon"}},
		{"data format", "[[inputs.gstats]]\n[[outputs.file]]\n  data_format = \"json\"\n", []string{"bad.conf", "data_format \"json\" is not supported"}},
		{"serializer key on influxdb", "[[inputs.gstats]]\n[[outputs.influxdb]]\n  data_format = \"influx\"\n", []string{"bad.conf", `"outputs.influxdb.data_format"`}},
		{"startup behaviour", "[[inputs.gstats]]\n[[outputs.file]]\n  startup_error_behavior = \"panic\"\n", []string{"bad.conf", "startup_error_behavior \"panic\""}},
		{"other input", "[[inputs.gstats]]\n[[inputs.cpu]]\n  percpu = true\n", []string{"bad.conf", "unsupported plugin(s) inputs.cpu"}},
		{"other output", "[[inputs.gstats]]\n[[outputs.kafka]]\n", []string{"bad.conf", "unsupported plugin(s) outputs.kafka", "file, influxdb, influxdb_v2"}},
		{"processor", "[[inputs.gstats]]\n[[processors.rename]]\n", []string{"bad.conf", "processors.rename"}},
		{"global tag not a string", "[global_tags]\n  dc = 1\n[[inputs.gstats]]\n", []string{"bad.conf", "global_tags"}},
		{"required variable", "[[inputs.gstats]]\n  stats_address = \"${GSTATS_TEST_UNSET_VAR:?set the address}\"\n", []string{"bad.conf", "line 2", "GSTATS_TEST_UNSET_VAR: set the address"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("bad.conf", []byte(tc.text))
			if err == nil {
				t.Fatalf("Parse succeeded, want an error containing %q", tc.wantErr)
			}
			for _, want := range tc.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
		})
	}
}

func TestExpandEnv(t *testing.T) {
	t.Setenv("GSTATS_T_SET", "v")
	t.Setenv("GSTATS_T_EMPTY", "")
	cases := []struct{ in, want string }{
		{"a = \"$GSTATS_T_SET\"", "a = \"v\""},
		{"a = \"${GSTATS_T_SET}\"", "a = \"v\""},
		{"a = \"${GSTATS_T_EMPTY:-d}\"", "a = \"d\""},
		{"a = \"${GSTATS_T_EMPTY-d}\"", "a = \"\""},
		{"a = \"${GSTATS_T_UNSET-d}\"", "a = \"d\""},
		{"a = \"${GSTATS_T_SET:?no}\"", "a = \"v\""},
		{"a = \"$$GSTATS_T_SET\"", "a = \"$GSTATS_T_SET\""},
		{"# ${GSTATS_T_UNSET}", "# ${GSTATS_T_UNSET}"},
	}
	for _, c := range cases {
		got, err := expandEnv(c.in)
		if err != nil || got != c.want {
			t.Errorf("expandEnv(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"${GSTATS_T_UNSET}", "${GSTATS_T_EMPTY:?}", "${GSTATS_T_UNSET?gone}"} {
		if _, err := expandEnv(bad); err == nil {
			t.Errorf("expandEnv(%q) succeeded", bad)
		}
	}
}

// TestRootSampleConfigOutputsParse uncomments the sample's commented
// output sections and settings: each must be valid as written.
func TestRootSampleConfigOutputsParse(t *testing.T) {
	root, err := os.ReadFile(filepath.Join("..", "sample.conf"))
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("INFLUX_USER", "u")
	t.Setenv("INFLUX_PASSWORD", "p")
	var lines []string
	for _, line := range strings.Split(string(root), "\n") {
		switch {
		case strings.HasPrefix(line, "# [[outputs.") && strings.HasSuffix(line, "]]"):
			line = strings.TrimPrefix(line, "# ")
		case strings.HasPrefix(line, "#   # "):
			line = "  " + strings.TrimPrefix(line, "#   # ")
		case strings.HasPrefix(line, "#   "):
			line = "  " + strings.TrimPrefix(line, "#   ")
		case strings.HasPrefix(line, "  # ") && strings.Contains(line, " = "):
			line = "  " + strings.TrimPrefix(line, "  # ") // commented defaults
		}
		lines = append(lines, line)
	}
	cfg, err := Parse("sample.conf (uncommented)", []byte(strings.Join(lines, "\n")))
	if err != nil {
		t.Fatalf("%v\n%s", err, strings.Join(lines, "\n"))
	}
	var got []string
	for _, o := range cfg.Outputs {
		got = append(got, o.Label())
	}
	if want := []string{"outputs.file", "outputs.influxdb", "outputs.influxdb_v2"}; !reflect.DeepEqual(got, want) {
		t.Errorf("outputs %v, want %v", got, want)
	}
	if cfg.GlobalTags["dc"] != "par1" {
		t.Errorf("global tags: %v", cfg.GlobalTags)
	}
}
