//go:build linux

package seccomp

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The test binary doubles as a sandbox init: with childProfileEnv set it
// compiles and loads that profile on a locked thread, then either execs
// its arguments ("exec", argv...) or runs the named probes and prints one
// "name=result" line each ("probe", names...). "loadbench" prints the
// nanoseconds one Load took.
const (
	childProfileEnv = "KAVACH_SECCOMP_CHILD"
	childCustomEnv  = "KAVACH_SECCOMP_CUSTOM"
)

func TestMain(m *testing.M) {
	if p := os.Getenv(childProfileEnv); p != "" {
		if err := childMain(Profile(p), os.Args[1:]); err != nil {
			fmt.Fprintln(os.Stderr, "seccomp child:", err)
			os.Exit(111)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func childMain(p Profile, args []string) error {
	runtime.LockOSThread()
	var custom []string
	if c := os.Getenv(childCustomEnv); c != "" {
		custom = strings.Split(c, ",")
	}
	prog, err := Compile(p, custom)
	if err != nil {
		return err
	}
	start := time.Now()
	if err := prog.Load(); err != nil {
		return err
	}
	loadTime := time.Since(start)
	switch args[0] {
	case "exec":
		return syscall.Exec(args[1], args[1:], childEnv())
	case "probe":
		for _, name := range args[1:] {
			fmt.Printf("%s=%s\n", name, probes[name]())
		}
	case "loadbench":
		fmt.Println(loadTime.Nanoseconds())
	}
	return nil
}

func childEnv() []string {
	return []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/tmp", "LANG=C.UTF-8"}
}

// result formats a raw syscall outcome: "ok" or the errno's name.
func result(r uintptr, errno syscall.Errno) string {
	if errno != 0 {
		return unix.ErrnoName(errno)
	}
	return "ok"
}

func raw(nr uintptr, args ...uintptr) string {
	var a [6]uintptr
	copy(a[:], args)
	r, _, errno := syscall.RawSyscall6(nr, a[0], a[1], a[2], a[3], a[4], a[5])
	return result(r, errno)
}

// rawSocket creates and closes a socket.
func rawSocket(family, typ, proto uint64) string {
	fd, _, errno := syscall.RawSyscall(unix.SYS_SOCKET, uintptr(family), uintptr(typ), uintptr(proto))
	if errno == 0 {
		unix.Close(int(fd))
	}
	return result(fd, errno)
}

// str returns a pointer to a NUL-terminated copy of s. The copies are kept
// reachable for the life of the child.
func str(s string) uintptr {
	b := append([]byte(s), 0)
	keep = append(keep, b)
	return uintptr(unsafe.Pointer(&b[0]))
}

var keep [][]byte

// pipeFD is a file descriptor that is not a terminal.
func pipeFD() uintptr {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		panic(err)
	}
	return uintptr(p[0])
}

// probes are raw syscalls whose unfiltered outcome is harmless and differs
// from the filtered one (TestProbesUnfiltered checks the latter).
// rlimitSink receives the limits the prlimit probes read.
var rlimitSink unix.Rlimit

var probes = map[string]func() string{
	"ptrace_peek":     func() string { return raw(unix.SYS_PTRACE, unix.PTRACE_PEEKDATA, 0x7fffffff, 0, 0) },
	"mount":           func() string { return raw(unix.SYS_MOUNT, str("none"), str("/nonexistent/kavach"), str("tmpfs"), 0, 0) },
	"umount2":         func() string { return raw(unix.SYS_UMOUNT2, str("/nonexistent/kavach"), 0) },
	"chroot":          func() string { return raw(unix.SYS_CHROOT, str("/nonexistent/kavach")) },
	"unshare_user":    func() string { return raw(unix.SYS_UNSHARE, unix.CLONE_NEWUSER) },
	"setns":           func() string { return raw(unix.SYS_SETNS, ^uintptr(0), unix.CLONE_NEWNET) },
	"socket_packet":   func() string { return rawSocket(unix.AF_PACKET, unix.SOCK_RAW, 0) },
	"socket_packet_h": func() string { return rawSocket(hi|unix.AF_PACKET, unix.SOCK_DGRAM, 0) },
	"socket_raw":      func() string { return rawSocket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMP) },
	"socket_raw6_nb":  func() string { return rawSocket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_NONBLOCK, unix.IPPROTO_ICMPV6) },
	"socket_nl_audit": func() string { return rawSocket(unix.AF_NETLINK, unix.SOCK_DGRAM, netlinkAudit) },
	"socket_uevent":   func() string { return rawSocket(unix.AF_NETLINK, unix.SOCK_DGRAM, netlinkUevent) },
	"prlimit_self": func() string {
		return raw(unix.SYS_PRLIMIT64, 0, unix.RLIMIT_NOFILE, 0, uintptr(unsafe.Pointer(&rlimitSink)))
	},
	"prlimit_parent": func() string {
		return raw(unix.SYS_PRLIMIT64, uintptr(os.Getppid()), unix.RLIMIT_NOFILE, 0, uintptr(unsafe.Pointer(&rlimitSink)))
	},
	"socket_vsock":    func() string { return rawSocket(unix.AF_VSOCK, unix.SOCK_STREAM, 0) },
	"socket_mptcp":    func() string { return rawSocket(unix.AF_INET, unix.SOCK_STREAM, ipprotoMPTCP) },
	"socket_mptcp_h":  func() string { return rawSocket(unix.AF_INET, unix.SOCK_STREAM, hi|ipprotoMPTCP) },
	"socket_tcp":      func() string { return rawSocket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0) },
	"socket_unix":     func() string { return rawSocket(unix.AF_UNIX, unix.SOCK_DGRAM, 0) },
	"keyctl":          func() string { return raw(unix.SYS_KEYCTL, unix.KEYCTL_GET_KEYRING_ID, uintptr(^uint32(2)), 0) },
	"bpf":             func() string { return raw(unix.SYS_BPF, unix.BPF_MAP_CREATE, 0, 0) },
	"io_uring_setup":  func() string { return raw(unix.SYS_IO_URING_SETUP, 1, 0) },
	"perf_event_open": func() string { return raw(unix.SYS_PERF_EVENT_OPEN, 0, 0, ^uintptr(0), ^uintptr(0), 0) },
	"userfaultfd":     func() string { return closeOK(unix.SYS_USERFAULTFD, unix.O_CLOEXEC) },
	"sethostname":     func() string { return raw(unix.SYS_SETHOSTNAME, str("x"), 1000) },
	"finit_module":    func() string { return raw(unix.SYS_FINIT_MODULE, ^uintptr(0), str(""), 0) },
	"ioctl_tiocsti":   func() string { return raw(unix.SYS_IOCTL, pipeFD(), unix.TIOCSTI, str("x")) },
	"ioctl_tiocsti_h": func() string { return raw(unix.SYS_IOCTL, pipeFD(), uintptr(hi|unix.TIOCSTI), str("x")) },
	"ioctl_tioclinux": func() string { return raw(unix.SYS_IOCTL, pipeFD(), tiocLinux, str("x")) },
	"ioctl_tcgets": func() string {
		var t unix.Termios
		return raw(unix.SYS_IOCTL, pipeFD(), unix.TCGETS, uintptr(unsafe.Pointer(&t)))
	},
	"persona_linux32": func() string { return raw(unix.SYS_PERSONALITY, perLinux32) },
	"persona_rie":     func() string { return raw(unix.SYS_PERSONALITY, readImpliesExec) },
	"persona_query":   func() string { return raw(unix.SYS_PERSONALITY, 0xffffffff) },
	"persona_linux":   func() string { return raw(unix.SYS_PERSONALITY, 0) },
	"clone3":          func() string { return raw(unix.SYS_CLONE3, 0, 0) },
	// Invalid flag combinations: the kernel rejects them with EINVAL
	// before creating anything, the filter with EPERM before that.
	"clone_newuser": func() string { return raw(unix.SYS_CLONE, unix.CLONE_NEWUSER|unix.CLONE_FS) },
	"clone_newnet":  func() string { return raw(unix.SYS_CLONE, unix.CLONE_NEWNET|unix.CLONE_THREAD) },
	// Not in the unfiltered control: success would leave the child traced.
	"ptrace_traceme": func() string { return raw(unix.SYS_PTRACE, unix.PTRACE_TRACEME) },
	// An x32 syscall number: the filter kills the process.
	"x32_getpid": func() string { return raw(x32SyscallBit | unix.SYS_GETPID) },
}

