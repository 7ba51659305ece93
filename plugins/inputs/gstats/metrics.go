package gstats

import (
	"math"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gstats/gstats/internal/version"
	"github.com/gstats/gstats/plugins/inputs/gstats/window"
	"github.com/gstats/gstats/wire"
)

// promNamespace prefixes every metric name on /metrics.
const promNamespace = "gstats"

// promCollector is a prometheus.Collector over the plugin's statistics: each
// scrape takes a fresh snapshot, as STATS does, and turns it into constant
// metrics. It keeps no state of its own besides the HTTP counters.
type promCollector struct {
	g         *Gstats
	forbidden *atomic.Int64 // HTTP requests refused by the allowlist

	started, finished, responses, inFlight, windowCount, windowRate *prometheus.Desc
	duration, durMean, durStd, durMin, durMax                       *prometheus.Desc

	accepted, rejected, disconnects, controlRequests, controlErrors, commands *prometheus.Desc
	commandsRefused, authFailures, clientDropped, stateErrors                 *prometheus.Desc
	prefixes, maxPrefixes, windowSeconds, windowSlots, startTime, buildInfo   *prometheus.Desc
	httpForbidden                                                             *prometheus.Desc
}

func newPromCollector(g *Gstats, forbidden *atomic.Int64) *promCollector {
	perPrefix := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(promNamespace, "", name), help, append([]string{"prefix"}, labels...), nil)
	}
	global := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(promNamespace, "", name), help, labels, nil)
	}
	return &promCollector{
		g:         g,
		forbidden: forbidden,

		started:     perPrefix("requests_started_total", "Start messages since the collector started or was reset."),
		finished:    perPrefix("requests_finished_total", "Finish messages since the collector started or was reset."),
		responses:   perPrefix("responses_total", "Finishes per HTTP status class (1xx to 5xx, or none when the finish carried no status) since the collector started or was reset.", "class"),
		inFlight:    perPrefix("requests_in_flight", "Requests started and not yet finished."),
		windowCount: perPrefix("window_requests", "Request durations inside the sliding window."),
		windowRate:  perPrefix("window_requests_per_second", "Durations in the window per second of time the window covers."),
		duration: perPrefix("request_duration_seconds", "Request durations inside the sliding window: quantiles, and the count "+
			"and sum of the window (they fall as durations leave it; use gstats_requests_finished_total for rates)."),
		durMean: perPrefix("request_duration_mean_seconds", "Mean request duration inside the window."),
		durStd:  perPrefix("request_duration_stddev_seconds", "Population standard deviation of the request durations inside the window."),
		durMin:  perPrefix("request_duration_min_seconds", "Shortest request duration inside the window."),
		durMax:  perPrefix("request_duration_max_seconds", "Longest request duration inside the window."),

		accepted:        global("messages_accepted_total", "Ingest messages accepted."),
		rejected:        global("messages_rejected_total", "Ingest messages rejected, per reason.", "reason"),
		disconnects:     global("ingest_disconnects_total", "Ingest peers that disconnected or were disconnected."),
		controlRequests: global("control_requests_total", "Requests on the control socket."),
		controlErrors:   global("control_errors_total", "Control requests answered ERROR."),
		commands:        global("control_commands_total", "Valid control commands, per command.", "command"),
		commandsRefused: global("control_commands_refused_total", "Valid control commands refused because they are not in allowed_commands."),
		authFailures:    global("auth_failures_total", "CURVE handshakes refused: client keys not in curve_client_keys."),
		clientDropped:   global("client_dropped_total", "Events clients reported dropping because the collector was down or not keeping up."),
		stateErrors:     global("state_write_errors_total", "Failed writes of the state file (state_file)."),
		prefixes:        global("prefixes", "Prefixes tracked."),
		maxPrefixes:     global("max_prefixes", "Most prefixes tracked at once (max_prefixes)."),
		windowSeconds:   global("window_seconds", "Length of the sliding window (window)."),
		windowSlots:     global("window_slots", "Time slots the window is divided into (window_slots)."),
		startTime:       global("start_time_seconds", "When the collector started, in seconds since the Unix epoch."),
		buildInfo:       global("build_info", "Always 1; the version label is the gstats release.", "version"),
		httpForbidden:   global("http_forbidden_total", "HTTP requests refused because the client is not in http_allowed_ips."),
	}
}

