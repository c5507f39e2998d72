package cgroup

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestNameValidation(t *testing.T) {
	bad := []string{"", "x", "kavach", "kavach/", "kavach/..", "kavach/.", "kavach/a/b",
		"kavach/../../etc", "../kavach/x", "kavach/a b", "kavach/a\x00", "other/x",
		"kavach/" + strings.Repeat("a", maxIDLen+1)}
	for _, name := range bad {
		if _, err := New(context.Background(), name, Limits{}); !errors.Is(err, ErrInvalidName) {
			t.Errorf("New(%q) = %v, want ErrInvalidName", name, err)
		}
	}
	if _, err := parseName("kavach/sb-1.A_z"); err != nil {
		t.Errorf("valid name rejected: %v", err)
	}
}

func TestLimitValidation(t *testing.T) {
	for _, l := range []Limits{{MemoryBytes: -1}, {Pids: -1}, {CPUs: -0.5}, {CPUs: 0.0001}} {
		if _, err := New(context.Background(), "kavach/x", l); !errors.Is(err, ErrInvalidLimits) {
			t.Errorf("New(%+v) = %v, want ErrInvalidLimits", l, err)
		}
	}
	for cpus, want := range map[float64][2]int64{1: {100000, 100000}, 0.2: {20000, 100000},
		2.5: {250000, 100000}, 0.005: {5000, 1000000}} {
		q, p, err := cpuQuota(cpus)
		if err != nil || q != want[0] || p != want[1] {
			t.Errorf("cpuQuota(%v) = %d %d %v, want %v", cpus, q, p, err, want)
		}
	}
}

func TestApplied(t *testing.T) {
	s := Detect()
	c := newTest(t, Limits{MemoryBytes: 64 << 20, CPUs: 0.5, Pids: 16})
	a := c.Applied()
	if a.Memory != s.Memory || a.Pids != s.Pids || a.CPU != s.CPU || a.Freezer != s.Freezer {
		t.Fatalf("Applied %+v does not match Detect %+v", a, s)
	}
	if a.Memory && !c.isV2(resMemory) {
		if got, _ := readInt(c.resDir[resMemory], "memory.limit_in_bytes"); got != 64<<20 {
			t.Errorf("memory.limit_in_bytes = %d", got)
		}
		if a.SwapOff {
			if got, _ := readInt(c.resDir[resMemory], "memory.memsw.limit_in_bytes"); got != 64<<20 {
				t.Errorf("memory.memsw.limit_in_bytes = %d", got)
			}
		}
	}
	if a.Pids {
		if got, _ := readFile(c.resDir[resPids], "pids.max"); got != "16" {
			t.Errorf("pids.max = %q", got)
		}
	}
	if a.CPU && !c.isV2(resCPU) {
		q, _ := readInt(c.resDir[resCPU], "cpu.cfs_quota_us")
		p, _ := readInt(c.resDir[resCPU], "cpu.cfs_period_us")
		if q != 50000 || p != 100000 {
			t.Errorf("cfs quota/period = %d/%d", q, p)
		}
	}
	// No limits asked: nothing written, but the cgroup still exists.
	none := newTest(t, Limits{})
	if a := none.Applied(); a.Memory || a.Pids || a.CPU {
		t.Errorf("Applied without limits = %+v", a)
	}
}

// A process that allocates far beyond the memory limit is OOM-killed, and
// that is reported; one that stays below is not.
func TestMemoryLimitOOM(t *testing.T) {
	require(t, Detect().Memory, "memory")
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 not installed")
	}
	c := newTest(t, Limits{MemoryBytes: 32 << 20})
	small := startIn(t, c, `exec python3 -c "a=bytearray(8<<20)"`)
	if err := small.wait(t, 30*time.Second); err != nil {
		t.Fatalf("8 MiB allocation under a 32 MiB limit failed: %v: %s", err, small.stderr())
	}
	if oom, err := c.OOMKilled(); err != nil || oom {
		t.Fatalf("OOMKilled after a small allocation = %v, %v", oom, err)
	}
	big := startIn(t, c, `exec python3 -c "a=bytearray(200<<20); print('survived')"`)
	err := big.wait(t, 30*time.Second)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("200 MiB allocation: %v (stderr %q), want SIGKILL", err, big.stderr())
	}
	oom, err := c.OOMKilled()
	if err != nil || !oom {
		t.Fatalf("OOMKilled = %v, %v; want true", oom, err)
	}
	st, err := c.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.OOMKills < 1 || st.MemoryPeakBytes <= 8<<20 || st.MemoryPeakBytes > 32<<20 {
		t.Errorf("Stats = %+v, want OOMKills>=1 and 8 MiB < peak <= 32 MiB", st)
	}
}

