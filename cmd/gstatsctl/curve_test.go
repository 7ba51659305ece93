package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	zmq "github.com/pebbe/zmq4"

	"github.com/gstats/gstats/agentconf"
	"github.com/gstats/gstats/internal/curvekey"
	"github.com/gstats/gstats/wire"
)

// startCurveServer starts a CURVE REP server with the key pair in
// secretFile on an ephemeral loopback port, answering every request with
// reply. Without a ZAP handler it accepts any client key. It stops at
// cleanup.
func startCurveServer(t *testing.T, secretFile, reply string) string {
	t.Helper()
	pair, err := curvekey.LoadSecret(secretFile)
	if err != nil {
		t.Fatal(err)
	}
	zctx, err := zmq.NewContext()
	if err != nil {
		t.Fatal(err)
	}
	sock, err := zctx.NewSocket(zmq.REP)
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{sock.SetLinger(0), sock.ServerAuthCurve("test", pair.Secret), sock.Bind("tcp://127.0.0.1:*")} {
		if err != nil {
			_ = sock.Close()
			_ = zctx.Term()
			t.Fatalf("starting a CURVE server: %v", err)
		}
	}
	ep, err := sock.GetLastEndpoint()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		defer func() { _ = sock.Close() }()
		for {
			if _, err := sock.RecvBytes(0); err != nil {
				if zmq.AsErrno(err) == zmq.ETERM {
					done <- nil
				} else {
					done <- err
				}
				return
			}
			if _, err := sock.Send(reply, 0); err != nil && zmq.AsErrno(err) != zmq.ETERM {
				done <- err
				return
			}
		}
	}()
	t.Cleanup(func() {
		if err := zctx.Term(); err != nil {
			t.Errorf("terminating the CURVE server's context: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("CURVE server: %v", err)
		}
	})
	return ep
}

// newKeys runs gstatsctl keygen for name in dir and returns the paths of
// the public and secret key files.
func newKeys(t *testing.T, dir, name string) (public, secret string) {
	t.Helper()
	base := filepath.Join(dir, name)
	if code, _, stderr := ctl(t, "", "keygen", base); code != exitOK {
		t.Fatalf("keygen %s: exit %d: %s", base, code, stderr)
	}
	return base + curvekey.PublicSuffix, base + curvekey.SecretSuffix
}

func publicKey(t *testing.T, path string) string {
	t.Helper()
	p, err := curvekey.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return p.Public
}

// envStart matches a "$" that the configuration would read as the start of
// an environment reference.
var envStart = regexp.MustCompile(`\$[A-Za-z_{]`)

// TestKeygenConfigLineLoads pastes the curve_client_keys line keygen prints
// into a configuration and loads it: the collector must get the public key
// as it is, also when it holds a "$" (a Z85 character, and the start of an
// environment reference in the configuration when a name follows it).
func TestKeygenConfigLineLoads(t *testing.T) {
	dir := t.TempDir()
	line := regexp.MustCompile(`(?m)^  (curve_client_keys = \[.*\])  # or `)
	for i := 0; ; i++ {
		if i == 200 {
			t.Fatal("200 keys without a $ before a name in the public key")
		}
		name := filepath.Join(dir, fmt.Sprint("k", i))
		code, stdout, stderr := ctl(t, "", "keygen", name)
		if code != exitOK {
			t.Fatalf("keygen: exit %d, stderr %q", code, stderr)
		}
		public := publicKey(t, name+".key")
		if !envStart.MatchString(public) {
			continue
		}
		m := line.FindStringSubmatch(stdout)
		if m == nil {
			t.Fatalf("no curve_client_keys line in keygen's output:\n%s", stdout)
		}
		conf := "[[inputs.gstats]]\n  " + m[1] + "\n"
		cfg, err := agentconf.Parse("pasted.conf", []byte(conf))
		if err != nil {
			t.Fatalf("the printed line does not load: %v\n%s", err, conf)
		}
		if got := cfg.Gstats.CurveClientKeys; len(got) != 1 || got[0] != public {
			t.Fatalf("the printed line loads as %q, want [%q]", got, public)
		}
		return
	}
}

