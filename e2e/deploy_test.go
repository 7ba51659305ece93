package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// unitFile reads a systemd unit into section -> key -> values (a key may
// repeat).
func unitFile(t *testing.T, rel string) map[string]map[string][]string {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot(t), "deploy", rel))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	out := map[string]map[string][]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			out[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("deploy/%s:%d: not a unit file line: %q", rel, n, line)
			}
			out[section][strings.TrimSpace(k)] = append(out[section][strings.TrimSpace(k)], strings.TrimSpace(v))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func one(t *testing.T, unit map[string]map[string][]string, section, key string) string {
	t.Helper()
	v := unit[section][key]
	if len(v) != 1 {
		t.Fatalf("[%s] %s: %q, want one value", section, key, v)
	}
	return v[0]
}

// TestIntegrationSystemdUnit runs the standalone unit's commands as systemd
// would: ExecStart (with the binary and config paths of this checkout),
// ExecReload, then KillSignal, within TimeoutStopSec.
func TestIntegrationSystemdUnit(t *testing.T) {
	integration(t)
	unit := unitFile(t, "systemd/gstats-collectd.service")
	const installed, conf = "/usr/local/bin/gstats-collectd", "/etc/gstats/gstats.conf"
	start := one(t, unit, "Service", "ExecStart")
	if start != installed+" --config "+conf {
		t.Fatalf("ExecStart = %q", start)
	}
	if one(t, unit, "Service", "KillSignal") != "SIGTERM" || one(t, unit, "Install", "WantedBy") != "multi-user.target" {
		t.Errorf("unit: %v", unit)
	}
	stopWithin, err := time.ParseDuration(one(t, unit, "Service", "TimeoutStopSec"))
	if err != nil {
		t.Fatal(err)
	}

	// The installed config is the root sample.conf; the test moves the
	// sockets to free ports and the output to a file.
	sample, err := os.ReadFile(filepath.Join(repoRoot(t), "sample.conf"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "out.lp")
	text := strings.Replace(string(sample), `files = ["stdout"]`, fmt.Sprintf("files = [%q]", out), 1)
	text = strings.Replace(text, "[[inputs.gstats]]\n", "[[inputs.gstats]]\n  stats_address = \"tcp://127.0.0.1:*\"\n  comm_address = \"tcp://127.0.0.1:*\"\n", 1)
	if !strings.Contains(text, `http_address = "127.0.0.1:8002"`) {
		t.Fatal("root sample.conf no longer enables the HTTP listener at 127.0.0.1:8002")
	}
	text = strings.Replace(text, `http_address = "127.0.0.1:8002"`, `http_address = "127.0.0.1:0"`, 1)
	confPath := writeFile(t, dir, "gstats.conf", text)
	args := strings.Fields(strings.NewReplacer(installed, bin.Collectd, conf, confPath).Replace(start))
	p := startProcess(t, "gstats-collectd", exec.Command(args[0], args[1:]...), false)
	statsAddr, commAddr := endpointsIn(t, p)
	c := newCollector(p, statsAddr, commAddr)

	push := pushSocket(t, statsAddr)
	for range 10 {
		sendFrames(t, push, "unit", "")
		sendFrames(t, push, "unit", "12.5", "200")
	}
	waitSettled(t, c, "unit", 10)

	// ExecReload resets the statistics.
	reload := strings.ReplaceAll(one(t, unit, "Service", "ExecReload"), "$MAINPID", strconv.Itoa(p.cmd.Process.Pid))
	rargs := strings.Fields(reload)
	if b, err := exec.Command(rargs[0], rargs[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("ExecReload %q: %v\n%s", reload, err, b)
	}
	waitFor := time.Now().Add(settleTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		st, err := c.client.Stats(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := st["unit"]; !ok {
			break
		}
		if time.Now().After(waitFor) {
			t.Fatalf("ExecReload did not reset the statistics: %v", st)
		}
		time.Sleep(pollInterval)
	}

	// After the reset: 3 more requests, then the stop.
	for range 3 {
		sendFrames(t, push, "unit", "")
		sendFrames(t, push, "unit", "1", "503")
	}
	waitSettled(t, c, "unit", 3)
	t0 := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(stopWithin):
		t.Fatalf("gstats-collectd did not stop within TimeoutStopSec=%s", stopWithin)
	}
	if p.err != nil {
		t.Fatalf("gstats-collectd exited with %v after SIGTERM:\n%s", p.err, p.log())
	}
	t.Logf("stopped in %s", time.Since(t0).Round(time.Millisecond))
	m := lastMetric(lineProtocol(t, out), "gstats", "unit")
	if intField(m, "finished") != 3 || intField(m, "status_5xx") != 3 {
		t.Errorf("the last metric written: %v; want finished = status_5xx = 3", m)
	}
	if host, _ := m.GetTag("host"); host == "" {
		t.Errorf("no host tag: %v", m)
	}
}

// TestTelegrafDropInMatchesSnippet checks that the telegraf.service
// drop-in asserts the very paths the execd snippet runs.
func TestTelegrafDropInMatchesSnippet(t *testing.T) {
	unit := unitFile(t, "systemd/telegraf.service.d/gstats.conf")
	snippet := readDeploy(t, "telegraf/telegraf.d/gstats.conf")
	for _, key := range []string{"AssertPathExists", "AssertFileIsExecutable"} {
		path := one(t, unit, "Unit", key)
		if !strings.Contains(snippet, fmt.Sprintf("%q", path)) {
			t.Errorf("drop-in %s=%s is not in the execd command of deploy/telegraf/telegraf.d/gstats.conf", key, path)
		}
	}
	if _, err := time.ParseDuration(one(t, unit, "Service", "TimeoutStopSec")); err != nil {
		t.Error(err)
	}
}
