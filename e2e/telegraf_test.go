package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/plugins/parsers/influx"

	"github.com/gstats/gstats/internal/testbin"
	"github.com/gstats/gstats/wire"
)

// telegrafTags are the plugins the stock Telegraf of these tests has.
const telegrafTags = "custom,inputs.execd,outputs.file,outputs.influxdb,serializers.influx,parsers.influx"

// repoRoot is the repository, one level above this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// Telegraf builds, once per test binary, into bin.Dir.
var (
	stockTelegraf = sync.OnceValues(func() (string, error) {
		out := filepath.Join(bin.Dir, "telegraf")
		ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
		defer cancel()
		v, err := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Version}}", "github.com/influxdata/telegraf").Output()
		if err != nil {
			return "", fmt.Errorf("finding Telegraf's version in go.mod: %w", err)
		}
		version := strings.TrimPrefix(strings.TrimSpace(string(v)), "v")
		cmd := exec.CommandContext(ctx, "go", "build", "-tags", telegrafTags,
			"-ldflags", "-X github.com/influxdata/telegraf/internal.Version="+version,
			"-o", out, "github.com/influxdata/telegraf/cmd/telegraf")
		if b, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("building Telegraf (%s): %w\n%s", strings.Join(cmd.Args, " "), err, b)
		}
		return out, nil
	})
	gstatsTelegraf = sync.OnceValues(func() (string, error) {
		out := filepath.Join(bin.Dir, "telegraf-gstats")
		ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, filepath.Join("..", "deploy", "telegraf", "build-telegraf.sh"), out)
		if b, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("building Telegraf with gstats compiled in: %w\n%s", err, b)
		}
		return out, nil
	})
)

func requireBinary(t *testing.T, build func() (string, error)) string {
	t.Helper()
	path, err := build()
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// readDeploy returns a file under deploy/ with each old string replaced by
// its new one; every old string must occur.
func readDeploy(t *testing.T, rel string, oldNew ...string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", rel))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for i := 0; i < len(oldNew); i += 2 {
		if !strings.Contains(s, oldNew[i]) {
			t.Fatalf("deploy/%s no longer contains %q", rel, oldNew[i])
		}
		s = strings.ReplaceAll(s, oldNew[i], oldNew[i+1])
	}
	return s
}

