package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kavach-sandbox/kavach/backend"
)

// ppid returns the parent of pid, or 0 when pid does not exist.
func ppid(t *testing.T, pid int) int {
	t.Helper()
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// pid (comm) state ppid ...: comm may hold spaces, so cut after ')'.
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	n, _ := strconv.Atoi(f[1])
	return n
}

// TestGVisorSandboxReaped: the gVisor sandbox process is adopted by the
// container's reaper, not left to the host's PID 1, and both are gone,
// zombies included, once the container is destroyed.
func TestGVisorSandboxReaped(t *testing.T) {
	requireRuntime(t, Runsc)
	c := newContainer(t, Runsc, testPolicy())
	if c.reaper == nil {
		t.Fatal("runsc container without a reaper")
	}
	reaperPid := c.reaper.cmd.Process.Pid
	if got := ppid(t, c.init); got != reaperPid {
		t.Fatalf("sandbox %d has parent %d, want the reaper %d", c.init, got, reaperPid)
	}
	if err := c.Destroy(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, pid := range []int{c.init, reaperPid} {
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); !os.IsNotExist(err) {
			t.Errorf("process %d left behind after destroy", pid)
		}
	}
}

// TestCrunRuncHaveNoReaper: only runsc waits for its sandbox to be reaped.
func TestCrunRuncHaveNoReaper(t *testing.T) {
	for _, k := range []Kind{Crun, Runc} {
		t.Run(string(k), func(t *testing.T) {
			requireRuntime(t, k)
			if c := newContainer(t, k, testPolicy()); c.reaper != nil {
				t.Errorf("%s container has a reaper", k)
			}
		})
	}
}

// TestReaperRunsBeforeMain: the reaper is this package's init, so a program
// that never dispatches re-exec entry points (no kavach.Init) still acts as
// a reaper when started as one, instead of running its main again (which
// would create another sandbox, and another reaper, and so on).
func TestReaperRunsBeforeMain(t *testing.T) {
	bin := buildNoInit(t)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	cmd := exec.Command(bin, "/bin/sh", "-c", "exit 0")
	cmd.Args[0] = reaperName
	cmd.ExtraFiles = []*os.File{pw}
	out, err := cmd.Output()
	pw.Close()
	status, _ := io.ReadAll(pr)
	if err != nil || string(status) != "0" || len(out) != 0 {
		t.Fatalf("started as a reaper: %v, status %q, stdout %q", err, status, out)
	}
}

// TestReaperStatusPipeNotInherited: the command does not inherit the
// reaper's status pipe (it would keep kavach waiting on whatever the command
// leaves behind), and its exit status is reported.
func TestReaperStatusPipeNotInherited(t *testing.T) {
	ctx := context.Background()
	rp, err := (&Runtime{}).runReaped(ctx, exec.Command("/bin/sh", "-c", "test ! -e /proc/$$/fd/3"))
	if err != nil {
		t.Fatalf("the command sees fd 3: %v", err)
	}
	rp.wait(reaperWait)
	rp, err = (&Runtime{}).runReaped(ctx, exec.Command("/bin/sh", "-c", "exit 7"))
	if err == nil || !strings.Contains(err.Error(), "exit status 7") {
		t.Fatalf("exit 7 reported as %v", err)
	}
	rp.wait(reaperWait)
}

// TestReaperSurvivesCancel: when the caller's context ends while the
// command runs, the command is killed but the reaper stays to reap what it
// left behind (here a grandchild), then exits by itself.
func TestReaperSurvivesCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	marker := filepath.Join(t.TempDir(), "started")
	cmd := exec.Command("/bin/sh", "-c", "setsid sleep 0.5 & touch "+marker+"; exec sleep 30")
	go func() {
		for {
			if _, err := os.Stat(marker); err == nil {
				cancel()
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	rp, err := (&Runtime{}).runReaped(ctx, cmd)
	if !errors.Is(err, context.Canceled) || rp == nil {
		t.Fatalf("cancelled run: %v", err)
	}
	select {
	case <-rp.done:
		t.Fatal("the reaper was killed with its command")
	default:
	}
	select { // it exits once the orphaned sleep has ended and been reaped
	case <-rp.done:
	case <-time.After(reaperWait):
		t.Fatal("the reaper did not exit after its last child")
	}
}

// TestReaperNeedsItsStatusPipe: argv[0] alone does not make a program a
// reaper; without the status pipe on fd 3 it runs its own main.
func TestReaperNeedsItsStatusPipe(t *testing.T) {
	bin := buildNoInit(t)
	f, err := os.Create(filepath.Join(t.TempDir(), "not-a-pipe"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, extra := range [][]*os.File{nil, {f}} {
		cmd := exec.Command(bin, "/bin/sh", "-c", "echo ran-as-reaper")
		cmd.Args[0] = reaperName
		cmd.ExtraFiles = extra
		out, _ := cmd.Output()
		if string(out) != "main ran\n" {
			t.Errorf("fd 3 %v: stdout %q, want the program's own main", extra, out)
		}
	}
}

// TestCancelledCreateLeavesNothing: a create whose context ends while
// runsc starts the sandbox leaves no container, process or cgroup behind,
// whatever point the runtime had reached.
func TestCancelledCreateLeavesNothing(t *testing.T) {
	requireRuntime(t, Runsc)
	d := NewDriver(backend.GVisor, Runsc)
	for _, deadline := range []time.Duration{30 * time.Millisecond, 90 * time.Millisecond, 150 * time.Millisecond} {
		name := fmt.Sprintf("cancelled-%d", deadline.Milliseconds())
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		inst, err := d.Create(ctx, &backend.Spec{ID: name, Policy: testPolicy(), Env: testEnv})
		cancel()
		if err == nil {
			_ = inst.Destroy(context.Background())
		}
		if dirs := cgroupsNaming(name); len(dirs) > 0 {
			t.Errorf("deadline %v: cgroups left behind: %v", deadline, dirs)
		}
		if pids := processesNaming(name); len(pids) > 0 {
			t.Errorf("deadline %v: processes left behind: %v", deadline, pids)
		}
	}
}

// buildNoInit builds testdata/noinit, a program that links the runtime but
// never calls kavach.Init.
func buildNoInit(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "noinit")
	if out, err := exec.Command("go", "build", "-o", bin, "./testdata/noinit").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}