// A shell that tries to start 20 background sleeps under a pids limit of 8
// fails to fork, and the cgroup never holds more than 8 tasks.
func TestPidsLimit(t *testing.T) {
	require(t, Detect().Pids, "pids")
	c := newTest(t, Limits{Pids: 8})
	p := startIn(t, c, `for i in $(seq 20); do sleep 30 & done; wait`)
	err := p.wait(t, 30*time.Second)
	if err == nil || !strings.Contains(strings.ToLower(p.stderr()), "fork") {
		t.Fatalf("fork loop under pids limit: err=%v stderr=%q; want a fork failure", err, p.stderr())
	}
	pids, err := c.procs()
	if err != nil {
		t.Fatal(err)
	}
	if len(pids) == 0 || len(pids) > 8 {
		t.Errorf("%d processes in the cgroup, want 1..8", len(pids))
	}
	st, err := c.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.PidsPeak > 8 {
		t.Errorf("pids peak %d exceeds the limit of 8", st.PidsPeak)
	}
	if n, err := readKey(c.resDir[resPids], "pids.events", "max"); err == nil && n == 0 {
		t.Errorf("pids.events reports no refused fork")
	}
}

// A busy loop limited to 0.2 CPUs gets roughly 0.2 s of CPU per second.
func TestCPUQuota(t *testing.T) {
	require(t, Detect().CPU, "cpu")
	c := newTest(t, Limits{CPUs: 0.2})
	startIn(t, c, `while :; do :; done`)
	time.Sleep(time.Second)
	st, err := c.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.CPUTime > 350*time.Millisecond || st.CPUTime == 0 {
		t.Fatalf("CPU time over 1s wall at 0.2 CPUs = %v, want (0, 350ms]", st.CPUTime)
	}
	// On a loaded host the loop may get less than its quota; the kernel's
	// throttling counter shows the quota itself was what held it back.
	if n, err := readKey(c.resDir[resCPU], "cpu.stat", "nr_throttled"); err != nil || n == 0 {
		t.Errorf("cpu.stat nr_throttled = %d, %v; want > 0", n, err)
	}
	t.Logf("CPU time over 1s at 0.2 CPUs: %v", st.CPUTime)
}

// While frozen, a counter loop does not advance; after thawing it does.
func TestFreezeThaw(t *testing.T) {
	require(t, Detect().Freezer, "freezer")
	testFreezeThaw(t, newTest(t, Limits{}))
}

func testFreezeThaw(t *testing.T, c *Cgroup) {
	f := filepath.Join(t.TempDir(), "n")
	startIn(t, c, `i=0; while :; do i=$((i+1)); echo $i > "$1.tmp"; mv "$1.tmp" "$1"; done`, f)
	read := func() int {
		b, _ := os.ReadFile(f)
		n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		return n
	}
	waitFor(t, 10*time.Second, "counter to start", func() bool { return read() > 0 })
	ctx := context.Background()
	if err := c.Freeze(ctx); err != nil {
		t.Fatal(err)
	}
	a := read()
	cpu1, _ := c.Stats()
	time.Sleep(200 * time.Millisecond)
	if b := read(); b != a {
		t.Fatalf("counter advanced while frozen: %d -> %d", a, b)
	}
	if cpu2, _ := c.Stats(); cpu2.CPUTime != cpu1.CPUTime {
		t.Errorf("CPU time grew while frozen: %v -> %v", cpu1.CPUTime, cpu2.CPUTime)
	}
	if err := c.Thaw(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "counter to advance after thaw", func() bool { return read() > a })
}

