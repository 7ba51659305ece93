// Package zbatch receives whole ZeroMQ messages in batches: one cgo call
// reads every message queued on a socket (up to a bound) into one buffer,
// where the per-frame calls of the zmq4 binding cost several cgo
// transitions and an allocation for every frame.
//
// A Receiver works on a socket made by github.com/pebbe/zmq4 and leaves
// everything else (options, binding, polling, closing) to that package.
package zbatch

/*
#cgo !windows pkg-config: libzmq
#include <stdlib.h>
#include "recv.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"reflect"
	"unsafe"

	zmq "github.com/pebbe/zmq4"
)

// KeptFrames is how many frames of a message a Batch holds. A message with
// more frames is received whole, but only its first KeptFrames frames are
// kept; Batch.Frames reports the real count.
const KeptFrames = C.GS_KEPT

// Receiver reads batches of messages from one socket. It is not safe for
// concurrent use, and the socket must not be read by anything else while it
// is in use.
type Receiver struct {
	b      *C.gs_batch
	socket unsafe.Pointer
	owner  *zmq.Socket // keeps the socket reachable while it is read
	soft   C.size_t
}

// NewReceiver returns a Receiver reading at most maxMsgs messages per call
// from s, and no further messages once softBytes of frames are read.
func NewReceiver(s *zmq.Socket, maxMsgs, softBytes int) (*Receiver, error) {
	if maxMsgs < 1 || softBytes < 1 {
		return nil, fmt.Errorf("batch bounds must be positive, got %d messages and %d bytes", maxMsgs, softBytes)
	}
	handle, err := socketHandle(s)
	if err != nil {
		return nil, err
	}
	b := C.gs_batch_new(C.int(maxMsgs), C.size_t(softBytes))
	if b == nil {
		return nil, errors.New("allocating a receive batch: out of memory")
	}
	return &Receiver{b: b, socket: handle, owner: s, soft: C.size_t(softBytes)}, nil
}

// socketHandle returns the libzmq socket behind a zmq4 Socket. The binding
// keeps it in an unexported field; a test pins the field's name and type.
func socketHandle(s *zmq.Socket) (unsafe.Pointer, error) {
	if s == nil {
		return nil, errors.New("nil socket")
	}
	f := reflect.ValueOf(s).Elem().FieldByName("soc")
	if !f.IsValid() || f.Kind() != reflect.UnsafePointer {
		return nil, errors.New("this version of github.com/pebbe/zmq4 does not keep its libzmq socket where gstats looks for it")
	}
	p := f.UnsafePointer()
	if p == nil {
		return nil, errors.New("the socket is closed")
	}
	return p, nil
}

// Recv reads, without waiting, the messages queued on the socket and
// returns them; an empty Batch when none is queued. The Batch is valid
// until the next call of Recv or Close.
func (r *Receiver) Recv() (Batch, error) {
	if r.b == nil {
		return Batch{}, errors.New("receiver closed")
	}
	if rc := C.gs_batch_recv(r.b, r.socket, r.soft); rc != 0 {
		return Batch{}, fmt.Errorf("receiving: %w", zmq.Errno(rc))
	}
	n := int(r.b.nmsgs)
	if n == 0 {
		return Batch{}, nil
	}
	return Batch{
		buf:  unsafe.Slice((*byte)(unsafe.Pointer(r.b.buf)), int(r.b.used)),
		meta: unsafe.Slice((*uint32)(unsafe.Pointer(r.b.meta)), n*C.GS_STRIDE),
	}, nil
}

// Close frees the batch buffer; it does not close the socket.
func (r *Receiver) Close() {
	if r.b != nil {
		C.gs_batch_free(r.b)
		r.b = nil
	}
	r.owner = nil
}

// Batch is the messages one Recv read. Its frames alias memory that the
// next Recv reuses: copy what must outlive it.
type Batch struct {
	buf  []byte
	meta []uint32
	off  int // byte offset of the next message, for Next
	next int // index of the next message, for Next
}

// Len is the number of messages in the batch.
func (b *Batch) Len() int { return len(b.meta) / C.GS_STRIDE }

// Next appends the kept frames of the next message to frames[:0] and
// returns them with the message's real frame count; ok is false once every
// message has been returned.
func (b *Batch) Next(frames [][]byte) (out [][]byte, count int, ok bool) {
	if b.next >= b.Len() {
		return frames[:0], 0, false
	}
	m := b.meta[b.next*C.GS_STRIDE : (b.next+1)*C.GS_STRIDE]
	b.next++
	count = int(m[0])
	out = frames[:0]
	for i := range min(count, KeptFrames) {
		n := int(m[1+i])
		out = append(out, b.buf[b.off:b.off+n:b.off+n])
		b.off += n
	}
	return out, count, true
}
