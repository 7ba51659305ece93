package gstats

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/influxdata/telegraf/testutil"

	"github.com/gstats/gstats/internal/testport"
	"github.com/gstats/gstats/wire"
)

// startHTTPPlugin starts a plugin with its HTTP listener on listen (e.g.
// "127.0.0.1:0") and the given allowlist (nil: unset), with
// GSTATS_ALLOWED_IPS set to env for Init; it returns the plugin and the
// listener's base URL.
func startHTTPPlugin(t *testing.T, listen string, allowed []string, env string) (*Gstats, string) {
	t.Helper()
	t.Setenv(allowedIPsEnv, env)
	g, _ := startPlugin(t, func(g *Gstats) {
		g.HTTPAddress = listen
		g.HTTPAllowedIPs = allowed
	})
	addr := g.HTTPEndpoint()
	if addr == "" {
		t.Fatal("HTTPEndpoint() is empty after Start with http_address set")
	}
	return g, "http://" + addr
}

// httpClient talks to one test server; no keep-alive, so Stop never waits
// for an idle connection of ours.
func httpClient() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
}

// fetch sends one request and returns the status, headers and body.
func fetch(t *testing.T, method, url string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := httpClient().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, url, err)
	}
	return resp.StatusCode, resp.Header, string(body)
}

// traffic sends a known mix over a real PUSH socket and waits until the
// plugin has handled all of it: prefix "shop" gets 10 starts and 8 finishes
// of 10, 20, ..., 80 ms (statuses 200 ×5, 404 ×2, 500 ×1); "api" gets one
// start; one malformed message is rejected.
func traffic(t *testing.T, g *Gstats) {
	t.Helper()
	before := handled(g)
	s := pusher(t, g)
	for range 10 {
		send(t, s, "shop", "")
	}
	statuses := []string{"200", "200", "200", "200", "200", "404", "404", "500"}
	for i, st := range statuses {
		send(t, s, "shop", strconv.Itoa(10*(i+1)), st)
	}
	send(t, s, "api", "")
	send(t, s, "shop", "not-a-number")
	waitFor(t, "the traffic to be handled", func() bool { return handled(g) == before+20 })
}

func TestIntegrationHTTPStatusIsTheControlSocketsSTATS(t *testing.T) {
	g, base := startHTTPPlugin(t, "127.0.0.1:0", nil, "")
	traffic(t, g)

	code, h, body := fetch(t, http.MethodGet, base+"/_status")
	if code != http.StatusOK || h.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /_status: %d %q %q", code, h.Get("Content-Type"), body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	raw, err := control(t, g).Do(ctx, "STATS")
	if err != nil {
		t.Fatal(err)
	}
	// rate depends on the instant; every other value must be identical.
	strip := func(b []byte) map[string]map[string]any {
		var m map[string]map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%q: %v", b, err)
		}
		for name, p := range m {
			if r, ok := p["rate"].(float64); !ok || (name == "shop" && r <= 0) {
				t.Errorf("prefix %s: rate %v", name, p["rate"])
			}
			delete(p, "rate")
		}
		return m
	}
	httpStats, zmqStats := strip([]byte(body)), strip(raw)
	if !reflect.DeepEqual(httpStats, zmqStats) {
		t.Errorf("/_status differs from STATS:\n http: %v\n  zmq: %v", httpStats, zmqStats)
	}
	shop := httpStats["shop"]
	if shop["started"] != 10.0 || shop["finished"] != 8.0 || shop["in_flight"] != 2.0 || httpStats["api"]["started"] != 1.0 {
		t.Errorf("/_status does not hold the traffic sent: %v", httpStats)
	}

	code, h, body = fetch(t, http.MethodHead, base+"/_status")
	if code != http.StatusOK || body != "" || h.Get("Content-Length") == "" || h.Get("Content-Length") == "0" {
		t.Errorf("HEAD /_status: %d, Content-Length %q, body %q", code, h.Get("Content-Length"), body)
	}
}

