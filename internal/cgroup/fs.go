package cgroup

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// writeFile writes s to an existing cgroup control file with a single
// write(2), as the kernel expects. It never creates files.
func writeFile(dir, file, s string) error {
	p := dir + "/" + file
	fd, err := unix.Open(p, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: p, Err: err}
	}
	defer unix.Close(fd)
	if _, err := unix.Write(fd, []byte(s)); err != nil {
		return &os.PathError{Op: "write " + strconv.Quote(s), Path: p, Err: err}
	}
	return nil
}

// readFile returns the trimmed contents of a cgroup control file.
func readFile(dir, file string) (string, error) {
	b, err := os.ReadFile(dir + "/" + file)
	return strings.TrimSpace(string(b)), err
}

// readInt reads a file holding a single integer.
func readInt(dir, file string) (int64, error) {
	s, err := readFile(dir, file)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse %s/%s: %w", dir, file, err)
	}
	return n, nil
}

// readKey reads the value of "key N" in a flat-keyed file such as
// memory.events or cpu.stat. A missing key reads as 0.
func readKey(dir, file, key string) (int64, error) {
	s, err := readFile(dir, file)
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(s) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), " ")
		if ok && k == key {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parse %q in %s/%s: %w", key, dir, file, err)
			}
			return n, nil
		}
	}
	return 0, nil
}

// readPids returns the ids listed in cgroup.procs or tasks.
func readPids(dir, file string) ([]int, error) {
	s, err := readFile(dir, file)
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, f := range strings.Fields(s) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("parse %s/%s: %w", dir, file, err)
		}
		pids = append(pids, pid)
	}
	return pids, nil
}

// poll calls cond until it reports done, the context ends, or cond fails.
// The interval starts at 50µs and doubles up to 5ms: cgroup state changes
// usually settle within microseconds, but a busy host can take longer.
func poll(ctx context.Context, what string, cond func() (bool, error)) error {
	wait := 50 * time.Microsecond
	for {
		done, err := cond()
		if err != nil || done {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s: %w", what, ctx.Err())
		case <-t.C:
		}
		wait = min(2*wait, 5*time.Millisecond)
	}
}