// Kill reaches processes that left their parent (double fork, setsid) and
// keeps up with a process that forks as fast as it can.
func TestKillTree(t *testing.T) {
	requireRoot(t)
	c := newTest(t, Limits{Pids: 64})
	p := startIn(t, c, `(sleep 301 &); setsid sleep 302 & sh -c 'sleep 303 & exec sleep 304' & `+
		`(while :; do sleep 305 & done) 2>/dev/null & exec sleep 300`)
	var before []int
	waitFor(t, 10*time.Second, "the tree to start", func() bool {
		before, _ = c.procs()
		return len(before) >= 8
	})
	if err := c.Kill(context.Background()); err != nil {
		t.Fatal(err)
	}
	if pids, err := c.procs(); err != nil || len(pids) != 0 {
		t.Fatalf("after Kill: procs %v, %v", pids, err)
	}
	for _, pid := range before {
		if alive(pid) {
			t.Errorf("pid %d survived Kill", pid)
		}
	}
	var ee *exec.ExitError
	if err := p.wait(t, 5*time.Second); !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("top process ended with %v, want SIGKILL", err)
	}
	// The cgroup stays usable after Kill.
	q := startIn(t, c, `exit 7`)
	if err := q.wait(t, 5*time.Second); !errors.As(err, &ee) || ee.ExitCode() != 7 {
		t.Errorf("process after Kill: %v, want exit 7", err)
	}
}

// Kill of a paused (frozen) sandbox still kills it and leaves it thawed.
func TestKillWhileFrozen(t *testing.T) {
	require(t, Detect().Freezer, "freezer")
	c := newTest(t, Limits{})
	p := startIn(t, c, `sleep 300 & exec sleep 300`)
	waitFor(t, 5*time.Second, "two processes", func() bool { n, _ := c.procs(); return len(n) == 2 })
	if err := c.Freeze(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := c.Kill(context.Background()); err != nil {
		t.Fatal(err)
	}
	p.wait(t, 5*time.Second)
	if pids, _ := c.procs(); len(pids) != 0 {
		t.Fatalf("procs after Kill of frozen cgroup: %v", pids)
	}
}

// Destroy kills the members, removes the directory from every hierarchy,
// is idempotent, and makes later use fail with ErrDestroyed.
func TestDestroy(t *testing.T) {
	requireRoot(t)
	c, err := New(context.Background(), testName(t), Limits{MemoryBytes: 64 << 20, Pids: 16, CPUs: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { destroyAndCheck(t, c) })
	if len(c.dirs) != len(hostLayout().hiers) {
		t.Fatalf("cgroup in %d hierarchies, layout has %d", len(c.dirs), len(hostLayout().hiers))
	}
	for _, d := range c.dirs {
		if fi, err := os.Stat(d); err != nil || !fi.IsDir() {
			t.Fatalf("%s missing after New: %v", d, err)
		}
	}
	p := startIn(t, c, `sleep 300 & exec sleep 300`)
	destroyAndCheck(t, c)
	p.wait(t, 5*time.Second)
	if err := c.Destroy(context.Background()); err != nil {
		t.Errorf("second Destroy: %v", err)
	}
	if err := c.AddProc(os.Getpid()); !errors.Is(err, ErrDestroyed) {
		t.Errorf("AddProc after Destroy = %v, want ErrDestroyed", err)
	}
	if err := c.Freeze(context.Background()); !errors.Is(err, ErrDestroyed) {
		t.Errorf("Freeze after Destroy = %v, want ErrDestroyed", err)
	}
}

// Creating the same cgroup twice fails instead of sharing it.
func TestDuplicateName(t *testing.T) {
	c := newTest(t, Limits{})
	if _, err := New(context.Background(), c.Name(), Limits{}); !errors.Is(err, os.ErrExist) {
		t.Fatalf("second New(%s) = %v, want ErrExist", c.Name(), err)
	}
	// The failed New must not have removed the first cgroup.
	for _, d := range c.dirs {
		if _, err := os.Stat(d); err != nil {
			t.Fatalf("%s gone after a failed duplicate New: %v", d, err)
		}
	}
}

func TestStatsCPUTime(t *testing.T) {
	requireRoot(t)
	if hostLayout().res[resCPUAcct] == nil {
		t.Skipf("no CPU accounting: %s", Detect().Reason)
	}
	c := newTest(t, Limits{})
	p := startIn(t, c, `i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done`)
	if err := p.wait(t, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	st, err := c.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.CPUTime < 10*time.Millisecond {
		t.Errorf("CPU time of a 200000-iteration shell loop = %v", st.CPUTime)
	}
}