func TestIntegrationHTTPAllowlist(t *testing.T) {
	cases := []struct {
		name    string
		listen  string
		allowed []string
		env     string
		want    int
	}{
		{"default allows 127.0.0.1", "127.0.0.1:0", nil, "", http.StatusOK},
		{"default allows ::1", "[::1]:0", nil, "", http.StatusOK},
		{"IPv4 CIDR", "127.0.0.1:0", []string{"127.0.0.0/8"}, "", http.StatusOK},
		{"original ':' list", "127.0.0.1:0", []string{"10.1.2.3:127.0.0.1"}, "", http.StatusOK},
		{"IPv6 address", "[::1]:0", []string{"::1"}, "", http.StatusOK},
		{"IPv6 CIDR", "[::1]:0", []string{"::/120"}, "", http.StatusOK},
		{"IPv6 client, IPv4 list", "[::1]:0", []string{"127.0.0.1"}, "", http.StatusForbidden},
		{"IPv4 client, IPv6 list", "127.0.0.1:0", []string{"::1", "fd00::/8"}, "", http.StatusForbidden},
		{"other network", "127.0.0.1:0", []string{"10.0.0.0/8", "192.168.0.1"}, "", http.StatusForbidden},
		{"env used when unset", "127.0.0.1:0", nil, "10.0.0.1:10.0.0.2", http.StatusForbidden},
		{"env allowing", "127.0.0.1:0", nil, "127.0.0.0/8, ::1", http.StatusOK},
		{"config wins over env", "127.0.0.1:0", []string{"127.0.0.1"}, "10.0.0.1", http.StatusOK},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g, base := startHTTPPlugin(t, tc.listen, tc.allowed, tc.env)
			traffic(t, g)
			// The same allowlist guards every path, known or not.
			for _, path := range []string{"/_status", "/metrics", "/", "/api/stats", "/static/dashboard.js", "/nope"} {
				code, _, body := fetch(t, http.MethodGet, base+path)
				want := tc.want
				if want == http.StatusOK && path == "/nope" {
					want = http.StatusNotFound
				}
				if code != want {
					t.Errorf("GET %s: %d, want %d (%q)", path, code, want, body)
				}
				if want == http.StatusForbidden && body != forbiddenBody {
					t.Errorf("GET %s: 403 body %q, want %q", path, body, forbiddenBody)
				}
			}
			if code, _, body := fetch(t, http.MethodPost, base+"/_status"); tc.want == http.StatusForbidden && (code != 403 || body != forbiddenBody) {
				t.Errorf("POST from a refused client: %d %q, want 403", code, body)
			}
			if tc.want == http.StatusForbidden && g.httpl.forbidden.Load() != 7 {
				t.Errorf("forbidden counter %d, want 7", g.httpl.forbidden.Load())
			}
		})
	}
}

func TestIntegrationHTTPIsReadOnly(t *testing.T) {
	g, base := startHTTPPlugin(t, "127.0.0.1:0", nil, "")
	traffic(t, g)
	statsBefore := g.statsReply()

	for _, method := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch, "RESET", "QUIT"} {
		for _, path := range []string{"/_status", "/reset", "/quit", "/RESET", "/api/stats", "/metrics", "/"} {
			code, h, body := fetch(t, method, base+path)
			if code != http.StatusMethodNotAllowed || h.Get("Allow") != "GET, HEAD" || !strings.Contains(body, "read-only") {
				t.Errorf("%s %s: %d, Allow %q, %q; want 405", method, path, code, h.Get("Allow"), body)
			}
		}
	}
	for _, path := range []string{"/reset", "/quit", "/_status/x", "/static/", "/static/vendor/", "/stats", "/index.html"} {
		if code, _, body := fetch(t, http.MethodGet, base+path); code != http.StatusNotFound {
			t.Errorf("GET %s: %d %q, want 404", path, code, body)
		}
	}

	after := g.statsReply()
	if after["shop"].Started != statsBefore["shop"].Started || after["shop"].Finished != statsBefore["shop"].Finished ||
		after["shop"].ProcessingTime.Count != statsBefore["shop"].ProcessingTime.Count {
		t.Fatalf("HTTP requests changed the statistics:\n before %+v\n  after %+v", statsBefore["shop"], after["shop"])
	}
	if n := g.stats.commands[wire.CmdReset].Load() + g.stats.commands[wire.CmdQuit].Load(); n != 0 {
		t.Errorf("%d RESET/QUIT commands ran", n)
	}
	// It still counts.
	s := pusher(t, g)
	send(t, s, "shop", "")
	send(t, s, "shop", "5", "201")
	waitFor(t, "the new messages", func() bool { return g.statsReply()["shop"].Finished == statsBefore["shop"].Finished+1 })
	if got := g.statsReply()["shop"]; got.Started != statsBefore["shop"].Started+1 || got.Status.S2xx != statsBefore["shop"].Status.S2xx+1 {
		t.Errorf("after more traffic: %+v", got)
	}
}