// closeOK runs a syscall that returns a descriptor and closes it.
func closeOK(nr uintptr, arg uintptr) string {
	fd, _, errno := syscall.RawSyscall(nr, arg, 0, 0)
	if errno == 0 {
		unix.Close(int(fd))
	}
	return result(fd, errno)
}

// filteredProbes lists what every filtering profile must return.
var filteredProbes = map[string]string{
	"ptrace_peek": "EPERM", "mount": "EPERM", "umount2": "EPERM", "chroot": "EPERM",
	"unshare_user": "EPERM", "setns": "EPERM", "socket_packet": "EPERM",
	"socket_packet_h": "EPERM", "socket_raw": "EPERM", "socket_raw6_nb": "EPERM",
	"socket_nl_audit": "EPERM", "socket_mptcp": "EPERM", "socket_mptcp_h": "EPERM",
	"socket_tcp": "ok", "socket_unix": "ok", "keyctl": "EPERM", "bpf": "EPERM",
	"io_uring_setup": "EPERM", "perf_event_open": "EPERM", "userfaultfd": "EPERM",
	"sethostname": "EPERM", "finit_module": "EPERM", "ioctl_tiocsti": "EPERM",
	"ioctl_tiocsti_h": "EPERM", "ioctl_tioclinux": "EPERM", "ioctl_tcgets": "ENOTTY",
	"persona_linux32": "EPERM", "persona_rie": "EPERM", "persona_query": "ok",
	"persona_linux": "ok", "clone3": "ENOSYS", "clone_newuser": "EPERM",
	"clone_newnet": "EPERM", "socket_uevent": "EPERM", "socket_vsock": "EPERM",
	"prlimit_self": "ok", "prlimit_parent": "EPERM",
}

