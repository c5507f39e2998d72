package process

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

// TestWorkSizeBounded: as root, /work is a file system of the policy's
// work_size: a payload writing more gets ENOSPC (and no more reaches the
// host), what it wrote persists between execs, and Destroy unmounts it.
func TestWorkSizeBounded(t *testing.T) {
	if !workfs.Supported() {
		t.Skip("a work file system of its own needs root")
	}
	p := policy.Strict()
	p.Filesystem.WorkSize = 8 << 20
	inst := newSandbox(t, p)
	out := execIn(t, inst, "sh", "-c", "dd if=/dev/zero of=/work/fill bs=1M count=32")
	if out.ExitCode == 0 || !strings.Contains(string(out.Stderr), "No space left on device") {
		t.Fatalf("writing 32 MiB into an 8 MiB /work: exit %d, stderr %q", out.ExitCode, out.Stderr)
	}
	work := inst.(*instance).workDir
	if fi, err := os.Stat(filepath.Join(work, "fill")); err != nil || fi.Size() > 8<<20 {
		t.Fatalf("host side of /work/fill: %v, %v", fi, err)
	}
	mustExit(t, execIn(t, inst, "sh", "-c", `rm /work/fill && echo kept > /work/f`), 0)
	if out := execIn(t, inst, "cat", "/work/f"); string(out.Stdout) != "kept\n" {
		t.Fatalf("/work did not persist: %q", out.Stdout)
	}
	dir := inst.(*instance).dir
	if !mounted(t, filepath.Join(dir, "work")) {
		t.Fatalf("no file system mounted under %s", dir)
	}
	if err := inst.Destroy(context.Background()); err != nil {
		t.Fatal(err)
	}
	if mounted(t, filepath.Join(dir, "work")) {
		t.Fatalf("a mount under %s survived Destroy", dir)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("state directory %s survived Destroy: %v", dir, err)
	}
}

// TestWorkSizeDefault: without work_size, /work is half the memory limit
// (at most 1 GiB), so that filling it is ENOSPC rather than an OOM kill.
func TestWorkSizeDefault(t *testing.T) {
	if !workfs.Supported() {
		t.Skip("a work file system of its own needs root")
	}
	out := run(t, policy.Strict(), "df -k /work | tail -1")
	mustExit(t, out, 0)
	if f := strings.Fields(string(out.Stdout)); len(f) < 2 || f[1] != strconv.Itoa(256<<10) {
		t.Fatalf("df /work under strict (512 MiB): %q, want 262144 KiB", out.Stdout)
	}
}

// TestStaleWorkUnmounted: the sweep of a dead kavach's state unmounts its
// work file system before removing the directory.
func TestStaleWorkUnmounted(t *testing.T) {
	if !workfs.Supported() {
		t.Skip("a work file system of its own needs root")
	}
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(stateBase(), 0o711); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(stateBase(), strconv.Itoa(cmd.Process.Pid)+".1-stale-x")
	work := filepath.Join(dir, "work")
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = workfs.RemoveAll(dir, work) })
	if err := workfs.Mount(work, 1<<20, 0, 0, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	cleanStale(context.Background())
	if mounted(t, work) {
		t.Fatal("the stale work file system is still mounted")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("stale state directory survived: %v", err)
	}
}

// TestWorkBindNoFileSystem: a policy mount at /work replaces the work
// directory: no file system is made for it, and the enforcement says
// work_size does not apply.
func TestWorkBindNoFileSystem(t *testing.T) {
	if !workfs.Supported() {
		t.Skip("a work file system of its own needs root")
	}
	host := t.TempDir()
	if err := os.Chmod(host, 0o777); err != nil {
		t.Fatal(err)
	}
	p := policy.Strict()
	p.Filesystem.Mounts = []policy.Mount{{Source: host, Dest: "/work", Mode: policy.ReadWrite}}
	inst := newSandbox(t, p)
	mustExit(t, execIn(t, inst, "sh", "-c", "echo x > /work/f"), 0)
	if _, err := os.Stat(filepath.Join(host, "f")); err != nil {
		t.Fatalf("the bound directory did not get the file: %v", err)
	}
	if mounted(t, inst.(*instance).workDir) {
		t.Fatal("a work file system was mounted under a bind at /work")
	}
	if !strings.Contains(strings.Join(inst.Enforcement().Notes, "\n"), "work_size: not applied") {
		t.Errorf("notes %q", inst.Enforcement().Notes)
	}
}