// promFamilies scrapes /metrics and parses it with the Prometheus text
// parser.
func promFamilies(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	code, h, body := fetch(t, http.MethodGet, base+"/metrics")
	if code != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics: %d %q\n%s", code, h.Get("Content-Type"), body)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parsing /metrics: %v\n%s", err, body)
	}
	return fams
}

// promValue finds the sample of family name whose labels include want.
func promValue(t *testing.T, fams map[string]*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	t.Helper()
	fam, ok := fams[name]
	if !ok {
		t.Fatalf("/metrics has no %s", name)
	}
next:
	for _, m := range fam.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if labels[k] != v {
				continue next
			}
		}
		return m
	}
	t.Fatalf("/metrics has no %s%v", name, want)
	return nil
}

func TestIntegrationHTTPMetrics(t *testing.T) {
	g, base := startHTTPPlugin(t, "127.0.0.1:0", nil, "")
	traffic(t, g)
	fams := promFamilies(t, base)

	shop := map[string]string{"prefix": "shop"}
	type check struct {
		name   string
		labels map[string]string
		typ    dto.MetricType
		want   float64
	}
	counter, gauge := dto.MetricType_COUNTER, dto.MetricType_GAUGE
	withClass := func(c string) map[string]string { return map[string]string{"prefix": "shop", "class": c} }
	checks := []check{
		{"gstats_requests_started_total", shop, counter, 10},
		{"gstats_requests_finished_total", shop, counter, 8},
		{"gstats_requests_started_total", map[string]string{"prefix": "api"}, counter, 1},
		{"gstats_requests_in_flight", shop, gauge, 2},
		{"gstats_requests_in_flight", map[string]string{"prefix": "api"}, gauge, 1},
		{"gstats_responses_total", withClass("2xx"), counter, 5},
		{"gstats_responses_total", withClass("4xx"), counter, 2},
		{"gstats_responses_total", withClass("5xx"), counter, 1},
		{"gstats_responses_total", withClass("1xx"), counter, 0},
		{"gstats_responses_total", withClass("none"), counter, 0},
		{"gstats_window_requests", shop, gauge, 8},
		{"gstats_request_duration_mean_seconds", shop, gauge, 0.045},
		{"gstats_request_duration_min_seconds", shop, gauge, 0.010},
		{"gstats_request_duration_max_seconds", shop, gauge, 0.080},
		{"gstats_messages_accepted_total", nil, counter, 19},
		{"gstats_messages_rejected_total", map[string]string{"reason": string(wire.ReasonBadDuration)}, counter, 1},
		{"gstats_messages_rejected_total", map[string]string{"reason": string(wire.ReasonFrames)}, counter, 0},
		{"gstats_prefixes", nil, gauge, 2},
		{"gstats_window_seconds", nil, gauge, 600},
		{"gstats_window_slots", nil, gauge, 60},
		{"gstats_http_forbidden_total", nil, counter, 0},
		{"gstats_build_info", nil, gauge, 1},
	}
	for _, c := range checks {
		m := promValue(t, fams, c.name, c.labels)
		if fams[c.name].GetType() != c.typ {
			t.Errorf("%s is a %v, want a %v", c.name, fams[c.name].GetType(), c.typ)
		}
		v := m.GetCounter().GetValue()
		if c.typ == gauge {
			v = m.GetGauge().GetValue()
		}
		if math.Abs(v-c.want) > 1e-9 {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, v, c.want)
		}
	}
	if std := promValue(t, fams, "gstats_request_duration_stddev_seconds", shop).GetGauge().GetValue(); math.Abs(std-0.022913) > 1e-5 {
		t.Errorf("stddev %v, want 0.022913 (population stddev of 10..80 ms)", std)
	}
	if rate := promValue(t, fams, "gstats_window_requests_per_second", shop).GetGauge().GetValue(); rate <= 0 || rate > 8 {
		t.Errorf("window rate %v, want in (0, 8]", rate)
	}
	if start := promValue(t, fams, "gstats_start_time_seconds", nil).GetGauge().GetValue(); math.Abs(start-float64(time.Now().Unix())) > 60 {
		t.Errorf("start time %v is not now", start)
	}

	// The latency summary: the window's count and sum, and one quantile per
	// configured percentile (rank floor(q·(n−1)) of 10..80 ms, within 1 %).
	if typ := fams["gstats_request_duration_seconds"].GetType(); typ != dto.MetricType_SUMMARY {
		t.Fatalf("gstats_request_duration_seconds is a %v, want a summary", typ)
	}
	sum := promValue(t, fams, "gstats_request_duration_seconds", shop).GetSummary()
	if sum.GetSampleCount() != 8 || math.Abs(sum.GetSampleSum()-0.36) > 1e-9 {
		t.Errorf("summary count %d, sum %v; want 8 and 0.36", sum.GetSampleCount(), sum.GetSampleSum())
	}
	want := map[float64]float64{0.5: 0.040, 0.9: 0.070, 0.95: 0.070, 0.99: 0.070}
	if len(sum.GetQuantile()) != len(want) {
		t.Errorf("quantiles %v, want %d", sum.GetQuantile(), len(want))
	}
	for _, q := range sum.GetQuantile() {
		w, ok := want[q.GetQuantile()]
		if !ok || math.Abs(q.GetValue()-w) > 0.01*w {
			t.Errorf("quantile %v = %v, want %v ±1%%", q.GetQuantile(), q.GetValue(), w)
		}
	}
	// A prefix without durations has NaN quantiles and a zero count.
	api := promValue(t, fams, "gstats_request_duration_seconds", map[string]string{"prefix": "api"}).GetSummary()
	if api.GetSampleCount() != 0 || len(api.GetQuantile()) == 0 || !math.IsNaN(api.GetQuantile()[0].GetValue()) {
		t.Errorf("api summary %v, want count 0 and NaN quantiles", api)
	}
	if _, ok := fams["gstats_request_duration_mean_seconds"]; ok {
		for _, m := range fams["gstats_request_duration_mean_seconds"].GetMetric() {
			if m.GetLabel()[0].GetValue() == "api" {
				t.Error("a prefix without durations has a mean")
			}
		}
	}

	// Scraping is read-only too: a second scrape after more traffic sees it.
	s := pusher(t, g)
	send(t, s, "shop", "90", "503")
	waitFor(t, "the finish", func() bool { return g.statsReply()["shop"].Finished == 9 })
	fams = promFamilies(t, base)
	if v := promValue(t, fams, "gstats_responses_total", withClass("5xx")).GetCounter().GetValue(); v != 2 {
		t.Errorf("5xx after one more: %v, want 2", v)
	}
}

