package statsdpeer

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/plugins/parsers/influx"
)

// Bounded waits.
const (
	listenTimeout = 30 * time.Second // Telegraf's start until statsd listens
	stopTimeout   = 10 * time.Second // SIGTERM until exit, then SIGKILL
	logTailLines  = 40               // stderr lines kept for error messages
)

// listenLine is the line statsd logs once its socket is bound, e.g.
// `I! [inputs.statsd] UDP listening on "127.0.0.1:41234"`.
var listenLine = regexp.MustCompile(`\[inputs\.statsd\] (?:UDP|TCP) listening on "([^"]+)"`)

// listenAddr returns the address in one of Telegraf's log lines, if the line
// is statsd's "listening on" line.
func listenAddr(line string) (string, bool) {
	m := listenLine.FindStringSubmatch(line)
	if m == nil {
		return "", false
	}
	return m[1], true
}

// process is one Telegraf that this package started.
type process struct {
	cmd    *exec.Cmd
	pid    int
	addr   string        // statsd's bound address
	done   chan struct{} // closed once the process has exited
	output string        // outputs.file's file

	mu      sync.Mutex
	tail    []string // last logTailLines lines of stderr
	waitErr error    // cmd.Wait's error, set before done closes

	stopOnce sync.Once
	stopErr  error
}

// startProcess writes conf to workDir/name.conf, runs bin with it (under
// taskset -c cpus when cpus is not empty) and returns once statsd has
// logged its address, or fails after listenTimeout.
func startProcess(ctx context.Context, bin, workDir, name, conf, output, cpus string) (*process, error) {
	bin, err := exec.LookPath(bin)
	if err == nil {
		bin, err = filepath.Abs(bin) // the process runs in workDir
	}
	if err != nil {
		return nil, fmt.Errorf("telegraf binary: %w (build it with statsdpeer.Build)", err)
	}
	confPath, err := filepath.Abs(filepath.Join(workDir, name+".conf"))
	if err != nil {
		return nil, fmt.Errorf("telegraf's config path: %w", err)
	}
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, fmt.Errorf("writing Telegraf's config: %w", err)
	}
	args := []string{bin, "--config", confPath}
	if cpus != "" {
		taskset, err := exec.LookPath("taskset")
		if err != nil {
			return nil, fmt.Errorf("pinning Telegraf to CPUs %q needs taskset: %w (apt-get install util-linux)", cpus, err)
		}
		// taskset execs Telegraf, so the PID stays Telegraf's.
		args = append([]string{taskset, "-c", cpus}, args...)
	}
	// Not CommandContext: the caller's context bounds the start, while the
	// process lives until stop.
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = workDir
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, fmt.Errorf("telegraf stderr pipe: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", strings.Join(args, " "), err)
	}
	p := &process{cmd: cmd, pid: cmd.Process.Pid, done: make(chan struct{}), output: output}
	addrs := make(chan string, 1)
	go p.readLog(stderr, addrs)

	timer := time.NewTimer(listenTimeout)
	defer timer.Stop()
	select {
	case p.addr = <-addrs:
		return p, nil
	case <-p.done:
		return nil, fmt.Errorf("telegraf exited before statsd listened: %v\n%s", p.exitErr(), p.logTail())
	case <-timer.C:
		err = fmt.Errorf("statsd did not log its address within %s\n%s", listenTimeout, p.logTail())
	case <-ctx.Done():
		err = fmt.Errorf("waiting for statsd to listen: %w", ctx.Err())
	}
	return nil, errors.Join(err, p.stop())
}