func TestKeygen(t *testing.T) {
	dir := t.TempDir()
	code, stdout, stderr := ctl(t, "", "keygen", filepath.Join(dir, "ctl"))
	if code != exitOK || stderr != "" {
		t.Fatalf("keygen: exit %d, stderr %q", code, stderr)
	}
	pubPath, secPath := filepath.Join(dir, "ctl.key"), filepath.Join(dir, "ctl.key_secret")
	pair, err := curvekey.LoadSecret(secPath)
	if err != nil {
		t.Fatalf("the secret key file keygen wrote: %v", err)
	}
	if got, err := curvekey.LoadPublic(pubPath); err != nil || got != pair.Public {
		t.Errorf("public key file holds %q (%v), want %q", got, err, pair.Public)
	}
	if pub, err := curvekey.Load(pubPath); err != nil || pub.Secret != "" {
		t.Errorf("the public key file holds a secret key (%v)", err)
	}
	for path, mode := range map[string]os.FileMode{pubPath: 0o644, secPath: 0o600} {
		if st, err := os.Stat(path); err != nil || st.Mode().Perm() != mode {
			t.Errorf("%s: mode %v (%v), want %04o", path, st.Mode().Perm(), err, mode)
		}
	}
	for _, want := range []string{
		"public key: " + pair.Public + "\n",
		"wrote " + pubPath + " (the public key, mode 0644)\n",
		"wrote " + secPath + " (the key pair, mode 0600: keep it secret)\n",
		fmt.Sprintf("curve_secret_key_file = %q\n", secPath),
		fmt.Sprintf("curve_client_keys = [%q]", strings.ReplaceAll(pair.Public, "$", "$$")),
		"--curve-server-key=" + pubPath + " ",
		"--curve-key=" + secPath + " stats\n",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("keygen output lacks %q:\n%s", want, stdout)
		}
	}

	t.Run("relative NAME", func(t *testing.T) {
		t.Chdir(dir)
		code, stdout, _ := ctl(t, "", "keygen", "rel")
		if code != exitOK || !strings.Contains(stdout, "wrote "+filepath.Join(dir, "rel.key")+" ") {
			t.Errorf("keygen rel: exit %d, output:\n%s\nwant the absolute paths", code, stdout)
		}
	})

	t.Run("never overwrites", func(t *testing.T) {
		before, err := os.ReadFile(secPath)
		if err != nil {
			t.Fatal(err)
		}
		code, stdout, stderr := ctl(t, "", "keygen", filepath.Join(dir, "ctl"))
		if code != exitUsage || stdout != "" || !strings.Contains(stderr, secPath+" already exists; keygen never overwrites a key") {
			t.Errorf("keygen over existing files: exit %d, stdout %q, stderr %q", code, stdout, stderr)
		}
		if after, err := os.ReadFile(secPath); err != nil || !bytes.Equal(after, before) {
			t.Errorf("the existing secret key file changed (%v)", err)
		}
	})

	t.Run("public key file alone exists", func(t *testing.T) {
		base := filepath.Join(dir, "half")
		if err := os.WriteFile(base+".key", []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		code, _, stderr := ctl(t, "", "keygen", base)
		if code != exitUsage || !strings.Contains(stderr, base+".key already exists") {
			t.Errorf("keygen beside an existing .key: exit %d, stderr %q", code, stderr)
		}
		if _, err := os.Lstat(base + ".key_secret"); err == nil {
			t.Error("keygen wrote a secret key file beside an existing public key file")
		}
	})

	for _, tt := range []struct {
		name, arg string
		code      int
		stderr    string
	}{
		{"suffix .key", filepath.Join(dir, "x.key"), exitArity, "give NAME without .key or .key_secret"},
		{"suffix .key_secret", filepath.Join(dir, "x.key_secret"), exitArity, "give NAME without .key or .key_secret"},
		{"directory", dir + "/", exitArity, "NAME must end in a file name"},
		{"dot", ".", exitArity, "NAME must end in a file name"},
		{"missing directory", filepath.Join(dir, "nope", "x"), exitUsage, "no such file or directory"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := ctl(t, "", "keygen", tt.arg)
			if code != tt.code || stdout != "" || !strings.Contains(stderr, tt.stderr) {
				t.Errorf("keygen %q: exit %d, stdout %q, stderr %q; want exit %d and %q", tt.arg, code, stdout, stderr, tt.code, tt.stderr)
			}
		})
	}
}

