package logging

import (
	"bytes"
	"context"
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

func TestPrefixHandler(t *testing.T) {
	cases := []struct {
		name  string
		level slog.Level
		log   func(*slog.Logger)
		want  string
	}{
		{"info with attrs", slog.LevelInfo, func(l *slog.Logger) { l.Info("listening", "addr", "tcp://127.0.0.1:1", "n", 3) },
			"I! listening addr=tcp://127.0.0.1:1 n=3\n"},
		{"error", slog.LevelInfo, func(l *slog.Logger) { l.Error("bad") }, "E! bad\n"},
		{"warn", slog.LevelInfo, func(l *slog.Logger) { l.Warn("careful") }, "W! careful\n"},
		{"debug hidden at info", slog.LevelInfo, func(l *slog.Logger) { l.Debug("noise") }, ""},
		{"debug shown at debug", slog.LevelDebug, func(l *slog.Logger) { l.Debug("noise") }, "D! noise\n"},
		{"trace", LevelTrace, func(l *slog.Logger) { l.Log(context.Background(), LevelTrace, "fine") }, "T! fine\n"},
		{"newlines kept on one line", slog.LevelInfo, func(l *slog.Logger) { l.Info("a\nb", "k", "x\ny") },
			"I! a\\nb k=x\\ny\n"},
		{"quoted values", slog.LevelInfo, func(l *slog.Logger) { l.Info("m", "k", "two words", "e", "") },
			"I! m k=\"two words\" e=\"\"\n"},
		{"With and group", slog.LevelInfo, func(l *slog.Logger) { l.With("plugin", "inputs.gstats").WithGroup("g").Info("m", "k", 1) },
			"I! m plugin=inputs.gstats g.k=1\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var buf strings.Builder
			c.log(slog.New(NewPrefixHandler(&buf, c.level)))
			if buf.String() != c.want {
				t.Errorf("got %q, want %q", buf.String(), c.want)
			}
		})
	}
}

func TestParseTelegrafLine(t *testing.T) {
	cases := []struct {
		line   string
		level  slog.Level
		msg    string
		plugin string
	}{
		{"2026-11-25T15:04:05Z E! [outputs.influxdb] when writing to [http://x]: timeout", slog.LevelError, "when writing to [http://x]: timeout", "outputs.influxdb"},
		{"2026-11-25T15:04:05Z W! [agent] slow", slog.LevelWarn, "slow", "agent"},
		{"D! [outputs.file] Wrote batch of 3 metrics in 1ms", slog.LevelDebug, "Wrote batch of 3 metrics in 1ms", "outputs.file"},
		{"2026-11-25T15:04:05Z D! [outputs.file] (category=outputs,plugin=file) Wrote batch", slog.LevelDebug, "Wrote batch", "outputs.file"},
		{"2026-11-25T15:04:05Z I! plain message", slog.LevelInfo, "plain message", ""},
		{"2026-11-25T15:04:05Z T! [x] t", LevelTrace, "t", "x"},
		{"no level here", slog.LevelInfo, "no level here", ""},
		{"X! odd", slog.LevelInfo, "X! odd", ""},
		{"", slog.LevelInfo, "", ""},
	}
	for _, c := range cases {
		level, msg, attrs := ParseTelegrafLine(c.line)
		plugin := ""
		if len(attrs) == 2 {
			plugin, _ = attrs[1].(string)
		}
		if level != c.level || msg != c.msg || plugin != c.plugin {
			t.Errorf("ParseTelegrafLine(%q) = %v, %q, %q; want %v, %q, %q", c.line, level, msg, plugin, c.level, c.msg, c.plugin)
		}
	}
}

func TestLineWriter(t *testing.T) {
	var buf strings.Builder
	w := NewLineWriter(slog.New(NewPrefixHandler(&buf, slog.LevelDebug)))
	// A line may arrive in pieces; only whole lines are logged.
	for _, part := range []string{"2026-11-25T15:04:05Z E! [outputs.file] bro", "ken\n2026-11-25T15:04:05Z D! [agent] x\n", "tail"} {
		if _, err := w.Write([]byte(part)); err != nil {
			t.Fatal(err)
		}
	}
	want := "E! broken plugin=outputs.file\nD! x plugin=agent\n"
	if buf.String() != want {
		t.Errorf("got %q, want %q", buf.String(), want)
	}
}

func FuzzParseTelegrafLine(f *testing.F) {
	for _, s := range []string{"2026-11-25T15:04:05Z E! [outputs.influxdb] x", "I! y", "", "E!", "[a] b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		level, msg, attrs := ParseTelegrafLine(line)
		if len(attrs) != 0 && len(attrs) != 2 {
			t.Fatalf("attrs %v", attrs)
		}
		if level < LevelTrace || level > slog.LevelError {
			t.Fatalf("level %v", level)
		}
		if !strings.Contains(line, msg) {
			t.Fatalf("message %q not part of line %q", msg, line)
		}
	})
}
