// Package wire owns the gstats wire format: the ingest messages that
// applications PUSH, the control commands and their replies, and a control
// client with timeouts. It is shared by the collector, gstatsctl, the munin
// plug-ins and the clients; none of them needs to import the collector.
package wire

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"
)

// Default addresses of the original gstats.
const (
	DefaultStatsAddress = "tcp://127.0.0.2:2345"
	DefaultCommAddress  = "tcp://127.0.0.1:2345"
)

// DefaultPrefix names the prefix of messages whose prefix frame is empty.
const DefaultPrefix = "default"

// Kind tells a start message from a finish message.
type Kind uint8

// Message kinds.
const (
	Start Kind = iota + 1
	Finish
)

// Message is one parsed ingest message.
//
// Frames: prefix, then an empty frame (a request started) or the duration in
// milliseconds as ASCII decimal (a request finished), then, on a finish only,
// an optional HTTP status code.
type Message struct {
	// Prefix aliases the first frame; empty frames are reported as
	// DefaultPrefix.
	Prefix []byte
	Kind   Kind
	// Duration in milliseconds, finite and not negative (finish only).
	Duration float64
	// Status is the HTTP status code, 0 when the message carried none.
	Status int
}

// Limits bound what ParseMessage accepts.
type Limits struct {
	// MaxPrefixLength is the longest prefix accepted, in bytes.
	MaxPrefixLength int
	// MaxDuration is the longest duration accepted, in milliseconds.
	MaxDuration float64
}

// Reason names why a message or a command was rejected. Reasons are stable
// identifiers: they are counters in INFO and in the metrics.
type Reason string

// Why an ingest message can be rejected.
const (
	ReasonFrames           Reason = "bad_frame_count"
	ReasonPrefixTooLong    Reason = "prefix_too_long"
	ReasonPrefixNotUTF8    Reason = "prefix_not_utf8"
	ReasonTooManyPrefixes  Reason = "too_many_prefixes"
	ReasonBadDuration      Reason = "bad_duration"
	ReasonNegativeDuration Reason = "negative_duration"
	ReasonNonFinite        Reason = "non_finite_duration"
	ReasonDurationTooLarge Reason = "duration_too_large"
	ReasonBadStatus        Reason = "bad_status"
)

// AllReasons lists every ingest rejection reason, in a stable order.
func AllReasons() []Reason {
	return []Reason{
		ReasonFrames, ReasonPrefixTooLong, ReasonPrefixNotUTF8, ReasonTooManyPrefixes,
		ReasonBadDuration, ReasonNegativeDuration, ReasonNonFinite,
		ReasonDurationTooLarge, ReasonBadStatus,
	}
}

// RejectError says why a message was rejected.
type RejectError struct {
	Reason Reason
	Detail string
}

func (e *RejectError) Error() string {
	return string(e.Reason) + ": " + e.Detail
}

func reject(r Reason, format string, args ...any) error {
	return &RejectError{Reason: r, Detail: fmt.Sprintf(format, args...)}
}

// FrameCountError is the rejection of a message of n frames, n not 2 or 3.
func FrameCountError(n int) error {
	return reject(ReasonFrames, "got %d frames, want 2 (prefix, duration) or 3 (prefix, duration, status)", n)
}

