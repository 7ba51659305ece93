package munin

import (
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzLabel checks Label and Match on any prefix: labels use only
// [0-9a-z_], have one character per character of the prefix, are their own
// label, and find their prefix back.
func FuzzLabel(f *testing.F) {
	for _, s := range []string{"", "default", "my_app", "My.Shop-API", "UPPER", "a-b.c", "héllo", "日本", "\u212a", "bad\xffutf8"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, prefix string) {
		l := Label(prefix)
		if strings.IndexFunc(l, func(r rune) bool { return !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r == '_') }) >= 0 {
			t.Fatalf("Label(%q) = %q has a character outside [0-9a-z_]", prefix, l)
		}
		if n := utf8.RuneCountInString(prefix); len(l) != n {
			t.Fatalf("Label(%q) = %q: %d characters, want %d", prefix, l, len(l), n)
		}
		if Label(l) != l {
			t.Fatalf("Label(%q) = %q is not its own label", prefix, l)
		}
		if got, ok := Match(l, []string{"zzz-other", prefix}); !ok || Label(got) != l {
			t.Fatalf("Match(Label(%q)) = %q, %v", prefix, got, ok)
		}
		if got, ok := Match(l, []string{prefix, l}); !ok || got != l {
			t.Fatalf("Match(%q) among %q and itself = %q, %v; want itself", l, prefix, got, ok)
		}
	})
}

// valueLine is a fetch line munin accepts: a field name, then U, an
// integer for DERIVE, or a number.
var valueLine = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*\.value (U|-?[0-9]+(\.[0-9]+)?(e[+-][0-9]+)?)$`)

// FuzzParseStats feeds any reply to ParseStats and, when it parses, prints
// every plug-in's values for every prefix: no panic, and only lines munin
// accepts, with integers for the DERIVE plug-ins.
func FuzzParseStats(f *testing.F) {
	for _, s := range []string{collectorReply, originalReply, "{}", "ERROR", "null", `{"a":{"started":1e400}}`,
		`{"a":{"started":"9","processing_time":{"avg":-1,"std":1e308,"count":0,"p50":1}},"b":{}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseStats(data)
		if err != nil {
			return
		}
		for _, prefix := range s.Prefixes() {
			p := s[prefix]
			for _, k := range Kinds() {
				out := Fetch(k, p, Options{Percentiles: []float64{50, 99.9}})
				for line := range strings.SplitSeq(strings.TrimSuffix(out, "\n"), "\n") {
					if !valueLine.MatchString(line) {
						t.Fatalf("%s for %q prints %q", k.Base(), data, line)
					}
					if (k == Requests || k == Status) && strings.ContainsAny(line[strings.Index(line, " "):], ".e") {
						t.Fatalf("%s for %q prints a DERIVE value that is not an integer: %q", k.Base(), data, line)
					}
				}
			}
		}
	})
}

// FuzzParseName checks that a name parses into a kind and a label that
// spell the name back.
func FuzzParseName(f *testing.F) {
	for _, s := range []string{"gunicorn-requests_my_app", "gunicorn-request-time_", "gstats-latency_x", "gstats-status_default", "x", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		k, label, err := ParseName(name)
		if err != nil {
			return
		}
		if !strings.HasSuffix(name, k.Base()+label) {
			t.Fatalf("ParseName(%q) = %s + %q", name, k.Base(), label)
		}
	})
}

// FuzzParseTimeout checks that an accepted timeout is in (0, 1h].
func FuzzParseTimeout(f *testing.F) {
	for _, s := range []string{"3", "2.5", "1500ms", "0", "-1", "NaN", "1e-12", "2h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseTimeout(s)
		if err == nil && !(d > 0 && d.Hours() <= 1) {
			t.Fatalf("ParseTimeout(%q) = %v", s, d)
		}
	})
}

// FuzzParsePercentiles checks that accepted percentiles are sorted,
// distinct, in (0, 100], and give valid munin field names.
func FuzzParsePercentiles(f *testing.F) {
	for _, s := range []string{"50 90 95 99", "99.9,50", "0", "101", "1e2", "0x1p-2", "5e-324"} {
		f.Add(s)
	}
	field := regexp.MustCompile(`^p[0-9_]+$`)
	f.Fuzz(func(t *testing.T, s string) {
		ps, err := ParsePercentiles(s)
		if err != nil {
			return
		}
		for i, p := range ps {
			if !(p > 0 && p <= 100) || i > 0 && ps[i-1] >= p {
				t.Fatalf("ParsePercentiles(%q) = %v", s, ps)
			}
			if name := percentileField(p); !field.MatchString(name) {
				t.Fatalf("percentile %v has field name %q", p, name)
			}
		}
	})
}

// FuzzCurveSettings checks the CURVE settings read from any environment:
// the plugin-conf.d name wins over the GSTATS_ one when not blank, values
// are trimmed, and one side set without the other is an error naming the
// missing one.
func FuzzCurveSettings(f *testing.F) {
	f.Add("", "", "", "")
	f.Add("/etc/gstats/collector.key", "/etc/gstats/munin.key_secret", "", "")
	f.Add("", "", "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7", "c.key_secret")
	f.Add("s", "", "", "c")
	f.Add(" ", "x", "y", "\t")
	f.Fuzz(func(t *testing.T, server, client, gstatsServer, gstatsClient string) {
		env := map[string]string{EnvCurveServerKey: server, EnvCurveClientKey: client, EnvGstatsCurveServerKey: gstatsServer, EnvGstatsCurveClientKey: gstatsClient}
		c, err := CurveSettings(func(k string) string { return env[k] })
		pick := func(v, gv string) string {
			if v = strings.TrimSpace(v); v != "" {
				return v
			}
			return strings.TrimSpace(gv)
		}
		s, cl := pick(server, gstatsServer), pick(client, gstatsClient)
		switch {
		case s == "" && cl == "":
			if err != nil || c != (Curve{}) || c.On() {
				t.Fatalf("nothing set: %+v, %v", c, err)
			}
		case s == "":
			if err == nil || !strings.Contains(err.Error(), "not env.curve_server_key (nor GSTATS_CURVE_SERVER_KEY)") || c.On() {
				t.Fatalf("server key missing: %+v, %v", c, err)
			}
		case cl == "":
			if err == nil || !strings.Contains(err.Error(), "not env.curve_client_key (nor GSTATS_CURVE_CLIENT_KEY)") || c.On() {
				t.Fatalf("client key missing: %+v, %v", c, err)
			}
		default:
			if err != nil || c.ServerKey != s || c.ClientKey != cl || !c.On() {
				t.Fatalf("both set: %+v, %v; want %q, %q", c, err, s, cl)
			}
			if (strings.TrimSpace(server) != "") != (c.ServerFrom == "env.curve_server_key") {
				t.Fatalf("server key read from %s", c.ServerFrom)
			}
		}
	})
}
