// Package testbin supports the tests that run the gstats binaries: it
// builds them, captures their output, and reads the endpoints a collector
// logs when it starts. Only tests import it.
package testbin

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"
)

// Packages are the commands the integration tests run.
const (
	Collectd = "github.com/gstats/gstats/cmd/gstats-collectd"
	Ctl      = "github.com/gstats/gstats/cmd/gstatsctl"
)

// Build compiles pkgs into dir, with the race detector when the calling
// test binary has it (a race then makes the binary exit 66, which exit-code
// checks report).
func Build(ctx context.Context, dir string, pkgs ...string) error {
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	if RaceEnabled() {
		args = append(args, "-race")
	}
	args = append(args, pkgs...)
	out, err := exec.CommandContext(ctx, "go", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("go %s: %w\n%s\nthe binaries need libzmq: apt-get install libzmq3-dev pkg-config", strings.Join(args, " "), err, out)
	}
	return nil
}

// RaceEnabled reports whether the running binary was built with -race.
func RaceEnabled() bool {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range info.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// Buffer is an io.Writer a process writes while a test reads it.
type Buffer struct {
	mu  sync.Mutex
	buf []byte
}

// Write implements io.Writer.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	return len(p), nil
}

// String returns what was written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

var listening = regexp.MustCompile(`listening: stats \(PULL\) on ([^\s,]+), control \(REP\) on ([^\s;]+);`)

// Endpoints finds the bound endpoints in a collector's log: the line it
// writes once both sockets are bound.
func Endpoints(log string) (stats, comm string, ok bool) {
	m := listening.FindStringSubmatch(log)
	if m == nil {
		return "", "", false
	}
	return m[1], m[2], true
}

// Paths are where Main put the binaries.
type Paths struct {
	Collectd string // gstats-collectd
	Ctl      string // gstatsctl
	Dir      string // the directory holding them, removed after the tests
}

// buildTimeout bounds a cold build of both binaries.
const buildTimeout = 10 * time.Minute

// Main is the body of a TestMain for packages that run the binaries. Under
// -short it only runs the tests (the integration tests skip themselves).
// Otherwise it builds gstats-collectd and gstatsctl into a temporary
// directory, records their paths in p, runs the tests and removes the
// directory. It returns the exit code.
func Main(m *testing.M, p *Paths) int {
	flag.Parse()
	if testing.Short() {
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "gstats-bin-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "creating a directory for the binaries: %v\n", err)
		return 1
	}
	defer func() { _ = os.RemoveAll(dir) }()
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	if err := Build(ctx, dir, Collectd, Ctl); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	p.Collectd = filepath.Join(dir, "gstats-collectd")
	p.Ctl = filepath.Join(dir, "gstatsctl")
	p.Dir = dir
	return m.Run()
}
