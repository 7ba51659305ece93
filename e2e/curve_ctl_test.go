package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gstats/gstats/internal/curvekey"
	"github.com/gstats/gstats/internal/testbin"
	"github.com/gstats/gstats/wire"
)

// ctlKeys are the key files one gstatsctl keygen wrote, and the public
// key it printed.
type ctlKeys struct {
	public             string // Z85, from the "public key:" line
	publicFile, secret string // from the "wrote" lines
}

var (
	keygenPublicRE = regexp.MustCompile(`(?m)^public key: (\S{40})$`)
	keygenWroteRE  = regexp.MustCompile(`(?m)^wrote (\S+) \(`)
)

// keygen runs gstatsctl keygen dir/name and reads the paths and the key
// from what it printed.
func keygen(t *testing.T, dir, name string) ctlKeys {
	t.Helper()
	r := runGstatsctl(t, nil, "keygen", filepath.Join(dir, name))
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("gstatsctl keygen %s: exit %d, stderr %q", name, r.code, r.stderr)
	}
	pub := keygenPublicRE.FindStringSubmatch(r.stdout)
	wrote := keygenWroteRE.FindAllStringSubmatch(r.stdout, -1)
	if pub == nil || len(wrote) != 2 {
		t.Fatalf("gstatsctl keygen %s printed no public key or not two files:\n%s", name, r.stdout)
	}
	k := ctlKeys{public: pub[1], publicFile: wrote[0][1], secret: wrote[1][1]}
	if !strings.HasSuffix(k.publicFile, curvekey.PublicSuffix) || !strings.HasSuffix(k.secret, curvekey.SecretSuffix) {
		t.Fatalf("gstatsctl keygen %s wrote %q and %q", name, k.publicFile, k.secret)
	}
	return k
}

// ctlStartSlack is how much longer than its request timeout a gstatsctl
// run may take: starting the program and its zmq context.
const ctlStartSlack = 8 * time.Second

// ctlRunTimeout bounds one gstatsctl run.
const ctlRunTimeout = 30 * time.Second

// ctlRefusedTimeout is the request timeout of the gstatsctl and munin runs
// the collector refuses: long enough for a loaded machine to finish the
// handshake (and the client to see how it ended) well before it.
const ctlRefusedTimeout = 3 * time.Second

// ctlResult is what one gstatsctl run printed.
type ctlResult struct {
	stdout, stderr string
	code           int
	elapsed        time.Duration
}

// runGstatsctl runs the gstatsctl binary with args in a clean environment
// plus env ("NAME=value").
func runGstatsctl(t *testing.T, env []string, args ...string) ctlResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ctlRunTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin.Ctl, args...)
	cmd.Env = append([]string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}, env...)
	var out, errOut testbin.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	start := time.Now()
	err := cmd.Run()
	r := ctlResult{stdout: out.String(), stderr: errOut.String(), elapsed: time.Since(start)}
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("gstatsctl %q did not finish within %s", args, ctlRunTimeout)
	case err == nil:
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	default:
		t.Fatalf("running gstatsctl %q: %v", args, err)
	}
	return r
}

// chownTo gives path to the named user.
func chownTo(t *testing.T, path, name string) {
	t.Helper()
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatalf("user %s: %v; %s", name, err, muninHint)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(path, uid, gid); err != nil {
		t.Fatal(err)
	}
}

