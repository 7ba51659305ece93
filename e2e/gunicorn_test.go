package e2e

import (
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/gstats/gstats/wire"
)

// request is one HTTP request of a test and the status it must get.
type request struct {
	path string
	want int
}

// sleepMs is how long the /sleep requests take, at least.
const sleepMs = 50

// originalTraffic returns n requests: one in three sleeps sleepMs, the rest
// are quick, some of them answered 404 or 503. It returns how many sleep.
func originalTraffic(n int) (reqs []request, sleeps int) {
	for i := range n {
		switch {
		case i%3 == 0:
			reqs = append(reqs, request{fmt.Sprintf("/sleep?ms=%d", sleepMs), http.StatusOK})
			sleeps++
		case i%10 == 1:
			reqs = append(reqs, request{"/status/404", http.StatusNotFound})
		case i%10 == 2:
			reqs = append(reqs, request{"/status/503", http.StatusServiceUnavailable})
		default:
			reqs = append(reqs, request{"/", http.StatusOK})
		}
	}
	return reqs, sleeps
}

// send sends reqs to baseURL from concurrency goroutines and checks each
// status code.
func send(t *testing.T, baseURL string, reqs []request, concurrency int) {
	t.Helper()
	client := newHTTPClient(t)
	queue := make(chan request)
	var wg sync.WaitGroup
	for range concurrency {
		wg.Go(func() {
			for r := range queue {
				code, err := get(client, baseURL+r.path)
				if err != nil {
					t.Errorf("GET %s: %v", r.path, err)
					continue
				}
				if code != r.want {
					t.Errorf("GET %s: status %d, want %d", r.path, code, r.want)
				}
			}
		})
	}
	for _, r := range reqs {
		queue <- r
	}
	close(queue)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
}

// waitSettled polls STATS until the collector has counted the 2n messages
// of n requests for prefix, however it classified them; the caller's exact
// checks then tell starts from finishes.
func waitSettled(t *testing.T, c *collector, prefix string, n int) wire.PrefixStats {
	t.Helper()
	return c.waitStats(t, prefix, fmt.Sprintf("started + finished = %d", 2*n), func(s wire.PrefixStats) bool {
		return s.Started+s.Finished >= int64(2*n)
	})
}