func writeFile(t *testing.T, dir, name, text string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// execdSnippet writes the deployed execd snippet and its plugin file into
// dir, with the collector on free loopback ports and the built binary, plus
// the further old/new replacements of the snippet; it returns the
// snippet's path.
func execdSnippet(t *testing.T, dir string, oldNew ...string) string {
	t.Helper()
	plugin := writeFile(t, dir, "plugin.conf", readDeploy(t, "telegraf/plugin.conf",
		`stats_address = "tcp://127.0.0.2:2345"`, `stats_address = "tcp://127.0.0.1:*"`,
		`comm_address = "tcp://127.0.0.1:2345"`, `comm_address = "tcp://127.0.0.1:*"`))
	return writeFile(t, dir, "gstats.conf", readDeploy(t, "telegraf/telegraf.d/gstats.conf",
		append([]string{"/usr/local/bin/gstats-collectd", bin.Collectd, "/etc/gstats/plugin.conf", plugin}, oldNew...)...))
}

// agentConf is Telegraf's [agent] section for the tests.
func agentConf(interval string) string {
	return fmt.Sprintf(`[agent]
  interval = %q
  flush_interval = %q
  round_interval = false
  collection_jitter = "0s"
  flush_jitter = "0s"
  omit_hostname = true
  debug = true
`, interval, interval)
}

// startTelegraf runs a Telegraf binary with the given config files; the
// caller stops it.
func startTelegraf(t *testing.T, binary string, configs ...string) *process {
	t.Helper()
	args := []string{"--non-strict-env-handling"}
	for _, c := range configs {
		args = append(args, "--config", c)
	}
	return startProcess(t, "telegraf", exec.Command(binary, args...), true)
}

// waitLog polls p's log until re matches, and returns the match.
func waitLog(t *testing.T, p *process, re *regexp.Regexp, what string) []string {
	t.Helper()
	deadline := time.Now().Add(startTimeout)
	for {
		if m := re.FindStringSubmatch(p.log()); m != nil {
			return m
		}
		if p.exited() {
			t.Fatalf("%s exited before %s: %v\n%s", p.name, what, p.err, p.log())
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s not seen within %s:\n%s", p.name, what, startTimeout, p.log())
		}
		time.Sleep(pollInterval)
	}
}

// endpointsIn waits for the collector's listening line in p's log.
func endpointsIn(t *testing.T, p *process) (stats, comm string) {
	t.Helper()
	deadline := time.Now().Add(startTimeout)
	for {
		if s, c, ok := testbin.Endpoints(p.log()); ok {
			return s, c
		}
		if p.exited() {
			t.Fatalf("%s exited before the collector listened: %v\n%s", p.name, p.err, p.log())
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the collector did not listen within %s:\n%s", p.name, startTimeout, p.log())
		}
		time.Sleep(pollInterval)
	}
}

// lineProtocol parses a line-protocol file (a missing file is empty).
func lineProtocol(t *testing.T, path string) []telegraf.Metric {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	p := &influx.Parser{}
	if err := p.Init(); err != nil {
		t.Fatal(err)
	}
	ms, err := p.Parse(b)
	if err != nil {
		t.Fatalf("%s is not line protocol: %v\n%s", path, err, b)
	}
	return ms
}

// lastMetric is the last metric named name (with tag prefix, when given) in
// ms, or nil.
func lastMetric(ms []telegraf.Metric, name, prefix string) telegraf.Metric {
	for i := len(ms) - 1; i >= 0; i-- {
		if ms[i].Name() != name {
			continue
		}
		if p, _ := ms[i].GetTag("prefix"); prefix != "" && p != prefix {
			continue
		}
		return ms[i]
	}
	return nil
}

func intField(m telegraf.Metric, key string) int64 {
	if m == nil {
		return -1
	}
	v, ok := m.GetField(key)
	if !ok {
		return -1
	}
	n, _ := v.(int64)
	return n
}

// waitFileMetric polls a line-protocol file until its last metric name (for
// prefix) satisfies cond.
func waitFileMetric(t *testing.T, path, name, prefix, what string, cond func(telegraf.Metric) bool) telegraf.Metric {
	t.Helper()
	deadline := time.Now().Add(settleTimeout)
	for {
		m := lastMetric(lineProtocol(t, path), name, prefix)
		if m != nil && cond(m) {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s not seen within %s; last %s: %v", path, what, settleTimeout, name, m)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// traffic is a mix of requests through gunicorn and what the collector must
// count for it.
type traffic struct {
	reqs                []request
	ok, notFound, error int
}

func mixedTraffic(n int) traffic {
	reqs, _ := originalTraffic(n)
	tr := traffic{reqs: reqs}
	for _, r := range reqs {
		switch {
		case r.want == http.StatusNotFound:
			tr.notFound++
		case r.want >= 500:
			tr.error++
		default:
			tr.ok++
		}
	}
	return tr
}

// statusGunicorn starts gunicorn with the example hooks, which send the
// status frame, reporting to statsAddr.
func statusGunicorn(t *testing.T, statsAddr, prefix string) *gunicorn {
	t.Helper()
	return startGunicorn(t, gunicornOptions{
		Config:      filepath.Join(repoRoot(t), "examples", "gunicorn", "gunicorn.conf.py"),
		WorkerClass: "sync",
		Workers:     2,
		Threads:     1,
		StatsAddr:   statsAddr,
		Prefix:      prefix,
	})
}

// checkInflux asserts the newest gstats point of prefix in InfluxDB counts
// want finished requests with the status classes of tr (plus the probes,
// all 200), and holds the percentiles.
func checkInflux(t *testing.T, db *influxDB, database, prefix string, want int, tr traffic) {
	t.Helper()
	f := db.waitFields(t, database, "gstats", prefix, fmt.Sprintf("finished = %d", want), func(f map[string]any) bool {
		return num(f, "finished") == float64(want)
	})
	if num(f, "started") != float64(want) || num(f, "in_flight") != 0 {
		t.Errorf("InfluxDB point: started %v, in_flight %v; want %d, 0", f["started"], f["in_flight"], want)
	}
	if num(f, "status_4xx") != float64(tr.notFound) || num(f, "status_5xx") != float64(tr.error) ||
		num(f, "status_2xx") != float64(want-tr.notFound-tr.error) {
		t.Errorf("InfluxDB status classes %v/%v/%v, want 2xx %d, 4xx %d, 5xx %d", f["status_2xx"], f["status_4xx"], f["status_5xx"],
			want-tr.notFound-tr.error, tr.notFound, tr.error)
	}
	for _, p := range []string{"p50_ms", "p90_ms", "p95_ms", "p99_ms", "mean_ms", "max_ms"} {
		if num(f, p) < 0 {
			t.Errorf("InfluxDB point has no %s: %v", p, f)
		}
	}
	if num(f, "p99_ms") < sleepMs || num(f, "max_ms") < sleepMs {
		t.Errorf("p99_ms %v, max_ms %v: the /sleep requests took at least %d ms", f["p99_ms"], f["max_ms"], sleepMs)
	}
}

// execdPID reads the pid gstats-collectd logs when it starts under execd.
var execdPID = regexp.MustCompile(`starting gstats-collectd under execd .*pid=(\d+)`)

func TestIntegrationTelegrafExecdToInfluxDB(t *testing.T) {
	integration(t)
	telegrafBin := requireBinary(t, stockTelegraf)
	cases := []struct {
		name   string
		signal string // execd's signal
		poll   string // gstats-collectd --poll-interval
		every  string // Telegraf's interval and flush interval
	}{
		// The deployed snippet: gather when Telegraf asks on stdin.
		{"signal STDIN", "STDIN", "0", "1s"},
		// The collector's own timer.
		{"signal none", "none", "1s", "1s"},
		// No gather before the stop: everything comes from the final one.
		{"final gather on stop", "STDIN", "0", "1h"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db := startInfluxDB(t)
			dir := t.TempDir()
			snippet := execdSnippet(t, dir,
				`"--poll-interval", "0"`, fmt.Sprintf(`"--poll-interval", %q`, tc.poll),
				`signal = "STDIN"`, fmt.Sprintf(`signal = %q`, tc.signal),
				`restart_delay = "10s"`, `restart_delay = "1s"`)
			out := filepath.Join(dir, "out.lp")
			main := writeFile(t, dir, "telegraf.conf", agentConf(tc.every)+fmt.Sprintf(`
[[outputs.file]]
  files = [%q]
[[outputs.influxdb]]
  urls = [%q]
  database = "gstats"
  timeout = "5s"
`, out, db.URL))
			tg := startTelegraf(t, telegrafBin, main, snippet)
			stopped := false
			t.Cleanup(func() {
				if !stopped {
					tg.stop(t, true)
				}
			})
			statsAddr, commAddr := endpointsIn(t, tg)
			pid, _ := strconv.Atoi(waitLog(t, tg, execdPID, "gstats-collectd's start")[1])

			prefix := "tg-" + strings.ReplaceAll(tc.name, " ", "-")
			g := statusGunicorn(t, statsAddr, prefix)
			tr := mixedTraffic(30)
			send(t, g.URL, tr.reqs, 6)
			want := len(tr.reqs) + g.Probes

			// The control socket answers while Telegraf runs the collector.
			c := newCollector(tg, statsAddr, commAddr)
			st := waitSettled(t, c, prefix, want)
			if st.Started != int64(want) || st.Finished != int64(want) {
				t.Fatalf("STATS under Telegraf: started %d, finished %d, want %d", st.Started, st.Finished, want)
			}
			if tc.every == "1s" {
				checkInflux(t, db, "gstats", prefix, want, tr)
			}

			// Requests just before the stop still reach the outputs.
			more := mixedTraffic(9)
			send(t, g.URL, more.reqs, 3)
			want += len(more.reqs)
			waitSettled(t, c, prefix, want)
			tr.reqs = append(tr.reqs, more.reqs...)
			tr.ok, tr.notFound, tr.error = tr.ok+more.ok, tr.notFound+more.notFound, tr.error+more.error

			stopped = true
			tg.stop(t, true) // exit 0, and no process of its group left
			if !waitGone(pid, stopTimeout) {
				t.Errorf("gstats-collectd (pid %d) still running after Telegraf stopped", pid)
			}
			log := tg.log()
			if !strings.Contains(log, "I! [inputs.execd] gstats-collectd stopped") {
				t.Errorf("gstats-collectd did not log a clean stop under Telegraf:\n%s", log)
			}
			if strings.Contains(log, `E! [inputs.execd] stderr:`) {
				t.Errorf("gstats-collectd wrote unprefixed stderr lines:\n%s", log)
			}
			m := lastMetric(lineProtocol(t, out), "gstats", prefix)
			if intField(m, "finished") != int64(want) || intField(m, "started") != int64(want) {
				t.Errorf("the last metric Telegraf wrote: %v; want started = finished = %d", m, want)
			}
			if intField(m, "status_4xx") != int64(tr.notFound) || intField(m, "status_5xx") != int64(tr.error) {
				t.Errorf("the last metric's status classes: %v; want 4xx %d, 5xx %d", m, tr.notFound, tr.error)
			}
			checkInflux(t, db, "gstats", prefix, want, tr)
			internal := lastMetric(lineProtocol(t, out), "gstats_internal", "")
			if intField(internal, "accepted") != int64(2*want) || intField(internal, "rejected") != 0 {
				t.Errorf("gstats_internal: %v; want accepted %d, rejected 0", internal, 2*want)
			}
		})
	}
}

func TestIntegrationTelegrafExecdBadConfig(t *testing.T) {
	integration(t)
	telegrafBin := requireBinary(t, stockTelegraf)
	cases := []struct {
		name, plugin, want string
	}{
		{"typo", "[[inputs.gstats]]\n  windw = \"5m\"\n", `unknown key(s) "inputs.gstats.windw"`},
		{"bad value", "[[inputs.gstats]]\n  window_slots = 0\n", "window_slots"},
		{"outputs belong to Telegraf", "[[inputs.gstats]]\n[[outputs.file]]\n", "with --execd the file holds only [[inputs.gstats]]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			plugin := writeFile(t, dir, "plugin.conf", tc.plugin)
			snippet := writeFile(t, dir, "gstats.conf", readDeploy(t, "telegraf/telegraf.d/gstats.conf",
				"/usr/local/bin/gstats-collectd", bin.Collectd,
				"/etc/gstats/plugin.conf", plugin,
				`restart_delay = "10s"`, `restart_delay = "200ms"`))
			main := writeFile(t, dir, "telegraf.conf", agentConf("1s")+fmt.Sprintf("[[outputs.file]]\n  files = [%q]\n", filepath.Join(dir, "out.lp")))
			tg := startTelegraf(t, telegrafBin, main, snippet)
			defer tg.stop(t, true)
			// execd restarts the failing process; its error reaches the log.
			line := waitLog(t, tg, regexp.MustCompile(`E! \[inputs\.execd\] gstats-collectd: [^\n]*`+regexp.QuoteMeta(tc.want)+`[^\n]*`), "the configuration error in Telegraf's log")
			if !strings.Contains(line[0], plugin) {
				t.Errorf("the error does not name the file %s: %s", plugin, line[0])
			}
		})
	}
}

func TestIntegrationTelegrafCompiledIn(t *testing.T) {
	integration(t)
	telegrafBin := requireBinary(t, gstatsTelegraf)
	dir := t.TempDir()
	out := filepath.Join(dir, "out.lp")
	main := writeFile(t, dir, "telegraf.conf", agentConf("1s")+fmt.Sprintf(`
[[inputs.gstats]]
  stats_address = "tcp://127.0.0.1:*"
  comm_address = "tcp://127.0.0.1:*"
  percentiles = [50.0, 99.9]
[[inputs.internal]]
[[outputs.file]]
  files = [%q]
`, out))
	tg := startTelegraf(t, telegrafBin, main)
	defer tg.stop(t, true)
	statsAddr, commAddr := endpointsIn(t, tg)

	push := pushSocket(t, statsAddr)
	const n = 200
	for i := range n {
		sendFrames(t, push, "compiled", "")
		sendFrames(t, push, "compiled", strconv.Itoa(1+i%50), "200")
	}
	m := waitFileMetric(t, out, "gstats", "compiled", fmt.Sprintf("finished = %d", n), func(m telegraf.Metric) bool {
		return intField(m, "finished") == n
	})
	if _, ok := m.GetField("p99_9_ms"); !ok {
		t.Errorf("no p99_9_ms field for percentile 99.9: %v", m)
	}
	if v, _ := m.GetField("max_ms"); v != 50.0 {
		t.Errorf("max_ms = %v, want 50", v)
	}
	// The self-metrics reach [[inputs.internal]] through selfstat.
	internal := waitFileMetric(t, out, "internal_gstats", "", fmt.Sprintf("accepted = %d", 2*n), func(m telegraf.Metric) bool {
		return intField(m, "accepted") == 2*n
	})
	if addr, _ := internal.GetTag("stats_address"); addr != statsAddr {
		t.Errorf("internal_gstats stats_address tag %q, want %q", addr, statsAddr)
	}
	// The control socket answers; QUIT is refused inside Telegraf.
	client := wire.NewClient(wire.ClientOptions{Address: commAddr, Timeout: requestTimeout})
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	st, err := client.Stats(ctx)
	if err != nil || st["compiled"].Finished != n {
		t.Errorf("STATS: %v, %v", st["compiled"], err)
	}
	if err := client.Quit(ctx); !errors.Is(err, wire.ErrCommandRefused) {
		t.Errorf("QUIT inside Telegraf: %v, want refused", err)
	}
}

func TestIntegrationStandaloneToInfluxDB(t *testing.T) {
	integration(t)
	db := startInfluxDB(t)
	dir := t.TempDir()
	conf := writeFile(t, dir, "gstats.conf", fmt.Sprintf(`
[agent]
  interval = "1s"
  flush_interval = "1s"
  hostname = "app-host-1"
[global_tags]
  role = "web"
[[inputs.gstats]]
  stats_address = "tcp://127.0.0.1:*"
  comm_address = "tcp://127.0.0.1:*"
[[outputs.influxdb]]
  urls = [%q]
  database = "standalone"
  timeout = "5s"
`, db.URL))
	p := startProcess(t, "gstats-collectd", exec.Command(bin.Collectd, "--config", conf), false)
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			p.stop(t, false)
		}
	})
	statsAddr, commAddr := endpointsIn(t, p)
	c := newCollector(p, statsAddr, commAddr)

	g := statusGunicorn(t, statsAddr, "standalone")
	tr := mixedTraffic(30)
	send(t, g.URL, tr.reqs, 6)
	want := len(tr.reqs) + g.Probes
	waitSettled(t, c, "standalone", want)
	checkInflux(t, db, "standalone", "standalone", want, tr)

	tags := db.query(t, "standalone", `SHOW TAG VALUES FROM "gstats" WITH KEY IN ("host", "role")`)
	if len(tags) != 1 || fmt.Sprint(tags[0].Values) != "[[host app-host-1] [role web]]" {
		t.Errorf("host and global tags: %+v", tags)
	}

	// Stopping flushes what arrived since the last interval.
	more := mixedTraffic(9)
	send(t, g.URL, more.reqs, 3)
	want += len(more.reqs)
	waitSettled(t, c, "standalone", want)
	stopped = true
	p.stop(t, false)
	f := db.lastFields(t, "standalone", "gstats", "standalone")
	if num(f, "finished") != float64(want) {
		t.Errorf("after the stop InfluxDB holds finished = %v, want %d", f["finished"], want)
	}
}

// pushSocket is a PUSH socket connected to addr, closed at cleanup.
func pushSocket(t *testing.T, addr string) *zmq.Socket {
	t.Helper()
	s, err := zmq.NewSocket(zmq.PUSH)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if err := s.SetLinger(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := s.SetSndtimeo(requestTimeout); err != nil {
		t.Fatal(err)
	}
	if err := s.Connect(addr); err != nil {
		t.Fatal(err)
	}
	return s
}

// sendFinish sends a finish of ms milliseconds, with a status frame unless
// status is "".
func sendFinish(t *testing.T, s *zmq.Socket, prefix, ms, status string) {
	t.Helper()
	if status == "" {
		sendFrames(t, s, prefix, ms)
		return
	}
	sendFrames(t, s, prefix, ms, status)
}

func sendFrames(t *testing.T, s *zmq.Socket, frames ...string) {
	t.Helper()
	parts := make([]any, len(frames))
	for i, f := range frames {
		parts[i] = f
	}
	if _, err := s.SendMessage(parts...); err != nil {
		t.Fatalf("sending %q: %v", frames, err)
	}
}