// TestCurve checks the CURVE options and their environment variables
// against a CURVE server, and the errors when they are incomplete or
// wrong.
func TestCurve(t *testing.T) {
	dir := t.TempDir()
	serverPub, serverSec := newKeys(t, dir, "server")
	clientPub, clientSec := newKeys(t, dir, "client")
	otherPub, _ := newKeys(t, dir, "other")
	loose := filepath.Join(dir, "loose.key_secret")
	b, err := os.ReadFile(clientSec)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(loose, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(loose, 0o644); err != nil {
		t.Fatal(err)
	}
	const reply = `{"api": {"started": 3, "finished": 2, "processing_time": {"avg": 12.0, "std": 0.0}}}`
	const apiBlock = "api\n===\nRequests: started=3, finished=2, processing=1\nResponse time: average=12.0, stdev=0.0\n\n"
	addr := startCurveServer(t, serverSec, reply)
	serverKey := publicKey(t, serverPub)
	env := func(kv ...string) map[string]string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}

	tests := []struct {
		name      string
		env       map[string]string
		args      []string
		code      int
		stderrHas []string
		// oneOf: stderr has at least one of these (when set).
		oneOf []string
	}{
		{name: "key files", args: []string{"--curve-server-key", serverPub, "--curve-key", clientSec, "stats"}},
		{name: "server key in Z85", args: []string{"--curve-server-key=" + serverKey, "--curve-key=" + clientSec, "stats"}},
		{name: "server's secret file gives its public key", args: []string{"--curve-server-key", serverSec, "--curve-key", clientSec, "stats"}},
		{name: "options after the command", args: []string{"stats", "--curve-key", clientSec, "--curve-server-key", serverPub}},
		{name: "one dash", args: []string{"-curve-key=" + clientSec, "-curve-server-key", serverPub, "stats"}},
		{name: "environment", env: env(envCurveServerKey, serverKey, envCurveClientKey, clientSec), args: []string{"stats"}},
		{name: "options over the environment", env: env(envCurveServerKey, "bogus", envCurveClientKey, "/nonexistent"),
			args: []string{"--curve-server-key", serverPub, "--curve-key", clientSec, "stats"}},
		{name: "one option, one variable", env: env(envCurveClientKey, clientSec), args: []string{"--curve-server-key", serverPub, "stats"}},

		{name: "server key only", args: []string{"--curve-server-key", serverPub, "stats"}, code: exitArity,
			stderrHas: []string{"--curve-server-key is given but not --curve-key (nor GSTATS_CURVE_CLIENT_KEY)"}},
		{name: "client key only", args: []string{"--curve-key", clientSec, "stats"}, code: exitArity,
			stderrHas: []string{"--curve-key is given but not --curve-server-key (nor GSTATS_CURVE_SERVER_KEY)"}},
		{name: "client variable only", env: env(envCurveClientKey, clientSec), args: []string{"stats"}, code: exitArity,
			stderrHas: []string{"GSTATS_CURVE_CLIENT_KEY is given but not --curve-server-key (nor GSTATS_CURVE_SERVER_KEY)"}},
		{name: "server variable only", env: env(envCurveServerKey, serverKey), args: []string{"stats"}, code: exitArity,
			stderrHas: []string{"GSTATS_CURVE_SERVER_KEY is given but not --curve-key"}},
		{name: "public key file as the client's", args: []string{"--curve-server-key", serverPub, "--curve-key", clientPub, "stats"}, code: exitArity,
			stderrHas: []string{"--curve-key: CURVE key file " + clientPub + " holds no secret-key"}},
		{name: "readable by others", args: []string{"--curve-server-key", serverPub, "--curve-key", loose, "stats"}, code: exitArity,
			stderrHas: []string{"--curve-key: CURVE secret key file " + loose + " has mode 0644", "chmod 600"}},
		{name: "missing client file", args: []string{"--curve-server-key", serverPub, "--curve-key", filepath.Join(dir, "nope"), "stats"}, code: exitArity,
			stderrHas: []string{"--curve-key: ", "no such file"}},
		{name: "server key neither", env: env(envCurveServerKey, "not-a-key", envCurveClientKey, clientSec), args: []string{"stats"}, code: exitArity,
			stderrHas: []string{`GSTATS_CURVE_SERVER_KEY: the collector's public key: "not-a-key" is neither a 40-character Z85 key nor a key file`}},

		// gstatsctl explains a missing reply from the connection events
		// its socket monitor saw before the timeout. The server breaks
		// off the handshake at once, but on a loaded machine the event
		// may not have been read when the timeout fires: then the
		// explanation is that the handshake did not complete. Both are
		// legitimate outcomes, and both carry the hint; the timeout is
		// long enough that the precise one is by far the likelier.
		{name: "wrong server key", args: []string{"--timeout", "5s", "--curve-server-key", otherPub, "--curve-key", clientSec, "stats"}, code: exitUnreachable,
			stderrHas: []string{"no reply to STATS from " + addr + " within 5s", "the collector may require CURVE or not accept this key", publicKey(t, clientPub)},
			oneOf:     []string{"broke off the CURVE handshake", "the handshake did not complete"}},
		{name: "no CURVE", args: []string{"--timeout", "5s", "stats"}, code: exitUnreachable,
			stderrHas: []string{"no reply to STATS from " + addr + " within 5s"},
			oneOf:     []string{"the collector requires CURVE and this client does not use it", "the handshake did not complete; if the collector requires CURVE"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A reply, when one comes, is awaited for liveTimeout: a bound
			// on a hang (a later --timeout in tt.args overrides it).
			args := append([]string{"-c", addr, "--timeout", liveTimeout}, tt.args...)
			code, stdout, stderr := ctlEnv(t, tt.env, addr, args...)
			if code != tt.code {
				t.Errorf("gstatsctl %q exit %d, want %d; stderr: %s", tt.args, code, tt.code, stderr)
			}
			if tt.code == exitOK && (stdout != apiBlock || stderr != "") {
				t.Errorf("stdout %q, stderr %q; want %q and nothing", stdout, stderr, apiBlock)
			}
			if tt.code != exitOK && stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
			for _, want := range tt.stderrHas {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr)
				}
			}
			if tt.oneOf != nil && !slices.ContainsFunc(tt.oneOf, func(s string) bool { return strings.Contains(stderr, s) }) {
				t.Errorf("stderr has none of %q:\n%s", tt.oneOf, stderr)
			}
		})
	}
}

