package gstats

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/gstats/gstats/internal/curvekey"
	"github.com/gstats/gstats/wire"
)

// The sockets CURVE can protect, as curve_sockets names them.
const (
	socketStats   = "stats"
	socketControl = "control"
)

// curveFrameOverhead is what CURVE adds to every frame on the wire (the
// MESSAGE command name, nonce, flags and MAC): libzmq applies
// max_message_size to the encrypted frame, so a CURVE socket's limit is
// raised by it and clients' messages pass exactly as without CURVE.
const curveFrameOverhead = 33

// curveHandshakeBytes is the smallest frame limit a CURVE socket gets: the
// client's INITIATE command (about 280 bytes with its metadata) goes
// through the same limit during the handshake.
const curveHandshakeBytes = 512

// securityState is the security part of the plugin: set by Init, read-only
// afterwards (commandAllowed runs on the control goroutine), except zap,
// which Start and Stop own.
type securityState struct {
	// allowed is allowed_commands as a set; nil before Init (every command
	// is then answered, as the original did).
	allowed map[wire.Command]bool

	// CURVE: off while curveOn is empty.
	curveOn    map[string]bool     // sockets under CURVE
	serverKey  curvekey.Pair       // from curve_secret_key_file
	clientKeys map[[32]byte]string // allowed client public keys → where configured

	zap *zapHandler // running between startAuth and stopAuth
}

// initSecurity validates allowed_commands, the CURVE settings and the rule
// on non-loopback control addresses (called by Init).
func (g *Gstats) initSecurity() error {
	var s securityState
	names, allowed, err := parseAllowedCommands(g.AllowedCommands)
	if err != nil {
		return err
	}
	if g.AllowedCommands != nil {
		g.AllowedCommands = names
	}
	s.allowed = allowed
	if err := g.initCurve(&s); err != nil {
		return err
	}
	if err := g.checkControlExposure(&s); err != nil {
		return err
	}
	g.security = s
	return nil
}

// parseAllowedCommands reads allowed_commands: any case, no duplicates
// kept, nil meaning every command.
func parseAllowedCommands(list []string) ([]string, map[wire.Command]bool, error) {
	all := wire.AllCommands()
	set := make(map[wire.Command]bool, len(all))
	if list == nil {
		for _, c := range all {
			set[c] = true
		}
		return nil, set, nil
	}
	if len(list) == 0 {
		// TOML tells `allowed_commands = []` from an absent key; refusing
		// every command is what comm_address = "" is for.
		return nil, nil, fmt.Errorf(`allowed_commands is empty: to answer no command at all, turn the control socket off with comm_address = ""; to answer every command, remove allowed_commands (valid commands: %s)`, commandNames(all))
	}
	names := make([]string, 0, len(list))
	for _, name := range list {
		c := wire.Command(strings.ToUpper(strings.TrimSpace(name)))
		if !slices.Contains(all, c) {
			return nil, nil, fmt.Errorf("allowed_commands: unknown command %q; valid commands: %s", name, commandNames(all))
		}
		if !set[c] {
			set[c] = true
			names = append(names, string(c))
		}
	}
	return names, set, nil
}

func commandNames(cmds []wire.Command) string {
	s := make([]string, len(cmds))
	for i, c := range cmds {
		s[i] = string(c)
	}
	return strings.Join(s, ", ")
}

// initCurve validates and loads the CURVE settings into s.
func (g *Gstats) initCurve(s *securityState) error {
	if g.CurveSecretKeyFile == "" {
		switch {
		case len(g.CurveClientKeys) > 0:
			return errors.New("curve_client_keys is set but curve_secret_key_file is not, so CURVE would be off; set curve_secret_key_file to the collector's key pair file (gstatsctl keygen NAME writes NAME.key_secret), or remove curve_client_keys")
		case len(g.CurveSockets) > 0:
			return errors.New("curve_sockets is set but curve_secret_key_file is not, so CURVE would be off; set curve_secret_key_file and curve_client_keys, or remove curve_sockets")
		}
		return nil
	}
	if !zmq.HasCurve() {
		major, minor, patch := zmq.Version()
		return fmt.Errorf("curve_secret_key_file is set but this libzmq (%d.%d.%d) has no CURVE support: it was built without libsodium; install a libzmq with CURVE (Debian/Ubuntu: libzmq5) or remove the curve_* settings", major, minor, patch)
	}
	sockets, err := parseCurveSockets(g.CurveSockets)
	if err != nil {
		return err
	}
	pair, err := curvekey.LoadSecret(g.CurveSecretKeyFile)
	if err != nil {
		return fmt.Errorf("curve_secret_key_file: %w", err)
	}
	if len(g.CurveClientKeys) == 0 {
		return fmt.Errorf("curve_secret_key_file is set but curve_client_keys is empty, so no client could connect; list the clients' public keys (Z85), their .key files, or a directory of .key files (gstatsctl keygen NAME writes NAME.key)")
	}
	keys, err := loadClientKeys(g.CurveClientKeys)
	if err != nil {
		return err
	}
	s.curveOn = sockets
	s.serverKey = pair
	s.clientKeys = keys
	return nil
}

