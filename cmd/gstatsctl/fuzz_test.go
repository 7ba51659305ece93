package main

import (
	"flag"
	"io"
	"slices"
	"strings"
	"testing"
)

// FuzzInterleave checks the argument reordering on any argument list
// (arguments separated by NUL): nothing is lost or invented, apart from
// the "--" it adds or consumes and the -cADDR it splits, and the
// arguments a flag set like run's leaves are the positional ones, in their
// order.
func FuzzInterleave(f *testing.F) {
	for _, seed := range []string{
		"stats",
		"-c\x00tcp://127.0.0.1:2345\x00stats",
		"stats\x00-ctcp://x:1\x00--timeout\x001s",
		"rtimes\x00--\x00-p",
		"--curve-key\x00F\x00stats\x00--curve-server-key=K",
		"-curve-key=F\x00keygen\x00n",
		"-c\x00--\x00--\x00x",
		"-c",
		"--",
		"-comm-address\x00A\x00info\x00-v",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, joined string) {
		var args []string
		if joined != "" {
			args = strings.Split(joined, "\x00")
		}
		out := interleave(args)

		// Bytes are kept: splitting -cADDR moves none, and the only change
		// is the "--" added, less the one consumed if the input had it.
		var in, got [256]int
		for _, a := range args {
			for i := range len(a) {
				in[a[i]]++
			}
		}
		for _, a := range out {
			for i := range len(a) {
				got[a[i]]++
			}
		}
		for c := range 256 {
			if d := got[c] - in[c]; d != 0 && !(c == '-' && (d == 2 || d == 0)) {
				t.Fatalf("interleave(%q) = %q: %d more %q", args, out, d, rune(c))
			}
		}
		if got['-']-in['-'] == 0 && !slices.Contains(args, "--") {
			t.Fatalf("interleave(%q) = %q added no \"--\"", args, out)
		}
		// Every argument out is one in, or a piece of a split -cADDR.
		pieces := map[string]bool{"--": true}
		splits := 0
		for _, a := range args {
			pieces[a] = true
			if len(a) > 2 && strings.HasPrefix(a, "-c") {
				pieces["-c"], pieces[a[2:]] = true, true
				splits++
			}
		}
		for _, a := range out {
			if !pieces[a] {
				t.Fatalf("interleave(%q) = %q invented %q", args, out, a)
			}
		}
		if len(out) < len(args) || len(out) > len(args)+1+splits {
			t.Fatalf("interleave(%q) = %q: %d arguments from %d", args, out, len(out), len(args))
		}

		// The positional arguments after parsing come from the input, in
		// order.
		fs := flag.NewFlagSet("gstatsctl", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		fs.Usage = func() {}
		var s string
		var b bool
		for _, name := range valueOptions() {
			fs.StringVar(&s, name, "", "")
		}
		for _, name := range []string{"json", "v", "verbose", "version"} {
			fs.BoolVar(&b, name, false, "")
		}
		if err := fs.Parse(out); err != nil {
			return
		}
		i := 0
		for _, p := range fs.Args() {
			for i < len(args) && args[i] != p {
				i++
			}
			if i == len(args) {
				t.Fatalf("interleave(%q) = %q: positional arguments %q are not in the input's order", args, out, fs.Args())
			}
			i++
		}
	})
}

// FuzzCurveSpecs checks the choice between the CURVE options and their
// environment variables: the option wins when not blank, and exactly one
// side set is an error naming the other.
func FuzzCurveSpecs(f *testing.F) {
	f.Add("", "", "", "")
	f.Add("server.key", "client.key_secret", "", "")
	f.Add("", "", "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7", "c.key_secret")
	f.Add("k", "", "", "c")
	f.Add(" ", "x", "y", " ")
	f.Fuzz(func(t *testing.T, flagServer, flagClient, envServer, envClient string) {
		env := map[string]string{envCurveServerKey: envServer, envCurveClientKey: envClient}
		o := options{curveServer: flagServer, curveKey: flagClient}
		server, client, err := curveSpecs(o, func(k string) string { return env[k] })
		want := func(flagValue, flagName, envValue, envName string) curveSource {
			if v := strings.TrimSpace(flagValue); v != "" {
				return curveSource{v, flagName}
			}
			if v := strings.TrimSpace(envValue); v != "" {
				return curveSource{v, envName}
			}
			return curveSource{}
		}
		if w := want(flagServer, "--curve-server-key", envServer, envCurveServerKey); server != w {
			t.Fatalf("server %+v, want %+v", server, w)
		}
		if w := want(flagClient, "--curve-key", envClient, envCurveClientKey); client != w {
			t.Fatalf("client %+v, want %+v", client, w)
		}
		switch {
		case (server.value == "") == (client.value == ""):
			if err != nil {
				t.Fatalf("both or neither set, error %v", err)
			}
		case server.value == "":
			if err == nil || !strings.Contains(err.Error(), "not --curve-server-key (nor GSTATS_CURVE_SERVER_KEY)") {
				t.Fatalf("server key missing, error %v", err)
			}
		default:
			if err == nil || !strings.Contains(err.Error(), "not --curve-key (nor GSTATS_CURVE_CLIENT_KEY)") {
				t.Fatalf("client key missing, error %v", err)
			}
		}
	})
}