// runChild runs the test binary as a seccomp child.
func runChild(t testing.TB, p Profile, custom string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(childEnv(), childProfileEnv+"="+string(p), childCustomEnv+"="+custom)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return out.String(), errb.String(), err
}

func probeResults(t *testing.T, p Profile) map[string]string {
	t.Helper()
	args := []string{"probe"}
	for name := range filteredProbes {
		args = append(args, name)
	}
	out, errOut, err := runChild(t, p, "", args...)
	if err != nil {
		t.Fatalf("%s probes: %v\n%s", p, err, errOut)
	}
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		name, res, _ := strings.Cut(line, "=")
		got[name] = res
	}
	return got
}

func TestProbesFiltered(t *testing.T) {
	for _, p := range []Profile{ProfileBasic, ProfileStrict} {
		got := probeResults(t, p)
		for name, want := range filteredProbes {
			if got[name] != want {
				t.Errorf("%s %s: got %s, want %s", p, name, got[name], want)
			}
		}
	}
}

// TestProbesUnfiltered is the control: without a filter every denied probe
// gets another answer, so the filtered answers above come from the filter.
func TestProbesUnfiltered(t *testing.T) {
	got := probeResults(t, ProfileOff)
	for name, want := range filteredProbes {
		if want != "ok" && want != "ENOTTY" && got[name] == want {
			t.Errorf("unfiltered %s also returns %s", name, want)
		}
	}
}

// TestPtraceTracemeDenied checks PTRACE_TRACEME, which has no unfiltered
// control run.
func TestPtraceTracemeDenied(t *testing.T) {
	for _, p := range []Profile{ProfileBasic, ProfileStrict} {
		out, errOut, err := runChild(t, p, "", "probe", "ptrace_traceme")
		if err != nil || strings.TrimSpace(out) != "ptrace_traceme=EPERM" {
			t.Errorf("%s: %q %v %s", p, out, err, errOut)
		}
	}
}

func TestX32EntryKills(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("x32 is an x86_64 ABI")
	}
	for _, p := range []Profile{ProfileBasic, ProfileStrict} {
		_, _, err := runChild(t, p, "", "probe", "x32_getpid")
		expectSignal(t, string(p)+" x32", err, syscall.SIGSYS)
	}
	out, _, err := runChild(t, ProfileOff, "", "probe", "x32_getpid")
	if err != nil || !strings.HasPrefix(out, "x32_getpid=") {
		t.Errorf("unfiltered x32 probe: %q %v", out, err)
	}
}

func TestInt80EntryKills(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("int 0x80 is an x86 entry point")
	}
	bin := buildTestProgram(t, "int80")
	out, _, err := runChild(t, ProfileOff, "", "exec", bin)
	if err != nil || !strings.HasPrefix(out, "int80 getpid=") || strings.Contains(out, "=-") {
		t.Skipf("kernel without 32-bit entry (control run: %q %v)", out, err)
	}
	for _, p := range []Profile{ProfileBasic, ProfileStrict} {
		out, _, err := runChild(t, p, "", "exec", bin)
		expectSignal(t, string(p)+" int80: "+out, err, syscall.SIGSYS)
	}
}

func expectSignal(t *testing.T, what string, err error, sig syscall.Signal) {
	t.Helper()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Errorf("%s: got %v, want death by %v", what, err, sig)
		return
	}
	ws := ee.Sys().(syscall.WaitStatus)
	if !ws.Signaled() || ws.Signal() != sig {
		t.Errorf("%s: got %v, want death by %v", what, ee, sig)
	}
}

// buildTestProgram builds testdata/<name> into a temporary directory.
func buildTestProgram(t *testing.T, name string) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(t.TempDir(), name)
	cmd := exec.Command(goBin, "build", "-o", bin, "./testdata/"+name)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", name, err, out)
	}
	return bin
}

