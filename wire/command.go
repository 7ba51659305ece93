package wire

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Command is a control command.
type Command string

// The control commands. STATS, RTIMES, RESET and QUIT are the original's;
// INFO is read-only and new.
const (
	CmdStats  Command = "STATS"
	CmdRTimes Command = "RTIMES"
	CmdReset  Command = "RESET"
	CmdQuit   Command = "QUIT"
	CmdInfo   Command = "INFO"
)

// AllCommands lists the control commands.
func AllCommands() []Command {
	return []Command{CmdStats, CmdRTimes, CmdReset, CmdQuit, CmdInfo}
}

// Fixed replies.
const (
	// ReplyError is the reply to anything that is not a command. It is not
	// JSON.
	ReplyError = "ERROR"
	// ReplyNull is the reply to RESET and QUIT.
	ReplyNull = "null"
)

// ParseCommand parses a control request: exactly one frame holding one of
// Commands, upper case, as the original collector compared it.
func ParseCommand(frames [][]byte) (Command, error) {
	if len(frames) != 1 {
		return "", fmt.Errorf("request has %d frames, want 1", len(frames))
	}
	c := Command(frames[0])
	if !slices.Contains(AllCommands(), c) {
		return "", fmt.Errorf("unknown command %s", Quote(frames[0], 32))
	}
	return c, nil
}

// Float is a float64 that encodes to JSON the way Python's json module did
// (always with a decimal point: 0.0, 153.2).
type Float float64

// MarshalJSON implements json.Marshaler.
func (f Float) MarshalJSON() ([]byte, error) {
	return AppendFloat(nil, float64(f)), nil
}

// StatsReply is the reply to STATS: every prefix seen since start or the
// last reset.
type StatsReply map[string]PrefixStats

// PrefixStats is one prefix in a STATS reply. Started, Finished and
// ProcessingTime.Avg/Std are the original's keys; the others are new and
// sit beside them.
type PrefixStats struct {
	Started        int64          `json:"started"`
	Finished       int64          `json:"finished"`
	ProcessingTime ProcessingTime `json:"processing_time"`
	// InFlight is started − finished, never negative.
	InFlight int64 `json:"in_flight"`
	// Rate is the finished requests per second over the window.
	Rate Float `json:"rate"`
	// Status counts finishes by the class of their status code; "none"
	// counts finishes that carried no status code.
	Status StatusCounts `json:"status"`
}

// StatusCounts counts finishes per status class.
type StatusCounts struct {
	S1xx int64 `json:"1xx"`
	S2xx int64 `json:"2xx"`
	S3xx int64 `json:"3xx"`
	S4xx int64 `json:"4xx"`
	S5xx int64 `json:"5xx"`
	None int64 `json:"none"`
}

// Percentile is one reported percentile: P in (0, 100], Value in ms.
type Percentile struct {
	P     float64
	Value Float
}

// Key is the JSON key and metric field stem of the percentile: "p50",
// "p99.9".
func (p Percentile) Key() string {
	return "p" + strconv.FormatFloat(p.P, 'f', -1, 64)
}

// ProcessingTime summarises the durations in the window, in milliseconds.
// The percentiles are encoded inline as "p50", "p99.9", ...
type ProcessingTime struct {
	Avg         Float
	Std         Float
	Count       int64
	Min         Float
	Max         Float
	Percentiles []Percentile
}

// MarshalJSON implements json.Marshaler.
func (pt ProcessingTime) MarshalJSON() ([]byte, error) {
	b := []byte(`{"avg":`)
	b = AppendFloat(b, float64(pt.Avg))
	b = append(b, `,"std":`...)
	b = AppendFloat(b, float64(pt.Std))
	b = append(b, `,"count":`...)
	b = strconv.AppendInt(b, pt.Count, 10)
	b = append(b, `,"min":`...)
	b = AppendFloat(b, float64(pt.Min))
	b = append(b, `,"max":`...)
	b = AppendFloat(b, float64(pt.Max))
	for _, p := range pt.Percentiles {
		b = append(b, `,"`...)
		b = append(b, p.Key()...)
		b = append(b, `":`...)
		b = AppendFloat(b, float64(p.Value))
	}
	return append(b, '}'), nil
}

