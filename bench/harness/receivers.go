package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/gstats/gstats/internal/testbin"
	"github.com/gstats/gstats/internal/zbatch"
	"github.com/gstats/gstats/wire"
)

// receiver is a process taking the message stream: the collector, or a
// bare PULL socket that only counts.
type receiver interface {
	// Addr is where senders connect.
	Addr() string
	// Count is the messages (for the collector: the events) taken so far.
	Count(ctx context.Context) (int64, error)
	// PID is the receiving process.
	PID() int
	Close()
}

// collector is gstats-collectd run as users run it.
type collector struct {
	p      *proc
	stats  string
	comm   string
	client *wire.Client
}

// startCollector runs gstats-collectd on free loopback ports, pinned to
// cpus, with the plugin settings given (TOML lines of [[inputs.gstats]]).
func startCollector(bin, dir, cpus string, settings ...string) (*collector, error) {
	return startCollectorArgs(bin, dir, cpus, nil, settings...)
}

// startCollectorArgs is startCollector with more command-line arguments
// after --config.
func startCollectorArgs(bin, dir, cpus string, args []string, settings ...string) (*collector, error) {
	conf := dir + "/gstats.conf"
	text := "[[inputs.gstats]]\n  stats_address = \"tcp://127.0.0.1:*\"\n  comm_address = \"tcp://127.0.0.1:*\"\n" +
		"  " + strings.Join(settings, "\n  ") + "\n"
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		return nil, err
	}
	p, err := startProc(cpus, append([]string{bin, "--config", conf}, args...)...)
	if err != nil {
		return nil, err
	}
	c := &collector{p: p}
	if err := c.findEndpoints(); err != nil {
		p.stop()
		return nil, err
	}
	return c, nil
}

func (c *collector) findEndpoints() error {
	err := c.p.waitLog(15*time.Second, func(log string) bool {
		s, comm, ok := testbin.Endpoints(log)
		if ok {
			c.stats, c.comm = s, comm
			c.client = wire.NewClient(wire.ClientOptions{Address: comm, Timeout: 5 * time.Second})
		}
		return ok
	})
	if err != nil {
		return fmt.Errorf("gstats-collectd: %w", err)
	}
	return nil
}

func (c *collector) Addr() string { return c.stats }
func (c *collector) PID() int     { return c.p.pid() }
func (c *collector) Close()       { c.p.stop() }

// Count is the events the collector accepted.
func (c *collector) Count(ctx context.Context) (int64, error) {
	info, err := c.client.Info(ctx)
	if err != nil {
		return 0, err
	}
	if info.RejectedTotal != 0 {
		return 0, fmt.Errorf("the collector rejected %d events: %v", info.RejectedTotal, info.Rejected)
	}
	return info.Accepted, nil
}

// bare is the limit: a PULL socket in its own process, bound as the
// collector binds its own, that counts the messages it receives.
type bare struct {
	p    *proc
	addr string
}

// startBare runs this program as a bare receiver (role "bare-pull").
func startBare(self, cpus, mode string) (*bare, error) {
	p, err := startProc(cpus, self, "bare-pull", mode)
	if err != nil {
		return nil, err
	}
	line, err := readLine(p, 10*time.Second)
	if err != nil {
		p.stop()
		return nil, fmt.Errorf("bare receiver: %w (%s)", err, p.stderr.String())
	}
	return &bare{p: p, addr: line}, nil
}

func readLine(p *proc, timeout time.Duration) (string, error) {
	type res struct {
		s   string
		err error
	}
	ch := make(chan res, 1)
	go func() {
		s, err := p.stdout.ReadString('\n')
		ch <- res{strings.TrimSpace(s), err}
	}()
	select {
	case r := <-ch:
		return r.s, r.err
	case <-time.After(timeout):
		return "", fmt.Errorf("no answer in %s", timeout)
	}
}

func (b *bare) Addr() string { return b.addr }
func (b *bare) PID() int     { return b.p.pid() }
func (b *bare) Close()       { b.p.stop() }

// Count asks the receiver for its count over its stdin.
func (b *bare) Count(context.Context) (int64, error) {
	if _, err := b.p.stdin.Write([]byte("count\n")); err != nil {
		return 0, err
	}
	line, err := readLine(b.p, 5*time.Second)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(line, 10, 64)
}

// runBarePull is the bare receiver's process: it binds a PULL socket with the
// collector's socket options on a free port, prints the endpoint, counts
// the messages it receives and prints the count for each line read on
// stdin. mode "batch" receives as the collector does (many messages per
// call); "frames" receives frame by frame through the zmq4 binding.
func runBarePull(mode string) error {
	pull, err := zmq.NewSocket(zmq.PULL)
	if err != nil {
		return err
	}
	defer pull.Close()
	_ = pull.SetLinger(0)
	_ = pull.SetRcvhwm(100000)
	_ = pull.SetRcvbuf(4 << 20)
	_ = pull.SetMaxmsgsize(4096)
	if err := pull.Bind("tcp://127.0.0.1:*"); err != nil {
		return err
	}
	ep, err := pull.GetLastEndpoint()
	if err != nil {
		return err
	}
	fmt.Println(ep)
	asks := make(chan struct{}, 16)
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			asks <- struct{}{}
		}
		close(asks)
	}()
	var rx *zbatch.Receiver
	if mode == "batch" {
		if rx, err = zbatch.NewReceiver(pull, 512, 256<<10); err != nil {
			return err
		}
		defer rx.Close()
	} else if mode != "frames" {
		return fmt.Errorf("unknown mode %q: batch or frames", mode)
	}
	poller := zmq.NewPoller()
	poller.Add(pull, zmq.POLLIN)
	var n int64
	for {
		select {
		case _, ok := <-asks:
			if !ok {
				return nil
			}
			fmt.Println(n)
		default:
		}
		if _, err := poller.Poll(10 * time.Millisecond); err != nil {
			continue
		}
		// At most a few thousand messages between two looks at stdin.
		for range 16 {
			if rx != nil {
				b, err := rx.Recv()
				if err != nil || b.Len() == 0 {
					break
				}
				n += int64(b.Len())
				continue
			}
			got := 0
			for ; got < 512; got++ {
				if _, err := pull.RecvMessageBytes(zmq.DONTWAIT); err != nil {
					break
				}
			}
			n += int64(got)
			if got < 512 {
				break
			}
		}
	}
}
