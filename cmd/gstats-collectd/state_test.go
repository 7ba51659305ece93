package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gstats/gstats/wire"
)

func TestParseFlagsStateFile(t *testing.T) {
	for _, args := range [][]string{{"--state-file", "/var/lib/gstats/state"}, {"--state-file=/var/lib/gstats/state"}, {"-state-file", "/var/lib/gstats/state"}} {
		var stdout, stderr bytes.Buffer
		o, set, err := parseFlags(args, &stdout, &stderr)
		if err != nil || o.stateFile != "/var/lib/gstats/state" || !set["state-file"] {
			t.Errorf("parseFlags(%q) = %+v, %v, %v", args, o, set, err)
		}
	}
}

// TestIntegrationStateFileAcrossRestart stops gstats-collectd with SIGTERM
// and starts it again on the same --state-file: STATS, RTIMES and the
// collector's counters are those before the stop.
func TestIntegrationStateFileAcrossRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gstats.state")
	args := append([]string{"--state-file", path}, wildcard...)
	d := startDaemon(t, args...)
	d.waitLog(t, "no state file at "+path+"; starting fresh")
	msgs := burst("shop", 50)
	msgs = append(msgs, start("api"), message{"api", "12.5", "201"}, message{"api", "7", "503"}, message{"api", "bad"})
	push(t, d.stats, msgs...)
	ctx := context.Background()
	c := wire.NewClient(wire.ClientOptions{Address: d.comm, Timeout: ctlTimeout})
	before := pollStats(t, d.comm, func(r wire.StatsReply) bool { return r["shop"].Finished == 50 && r["api"].Finished == 2 })
	rtBefore, err := c.RTimes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// INFO's counters are updated apart from STATS: the rejection of the
	// last message may come after the finishes STATS showed, and the
	// sender's disconnect (push closes its socket) is seen asynchronously,
	// from the socket monitor, some time after push returned. Compare
	// counters only once what they count is visible: wait, with a deadline,
	// until INFO shows every message processed and the one disconnect.
	const accepted = int64(2*50 + 3) // the burst, plus api's start and two finishes
	var infoBefore wire.InfoReply
	deadline := time.Now().Add(pollTimeout)
	for {
		infoBefore, err = c.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if infoBefore.Accepted == accepted && infoBefore.RejectedTotal == 1 && infoBefore.Disconnects >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("INFO did not show %d accepted, 1 rejected and the sender's disconnect within %s: %+v", accepted, pollTimeout, infoBefore)
		}
		time.Sleep(20 * time.Millisecond)
	}
	d.signal(t, syscall.SIGTERM)
	if code := d.wait(t, exitTimeout); code != 0 {
		t.Fatalf("exit code %d after SIGTERM; stderr:\n%s", code, d.stderr.String())
	}
	d.waitLog(t, "state written to "+path)
	if info, err := os.Stat(path); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("state file: %v, %v; want mode 0600", info, err)
	}

	d2 := startDaemon(t, args...)
	d2.waitLog(t, "state restored from "+path)
	c2 := wire.NewClient(wire.ClientOptions{Address: d2.comm, Timeout: ctlTimeout})
	after, err := c2.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []wire.StatsReply{before, after} {
		for k, v := range r {
			v.Rate = 0 // depends on the instant of the query
			r[k] = v
		}
	}
	if !reflect.DeepEqual(after, before) {
		t.Errorf("STATS after the restart:\n%+v\nbefore:\n%+v", after, before)
	}
	rtAfter, err := c2.RTimes(ctx)
	if err != nil || !reflect.DeepEqual(rtAfter, rtBefore) || len(rtBefore["shop"]) != 50 {
		t.Errorf("RTIMES after the restart %v (%v), before %v", rtAfter, err, rtBefore)
	}
	infoAfter, err := c2.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if infoAfter.Accepted != infoBefore.Accepted || infoAfter.RejectedTotal != 1 || infoAfter.Rejected[wire.ReasonBadDuration] != 1 ||
		infoAfter.StateFile != path || infoAfter.Disconnects != infoBefore.Disconnects ||
		// The counters carry on: this run answered STATS, RTIMES and INFO.
		infoAfter.ControlRequests != infoBefore.ControlRequests+3 || infoAfter.Commands["RTIMES"] != infoBefore.Commands["RTIMES"]+1 {
		t.Errorf("INFO after the restart %+v, before %+v", infoAfter, infoBefore)
	}
	d2.signal(t, syscall.SIGTERM)
	if code := d2.wait(t, exitTimeout); code != 0 {
		t.Fatalf("exit code %d after the second SIGTERM", code)
	}
}

// TestIntegrationInsecureControlFlag checks the rule on non-loopback
// control addresses from the command line: refused with the ways out, and
// let past by --allow-insecure-control. The address is from TEST-NET-1
// (192.0.2.0/24), on no machine, so nothing is ever exposed: past the rule
// the bind fails.
func TestIntegrationInsecureControlFlag(t *testing.T) {
	args := []string{"-s", "tcp://127.0.0.1:*", "-c", "tcp://192.0.2.1:2345"}
	refused := launch(t, args...)
	if code := refused.wait(t, exitTimeout); code == 0 {
		t.Fatalf("a control socket on 192.0.2.1 with RESET and QUIT allowed and no CURVE: exit code 0")
	}
	stderr := refused.stderr.String()
	for _, want := range []string{"192.0.2.1", "allowed_commands", "curve_secret_key_file", "allow_insecure_control"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("the refusal lacks %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr, "cannot bind") {
		t.Errorf("the refused daemon tried to bind:\n%s", stderr)
	}

	allowed := launch(t, append([]string{"--allow-insecure-control"}, args...)...)
	if code := allowed.wait(t, exitTimeout); code == 0 {
		t.Fatalf("bound 192.0.2.1, which is on no machine: exit code 0")
	}
	stderr = allowed.stderr.String()
	for _, want := range []string{"cannot bind control socket", "not on this machine"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("with --allow-insecure-control, stderr lacks %q (the rule should be passed and the bind tried):\n%s", want, stderr)
		}
	}

	var stdout, errOut bytes.Buffer
	if o, set, err := parseFlags([]string{"--allow-insecure-control"}, &stdout, &errOut); err != nil || !o.insecureCtl || !set["allow-insecure-control"] {
		t.Errorf("parseFlags(--allow-insecure-control) = %+v, %v, %v", o, set, err)
	}
}
