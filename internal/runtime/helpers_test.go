package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kavach-sandbox/kavach/backend"
	"github.com/kavach-sandbox/kavach/policy"
)

// kinds are the runtimes every behavioural case runs against.
var kinds = []Kind{Crun, Runc, Runsc}

var seq atomic.Int64

// testEnv is the base environment of test sandboxes.
var testEnv = []string{"PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "HOME=/work", "BASE=1"}

// forEachKind runs f as a parallel-safe subtest per runtime, skipping (with
// the reason) runtimes this host lacks.
func forEachKind(t *testing.T, f func(t *testing.T, k Kind)) {
	t.Helper()
	for _, k := range kinds {
		t.Run(string(k), func(t *testing.T) {
			requireRuntime(t, k)
			f(t, k)
		})
	}
}

// requireRuntime skips when the runtime is missing, and fails when it is
// installed but cannot run containers (CI must not skip silently).
func requireRuntime(t *testing.T, k Kind) *Runtime {
	t.Helper()
	rt, err := Detect(context.Background(), k)
	if errors.Is(err, ErrNotFound) {
		t.Skipf("%s not installed: %v", k, err)
	}
	if err != nil {
		t.Fatalf("detect %s: %v", k, err)
	}
	return rt
}

// testPolicy is strict with a short timeout.
func testPolicy() policy.Policy {
	p := policy.Strict()
	p.Limits.Timeout = policy.Duration(10 * time.Second)
	return p
}

// newContainer creates a container and registers its destruction plus the
// leftover checks.
func newContainer(t *testing.T, k Kind, p policy.Policy) *Container {
	t.Helper()
	return newContainerSpec(t, k, &backend.Spec{Policy: p, Env: testEnv})
}

// newContainerSpec is newContainer with a full spec; the id is generated.
func newContainerSpec(t *testing.T, k Kind, spec *backend.Spec) *Container {
	t.Helper()
	d := NewDriver(backend.OCI, k)
	if k == Runsc {
		d = NewDriver(backend.GVisor, k)
	}
	spec.ID = fmt.Sprintf("%s-%d", strings.NewReplacer("/", "_").Replace(t.Name()), seq.Add(1))
	inst, err := d.Create(context.Background(), spec)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	c := inst.(*Container)
	t.Cleanup(func() {
		if err := c.Destroy(context.Background()); err != nil {
			t.Errorf("destroy: %v", err)
		}
		assertGone(t, c)
	})
	return c
}

// run executes argv and fails the test on an exec error.
func run(t *testing.T, c *Container, argv ...string) *backend.ExecOutput {
	t.Helper()
	return runReq(t, c, &backend.ExecRequest{Argv: argv, Timeout: 10 * time.Second, MaxOutput: 1 << 20})
}

func runReq(t *testing.T, c *Container, req *backend.ExecRequest) *backend.ExecOutput {
	t.Helper()
	out, err := c.Exec(context.Background(), req)
	if err != nil {
		t.Fatalf("exec %q: %v", req.Argv, err)
	}
	return out
}

// sh runs a shell command and requires exit 0.
func sh(t *testing.T, c *Container, script string) string {
	t.Helper()
	out := run(t, c, "/bin/sh", "-c", script)
	if out.Status != backend.StatusExited || out.ExitCode != 0 {
		t.Fatalf("sh -c %q: %s %d, stderr %q", script, out.Status, out.ExitCode, out.Stderr)
	}
	return string(out.Stdout)
}

// assertGone checks that nothing of a destroyed container is left: the
// runtime's record, the bundle and work directory, cgroups and mounts.
func assertGone(t *testing.T, c *Container) {
	t.Helper()
	ids, err := c.rt.List(context.Background())
	if err != nil {
		t.Errorf("list: %v", err)
	}
	for _, id := range ids {
		if id == c.id {
			t.Errorf("container %s still listed by %s", c.id, c.rt.kind)
		}
	}
	if _, err := os.Stat(c.bundle.Dir); !os.IsNotExist(err) {
		t.Errorf("bundle %s left behind (%v)", c.bundle.Dir, err)
	}
	if dirs := cgroupsNaming(c.id); len(dirs) > 0 {
		t.Errorf("cgroups of %s left behind: %v", c.id, dirs)
	}
	if pids := processesNaming(c.id); len(pids) > 0 {
		t.Errorf("processes naming %s left behind: %v", c.id, pids)
	}
	if c.reaper != nil {
		if _, err := os.Stat("/proc/" + strconv.Itoa(c.reaper.cmd.Process.Pid)); !os.IsNotExist(err) {
			t.Errorf("reaper %d of %s left behind", c.reaper.cmd.Process.Pid, c.id)
		}
	}
	if data, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(data), c.id) {
		t.Errorf("mounts of %s left behind", c.id)
	}
	if l := c.rt.launcher; l != nil {
		var data []byte
		_ = l.do(func() (err error) { data, err = os.ReadFile("/proc/thread-self/mountinfo"); return err })
		if len(data) == 0 || strings.Contains(string(data), c.id) {
			t.Errorf("mounts of %s left behind in the crun launcher's namespace (%d bytes read)", c.id, len(data))
		}
	}
}

// processesNaming lists the processes whose command line holds s (the
// runtime processes of a container hold its id).
func processesNaming(s string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline"); err == nil && strings.Contains(string(cmdline), s) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// cgroupsNaming lists the cgroup directories, in every hierarchy, whose
// name contains s.
func cgroupsNaming(s string) []string {
	v1, _ := filepath.Glob(filepath.Join(cgroupRoot, "*", cgroupParent, "*"+s+"*"))
	v2, _ := filepath.Glob(filepath.Join(cgroupRoot, cgroupParent, "*"+s+"*"))
	return append(v1, v2...)
}

// mortalOwner returns a container id owned by a process that runs until
// die is called. Containers of a fake dead owner (a pid that never runs)
// would be stale for every kavach process, and the test processes of other
// packages, running at the same time, would sweep them away mid-creation.
func mortalOwner(t *testing.T, name string) (id string, die func()) {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	start, err := processStart(cmd.Process.Pid)
	if err != nil {
		_ = cmd.Process.Kill()
		t.Fatal(err)
	}
	die = sync.OnceFunc(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	t.Cleanup(die)
	return idPrefix + strconv.Itoa(cmd.Process.Pid) + "." + strconv.FormatUint(start, 10) + "-" + name, die
}
