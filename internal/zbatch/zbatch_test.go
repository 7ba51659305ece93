package zbatch

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"
)

// pair returns a bound PULL socket and a PUSH socket connected to it over
// loopback TCP; both are closed at cleanup.
func pair(t *testing.T) (pull, push *zmq.Socket) {
	t.Helper()
	pull, err := zmq.NewSocket(zmq.PULL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pull.Close() })
	_ = pull.SetLinger(0)
	if err := pull.Bind("tcp://127.0.0.1:*"); err != nil {
		t.Fatal(err)
	}
	ep, err := pull.GetLastEndpoint()
	if err != nil {
		t.Fatal(err)
	}
	push, err = zmq.NewSocket(zmq.PUSH)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = push.Close() })
	_ = push.SetLinger(0)
	if err := push.Connect(ep); err != nil {
		t.Fatal(err)
	}
	return pull, push
}

func sendParts(t *testing.T, s *zmq.Socket, parts ...[]byte) {
	t.Helper()
	args := make([]any, len(parts))
	for i, p := range parts {
		args[i] = p
	}
	if _, err := s.SendMessage(args...); err != nil {
		t.Fatal(err)
	}
}

// recvAll reads batches until want messages have arrived (bounded in time)
// and returns each message's kept frames (copied) and real frame count.
func recvAll(t *testing.T, r *Receiver, want int) (msgs [][][]byte, counts []int, batches int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var frames [][]byte
	for len(msgs) < want {
		if time.Now().After(deadline) {
			t.Fatalf("received %d of %d messages in 10s", len(msgs), want)
		}
		b, err := r.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if b.Len() == 0 {
			time.Sleep(time.Millisecond)
			continue
		}
		batches++
		for {
			var n int
			var ok bool
			frames, n, ok = b.Next(frames)
			if !ok {
				break
			}
			m := make([][]byte, len(frames))
			for i, f := range frames {
				m[i] = bytes.Clone(f)
			}
			msgs = append(msgs, m)
			counts = append(counts, n)
		}
	}
	return msgs, counts, batches
}

func TestRecvKeepsMessagesWhole(t *testing.T) {
	pull, push := pair(t)
	r, err := NewReceiver(pull, 3, 64)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	big := bytes.Repeat([]byte("x"), 10_000) // over the 64-byte soft limit: the buffer grows
	many := make([][]byte, 7)
	for i := range many {
		many[i] = []byte(fmt.Sprint("f", i))
	}
	cases := []struct {
		parts [][]byte
		kept  int
	}{
		{[][]byte{[]byte("shop"), {}}, 2},
		{[][]byte{[]byte("shop"), []byte("12.5"), []byte("200")}, 3},
		{[][]byte{big}, 1},
		{[][]byte{{}}, 1},
		{many, KeptFrames},
		{[][]byte{[]byte("api"), []byte("1"), big, []byte("tail")}, 4},
		{[][]byte{[]byte("last"), []byte("3")}, 2},
	}
	for _, c := range cases {
		sendParts(t, push, c.parts...)
	}
	msgs, counts, batches := recvAll(t, r, len(cases))
	if len(msgs) != len(cases) {
		t.Fatalf("got %d messages, want %d", len(msgs), len(cases))
	}
	for i, c := range cases {
		if counts[i] != len(c.parts) {
			t.Errorf("message %d: frame count %d, want %d", i, counts[i], len(c.parts))
		}
		if len(msgs[i]) != c.kept {
			t.Fatalf("message %d: kept %d frames, want %d", i, len(msgs[i]), c.kept)
		}
		for j := range c.kept {
			if !bytes.Equal(msgs[i][j], c.parts[j]) {
				t.Errorf("message %d frame %d: got %q, want %q", i, j, trunc(msgs[i][j]), trunc(c.parts[j]))
			}
		}
	}
	// Three messages per batch at most, and the big frames end a batch
	// early (soft limit): at least three batches.
	if batches < 3 {
		t.Errorf("%d messages came in %d batches; the bounds allow no fewer than 3", len(cases), batches)
	}
}

