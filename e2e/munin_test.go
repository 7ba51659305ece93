package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gstats/gstats/internal/testbin"
	"github.com/gstats/gstats/internal/testport"
	"github.com/gstats/gstats/wire"
)

// Debian's munin-node tools, which these tests run for real.
const (
	muninRunPath       = "/usr/sbin/munin-run"
	muninConfigurePath = "/usr/sbin/munin-node-configure"
	muninHint          = "install with: apt-get install munin-node"
	// muninRunTimeout bounds one munin-run; munin-run itself does not
	// enforce the plug-in timeout.
	muninRunTimeout = 30 * time.Second
	// muninLimit is munin-node's default plug-in timeout: every answer,
	// collector down included, must come well within it.
	muninLimit = 10 * time.Second
)

// muninBases are the four wildcard plug-ins.
var muninBases = []string{"gunicorn-requests_", "gunicorn-request-time_", "gstats-latency_", "gstats-status_"}

// gstatsMunin builds cmd/gstats-munin, once per test binary, into bin.Dir.
var gstatsMunin = sync.OnceValues(func() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	if err := testbin.Build(ctx, bin.Dir, "github.com/gstats/gstats/cmd/gstats-munin"); err != nil {
		return "", err
	}
	return filepath.Join(bin.Dir, "gstats-munin"), nil
})

// requireMunin fails t unless munin-run and munin-node-configure are
// installed.
func requireMunin(t *testing.T) {
	t.Helper()
	for _, p := range []string{muninRunPath, muninConfigurePath} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("munin-node tools missing: %v; %s", err, muninHint)
		}
	}
}

// muninNode is a munin-node layout in a temporary directory that the
// plug-ins' user (nobody) can read: lib holds the plug-in scripts with
// gstats-munin beside them, service the links, conf plugin-conf.d.
type muninNode struct {
	root, lib, service, conf string
}

// newMuninNode installs the plug-ins from munin/plugins and the built
// gstats-munin into a new layout, with conf as plugin-conf.d/gstats.
func newMuninNode(t *testing.T, conf string) *muninNode {
	t.Helper()
	requireMunin(t)
	binary := requireBinary(t, gstatsMunin)
	// t.TempDir is not searchable by nobody; this directory is.
	root, err := os.MkdirTemp("", "gstats-munin-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(root) })
	m := &muninNode{root: root, lib: filepath.Join(root, "lib"), service: filepath.Join(root, "service"), conf: filepath.Join(root, "conf")}
	for _, d := range []string{root, m.lib, m.service, m.conf} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range muninBases {
		copyFile(t, filepath.Join(repoRoot(t), "munin", "plugins", b), filepath.Join(m.lib, b), 0o755)
	}
	copyFile(t, binary, filepath.Join(m.lib, "gstats-munin"), 0o755)
	writeFile(t, m.conf, "gstats", conf)
	return m
}

func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dst, mode); err != nil {
		t.Fatal(err)
	}
}

// link links plug-in base as base+label in the service directory; an
// empty label gives the bare name munin-node-configure runs.
func (m *muninNode) link(t *testing.T, base, label string) {
	t.Helper()
	if err := os.Symlink(filepath.Join(m.lib, base), filepath.Join(m.service, base+label)); err != nil && !errors.Is(err, os.ErrExist) {
		t.Fatal(err)
	}
}

// muninResult is what one munin-run printed.
type muninResult struct {
	stdout, stderr string
	code           int
	elapsed        time.Duration
}

// run runs munin-run on service with args (config, autoconf, suggest or
// none for fetch) in a clean environment plus env ("NAME=value").
func (m *muninNode) run(t *testing.T, env []string, service string, args ...string) muninResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), muninRunTimeout)
	defer cancel()
	argv := append([]string{"--servicedir", m.service, "--sconfdir", m.conf, service}, args...)
	cmd := exec.CommandContext(ctx, muninRunPath, argv...)
	cmd.Env = append([]string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C.UTF-8"}, env...)
	var out, errOut testbin.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	start := time.Now()
	err := cmd.Run()
	r := muninResult{stdout: out.String(), stderr: errOut.String(), elapsed: time.Since(start)}
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("munin-run %s %v did not finish within %s; stderr: %s", service, args, muninRunTimeout, r.stderr)
	case err == nil:
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	default:
		t.Fatalf("running munin-run %s %v: %v", service, args, err)
	}
	return r
}

