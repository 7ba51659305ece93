// Package gstats is the gstats collector as a Telegraf service input.
//
// Applications PUSH one ZeroMQ message when a request starts and one when it
// finishes; the plugin keeps a sliding wall-time window per prefix, answers
// the original gstats control socket (STATS, RTIMES, RESET, QUIT, and the
// new INFO), and emits one metric per prefix on every Gather.
package gstats

import (
	_ "embed"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/plugins/inputs"

	"github.com/gstats/gstats/internal/allowlist"
	"github.com/gstats/gstats/plugins/inputs/gstats/window"
	"github.com/gstats/gstats/wire"
)

//go:embed sample.conf
var sampleConfig string

// Gstats is the plugin. Its exported fields are its configuration.
type Gstats struct {
	StatsAddress      string          `toml:"stats_address"`
	CommAddress       string          `toml:"comm_address"`
	Window            config.Duration `toml:"window"`
	WindowSlots       int             `toml:"window_slots"`
	Percentiles       []float64       `toml:"percentiles"`
	MaxPrefixes       int             `toml:"max_prefixes"`
	MaxPrefixLength   int             `toml:"max_prefix_length"`
	MaxRawDurations   int             `toml:"max_raw_durations"`
	MaxDuration       config.Duration `toml:"max_duration"`
	MaxMessageSize    config.Size     `toml:"max_message_size"`
	ReceiveQueue      int             `toml:"receive_queue"`
	RejectLogInterval config.Duration `toml:"reject_log_interval"`

	// HTTP status listener (http.go): off while HTTPAddress is "".
	HTTPAddress    string   `toml:"http_address"`
	HTTPAllowedIPs []string `toml:"http_allowed_ips"`

	// State file (persist.go): off while StateFile is "".
	StateFile     string          `toml:"state_file"`
	StateInterval config.Duration `toml:"state_interval"`

	// Security (security.go): which control commands are answered, CURVE
	// on the sockets, and the rule on non-loopback control addresses.
	AllowedCommands      []string `toml:"allowed_commands"`
	CurveSecretKeyFile   string   `toml:"curve_secret_key_file"`
	CurveClientKeys      []string `toml:"curve_client_keys"`
	CurveSockets         []string `toml:"curve_sockets"`
	AllowInsecureControl bool     `toml:"allow_insecure_control"`

	Log telegraf.Logger `toml:"-"`

	onQuit func() // set by a host that can exit; nil inside Telegraf

	mu      sync.Mutex // guards win; Start's writes of win, epoch and the endpoints
	win     *window.Window
	epoch   time.Time // start instant; now() is derived from the monotonic clock
	started time.Time
	stats   counters

	acc      telegraf.Accumulator // from Start; Stop gathers into it once more
	self     selfStats
	running  bool
	statsEP  string // endpoints actually bound (ports resolved)
	commEP   string
	zctx     *zmq.Context
	wakeTx   []*zmq.Socket // one per loop goroutine, written only by Stop
	wg       sync.WaitGroup
	stopOnce sync.Once

	httpAllow *allowlist.List // from Init; nil while HTTPAddress is ""
	httpl     *httpListener   // from Start; nil while HTTPAddress is ""

	persist  persistState  // persist.go
	security securityState // security.go
}

// Defaults, as the original gstats-collectd had them where it had them.
const (
	defaultWindow            = 600 * time.Second
	defaultWindowSlots       = 60
	defaultMaxPrefixes       = 1000
	defaultMaxPrefixLength   = 255
	defaultMaxRawDurations   = 1000
	defaultMaxDuration       = 24 * time.Hour
	defaultMaxMessageSize    = 4096
	defaultReceiveQueue      = 100000
	defaultRejectLogInterval = 30 * time.Second
)