// UnmarshalJSON implements json.Unmarshaler. It accepts the original's
// reply, which has only avg and std.
func (pt *ProcessingTime) UnmarshalJSON(data []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	*pt = ProcessingTime{}
	num := func(key string, dst *Float) error {
		v, ok := raw[key]
		if !ok {
			return nil
		}
		var f float64
		if err := json.Unmarshal(v, &f); err != nil {
			return fmt.Errorf("processing_time.%s: %w", key, err)
		}
		*dst = Float(f)
		return nil
	}
	for key, dst := range map[string]*Float{"avg": &pt.Avg, "std": &pt.Std, "min": &pt.Min, "max": &pt.Max} {
		if err := num(key, dst); err != nil {
			return err
		}
	}
	if v, ok := raw["count"]; ok {
		if err := json.Unmarshal(v, &pt.Count); err != nil {
			return fmt.Errorf("processing_time.count: %w", err)
		}
	}
	for key, v := range raw {
		// Only keys that Percentile.Key would write are percentiles
		// ("p50", "p99.9"); anything else ("pending", "pNaN", "p1e2",
		// "p0") is a key this version does not know, and is ignored.
		p, ok := strings.CutPrefix(key, "p")
		if !ok {
			continue
		}
		pv, err := strconv.ParseFloat(p, 64)
		if err != nil || !(pv > 0 && pv <= 100) || (Percentile{P: pv}).Key() != key {
			continue
		}
		var f float64
		if err := json.Unmarshal(v, &f); err != nil {
			return fmt.Errorf("processing_time.%s: %w", key, err)
		}
		pt.Percentiles = append(pt.Percentiles, Percentile{P: pv, Value: Float(f)})
	}
	slices.SortFunc(pt.Percentiles, func(a, b Percentile) int {
		switch {
		case a.P < b.P:
			return -1
		case a.P > b.P:
			return 1
		}
		return 0
	})
	return nil
}

// RTimesReply is the reply to RTIMES: for every prefix, the durations still
// in the window, oldest first (at most max_raw_durations, the newest).
type RTimesReply map[string][]Float

// InfoReply is the reply to INFO.
type InfoReply struct {
	Version       string           `json:"version"`
	StartedAt     string           `json:"started_at"`
	UptimeSeconds Float            `json:"uptime_seconds"`
	WindowSeconds Float            `json:"window_seconds"`
	WindowSlots   int              `json:"window_slots"`
	Percentiles   []float64        `json:"percentiles"`
	StatsAddress  string           `json:"stats_address"`
	CommAddress   string           `json:"comm_address"`
	Prefixes      int              `json:"prefixes"`
	MaxPrefixes   int              `json:"max_prefixes"`
	Accepted      int64            `json:"accepted"`
	Rejected      map[Reason]int64 `json:"rejected"`
	RejectedTotal int64            `json:"rejected_total"`
	// Disconnects counts ingest peers the collector disconnected or lost;
	// a frame over max_message_size makes libzmq disconnect its sender.
	Disconnects     int64 `json:"disconnects"`
	ControlRequests int64 `json:"control_requests"`
	ControlErrors   int64 `json:"control_errors"`
	// CommandsRefused counts valid commands refused because they are not
	// in allowed_commands (they are in ControlErrors too).
	CommandsRefused int64 `json:"commands_refused"`
	// AuthFailures counts CURVE handshakes refused: a client key that is
	// not allowed.
	AuthFailures int64 `json:"auth_failures"`
	// ClientDropped counts the events clients reported dropping (because
	// the collector was down, slow or not keeping up) in their packed
	// messages.
	ClientDropped int64            `json:"client_dropped"`
	Commands      map[string]int64 `json:"commands"`
	// StateFile is the state file the collector keeps its statistics in
	// across restarts ("" when it keeps none), StateSavedAt the instant
	// of its last successful write (RFC 3339, UTC; "" before the first),
	// and StateWriteErrors the writes that failed.
	StateFile        string `json:"state_file"`
	StateSavedAt     string `json:"state_saved_at"`
	StateWriteErrors int64  `json:"state_write_errors"`
}

// IsErrorReply reports whether a control reply is the original's ERROR.
func IsErrorReply(reply []byte) bool {
	return string(reply) == ReplyError
}