// ok runs munin-run like run and fails t unless it exits 0 within munin's
// plug-in timeout; it returns stdout.
func (m *muninNode) ok(t *testing.T, env []string, service string, args ...string) string {
	t.Helper()
	r := m.run(t, env, service, args...)
	if r.code != 0 {
		t.Fatalf("munin-run %s %v exited %d\nstdout:\n%s\nstderr:\n%s", service, args, r.code, r.stdout, r.stderr)
	}
	if r.elapsed >= muninLimit {
		t.Errorf("munin-run %s %v took %s, munin-node gives a plug-in %s", service, args, r.elapsed, muninLimit)
	}
	return r.stdout
}

// muninGolden reads a golden file of the munin package's tests.
func muninGolden(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "munin", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func expectOutput(t *testing.T, what, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("%s:\n%s\nwant:\n%s", what, got, want)
	}
}

// shopTraffic sends what munin/testdata's golden files describe for prefix
// My.Shop-API: 9 starts, and 8 finishes taking 2, 4, 4, 4, 5, 5, 7 and
// 9 ms (average 5, population standard deviation 2), five with status 200,
// one 404, one 503 and one without status.
func shopTraffic(t *testing.T, c *collector) {
	t.Helper()
	push := pushSocket(t, c.StatsAddr)
	const prefix = "My.Shop-API"
	finishes := []struct{ ms, status string }{
		{"2", "200"}, {"4", "200"}, {"4", "404"}, {"4", "200"}, {"5", "503"}, {"5", "200"}, {"7", ""}, {"9", "200"},
	}
	for range 9 {
		sendFrames(t, push, prefix, "")
	}
	for _, f := range finishes {
		sendFinish(t, push, prefix, f.ms, f.status)
	}
	// Prefixes whose labels need normalising, with distinct counts: n
	// requests of 10 ms each.
	for prefix, n := range map[string]int{"Shop.V2-Beta": 3, "UPPER": 2, "": 1, "a.b": 4, "a-b": 5} {
		for range n {
			sendFrames(t, push, prefix, "")
			sendFrames(t, push, prefix, "10", "200")
		}
	}
	c.waitStats(t, prefix, "9 started, 8 finished", func(s wire.PrefixStats) bool { return s.Started == 9 && s.Finished == 8 })
	c.waitStats(t, "a-b", "5 finished", func(s wire.PrefixStats) bool { return s.Finished == 5 })
	for prefix, n := range map[string]int64{"Shop.V2-Beta": 3, "UPPER": 2, "default": 1, "a.b": 4} {
		c.waitStats(t, prefix, fmt.Sprintf("%d finished", n), func(s wire.PrefixStats) bool { return s.Finished == n })
	}
}