// New returns the plugin with its defaults; it is the registered factory.
func New() *Gstats {
	return &Gstats{
		StatsAddress:      wire.DefaultStatsAddress,
		CommAddress:       wire.DefaultCommAddress,
		Window:            config.Duration(defaultWindow),
		WindowSlots:       defaultWindowSlots,
		Percentiles:       []float64{50, 90, 95, 99},
		MaxPrefixes:       defaultMaxPrefixes,
		MaxPrefixLength:   defaultMaxPrefixLength,
		MaxRawDurations:   defaultMaxRawDurations,
		MaxDuration:       config.Duration(defaultMaxDuration),
		MaxMessageSize:    config.Size(defaultMaxMessageSize),
		ReceiveQueue:      defaultReceiveQueue,
		RejectLogInterval: config.Duration(defaultRejectLogInterval),
	}
}

// SampleConfig returns the plugin's sample configuration.
func (*Gstats) SampleConfig() string {
	return sampleConfig
}

// Init validates the configuration. It opens nothing.
func (g *Gstats) Init() error {
	if g.Log == nil {
		return errors.New("gstats: no logger set")
	}
	if err := checkAddress("stats_address", g.StatsAddress, false); err != nil {
		return err
	}
	if err := checkAddress("comm_address", g.CommAddress, true); err != nil {
		return err
	}
	if g.CommAddress != "" && g.CommAddress == g.StatsAddress && !strings.HasSuffix(g.StatsAddress, ":*") && !strings.HasSuffix(g.StatsAddress, ":0") {
		return fmt.Errorf("stats_address and comm_address are both %q; they must differ", g.StatsAddress)
	}
	if g.MaxPrefixLength < 1 {
		return fmt.Errorf("max_prefix_length must be at least 1, got %d", g.MaxPrefixLength)
	}
	if g.MaxDuration <= 0 {
		return fmt.Errorf("max_duration must be positive, got %s", time.Duration(g.MaxDuration))
	}
	if g.MaxMessageSize < 64 || int64(g.MaxMessageSize) > 1<<30 {
		return fmt.Errorf("max_message_size must be between 64B and 1GiB, got %d bytes", int64(g.MaxMessageSize))
	}
	if int64(g.MaxMessageSize) < int64(g.MaxPrefixLength) {
		return fmt.Errorf("max_message_size (%d bytes) is smaller than max_prefix_length (%d bytes); raise max_message_size", int64(g.MaxMessageSize), g.MaxPrefixLength)
	}
	if g.ReceiveQueue < 1 {
		return fmt.Errorf("receive_queue must be at least 1, got %d", g.ReceiveQueue)
	}
	if g.RejectLogInterval <= 0 {
		return fmt.Errorf("reject_log_interval must be positive, got %s", time.Duration(g.RejectLogInterval))
	}
	if err := g.windowConfig().Validate(); err != nil {
		return err
	}
	if err := g.initHTTP(); err != nil {
		return err
	}
	if err := g.initState(); err != nil {
		return err
	}
	if err := g.initSecurity(); err != nil {
		return err
	}
	return nil
}

func (g *Gstats) windowConfig() window.Config {
	return window.Config{
		Window:      time.Duration(g.Window),
		Slots:       g.WindowSlots,
		Percentiles: g.Percentiles,
		MaxPrefixes: g.MaxPrefixes,
		MaxRaw:      g.MaxRawDurations,
	}
}