func trunc(b []byte) string {
	if len(b) > 20 {
		return string(b[:20]) + "..."
	}
	return string(b)
}

func TestRecvEmptyQueue(t *testing.T) {
	pull, _ := pair(t)
	r, err := NewReceiver(pull, 16, 1024)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := r.Recv()
	if err != nil || b.Len() != 0 {
		t.Fatalf("empty queue: got %d messages, err %v; want 0, nil", b.Len(), err)
	}
	if _, _, ok := b.Next(nil); ok {
		t.Fatal("Next on an empty batch returned a message")
	}
}

func TestRecvManyInOrder(t *testing.T) {
	pull, push := pair(t)
	r, err := NewReceiver(pull, 512, 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	const n = 20_000
	for i := range n {
		sendParts(t, push, []byte("p"), fmt.Appendf(nil, "%d", i))
	}
	msgs, _, batches := recvAll(t, r, n)
	for i, m := range msgs {
		if string(m[1]) != fmt.Sprint(i) {
			t.Fatalf("message %d carries %q: order lost", i, m[1])
		}
	}
	if batches < n/512 {
		t.Errorf("%d batches for %d messages; at most 512 fit in one", batches, n)
	}
}

func TestReceiverErrors(t *testing.T) {
	if _, err := NewReceiver(nil, 1, 1); err == nil {
		t.Error("nil socket accepted")
	}
	s, err := zmq.NewSocket(zmq.PULL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewReceiver(s, 0, 1); err == nil {
		t.Error("zero messages per batch accepted")
	}
	r, err := NewReceiver(s, 1, 1)
	if err != nil {
		t.Fatalf("the zmq4 binding's socket handle was not found: %v", err)
	}
	r.Close()
	if _, err := r.Recv(); err == nil {
		t.Error("Recv after Close succeeded")
	}
	_ = s.Close()
	if _, err := NewReceiver(s, 1, 1); err == nil {
		t.Error("closed socket accepted")
	}
}

func TestSenderRoundTrip(t *testing.T) {
	pull, push := pair(t)
	s, err := NewSender(push)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewReceiver(pull, 64, 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var m Messages
	want := [][][]byte{
		{[]byte("shop"), {}},
		{[]byte("shop"), []byte("1.5"), []byte("200")},
		{{}},
		{[]byte("a"), []byte("b"), []byte("c"), []byte("d")},
	}
	for _, w := range want {
		if err := m.Append(w...); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Append(); err == nil {
		t.Error("a message of no frame was accepted")
	}
	if _, err := s.Send(&m, 3, 5); err == nil {
		t.Error("an out-of-range send was accepted")
	}
	n, err := s.Send(&m, 1, 4)
	if err != nil || n != 3 {
		t.Fatalf("sent %d, err %v; want 3, nil", n, err)
	}
	got, counts, _ := recvAll(t, r, 3)
	for i, g := range got {
		w := want[1+i]
		if counts[i] != len(w) || len(g) != len(w) {
			t.Fatalf("message %d: %d frames (count %d), want %d", i, len(g), counts[i], len(w))
		}
		for j := range w {
			if !bytes.Equal(g[j], w[j]) {
				t.Errorf("message %d frame %d: %q, want %q", i, j, g[j], w[j])
			}
		}
	}
}

func TestSenderStopsWhenFull(t *testing.T) {
	// Nobody is connected: the PUSH socket has no pipe, and libzmq
	// refuses at once.
	push, err := zmq.NewSocket(zmq.PUSH)
	if err != nil {
		t.Fatal(err)
	}
	defer push.Close()
	s, err := NewSender(push)
	if err != nil {
		t.Fatal(err)
	}
	var m Messages
	for range 10 {
		_ = m.Append([]byte("p"), []byte("1"))
	}
	n, err := s.Send(&m, 0, 10)
	if err != nil || n != 0 {
		t.Fatalf("sent %d, err %v; want 0 messages and no error", n, err)
	}
}