// TestInfoNewCounters checks that info shows the newer counters only when
// they are not zero, so that the original's output is unchanged.
func TestInfoNewCounters(t *testing.T) {
	var quiet, busy bytes.Buffer
	writeInfo(&quiet, wire.InfoReply{})
	writeInfo(&busy, wire.InfoReply{CommandsRefused: 2, AuthFailures: 3, ClientDropped: 4})
	for _, line := range []string{"commands refused (not in allowed_commands): 2\n", "CURVE handshakes refused: 3\n", "events dropped by clients: 4\n"} {
		if !strings.Contains(busy.String(), line) {
			t.Errorf("info lacks %q:\n%s", line, busy.String())
		}
		if strings.Contains(quiet.String(), strings.SplitN(line, ":", 2)[0]) {
			t.Errorf("info shows a zero counter %q:\n%s", line, quiet.String())
		}
	}
	if !regexp.MustCompile(`control requests: 0 \(0 errors\)\n$`).MatchString(quiet.String()) {
		t.Errorf("info with zero counters does not end with the control requests line:\n%s", quiet.String())
	}
}

// TestInfoStateFile checks the state file line: absent without a state
// file, "not yet" before the first write, the instant and errors after.
func TestInfoStateFile(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    wire.InfoReply
		want string
	}{
		{"none", wire.InfoReply{}, ""},
		{"before the first write", wire.InfoReply{StateFile: "/var/lib/gstats/state"}, "state file: /var/lib/gstats/state (saved not yet, 0 write errors)\n"},
		{"written", wire.InfoReply{StateFile: "/s", StateSavedAt: "2026-11-26T01:00:00Z", StateWriteErrors: 2}, "state file: /s (saved 2026-11-26T01:00:00Z, 2 write errors)\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			writeInfo(&b, tc.r)
			got := b.String()
			if tc.want == "" {
				if strings.Contains(got, "state file") {
					t.Errorf("info shows a state file line without a state file:\n%s", got)
				}
				return
			}
			if !strings.HasSuffix(got, tc.want) {
				t.Errorf("info does not end with %q:\n%s", tc.want, got)
			}
		})
	}
}
