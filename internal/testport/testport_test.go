package testport

import (
	"net"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

func TestPortsAreDistinctAndBindable(t *testing.T) {
	seen := map[int]bool{}
	for i := 0; i < 50; i++ {
		p := Port(t)
		if p < Low || p >= High {
			t.Fatalf("port %d outside [%d, %d)", p, Low, High)
		}
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
	}
	l, err := net.Listen("tcp", Addr(t))
	if err != nil {
		t.Fatalf("binding a handed-out port: %v", err)
	}
	_ = l.Close()
}

func TestHeldPortIsSkippedByAnotherProcess(t *testing.T) {
	p := Port(t)
	// flock(2) locks belong to the open file description, so a second
	// open of the same file in this process conflicts just as another
	// process would.
	f, ok, err := tryLock(Dir() + "/" + strconv.Itoa(p) + ".lock")
	if err != nil {
		t.Fatal(err)
	}
	if ok {
		_ = f.Close()
		t.Fatalf("port %d's lock was taken twice", p)
	}
	// And from another process, through flock(1) when it is there.
	if path, err := exec.LookPath("flock"); err == nil {
		out, err := exec.Command(path, "-n", Dir()+"/"+strconv.Itoa(p)+".lock", "true").CombinedOutput()
		if err == nil {
			t.Fatalf("flock -n on a held port's lock succeeded: %s", out)
		}
	}
}

func TestNamedLockIsExclusive(t *testing.T) {
	Lock(t, "selftest", time.Second)
	f, ok, err := tryLock(Dir() + "/named-selftest.lock")
	if err != nil {
		t.Fatal(err)
	}
	if ok {
		_ = f.Close()
		t.Fatal("a named lock was taken twice")
	}
}