// TestMetricsAreDocumented keeps the README's list of /metrics names
// complete.
func TestMetricsAreDocumented(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	g := New()
	descs := make(chan *prometheus.Desc, 100)
	newPromCollector(g, new(atomic.Int64)).Describe(descs)
	close(descs)
	n := 0
	for d := range descs {
		m := regexp.MustCompile(`fqName: "([^"]+)"`).FindStringSubmatch(d.String())
		if m == nil {
			t.Fatalf("no name in %s", d)
		}
		n++
		if !strings.Contains(string(readme), "`"+m[1]+"`") {
			t.Errorf("README.md does not document %s", m[1])
		}
	}
	if n < 20 {
		t.Errorf("only %d metrics described", n)
	}
}

func TestInitHTTPConfig(t *testing.T) {
	cases := []struct {
		name    string
		addr    string
		allowed []string
		env     string
		wantErr string
		wantIPs string // the allowlist Init built
	}{
		{"off", "", nil, "", "", ""},
		{"off ignores a bad env", "", nil, "nope", "", ""},
		{"off still checks the key", "", []string{"127.0.0.1", "nope"}, "", `http_allowed_ips: "nope" is not an IP address`, ""},
		{"default", "127.0.0.1:8002", nil, "", "", "127.0.0.1,::1"},
		{"blank env is unset", "127.0.0.1:8002", nil, "  ", "", "127.0.0.1,::1"},
		{"env", "127.0.0.1:8002", nil, "127.0.0.1:10.0.0.0/8", "", "127.0.0.1,10.0.0.0/8"},
		{"bad env", "127.0.0.1:8002", nil, "127.0.0.1,10.0.0.300", `GSTATS_ALLOWED_IPS (read because http_allowed_ips is not set): "10.0.0.300"`, ""},
		{"list", "[::1]:8002", []string{"::1", "10.0.0.0/8 192.168.0.0/16"}, "garbage", "", "::1,10.0.0.0/8,192.168.0.0/16"},
		{"empty list means unset", "127.0.0.1:8002", []string{}, "", "", "127.0.0.1,::1"},
		{"bad entry named", "127.0.0.1:8002", []string{"127.0.0.1:foo"}, "", `http_allowed_ips: "foo" (in "127.0.0.1:foo")`, ""},
		{"scheme", "http://127.0.0.1:8002", nil, "", `write host:port without a scheme`, ""},
		{"no port", "127.0.0.1", nil, "", `http_address "127.0.0.1": address 127.0.0.1: missing port`, ""},
		{"bad port", "127.0.0.1:99999", nil, "", `port "99999" is not a number from 0 to 65535`, ""},
		{"named port", "127.0.0.1:http", nil, "", `port "http" is not a number`, ""},
		{"all interfaces", ":8002", nil, "", "", "127.0.0.1,::1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(allowedIPsEnv, tc.env)
			g := New()
			g.Log = testutil.Logger{Quiet: true}
			g.HTTPAddress, g.HTTPAllowedIPs = tc.addr, tc.allowed
			err := g.Init()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Init() = %v, want an error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Init: %v", err)
			}
			if got := g.httpAllow.String(); got != tc.wantIPs {
				t.Errorf("allowlist %q, want %q", got, tc.wantIPs)
			}
		})
	}
}