// ParseMessage parses the frames of one ingest message. On error it returns
// a *RejectError.
func ParseMessage(frames [][]byte, lim Limits) (Message, error) {
	if len(frames) < 2 || len(frames) > 3 {
		return Message{}, FrameCountError(len(frames))
	}
	// The limits apply to the prefix frame as sent: an empty frame is
	// always accepted, whatever max_prefix_length is.
	m := Message{Prefix: frames[0], Kind: Start}
	if len(m.Prefix) > lim.MaxPrefixLength {
		return Message{}, reject(ReasonPrefixTooLong, "prefix of %d bytes %s; the limit is max_prefix_length = %d", len(m.Prefix), Quote(m.Prefix, 32), lim.MaxPrefixLength)
	}
	if !utf8.Valid(m.Prefix) {
		return Message{}, reject(ReasonPrefixNotUTF8, "prefix %s is not valid UTF-8", Quote(m.Prefix, 32))
	}
	if len(m.Prefix) == 0 {
		m.Prefix = []byte(DefaultPrefix)
	}
	if len(frames[1]) == 0 {
		if len(frames) == 3 {
			return Message{}, reject(ReasonFrames, "a start message (empty duration) cannot carry a status frame")
		}
		return m, nil
	}
	m.Kind = Finish
	d, err := ParseDuration(frames[1], lim.MaxDuration)
	if err != nil {
		return Message{}, err
	}
	m.Duration = d
	if len(frames) == 3 {
		s, err := ParseStatus(frames[2])
		if err != nil {
			return Message{}, err
		}
		m.Status = s
	}
	return m, nil
}

// ParseDuration parses a duration frame: ASCII decimal milliseconds, integer
// or fractional ("153", "12.5", "0"), surrounding blanks allowed as the
// original collector allowed them. Like the original's float(), it takes
// exponents ("1e3") and digit separators ("1_000") but not hexadecimal
// ("0x1p4"). "-0" is read as 0. It returns a *RejectError.
func ParseDuration(b []byte, maxMS float64) (float64, error) {
	s := bytes.TrimSpace(b)
	if len(s) == 0 || len(s) > 64 || bytes.ContainsAny(s, "xX") {
		return 0, reject(ReasonBadDuration, "duration %s is not a number of milliseconds", Quote(b, 32))
	}
	d, err := strconv.ParseFloat(string(s), 64)
	switch {
	case err != nil && !math.IsInf(d, 0):
		return 0, reject(ReasonBadDuration, "duration %s is not a number of milliseconds", Quote(b, 32))
	case math.IsNaN(d) || math.IsInf(d, 0):
		return 0, reject(ReasonNonFinite, "duration %s is not finite", Quote(b, 32))
	case d < 0:
		return 0, reject(ReasonNegativeDuration, "duration %s is negative", Quote(b, 32))
	case d > maxMS:
		return 0, reject(ReasonDurationTooLarge, "duration %s ms is over max_duration (%s ms)", Quote(b, 32), FormatFloat(maxMS))
	case d == 0:
		return 0, nil // not -0, which would be reported as "-0.0"
	}
	return d, nil
}

// ParseStatus parses a status frame: an HTTP status code from 100 to 599.
// It returns a *RejectError.
func ParseStatus(b []byte) (int, error) {
	s := bytes.TrimSpace(b)
	if len(s) == 3 {
		if n, err := strconv.Atoi(string(s)); err == nil && n >= 100 && n <= 599 {
			return n, nil
		}
	}
	return 0, reject(ReasonBadStatus, "status %s is not an HTTP status code (100-599)", Quote(b, 16))
}

// Quote renders b for a log line: Go-quoted, cut after max bytes.
func Quote(b []byte, max int) string {
	if len(b) <= max {
		return strconv.Quote(string(b))
	}
	return strconv.Quote(string(b[:max])) + fmt.Sprintf("...(%d bytes)", len(b))
}

// FormatFloat renders f the way the original (Python) collector and
// gstatsctl did: the shortest representation that reads back exactly, always
// with a decimal point or an exponent ("0.0", "153.2", "1e-05").
func FormatFloat(f float64) string {
	return string(AppendFloat(nil, f))
}

// AppendFloat appends FormatFloat(f) to b.
func AppendFloat(b []byte, f float64) []byte {
	switch {
	case math.IsNaN(f) || math.IsInf(f, 0):
		return append(b, "0.0"...)
	case f != 0 && (math.Abs(f) < 1e-4 || math.Abs(f) >= 1e16):
		return strconv.AppendFloat(b, f, 'e', -1, 64)
	}
	start := len(b)
	b = strconv.AppendFloat(b, f, 'f', -1, 64)
	if bytes.IndexByte(b[start:], '.') < 0 {
		b = append(b, ".0"...)
	}
	return b
}
