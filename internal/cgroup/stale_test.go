package cgroup

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// ownedBy creates a cgroup as if the process o had created it.
func ownedBy(t *testing.T, o owner) *Cgroup {
	t.Helper()
	name := testName(t)
	id := strings.TrimPrefix(name, parentDir+"/")
	c, err := create(context.Background(), hostLayout(), name, o.tag()+"-"+id, Limits{Pids: 16})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { destroyAndCheck(t, c) })
	return c
}

// sleeper starts a sleep outside any test cgroup and returns it as an owner.
func sleeper(t *testing.T) (*exec.Cmd, owner) {
	t.Helper()
	cmd := exec.Command("sleep", "300")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	start, err := processStart(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	return cmd, owner{pid: cmd.Process.Pid, start: start}
}

func exists(dirs []string) (n int) {
	for _, d := range dirs {
		if _, err := os.Stat(d); err == nil {
			n++
		}
	}
	return n
}

// CleanupStale removes (and empties) the cgroups of a dead owner, including
// one whose pid now belongs to another process, and keeps those of live
// owners and directories kavach did not name.
func TestCleanupStale(t *testing.T) {
	requireRoot(t)
	// The owner dies only once its cgroup holds the victim: the sweep of a
	// kavach running at the same time (another package's tests) would
	// otherwise remove the cgroup before the victim is put in.
	deadCmd, dead := sleeper(t)
	stale := ownedBy(t, dead)
	victim := startIn(t, stale, `exec sleep 300`)
	deadCmd.Process.Kill()
	deadCmd.Wait()

	_, live := sleeper(t)
	reused := owner{pid: live.pid, start: live.start + 1} // same pid, other process

	staleReused := ownedBy(t, reused)
	kept := ownedBy(t, live)
	mine := newTest(t, Limits{})

	foreign := filepath.Join(hostLayout().hiers[0].mount, parentDir, "not-kavach-named")
	if err := os.Mkdir(foreign, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(foreign) })

	removed, err := CleanupStale(context.Background())
	if err != nil {
		t.Fatalf("CleanupStale: %v", err)
	}
	// Another kavach cleaning up at the same time may have taken some, so
	// the count is only logged; the directories below are what matters.
	t.Logf("CleanupStale removed %d", removed)
	for _, c := range []*Cgroup{stale, staleReused} {
		if n := exists(c.dirs); n != 0 {
			t.Errorf("%d directories of stale %s remain", n, c.dirs[0])
		}
	}
	for _, c := range []*Cgroup{kept, mine} {
		if n := exists(c.dirs); n != len(c.dirs) {
			t.Errorf("cgroup %s of a live owner lost directories: %d of %d remain", c.dirs[0], n, len(c.dirs))
		}
	}
	if _, err := os.Stat(foreign); err != nil {
		t.Errorf("directory not named by kavach was touched: %v", err)
	}
	if err := victim.wait(t, 5*time.Second); err == nil {
		t.Errorf("process in a stale cgroup exited cleanly, want killed")
	}
}

func TestParseOwner(t *testing.T) {
	good := map[string]owner{"12.345-sb": {12, 345}, "1.0-a-b.c": {1, 0}}
	for s, want := range good {
		if o, ok := parseOwner(s); !ok || o != want {
			t.Errorf("parseOwner(%q) = %v, %v; want %v", s, o, ok, want)
		}
	}
	for _, s := range []string{"sb", "12-sb", "x.1-sb", "1.x-sb", "0.1-sb", "-1.1-sb", "1.1-", "1.1-..", "1.1-a b"} {
		if o, ok := parseOwner(s); ok {
			t.Errorf("parseOwner(%q) = %v, want rejection", s, o)
		}
	}
	self, err := selfOwner()
	if err != nil || !self.alive() {
		t.Fatalf("selfOwner = %v, %v; alive=%v", self, err, self.alive())
	}
	if (owner{pid: self.pid, start: self.start + 1}).alive() {
		t.Error("owner with our pid but another start time counted as alive")
	}
}

// A stale cgroup that is already gone from some hierarchies (a crash in
// the middle of Destroy) is still cleaned up.
func TestCleanupStalePartial(t *testing.T) {
	requireRoot(t)
	if len(hostLayout().hiers) < 2 {
		t.Skip("single hierarchy: no partial state possible")
	}
	deadCmd, dead := sleeper(t)
	deadCmd.Process.Kill()
	deadCmd.Wait()
	c := ownedBy(t, dead)
	if err := os.Remove(c.dirs[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := CleanupStale(context.Background()); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("CleanupStale: %v", err)
	}
	if n := exists(c.dirs); n != 0 {
		t.Errorf("%d directories of a partially removed stale cgroup remain", n)
	}
}
