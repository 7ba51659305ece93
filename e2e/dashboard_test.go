package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/gstats/gstats/wire"
)

// chromiumPath is Debian's Chromium binary (/usr/bin/chromium is a shell
// wrapper around it).
const chromiumPath = "/usr/lib/chromium/chromium"

// browserTimeout bounds one browser session: start, load and every wait
// (a hang, not a latency: Chromium starts slowly on a loaded machine).
const browserTimeout = 3 * time.Minute

var httpListening = regexp.MustCompile(`HTTP status listener on http://([^/\s"]+)/`)

// httpAddrIn waits for the collector's HTTP listener line in p's log.
func httpAddrIn(t *testing.T, p *process) string {
	t.Helper()
	deadline := time.Now().Add(startTimeout)
	for {
		if m := httpListening.FindStringSubmatch(p.log()); m != nil {
			return m[1]
		}
		if p.exited() {
			t.Fatalf("%s exited before the HTTP listener started: %v\n%s", p.name, p.err, p.log())
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no HTTP listener within %s:\n%s", p.name, startTimeout, p.log())
		}
		time.Sleep(pollInterval)
	}
}

// newBrowser starts headless Chromium for one test; the returned context
// ends it. JavaScript exceptions and console errors of the page are
// collected in the returned func's result.
func newBrowser(t *testing.T) (context.Context, func() []string) {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("headless Chromium is needed for the dashboard test: %v; install it with: apt-get install chromium", err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.NoSandbox, // root needs it
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	var mu sync.Mutex
	var problems []string
	ctx, cancelCtx := chromedp.NewContext(actx, chromedp.WithListener(func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil && d.Exception.Description != "" {
				msg = d.Exception.Description
			}
			problems = append(problems, "exception: "+msg)
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeWarning {
				var parts []string
				for _, a := range ev.Args {
					parts = append(parts, string(a.Value)+a.Description)
				}
				problems = append(problems, "console "+string(ev.Type)+": "+strings.Join(parts, " "))
			}
		}
	}))
	ctx, cancelTimeout := context.WithTimeout(ctx, browserTimeout)
	t.Cleanup(func() {
		cancelTimeout()
		cancelCtx()
		cancelAlloc() // stops the browser process it started and waits for it
	})
	return ctx, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), problems...)
	}
}

// prefixCard is what the dashboard shows for one prefix, read from the
// data attributes its script sets.
type prefixCard struct {
	Points   int               `json:"points"`
	Latest   map[string]string `json:"latest"`
	Charts   map[string]chart  `json:"charts"`
	Name     string            `json:"name"`
	Canvases []int             `json:"canvases"` // painted pixels per chart canvas
	// RatePixels counts the pixels of the rate chart in its line's colour.
	RatePixels int `json:"ratePixels"`
}

type chart struct {
	Points int    `json:"points"`
	Values int    `json:"values"`
	Latest string `json:"latest"`
}

// readCardsJS collects every prefix card's attributes and counts the
// painted (non-transparent) pixels of its canvases.
const readCardsJS = `(() => {
  const out = {};
  for (const sec of document.querySelectorAll("section.prefix")) {
    const latest = {};
    for (const a of sec.attributes) {
      if (a.name.startsWith("data-latest-")) latest[a.name.slice(12)] = a.value;
    }
    const charts = {};
    for (const fig of sec.querySelectorAll("figure[data-chart]")) {
      charts[fig.dataset.chart] = {
        points: Number(fig.dataset.points || 0),
        values: Number(fig.dataset.values || 0),
        latest: fig.dataset.latest || "",
      };
    }
    const canvases = [...sec.querySelectorAll("canvas")].map((c) => {
      const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 3; i < d.length; i += 4) if (d[i] !== 0) n++;
      return n;
    });
    const hex = getComputedStyle(document.documentElement).getPropertyValue("--c-rate").trim();
    const rgb = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
    const rc = sec.querySelector('figure[data-chart="rate"] canvas');
    const rd = rc.getContext("2d").getImageData(0, 0, rc.width, rc.height).data;
    let ratePixels = 0;
    for (let i = 0; i < rd.length; i += 4) {
      if (rd[i + 3] > 200 && Math.abs(rd[i] - rgb[0]) < 40 && Math.abs(rd[i + 1] - rgb[1]) < 40 && Math.abs(rd[i + 2] - rgb[2]) < 40) ratePixels++;
    }
    out[sec.dataset.prefix] = {
      name: sec.querySelector(".prefix-name").textContent,
      points: Number(sec.dataset.points || 0),
      latest: latest,
      charts: charts,
      canvases: canvases,
      ratePixels: ratePixels,
    };
  }
  return out;
})()`