func TestIntegrationHTTPBindErrorLeavesNothingBound(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = busy.Close() }()
	// A reserved port, bound again after the failed Start: one released
	// by the kernel's port-0 bind could be taken meanwhile.
	statsAddr := testport.TCP(t)
	g := initPlugin(t, statsAddr, "", func(g *Gstats) { g.HTTPAddress = busy.Addr().String() })
	err = g.Start(&testutil.Accumulator{})
	if err == nil {
		g.Stop()
		t.Fatal("Start succeeded on a port in use")
	}
	if !strings.Contains(err.Error(), busy.Addr().String()) || !strings.Contains(err.Error(), "http_address") ||
		!errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("error %q: want the address, the key to change and EADDRINUSE", err)
	}
	g.Stop() // harmless after a failed Start
	// The ZeroMQ sockets bound before the failure were released.
	again := initPlugin(t, statsAddr, "", nil)
	if err := again.Start(&testutil.Accumulator{}); err != nil {
		t.Fatalf("the stats address stayed bound after the failed Start: %v", err)
	}
	again.Stop()
}

func TestIntegrationHTTPStopClosesTheListener(t *testing.T) {
	t.Setenv(allowedIPsEnv, "")
	g := initPlugin(t, "tcp://127.0.0.1:*", "", func(g *Gstats) { g.HTTPAddress = "127.0.0.1:0" })
	if err := g.Start(&testutil.Accumulator{}); err != nil {
		t.Fatal(err)
	}
	addr := g.HTTPEndpoint()
	// An idle keep-alive connection and a half-sent request must not hold
	// Stop up.
	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = idle.Close() }()
	fmt.Fprintf(idle, "GET /_status HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(idle), nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("keep-alive request: %v %v", resp, err)
	}
	_ = resp.Body.Close()
	half, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = half.Close() }()
	fmt.Fprintf(half, "GET /_status HTTP/1.1\r\n")

	t0 := time.Now()
	g.Stop()
	// A hang bound: Stop gives the connections httpShutdownTimeout, and a
	// loaded machine adds to the rest of its work.
	if took := time.Since(t0); took > httpShutdownTimeout+10*time.Second {
		t.Errorf("Stop took %s", took)
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		_ = c.Close()
		t.Errorf("%s still accepts connections after Stop", addr)
	}
}