// readLog keeps the tail of Telegraf's stderr, sends statsd's address once,
// and after EOF reaps the process and closes p.done.
func (p *process) readLog(r io.Reader, addrs chan<- string) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	found := false
	for sc.Scan() {
		line := sc.Text()
		p.mu.Lock()
		p.tail = append(p.tail, line)
		if len(p.tail) > logTailLines {
			p.tail = p.tail[len(p.tail)-logTailLines:]
		}
		p.mu.Unlock()
		if addr, ok := listenAddr(line); ok && !found {
			found = true
			addrs <- addr
		}
	}
	_, _ = io.Copy(io.Discard, r) // after an over-long line
	err := p.cmd.Wait()
	p.mu.Lock()
	p.waitErr = err
	p.mu.Unlock()
	close(p.done)
}

func (p *process) logTail() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return "telegraf's log (tail):\n" + strings.Join(p.tail, "\n")
}

func (p *process) exitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waitErr
}

// exited reports whether the process has ended.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, waits up to stopTimeout, then SIGKILLs; only this PID.
// It returns nil when Telegraf exits after SIGTERM, whatever its code.
func (p *process) stop() error {
	p.stopOnce.Do(func() {
		if p.exited() {
			p.stopErr = fmt.Errorf("telegraf (pid %d) had already exited: %v\n%s", p.pid, p.exitErr(), p.logTail())
			return
		}
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			p.stopErr = fmt.Errorf("SIGTERM to telegraf (pid %d): %w", p.pid, err)
		}
		timer := time.NewTimer(stopTimeout)
		defer timer.Stop()
		select {
		case <-p.done:
		case <-timer.C:
			if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
				p.stopErr = errors.Join(p.stopErr, fmt.Errorf("SIGKILL to telegraf (pid %d): %w", p.pid, err))
			}
			<-p.done // SIGKILL cannot be ignored
			p.stopErr = errors.Join(p.stopErr, fmt.Errorf("telegraf (pid %d) ignored SIGTERM for %s and was killed", p.pid, stopTimeout))
		}
	})
	return p.stopErr
}

// outputReader reads the line protocol outputs.file appends, one complete
// line at a time, from where the last read stopped.
type outputReader struct {
	path   string
	offset int64
	parser *influx.Parser
}

func newOutputReader(path string) (*outputReader, error) {
	p := &influx.Parser{}
	if err := p.Init(); err != nil {
		return nil, fmt.Errorf("line-protocol parser: %w", err)
	}
	return &outputReader{path: path, parser: p}, nil
}

// next returns the metrics in the complete lines written since the last
// call (none while the file does not exist yet).
func (r *outputReader) next() ([]telegraf.Metric, error) {
	f, err := os.Open(r.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading Telegraf's output: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.NewSectionReader(f, r.offset, 1<<62))
	if err != nil {
		return nil, fmt.Errorf("reading Telegraf's output %s: %w", r.path, err)
	}
	end := bytes.LastIndexByte(b, '\n')
	if end < 0 {
		return nil, nil
	}
	b = b[:end+1]
	r.offset += int64(len(b))
	ms, err := r.parser.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("telegraf's output %s is not line protocol: %w", r.path, err)
	}
	return ms, nil
}

// intField returns an integer field of m (statsd writes counts as integers).
func intField(m telegraf.Metric, key string) (int64, bool) {
	v, ok := m.GetField(key)
	if !ok {
		return 0, false
	}
	switch n := v.(type) {
	case int64:
		return n, true
	case uint64:
		return int64(n), true
	case float64:
		return int64(n), true
	}
	return 0, false
}

// floatField returns a numeric field of m as a float.
func floatField(m telegraf.Metric, key string) (float64, bool) {
	v, ok := m.GetField(key)
	if !ok {
		return 0, false
	}
	switch n := v.(type) {
	case float64:
		return n, true
	case int64:
		return float64(n), true
	case uint64:
		return float64(n), true
	}
	return 0, false
}

