package gstats

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gstats/gstats/internal/allowlist"
	"github.com/gstats/gstats/internal/version"
	"github.com/gstats/gstats/wire"
)

// The HTTP status listener serves, read-only:
//
//	/_status     the STATS reply, as the original status page (gstats.wsgi) did
//	/metrics     Prometheus text exposition
//	/            the live dashboard (web/index.html), with its files under /static/
//	/api/stats   the JSON the dashboard polls
//
// Every path is behind the same allowlist; clients outside it get 403 with
// the original's body. Only GET and HEAD are served: nothing over HTTP can
// reset or stop the collector.

//go:embed web
var webFiles embed.FS

const (
	// forbiddenBody is the original status page's 403 body, kept verbatim.
	forbiddenBody = "You are not allowed to see this!"
	// defaultAllowedIPs applies when neither http_allowed_ips nor
	// GSTATS_ALLOWED_IPS is set: the loopback addresses.
	defaultAllowedIPs = "127.0.0.1,::1"
	// allowedIPsEnv is the original status page's allowlist variable.
	allowedIPsEnv = "GSTATS_ALLOWED_IPS"

	httpReadHeaderTimeout = 5 * time.Second
	httpReadTimeout       = 10 * time.Second
	httpWriteTimeout      = 30 * time.Second
	httpIdleTimeout       = 60 * time.Second
	httpMaxHeaderBytes    = 16 << 10
	// httpShutdownTimeout bounds how long Stop waits for requests in
	// progress before closing their connections.
	httpShutdownTimeout = 2 * time.Second
)

// httpListener is the running HTTP status listener.
type httpListener struct {
	g         *Gstats
	allow     *allowlist.List
	forbidden atomic.Int64
	mux       *http.ServeMux
	srv       *http.Server
	ln        net.Listener
	done      chan struct{} // closed when Serve has returned
}

// initHTTP validates http_address and builds the allowlist: http_allowed_ips
// if set, else GSTATS_ALLOWED_IPS if set, else 127.0.0.1 and ::1.
func (g *Gstats) initHTTP() error {
	var configured *allowlist.List
	if len(g.HTTPAllowedIPs) > 0 {
		l, err := allowlist.ParseEntries(g.HTTPAllowedIPs)
		if err != nil {
			return fmt.Errorf("http_allowed_ips: %w", err)
		}
		configured = l
	}
	g.httpAllow = nil
	if g.HTTPAddress == "" {
		return nil
	}
	if err := checkHTTPAddress(g.HTTPAddress); err != nil {
		return err
	}
	switch env := strings.TrimSpace(os.Getenv(allowedIPsEnv)); {
	case configured != nil:
		g.httpAllow = configured
	case env != "":
		l, err := allowlist.Parse(env)
		if err != nil {
			return fmt.Errorf("%s (read because http_allowed_ips is not set): %w", allowedIPsEnv, err)
		}
		g.httpAllow = l
	default:
		g.httpAllow, _ = allowlist.Parse(defaultAllowedIPs)
	}
	return nil
}

// checkHTTPAddress validates a host:port to listen on.
func checkHTTPAddress(addr string) error {
	if strings.Contains(addr, "://") {
		return fmt.Errorf("http_address %q: write host:port without a scheme, e.g. \"127.0.0.1:8002\"", addr)
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("http_address %q: %v; write it as host:port, e.g. \"127.0.0.1:8002\" or \"[::1]:8002\"", addr, err)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("http_address %q: port %q is not a number from 0 to 65535", addr, port)
	}
	return nil
}

// listenHTTP binds the HTTP listener if http_address is set; nil if not.
func (g *Gstats) listenHTTP() (*httpListener, error) {
	if g.HTTPAddress == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", g.HTTPAddress)
	if err != nil {
		return nil, fmt.Errorf("cannot listen for HTTP on %q: %w; change http_address (or set it to \"\" to turn the status listener off)", g.HTTPAddress, err)
	}
	l := &httpListener{g: g, allow: g.httpAllow, ln: ln, done: make(chan struct{})}
	reg := prometheus.NewRegistry()
	if err := reg.Register(newPromCollector(g, &l.forbidden)); err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("registering the Prometheus collector: %w", err)
	}
	errLog := log.New(logWriter{g}, "", 0)
	l.mux = http.NewServeMux()
	l.mux.HandleFunc("/_status", l.serveStatus)
	l.mux.HandleFunc("/api/stats", l.serveDashboardData)
	l.mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      errLog,
		ErrorHandling: promhttp.ContinueOnError,
	}))
	l.mux.HandleFunc("/{$}", l.serveIndex)
	static, err := fs.Sub(webFiles, "web")
	if err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("dashboard files: %w", err)
	}
	l.mux.Handle("/static/", http.StripPrefix("/static/", noDirectories(http.FileServerFS(static))))
	l.mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		plain(w, http.StatusNotFound, "Not found\n")
	})
	l.srv = &http.Server{
		Handler:           l,
		ReadHeaderTimeout: httpReadHeaderTimeout,
		ReadTimeout:       httpReadTimeout,
		WriteTimeout:      httpWriteTimeout,
		IdleTimeout:       httpIdleTimeout,
		MaxHeaderBytes:    httpMaxHeaderBytes,
		ErrorLog:          errLog,
	}
	return l, nil
}

