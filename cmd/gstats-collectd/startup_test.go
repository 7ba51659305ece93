package main

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// holdPort listens on a loopback TCP port until the test ends and returns
// its address: a port that is certainly in use, with no race, since the
// test itself holds it.
func holdPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l.Addr().String()
}

// TestIntegrationStartupFailures runs the built daemon into each way it can
// fail to start and checks that it exits non-zero with a stderr line naming
// the reason: a daemon that exits 1 without a word leaves its operator (and
// a test's log) with nothing to go on. Each case runs standalone, standalone
// with --log-level=error (the reason must not be filtered out), and under
// --execd (the line must carry the "E! " execd reads).
func TestIntegrationStartupFailures(t *testing.T) {
	requireBinaries(t)
	dir := t.TempDir()
	regular := filepath.Join(dir, "regular")
	if err := os.WriteFile(regular, []byte("not a directory\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	badKey := filepath.Join(dir, "bad.key_secret")
	if err := os.WriteFile(badKey, []byte("secret-key = \"not a Z85 key\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missingKey := filepath.Join(dir, "missing.key_secret")
	busy := holdPort(t)

	cases := []struct {
		name string
		// settings are lines of the [[inputs.gstats]] section; the
		// addresses are the wildcard ones unless settings set them.
		settings []string
		args     []string // further command-line options
		want     []string // all on one stderr line
	}{
		{name: "stats address in use", settings: []string{`stats_address = "tcp://` + busy + `"`},
			want: []string{"cannot bind stats socket", busy, "address already in use"}},
		{name: "control address in use", settings: []string{`comm_address = "tcp://` + busy + `"`},
			want: []string{"cannot bind control socket", busy, "address already in use"}},
		{name: "HTTP address in use", settings: []string{`http_address = "` + busy + `"`},
			want: []string{"cannot listen for HTTP", busy, "address already in use"}},
		{name: "pprof address in use", args: []string{"--pprof-addr", busy},
			want: []string{"--pprof-addr", "address already in use"}},
		{name: "unknown key", settings: []string{`windw = "30s"`},
			want: []string{"unknown key", "inputs.gstats.windw"}},
		{name: "bad value", settings: []string{`window = "-5s"`},
			want: []string{"invalid configuration", "window must be positive"}},
		{name: "bad value type", settings: []string{`window_slots = "ten"`},
			want: []string{"window_slots"}},
		{name: "bad buffer length flag", args: []string{"-l", "0"},
			want: []string{"-l/--buffer-length"}},
		{name: "state directory missing", settings: []string{fmt.Sprintf("state_file = %q", filepath.Join(dir, "missing", "state"))},
			want: []string{"state_file", filepath.Join(dir, "missing"), "does not exist"}},
		// Tests run as root, who may write anywhere: a path under a
		// regular file is a directory no one can use.
		{name: "state directory unusable", settings: []string{fmt.Sprintf("state_file = %q", filepath.Join(regular, "state"))},
			want: []string{"state_file", regular, "not a directory"}},
		{name: "malformed secret key", settings: []string{fmt.Sprintf("curve_secret_key_file = %q", badKey)},
			want: []string{"curve_secret_key_file", badKey}},
		{name: "missing secret key file", settings: []string{fmt.Sprintf("curve_secret_key_file = %q", missingKey)},
			want: []string{"curve_secret_key_file", missingKey, "no such file"}},
	}
	modes := []struct {
		name   string
		args   []string
		prefix string // of the reason's line
	}{
		{"standalone", nil, "gstats-collectd: "},
		{"log level error", []string{"--log-level", "error"}, "gstats-collectd: "},
		{"execd", []string{"--execd"}, "E! "},
	}
	for _, tc := range cases {
		for _, mode := range modes {
			t.Run(tc.name+"/"+mode.name, func(t *testing.T) {
				t.Parallel()
				text := "[[inputs.gstats]]\n"
				settings := strings.Join(tc.settings, "\n")
				if !strings.Contains(settings, "stats_address") {
					text += "  stats_address = \"tcp://127.0.0.1:*\"\n"
				}
				if !strings.Contains(settings, "comm_address") {
					text += "  comm_address = \"tcp://127.0.0.1:*\"\n"
				}
				for _, s := range tc.settings {
					text += "  " + s + "\n"
				}
				args := append([]string{"--config", writeConfig(t, text)}, mode.args...)
				args = append(args, tc.args...)
				d := launch(t, args...)
				code := d.wait(t, exitTimeout)
				stderr := d.stderr.String()
				if code == 0 {
					t.Fatalf("gstats-collectd %q exited 0; stderr:\n%s", args, stderr)
				}
				if code != 1 {
					t.Errorf("gstats-collectd %q exit code %d, want 1", args, code)
				}
				found := false
				for _, line := range strings.Split(stderr, "\n") {
					if !strings.HasPrefix(line, mode.prefix) {
						continue
					}
					all := true
					for _, w := range tc.want {
						all = all && strings.Contains(line, w)
					}
					found = found || all
				}
				if !found {
					t.Errorf("gstats-collectd %q exited %d without a stderr line starting %q naming %q; stderr:\n%s", args, code, mode.prefix, tc.want, stderr)
				}
				for _, not := range []string{"listening:", "stop signal received", "QUIT received"} {
					if strings.Contains(stderr, not) {
						t.Errorf("stderr of a failed start has %q:\n%s", not, stderr)
					}
				}
			})
		}
	}
}

// TestStdlogWriter checks that lines written through Go's standard logger
// keep their Telegraf level, and that a line without one (such as the last
// words of a log.Fatal) is written at the configured level at least, never
// filtered out.
func TestStdlogWriter(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelError}))
	w := stdlogWriter{log: log, floor: slog.LevelError}
	for _, line := range []string{"fatal: no way on\n", "D! [outputs.file] a detail\n", "E! [outputs.file] broken\n", "I! chatter\n", "\n"} {
		if n, err := w.Write([]byte(line)); n != len(line) || err != nil {
			t.Errorf("Write(%q) = %d, %v", line, n, err)
		}
	}
	out := buf.String()
	for _, want := range []string{`level=ERROR msg="fatal: no way on"`, `level=ERROR msg=broken plugin=outputs.file`} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for _, not := range []string{"a detail", "chatter"} {
		if strings.Contains(out, not) {
			t.Errorf("output has %q, below the level:\n%s", not, out)
		}
	}
}