// parseCurveSockets reads curve_sockets; nil means both sockets.
func parseCurveSockets(list []string) (map[string]bool, error) {
	valid := []string{socketStats, socketControl}
	set := make(map[string]bool, 2)
	if list == nil {
		for _, name := range valid {
			set[name] = true
		}
		return set, nil
	}
	if len(list) == 0 {
		return nil, errors.New(`curve_sockets is empty: list "stats" and/or "control", remove it for both, or remove curve_secret_key_file to turn CURVE off`)
	}
	for _, name := range list {
		n := strings.ToLower(strings.TrimSpace(name))
		if !slices.Contains(valid, n) {
			return nil, fmt.Errorf(`curve_sockets: unknown socket %q; valid names: "stats", "control"`, name)
		}
		set[n] = true
	}
	return set, nil
}

// loadClientKeys reads curve_client_keys: each entry a Z85 public key, a
// key file, or a directory whose *.key files are read.
func loadClientKeys(specs []string) (map[[32]byte]string, error) {
	keys := make(map[[32]byte]string)
	add := func(z85, from string) error {
		raw, err := curvekey.Decode(z85)
		if err != nil {
			return fmt.Errorf("curve_client_keys: %s: %w", from, err)
		}
		k := [32]byte(raw)
		if _, dup := keys[k]; !dup {
			keys[k] = from
		}
		return nil
	}
	for i, spec := range specs {
		spec = strings.TrimSpace(spec)
		if spec == "" {
			return nil, fmt.Errorf("curve_client_keys: entry %d is empty", i+1)
		}
		if st, err := os.Stat(spec); err == nil && st.IsDir() {
			files, err := keyFilesIn(spec)
			if err != nil {
				return nil, err
			}
			for _, path := range files {
				p, err := curvekey.Load(path)
				if err != nil {
					return nil, fmt.Errorf("curve_client_keys: %w", err)
				}
				if err := add(p.Public, path); err != nil {
					return nil, err
				}
			}
			continue
		}
		pub, err := curvekey.LoadPublic(spec)
		if err != nil {
			return nil, fmt.Errorf("curve_client_keys: entry %d: %w", i+1, err)
		}
		from := spec
		if len(spec) == curvekey.Len && pub == spec {
			from = "curve_client_keys entry " + fmt.Sprint(i+1)
		}
		if err := add(pub, from); err != nil {
			return nil, err
		}
	}
	return keys, nil
}

// keyFilesIn lists the *.key files of dir, sorted; a directory without one
// is an error (it would silently allow nobody).
func keyFilesIn(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("curve_client_keys: reading directory: %w", err)
	}
	var files []string
	for _, e := range entries {
		if !e.IsDir() && strings.HasSuffix(e.Name(), curvekey.PublicSuffix) {
			files = append(files, filepath.Join(dir, e.Name()))
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("curve_client_keys: directory %s holds no *%s file", dir, curvekey.PublicSuffix)
	}
	return files, nil
}

// checkControlExposure refuses a control socket that other hosts can reach
// and that would let them RESET or QUIT without CURVE, unless
// allow_insecure_control says the network is trusted.
func (g *Gstats) checkControlExposure(s *securityState) error {
	if g.CommAddress == "" || isLocalAddress(g.CommAddress) || s.curveOn[socketControl] || g.AllowInsecureControl {
		return nil
	}
	var risky []string
	for _, c := range []wire.Command{wire.CmdReset, wire.CmdQuit} {
		if s.allowed[c] {
			risky = append(risky, string(c))
		}
	}
	if len(risky) == 0 {
		return nil
	}
	curveFix := "require client keys on it with CURVE (curve_secret_key_file and curve_client_keys)"
	if len(s.curveOn) > 0 {
		curveFix = `require client keys on it too: add "control" to curve_sockets`
	}
	return fmt.Errorf("comm_address %q can be reached from other hosts and allows %s without CURVE: anyone who can connect could %s; "+
		"to proceed, bind it to loopback (comm_address = %q) or an ipc:// path, "+
		"or leave RESET and QUIT out of allowed_commands (e.g. allowed_commands = [\"STATS\", \"RTIMES\", \"INFO\"]), "+
		"or %s, "+
		"or set allow_insecure_control = true if only trusted hosts can reach it (see docs/SECURITY.md)",
		g.CommAddress, strings.Join(risky, " and "), riskText(risky), loopbackOf(g.CommAddress), curveFix)
}

func riskText(cmds []string) string {
	var what []string
	for _, c := range cmds {
		switch wire.Command(c) {
		case wire.CmdReset:
			what = append(what, "reset the statistics")
		case wire.CmdQuit:
			what = append(what, "stop the collector")
		}
	}
	return strings.Join(what, " and ")
}

