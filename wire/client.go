package wire

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"syscall"
	"time"

	zmq "github.com/pebbe/zmq4"
)

// DefaultTimeout bounds a control request when ClientOptions.Timeout is zero.
const DefaultTimeout = 3 * time.Second

// ClientOptions configure a control client.
type ClientOptions struct {
	// Address of the collector's control (REP) socket.
	Address string
	// Timeout bounds each request: sending and waiting for the reply.
	Timeout time.Duration
}

// Client sends control commands to a collector. Each request uses a fresh
// REQ socket, so a request that timed out never blocks the next one. A
// Client is safe for concurrent use.
type Client struct {
	opts ClientOptions
}

// NewClient returns a client; it opens nothing until a request is made.
func NewClient(opts ClientOptions) *Client {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Address == "" {
		opts.Address = DefaultCommAddress
	}
	return &Client{opts: opts}
}

// Address is the control address the client talks to.
func (c *Client) Address() string { return c.opts.Address }

// ErrNoReply is wrapped by the error of a request that got no reply in time.
var ErrNoReply = errors.New("no reply")

// ErrCommandRefused is wrapped by the error of a request answered ERROR.
var ErrCommandRefused = errors.New("the collector answered ERROR")

// Do sends one command frame and returns the raw reply. It never waits
// longer than the timeout or the context's deadline, whichever is sooner.
func (c *Client) Do(ctx context.Context, cmd string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s to %s not sent: %w", cmd, c.opts.Address, err)
	}
	timeout := c.opts.Timeout
	if d, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(d))
	}
	if timeout <= 0 {
		return nil, fmt.Errorf("%s to %s not sent: %w", cmd, c.opts.Address, context.DeadlineExceeded)
	}
	deadline := time.Now().Add(timeout)
	zctx, err := zmq.NewContext()
	if err != nil {
		return nil, fmt.Errorf("creating zmq context: %w", err)
	}
	defer func() { _ = zctx.Term() }()
	sock, err := zctx.NewSocket(zmq.REQ)
	if err != nil {
		return nil, fmt.Errorf("creating REQ socket: %w", err)
	}
	defer func() { _ = sock.Close() }()
	if err := sock.SetLinger(0); err != nil {
		return nil, fmt.Errorf("setting linger: %w", err)
	}
	if err := sock.SetSndtimeo(timeout); err != nil {
		return nil, fmt.Errorf("setting send timeout: %w", err)
	}
	// A reply bigger than this is not from a gstats collector.
	if err := sock.SetMaxmsgsize(256 << 20); err != nil {
		return nil, fmt.Errorf("setting max message size: %w", err)
	}
	if err := sock.Connect(c.opts.Address); err != nil {
		return nil, fmt.Errorf("cannot connect to control address %q: %w; it should look like tcp://127.0.0.1:2345 or ipc:///run/gstats/comm.sock", c.opts.Address, err)
	}
	if _, err := sock.Send(cmd, 0); err != nil {
		return nil, c.noReply(cmd, timeout, err)
	}
	// Wake up regularly so a cancelled context is honoured.
	for {
		if err := ctx.Err(); err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				return nil, c.noReply(cmd, timeout, err)
			}
			return nil, fmt.Errorf("%s to %s: %w", cmd, c.opts.Address, err)
		}
		step := min(time.Until(deadline), 100*time.Millisecond)
		if step <= 0 {
			return nil, c.noReply(cmd, timeout, nil)
		}
		if err := sock.SetRcvtimeo(step); err != nil {
			return nil, fmt.Errorf("setting receive timeout: %w", err)
		}
		reply, err := sock.RecvBytes(0)
		if err == nil {
			return reply, nil
		}
		if errno := zmq.AsErrno(err); errno != zmq.Errno(syscall.EAGAIN) && errno != zmq.Errno(syscall.EINTR) {
			return nil, fmt.Errorf("%s to %s: %w", cmd, c.opts.Address, err)
		}
	}
}

func (c *Client) noReply(cmd string, timeout time.Duration, cause error) error {
	msg := fmt.Sprintf("no reply to %s from %s within %s; is gstats-collectd running there?", cmd, c.opts.Address, timeout)
	if cause != nil {
		msg = fmt.Sprintf("%s (%v)", msg, cause)
	}
	return &noReplyError{msg: msg, cause: cause}
}

// noReplyError is a request that got no reply in time; it matches
// ErrNoReply with errors.Is, and unwraps to its cause.
type noReplyError struct {
	msg   string
	cause error
}

func (e *noReplyError) Error() string        { return e.msg }
func (e *noReplyError) Is(target error) bool { return target == ErrNoReply }
func (e *noReplyError) Unwrap() error        { return e.cause }

func (c *Client) doJSON(ctx context.Context, cmd Command, dst any) error {
	reply, err := c.Do(ctx, string(cmd))
	if err != nil {
		return err
	}
	if IsErrorReply(reply) {
		return fmt.Errorf("%s to %s: %w", cmd, c.opts.Address, ErrCommandRefused)
	}
	if err := json.Unmarshal(reply, dst); err != nil {
		return fmt.Errorf("%s reply from %s is not valid JSON: %w", cmd, c.opts.Address, err)
	}
	return nil
}

// Stats sends STATS.
func (c *Client) Stats(ctx context.Context) (StatsReply, error) {
	var r StatsReply
	return r, c.doJSON(ctx, CmdStats, &r)
}

// RTimes sends RTIMES.
func (c *Client) RTimes(ctx context.Context) (RTimesReply, error) {
	var r RTimesReply
	return r, c.doJSON(ctx, CmdRTimes, &r)
}

// Info sends INFO.
func (c *Client) Info(ctx context.Context) (InfoReply, error) {
	var r InfoReply
	return r, c.doJSON(ctx, CmdInfo, &r)
}

// Reset sends RESET.
func (c *Client) Reset(ctx context.Context) error {
	var r any
	return c.doJSON(ctx, CmdReset, &r)
}

// Quit sends QUIT and waits for the collector's acknowledgement.
func (c *Client) Quit(ctx context.Context) error {
	var r any
	return c.doJSON(ctx, CmdQuit, &r)
}
