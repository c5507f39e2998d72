package cgroup

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// v2CoreLayout returns a layout that uses only the host's cgroup2 hierarchy
// for what every v2 cgroup has without controllers: freezing, cgroup.kill,
// CPU time and CLONE_INTO_CGROUP. On a hybrid host, where the controllers
// are on v1, this is how the v2 code paths are exercised for real.
func v2CoreLayout(t *testing.T) *layout {
	t.Helper()
	f := readHostFacts()
	mnt := parseMountinfo(f.mountinfo).v2
	if mnt == "" {
		t.Skip("no cgroup2 mount on this host")
	}
	if err := f.writable(mnt); err != nil {
		t.Skipf("cgroup2 at %s not writable: %v", mnt, err)
	}
	if !v2Has(resFreezer, nil, f.kernel) {
		t.Skipf("kernel %v predates the cgroup v2 freezer", f.kernel)
	}
	h := &hierarchy{mount: mnt, v2: true}
	l := &layout{hiers: []*hierarchy{h}}
	l.res[resCPUAcct], l.res[resFreezer] = h, h
	parent := filepath.Join(mnt, parentDir)
	_, statErr := os.Stat(parent)
	t.Cleanup(func() {
		if os.IsNotExist(statErr) {
			os.Remove(parent) // fails harmlessly if someone else uses it now
		}
	})
	return l
}

func newV2(t *testing.T) *Cgroup {
	t.Helper()
	l := v2CoreLayout(t)
	self, err := selfOwner()
	if err != nil {
		t.Fatal(err)
	}
	name := testName(t)
	c, err := create(context.Background(), l, name, self.tag()+"-"+strings.TrimPrefix(name, parentDir+"/"), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { destroyAndCheck(t, c) })
	return c
}

// With CLONE_INTO_CGROUP the child is inside the cgroup from its first
// instruction; no AddProc is needed.
func TestV2CloneIntoCgroup(t *testing.T) {
	c := newV2(t)
	fd, ok := c.FD()
	if !ok {
		t.Fatal("FD() not available on a v2-only cgroup")
	}
	cmd := exec.Command("sleep", "300")
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	b, err := os.ReadFile("/proc/" + itoa(cmd.Process.Pid) + "/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	want := "0::/" + parentDir + "/" + filepath.Base(c.dirs[0]) + "\n"
	if !strings.Contains(string(b), want) {
		t.Fatalf("/proc/pid/cgroup = %q, want line %q", b, want)
	}
	if err := c.Kill(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err == nil {
		t.Fatal("sleep not killed")
	}
}

func TestV2FreezeThaw(t *testing.T) { testFreezeThaw(t, newV2(t)) }

// cgroup.kill reaches a double-forked tree.
func TestV2Kill(t *testing.T) {
	c := newV2(t)
	startIn(t, c, `(sleep 301 &); setsid sleep 302 & exec sleep 300`)
	var before []int
	waitFor(t, 5*time.Second, "three processes", func() bool {
		before, _ = c.procs()
		return len(before) == 3
	})
	if err := c.Kill(context.Background()); err != nil {
		t.Fatal(err)
	}
	if c.noKill.Load() {
		t.Log("kernel has no cgroup.kill; used the freeze-and-kill loop")
	}
	for _, pid := range before {
		if alive(pid) {
			t.Errorf("pid %d survived Kill", pid)
		}
	}
}

func TestV2CPUTime(t *testing.T) {
	c := newV2(t)
	p := startIn(t, c, `i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done`)
	if err := p.wait(t, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	st, err := c.Stats()
	if err != nil || st.CPUTime < 10*time.Millisecond {
		t.Fatalf("Stats = %+v, %v; want CPU time of a busy loop", st, err)
	}
	if _, err := c.OOMKilled(); err == nil {
		t.Error("OOMKilled without a memory controller did not fail")
	}
}
