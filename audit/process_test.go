package audit

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

const helperEnv = "KAVACH_AUDIT_TEST_APPENDER"

// TestHelperAppender is not a test: run as a child process with helperEnv
// set to a path, it appends to that audit file until killed.
func TestHelperAppender(t *testing.T) {
	path := os.Getenv(helperEnv)
	if path == "" {
		t.Skip("helper process only")
	}
	l, err := Open(path, testKey)
	if err != nil {
		os.Exit(3)
	}
	for i := 0; ; i++ {
		if _, err := l.Append(context.Background(), "helper", "", map[string]int{"pid": os.Getpid(), "i": i}); err != nil {
			os.Exit(4)
		}
	}
}

// TestProcessesAppendAndCrash runs several writer processes on one file,
// SIGKILLs them mid-stream and checks the chain survives intact.
func TestProcessesAppendAndCrash(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	var cmds []*exec.Cmd
	for i := 0; i < 3; i++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperAppender$")
		cmd.Env = append(os.Environ(), helperEnv+"="+path)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	defer func() {
		for _, c := range cmds {
			c.Process.Kill()
			c.Wait()
		}
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		fi, err := os.Stat(path)
		if err == nil && fi.Size() > 200<<10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("helpers did not write enough")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, c := range cmds {
		c.Process.Signal(syscall.SIGKILL)
		if err := c.Wait(); err == nil {
			t.Fatal("helper exited cleanly before being killed")
		}
	}
	l, err := Open(path, testKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(context.Background(), "after-crash", "", nil); err != nil {
		t.Fatal(err)
	}
	l.Close()
	res := verifyPath(t, path)
	if !res.OK || res.Entries < 100 {
		t.Fatalf("chain after crash: %+v", res)
	}
	t.Logf("%d entries from 3 processes verified", res.Entries)
}