// TestProgramsRun runs ordinary programs under each filtering profile.
func TestProgramsRun(t *testing.T) {
	work := t.TempDir()
	goBin := buildTestProgram(t, "gobin")
	coreutils := `cd "$1" && mkdir d && echo b > d/f && echo a >> d/f && cp d/f d/g && mv d/g d/h &&
ln -s f d/l && chmod 600 d/f && touch d/t && stat d/f >/dev/null && sort d/f | head -1 &&
tail -1 d/f && wc -l < d/f && id -u >/dev/null && env >/dev/null && date >/dev/null &&
cat d/l >/dev/null && rm d/h && ls d | tr '\n' ' '`
	tools := `cd "$1" && find . -name f | grep -c f && echo abc | sed s/b/x/ && echo 1 2 | awk '{print $1+$2}' &&
tar czf a.tgz d && gzip -t a.tgz && tar tzf a.tgz | grep -c d/`
	python := `import subprocess, socket, threading, json, ssl, multiprocessing
subprocess.run(["/bin/true"], check=True)
box = []
th = threading.Thread(target=lambda: box.append(json.dumps({"k": 1})))
th.start(); th.join()
a, b = socket.socketpair(); a.sendall(b"hi"); got = b.recv(2)
ssl.create_default_context()
r, w = multiprocessing.Pipe(duplex=False)
p = multiprocessing.Process(target=w.send, args=(42,)); p.start(); p.join()
print("py-ok", box[0], got.decode(), r.recv(), p.exitcode)`
	perl := `my $p = fork(); if ($p == 0) { exit 7 } waitpid($p, 0); print "perl-ok ", $? >> 8, "\n"`
	cases := []struct {
		name string
		argv []string
		want string
	}{
		{"sh", []string{"/bin/sh", "-c", "echo hi | cat; ls / >/dev/null; date +%Y >/dev/null && echo done"}, "hi\ndone\n"},
		{"bash", []string{"/bin/bash", "-c", "x=$(echo hi | cat); echo ${x}-$((6*7))"}, "hi-42\n"},
		{"coreutils", []string{"/bin/sh", "-c", coreutils, "sh", filepath.Join(work, "c")}, "a\na\n2\nf l t "},
		{"tools", []string{"/bin/sh", "-c", tools, "sh", filepath.Join(work, "t")}, "1\naxc\n3\n2\n"},
		{"python3", []string{"/usr/bin/python3", "-c", python}, `py-ok {"k": 1} hi 42 0` + "\n"},
		{"perl", []string{"/usr/bin/perl", "-e", perl}, "perl-ok 7\n"},
		{"go", []string{goBin}, "go-ok ping sum=4999950000 mptcp=false\n"},
	}
	for _, p := range []Profile{ProfileStrict, ProfileBasic} {
		for _, tc := range cases {
			for _, dir := range []string{"c", "t"} {
				os.RemoveAll(filepath.Join(work, dir))
				os.MkdirAll(filepath.Join(work, dir, "d"), 0o755)
				os.WriteFile(filepath.Join(work, dir, "d", "f"), []byte("x\n"), 0o644)
			}
			os.RemoveAll(filepath.Join(work, "c", "d"))
			out, errOut, err := runChild(t, p, "", append([]string{"exec"}, tc.argv...)...)
			if err != nil || out != tc.want {
				t.Errorf("%s %s: err %v\nstdout %q\nwant   %q\nstderr %s", p, tc.name, err, out, tc.want, errOut)
			}
		}
	}
}

// TestCustomProfileRuns runs a program under a caller's allow-list and
// checks that a syscall outside the list is denied.
func TestCustomProfileRuns(t *testing.T) {
	out, errOut, err := runChild(t, ProfileStrict, "", "probe", "socket_tcp")
	if err != nil || out != "socket_tcp=ok\n" {
		t.Fatalf("strict socket: %q %v %s", out, err, errOut)
	}
	custom := strings.Join(append(slicesWithout(strictAllowNames, "socket"), "ioctl", "clone", "personality", "open", "openat", "creat", "chmod", "fchmod", "fchmodat"), ",")
	out, errOut, err = runChild(t, ProfileCustom, custom, "probe", "socket_tcp", "ioctl_tiocsti", "ioctl_tcgets", "clone3")
	want := "socket_tcp=EPERM\nioctl_tiocsti=EPERM\nioctl_tcgets=ENOTTY\nclone3=ENOSYS\n"
	if err != nil || out != want {
		t.Errorf("custom: %q %v %s", out, err, errOut)
	}
	out, errOut, err = runChild(t, ProfileCustom, custom, "exec", "/bin/sh", "-c", "echo custom | cat")
	if err != nil || out != "custom\n" {
		t.Errorf("custom sh: %q %v %s", out, err, errOut)
	}
}

func slicesWithout(list []string, drop string) []string {
	var out []string
	for _, s := range list {
		if s != drop {
			out = append(out, s)
		}
	}
	return out
}
