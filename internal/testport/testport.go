// Package testport hands out loopback TCP ports to tests without races.
//
// A port found by binding port 0 and closing the listener is free only for
// a moment: the kernel may hand the same port to any other process's
// outgoing connection or port-0 bind before the test's own server binds it,
// and go test runs packages in parallel. testport avoids both:
//
//   - its ports lie in [Low, High), below the kernel's ephemeral range
//     (/proc/sys/net/ipv4/ip_local_port_range, 32768 and up by default), so
//     the kernel never picks them by itself;
//   - each port handed out is held by an exclusive flock(2) on a file in a
//     directory shared by every test process of the machine (Go and Python
//     tests use the same scheme), released when the test ends.
//
// Named locks (Lock) serialise tests that need one fixed resource, such as
// the collector's default addresses.
package testport

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// The range ports are handed out from: below Linux's default ephemeral
// range, above the well-known and common registered service ports.
const (
	Low  = 20000
	High = 32000
)

// Dir is the directory holding the lock files, shared by every test
// process on the machine.
func Dir() string { return filepath.Join(os.TempDir(), "gstats-testport") }

// Port returns a TCP port on 127.0.0.1 that no other test holds and that
// was bindable when it was handed out. It stays reserved until t ends.
func Port(t testing.TB) int {
	t.Helper()
	dir := Dir()
	if err := os.MkdirAll(dir, 0o777); err != nil {
		t.Fatalf("testport: %v", err)
	}
	start := Low + rand.IntN(High-Low)
	for i := 0; i < High-Low; i++ {
		port := Low + (start-Low+i)%(High-Low)
		f, ok, err := tryLock(filepath.Join(dir, strconv.Itoa(port)+".lock"))
		if err != nil {
			t.Fatalf("testport: %v", err)
		}
		if !ok {
			continue
		}
		if !bindable(port) {
			_ = f.Close()
			continue
		}
		t.Cleanup(func() { _ = f.Close() })
		return port
	}
	t.Fatalf("testport: no free port in [%d, %d)", Low, High)
	return 0
}

// Addr returns "127.0.0.1:PORT" for a port from Port.
func Addr(t testing.TB) string {
	t.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(Port(t)))
}

// TCP returns "tcp://127.0.0.1:PORT" (a ZeroMQ endpoint) for a port from
// Port.
func TCP(t testing.TB) string {
	t.Helper()
	return "tcp://" + Addr(t)
}

// Lock takes the machine-wide lock called name, waiting up to timeout for
// whoever holds it, and holds it until t ends. Tests that bind a fixed
// resource (the collector's default addresses) take the same lock, so they
// never run beside each other.
func Lock(t testing.TB, name string, timeout time.Duration) {
	t.Helper()
	dir := Dir()
	if err := os.MkdirAll(dir, 0o777); err != nil {
		t.Fatalf("testport: %v", err)
	}
	path := filepath.Join(dir, "named-"+name+".lock")
	deadline := time.Now().Add(timeout)
	for {
		f, ok, err := tryLock(path)
		if err != nil {
			t.Fatalf("testport: %v", err)
		}
		if ok {
			t.Cleanup(func() { _ = f.Close() })
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("testport: lock %q held by another test for over %v (%s)", name, timeout, path)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// tryLock opens path and takes an exclusive, non-blocking flock on it. The
// lock lasts as long as the returned file is open.
func tryLock(path string) (*os.File, bool, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		return nil, false, fmt.Errorf("opening lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("locking %s: %w", path, err)
	}
	return f, true, nil
}

// bindable reports whether 127.0.0.1:port can be bound now (nothing outside
// the tests holds it).
func bindable(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}
