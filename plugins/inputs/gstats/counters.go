package gstats

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/influxdata/telegraf"

	"github.com/gstats/gstats/wire"
)

// counters are the collector's own statistics, read by INFO and Gather
// while the loops update them.
type counters struct {
	accepted        atomic.Int64
	rejected        map[wire.Reason]*atomic.Int64 // fixed key set; the map is never written after init
	disconnects     atomic.Int64
	controlRequests atomic.Int64
	controlErrors   atomic.Int64
	commandsRefused atomic.Int64 // valid commands not in allowed_commands (also in controlErrors)
	clientDropped   atomic.Int64 // events clients reported dropping (packed header)
	authFailures    atomic.Int64 // CURVE handshakes refused by the ZAP handler
	stateErrors     atomic.Int64 // failed writes of the state file (persist.go)
	commands        map[wire.Command]*atomic.Int64
}

func (c *counters) init() {
	c.rejected = make(map[wire.Reason]*atomic.Int64, len(wire.AllReasons()))
	for _, r := range wire.AllReasons() {
		c.rejected[r] = new(atomic.Int64)
	}
	c.commands = make(map[wire.Command]*atomic.Int64, len(wire.AllCommands()))
	for _, cmd := range wire.AllCommands() {
		c.commands[cmd] = new(atomic.Int64)
	}
}

func (c *counters) rejectedTotal() int64 {
	var n int64
	for _, v := range c.rejected {
		n += v.Load()
	}
	return n
}

func (c *counters) fields(prefixes int) map[string]any {
	f := map[string]any{
		"accepted":         c.accepted.Load(),
		"rejected":         c.rejectedTotal(),
		"disconnects":      c.disconnects.Load(),
		"control_requests": c.controlRequests.Load(),
		"control_errors":   c.controlErrors.Load(),
		"commands_refused": c.commandsRefused.Load(),
		"auth_failures":    c.authFailures.Load(),
		"client_dropped":   c.clientDropped.Load(),
		"prefixes":         int64(prefixes),
	}
	f["state_write_errors"] = c.stateErrors.Load()
	for r, v := range c.rejected {
		f["rejected_"+string(r)] = v.Load()
	}
	return f
}

// throttle logs a class of problem at most once per interval, with the
// number of occurrences it held back. It is used by one goroutine only.
type throttle struct {
	interval time.Duration
	last     map[string]time.Time
	held     map[string]int64
}

func newThrottle(interval time.Duration) *throttle {
	return &throttle{interval: interval, last: make(map[string]time.Time), held: make(map[string]int64)}
}

// warn logs msg as a warning for key unless one was logged less than
// interval ago.
func (t *throttle) warn(log telegraf.Logger, key string, now time.Time, msg string) {
	if m, ok := t.allow(key, now, msg); ok {
		log.Warn(m)
	}
}

// info is warn at information level.
func (t *throttle) info(log telegraf.Logger, key string, now time.Time, msg string) {
	if m, ok := t.allow(key, now, msg); ok {
		log.Info(m)
	}
}

// allow reports whether msg for key may be logged now, and adds to it how
// many were held back since the last one.
func (t *throttle) allow(key string, now time.Time, msg string) (string, bool) {
	if last, ok := t.last[key]; ok && now.Sub(last) < t.interval {
		t.held[key]++
		return "", false
	}
	if n := t.held[key]; n > 0 {
		msg = fmt.Sprintf("%s (and %d more like it in the last %s)", msg, n, now.Sub(t.last[key]).Round(time.Second))
	}
	t.last[key] = now
	t.held[key] = 0
	return msg, true
}

// rejectHint says, for each reason, what to change.
func rejectHint(r wire.Reason) string {
	switch r {
	case wire.ReasonFrames:
		return "clients must send 2 frames (prefix, duration) or 3 (prefix, duration, status)"
	case wire.ReasonPrefixTooLong:
		return "raise max_prefix_length or shorten the client's prefix"
	case wire.ReasonPrefixNotUTF8:
		return "clients must send the prefix as UTF-8"
	case wire.ReasonTooManyPrefixes:
		return "raise max_prefixes, or RESET to forget old prefixes"
	case wire.ReasonBadDuration:
		return "clients must send milliseconds as a decimal number, e.g. 153 or 12.5"
	case wire.ReasonNegativeDuration:
		return "clients must send a duration of 0 ms or more"
	case wire.ReasonNonFinite:
		return "clients must send a finite duration"
	case wire.ReasonDurationTooLarge:
		return "raise max_duration if such requests are real"
	case wire.ReasonBadStatus:
		return "the third frame must be an HTTP status code, e.g. 200"
	}
	return "see the gstats input plugin README"
}
