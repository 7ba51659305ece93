package state

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// entries lists the names in dir.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	list, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range list {
		names = append(names, e.Name())
	}
	return names
}

func TestWriteFileAndRead(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "gstats.state")
	f := sampleFile(t, 5, 3)
	var e Encoder
	for i := range f.Prefixes {
		e.Add(&f.Prefixes[i])
	}
	for round := range 2 { // create, then replace
		if err := WriteFile(path, func(w io.Writer) error { _, err := e.WriteTo(w, &f.Meta); return err }); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != FileMode {
			t.Errorf("mode %v, want %v", info.Mode().Perm(), os.FileMode(FileMode))
		}
		if names := entries(t, dir); len(names) != 1 {
			t.Errorf("directory holds %v, want the state file only", names)
		}
		got, err := Read(path)
		if err != nil {
			t.Fatal(err)
		}
		sameFile(t, got, f)
	}
}

func TestWriteFileFailureKeepsTheOldFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "gstats.state")
	if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("disk full")
	err := WriteFile(path, func(w io.Writer) error {
		_, _ = w.Write([]byte("partial new content"))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("WriteFile = %v, want the write's error", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "old" {
		t.Errorf("the file holds %q after a failed write, want the old content", b)
	}
	if names := entries(t, dir); len(names) != 1 {
		t.Errorf("directory holds %v after a failed write, want the old file only", names)
	}
	// No directory: an error naming the problem.
	err = WriteFile(filepath.Join(dir, "gone", "gstats.state"), func(io.Writer) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "creating a temporary file") || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("WriteFile in a missing directory = %v", err)
	}
}

func TestReadErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Read(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Read of a missing file = %v, want fs.ErrNotExist", err)
	}
	if _, err := Read(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("Read of a directory = %v", err)
	}
	big := filepath.Join(dir, "big")
	fh, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	if err := fh.Truncate(MaxFileSize + 1); err != nil { // sparse: takes no room
		t.Fatal(err)
	}
	_ = fh.Close()
	if _, err := Read(big); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Read of a %d-byte file = %v, want ErrTooLarge", MaxFileSize+1, err)
	}
	garbage := filepath.Join(dir, "garbage")
	if err := os.WriteFile(garbage, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(garbage); !errors.Is(err, ErrForeign) {
		t.Errorf("Read of a foreign file = %v, want ErrForeign", err)
	}
}

func TestMoveAside(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "gstats.state")
	now := time.Date(2025, 3, 4, 5, 6, 7, 0, time.FixedZone("CET", 3600))
	want := []string{path + ".bad-20250304T040607Z", path + ".bad-20250304T040607Z-2", path + ".bad-20250304T040607Z-3"}
	for i, w := range want {
		if err := os.WriteFile(path, []byte{byte(i)}, 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := MoveAside(path, now)
		if err != nil || got != w {
			t.Fatalf("MoveAside = %q, %v; want %q", got, err, w)
		}
		if b, err := os.ReadFile(got); err != nil || len(b) != 1 || b[0] != byte(i) {
			t.Errorf("%s holds %v, %v; want the moved file", got, b, err)
		}
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s still exists after being moved aside", path)
	}
	if _, err := MoveAside(path, now); err == nil {
		t.Error("MoveAside of a missing file succeeded")
	}
}

func TestCheckWritable(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		path string
		want string // "" for no error
	}{
		{filepath.Join(dir, "gstats.state"), ""},
		{file, ""}, // an existing file is replaced
		{filepath.Join(dir, "missing", "gstats.state"), "does not exist; create it"},
		{filepath.Join(file, "gstats.state"), "is not a directory"},
		{dir, "is a directory; name a file in it"},
		{"", "empty path"},
	}
	for _, c := range cases {
		err := CheckWritable(c.path)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("CheckWritable(%q) = %v", c.path, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("CheckWritable(%q) = %v, want an error containing %q", c.path, err, c.want)
		}
	}
	if names := entries(t, dir); len(names) != 1 {
		t.Errorf("CheckWritable left %v", names)
	}
}