// TestIntegrationCurveCtl runs a real gstats-collectd that requires CURVE
// on its control socket, configured with keys gstatsctl keygen made, and
// asks it with the gstatsctl binary and with munin-run: with keys it
// accepts, the real figures; with a key it refuses, without CURVE, or with
// the wrong server key, no reply and a message saying why.
func TestIntegrationCurveCtl(t *testing.T) {
	integration(t)
	// Keys of the collector and gstatsctl, in a private directory.
	dir := t.TempDir()
	// The collector's key has a # in it (a Z85 character, and where
	// munin-node's plugin-conf.d starts a comment), so that the escape the
	// plug-ins' documentation gives is always tried.
	var server ctlKeys
	for i := 0; !strings.Contains(server.public, "#"); i++ {
		if i == 200 {
			t.Fatal("200 key pairs without a # in the public key")
		}
		server = keygen(t, dir, fmt.Sprintf("collector-%d", i))
	}
	ctl := keygen(t, dir, "ctl")
	intruder := keygen(t, dir, "intruder")
	for _, k := range []ctlKeys{server, ctl, intruder} {
		if st, err := os.Stat(k.secret); err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: mode %v (%v), want 0600", k.secret, st.Mode().Perm(), err)
		}
	}
	// The plug-ins' keys, where munin's user can reach them: one the
	// collector accepts, one it does not know, and one it accepts that
	// only root can read.
	m := newMuninNode(t, "")
	muninKeys := filepath.Join(m.root, "keys")
	if err := os.Mkdir(muninKeys, 0o755); err != nil {
		t.Fatal(err)
	}
	// The key the collector is given as printed has a $ in it (a Z85
	// character, and where the configuration names an environment
	// variable), so that its escape is always tried.
	var munin ctlKeys
	for i := 0; !strings.Contains(munin.public, "$"); i++ {
		if i == 200 {
			t.Fatal("200 key pairs without a $ in the public key")
		}
		munin = keygen(t, muninKeys, fmt.Sprintf("munin-%d", i))
	}
	rogue := keygen(t, muninKeys, "rogue")
	rootOnly := keygen(t, muninKeys, "root-only")
	chownTo(t, munin.secret, "munin")
	chownTo(t, rogue.secret, "munin")
	serverPublicCopy := filepath.Join(muninKeys, "collector.key")
	copyFile(t, server.publicFile, serverPublicCopy, 0o644)

	// The collector takes keygen's output as it is: the secret key file,
	// a public key file, and a public key as printed, with any $ in it
	// written $$. The configuration expands environment variables as
	// Telegraf does ($$ is a literal $), and $ is a Z85 character: a
	// printed key holding, say, "$fG" would otherwise name the unset
	// variable fG, and the collector would refuse the configuration.
	conf := writeFile(t, dir, "gstats.conf", fmt.Sprintf(`
[agent]
  interval = "1s"
[[inputs.gstats]]
  stats_address = "tcp://127.0.0.1:*"
  comm_address = "tcp://127.0.0.1:*"
  curve_secret_key_file = %q
  curve_client_keys = [%q, %q, %q]
  curve_sockets = ["control"]
`, server.secret, ctl.publicFile, strings.ReplaceAll(munin.public, "$", "$$"), rootOnly.publicFile))
	p := startProcess(t, "gstats-collectd", exec.Command(bin.Collectd, "--config", conf), false)
	t.Cleanup(func() { p.stop(t, false) })
	statsAddr, commAddr := endpointsIn(t, p)
	c := newCollector(p, statsAddr, commAddr)
	ctlPair, err := curvekey.LoadSecret(ctl.secret)
	if err != nil {
		t.Fatal(err)
	}
	c.client = wire.NewClient(wire.ClientOptions{Address: commAddr, Timeout: requestTimeout,
		CurveServerKey: server.public, CurvePublicKey: ctlPair.Public, CurveSecretKey: ctlPair.Secret})
	shopTraffic(t, c)
	const shopBlock = "My.Shop-API\n===========\nRequests: started=9, finished=8, processing=1\nResponse time: average=5.0, stdev=2.0\n"

	t.Run("gstatsctl with the keys", func(t *testing.T) {
		r := runGstatsctl(t, nil, "-c", commAddr, "--curve-server-key", server.publicFile, "--curve-key", ctl.secret, "stats")
		if r.code != 0 || r.stderr != "" || !strings.Contains(r.stdout, shopBlock) {
			t.Errorf("stats: exit %d, stderr %q, stdout:\n%s\nwant the block\n%s", r.code, r.stderr, r.stdout, shopBlock)
		}
		r = runGstatsctl(t, nil, "info", "-c", commAddr, "--curve-server-key="+server.public, "--curve-key="+ctl.secret)
		if r.code != 0 || !strings.Contains(r.stdout, "comm address: "+commAddr+"\n") {
			t.Errorf("info: exit %d, stderr %q, stdout:\n%s", r.code, r.stderr, r.stdout)
		}
	})

	t.Run("gstatsctl with the keys in the environment", func(t *testing.T) {
		env := []string{"GSTATS_CURVE_SERVER_KEY=" + server.public, "GSTATS_CURVE_CLIENT_KEY=" + ctl.secret}
		r := runGstatsctl(t, env, "-c", commAddr, "stats")
		if r.code != 0 || !strings.Contains(r.stdout, shopBlock) {
			t.Errorf("stats: exit %d, stderr %q, stdout:\n%s", r.code, r.stderr, r.stdout)
		}
	})

	t.Run("gstatsctl refused", func(t *testing.T) {
		// The timeout leaves the handshake, which a loaded machine may
		// slow down, ample time to end (refused, broken off) before the
		// client gives up: with less, the client may not have seen how it
		// ended and says only that it did not complete.
		const timeout = ctlRefusedTimeout
		before := c.info(t).AuthFailures
		tests := []struct {
			name string
			args []string
			// want are all in stderr; with anyOf, one of them at least.
			want  []string
			anyOf []string
		}{
			{name: "key not allowed", args: []string{"--curve-server-key", server.publicFile, "--curve-key", intruder.secret},
				want: []string{"the collector refused the CURVE handshake (ZAP status 400): it does not accept this client's public key " + intruder.public}},
			// A client without CURVE and a collector requiring it each see
			// the other's greeting announce the wrong mechanism and each
			// close the connection. Which closes first is a race, and both
			// outcomes are right: the client either reads the mismatch
			// itself, or sees the collector break off the handshake first
			// (and then cannot tell why, so it names both causes).
			{name: "no CURVE", anyOf: []string{
				"the collector requires CURVE and this client does not use it",
				"the peer broke off the handshake: it is not a gstats control socket (is this the stats address?), or if the collector requires CURVE",
			}},
			{name: "wrong server key", args: []string{"--curve-server-key", intruder.publicFile, "--curve-key", ctl.secret},
				want: []string{"the collector broke off the CURVE handshake", "the collector may require CURVE or not accept this key"}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := runGstatsctl(t, nil, append([]string{"-c", commAddr, "--timeout", timeout.String(), "stats"}, tt.args...)...)
				if r.code != 3 || r.stdout != "" {
					t.Errorf("exit %d, stdout %q; want 3 and nothing", r.code, r.stdout)
				}
				// The wait is the timeout; the rest is starting the
				// program, which is slow on a loaded machine.
				if r.elapsed < timeout || r.elapsed > timeout+ctlStartSlack {
					t.Errorf("gave up after %s, want the timeout %s (+%s at most)", r.elapsed, timeout, ctlStartSlack)
				}
				for _, want := range append(tt.want, "no reply to STATS from "+commAddr+" within "+timeout.String()) {
					if !strings.Contains(r.stderr, want) {
						t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
					}
				}
				if len(tt.anyOf) > 0 && !slices.ContainsFunc(tt.anyOf, func(s string) bool { return strings.Contains(r.stderr, s) }) {
					t.Errorf("stderr has none of %q:\n%s", tt.anyOf, r.stderr)
				}
			})
		}
		// The refused key is counted (the collector counts it as its ZAP
		// handler answers, which may be after the client saw the answer),
		// and info shows it.
		c.waitInfo(t, fmt.Sprintf("auth_failures above %d after a refused key", before), func(i wire.InfoReply) bool { return i.AuthFailures > before })
		r := runGstatsctl(t, nil, "-c", commAddr, "--curve-server-key", server.publicFile, "--curve-key", ctl.secret, "info")
		if got := regexp.MustCompile(`(?m)^CURVE handshakes refused: (\d+)$`).FindStringSubmatch(r.stdout); got == nil || got[1] == "0" {
			t.Errorf("info shows no refused handshake:\n%s", r.stdout)
		}
	})

	for _, b := range []string{"gunicorn-requests_", "gstats-status_"} {
		m.link(t, b, "")
		m.link(t, b, "my_shop_api")
	}
	muninConf := func(user, clientKey string) string {
		t.Helper()
		var b strings.Builder
		for _, section := range []string{"gunicorn-*", "gstats-*"} {
			// One section names the collector's key by its file, the
			// other by the key itself.
			serverKey := serverPublicCopy
			if section == "gstats-*" {
				// munin-node cuts a line at an unescaped #, a Z85
				// character.
				serverKey = strings.ReplaceAll(server.public, "#", `\#`)
			}
			fmt.Fprintf(&b, "[%s]\nenv.status_addr %s\nenv.timeout %d\nenv.curve_server_key %s\nenv.curve_client_key %s\n",
				section, commAddr, int(ctlRefusedTimeout/time.Second), serverKey, clientKey)
			if user != "" {
				fmt.Fprintf(&b, "user %s\n", user)
			}
		}
		return b.String()
	}
	const requestsU, statusU = "started.value U\nfinished.value U\n", "s1xx.value U\ns2xx.value U\ns3xx.value U\ns4xx.value U\ns5xx.value U\nnone.value U\n"

	t.Run("munin with the keys", func(t *testing.T) {
		writeFile(t, m.conf, "gstats", muninConf("munin", munin.secret))
		expectOutput(t, "gunicorn-requests_my_shop_api config", m.ok(t, nil, "gunicorn-requests_my_shop_api", "config"), muninGolden(t, "gunicorn-requests.config"))
		expectOutput(t, "gunicorn-requests_my_shop_api fetch", m.ok(t, nil, "gunicorn-requests_my_shop_api"), muninGolden(t, "gunicorn-requests.fetch"))
		expectOutput(t, "gstats-status_my_shop_api fetch", m.ok(t, nil, "gstats-status_my_shop_api"), muninGolden(t, "gstats-status.fetch"))
		expectOutput(t, "gunicorn-requests_ autoconf", m.ok(t, nil, "gunicorn-requests_", "autoconf"), "yes\n")
	})

	t.Run("munin with a key the collector refuses", func(t *testing.T) {
		writeFile(t, m.conf, "gstats", muninConf("munin", rogue.secret))
		r := m.run(t, nil, "gunicorn-requests_my_shop_api")
		expectOutput(t, "fetch with a refused key", r.stdout, requestsU)
		if want := "the collector refused the CURVE handshake (ZAP status 400): it does not accept this client's public key " + rogue.public; r.code != 0 || !strings.Contains(r.stderr, want) {
			t.Errorf("fetch with a refused key: exit %d, stderr %q; want 0 and %q", r.code, r.stderr, want)
		}
		expectOutput(t, "gstats-status_my_shop_api fetch", m.ok(t, nil, "gstats-status_my_shop_api"), statusU)
		if got := m.ok(t, nil, "gstats-status_", "autoconf"); !strings.HasPrefix(got, "no (no reply to STATS from "+commAddr) || !strings.Contains(got, "refused the CURVE handshake") {
			t.Errorf("autoconf with a refused key: %q", got)
		}
	})

	t.Run("munin cannot read its key", func(t *testing.T) {
		// No user line: the plug-ins run as nobody, and the key is root's.
		writeFile(t, m.conf, "gstats", muninConf("", rootOnly.secret))
		const why = "env.curve_client_key: the plug-in runs as user nobody (uid 65534), which cannot read " // + path
		r := m.run(t, nil, "gunicorn-requests_my_shop_api", "config")
		expectOutput(t, "config with an unreadable key", r.stdout,
			strings.Replace(muninGolden(t, "gunicorn-requests.config"), "for My.Shop-API\n", "for my_shop_api\n", 1))
		if r.code != 0 || !strings.Contains(r.stderr, why+rootOnly.secret) || !strings.Contains(r.stderr, `"user" line in plugin-conf.d`) {
			t.Errorf("config with an unreadable key: exit %d, stderr %q", r.code, r.stderr)
		}
		expectOutput(t, "fetch with an unreadable key", m.ok(t, nil, "gunicorn-requests_my_shop_api"), requestsU)
		if got := m.ok(t, nil, "gunicorn-requests_", "autoconf"); !strings.HasPrefix(got, "no ("+why+rootOnly.secret) || strings.Count(got, "\n") != 1 {
			t.Errorf("autoconf with an unreadable key: %q", got)
		}
		// The same key, run as root (it owns it), is accepted.
		writeFile(t, m.conf, "gstats", muninConf("root", rootOnly.secret))
		expectOutput(t, "fetch as root", m.ok(t, nil, "gunicorn-requests_my_shop_api"), muninGolden(t, "gunicorn-requests.fetch"))
	})
}
