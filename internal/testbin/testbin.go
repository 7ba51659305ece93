// Package testbin supports the tests that run the gstats binaries: it
// builds them, captures their output, and reads the endpoints a collector
// logs when it starts. Only tests import it.
package testbin

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"sync"
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
