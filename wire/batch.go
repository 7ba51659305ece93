package wire

import (
	"bytes"
	"fmt"
)

// A packed message carries many events in one single-frame ZeroMQ message,
// so a busy client hands libzmq one message per batch instead of one per
// event. The frame starts with BatchHeader; each following line is one
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
const BatchHeader = "gstats-batch/1\n"

// MaxBatchRecords bounds the events one packed message may carry; the
// frame size is bounded by the socket's max_message_size before that.
const MaxBatchRecords = 1 << 16

var batchHeader = []byte(BatchHeader)

// IsBatch reports whether frames is a packed message.
func IsBatch(frames [][]byte) bool {
	return len(frames) == 1 && bytes.HasPrefix(frames[0], batchHeader)
}

// ParseBatch parses the events of a packed message's frame (header
// included) and calls each for every one, in order: a parsed message, or
// the *RejectError of an event that was rejected, which does not stop the
// others. The messages' prefixes alias frame. It returns how many events
// it found; past MaxBatchRecords the rest of the frame is rejected as one
// event.
func ParseBatch(frame []byte, lim Limits, each func(Message, error)) int {
	rest, ok := bytes.CutPrefix(frame, batchHeader)
	if !ok {
		each(Message{}, reject(ReasonFrames, "a single-frame message must start with %q, got %s", BatchHeader, Quote(frame, 32)))
		return 1
	}
	var fields [3][]byte
	n := 0
	for len(rest) > 0 {
		if n == MaxBatchRecords {
			each(Message{}, reject(ReasonFrames, "packed message holds more than %d events; the rest (%d bytes) is dropped", MaxBatchRecords, len(rest)))
			return n + 1
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
	return n
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