// checkAddress validates a ZeroMQ bind address.
func checkAddress(key, addr string, mayBeEmpty bool) error {
	if addr == "" {
		if mayBeEmpty {
			return nil
		}
		return fmt.Errorf("%s must be set, e.g. %q", key, wire.DefaultStatsAddress)
	}
	scheme, rest, ok := strings.Cut(addr, "://")
	if !ok {
		return fmt.Errorf("%s %q has no transport; write it as tcp://IP:PORT or ipc:///path", key, addr)
	}
	switch scheme {
	case "tcp":
		host, port, err := net.SplitHostPort(rest)
		if err != nil {
			return fmt.Errorf("%s %q: %v; write it as tcp://IP:PORT, e.g. tcp://127.0.0.1:2345", key, addr, err)
		}
		if p, err := strconv.Atoi(port); port != "*" && (err != nil || p < 0 || p > 65535) {
			return fmt.Errorf("%s %q: port %q is not a number from 0 to 65535 or *", key, addr, port)
		}
		if host == "localhost" {
			return fmt.Errorf("%s %q: ZeroMQ binds to an IP address or interface, not a host name; use tcp://127.0.0.1:%s", key, addr, port)
		}
		if host == "" {
			return fmt.Errorf("%s %q has no host; use * for every interface or an IP address", key, addr)
		}
	case "ipc", "inproc":
		if rest == "" {
			return fmt.Errorf("%s %q has no path", key, addr)
		}
		if scheme == "ipc" && len(rest) > 107 {
			return fmt.Errorf("%s %q: the socket path is %d bytes; Unix socket paths are limited to 107", key, addr, len(rest))
		}
	default:
		return fmt.Errorf("%s %q: transport %q is not supported; use tcp:// or ipc://", key, addr, scheme)
	}
	return nil
}

// Start binds the ingest and control sockets and starts serving them.
func (g *Gstats) Start(acc telegraf.Accumulator) error {
	win, err := window.New(g.windowConfig())
	if err != nil {
		return fmt.Errorf("creating window: %w", err)
	}
	g.mu.Lock() // Reset and Endpoints may run concurrently with Start
	g.win = win
	g.epoch = time.Now()
	g.started = g.epoch
	g.mu.Unlock()
	g.stats.init()
	g.restoreState() // fills g.win and g.stats from the state file, if any

	t0 := time.Now()
	zctx, err := zmq.NewContext()
	if err != nil {
		return fmt.Errorf("creating zmq context: %w", err)
	}
	g.zctx = zctx
	ok := false
	var owned []*zmq.Socket
	defer func() {
		if ok {
			return
		}
		for _, s := range owned {
			_ = s.Close()
		}
		g.wakeTx = nil
		g.stopAuth()
		_ = zctx.Term()
		g.zctx = nil
	}()
	if err := g.startAuth(); err != nil {
		return err
	}

	in, err := g.bindIngest()
	if err != nil {
		return err
	}
	owned = append(owned, in.pull, in.monitor)
	in.wake, err = g.newWake("ingest")
	if err != nil {
		return err
	}
	owned = append(owned, in.wake, g.wakeTx[len(g.wakeTx)-1])

	var ctl *controlLoop
	if g.CommAddress != "" {
		ctl, err = g.bindControl()
		if err != nil {
			return err
		}
		owned = append(owned, ctl.rep)
		ctl.wake, err = g.newWake("control")
		if err != nil {
			return err
		}
		owned = append(owned, ctl.wake, g.wakeTx[len(g.wakeTx)-1])
	}

	// Read before the loops own the sockets; INFO reads them afterwards.
	statsEP, commEP := endpoint(in.pull, g.StatsAddress), ""
	if ctl != nil {
		commEP = endpoint(ctl.rep, g.CommAddress)
	}
	g.mu.Lock()
	g.statsEP, g.commEP = statsEP, commEP
	g.mu.Unlock()
	hl, err := g.listenHTTP() // the last step that can fail
	if err != nil {
		return err
	}
	ok = true
	g.running = true
	g.acc = acc
	g.self = registerSelfStats(g.statsEP)
	g.wg.Add(1)
	go in.run()
	if ctl != nil {
		g.wg.Add(1)
		go ctl.run()
	}
	if hl != nil {
		g.mu.Lock()
		g.httpl = hl
		g.mu.Unlock()
		go hl.serve()
	}
	g.startStateWriter()
	g.Log.Infof("listening: stats (PULL) on %s, control (REP) on %s; window %s in %d slots; started in %s",
		g.statsEP, orNone(g.commEP), time.Duration(g.Window), g.WindowSlots, time.Since(t0).Round(time.Microsecond))
	if hl != nil {
		g.Log.Infof("HTTP status listener on http://%s/ (/_status, /metrics, dashboard at /); allowed clients: %s",
			hl.addr(), g.httpAllow)
	}
	return nil
}