// TestIntegrationMuninPlugins runs the four plug-ins with munin-run, as
// munin-node's user, against a real collector fed over a real PUSH socket.
func TestIntegrationMuninPlugins(t *testing.T) {
	integration(t)
	c := startCollector(t)
	shopTraffic(t, c)
	// The plug-ins find gstats-munin next to themselves: no env.gstats_munin.
	m := newMuninNode(t, fmt.Sprintf("[gunicorn-*]\nenv.status_addr %s\n\n[gstats-*]\nenv.status_addr %s\n", c.CommAddr, c.CommAddr))
	labels := []string{"my_shop_api", "shop_v2_beta", "upper", "default", "a_b", "nope"}
	for _, b := range muninBases {
		m.link(t, b, "")
		for _, l := range labels {
			m.link(t, b, l)
		}
	}

	t.Run("original plug-ins match the golden files", func(t *testing.T) {
		for _, b := range []string{"gunicorn-requests_", "gunicorn-request-time_", "gstats-status_"} {
			name := strings.TrimSuffix(b, "_")
			expectOutput(t, b+"my_shop_api config", m.ok(t, nil, b+"my_shop_api", "config"), muninGolden(t, name+".config"))
			expectOutput(t, b+"my_shop_api fetch", m.ok(t, nil, b+"my_shop_api"), muninGolden(t, name+".fetch"))
		}
	})

	t.Run("dirtyconfig", func(t *testing.T) {
		dirty := []string{"MUNIN_CAP_DIRTYCONFIG=1"}
		for _, b := range []string{"gunicorn-requests_", "gunicorn-request-time_", "gstats-status_"} {
			name := strings.TrimSuffix(b, "_")
			expectOutput(t, b+"my_shop_api config with dirtyconfig", m.ok(t, dirty, b+"my_shop_api", "config"),
				muninGolden(t, name+".config")+muninGolden(t, name+".fetch"))
		}
	})

	t.Run("latency", func(t *testing.T) {
		expectOutput(t, "gstats-latency_my_shop_api config", m.ok(t, nil, "gstats-latency_my_shop_api", "config"), muninGolden(t, "gstats-latency.config"))
		// The values are the collector's own percentiles (sketch
		// estimates) and its exact maximum.
		s, _ := c.stats(t, "My.Shop-API")
		var want strings.Builder
		for _, p := range c.info(t).Percentiles {
			i := slices.IndexFunc(s.ProcessingTime.Percentiles, func(q wire.Percentile) bool { return q.P == p })
			if i < 0 {
				t.Fatalf("STATS has no percentile %v: %+v", p, s.ProcessingTime)
			}
			fmt.Fprintf(&want, "p%s.value %s\n", strconv.FormatFloat(p, 'f', -1, 64), wire.AppendFloat(nil, float64(s.ProcessingTime.Percentiles[i].Value)))
		}
		want.WriteString("max.value 9.0\n")
		got := m.ok(t, nil, "gstats-latency_my_shop_api")
		expectOutput(t, "gstats-latency_my_shop_api fetch", got, want.String())
		if !strings.Contains(got, "p50.value ") || !strings.Contains(got, "p99.value ") {
			t.Errorf("no p50 or p99 in the latency fetch:\n%s", got)
		}
	})

	t.Run("labels of odd prefixes", func(t *testing.T) {
		tests := []struct {
			label, prefix string
			n             int
		}{
			{"shop_v2_beta", "Shop.V2-Beta", 3},
			{"upper", "UPPER", 2},
			{"default", "default", 1},
			{"a_b", "a-b", 5}, // "a-b" and "a.b" share the label; the smaller prefix wins
		}
		for _, tt := range tests {
			cfg := m.ok(t, nil, "gunicorn-requests_"+tt.label, "config")
			if want := "graph_title Gunicorn requests for " + tt.prefix + "\n"; !strings.HasPrefix(cfg, want) {
				t.Errorf("gunicorn-requests_%s config starts %q, want %q", tt.label, firstLine(cfg), want)
			}
			expectOutput(t, "gunicorn-requests_"+tt.label+" fetch", m.ok(t, nil, "gunicorn-requests_"+tt.label),
				fmt.Sprintf("started.value %d\nfinished.value %d\n", tt.n, tt.n))
			expectOutput(t, "gunicorn-request-time_"+tt.label+" fetch", m.ok(t, nil, "gunicorn-request-time_"+tt.label),
				"avg_low.value 10.0\navg_std.value 0.0\navg.value 10.0\n")
		}
	})

	t.Run("unknown label", func(t *testing.T) {
		cfg := m.ok(t, nil, "gunicorn-requests_nope", "config")
		want := strings.Replace(muninGolden(t, "gunicorn-requests.config"), "for My.Shop-API\n", "for nope\n", 1)
		expectOutput(t, "gunicorn-requests_nope config", cfg, want)
		r := m.run(t, nil, "gunicorn-requests_nope")
		expectOutput(t, "gunicorn-requests_nope fetch", r.stdout, "started.value U\nfinished.value U\n")
		if r.code != 0 || !strings.Contains(r.stderr, `no prefix with label "nope"`) {
			t.Errorf("fetch of an unknown label: exit %d, stderr %q", r.code, r.stderr)
		}
		expectOutput(t, "gstats-status_nope fetch", m.ok(t, nil, "gstats-status_nope"),
			"s1xx.value U\ns2xx.value U\ns3xx.value U\ns4xx.value U\ns5xx.value U\nnone.value U\n")
	})

	t.Run("autoconf and suggest", func(t *testing.T) {
		for _, b := range muninBases {
			expectOutput(t, b+" autoconf", m.ok(t, nil, b, "autoconf"), "yes\n")
			expectOutput(t, b+" suggest", m.ok(t, nil, b, "suggest"), "a_b\ndefault\nmy_shop_api\nshop_v2_beta\nupper\n")
		}
	})

	t.Run("munin-node-configure", func(t *testing.T) {
		// A layout with only the bare plug-ins and one link: the tool
		// suggests the other links from autoconf and suggest.
		fresh := newMuninNode(t, fmt.Sprintf("[gunicorn-*]\nenv.status_addr %s\n[gstats-*]\nenv.status_addr %s\n", c.CommAddr, c.CommAddr))
		fresh.link(t, "gstats-status_", "upper")
		ctx, cancel := context.WithTimeout(context.Background(), muninRunTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, muninConfigurePath, "--libdir", fresh.lib, "--servicedir", fresh.service, "--sconfdir", fresh.conf, "--shell")
		cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("munin-node-configure --shell: %v\n%s", err, out)
		}
		var want []string
		for _, b := range muninBases {
			for _, l := range []string{"a_b", "default", "my_shop_api", "shop_v2_beta", "upper"} {
				if b == "gstats-status_" && l == "upper" {
					continue // already linked
				}
				want = append(want, fmt.Sprintf("ln -s '%s' '%s'", filepath.Join(fresh.lib, b), filepath.Join(fresh.service, b+l)))
			}
		}
		got := strings.Split(strings.TrimSpace(string(out)), "\n")
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("munin-node-configure --shell printed:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// TestIntegrationMuninCollectorDown checks the answers when nothing
// listens at env.status_addr: config as usual, U values, autoconf "no",
// all well within munin's plug-in timeout.
func TestIntegrationMuninCollectorDown(t *testing.T) {
	integration(t)
	// A port testport holds: nothing else binds it during the test.
	addr := testport.TCP(t)
	// The original plug-ins wait the default 3 s, the new ones 1 s.
	m := newMuninNode(t, fmt.Sprintf("[gunicorn-*]\nenv.status_addr %s\n[gstats-*]\nenv.status_addr %s\nenv.timeout 1\n", addr, addr))
	for _, b := range muninBases {
		m.link(t, b, "")
		m.link(t, b, "my_shop_api")
	}

	// Default timeout: config and fetch still answer, well in time.
	want := strings.Replace(muninGolden(t, "gunicorn-requests.config"), "for My.Shop-API\n", "for my_shop_api\n", 1)
	r := m.run(t, nil, "gunicorn-requests_my_shop_api", "config")
	expectOutput(t, "config with the collector down", r.stdout, want)
	if r.code != 0 || r.elapsed >= muninLimit || !strings.Contains(r.stderr, "no reply") {
		t.Errorf("config with the collector down: exit %d after %s (limit %s), stderr %q", r.code, r.elapsed, muninLimit, r.stderr)
	}
	expectOutput(t, "fetch with the collector down", m.ok(t, nil, "gunicorn-request-time_my_shop_api"),
		"avg_low.value U\navg_std.value U\navg.value U\n")

	// env.timeout 1 shortens the wait below the default: the message
	// names the timeout the plug-in used. (Its run time, which starting
	// munin-run and the plug-in adds to, only bounds a hang.)
	r = m.run(t, nil, "gstats-latency_my_shop_api")
	expectOutput(t, "latency fetch with the collector down", r.stdout, "p50.value U\np90.value U\np95.value U\np99.value U\nmax.value U\n")
	if r.code != 0 || r.elapsed >= muninLimit || !strings.Contains(r.stderr, "within 1s") {
		t.Errorf("fetch with env.timeout 1: exit %d after %s (limit %s), stderr %q; want exit 0 and \"within 1s\"", r.code, r.elapsed, muninLimit, r.stderr)
	}

	r = m.run(t, nil, "gstats-status_", "autoconf")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "no (") || !strings.HasSuffix(r.stdout, ")\n") || strings.Count(r.stdout, "\n") != 1 ||
		!strings.Contains(r.stdout, addr) {
		t.Errorf("autoconf with the collector down: exit %d, stdout %q; want exit 0 and one line \"no (... %s ...)\"", r.code, r.stdout, addr)
	}
	if got := m.ok(t, nil, "gstats-status_", "suggest"); got != "" {
		t.Errorf("suggest with the collector down printed %q", got)
	}
	expectOutput(t, "status fetch with the collector down", m.ok(t, nil, "gstats-status_my_shop_api"),
		"s1xx.value U\ns2xx.value U\ns3xx.value U\ns4xx.value U\ns5xx.value U\nnone.value U\n")
	wantStatus := strings.Replace(muninGolden(t, "gstats-status.config"), "for My.Shop-API\n", "for my_shop_api\n", 1)
	expectOutput(t, "dirtyconfig with the collector down", m.ok(t, []string{"MUNIN_CAP_DIRTYCONFIG=1"}, "gstats-status_my_shop_api", "config"),
		wantStatus+"s1xx.value U\ns2xx.value U\ns3xx.value U\ns4xx.value U\ns5xx.value U\nnone.value U\n")
}

// TestIntegrationMuninProgramMissing checks the scripts' answers when
// env.gstats_munin names no program: autoconf says why, config fails.
func TestIntegrationMuninProgramMissing(t *testing.T) {
	integration(t)
	m := newMuninNode(t, "[gunicorn-*]\nenv.gstats_munin /nonexistent/gstats-munin\n")
	m.link(t, "gunicorn-requests_", "")
	m.link(t, "gunicorn-requests_", "my_app")
	expectOutput(t, "autoconf", m.ok(t, nil, "gunicorn-requests_", "autoconf"),
		"no (gstats-munin not found at /nonexistent/gstats-munin; install it or set env.gstats_munin)\n")
	r := m.run(t, nil, "gunicorn-requests_my_app", "config")
	if r.code == 0 || r.stdout != "" || !strings.Contains(r.stderr, "gstats-munin not found at /nonexistent/gstats-munin") {
		t.Errorf("config without gstats-munin: exit %d, stdout %q, stderr %q; want a failure naming the path", r.code, r.stdout, r.stderr)
	}
}

// TestIntegrationMuninInstall runs munin/install.sh into a temporary tree
// (labels given, then --auto) and the installed plug-ins with munin-run.
func TestIntegrationMuninInstall(t *testing.T) {
	integration(t)
	c := startCollector(t)
	shopTraffic(t, c)
	binary := requireBinary(t, gstatsMunin)
	m := newMuninNode(t, "")
	// An empty layout in the same searchable root; bindir elsewhere than
	// /usr/local/bin, which install.sh writes into the scripts.
	lib, service, conf, bindir := filepath.Join(m.root, "i-lib"), filepath.Join(m.root, "i-service"), filepath.Join(m.root, "i-conf"), filepath.Join(m.root, "i-bin")
	install := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), muninRunTimeout)
		defer cancel()
		argv := append([]string{"--binary", binary, "--bindir", bindir, "--libdir", lib, "--servicedir", service, "--sconfdir", conf}, args...)
		cmd := exec.CommandContext(ctx, filepath.Join(repoRoot(t), "munin", "install.sh"), argv...)
		cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("install.sh %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	install("my_shop_api")
	for _, d := range []string{lib, service, conf, bindir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	example, err := os.ReadFile(filepath.Join(repoRoot(t), "munin", "plugin-conf.d", "gstats"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(conf, "gstats")); err != nil || string(got) != string(example) {
		t.Fatalf("install.sh did not install plugin-conf.d/gstats: %v", err)
	}
	// Point the installed configuration at the test's collector.
	writeFile(t, conf, "gstats", strings.ReplaceAll(string(example), "tcp://127.0.0.1:2345", c.CommAddr))

	installed := &muninNode{root: m.root, lib: lib, service: service, conf: conf}
	for _, b := range muninBases {
		if _, err := os.Lstat(filepath.Join(service, b+"my_shop_api")); err != nil {
			t.Errorf("install.sh my_shop_api did not link %s: %v", b+"my_shop_api", err)
		}
	}
	expectOutput(t, "installed gunicorn-requests_my_shop_api fetch", installed.ok(t, nil, "gunicorn-requests_my_shop_api"), muninGolden(t, "gunicorn-requests.fetch"))
	expectOutput(t, "installed gunicorn-request-time_my_shop_api config", installed.ok(t, nil, "gunicorn-request-time_my_shop_api", "config"), muninGolden(t, "gunicorn-request-time.config"))

	out := install("--auto")
	if !strings.Contains(out, "kept "+filepath.Join(conf, "gstats")) {
		t.Errorf("install.sh overwrote or ignored the existing plugin-conf.d/gstats:\n%s", out)
	}
	entries, err := os.ReadDir(service)
	if err != nil {
		t.Fatal(err)
	}
	var links []string
	for _, e := range entries {
		links = append(links, e.Name())
	}
	var want []string
	for _, b := range muninBases {
		for _, l := range []string{"a_b", "default", "my_shop_api", "shop_v2_beta", "upper"} {
			want = append(want, b+l)
		}
	}
	slices.Sort(want)
	if !slices.Equal(links, want) {
		t.Errorf("after install.sh --auto the service directory holds %q, want %q", links, want)
	}
	expectOutput(t, "auto-linked gstats-status_upper fetch", installed.ok(t, nil, "gstats-status_upper"),
		"s1xx.value 0\ns2xx.value 2\ns3xx.value 0\ns4xx.value 0\ns5xx.value 0\nnone.value 0\n")
}
