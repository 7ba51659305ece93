package munin

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gstats/gstats/internal/golden"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func TestLabel(t *testing.T) {
	tests := []struct{ prefix, want string }{
		{"", ""},
		{"default", "default"},
		{"my_app", "my_app"},
		{"My.Shop-API", "my_shop_api"},
		{"UPPER", "upper"},
		{"a-b.c d/e:f", "a_b_c_d_e_f"},
		{"v2.0", "v2_0"},
		{"héllo", "h_llo"},          // one "_" per character, not per byte
		{"日本", "__"},                // likewise
		{"\u212a", "_"},             // Kelvin sign: only ASCII letters are lower-cased
		{"bad\xffutf8", "bad_utf8"}, // one "_" per invalid byte
		{"__x__", "__x__"},
	}
	for _, tt := range tests {
		if got := Label(tt.prefix); got != tt.want {
			t.Errorf("Label(%q) = %q, want %q", tt.prefix, got, tt.want)
		}
	}
}

func TestMatch(t *testing.T) {
	tests := []struct {
		name     string
		label    string
		prefixes []string
		want     string
		ok       bool
	}{
		{"exact", "my_app", []string{"other", "my_app"}, "my_app", true},
		{"normalised", "my_shop_api", []string{"My.Shop-API", "other"}, "My.Shop-API", true},
		{"upper case prefix", "upper", []string{"UPPER"}, "UPPER", true},
		{"default prefix", "default", []string{"default", "x"}, "default", true},
		{"exact wins over normalised", "my_app", []string{"My.App", "my-app", "my_app"}, "my_app", true},
		{"smallest wins", "my_app", []string{"my.app", "My-App", "my-app"}, "My-App", true},
		{"label is not normalised", "My_App", []string{"My_App", "my_app"}, "", false},
		{"no such prefix", "nope", []string{"my_app"}, "", false},
		{"no prefixes", "x", nil, "", false},
		{"empty label", "", []string{"a"}, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Match(tt.label, tt.prefixes)
			if got != tt.want || ok != tt.ok {
				t.Errorf("Match(%q, %q) = %q, %v; want %q, %v", tt.label, tt.prefixes, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestLabels(t *testing.T) {
	got := Labels([]string{"Other", "My.App", "default", "my-app", "", "ZZ"})
	want := []string{"default", "my_app", "other", "zz"}
	if !slices.Equal(got, want) {
		t.Errorf("Labels = %q, want %q", got, want)
	}
}

func TestParseName(t *testing.T) {
	tests := []struct {
		name  string
		kind  Kind
		label string
		err   bool
	}{
		{"gunicorn-requests_my_app", Requests, "my_app", false},
		{"/etc/munin/plugins/gunicorn-requests_my_app", Requests, "my_app", false},
		{"gunicorn-request-time_my_app", RequestTime, "my_app", false},
		{"gunicorn-request-time_", RequestTime, "", false},
		{"gunicorn-requests_", Requests, "", false},
		{"gstats-latency_a_b", Latency, "a_b", false},
		{"gstats-status_default", Status, "default", false},
		{"gunicorn-requests", 0, "", true},
		{"gunicorn_requests_x", 0, "", true},
		{"gstats-munin", 0, "", true},
		{"", 0, "", true},
	}
	for _, tt := range tests {
		k, label, err := ParseName(tt.name)
		if (err != nil) != tt.err || k != tt.kind || label != tt.label {
			t.Errorf("ParseName(%q) = %v, %q, %v; want %v, %q, error %v", tt.name, k, label, err, tt.kind, tt.label, tt.err)
		}
	}
	for _, k := range Kinds() {
		if got, label, err := ParseName(k.Base() + "x"); err != nil || got != k || label != "x" {
			t.Errorf("ParseName(%q) = %v, %q, %v", k.Base()+"x", got, label, err)
		}
	}
}

func TestParseTimeout(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"3", 3 * time.Second, false},
		{" 2.5 ", 2500 * time.Millisecond, false},
		{"1500ms", 1500 * time.Millisecond, false},
		{"1s", time.Second, false},
		{"3600", time.Hour, false},
		{"0", 0, true},
		{"-1", 0, true},
		{"3601", 0, true},
		{"2h", 0, true},
		{"0s", 0, true},
		{"1e-12", 0, true}, // rounds to zero
		{"NaN", 0, true},
		{"Inf", 0, true},
		{"soon", 0, true},
		{"", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseTimeout(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("ParseTimeout(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestParsePercentiles(t *testing.T) {
	tests := []struct {
		in   string
		want []float64
		err  bool
	}{
		{"50 90 99", []float64{50, 90, 99}, false},
		{"99,50, 90\t99.9", []float64{50, 90, 99, 99.9}, false},
		{"99 50 99", []float64{50, 99}, false},
		{"100", []float64{100}, false},
		{"0", nil, true},
		{"101", nil, true},
		{"50 abc", nil, true},
		{"NaN", nil, true},
		{" , ", nil, true},
		{"", nil, true},
	}
	for _, tt := range tests {
		got, err := ParsePercentiles(tt.in)
		if (err != nil) != tt.err || !slices.Equal(got, tt.want) {
			t.Errorf("ParsePercentiles(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestNumberFormats(t *testing.T) {
	tests := []struct {
		n              Number
		integer, gauge string // "U" when not ok
	}{
		{Num("0"), "0", "0.0"},
		{Num("1234"), "1234", "1234.0"},
		{Num("153.2"), "153", "153.2"},
		{Num("20.0"), "20", "20.0"},
		{Num("-3.7"), "-3", "-3.7"},
		{Num("1e-05"), "0", "1e-05"},
		{Num("1e16"), "10000000000000000", "1e+16"},
		{Num("9223372036854775807"), "9223372036854775807", "9.223372036854776e+18"},
		{Num("1e300"), "U", "1e+300"},
		{Num("1e400"), "U", "U"},
		{Num("x"), "U", "U"},
		{Number{}, "U", "U"},
	}
	for _, tt := range tests {
		for _, c := range []struct {
			what string
			f    func() (string, bool)
			want string
		}{{"Integer", tt.n.Integer, tt.integer}, {"Gauge", tt.n.Gauge, tt.gauge}} {
			got, ok := c.f()
			if !ok {
				got = "U"
			}
			if got != c.want {
				t.Errorf("%v.%s() = %q, want %q", tt.n, c.what, got, c.want)
			}
		}
	}
}

// collectorReply is a STATS reply as gstats-collectd writes it, for the
// requests the end-to-end test sends to My.Shop-API: 9 started, 8 finished
// taking 2, 4, 4, 4, 5, 5, 7 and 9 ms (average 5, standard deviation 2),
// six with 200, one 404, one 503, one without status.
const collectorReply = `{"My.Shop-API":{"started":9,"finished":8,"processing_time":{"avg":5.0,"std":2.0,"count":8,"min":2.0,"max":9.0,"p50":4.014835333028587,"p90":7.028793021534767,"p95":9.0,"p99":9.0},"in_flight":1,"rate":0.8,"status":{"1xx":0,"2xx":5,"3xx":0,"4xx":1,"5xx":1,"none":1}},"default":{"started":1,"finished":0,"processing_time":{"avg":0.0,"std":0.0,"count":0,"min":0.0,"max":0.0},"in_flight":1,"rate":0.0,"status":{"1xx":0,"2xx":0,"3xx":0,"4xx":0,"5xx":0,"none":0}}}`

// originalReply is what the original collector answered: only the four
// figures of PROTOCOL.md.
const originalReply = `{"My.Shop-API": {"started": 9, "finished": 8, "processing_time": {"avg": 5.0, "std": 2.0}}}`

func TestParseStats(t *testing.T) {
	s, err := ParseStats([]byte(collectorReply))
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Prefixes(); !slices.Equal(got, []string{"My.Shop-API", "default"}) {
		t.Errorf("prefixes %q", got)
	}
	p := s["My.Shop-API"]
	checks := []struct {
		what string
		n    Number
		want string
	}{
		{"started", p.Started, "9"}, {"finished", p.Finished, "8"},
		{"avg", p.Avg, "5.0"}, {"std", p.Std, "2.0"}, {"count", p.Count, "8"}, {"max", p.Max, "9.0"},
		{"p90", p.Percentiles["p90"], "7.028793021534767"}, {"4xx", p.Status["4xx"], "1"}, {"none", p.Status["none"], "1"},
	}
	for _, c := range checks {
		if c.n != Num(c.want) {
			t.Errorf("%s = %+v, want %s", c.what, c.n, c.want)
		}
	}

	orig, err := ParseStats([]byte(originalReply))
	if err != nil {
		t.Fatal(err)
	}
	o := orig["My.Shop-API"]
	if o.Started != Num("9") || o.Std != Num("2.0") || o.Count.ok || o.Status != nil || o.Percentiles != nil {
		t.Errorf("original reply parsed as %+v", o)
	}

	lenient, err := ParseStats([]byte(`{"a":{"started":"9","finished":null,"processing_time":[1],"status":{"2xx":true,"4xx":3}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if a := lenient["a"]; a.Started.ok || a.Finished.ok || a.Avg.ok || a.Status["2xx"].ok || a.Status["4xx"] != Num("3") {
		t.Errorf("malformed figures parsed as %+v", a)
	}

	for _, bad := range []string{"ERROR", "", "null", "[]", `{"a":1}`, `{"a":null}`, `{"a":{}`, "nope"} {
		if _, err := ParseStats([]byte(bad)); err == nil {
			t.Errorf("ParseStats(%q) succeeded", bad)
		}
	}
	if _, err := ParseStats([]byte("ERROR")); !errors.Is(err, ErrRefused) {
		t.Errorf("ERROR reply: %v, want ErrRefused", err)
	}
	if s, err := ParseStats([]byte("{}")); err != nil || len(s) != 0 {
		t.Errorf("empty reply: %v, %v", s, err)
	}
}

// TestGolden checks config and fetch of every plug-in against the files
// the end-to-end test also compares munin-run's output with.
func TestGolden(t *testing.T) {
	s, err := ParseStats([]byte(collectorReply))
	if err != nil {
		t.Fatal(err)
	}
	p := s["My.Shop-API"]
	for _, k := range Kinds() {
		name := strings.TrimSuffix(k.Base(), "_")
		golden.Check(t, name+".config", Config(k, "My.Shop-API", Options{}), *update)
		if k != Latency { // percentiles from the collector's sketch are approximate
			golden.Check(t, name+".fetch", Fetch(k, p, Options{}), *update)
		}
	}
	// The original's reply gives the original plug-ins the same values.
	orig, err := ParseStats([]byte(originalReply))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []Kind{Requests, RequestTime} {
		if got, want := Fetch(k, orig["My.Shop-API"], Options{}), Fetch(k, p, Options{}); got != want {
			t.Errorf("%s with the original's reply:\n%s\nwant:\n%s", k.Base(), got, want)
		}
	}
}

func TestFetch(t *testing.T) {
	s, err := ParseStats([]byte(collectorReply))
	if err != nil {
		t.Fatal(err)
	}
	orig, err := ParseStats([]byte(originalReply))
	if err != nil {
		t.Fatal(err)
	}
	custom := Options{Percentiles: []float64{50, 99.9}}
	tests := []struct {
		name string
		kind Kind
		p    *PrefixStats
		o    Options
		want string
	}{
		{"latency", Latency, s["My.Shop-API"], Options{},
			"p50.value 4.014835333028587\np90.value 7.028793021534767\np95.value 9.0\np99.value 9.0\nmax.value 9.0\n"},
		{"latency custom percentiles", Latency, s["My.Shop-API"], custom,
			"p50.value 4.014835333028587\np99_9.value U\nmax.value 9.0\n"},
		{"latency empty window", Latency, s["default"], Options{},
			"p50.value U\np90.value U\np95.value U\np99.value U\nmax.value U\n"},
		{"latency original collector", Latency, orig["My.Shop-API"], Options{},
			"p50.value U\np90.value U\np95.value U\np99.value U\nmax.value U\n"},
		{"status original collector", Status, orig["My.Shop-API"], Options{},
			"s1xx.value U\ns2xx.value U\ns3xx.value U\ns4xx.value U\ns5xx.value U\nnone.value U\n"},
		{"requests unknown prefix", Requests, nil, Options{}, "started.value U\nfinished.value U\n"},
		{"request time unknown prefix", RequestTime, nil, Options{}, "avg_low.value U\navg_std.value U\navg.value U\n"},
		{"request time empty window", RequestTime, s["default"], Options{}, "avg_low.value 0.0\navg_std.value 0.0\navg.value 0.0\n"},
		{"request time without std", RequestTime, &PrefixStats{Avg: Num("3")}, Options{}, "avg_low.value U\navg_std.value U\navg.value 3.0\n"},
		{"requests fractional counter", Requests, &PrefixStats{Started: Num("12.9"), Finished: Num("1e3")}, Options{}, "started.value 12\nfinished.value 1000\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Fetch(tt.kind, tt.p, tt.o); got != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
	if got := Config(Latency, "x", custom); !strings.Contains(got, "\np99_9.label 99.9th percentile\n") {
		t.Errorf("latency config with 99.9 has no p99_9 field:\n%s", got)
	}
}

// fakeCollector answers STATS with reply, or fails with err.
type fakeCollector struct {
	reply  string
	err    error
	target Target // the last one asked
}

func (f *fakeCollector) query(_ context.Context, t Target) ([]byte, error) {
	f.target = t
	return []byte(f.reply), f.err
}

func TestRun(t *testing.T) {
	s, err := ParseStats([]byte(collectorReply))
	if err != nil {
		t.Fatal(err)
	}
	down := errors.New("no reply to STATS from tcp://127.0.0.1:2345 within 3s;\nis gstats-collectd running there?")
	reqConfig := Config(Requests, "My.Shop-API", Options{})
	reqFetch := Fetch(Requests, s["My.Shop-API"], Options{})
	tests := []struct {
		name        string
		args        []string
		env         map[string]string
		reply       string
		err         error
		code        int
		stdout      string
		stderr      string // a substring; "" for none
		addr        string
		timeout     time.Duration
		curve       Curve
		skipCollect bool // the collector is not asked
	}{
		{name: "fetch", args: []string{"gunicorn-requests_my_shop_api"}, reply: collectorReply, stdout: reqFetch},
		{name: "fetch command", args: []string{"gunicorn-requests_my_shop_api", "fetch"}, reply: collectorReply, stdout: reqFetch},
		{name: "config", args: []string{"gunicorn-requests_my_shop_api", "config"}, reply: collectorReply, stdout: reqConfig},
		{name: "dirtyconfig", args: []string{"gunicorn-requests_my_shop_api", "config"}, env: map[string]string{EnvDirtyConfig: "1"},
			reply: collectorReply, stdout: reqConfig + reqFetch},
		{name: "dirtyconfig off", args: []string{"gunicorn-requests_my_shop_api", "config"}, env: map[string]string{EnvDirtyConfig: "0"},
			reply: collectorReply, stdout: reqConfig},
		{name: "config collector down", args: []string{"gunicorn-requests_my_shop_api", "config"}, err: down,
			stdout: Config(Requests, "my_shop_api", Options{}), stderr: "gunicorn-requests_my_shop_api: no reply to STATS"},
		{name: "dirtyconfig collector down", args: []string{"gunicorn-requests_my_shop_api", "config"}, env: map[string]string{EnvDirtyConfig: "1"},
			err: down, stdout: Config(Requests, "my_shop_api", Options{}) + "started.value U\nfinished.value U\n", stderr: "no reply"},
		{name: "fetch collector down", args: []string{"gunicorn-request-time_my_shop_api"}, err: down,
			stdout: "avg_low.value U\navg_std.value U\navg.value U\n", stderr: "no reply"},
		{name: "fetch unknown label", args: []string{"gstats-status_nope"}, reply: collectorReply,
			stdout: Fetch(Status, nil, Options{}), stderr: `no prefix with label "nope" at tcp://127.0.0.1:2345; it has labels default, my_shop_api`},
		{name: "fetch ERROR reply", args: []string{"gstats-status_x"}, reply: "ERROR",
			stdout: Fetch(Status, nil, Options{}), stderr: "answered ERROR"},
		{name: "autoconf yes", args: []string{"gunicorn-requests_", "autoconf"}, reply: "{}", stdout: "yes\n"},
		{name: "autoconf no", args: []string{"gunicorn-requests_", "autoconf"}, err: down,
			stdout: "no (no reply to STATS from tcp://127.0.0.1:2345 within 3s; is gstats-collectd running there?)\n"},
		{name: "autoconf garbage", args: []string{"gstats-latency_", "autoconf"}, reply: "<html>",
			stdout: "no (STATS from tcp://127.0.0.1:2345: reply is not a JSON object: invalid character '<' looking for beginning of value)\n"},
		{name: "suggest", args: []string{"gstats-latency_", "suggest"}, reply: collectorReply, stdout: "default\nmy_shop_api\n"},
		{name: "suggest down", args: []string{"gstats-latency_", "suggest"}, err: down, stderr: "no reply"},
		{name: "address and timeout", args: []string{"gunicorn-requests_my_shop_api"}, reply: collectorReply, stdout: reqFetch,
			env: map[string]string{EnvAddress: " ipc:///run/gstats/comm ", EnvTimeout: "1.5"}, addr: "ipc:///run/gstats/comm", timeout: 1500 * time.Millisecond},
		{name: "bad timeout", args: []string{"gunicorn-requests_my_shop_api"}, reply: collectorReply, stdout: reqFetch,
			env: map[string]string{EnvTimeout: "forever"}, stderr: "env.timeout", timeout: DefaultTimeout},
		{name: "percentiles", args: []string{"gstats-latency_my_shop_api"}, reply: collectorReply,
			env: map[string]string{EnvPercentiles: "90"}, stdout: "p90.value 7.028793021534767\nmax.value 9.0\n"},
		{name: "bad percentiles", args: []string{"gstats-latency_my_shop_api"}, reply: collectorReply,
			env: map[string]string{EnvPercentiles: "200"}, stdout: Fetch(Latency, s["My.Shop-API"], Options{}), stderr: "env.percentiles"},
		{name: "CURVE", args: []string{"gunicorn-requests_my_shop_api"}, reply: collectorReply, stdout: reqFetch,
			env:   map[string]string{EnvCurveServerKey: " /etc/gstats/collector.key ", EnvCurveClientKey: "/etc/gstats/munin.key_secret"},
			curve: Curve{ServerKey: "/etc/gstats/collector.key", ClientKey: "/etc/gstats/munin.key_secret", ServerFrom: "env.curve_server_key", ClientFrom: "env.curve_client_key"}},
		{name: "CURVE from GSTATS_ variables", args: []string{"gunicorn-requests_my_shop_api"}, reply: collectorReply, stdout: reqFetch,
			env:   map[string]string{EnvGstatsCurveServerKey: "k", EnvGstatsCurveClientKey: "f"},
			curve: Curve{ServerKey: "k", ClientKey: "f", ServerFrom: "GSTATS_CURVE_SERVER_KEY", ClientFrom: "GSTATS_CURVE_CLIENT_KEY"}},
		{name: "CURVE env.* over GSTATS_", args: []string{"gunicorn-requests_my_shop_api"}, reply: collectorReply, stdout: reqFetch,
			env:   map[string]string{EnvCurveServerKey: "k", EnvGstatsCurveServerKey: "other", EnvGstatsCurveClientKey: "f"},
			curve: Curve{ServerKey: "k", ClientKey: "f", ServerFrom: "env.curve_server_key", ClientFrom: "GSTATS_CURVE_CLIENT_KEY"}},
		{name: "CURVE key file unreadable", args: []string{"gunicorn-requests_my_shop_api", "config"}, env: map[string]string{EnvCurveServerKey: "k", EnvCurveClientKey: "f"},
			err:    errors.New("env.curve_client_key: the plug-in runs as user nobody (uid 65534), which cannot read f"),
			stdout: Config(Requests, "my_shop_api", Options{}), stderr: "gunicorn-requests_my_shop_api: env.curve_client_key: the plug-in runs as user nobody",
			curve: Curve{ServerKey: "k", ClientKey: "f", ServerFrom: "env.curve_server_key", ClientFrom: "env.curve_client_key"}},
		{name: "CURVE server key only, fetch", args: []string{"gunicorn-requests_my_shop_api"}, env: map[string]string{EnvCurveServerKey: "k"},
			stdout: "started.value U\nfinished.value U\n", stderr: "env.curve_server_key is set but not env.curve_client_key (nor GSTATS_CURVE_CLIENT_KEY)", skipCollect: true},
		{name: "CURVE server key only, config", args: []string{"gunicorn-requests_my_shop_api", "config"}, env: map[string]string{EnvCurveServerKey: "k"},
			stdout: Config(Requests, "my_shop_api", Options{}), stderr: "env.curve_server_key is set but not env.curve_client_key", skipCollect: true},
		{name: "CURVE client key only, autoconf", args: []string{"gstats-status_", "autoconf"}, env: map[string]string{EnvGstatsCurveClientKey: "f"},
			stdout: "no (GSTATS_CURVE_CLIENT_KEY is set but not env.curve_server_key (nor GSTATS_CURVE_SERVER_KEY): CURVE needs both the collector's public key and the plug-ins' key pair)\n", skipCollect: true},
		{name: "CURVE client key only, suggest", args: []string{"gstats-status_", "suggest"}, env: map[string]string{EnvCurveClientKey: "f"},
			stderr: "env.curve_client_key is set but not env.curve_server_key", skipCollect: true},
		{name: "no label", args: []string{"gunicorn-requests_", "config"}, code: 1, stderr: "link this plug-in as gunicorn-requests_<label>", skipCollect: true},
		{name: "unknown plug-in", args: []string{"apache_x"}, code: 1, stderr: "unknown plug-in name", skipCollect: true},
		{name: "unknown command", args: []string{"gunicorn-requests_x", "snmpconf"}, code: 1, stderr: "Usage:", skipCollect: true},
		{name: "no arguments", code: 1, stderr: "Usage:", skipCollect: true},
		{name: "help", args: []string{"--help"}, stdout: Usage, skipCollect: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeCollector{reply: tt.reply, err: tt.err}
			var stdout, stderr bytes.Buffer
			code := Run(context.Background(), tt.args, func(k string) string { return tt.env[k] }, f.query, &stdout, &stderr)
			if code != tt.code {
				t.Errorf("exit code %d, want %d; stderr: %s", code, tt.code, stderr.String())
			}
			if stdout.String() != tt.stdout {
				t.Errorf("stdout:\n%s\nwant:\n%s", stdout.String(), tt.stdout)
			}
			if tt.stderr == "" && stderr.Len() > 0 || !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("stderr %q, want it to contain %q", stderr.String(), tt.stderr)
			}
			wantAddr, wantTimeout := tt.addr, tt.timeout
			if wantAddr == "" {
				wantAddr = DefaultAddress
			}
			if wantTimeout == 0 {
				wantTimeout = DefaultTimeout
			}
			want := Target{Address: wantAddr, Timeout: wantTimeout, Curve: tt.curve}
			if tt.skipCollect {
				want = Target{}
			}
			if f.target != want {
				t.Errorf("asked %+v, want %+v", f.target, want)
			}
		})
	}
}

// Patterns munin-node-configure (Munin::Node::Configure::Plugin) applies to
// the lines of a plug-in file.
var (
	familyMarker       = regexp.MustCompile(`#%#\s+family\s*=\s*(\S+)\s*`)
	capabilitiesMarker = regexp.MustCompile(`#%#\s+capabilities\s*=\s*(.+)`)
)

// TestPluginScripts checks the four plug-in files: executable, POSIX sh
// syntax, the magic markers munin-node-configure reads, and the hand-over
// to gstats-munin.
func TestPluginScripts(t *testing.T) {
	sh, err := exec.LookPath("dash")
	if err != nil {
		sh = "/bin/sh"
	}
	for _, k := range Kinds() {
		path := filepath.Join("plugins", k.Base())
		info, err := os.Stat(path)
		if err != nil {
			t.Errorf("plug-in %s: %v", k.Base(), err)
			continue
		}
		if info.Mode().Perm()&0o111 != 0o111 {
			t.Errorf("%s is not executable by all: %v", path, info.Mode())
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		if !strings.HasPrefix(text, "#!/bin/sh\n") {
			t.Errorf("%s does not start with #!/bin/sh", path)
		}
		var family, caps []string
		for line := range strings.SplitSeq(text, "\n") {
			if m := familyMarker.FindStringSubmatch(line); m != nil {
				family = append(family, m[1])
			}
			if m := capabilitiesMarker.FindStringSubmatch(line); m != nil {
				caps = append(caps, strings.Fields(m[1])...)
			}
		}
		if !slices.Equal(family, []string{"auto"}) || !slices.Equal(caps, []string{"autoconf", "suggest"}) {
			t.Errorf("%s: markers family=%q capabilities=%q, want [auto] and [autoconf suggest]", path, family, caps)
		}
		for _, want := range []string{"\n" + k.Base() + " - ", "\nexec \"$gstats_munin\" \"$name\" \"$@\"\n", "\n=cut\n"} {
			if !strings.Contains(text, want) {
				t.Errorf("%s lacks %q", path, want)
			}
		}
		if out, err := exec.Command(sh, "-n", path).CombinedOutput(); err != nil {
			t.Errorf("%s -n %s: %v\n%s", sh, path, err, out)
		}
	}
	entries, err := os.ReadDir("plugins")
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(Kinds()) {
		t.Errorf("plugins/ holds %d files, want the %d plug-ins", len(entries), len(Kinds()))
	}
	if out, err := exec.Command(sh, "-n", "install.sh").CombinedOutput(); err != nil {
		t.Errorf("%s -n install.sh: %v\n%s", sh, err, out)
	}
}
