package wasm

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/kavach-sandbox/kavach/internal/workfs"
	"github.com/kavach-sandbox/kavach/policy"
)

// mounted reports whether a file system is mounted at dir.
func mounted(t *testing.T, dir string) bool {
	t.Helper()
	ok, err := workfs.MountedAt(dir)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// TestWorkAndTmpBounded: as root, the module's /work and /tmp are file
// systems of the policy's sizes: writing more fails (with EIO, wazero's
// errno for ENOSPC) and reaches no further on the host, and Destroy
// unmounts them.
func TestWorkAndTmpBounded(t *testing.T) {
	if !workfs.Supported() {
		t.Skip("file systems of their own need root")
	}
	p := policy.Strict()
	p.Filesystem.WorkSize, p.Filesystem.TmpSize = 4<<20, 2<<20
	inst := newSandbox(t, p)
	for _, c := range []struct{ file, mib string }{{"/work/f", "8"}, {"/tmp/f", "4"}} {
		// wazero's system interface has no ENOSPC: the module sees EIO.
		out := run(t, inst, req("fill", c.file, c.mib))
		if out.ExitCode == 0 || !strings.Contains(string(out.Stderr), "I/O error") {
			t.Fatalf("fill %s with %s MiB: exit %d, stderr %q", c.file, c.mib, out.ExitCode, out.Stderr)
		}
	}
	base := inst.baseDir
	if fi, err := os.Stat(filepath.Join(base, "work", "f")); err != nil || fi.Size() > 4<<20 {
		t.Fatalf("host side of /work/f: %v, %v", fi, err)
	}
	for _, d := range []string{"work", "tmp"} {
		if !mounted(t, filepath.Join(base, d)) {
			t.Fatalf("%s is not a file system of its own", d)
		}
	}
	if err := inst.Destroy(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"work", "tmp"} {
		if mounted(t, filepath.Join(base, d)) {
			t.Errorf("%s still mounted after Destroy", d)
		}
	}
	if _, err := os.Stat(base); !os.IsNotExist(err) {
		t.Fatalf("sandbox directory survived: %v", err)
	}
}

// TestSweepStaleUnmounts: the sweep unmounts a dead kavach's file systems
// before removing its directory, and never unmounts through a stale-looking
// name that is a symbolic link (anyone can create one in /tmp).
func TestSweepStaleUnmounts(t *testing.T) {
	if !workfs.Supported() {
		t.Skip("file systems of their own need root")
	}
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	deadTag := stalePrefix + strconv.Itoa(cmd.Process.Pid)
	dead := filepath.Join(os.TempDir(), deadTag+"-mounted")
	victim := t.TempDir() // holds a mounted "work" that is not kavach's
	link := filepath.Join(os.TempDir(), deadTag+"-link")
	for _, d := range []string{filepath.Join(dead, "work"), filepath.Join(victim, "work")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := workfs.Mount(d, 1<<20, 0, 0, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		_ = workfs.RemoveAll(dead, filepath.Join(dead, "work"))
		_ = workfs.Unmount(filepath.Join(victim, "work"))
		_ = os.Remove(link)
	})
	if err := os.Symlink(victim, link); err != nil {
		t.Fatal(err)
	}
	sweepStale()
	if mounted(t, filepath.Join(dead, "work")) {
		t.Error("the dead sandbox's /work is still mounted")
	}
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Errorf("the dead sandbox's directory survived: %v", err)
	}
	if !mounted(t, filepath.Join(victim, "work")) {
		t.Error("the sweep unmounted a file system through a symbolic link")
	}
	if _, err := os.Lstat(link); !os.IsNotExist(err) {
		t.Errorf("the stale-looking link survived: %v", err)
	}
}

// TestFilesBoundedByMemory: a module's files are kavach's memory, so /work
// is at most half the memory limit whatever work_size says.
func TestFilesBoundedByMemory(t *testing.T) {
	if !workfs.Supported() {
		t.Skip("file systems of their own need root")
	}
	p := policy.Strict()
	p.Limits.Memory, p.Filesystem.WorkSize = 64<<20, 1<<30
	inst := newSandbox(t, p)
	if out := run(t, inst, req("fill", "/work/f", "48")); out.ExitCode == 0 {
		t.Fatal("48 MiB written to /work under a 64 MiB memory limit")
	}
	if fi, err := os.Stat(filepath.Join(inst.baseDir, "work", "f")); err != nil || fi.Size() > 32<<20 {
		t.Fatalf("host side of /work/f: %v, %v", fi, err)
	}
	if !slicesContain(inst.Enforcement().Notes, "file systems of their own of 32 MiB and 32 MiB") {
		t.Errorf("notes %q do not give the sizes", inst.Enforcement().Notes)
	}
}