// addr is the address the listener is bound to, port resolved.
func (l *httpListener) addr() string {
	return l.ln.Addr().String()
}

// serve runs the server until shutdown.
func (l *httpListener) serve() {
	defer close(l.done)
	if err := l.srv.Serve(l.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		l.g.Log.Errorf("HTTP status listener on %s stopped: %v", l.addr(), err)
	}
}

// shutdown stops accepting, lets requests in progress finish for up to
// httpShutdownTimeout, then closes what is left.
func (l *httpListener) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), httpShutdownTimeout)
	defer cancel()
	if err := l.srv.Shutdown(ctx); err != nil {
		l.g.Log.Warnf("HTTP status listener on %s: requests still running after %s, closing them: %v", l.addr(), httpShutdownTimeout, err)
		_ = l.srv.Close()
	}
	<-l.done
}

// ServeHTTP checks the client and the method, then routes.
func (l *httpListener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	if !l.allow.AllowsRemote(r.RemoteAddr) {
		l.forbidden.Add(1)
		l.g.Log.Debugf("HTTP: refused %s %s from %s (not in http_allowed_ips)", r.Method, r.URL.Path, r.RemoteAddr)
		plain(w, http.StatusForbidden, forbiddenBody)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		plain(w, http.StatusMethodNotAllowed, "Method not allowed: the gstats status listener is read-only (GET and HEAD only)\n")
		return
	}
	l.mux.ServeHTTP(w, r)
}

// serveStatus answers the STATS reply, byte for byte what the control
// socket sends.
func (l *httpListener) serveStatus(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, mustJSON(l.g.statsReply()))
}

// dashboardReply is what /api/stats answers: the STATS reply and what the
// dashboard shows beside it.
type dashboardReply struct {
	// Time is when the statistics were taken, in seconds since the epoch.
	Time          float64               `json:"time"`
	Version       string                `json:"version"`
	UptimeSeconds float64               `json:"uptime_seconds"`
	WindowSeconds float64               `json:"window_seconds"`
	Percentiles   []dashboardPercentile `json:"percentiles"`
	StatsAddress  string                `json:"stats_address"`
	Accepted      int64                 `json:"accepted"`
	Rejected      int64                 `json:"rejected"`
	Prefixes      wire.StatsReply       `json:"prefixes"`
}

// dashboardPercentile names a configured percentile and its key in
// processing_time.
type dashboardPercentile struct {
	P   float64 `json:"p"`
	Key string  `json:"key"`
}

func (l *httpListener) serveDashboardData(w http.ResponseWriter, _ *http.Request) {
	g := l.g
	now := time.Now()
	statsEP, _ := g.Endpoints()
	r := dashboardReply{
		Time:          float64(now.UnixMilli()) / 1000,
		Version:       version.Version,
		UptimeSeconds: now.Sub(g.started).Seconds(),
		WindowSeconds: time.Duration(g.Window).Seconds(),
		StatsAddress:  statsEP,
		Accepted:      g.stats.accepted.Load(),
		Rejected:      g.stats.rejectedTotal(),
		Prefixes:      g.statsReply(),
	}
	for _, p := range g.Percentiles {
		r.Percentiles = append(r.Percentiles, dashboardPercentile{P: p, Key: wire.Percentile{P: p}.Key()})
	}
	writeJSON(w, mustJSON(r))
}

// serveIndex serves the dashboard page.
func (l *httpListener) serveIndex(w http.ResponseWriter, _ *http.Request) {
	page, err := webFiles.ReadFile("web/index.html")
	if err != nil {
		plain(w, http.StatusInternalServerError, "dashboard page missing from the build\n")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "+
		"img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	h.Set("Referrer-Policy", "no-referrer")
	_, _ = w.Write(page)
}

// noDirectories answers 404 for directory paths instead of a listing.
func noDirectories(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "" || strings.HasSuffix(r.URL.Path, "/") {
			plain(w, http.StatusNotFound, "Not found\n")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	_, _ = w.Write(body)
}

func plain(w http.ResponseWriter, code int, body string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	_, _ = w.Write([]byte(body))
}

// logWriter sends net/http's and promhttp's error log lines to the
// plugin's logger.
type logWriter struct{ g *Gstats }

func (w logWriter) Write(p []byte) (int, error) {
	w.g.Log.Warnf("HTTP status listener: %s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// HTTPEndpoint returns the address the HTTP status listener is bound to,
// with a wildcard port resolved, or "" when it is off. It is valid between
// Start and Stop.
func (g *Gstats) HTTPEndpoint() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.httpl == nil {
		return ""
	}
	return g.httpl.addr()
}