// TestIntegrationLiveDashboard runs gstats-collectd with its HTTP listener,
// feeds it traffic over a real PUSH socket while headless Chromium shows the
// dashboard, and checks that the page's charts hold that traffic. The
// screenshot is saved in the test's directory and, if GSTATS_SCREENSHOT_DIR
// is set, there.
func TestIntegrationLiveDashboard(t *testing.T) {
	integration(t)
	ctx, problems := newBrowser(t)

	dir := t.TempDir()
	conf := writeFile(t, dir, "gstats.conf", `
[agent]
  interval = "10s"
[[inputs.gstats]]
  stats_address = "tcp://127.0.0.1:*"
  comm_address = "tcp://127.0.0.1:*"
  window = "60s"
  http_address = "127.0.0.1:0"
  http_allowed_ips = ["127.0.0.1"]
[[outputs.file]]
  files = ["`+filepath.Join(dir, "metrics.out")+`"]
`)
	p := startProcess(t, "gstats-collectd", exec.Command(bin.Collectd, "--config", conf), false)
	t.Cleanup(func() { p.stop(t, false) })
	statsAddr, commAddr := endpointsIn(t, p)
	base := "http://" + httpAddrIn(t, p)
	c := newCollector(p, statsAddr, commAddr)

	// Requests that never finish: the in-flight figures.
	push := pushSocket(t, statsAddr)
	inFlight := map[string]int{"api": 1, "shop": 3}
	for prefix, n := range inFlight {
		for range n {
			sendFrames(t, push, prefix, "")
		}
	}

	// The page polls every 0.25 s; traffic goes on for 4 s meanwhile.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/?refresh=0.25"),
		chromedp.WaitVisible(chromedp.CSS("#prefixes")),
	); err != nil {
		t.Fatalf("loading the dashboard: %v", err)
	}
	finished := map[string]int{}
	statuses := []string{"200", "200", "200", "201", "302", "404", "500", ""}
	for round := range 16 {
		for pi, prefix := range []string{"api", "shop"} {
			for i, status := range statuses {
				if prefix == "api" && i%2 == 1 {
					continue // api gets half the traffic of shop
				}
				ms := strconv.Itoa(5 + (round*11+i*17+pi*23)%120)
				sendFrames(t, push, prefix, "")
				sendFinish(t, push, prefix, ms, status)
				finished[prefix]++
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	want := map[string]wire.PrefixStats{}
	for prefix, n := range finished {
		want[prefix] = c.waitStats(t, prefix, fmt.Sprintf("finished = %d", n), func(s wire.PrefixStats) bool { return s.Finished == int64(n) })
	}

	// The page catches up: its latest sample holds every finish, and the
	// charts hold many samples. How many the page took during the traffic
	// depends on the machine's speed; the page goes on polling, so the
	// wait is for the charts to fill, whenever that is.
	chartMin := map[string]int{"rate": 5, "in_flight": 12, "status": 5, "latency": 12}
	cards := waitCards(ctx, t, func(cards map[string]prefixCard) bool {
		for prefix, n := range finished {
			card, ok := cards[prefix]
			// after the traffic: every finish counted, and a rate of 0
			if !ok || card.Latest["finished"] != strconv.Itoa(n) || card.Charts["rate"].Latest != "0" || card.Points < 12 {
				return false
			}
			for name, min := range chartMin {
				if ch := card.Charts[name]; ch.Points < 12 || ch.Values < min {
					return false
				}
			}
		}
		return len(cards) == len(finished)
	})
	for prefix, n := range finished {
		card := cards[prefix]
		st := want[prefix]
		if card.Name != prefix {
			t.Errorf("card %q is titled %q", prefix, card.Name)
		}
		if card.Latest["in-flight"] != strconv.Itoa(inFlight[prefix]) {
			t.Errorf("%s: in flight %q, want %d", prefix, card.Latest["in-flight"], inFlight[prefix])
		}
		if errs := st.Status.S4xx + st.Status.S5xx; card.Latest["errors"] != strconv.FormatInt(errs, 10) || errs == 0 {
			t.Errorf("%s: errors %q, want %d", prefix, card.Latest["errors"], errs)
		}
		// The percentiles shown are the collector's, for the same window.
		if len(st.ProcessingTime.Percentiles) != 4 {
			t.Fatalf("%s: STATS has percentiles %v", prefix, st.ProcessingTime.Percentiles)
		}
		for _, pc := range st.ProcessingTime.Percentiles {
			key := strings.ReplaceAll(pc.Key(), ".", "-")
			got, err := strconv.ParseFloat(card.Latest[key], 64)
			if w := float64(pc.Value); err != nil || w <= 0 || got < w*(1-1e-9) || got > w*(1+1e-9) {
				t.Errorf("%s: %s shown %q, STATS has %v", prefix, key, card.Latest[key], w)
			}
		}
		for name, min := range chartMin {
			ch, ok := card.Charts[name]
			if !ok || ch.Points < 12 || ch.Values < min {
				t.Errorf("%s: chart %s holds %+v, want at least 12 points and %d values", prefix, name, ch, min)
			}
		}
		if r, err := strconv.ParseFloat(card.Charts["rate"].Latest, 64); err != nil || r != 0 {
			// traffic has stopped, so the last rate is 0 requests/s
			t.Errorf("%s: latest rate %q, want 0 after the traffic stopped", prefix, card.Charts["rate"].Latest)
		}
		if len(card.Canvases) != 4 {
			t.Errorf("%s: %d chart canvases, want 4", prefix, len(card.Canvases))
		}
		for i, n := range card.Canvases {
			if n < 500 {
				t.Errorf("%s: canvas %d has %d painted pixels", prefix, i, n)
			}
		}
		if card.RatePixels < 30 {
			t.Errorf("%s: the rate chart has %d pixels of the rate line's colour; no line drawn?", prefix, card.RatePixels)
		}
		t.Logf("%s: %d samples; finished %d, in flight %s, p50 %s ms, p99 %s ms; painted pixels %v",
			prefix, card.Points, n, card.Latest["in-flight"], card.Latest["p50"], card.Latest["p99"], card.Canvases)
	}
	page, err := chromedp.Run(ctx, chromedp.Evaluate[struct {
		State     string   `json:"state"`
		Polls     int      `json:"polls"`
		Resources []string `json:"resources"`
	}](`({
		state: document.body.dataset.state,
		polls: Number(document.body.dataset.polls),
		resources: performance.getEntriesByType("resource").map((e) => e.name),
	})`))
	if err != nil {
		t.Fatal(err)
	}
	if page.State != "ok" || page.Polls < 12 {
		t.Errorf("page state %q after %d polls", page.State, page.Polls)
	}
	for _, r := range page.Resources {
		if !strings.HasPrefix(r, base+"/") {
			t.Errorf("the page loaded %s, not from the collector", r)
		}
	}

	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	saveScreenshot(t, "dashboard.png", png)

	// A RESET on the control socket empties the page; nothing on the page
	// could have done it.
	rctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	if err := c.client.Reset(rctx); err != nil {
		t.Fatal(err)
	}
	waitCards(ctx, t, func(cards map[string]prefixCard) bool { return len(cards) == 0 })
	if hidden, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById("empty").hidden`)); err != nil || hidden {
		t.Errorf("after RESET the page does not say it is empty (hidden=%v, %v)", hidden, err)
	}

	if pr := problems(); len(pr) > 0 {
		t.Errorf("the page reported errors:\n%s", strings.Join(pr, "\n"))
	}
}

// waitCards reads the prefix cards until cond holds (bounded by ctx and
// settleTimeout) and returns them.
func waitCards(ctx context.Context, t *testing.T, cond func(map[string]prefixCard) bool) map[string]prefixCard {
	t.Helper()
	deadline := time.Now().Add(settleTimeout)
	for {
		cards, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]prefixCard](readCardsJS))
		if err != nil {
			t.Fatalf("reading the dashboard: %v", err)
		}
		if cond(cards) {
			return cards
		}
		if time.Now().After(deadline) {
			t.Fatalf("the dashboard did not show the expected data within %s; it shows %+v", settleTimeout, cards)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// saveScreenshot writes png to the test's directory and, if
// GSTATS_SCREENSHOT_DIR is set, there too.
func saveScreenshot(t *testing.T, name string, png []byte) {
	t.Helper()
	if len(png) < 8 || string(png[1:4]) != "PNG" {
		t.Fatalf("the screenshot is not a PNG (%d bytes)", len(png))
	}
	dirs := []string{t.TempDir()}
	if d := os.Getenv("GSTATS_SCREENSHOT_DIR"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, d)
	}
	for _, d := range dirs {
		path := filepath.Join(d, name)
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s (%d bytes)", path, len(png))
	}
}
