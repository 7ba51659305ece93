//go:build !race

// The race detector makes sync.Pool drop a random share of what is put
// back, so under -race the middleware allocates a recorder now and then.
// This check runs in builds without it (go test without -race, make bench).

package client_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gstats/gstats/client"
)

func TestHotPathDoesNotAllocate(t *testing.T) {
	// No collector: the sender's sends are refused at once and allocate
	// nothing either, so any allocation counted is the request path's.
	c := newClient(t, client.Options{Address: "tcp://127.0.0.1:1", Prefix: "app"})
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	mw := c.Middleware(noop)
	named, err := c.Handler("named", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNotFound)
	}))
	if err != nil {
		t.Fatal(err)
	}
	http1 := &benchWriter{h: http.Header{}}
	recorder := httptest.NewRecorder()
	prefix := "per_request"
	cases := []struct {
		name string
		run  func()
	}{
		{"Start", func() { c.Start(prefix) }},
		{"Finish", func() { c.Finish(prefix, time.Millisecond, 200) }},
		{"Middleware, HTTP/1 writer", func() { mw.ServeHTTP(http1, r) }},
		{"Middleware, ResponseRecorder", func() { mw.ServeHTTP(recorder, r) }},
		{"Handler, 404", func() { named.ServeHTTP(http1, r) }},
	}
	for _, tc := range cases {
		if n := testing.AllocsPerRun(1000, tc.run); n != 0 {
			t.Errorf("%s: %v allocations per call, want 0", tc.name, n)
		}
	}
}