func TestIntegrationHTTPDashboardFiles(t *testing.T) {
	g, base := startHTTPPlugin(t, "127.0.0.1:0", nil, "")
	traffic(t, g)

	code, h, page := fetch(t, http.MethodGet, base+"/")
	if code != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "text/html") ||
		!strings.Contains(h.Get("Content-Security-Policy"), "script-src 'self'") {
		t.Fatalf("GET /: %d %q CSP %q", code, h.Get("Content-Type"), h.Get("Content-Security-Policy"))
	}
	for _, ref := range []string{"static/vendor/uplot/uPlot.iife.min.js", "static/vendor/uplot/uPlot.min.css", "static/dashboard.js", "static/dashboard.css"} {
		if !strings.Contains(page, `"`+ref+`"`) {
			t.Errorf("the page does not load %s", ref)
		}
		code, h, body := fetch(t, http.MethodGet, base+"/"+ref)
		wantType := "text/javascript"
		if strings.HasSuffix(ref, ".css") {
			wantType = "text/css"
		}
		if code != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), wantType) || len(body) < 500 {
			t.Errorf("GET /%s: %d %q, %d bytes", ref, code, h.Get("Content-Type"), len(body))
		}
		if strings.Contains(body, "http://") && strings.HasPrefix(ref, "static/dashboard") {
			t.Errorf("%s refers to another site", ref)
		}
	}
	if strings.Contains(page, "//cdn") || strings.Contains(page, "https://") {
		t.Error("the page loads something from another site")
	}

	code, h, body := fetch(t, http.MethodGet, base+"/api/stats")
	if code != http.StatusOK || h.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /api/stats: %d %q", code, h.Get("Content-Type"))
	}
	var r struct {
		Time          float64 `json:"time"`
		Version       string  `json:"version"`
		WindowSeconds float64 `json:"window_seconds"`
		StatsAddress  string  `json:"stats_address"`
		Accepted      int64   `json:"accepted"`
		Rejected      int64   `json:"rejected"`
		Percentiles   []struct {
			P   float64
			Key string
		}
		Prefixes map[string]map[string]any `json:"prefixes"`
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	stats, _ := g.Endpoints()
	if math.Abs(r.Time-float64(time.Now().UnixMilli())/1000) > 60 || r.WindowSeconds != 600 || r.StatsAddress != stats ||
		r.Accepted != 19 || r.Rejected != 1 || len(r.Percentiles) != 4 || r.Percentiles[3].Key != "p99" ||
		r.Prefixes["shop"]["finished"] != 8.0 || r.Version == "" {
		t.Errorf("/api/stats: %+v", r)
	}
	pt, _ := r.Prefixes["shop"]["processing_time"].(map[string]any)
	if _, ok := pt["p99"]; !ok {
		t.Errorf("/api/stats processing_time lacks the percentile keys: %v", pt)
	}
}

