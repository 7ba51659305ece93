package agentconf

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

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

func FuzzParse(f *testing.F) {
	f.Add([]byte("[[inputs.gstats]]\n  window = \"5m\"\n"))
	f.Add([]byte("[[inputs.gstats]]\n  percentiles = [50.0, 99.9]\n  stats_address = \"${HOME}\"\n"))
	f.Add([]byte("[[inputs.gstats]]\n  windw = 1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz.conf", data)
		if err == nil && cfg.Gstats == nil {
			t.Fatal("nil plugin without an error")
		}
		if err != nil && !strings.HasPrefix(err.Error(), "fuzz.conf: ") {
			t.Fatalf("error does not name the file: %v", err)
		}
	})
}
