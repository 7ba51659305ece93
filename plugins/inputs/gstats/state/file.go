package state

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// FileMode is the mode of a state file: it tells who uses the collector's
// prefixes, so only its owner reads it.
const FileMode = 0o600

// Read reads and decodes the state file at path (see ReadBytes).
func Read(path string) (*File, error) {
	data, err := ReadBytes(path)
	if err != nil {
		return nil, err
	}
	return Decode(data)
}

// ReadBytes reads the state file at path, for Decode or Scan. A missing
// file is an error wrapping fs.ErrNotExist; an unreadable one, the os
// error; a file larger than MaxFileSize, ErrTooLarge.
func ReadBytes(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file (%s)", path, info.Mode().Type())
	}
	if info.Size() > MaxFileSize {
		return nil, &Error{Kind: ErrTooLarge, Offset: -1, Msg: fmt.Sprintf("%d bytes, more than the %d a state file may take", info.Size(), MaxFileSize)}
	}
	var buf bytes.Buffer
	buf.Grow(int(info.Size()) + bytes.MinRead) // one read, one allocation
	if _, err := buf.ReadFrom(io.LimitReader(f, MaxFileSize+1)); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if buf.Len() > MaxFileSize {
		return nil, &Error{Kind: ErrTooLarge, Offset: -1, Msg: fmt.Sprintf("more than the %d bytes a state file may take", MaxFileSize)}
	}
	return buf.Bytes(), nil
}

// WriteFile replaces the file at path atomically with what write writes: it
// writes a temporary file in the same directory (mode FileMode), flushes it
// to disk, renames it over path and flushes the directory, so that path
// holds either the old file or the whole new one, even after a crash.
func WriteFile(path string, write func(io.Writer) error) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("creating a temporary file: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(FileMode); err != nil {
		return fmt.Errorf("setting the mode of %s: %w", tmp.Name(), err)
	}
	bw := bufio.NewWriterSize(tmp, 256<<10)
	if err := write(bw); err != nil {
		return fmt.Errorf("writing %s: %w", tmp.Name(), err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("writing %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("flushing %s to disk: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("renaming %s to %s: %w", tmp.Name(), path, err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("flushing directory %s to disk (the new file is in place): %w", dir, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// BadSuffixLayout is the layout of the time in the name of a file moved
// aside: PATH.bad-20060102T150405Z.
const BadSuffixLayout = "20060102T150405Z"

// MoveAside renames the file at path to path.bad-TIME (TIME is now, UTC),
// or path.bad-TIME-N if that exists, and returns the new name.
func MoveAside(path string, now time.Time) (string, error) {
	stem := path + ".bad-" + now.UTC().Format(BadSuffixLayout)
	to := stem
	for n := 2; ; n++ {
		if _, err := os.Lstat(to); errors.Is(err, fs.ErrNotExist) {
			break
		} else if err != nil {
			return "", fmt.Errorf("moving %s aside: %w", path, err)
		}
		if n > 100 {
			return "", fmt.Errorf("moving %s aside: %s-2 to %s-100 all exist", path, stem, stem)
		}
		to = fmt.Sprintf("%s-%d", stem, n)
	}
	if err := os.Rename(path, to); err != nil {
		return "", fmt.Errorf("moving %s aside: %w", path, err)
	}
	return to, nil
}

// CheckWritable checks that a state file can be written at path: its
// directory exists and takes new files (a file is created and removed to
// be sure), and path is not a directory.
func CheckWritable(path string) error {
	if path == "" {
		return errors.New("empty path")
	}
	dir := filepath.Dir(path)
	info, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("directory %s does not exist; create it (writable by the collector's user)", dir)
	case err != nil:
		return fmt.Errorf("directory %s: %w", dir, err)
	case !info.IsDir():
		return fmt.Errorf("%s is not a directory", dir)
	}
	if info, err := os.Stat(path); err == nil && info.IsDir() {
		return fmt.Errorf("%s is a directory; name a file in it", path)
	}
	probe, err := os.CreateTemp(dir, "."+filepath.Base(path)+".probe-*")
	if err != nil {
		return fmt.Errorf("directory %s is not writable: %w", dir, err)
	}
	name := probe.Name()
	_ = probe.Close()
	if err := os.Remove(name); err != nil {
		return fmt.Errorf("removing the probe file %s: %w", name, err)
	}
	return nil
}
