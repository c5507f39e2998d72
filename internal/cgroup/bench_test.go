package cgroup

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"
)

var strictLimits = Limits{MemoryBytes: 512 << 20, CPUs: 1, Pids: 64}

// BenchmarkNewDestroy is the cgroup cost of an empty sandbox: create in
// every hierarchy with the strict preset's limits, then destroy.
func BenchmarkNewDestroy(b *testing.B) {
	requireRoot(b)
	ctx := context.Background()
	for b.Loop() {
		c, err := New(ctx, testName(b), strictLimits)
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Destroy(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAddProc moves one process between two cgroups: the cost of
// placing a sandbox's init in its cgroup.
func BenchmarkAddProc(b *testing.B) {
	requireRoot(b)
	cg := [2]*Cgroup{newTest(b, strictLimits), newTest(b, strictLimits)}
	cmd := exec.Command("sleep", "300")
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	i := 0
	for b.Loop() {
		if err := cg[i%2].AddProc(cmd.Process.Pid); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkSandboxCycle is the whole cgroup share of one sandbox run:
// New, AddProc of a live process, the process exits, Stats, Destroy.
func BenchmarkSandboxCycle(b *testing.B) {
	requireRoot(b)
	ctx := context.Background()
	for b.Loop() {
		cmd := exec.Command("sleep", "300")
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		c, err := New(ctx, testName(b), strictLimits)
		if err == nil {
			err = c.AddProc(cmd.Process.Pid)
		}
		if err != nil {
			b.Fatal(err)
		}
		cmd.Process.Kill()
		cmd.Wait()
		if _, err := c.Stats(); err != nil {
			b.Fatal(err)
		}
		if err := c.Destroy(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFreezeThaw is one pause/resume of a cgroup holding one process.
func BenchmarkFreezeThaw(b *testing.B) {
	requireRoot(b)
	if !Detect().Freezer {
		b.Skip("no freezer")
	}
	c := newTest(b, Limits{})
	startIn(b, c, "exec sleep 300")
	ctx := context.Background()
	for b.Loop() {
		if err := c.Freeze(ctx); err != nil {
			b.Fatal(err)
		}
		if err := c.Thaw(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHierarchy breaks the cost down per hierarchy: mkdir+rmdir of an
// empty cgroup, and attaching a process (write to cgroup.procs).
func BenchmarkHierarchy(b *testing.B) {
	requireRoot(b)
	cmd := exec.Command("sleep", "300")
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	var made []string
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
		for _, d := range made {
			os.Remove(d)
		}
	}()
	pid := strconv.Itoa(cmd.Process.Pid)
	for _, h := range hostLayout().hiers {
		name := filepath.Base(h.mount)
		if err := hostLayout().ensureParent(h, false); err != nil {
			b.Fatal(err)
		}
		dir := filepath.Join(h.mount, parentDir, "bench-"+strconv.Itoa(os.Getpid()))
		b.Run("mkdir-rmdir/"+name, func(b *testing.B) {
			for b.Loop() {
				if err := os.Mkdir(dir, 0o755); err != nil {
					b.Fatal(err)
				}
				if err := os.Remove(dir); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("attach/"+name, func(b *testing.B) {
			dirs := [2]string{dir + "a", dir + "b"}
			for _, d := range dirs {
				if err := os.Mkdir(d, 0o755); err != nil {
					b.Fatal(err)
				}
				made = append(made, d)
			}
			i := 0
			for b.Loop() {
				if err := writeFile(dirs[i%2], "cgroup.procs", pid); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkAttachAfterIdle measures the first attach after the system has
// been idle for a while, as happens for an occasional sandbox: the kernel
// then has to leave the fast path of its cgroup thread-group lock.
func BenchmarkAttachAfterIdle(b *testing.B) {
	requireRoot(b)
	cg := [2]*Cgroup{newTest(b, Limits{}), newTest(b, Limits{})}
	cmd := exec.Command("sleep", "300")
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	i := 0
	for b.Loop() {
		b.StopTimer()
		time.Sleep(50 * time.Millisecond)
		b.StartTimer()
		if err := cg[i%2].AddProc(cmd.Process.Pid); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkJoinSelfAfterIdle is AttachAfterIdle done the fast way: a thread
// joins by itself (JoinSelf), as a sandbox init does.
func BenchmarkJoinSelfAfterIdle(b *testing.B) {
	requireRoot(b)
	cg := [2]*Cgroup{newTest(b, Limits{}), newTest(b, Limits{})}
	var fds [2][]int
	for i, c := range cg {
		files, err := c.SelfJoinFiles()
		if err != nil {
			b.Fatal(err)
		}
		defer func() {
			for _, f := range files {
				f.Close()
			}
		}()
		for _, f := range files {
			fds[i] = append(fds[i], int(f.Fd()))
		}
	}
	req, done, quit := make(chan int), make(chan error), make(chan struct{})
	var worker func()
	worker = func() {
		runtime.LockOSThread()
		if syscall.Gettid() == os.Getpid() { // never move the main thread
			go worker()
			<-quit
			runtime.UnlockOSThread()
			return
		}
		for i := range req {
			done <- JoinSelf(fds[i])
		}
		// Returns locked: the thread, now in a test cgroup, ends.
	}
	go worker()
	defer func() {
		close(req)
		close(quit)
		for _, c := range cg { // wait for the worker's thread to end
			waitFor(b, 5*time.Second, "worker thread exit", func() bool { ids, _ := c.procs(); return len(ids) == 0 })
		}
	}()
	i := 0
	for b.Loop() {
		b.StopTimer()
		time.Sleep(50 * time.Millisecond)
		b.StartTimer()
		req <- i % 2
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkNewDestroyAfterIdle is NewDestroy for an occasional sandbox:
// does creating or removing cgroups wait on the kernel like an attach does?
func BenchmarkNewDestroyAfterIdle(b *testing.B) {
	requireRoot(b)
	ctx := context.Background()
	for b.Loop() {
		b.StopTimer()
		time.Sleep(50 * time.Millisecond)
		b.StartTimer()
		c, err := New(ctx, testName(b), strictLimits)
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Destroy(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
