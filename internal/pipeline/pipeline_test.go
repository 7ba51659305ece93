package pipeline

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/plugins/parsers/influx"

	"github.com/gstats/gstats/agentconf"
	"github.com/gstats/gstats/internal/logging"
	"github.com/gstats/gstats/plugins/inputs/gstats"
)

// pausable is the plugin as the pipeline sees it, with interval gathers the
// test can turn off. The plugin's own final gather at Stop does not go
// through it.
type pausable struct {
	*gstats.Gstats
	mu     sync.Mutex
	paused bool
}

func (p *pausable) Gather(acc telegraf.Accumulator) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.paused {
		return nil
	}
	return p.Gstats.Gather(acc)
}

// pause turns the interval gathers off; when it returns, none is running.
func (p *pausable) pause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.paused = true
}

// TestRunWritesEveryIntervalAndOnStop runs the real plugin on loopback with
// a file output: metrics carry the host and global tags, arrive every
// interval, and the stop writes what came after the last interval.
func TestRunWritesEveryIntervalAndOnStop(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out.lp")
	cfg, err := agentconf.Parse("test.conf", fmt.Appendf(nil, `
[agent]
  interval = "200ms"
  flush_interval = "200ms"
  hostname = "h1"
[global_tags]
  dc = "d1"
  prefix = "must not override the plugin's tag"
[[inputs.gstats]]
  stats_address = "tcp://127.0.0.1:*"
  comm_address = ""
[[outputs.file]]
  files = [%q]
`, out))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	p, err := New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	plugin := cfg.Gstats
	plugin.Log = logging.New(log)
	if err := plugin.Init(); err != nil {
		t.Fatal(err)
	}
	in := &pausable{Gstats: plugin}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, in) }()
	stopped := false
	defer func() {
		if !stopped {
			cancel()
			<-done
		}
	}()

	var stats string
	deadline := time.Now().Add(20 * time.Second)
	for stats == "" {
		stats, _ = plugin.Endpoints()
		if time.Now().After(deadline) {
			t.Fatal("the plugin did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The pusher has a context of its own: terminating it returns once
	// every message is written to the kernel, where the plugin reads it.
	zctx, err := zmq.NewContext()
	if err != nil {
		t.Fatal(err)
	}
	push, err := zctx.NewSocket(zmq.PUSH)
	if err != nil {
		t.Fatal(err)
	}
	flushed := false
	flush := func() {
		if !flushed {
			flushed = true
			_ = push.Close()
			_ = zctx.Term()
		}
	}
	defer flush()
	_ = push.SetLinger(30 * time.Second)
	if err := push.Connect(stats); err != nil {
		t.Fatal(err)
	}
	send := func(n int) {
		for range n {
			if _, err := push.SendMessage("p", ""); err != nil {
				t.Fatal(err)
			}
			if _, err := push.SendMessage("p", "5", "200"); err != nil {
				t.Fatal(err)
			}
		}
	}
	send(10)
	finished := func() int64 {
		b, _ := os.ReadFile(out)
		parser := &influx.Parser{}
		if err := parser.Init(); err != nil {
			t.Fatal(err)
		}
		ms, err := parser.Parse(b)
		if err != nil {
			t.Fatalf("output is not line protocol: %v", err)
		}
		last := int64(-1)
		for _, m := range ms {
			if m.Name() != "gstats" {
				continue
			}
			if h, _ := m.GetTag("host"); h != "h1" {
				t.Fatalf("host tag %q", h)
			}
			if dc, _ := m.GetTag("dc"); dc != "d1" {
				t.Fatalf("dc tag %q", dc)
			}
			if pr, _ := m.GetTag("prefix"); pr != "p" {
				t.Fatalf("prefix tag %q: global tags must not replace the plugin's", pr)
			}
			v, _ := m.GetField("finished")
			last, _ = v.(int64)
		}
		return last
	}
	deadline = time.Now().Add(20 * time.Second)
	for finished() != 10 {
		if time.Now().After(deadline) {
			t.Fatalf("finished = %d in the output, want 10", finished())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// From here no interval gathers: only the stop can write what comes
	// next (a slow machine could otherwise let an interval gather it, and
	// the test would pass without the stop doing anything).
	in.pause()
	send(5)
	flush() // the 5 are received: in the kernel's buffers
	cancel()
	stopped = true
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := finished(); got != 15 {
		t.Errorf("after the stop the output holds finished = %d, want 15", got)
	}
}

func TestNewRejectsBadOutput(t *testing.T) {
	cfg, err := agentconf.Parse("test.conf", []byte("[[inputs.gstats]]\n[[outputs.influxdb_v2]]\n  content_encoding = \"zip\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil || !strings.Contains(err.Error(), "outputs.influxdb_v2") {
		t.Fatalf("New with a bad content_encoding: %v, want an error naming outputs.influxdb_v2", err)
	}
}
