package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/gstats/gstats/bench/statsdpeer"
	"github.com/gstats/gstats/internal/testbin"
)

// proc is a process the harness started, pinned to the receiver CPUs.
type proc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Reader
	stderr *testbin.Buffer
	done   chan struct{}
}

// startProc starts argv under `taskset -c cpus` (no pinning when cpus is
// empty), with stdin and stdout as pipes and stderr captured.
func startProc(cpus string, argv ...string) (*proc, error) {
	if cpus != "" {
		argv = append([]string{"taskset", "-c", cpus}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	p := &proc{cmd: cmd, stderr: &testbin.Buffer{}, done: make(chan struct{})}
	var err error
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	p.stdout = bufio.NewReader(out)
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", strings.Join(argv, " "), err)
	}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// pid is the process's PID: taskset execs the program, so it is the
// program's own.
func (p *proc) pid() int { return p.cmd.Process.Pid }

// stop sends SIGTERM, waits up to 10 s, then kills.
func (p *proc) stop() {
	if p == nil {
		return
	}
	_ = p.stdin.Close()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// waitLog waits until the process's stderr matches find, or fails after
// timeout or when the process exits.
func (p *proc) waitLog(timeout time.Duration, find func(string) bool) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if find(p.stderr.String()) {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited: %s", p.cmd.Path, p.stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not ready after %s: %s", p.cmd.Path, timeout, p.stderr.String())
}

// cpuTime is the CPU time all the threads of pid have used, and the part
// of it used by libzmq's background threads (I/O and reaper).
func cpuTime(pid int) (total, zmqThreads time.Duration, err error) {
	return statsdpeer.CPUTime(pid, "ZMQbg/")
}

// settleQuiet is how long a receiver's count must stand still before what
// it counted is taken as all it will count: what it lost never arrives.
// Tests, on a loaded machine where a receiver may stall that long with
// everything still to come, raise it.
var settleQuiet = 300 * time.Millisecond

// waitSettled polls count until it has not moved for quiet, or until
// timeout; it returns the last value.
func waitSettled(ctx context.Context, count func(context.Context) (int64, error), want int64, quiet, timeout time.Duration) (int64, error) {
	deadline := time.Now().Add(timeout)
	last, err := count(ctx)
	if err != nil {
		return 0, err
	}
	still := time.Now()
	for time.Now().Before(deadline) && last < want {
		time.Sleep(20 * time.Millisecond)
		n, err := count(ctx)
		if err != nil {
			return last, err
		}
		if n != last {
			last, still = n, time.Now()
		} else if time.Since(still) >= quiet {
			break
		}
	}
	return last, nil
}