// TestVendoredChartLibraryIntact checks the embedded uPlot files against
// the sums scripts/vendor-web.sh recorded when it fetched and verified
// them.
func TestVendoredChartLibraryIntact(t *testing.T) {
	sums, err := webFiles.ReadFile("web/vendor/uplot/SHA256SUMS")
	if err != nil {
		t.Fatalf("no SHA256SUMS: run scripts/vendor-web.sh: %v", err)
	}
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(string(sums)), "\n") {
		want, name, ok := strings.Cut(line, "  ")
		if !ok {
			t.Fatalf("SHA256SUMS line %q", line)
		}
		data, err := webFiles.ReadFile("web/vendor/uplot/" + name)
		if err != nil {
			t.Fatal(err)
		}
		got := sha256.Sum256(data)
		if hex.EncodeToString(got[:]) != want {
			t.Errorf("web/vendor/uplot/%s differs from the version scripts/vendor-web.sh verified", name)
		}
		n++
	}
	if n != 4 {
		t.Errorf("SHA256SUMS lists %d files, want 4 (LICENSE, VERSION and the JS and CSS)", n)
	}
	lic, _ := webFiles.ReadFile("web/vendor/uplot/LICENSE")
	if !bytes.Contains(lic, []byte("MIT")) {
		t.Error("uPlot's LICENSE is missing")
	}
}

// TestSampleConfigsDocumentHTTP checks the plugin sample documents both
// keys (off by default) and the standalone sample turns the listener on.
func TestSampleConfigsDocumentHTTP(t *testing.T) {
	for _, key := range []string{"##   http_address = \"127.0.0.1:8002\"", "##   http_allowed_ips = [\"127.0.0.1\", \"::1\"]", "GSTATS_ALLOWED_IPS"} {
		if !strings.Contains(sampleConfig, key) {
			t.Errorf("sample.conf does not document %s", key)
		}
	}
	if New().HTTPAddress != "" {
		t.Error("the HTTP listener must be off by default inside Telegraf")
	}
	root, err := os.ReadFile(filepath.Join("..", "..", "..", "sample.conf"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Inputs struct {
			Gstats []struct {
				HTTPAddress string `toml:"http_address"`
			} `toml:"gstats"`
		} `toml:"inputs"`
	}
	if _, err := toml.Decode(string(root), &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Inputs.Gstats) != 1 || f.Inputs.Gstats[0].HTTPAddress != "127.0.0.1:8002" {
		t.Errorf("root sample.conf: %+v; want http_address = \"127.0.0.1:8002\"", f.Inputs.Gstats)
	}
}

// BenchmarkHTTPEndpoints measures one request to each endpoint that
// computes statistics, with 100 prefixes of 1000 durations each, through
// the listener's handler (allowlist check included, no network).
func BenchmarkHTTPEndpoints(b *testing.B) {
	b.Setenv(allowedIPsEnv, "")
	g := initPlugin(b, "tcp://127.0.0.1:*", "", func(g *Gstats) { g.HTTPAddress = "127.0.0.1:0" })
	if err := g.Start(&testutil.Accumulator{}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(g.Stop)
	now := g.now()
	g.mu.Lock()
	for p := range 100 {
		name := fmt.Sprintf("app-%03d", p)
		for i := range 1000 {
			if err := g.win.Start(name, now); err != nil {
				b.Fatal(err)
			}
			if err := g.win.Finish(name, float64(1+i%300), 200+100*(i%4), now); err != nil {
				b.Fatal(err)
			}
		}
	}
	g.mu.Unlock()
	for _, path := range []string{"/_status", "/metrics", "/api/stats"} {
		b.Run(strings.TrimPrefix(path, "/"), func(b *testing.B) {
			req, err := http.NewRequest(http.MethodGet, path, nil)
			if err != nil {
				b.Fatal(err)
			}
			req.RemoteAddr = "127.0.0.1:40000"
			size := 0
			for b.Loop() {
				rec := httptest.NewRecorder()
				g.httpl.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("%s: %d", path, rec.Code)
				}
				size = rec.Body.Len()
			}
			b.ReportMetric(float64(size), "bytes/op-body")
		})
	}
}