// isLocalAddress reports whether only this host can reach a bind address:
// ipc:// and inproc://, or tcp:// on an IP address in 127.0.0.0/8 or ::1.
// "*", 0.0.0.0, ::, other addresses and interface names are not local.
func isLocalAddress(addr string) bool {
	scheme, rest, _ := strings.Cut(addr, "://")
	switch scheme {
	case "ipc", "inproc":
		return true
	case "tcp":
		host, _, err := net.SplitHostPort(rest)
		if err != nil {
			return false
		}
		ip := net.ParseIP(host)
		return ip != nil && ip.IsLoopback()
	}
	return false
}

// loopbackOf is addr on 127.0.0.1, same port, for suggestions.
func loopbackOf(addr string) string {
	_, rest, _ := strings.Cut(addr, "://")
	_, port, err := net.SplitHostPort(rest)
	if err != nil || port == "" {
		port = "2345"
	}
	return "tcp://127.0.0.1:" + port
}

// startAuth starts the ZAP handler in g.zctx when CURVE is on (called by
// Start before any socket is bound), and logs what is exposed.
func (g *Gstats) startAuth() error {
	s := &g.security
	if !s.curveOn[socketStats] && !isLocalAddress(g.StatsAddress) {
		g.Log.Warnf("stats socket %s can be reached from other hosts without CURVE: anyone who can connect can add requests to the statistics; "+
			"set curve_secret_key_file and curve_client_keys to accept known clients only (see docs/SECURITY.md)", g.StatsAddress)
	}
	if g.CommAddress != "" && !s.curveOn[socketControl] && !isLocalAddress(g.CommAddress) && (s.allowed[wire.CmdReset] || s.allowed[wire.CmdQuit]) {
		g.Log.Warnf("control socket %s can be reached from other hosts without CURVE and answers %v (allow_insecure_control = true): anyone who can connect can reset the statistics or stop the collector",
			g.CommAddress, g.allowedCommandList())
	}
	if len(s.curveOn) == 0 {
		return nil
	}
	domains := make(map[string]string, len(s.curveOn))
	var on []string
	for _, name := range []string{socketStats, socketControl} {
		if s.curveOn[name] {
			domains[zapDomain(name)] = name
			on = append(on, name)
		}
	}
	h, err := startZAP(g.zctx, zapConfig{
		domains:  domains,
		keys:     s.clientKeys,
		failures: &g.stats.authFailures,
		log:      g.Log,
		logs:     newThrottle(time.Duration(g.RejectLogInterval)),
	})
	if err != nil {
		return fmt.Errorf("starting CURVE authentication: %w", err)
	}
	s.zap = h
	for k, from := range s.clientKeys {
		z85, _ := curvekey.Encode(k[:])
		g.Log.Debugf("CURVE client key %s allowed (from %s)", z85, from)
	}
	g.Log.Infof("CURVE on the %s socket(s): %d client key(s) allowed; clients need the collector's public key %s",
		strings.Join(on, " and "), len(s.clientKeys), s.serverKey.Public)
	return nil
}

// stopAuth stops the ZAP handler; safe to call twice or when never started
// (called by Stop and by a failed Start, before the context terminates).
func (g *Gstats) stopAuth() {
	h := g.security.zap
	if h == nil {
		return
	}
	g.security.zap = nil
	if err := h.stop(); err != nil {
		g.Log.Errorf("stopping CURVE authentication: %v", err)
	}
}

// zapDomain is the ZAP domain of a CURVE socket; the handler names the
// socket in its log lines from it.
func zapDomain(socket string) string { return "gstats." + socket }

// secureSocket makes s a CURVE server when CURVE is on for which ("stats"
// or "control"); called before s is bound.
func (g *Gstats) secureSocket(s *zmq.Socket, which string) error {
	if !g.security.curveOn[which] {
		return nil
	}
	for _, o := range []sockOpt{
		{"CURVE server", func(s *zmq.Socket) error { return s.SetCurveServer(1) }},
		{"CURVE secret key", func(s *zmq.Socket) error { return s.SetCurveSecretkey(g.security.serverKey.Secret) }},
		{"ZAP domain", func(s *zmq.Socket) error { return s.SetZapDomain(zapDomain(which)) }},
		{"max message size", func(s *zmq.Socket) error { return s.SetMaxmsgsize(curveMaxMessageSize(int64(g.MaxMessageSize))) }},
	} {
		if err := o.set(s); err != nil {
			return fmt.Errorf("enabling CURVE on the %s socket: setting %s: %w", which, o.name, err)
		}
	}
	return nil
}

// curveMaxMessageSize is the frame limit of a CURVE socket for a
// max_message_size of n bytes.
func curveMaxMessageSize(n int64) int64 {
	return max(n+curveFrameOverhead, curveHandshakeBytes)
}

// commandAllowed reports whether cmd is in allowed_commands.
func (g *Gstats) commandAllowed(cmd wire.Command) bool {
	if g.security.allowed == nil {
		return true // Init has not run: the defaults
	}
	return g.security.allowed[cmd]
}

// allowedCommandList is allowed_commands, for messages.
func (g *Gstats) allowedCommandList() []string {
	if g.AllowedCommands != nil {
		return g.AllowedCommands
	}
	all := wire.AllCommands()
	names := make([]string, len(all))
	for i, c := range all {
		names[i] = string(c)
	}
	return names
}
