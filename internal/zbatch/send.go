package zbatch

/*
#include "recv.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"unsafe"

	zmq "github.com/pebbe/zmq4"
)

// Messages is a sequence of messages laid out for Sender.Send.
type Messages struct {
	buf  []byte
	meta []uint32
	off  []int // byte offset of each message in buf
}

// Append adds a message of up to KeptFrames frames.
func (m *Messages) Append(frames ...[]byte) error {
	if len(frames) == 0 || len(frames) > KeptFrames {
		return fmt.Errorf("a message has 1 to %d frames, got %d", KeptFrames, len(frames))
	}
	m.off = append(m.off, len(m.buf))
	rec := make([]uint32, C.GS_STRIDE)
	rec[0] = uint32(len(frames))
	for i, f := range frames {
		rec[1+i] = uint32(len(f))
		m.buf = append(m.buf, f...)
	}
	m.meta = append(m.meta, rec...)
	return nil
}

// Len is the number of messages.
func (m *Messages) Len() int { return len(m.off) }

// Sender writes messages to one socket, many per cgo call.
type Sender struct {
	socket unsafe.Pointer
	owner  *zmq.Socket
}

// NewSender returns a Sender on s, a socket made by the zmq4 binding.
func NewSender(s *zmq.Socket) (*Sender, error) {
	h, err := socketHandle(s)
	if err != nil {
		return nil, err
	}
	return &Sender{socket: h, owner: s}, nil
}

// Send sends messages lo to hi−1 of m without blocking and returns how many
// went; fewer than hi−lo when the socket's queue is full.
func (s *Sender) Send(m *Messages, lo, hi int) (int, error) {
	if lo < 0 || hi > m.Len() || lo > hi {
		return 0, fmt.Errorf("messages %d to %d out of range (%d messages)", lo, hi, m.Len())
	}
	if lo == hi {
		return 0, nil
	}
	if s.owner == nil {
		return 0, errors.New("sender closed")
	}
	var sent C.int
	var buf *C.char
	if len(m.buf) > m.off[lo] {
		buf = (*C.char)(unsafe.Pointer(&m.buf[m.off[lo]]))
	}
	rc := C.gs_batch_send(s.socket, buf, (*C.uint32_t)(unsafe.Pointer(&m.meta[lo*C.GS_STRIDE])), C.int(hi-lo), &sent)
	if rc != 0 {
		return int(sent), fmt.Errorf("sending: %w", zmq.Errno(rc))
	}
	return int(sent), nil
}
