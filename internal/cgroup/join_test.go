package cgroup

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// joinHelperEnv makes the test binary act as a miniature sandbox init: join
// the cgroups through the inherited fds, then exec cat /proc/self/cgroup.
const joinHelperEnv = "KAVACH_CGROUP_TEST_JOIN_FDS"

func init() {
	if os.Getenv(joinHelperEnv) != "" {
		runtime.LockOSThread() // main goroutine stays on the main thread
	}
}

func TestMain(m *testing.M) {
	if n, err := strconv.Atoi(os.Getenv(joinHelperEnv)); err == nil {
		joinHelper(n)
	}
	os.Exit(m.Run())
}

func joinHelper(n int) {
	fds := make([]int, n)
	for i := range fds {
		fds[i] = 3 + i
	}
	if err := JoinSelf(fds); err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		os.Exit(3)
	}
	err := syscall.Exec("/bin/cat", []string{"cat", "/proc/self/cgroup"}, nil)
	os.Stderr.WriteString(err.Error() + "\n")
	os.Exit(4)
}

// runJoinHelper starts the helper with the join files of c and returns the
// /proc/self/cgroup it printed after execve.
func runJoinHelper(t *testing.T, c *Cgroup, exe string, attr *syscall.SysProcAttr) string {
	t.Helper()
	files, err := c.SelfJoinFiles()
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = []string{joinHelperEnv + "=" + strconv.Itoa(len(files))}
	cmd.ExtraFiles = files
	cmd.SysProcAttr = attr
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("join helper: %v: %s", err, stderr)
	}
	return string(out)
}

// countIn counts the /proc/pid/cgroup lines that place a task in c.
func countIn(procCgroup string, c *Cgroup) int {
	suffix := ":/" + parentDir + "/" + filepath.Base(c.dirs[0])
	n := 0
	for line := range strings.Lines(procCgroup) {
		if strings.HasSuffix(strings.TrimSpace(line), suffix) {
			n++
		}
	}
	return n
}

// The exec'd program runs in the cgroup in every hierarchy, and kavach
// itself did not move.
func TestJoinSelf(t *testing.T) {
	c := newTest(t, strictLimits)
	out := runJoinHelper(t, c, os.Args[0], nil)
	if n := countIn(out, c); n != len(c.dirs) {
		t.Fatalf("exec'd process in %d of %d hierarchies:\n%s", n, len(c.dirs), out)
	}
	self, _ := os.ReadFile("/proc/self/cgroup")
	if countIn(string(self), c) != 0 {
		t.Fatalf("the test process itself joined the cgroup:\n%s", self)
	}
}

// The same works from an init that runs as root only inside a user
// namespace (rootless sandboxes): the files carry kavach's credentials.
func TestJoinSelfUserNamespace(t *testing.T) {
	c := newTest(t, Limits{})
	attr := &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 100000, Size: 65536}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 100000, Size: 65536}},
		Credential:  &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true},
	}
	out := runJoinHelper(t, c, worldExecutableCopy(t), attr)
	if n := countIn(out, c); n != len(c.dirs) {
		t.Fatalf("exec'd process in %d of %d hierarchies:\n%s", n, len(c.dirs), out)
	}
}

// A thread of kavach that ended up in a cgroup is never signalled by Kill.
func TestKillSparesSelf(t *testing.T) {
	c := newTest(t, Limits{})
	files, err := c.SelfJoinFiles()
	if err != nil {
		t.Fatal(err)
	}
	fds := make([]int, len(files))
	for i, f := range files {
		fds[i] = int(f.Fd())
	}
	joined := make(chan error)
	release := make(chan struct{})
	var join func()
	join = func() {
		runtime.LockOSThread()
		if syscall.Gettid() == os.Getpid() {
			// The main thread never ends, so it must not join: hold it
			// here, which makes the next goroutine run on another thread.
			go join()
			<-release
			runtime.UnlockOSThread()
			return
		}
		joined <- JoinSelf(fds)
		<-release // returns still locked: the thread ends with the goroutine
	}
	go join()
	err = <-joined
	for _, f := range files {
		f.Close()
	}
	if err != nil {
		close(release)
		t.Fatal(err)
	}
	err = c.Kill(t.Context())
	close(release)
	if err == nil || !strings.Contains(err.Error(), "kavach's own process") {
		t.Fatalf("Kill with a kavach thread inside = %v, want refusal", err)
	}
	waitFor(t, 5e9, "the joined thread to exit", func() bool { ids, _ := c.procs(); return len(ids) == 0 })
}

// worldExecutableCopy copies the test binary where an unprivileged uid can
// execute it (the build directory is private to root).
func worldExecutableCopy(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "kavach-cgroup-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	b, err := os.ReadFile(os.Args[0])
	if err == nil {
		err = os.Chmod(dir, 0o755)
	}
	exe := filepath.Join(dir, "cgroup.test")
	if err == nil {
		err = os.WriteFile(exe, b, 0o755)
	}
	if err != nil {
		t.Fatal(err)
	}
	return exe
}
