package cgroup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

var testSeq atomic.Int64

// testName returns a unique, valid cgroup name for t.
func testName(t testing.TB) string {
	id := strings.Map(func(r rune) rune {
		if validComponent(string(r)) {
			return r
		}
		return '-'
	}, t.Name())
	return fmt.Sprintf("%s/t-%s-%d", parentDir, id, testSeq.Add(1))
}

// requireRoot skips when the test cannot manage cgroups at all.
func requireRoot(t testing.TB) {
	t.Helper()
	if s := Detect(); s.Version == 0 {
		t.Skipf("no usable cgroup hierarchy: %s", s.Reason)
	}
}

// require skips unless the host supports the named controller.
func require(t testing.TB, ok bool, what string) {
	t.Helper()
	requireRoot(t)
	if !ok {
		t.Skipf("host lacks a usable %s controller: %s", what, Detect().Reason)
	}
}

// newTest creates a cgroup that is destroyed, and checked gone from every
// hierarchy, when the test ends.
func newTest(t testing.TB, l Limits) *Cgroup {
	t.Helper()
	requireRoot(t)
	c, err := New(context.Background(), testName(t), l)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { destroyAndCheck(t, c) })
	return c
}

// destroyAndCheck destroys c and fails if a directory is left behind.
func destroyAndCheck(t testing.TB, c *Cgroup) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Destroy(ctx); err != nil {
		t.Errorf("Destroy: %v", err)
	}
	for _, d := range c.dirs {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still present after Destroy (stat: %v)", d, err)
		}
	}
}

// proc is a shell script running inside a test cgroup.
type proc struct {
	cmd  *exec.Cmd
	errf *os.File // stderr; a file, so that Wait does not wait for pipe writers
	done chan error
}

// stderr returns what the script wrote to stderr so far.
func (p *proc) stderr() string {
	b, _ := os.ReadFile(p.errf.Name())
	return string(b)
}

// startIn starts script under sh with args as $1..., moves it into c before
// it runs anything, then lets it go. The process is killed and reaped when
// the test ends.
func startIn(t testing.TB, c *Cgroup, script string, args ...string) *proc {
	t.Helper()
	p := &proc{done: make(chan error, 1)}
	p.cmd = exec.Command("sh", append([]string{"-c", "read _ || exit 99\n" + script, "sh"}, args...)...)
	f, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	p.errf, p.cmd.Stderr = f, f
	in, err := p.cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		p.done <- nil // for any later wait in the test
	})
	if err := c.AddProc(p.cmd.Process.Pid); err != nil {
		t.Fatalf("AddProc: %v", err)
	}
	if _, err := io.WriteString(in, "go\n"); err != nil {
		t.Fatal(err)
	}
	in.Close()
	return p
}

// wait returns the script's exit error, failing the test after timeout.
func (p *proc) wait(t testing.TB, timeout time.Duration) error {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err
		return err
	case <-time.After(timeout):
		t.Fatalf("process %d still running after %v", p.cmd.Process.Pid, timeout)
		return nil
	}
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

// waitFor polls cond for up to d.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func itoa(n int) string { return fmt.Sprint(n) }
