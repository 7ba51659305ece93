package wire

import (
	"bytes"
	"fmt"
	"strconv"
)

// A packed message carries many events in one single-frame ZeroMQ message,
// so a busy client hands libzmq one message per batch instead of one per
// event. The frame starts with a header line; each following line is one
// event: the frames of its classic message joined by tabs, then a newline:
//
//	gstats-batch/1
//	shop<TAB>
//	shop<TAB>12.345<TAB>200
//	shop<TAB>3.5
//
// (a start, a finish with its status, a finish without one). The last
// newline may be left out. Prefixes holding a tab or a newline cannot be
// packed; clients send those as classic messages. Classic messages always
// have two or three frames, so the two forms cannot be confused, and the
// original collector never receives a packed message from a client left on
// its classic setting.
//
// The header line is BatchHeader, or, from a client that dropped events so
// as never to hold its application up (collector down, slow, or its own
// queue full):
//
//	gstats-batch/1 dropped=N
//
// where N, in decimal without leading zeros, 0 < N <= MaxBatchDropped, is
// the number of events the client dropped since its last packed message
// that its socket accepted. The collector adds N to its client_dropped
// counter, so drops are counted on both sides. Any other header line
// (another version, another word, a bad number) rejects the whole message
// as one bad_frame_count event; a message without events is valid and
// only reports drops.
const BatchHeader = "gstats-batch/1\n"

// MaxBatchRecords bounds the events one packed message may carry; the
// frame size is bounded by the socket's max_message_size before that.
const MaxBatchRecords = 1 << 16

// MaxBatchDropped is the largest drop count a packed header may carry,
// 2^53-1: every count up to it is exact as a float64 too (JSON readers).
const MaxBatchDropped = 1<<53 - 1

// MaxBatchHeaderLen is the length of the longest valid header line,
// newline included: what a client reserves for it.
const MaxBatchHeaderLen = len(batchVersion) + len(droppedField) + 16 + 1

const (
	batchVersion = "gstats-batch/1"
	droppedField = " dropped="
	// batchFamily starts every packed frame, whatever its version.
	batchFamily = "gstats-batch/"
)

var (
	batchHeader  = []byte(BatchHeader)
	batchPrefix  = []byte(batchFamily)
	versionBytes = []byte(batchVersion)
	droppedBytes = []byte(droppedField)
)

// IsBatch reports whether frames is a packed message: one frame starting
// with "gstats-batch/". A classic message has two or three frames, so a
// single frame is never one; ParseBatch checks the version and the rest of
// the header.
func IsBatch(frames [][]byte) bool {
	return len(frames) == 1 && bytes.HasPrefix(frames[0], batchPrefix)
}

// AppendBatchHeader appends the header line of a packed message reporting
// dropped events (BatchHeader alone when dropped is 0) to b. A count over
// MaxBatchDropped is written as MaxBatchDropped: the client reports the
// rest in a later message.
func AppendBatchHeader(b []byte, dropped uint64) []byte {
	b = append(b, batchVersion...)
	if dropped > 0 {
		b = append(b, droppedField...)
		b = strconv.AppendUint(b, min(dropped, MaxBatchDropped), 10)
	}
	return append(b, '\n')
}

// parseBatchHeader splits a packed frame into the drop count of its header
// and the events after it, or returns the rejection of the whole message.
func parseBatchHeader(frame []byte) (dropped int64, rest []byte, err error) {
	if rest, ok := bytes.CutPrefix(frame, batchHeader); ok {
		return 0, rest, nil // the common case
	}
	line, rest, found := bytes.Cut(frame, []byte{'\n'})
	if !found {
		return 0, nil, reject(ReasonFrames, "packed message header %s has no newline", Quote(line, 40))
	}
	field, ok := bytes.CutPrefix(line, versionBytes)
	if !ok || (len(field) > 0 && field[0] != ' ') {
		return 0, nil, reject(ReasonFrames, "a single-frame message must start with the line %q or %q, got %s",
			batchVersion, batchVersion+droppedField+"N", Quote(line, 40))
	}
	digits, ok := bytes.CutPrefix(field, droppedBytes)
	if !ok {
		return 0, nil, reject(ReasonFrames, "packed message header %s: after %q only %q may follow",
			Quote(line, 40), batchVersion, droppedField+"N")
	}
	n, ok := parseCount(digits)
	if !ok {
		return 0, nil, reject(ReasonFrames, "packed message header %s: dropped= wants a decimal count from 1 to %d without leading zeros, got %s",
			Quote(line, 40), int64(MaxBatchDropped), Quote(digits, 24))
	}
	return n, rest, nil
}

// parseCount reads 1 to MaxBatchDropped in decimal, without sign or
// leading zeros.
func parseCount(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 16 || b[0] == '0' {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, n <= MaxBatchDropped
}

// ParseBatch parses a packed message's frame (header included) and calls
// each for every event, in order: a parsed message, or the *RejectError of
// an event that was rejected, which does not stop the others. The
// messages' prefixes alias frame. It returns how many events it found and
// the drop count its header reports (0 when none). A bad header rejects
// the whole frame as one event, reporting no drops; past MaxBatchRecords
// the rest of the frame is rejected as one event.
func ParseBatch(frame []byte, lim Limits, each func(Message, error)) (events int, dropped int64) {
	dropped, rest, err := parseBatchHeader(frame)
	if err != nil {
		each(Message{}, err)
		return 1, 0
	}
	var fields [3][]byte
	n := 0
	for len(rest) > 0 {
		if n == MaxBatchRecords {
			each(Message{}, reject(ReasonFrames, "packed message holds more than %d events; the rest (%d bytes) is dropped", MaxBatchRecords, len(rest)))
			return n + 1, dropped
		}
		line := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line, rest = rest[:i], rest[i+1:]
		} else {
			rest = nil
		}
		n++
		k := 0
		for {
			i := bytes.IndexByte(line, '\t')
			if i < 0 || k == len(fields)-1 {
				fields[k] = line
				k++
				break
			}
			fields[k] = line[:i]
			line = line[i+1:]
			k++
		}
		if k == 1 {
			each(Message{}, reject(ReasonFrames, "packed event %d %s has no tab: want prefix<TAB>duration[<TAB>status]", n, Quote(fields[0], 32)))
			continue
		}
		if k == 3 && bytes.IndexByte(fields[2], '\t') >= 0 {
			each(Message{}, reject(ReasonFrames, "packed event %d has more than 3 fields", n))
			continue
		}
		m, err := ParseMessage(fields[:k], lim)
		if err != nil {
			if rej, ok := err.(*RejectError); ok {
				rej.Detail = fmt.Sprintf("packed event %d: %s", n, rej.Detail)
			}
		}
		each(m, err)
	}
	return n, dropped
}

// AppendBatchRecord appends the packed form of a message's frames (prefix,
// then an empty duration for a start, or the duration and optionally the
// status) to b. It reports false, leaving b as it was, when a frame holds a
// tab or a newline, or when frames is not 2 or 3 frames long.
func AppendBatchRecord(b []byte, frames ...[]byte) ([]byte, bool) {
	if len(frames) < 2 || len(frames) > 3 {
		return b, false
	}
	for _, f := range frames {
		if bytes.ContainsAny(f, "\t\n") {
			return b, false
		}
	}
	for i, f := range frames {
		if i > 0 {
			b = append(b, '\t')
		}
		b = append(b, f...)
	}
	return append(b, '\n'), true
}