// Describe implements prometheus.Collector.
func (c *promCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.started, c.finished, c.responses, c.inFlight, c.windowCount, c.windowRate,
		c.duration, c.durMean, c.durStd, c.durMin, c.durMax,
		c.accepted, c.rejected, c.disconnects, c.controlRequests, c.controlErrors, c.commands,
		c.commandsRefused, c.authFailures, c.clientDropped, c.stateErrors,
		c.prefixes, c.maxPrefixes, c.windowSeconds, c.windowSlots, c.startTime, c.buildInfo, c.httpForbidden,
	} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *promCollector) Collect(ch chan<- prometheus.Metric) {
	g := c.g
	all := g.snapshot()
	for name, st := range all {
		c.collectPrefix(ch, name, st)
	}

	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter(c.accepted, g.stats.accepted.Load())
	for _, r := range wire.AllReasons() {
		counter(c.rejected, g.stats.rejected[r].Load(), string(r))
	}
	counter(c.disconnects, g.stats.disconnects.Load())
	counter(c.controlRequests, g.stats.controlRequests.Load())
	counter(c.controlErrors, g.stats.controlErrors.Load())
	for _, cmd := range wire.AllCommands() {
		counter(c.commands, g.stats.commands[cmd].Load(), string(cmd))
	}
	counter(c.commandsRefused, g.stats.commandsRefused.Load())
	counter(c.authFailures, g.stats.authFailures.Load())
	counter(c.clientDropped, g.stats.clientDropped.Load())
	counter(c.stateErrors, g.stats.stateErrors.Load())
	counter(c.httpForbidden, c.forbidden.Load())
	gauge(c.prefixes, float64(len(all)))
	gauge(c.maxPrefixes, float64(g.MaxPrefixes))
	gauge(c.windowSeconds, time.Duration(g.Window).Seconds())
	gauge(c.windowSlots, float64(g.WindowSlots))
	gauge(c.startTime, float64(g.started.UnixNano())/1e9)
	gauge(c.buildInfo, 1, version.Version)
}

func (c *promCollector) collectPrefix(ch chan<- prometheus.Metric, name string, st window.Stats) {
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), append([]string{name}, labels...)...)
	}
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, name)
	}
	counter(c.started, st.Started)
	counter(c.finished, st.Finished)
	for i, class := range statusClassLabels() {
		counter(c.responses, st.Status[i], class)
	}
	gauge(c.inFlight, float64(st.InFlight()))
	gauge(c.windowCount, float64(st.Count))
	gauge(c.windowRate, st.Rate)

	quantiles := make(map[float64]float64, len(c.g.Percentiles))
	for i, p := range c.g.Percentiles {
		v := math.NaN() // as client_golang reports a quantile of no observations
		if st.Count > 0 {
			v = st.Percentiles[i] / 1000
		}
		quantiles[p/100] = v
	}
	ch <- prometheus.MustNewConstSummary(c.duration, uint64(st.Count), st.Mean*float64(st.Count)/1000, quantiles, name)
	if st.Count > 0 {
		gauge(c.durMean, st.Mean/1000)
		gauge(c.durStd, st.Std/1000)
		gauge(c.durMin, st.Min/1000)
		gauge(c.durMax, st.Max/1000)
	}
}

// statusClassLabels names the indexes of window.Stats.Status.
func statusClassLabels() [window.NumClass]string {
	var l [window.NumClass]string
	for i := range l {
		l[i] = strconv.Itoa(i) + "xx"
	}
	l[window.ClassNone] = "none"
	return l
}
