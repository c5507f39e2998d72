package runtime

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
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