// Endpoints returns the addresses the stats and control sockets are bound
// to, with wildcard ports resolved ("" for a disabled control socket). It is
// valid between Start and Stop.
func (g *Gstats) Endpoints() (stats, comm string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.statsEP, g.commEP
}

// endpoint is the address s is bound to, or addr if libzmq cannot say.
func endpoint(s *zmq.Socket, addr string) string {
	ep, err := s.GetLastEndpoint()
	if err != nil || ep == "" {
		return addr
	}
	return ep
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// newWake creates a PAIR pair over inproc: the loop goroutine polls rx, Stop
// writes to tx.
func (g *Gstats) newWake(name string) (*zmq.Socket, error) {
	ep := "inproc://gstats-wake-" + name
	rx, err := g.zctx.NewSocket(zmq.PAIR)
	if err != nil {
		return nil, fmt.Errorf("creating %s wake socket: %w", name, err)
	}
	if err := rx.Bind(ep); err != nil {
		_ = rx.Close()
		return nil, fmt.Errorf("binding %s wake socket: %w", name, err)
	}
	tx, err := g.zctx.NewSocket(zmq.PAIR)
	if err != nil {
		_ = rx.Close()
		return nil, fmt.Errorf("creating %s wake socket: %w", name, err)
	}
	if err := tx.Connect(ep); err != nil {
		_ = rx.Close()
		_ = tx.Close()
		return nil, fmt.Errorf("connecting %s wake socket: %w", name, err)
	}
	_ = tx.SetLinger(0)
	g.wakeTx = append(g.wakeTx, tx)
	return rx, nil
}

// sockOpt is one socket option, named for error messages.
type sockOpt struct {
	name string
	set  func(*zmq.Socket) error
}

// newSocket creates a socket in the plugin's context and applies opts; what
// names the socket in errors.
func (g *Gstats) newSocket(typ zmq.Type, what string, opts ...sockOpt) (*zmq.Socket, error) {
	s, err := g.zctx.NewSocket(typ)
	if err != nil {
		return nil, fmt.Errorf("creating the %s socket: %w", what, err)
	}
	for _, o := range opts {
		if err := o.set(s); err != nil {
			_ = s.Close()
			return nil, fmt.Errorf("setting %s on the %s socket: %w", o.name, what, err)
		}
	}
	return s, nil
}

// bindError explains a failed bind.
func bindError(what, key, flag, addr string, err error) error {
	hint := ""
	switch zmq.AsErrno(err) {
	case zmq.Errno(98): // EADDRINUSE
		hint = "; is another gstats-collectd running?"
	case zmq.Errno(99): // EADDRNOTAVAIL
		hint = "; that IP address is not on this machine"
	case zmq.Errno(19): // ENODEV
		hint = "; bind needs an IP address or interface name, not a host name"
	case zmq.Errno(13): // EACCES
		hint = "; permission denied (ports below 1024 need privileges)"
	}
	return fmt.Errorf("cannot bind %s socket %q: %w%s; change %s (%s)", what, addr, err, hint, key, flag)
}

// Gather emits one "gstats" metric per prefix and one "gstats_internal"
// metric with the collector's own counters.
func (g *Gstats) Gather(acc telegraf.Accumulator) error {
	if g.win == nil {
		return nil
	}
	all := g.snapshot()
	nprefix := len(all)

	ts := time.Now()
	for name, st := range all {
		acc.AddFields("gstats", g.fields(st), map[string]string{"prefix": name}, ts)
	}
	internal := g.stats.fields(nprefix)
	acc.AddFields("gstats_internal", internal, nil, ts)
	g.self.set(internal)
	return nil
}

// fields turns one prefix's statistics into metric fields. Latency fields
// are omitted while the window holds no duration.
func (g *Gstats) fields(st window.Stats) map[string]any {
	// Sized once for every field: growing the map took a tenth of Gather.
	f := make(map[string]any, 15+len(g.Percentiles))
	f["started"] = st.Started
	f["finished"] = st.Finished
	f["in_flight"] = st.InFlight()
	f["count"] = st.Count
	f["rate"] = st.Rate
	f["status_1xx"] = st.Status[1]
	f["status_2xx"] = st.Status[2]
	f["status_3xx"] = st.Status[3]
	f["status_4xx"] = st.Status[4]
	f["status_5xx"] = st.Status[5]
	f["status_none"] = st.Status[window.ClassNone]
	if st.Count > 0 {
		f["mean_ms"] = st.Mean
		f["stddev_ms"] = st.Std
		f["min_ms"] = st.Min
		f["max_ms"] = st.Max
		for i, p := range g.Percentiles {
			f[percentileField(p)] = st.Percentiles[i]
		}
	}
	return f
}

// snapshot computes every prefix's statistics. It takes the lock once per
// prefix, so ingest waits at most one prefix's computation, however many
// prefixes there are.
func (g *Gstats) snapshot() map[string]window.Stats {
	g.mu.Lock()
	names := g.win.AppendPrefixes(make([]string, 0, g.win.Len())) // unsorted: the result is a map
	g.mu.Unlock()
	out := make(map[string]window.Stats, len(names))
	for _, name := range names {
		now := g.now()
		g.mu.Lock()
		st, ok := g.win.PrefixStats(name, now)
		g.mu.Unlock()
		if ok { // not forgotten by a RESET meanwhile
			out[name] = st
		}
	}
	return out
}

// percentileField names a percentile's metric field: p50_ms, p99_9_ms.
func percentileField(p float64) string {
	return "p" + strings.ReplaceAll(strconv.FormatFloat(p, 'f', -1, 64), ".", "_") + "_ms"
}

// Stop stops reading, processes every message already received, gathers
// once more into the accumulator Start was given (so the last interval's
// traffic reaches the outputs: Telegraf and its execd shim still read it
// while Stop runs), and returns once no goroutine or socket of the plugin
// is left.
func (g *Gstats) Stop() {
	g.stopOnce.Do(func() {
		if !g.running {
			return
		}
		t0 := time.Now()
		if g.httpl != nil {
			g.httpl.shutdown() // first: its handlers read the window
		}
		for _, tx := range g.wakeTx {
			if _, err := tx.Send("stop", 0); err != nil {
				g.Log.Errorf("waking a socket loop: %v", err)
			}
		}
		g.wg.Wait()
		for _, tx := range g.wakeTx {
			_ = tx.Close()
		}
		g.wakeTx = nil
		g.stopAuth()
		g.stopStateWriter() // after the loops: the last write holds every message
		if err := g.zctx.Term(); err != nil {
			g.Log.Errorf("terminating zmq context: %v", err)
		}
		g.running = false
		if g.acc != nil {
			if err := g.Gather(g.acc); err != nil {
				g.acc.AddError(fmt.Errorf("final gather: %w", err))
			}
		}
		g.Log.Infof("stopped in %s: %d messages accepted, %d rejected", time.Since(t0).Round(time.Microsecond),
			g.stats.accepted.Load(), g.stats.rejectedTotal())
	})
}

// Reset forgets every prefix, as the RESET command and SIGUSR1 do.
func (g *Gstats) Reset() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.win == nil {
		return // not started: nothing to forget
	}
	g.win.Reset(g.now())
}

// SetQuitHandler makes the QUIT command reply and then call f. A host that
// can exit (gstats-collectd) sets it; without it QUIT is answered ERROR,
// because a plugin inside Telegraf must not end Telegraf.
func (g *Gstats) SetQuitHandler(f func()) {
	g.onQuit = f
}

// now is the collector's clock: wall time at Start plus the monotonic time
// since, so a stepped wall clock neither stalls nor jumps the window.
func (g *Gstats) now() time.Time {
	return g.epoch.Add(time.Since(g.epoch))
}

func init() {
	inputs.Add("gstats", func() telegraf.Input { return New() })
}
