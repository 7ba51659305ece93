package client

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// Middleware wraps next so that every request it serves is reported under
// the client's default prefix: a start message before next runs, a finish
// message with the duration and the status code after it returns.
//
// next sees a wrapper of the server's ResponseWriter. It has the optional
// interfaces of net/http's own writers: http.Flusher, http.Hijacker and
// io.ReaderFrom over HTTP/1, http.Flusher and http.Pusher over HTTP/2,
// http.Flusher over any other writer that has it. Its Unwrap method lets
// http.ResponseController reach everything else (deadlines, full duplex).
// The wrapper is reused from request to request so that none allocates:
// as net/http requires anyway, next must not use it after returning.
func (c *Client) Middleware(next http.Handler) http.Handler {
	return &handler{c: c, prefix: c.prefix, next: next}
}

// Handler is Middleware with its own prefix ("" for the client's default).
// It fails if the prefix cannot be sent (see ValidatePrefix).
func (c *Client) Handler(prefix string, next http.Handler) (http.Handler, error) {
	if err := ValidatePrefix(prefix); err != nil {
		return nil, fmt.Errorf("gstats client: %w", err)
	}
	if prefix == "" {
		prefix = c.prefix
	}
	return &handler{c: c, prefix: prefix, next: next}, nil
}

type handler struct {
	c      *Client
	prefix string
	next   http.Handler
}

// ServeHTTP times next on the monotonic clock. The status reported is the
// one the handler sent: 200 when it wrote a body or nothing at all without
// calling WriteHeader, none when it hijacked the connection. A handler that
// panics is reported with status 500, and its panic goes on unchanged.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Only the monotonic clock is read (time.Now would read the wall
	// clock too).
	t0 := time.Since(h.c.epoch)
	h.c.enqueue(event{prefix: h.prefix, kind: kindStart})
	rec := h.c.recorders.Get().(*recorder)
	rec.reset(w)
	returned := false
	defer func() {
		status := rec.finalStatus()
		if !returned {
			status = http.StatusInternalServerError
		}
		h.c.enqueue(finishEvent(h.prefix, time.Since(h.c.epoch)-t0, status))
		if returned {
			// After a panic the writer may still be referenced from the
			// panic value or a recovering middleware; leave it to the GC.
			rec.reset(nil)
			h.c.recorders.Put(rec)
		}
	}()
	h.next.ServeHTTP(rec.view(), r)
	returned = true
}

// recorder wraps a ResponseWriter to learn the status code. The handler is
// given one of its views, the one whose optional interfaces (http.Flusher,
// http.Hijacker, io.ReaderFrom, http.Pusher) the wrapped writer has too:
//
//   - HTTP/1 (net/http's own writer): Flusher, Hijacker, ReaderFrom;
//   - HTTP/2: Flusher, Pusher;
//   - any other writer that can flush (httptest.ResponseRecorder): Flusher;
//   - anything else: none.
//
// Every view has Unwrap, so http.ResponseController reaches all the wrapped
// writer's features (deadlines, full duplex, and the interfaces above when
// another combination hid them). The views are fields of the recorder, so
// handing one out allocates nothing.
type recorder struct {
	rw       http.ResponseWriter
	status   int // final status sent, 0 until then
	hijacked bool

	plain plainView
	flush flushView
	http1 http1View
	http2 http2View
}

func newRecorder() *recorder {
	r := &recorder{}
	r.plain.recorder = r
	r.flush.recorder = r
	r.http1.recorder = r
	r.http2.recorder = r
	return r
}

func (r *recorder) reset(w http.ResponseWriter) {
	r.rw = w
	r.status = 0
	r.hijacked = false
}

func (r *recorder) view() http.ResponseWriter {
	_, canFlush := r.rw.(http.Flusher)
	if !canFlush {
		return &r.plain
	}
	_, canHijack := r.rw.(http.Hijacker)
	_, canReadFrom := r.rw.(io.ReaderFrom)
	if canHijack && canReadFrom {
		return &r.http1
	}
	if _, canPush := r.rw.(http.Pusher); canPush {
		return &r.http2
	}
	return &r.flush
}

// finalStatus is the status to report once the handler returned.
func (r *recorder) finalStatus() int {
	switch {
	case r.status != 0:
		return r.status
	case r.hijacked:
		return 0
	}
	return http.StatusOK // what net/http sends for a handler that wrote nothing
}

// Header implements http.ResponseWriter.
func (r *recorder) Header() http.Header { return r.rw.Header() }

// WriteHeader implements http.ResponseWriter. Informational codes (1xx but
// 101) may precede the final one and are not recorded.
func (r *recorder) WriteHeader(code int) {
	r.rw.WriteHeader(code)
	if r.status == 0 && !r.hijacked && (code >= 200 || code == http.StatusSwitchingProtocols) {
		r.status = code
	}
}

// Write implements http.ResponseWriter.
func (r *recorder) Write(b []byte) (int, error) {
	r.implicitOK()
	return r.rw.Write(b)
}

// WriteString implements io.StringWriter, passing it on when the wrapped
// writer has it.
func (r *recorder) WriteString(s string) (int, error) {
	r.implicitOK()
	return io.WriteString(r.rw, s)
}

// Unwrap returns the wrapped writer, for http.ResponseController.
func (r *recorder) Unwrap() http.ResponseWriter { return r.rw }

func (r *recorder) implicitOK() {
	if r.status == 0 && !r.hijacked {
		r.status = http.StatusOK
	}
}

func (r *recorder) doFlush() {
	r.implicitOK()
	r.rw.(http.Flusher).Flush()
}

func (r *recorder) doHijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := r.rw.(http.Hijacker).Hijack()
	if err == nil {
		r.hijacked = true
	}
	return conn, brw, err
}

func (r *recorder) doReadFrom(src io.Reader) (int64, error) {
	r.implicitOK()
	return r.rw.(io.ReaderFrom).ReadFrom(src)
}

func (r *recorder) doPush(target string, opts *http.PushOptions) error {
	return r.rw.(http.Pusher).Push(target, opts)
}

// The views. Each embeds the recorder for the ResponseWriter methods and
// adds the optional ones it stands for.
type (
	plainView struct{ *recorder }
	flushView struct{ *recorder }
	http1View struct{ *recorder }
	http2View struct{ *recorder }
)

// Flush implements http.Flusher.
func (v *flushView) Flush() { v.doFlush() }

// Flush implements http.Flusher.
func (v *http1View) Flush() { v.doFlush() }

// Hijack implements http.Hijacker.
func (v *http1View) Hijack() (net.Conn, *bufio.ReadWriter, error) { return v.doHijack() }

// ReadFrom implements io.ReaderFrom.
func (v *http1View) ReadFrom(src io.Reader) (int64, error) { return v.doReadFrom(src) }

// Flush implements http.Flusher.
func (v *http2View) Flush() { v.doFlush() }

// Push implements http.Pusher.
func (v *http2View) Push(target string, opts *http.PushOptions) error { return v.doPush(target, opts) }

var (
	_ http.Flusher  = (*flushView)(nil)
	_ http.Hijacker = (*http1View)(nil)
	_ io.ReaderFrom = (*http1View)(nil)
	_ http.Flusher  = (*http1View)(nil)
	_ http.Pusher   = (*http2View)(nil)
	_ http.Flusher  = (*http2View)(nil)
)