// CPUTime is the CPU time all threads of pid have run, from the first field
// of /proc/PID/task/*/schedstat (nanoseconds), and the part of it run by the
// threads whose name (comm) starts with tagged, when tagged is not empty.
// Threads that exited are not counted; Go programs keep their threads.
func CPUTime(pid int, tagged string) (total, ofTagged time.Duration, err error) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return 0, 0, fmt.Errorf("the threads of process %d: %w", pid, err)
	}
	for _, t := range tasks {
		b, err := os.ReadFile(filepath.Join(dir, t.Name(), "schedstat"))
		if errors.Is(err, os.ErrNotExist) {
			continue // the thread ended meanwhile
		}
		if err != nil {
			return 0, 0, fmt.Errorf("thread CPU time of process %d: %w", pid, err)
		}
		ns, err := schedstatRuntime(string(b))
		if err != nil {
			return 0, 0, fmt.Errorf("%s/%s/schedstat: %w", dir, t.Name(), err)
		}
		total += ns
		if tagged != "" {
			if comm, err := os.ReadFile(filepath.Join(dir, t.Name(), "comm")); err == nil && strings.HasPrefix(string(comm), tagged) {
				ofTagged += ns
			}
		}
	}
	return total, ofTagged, nil
}

// schedstatRuntime parses a schedstat line: "runtime_ns wait_ns timeslices".
func schedstatRuntime(s string) (time.Duration, error) {
	f := strings.Fields(s)
	if len(f) == 0 {
		return 0, errors.New("empty schedstat")
	}
	ns, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil || ns < 0 {
		return 0, fmt.Errorf("bad schedstat run time %q", f[0])
	}
	return time.Duration(ns), nil
}

// OpenFiles returns the number of file descriptors pid has open.
func OpenFiles(pid int) (int, error) {
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0, fmt.Errorf("listing the open files of pid %d: %w", pid, err)
	}
	return len(fds), nil
}

// Memory returns the resident set size of pid (VmRSS) and its peak (VmHWM),
// in bytes.
func Memory(pid int) (rss, hwm int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("memory of process %d: %w", pid, err)
	}
	rss, err1 := statusBytes(string(b), "VmRSS")
	hwm, err2 := statusBytes(string(b), "VmHWM")
	if err := errors.Join(err1, err2); err != nil {
		return 0, 0, fmt.Errorf("/proc/%d/status: %w", pid, err)
	}
	return rss, hwm, nil
}

// statusBytes returns a "Key:   123 kB" line of /proc/PID/status in bytes.
func statusBytes(status, key string) (int64, error) {
	for line := range strings.Lines(status) {
		rest, ok := strings.CutPrefix(line, key+":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("bad %s line %q", key, strings.TrimSpace(line))
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || kb < 0 || kb > 1<<40 {
			return 0, fmt.Errorf("bad %s value %q", key, f[0])
		}
		return kb * 1024, nil
	}
	return 0, fmt.Errorf("no %s line", key)
}

// socketDrops returns the kernel's drop counter of the IPv4 UDP socket bound
// to local (e.g. "0100007F:A0B2", as /proc/net/udp writes 127.0.0.1:41138).
func socketDrops(local string) (int64, error) {
	b, err := os.ReadFile("/proc/net/udp")
	if err != nil {
		return 0, fmt.Errorf("UDP socket table: %w", err)
	}
	return udpDrops(string(b), local)
}

// udpDrops finds local's row in the text of /proc/net/udp and returns its
// last column, drops.
func udpDrops(table, local string) (int64, error) {
	for line := range strings.Lines(table) {
		f := strings.Fields(line)
		if len(f) < 13 || f[1] != local {
			continue
		}
		n, err := strconv.ParseInt(f[len(f)-1], 10, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("bad drops column %q for %s", f[len(f)-1], local)
		}
		return n, nil
	}
	return 0, fmt.Errorf("no UDP socket bound to %s in /proc/net/udp", local)
}

// procNetAddr formats an IPv4 address and port the way /proc/net/udp does
// on a little-endian machine.
func procNetAddr(ip [4]byte, port int) string {
	return fmt.Sprintf("%02X%02X%02X%02X:%04X", ip[3], ip[2], ip[1], ip[0], port)
}
