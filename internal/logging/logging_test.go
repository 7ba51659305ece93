package logging

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/influxdata/telegraf"
)

func TestLevelsAndOutput(t *testing.T) {
	cases := []struct {
		level     string
		want      telegraf.LogLevel
		shown     []string
		notShown  []string
		wantError bool
	}{
		{level: "error", want: telegraf.Error, shown: []string{"E-msg"}, notShown: []string{"W-msg", "I-msg", "D-msg", "T-msg"}},
		{level: "warn", want: telegraf.Warn, shown: []string{"E-msg", "W-msg"}, notShown: []string{"I-msg", "D-msg"}},
		{level: "info", want: telegraf.Info, shown: []string{"E-msg", "W-msg", "I-msg"}, notShown: []string{"D-msg", "T-msg"}},
		{level: "debug", want: telegraf.Debug, shown: []string{"I-msg", "D-msg"}, notShown: []string{"T-msg"}},
		{level: "trace", want: telegraf.Trace, shown: []string{"D-msg", "T-msg"}},
		{level: "verbose", wantError: true},
	}
	for _, tc := range cases {
		t.Run(tc.level, func(t *testing.T) {
			lvl, err := ParseLevel(tc.level)
			if tc.wantError {
				if err == nil || !strings.Contains(err.Error(), `"verbose"`) {
					t.Fatalf("ParseLevel(%q) = %v, want an error naming it", tc.level, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			l := New(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: lvl})))
			if got := l.Level(); got != tc.want {
				t.Errorf("Level() = %v, want %v", got, tc.want)
			}
			l.AddAttribute("plugin", "inputs.gstats")
			l.Errorf("E-%s", "msg")
			l.Warn("W-msg")
			l.Infof("I-%s", "msg")
			l.Debug("D-msg")
			l.Tracef("T-%s", "msg")
			out := buf.String()
			for _, s := range tc.shown {
				if !strings.Contains(out, s) {
					t.Errorf("output lacks %q:\n%s", s, out)
				}
			}
			for _, s := range tc.notShown {
				if strings.Contains(out, s) {
					t.Errorf("output has %q:\n%s", s, out)
				}
			}
			if !strings.Contains(out, "plugin=inputs.gstats") {
				t.Errorf("attribute missing:\n%s", out)
			}
		})
	}
}