// TestIntegrationGunicornOriginalHooks runs a real gunicorn whose hooks send
// the original client's two-frame messages (integer milliseconds) and checks
// that every request is counted once as started and once as finished, with
// its duration in the window.
func TestIntegrationGunicornOriginalHooks(t *testing.T) {
	integration(t)
	const n = 60
	cases := []struct {
		name        string
		workerClass string
		workers     int
		threads     int
	}{
		{name: "sync", workerClass: "sync", workers: 2, threads: 1},
		{name: "gthread", workerClass: "gthread", workers: 2, threads: 4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			prefix := "e2e_original_" + tc.name
			c := startCollector(t)
			g := startGunicorn(t, gunicornOptions{
				Config:      "original_hooks.py",
				WorkerClass: tc.workerClass,
				Workers:     tc.workers,
				Threads:     tc.threads,
				StatsAddr:   c.StatsAddr,
				Prefix:      prefix,
			})
			c.forgetProbes(t, prefix, g.Probes)

			reqs, sleeps := originalTraffic(n)
			send(t, g.URL, reqs, 20)
			s := waitSettled(t, c, prefix, n)

			if s.Started != n || s.Finished != n || s.InFlight != 0 {
				t.Errorf("started=%d finished=%d in_flight=%d, want %d, %d, 0", s.Started, s.Finished, s.InFlight, n, n)
			}
			pt := s.ProcessingTime
			if pt.Count != n {
				t.Errorf("processing_time.count = %d, want %d (all requests in the window)", pt.Count, n)
			}
			if !(pt.Avg > 0) {
				t.Errorf("processing_time.avg = %v, want > 0", pt.Avg)
			}
			if pt.Max < sleepMs {
				t.Errorf("processing_time.max = %v, want >= %d (the /sleep requests)", pt.Max, sleepMs)
			}
			if pt.Min < 0 || pt.Min > pt.Avg || pt.Avg > pt.Max {
				t.Errorf("processing_time min=%v avg=%v max=%v, want 0 <= min <= avg <= max", pt.Min, pt.Avg, pt.Max)
			}
			if s.Status.None != n {
				t.Errorf("status = %+v, want none=%d: the original messages carry no status", s.Status, n)
			}

			rt := c.rtimes(t, prefix)
			if len(rt) != n {
				t.Fatalf("RTIMES has %d durations for %q, want %d: %v", len(rt), prefix, n, rt)
			}
			var sum float64
			long := 0
			for i, v := range rt {
				if v != math.Trunc(v) || v < 0 {
					t.Errorf("RTIMES[%d] = %v, want a non-negative integer (the original client sends %%i)", i, v)
				}
				if v >= sleepMs {
					long++
				}
				sum += v
			}
			if long < sleeps {
				t.Errorf("%d durations >= %d ms in RTIMES, want at least %d (the /sleep requests): %v", long, sleepMs, sleeps, rt)
			}
			if got, want := float64(pt.Min), slices.Min(rt); got != want {
				t.Errorf("processing_time.min = %v, want %v (the least of RTIMES)", got, want)
			}
			if got, want := float64(pt.Max), slices.Max(rt); got != want {
				t.Errorf("processing_time.max = %v, want %v (the greatest of RTIMES)", got, want)
			}
			if got, want := float64(pt.Avg), sum/n; math.Abs(got-want) > 1e-9*want {
				t.Errorf("processing_time.avg = %v, want %v (the mean of RTIMES)", got, want)
			}

			if info := c.info(t); info.RejectedTotal != 0 {
				t.Errorf("the collector rejected %d messages (%v), want 0", info.RejectedTotal, info.Rejected)
			}

			stdout, stderr, code := c.runCtl(t, "stats")
			if code != 0 {
				t.Fatalf("gstatsctl stats: exit code %d, want 0; stderr: %s", code, stderr)
			}
			block := fmt.Sprintf("%s\n%s\nRequests: started=%d, finished=%d, processing=0\n", prefix, strings.Repeat("=", len(prefix)), n, n)
			if !strings.Contains(stdout, block) {
				t.Errorf("gstatsctl stats output lacks\n%s\ngot:\n%s", block, stdout)
			}
		})
	}
}

// TestIntegrationGunicornZeroMs checks that requests finishing in under
// 1 ms, which the original client sends as "0", are counted as 0 ms
// finishes and not as starts. How long a request takes is up to the
// machine, so batches of requests go until one finished in under 1 ms.
func TestIntegrationGunicornZeroMs(t *testing.T) {
	integration(t)
	const (
		batch      = 30
		maxBatches = 20
		prefix     = "e2e_zero_ms"
	)
	c := startCollector(t)
	g := startGunicorn(t, gunicornOptions{
		Config:      "original_hooks.py",
		WorkerClass: "sync",
		Workers:     2,
		Threads:     1,
		StatsAddr:   c.StatsAddr,
		Prefix:      prefix,
	})
	c.forgetProbes(t, prefix, g.Probes)

	var (
		n     int
		s     wire.PrefixStats
		rt    []float64
		zeros int
	)
	for zeros == 0 {
		if n == batch*maxBatches {
			t.Fatalf("no request of %d finished in under 1 ms, so no \"0\" was sent and nothing was checked; RTIMES: %v", n, rt)
		}
		// One at a time, so that each request is as quick as it can be.
		send(t, g.URL, slices.Repeat([]request{{"/", http.StatusOK}}, batch), 1)
		n += batch
		s = waitSettled(t, c, prefix, n)
		rt = c.rtimes(t, prefix)
		zeros = 0
		for _, v := range rt {
			if v == 0 {
				zeros++
			}
		}
	}
	if s.Started != int64(n) || s.Finished != int64(n) || s.InFlight != 0 {
		t.Fatalf("started=%d finished=%d in_flight=%d, want %d, %d, 0: a \"0\" finish must count as a finish, not a start",
			s.Started, s.Finished, s.InFlight, n, n)
	}
	if s.ProcessingTime.Count != int64(n) || len(rt) != n {
		t.Errorf("processing_time.count = %d and %d RTIMES durations, want %d each", s.ProcessingTime.Count, len(rt), n)
	}
	if s.ProcessingTime.Min != 0 {
		t.Errorf("processing_time.min = %v, want 0", s.ProcessingTime.Min)
	}
	t.Logf("%d of %d requests were sent as \"0\"", zeros, n)
}
