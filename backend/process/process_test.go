package process

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kavach-sandbox/kavach/backend"
	"github.com/kavach-sandbox/kavach/internal/reexec"
	"github.com/kavach-sandbox/kavach/policy"
)

func TestMain(m *testing.M) {
	if reexec.Run() {
		return
	}
	code := m.Run()
	if code == 0 {
		if err := leaks(); err != nil {
			fmt.Fprintln(os.Stderr, "leak check:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// leaks reports state directories, cgroups or child processes that the
// tests left behind.
func leaks() error {
	tag := ownerTag() + "-"
	if entries, _ := os.ReadDir(stateBase()); len(entries) > 0 {
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), tag) {
				return fmt.Errorf("state directory left: %s", e.Name())
			}
		}
	}
	for _, ctrl := range []string{"memory", "pids", "freezer", "cpu", "unified"} {
		entries, _ := os.ReadDir("/sys/fs/cgroup/" + ctrl + "/kavach")
		for _, e := range entries {
			if e.IsDir() && strings.HasPrefix(e.Name(), strconv.Itoa(os.Getpid())+".") {
				return fmt.Errorf("cgroup left: %s/kavach/%s", ctrl, e.Name())
			}
		}
	}
	if kids := children(os.Getpid()); len(kids) > 0 {
		return fmt.Errorf("child processes left: %v", kids)
	}
	return nil
}

// children lists the pids whose parent is pid.
func children(pid int) []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		if len(f) > 1 && f[1] == strconv.Itoa(pid) && f[0] != "Z" {
			out = append(out, p)
		}
	}
	return out
}

func newSandbox(t *testing.T, p policy.Policy) backend.Instance {
	t.Helper()
	d := New()
	if a := d.Probe(context.Background()); !a.Available {
		t.Skipf("process backend unavailable: %s", a.Reason)
	}
	spec := &backend.Spec{ID: "t-" + strings.ReplaceAll(t.Name(), "/", "-"), Policy: p,
		Env: []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/work", "LANG=C.UTF-8"}}
	inst, err := d.Create(context.Background(), spec)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	t.Cleanup(func() {
		if err := inst.Destroy(context.Background()); err != nil {
			t.Errorf("destroy: %v", err)
		}
	})
	return inst
}

func execIn(t *testing.T, inst backend.Instance, argv ...string) *backend.ExecOutput {
	t.Helper()
	out, err := inst.Exec(context.Background(), &backend.ExecRequest{Argv: argv, Timeout: 20 * time.Second, MaxOutput: 1 << 20})
	if err != nil {
		t.Fatalf("exec %q: %v", argv, err)
	}
	return out
}

func run(t *testing.T, p policy.Policy, script string) *backend.ExecOutput {
	t.Helper()
	return execIn(t, newSandbox(t, p), "sh", "-c", script)
}

func mustExit(t *testing.T, out *backend.ExecOutput, code int) {
	t.Helper()
	if out.Status != backend.StatusExited || out.ExitCode != code {
		t.Fatalf("status %s exit %d (want exited %d); error %q\nstdout: %s\nstderr: %s",
			out.Status, out.ExitCode, code, out.Error, out.Stdout, out.Stderr)
	}
}

func TestNormalPrograms(t *testing.T) {
	inst := newSandbox(t, policy.Strict())
	cases := []struct {
		argv []string
		want string
	}{
		{[]string{"sh", "-c", "echo hello | cat"}, "hello\n"},
		{[]string{"python3", "-c", "import subprocess,socket,threading,json,ssl; print(subprocess.run(['echo','sub'],capture_output=True).stdout.decode().strip())"}, "sub\n"},
		{[]string{"perl", "-e", "my $p = fork(); if ($p == 0) { exit 7 } waitpid($p, 0); print $? >> 8, qq(\\n)"}, "7\n"},
		{[]string{"sh", "-c", "mkdir d && touch d/f && cp d/f d/g && ls d | sort | tr '\\n' ' ' && wc -c < /etc/passwd >/dev/null"}, "f g "},
		{[]string{"pwd"}, "/work\n"},
		{[]string{"id", "-u"}, strconv.Itoa(sandboxUID) + "\n"},
	}
	for _, c := range cases {
		out := execIn(t, inst, c.argv...)
		mustExit(t, out, 0)
		if string(out.Stdout) != c.want {
			t.Errorf("%q: stdout %q, want %q (stderr %q)", c.argv, out.Stdout, c.want, out.Stderr)
		}
	}
}

func TestExitCodesAndErrors(t *testing.T) {
	inst := newSandbox(t, policy.Strict())
	mustExit(t, execIn(t, inst, "sh", "-c", "exit 42"), 42)
	out := execIn(t, inst, "no-such-command")
	if out.Status != backend.StatusError || out.ExitCode != 127 {
		t.Errorf("missing command: %s %d, want error 127", out.Status, out.ExitCode)
	}
	out = execIn(t, inst, "/etc/passwd")
	if out.Status != backend.StatusError || out.ExitCode != 126 {
		t.Errorf("non-executable: %s %d, want error 126", out.Status, out.ExitCode)
	}
	out = execIn(t, inst, "sh", "-c", "kill -USR1 $$; sleep 1")
	if out.Status != backend.StatusSignaled && out.Status != backend.StatusExited {
		t.Errorf("self-signal: %s", out.Status)
	}
}

func TestStdinEnvWorkdir(t *testing.T) {
	inst := newSandbox(t, policy.Strict())
	out, err := inst.Exec(context.Background(), &backend.ExecRequest{
		Argv: []string{"sh", "-c", "cat; echo \"$FOO\"; pwd"}, Stdin: strings.NewReader("in\n"),
		Env: []string{"FOO=bar"}, Workdir: "/tmp", MaxOutput: 1024, Timeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	mustExit(t, out, 0)
	if got := string(out.Stdout); got != "in\nbar\n/tmp\n" {
		t.Fatalf("stdout %q", got)
	}
}

func TestHostEnvironmentNotInherited(t *testing.T) {
	t.Setenv("KAVACH_TEST_HOST_SECRET", "do-not-leak")
	out := run(t, policy.Strict(), "env; tr \"\\\\0\" \"\\\\n\" < /proc/self/environ")
	mustExit(t, out, 0)
	if strings.Contains(string(out.Stdout), "do-not-leak") {
		t.Fatalf("host environment visible inside: %s", out.Stdout)
	}
}

func TestWorkPersistsBetweenExecs(t *testing.T) {
	inst := newSandbox(t, policy.Strict())
	mustExit(t, execIn(t, inst, "sh", "-c", "echo kept > /work/state"), 0)
	out := execIn(t, inst, "cat", "/work/state")
	mustExit(t, out, 0)
	if string(out.Stdout) != "kept\n" {
		t.Fatalf("work dir not kept: %q", out.Stdout)
	}
}

func TestLeftoversKilledAfterExec(t *testing.T) {
	inst := newSandbox(t, policy.Strict())
	mustExit(t, execIn(t, inst, "sh", "-c", "echo tmp-state > /tmp/s; sleep 1000 >/dev/null 2>&1 &"), 0)
	out := execIn(t, inst, "sh", "-c", "cat /tmp/s; ls /proc | grep -c '^[0-9]'")
	mustExit(t, out, 0)
	if got := string(out.Stdout); got != "tmp-state\n4\n" { // init, sh, ls, grep: the sleep is gone
		t.Fatalf("stdout %q, want /tmp kept and no leftover sleep", got)
	}
}

func TestHostFilesInvisible(t *testing.T) {
	for _, dir := range []string{"/root", "/var/tmp", "/home"} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		f, err := os.CreateTemp(dir, "kavach-secret-")
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString("host secret")
		f.Close()
		t.Cleanup(func() { os.Remove(f.Name()) })
		for _, p := range []policy.Policy{policy.Minimal(), policy.Strict()} {
			out := run(t, p, "cat "+f.Name()+" || ls "+dir)
			if strings.Contains(string(out.Stdout), "host secret") || out.ExitCode == 0 {
				t.Fatalf("%s: host file %s readable: %q %q", p.Name, f.Name(), out.Stdout, out.Stderr)
			}
		}
	}
	out := run(t, policy.Strict(), "ls / | tr '\\n' ' '")
	for _, hidden := range []string{"home", "root", "run", "var", "mnt", "boot"} {
		if strings.Contains(" "+string(out.Stdout), " "+hidden+" ") {
			t.Errorf("/%s visible in sandbox root: %s", hidden, out.Stdout)
		}
	}
}

func TestReadOnlyRoot(t *testing.T) {
	inst := newSandbox(t, policy.Strict())
	for _, target := range []string{"/x", "/usr/x", "/etc/passwd", "/bin/sh"} {
		out := execIn(t, inst, "sh", "-c", "echo pwned > "+target)
		if out.ExitCode == 0 {
			t.Errorf("wrote %s on the read-only root", target)
		}
	}
	mustExit(t, execIn(t, inst, "sh", "-c", "echo ok > /tmp/x && echo ok > /work/x"), 0)
}

func TestEscapeThroughBoundDir(t *testing.T) {
	host := t.TempDir()
	if err := os.Symlink("/etc/shadow", filepath.Join(host, "link")); err != nil {
		t.Fatal(err)
	}
	os.Chmod(host, 0o755)
	p := policy.Strict()
	p.Filesystem.Mounts = []policy.Mount{{Source: host, Dest: "/data", Mode: policy.ReadOnly}}
	out := run(t, p, "cat /data/link; cat /data/../../etc/shadow; cat /work/../../../etc/shadow; ls /data/..")
	if strings.Contains(string(out.Stdout), "root:") {
		t.Fatalf("host /etc/shadow reached: %s", out.Stdout)
	}
	out = run(t, p, "echo x > /data/new")
	if out.ExitCode == 0 {
		t.Fatal("wrote into a read-only bind")
	}
}

func TestReadWriteBindSharedWithHost(t *testing.T) {
	host := t.TempDir()
	if err := os.Chmod(host, 0o777); err != nil {
		t.Fatal(err)
	}
	p := policy.Strict()
	p.Filesystem.Mounts = []policy.Mount{{Source: host, Dest: "/out", Mode: policy.ReadWrite}}
	mustExit(t, run(t, p, "echo from-sandbox > /out/result"), 0)
	b, err := os.ReadFile(filepath.Join(host, "result"))
	if err != nil || string(b) != "from-sandbox\n" {
		t.Fatalf("host sees %q, %v", b, err)
	}
}

func TestPrivilegedOperationsDenied(t *testing.T) {
	py := func(code string) string { return "python3 -c '" + code + "'" }
	sys := func(nr int, args string) string {
		return py(fmt.Sprintf("import ctypes,os,sys; l=ctypes.CDLL(None,use_errno=True); r=l.syscall(%d%s); e=ctypes.get_errno(); sys.exit(0 if r!=-1 else (77 if e==1 else 78))", nr, args))
	}
	for _, p := range []policy.Policy{policy.Basic(), policy.Strict()} {
		cases := map[string]string{
			"mount":            "mount -t tmpfs none /tmp",
			"unshare-user":     "unshare -U true",
			"ptrace-traceme":   sys(101, ",0,0,0,0"),
			"keyctl":           sys(250, ",1,0,0,0"),
			"bpf":              sys(321, ",0,0,0"),
			"io_uring_setup":   sys(425, ",1,0"),
			"perf_event_open":  sys(298, ",0,0,-1,-1,0"),
			"userfaultfd":      sys(323, ",0"),
			"setns":            sys(308, ",0,0"),
			"raw-socket":       py("import socket; socket.socket(socket.AF_INET, socket.SOCK_RAW, 1)"),
			"packet-socket":    py("import socket; socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)"),
			"mptcp-socket":     py("import socket; socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)"),
			"tiocsti":          py("import fcntl,termios,os; fd=os.open(\"/dev/tty\",os.O_RDWR) if False else 0; fcntl.ioctl(fd, termios.TIOCSTI, b\"x\")"),
			"sethostname":      "hostname pwned",
			"chroot":           py("import os; os.chroot(\"/tmp\")"),
			"setuid-root":      py("import os; os.setuid(0)"),
			"reboot":           sys(169, ",0xfee1dead,672274793,0x4321fedc,0"),
			"init_module":      sys(175, ",0,0,0"),
			"clock_settime":    "date -s @0",
			"personality-32":   sys(135, ",0x0008"),
			"read-kernel-logs": "dmesg",
		}
		inst := newSandbox(t, p)
		for name, script := range cases {
			out := execIn(t, inst, "sh", "-c", script)
			if out.ExitCode == 78 {
				t.Errorf("%s: %s failed, but not with EPERM", p.Name, name)
			}
			if out.Status == backend.StatusExited && out.ExitCode == 0 {
				t.Errorf("%s: %s succeeded; stdout %q stderr %q", p.Name, name, out.Stdout, out.Stderr)
			}
		}
	}
	if h, _ := os.Hostname(); h == "pwned" {
		t.Fatal("host hostname changed")
	}
}

func TestNoCapabilitiesNoNewPrivs(t *testing.T) {
	out := run(t, policy.Strict(), "grep -E '^(Cap|NoNewPrivs|Seccomp:)' /proc/self/status")
	mustExit(t, out, 0)
	for _, line := range strings.Split(strings.TrimSpace(string(out.Stdout)), "\n") {
		k, v, _ := strings.Cut(line, ":")
		v = strings.TrimSpace(v)
		switch {
		case strings.HasPrefix(k, "Cap") && v != "0000000000000000":
			t.Errorf("%s = %s, want no capabilities", k, v)
		case k == "NoNewPrivs" && v != "1":
			t.Errorf("no_new_privs not set")
		case k == "Seccomp" && v != "2":
			t.Errorf("seccomp mode %s, want 2 (filter)", v)
		}
	}
	out = run(t, policy.Strict(), "grep -c ' /usr .*nosuid' /proc/self/mountinfo")
	mustExit(t, out, 0)
}

func TestHostProcessesInvisibleAndUnkillable(t *testing.T) {
	sleeper := exec.Command("sleep", "60")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { sleeper.Process.Kill(); sleeper.Wait() }()
	pid := strconv.Itoa(sleeper.Process.Pid)
	out := run(t, policy.Strict(), "ls /proc | grep -c '^[0-9]'; kill -9 "+pid+"; test -e /proc/"+pid)
	if out.ExitCode == 0 {
		t.Fatalf("host pid %s visible inside", pid)
	}
	if n, _ := strconv.Atoi(strings.TrimSpace(strings.Split(string(out.Stdout), "\n")[0])); n > 4 { // the init, sh, ls and grep
		t.Errorf("sandbox sees %d processes", n)
	}
	if err := sleeper.Process.Signal(syscall0()); err != nil {
		t.Fatalf("host process was killed from inside: %v", err)
	}
}

func TestNetworkOff(t *testing.T) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("host-listener"))
			c.Close()
		}
	}()
	port := l.Addr().(*net.TCPAddr).Port
	script := fmt.Sprintf("import socket; s=socket.create_connection((\"127.0.0.1\", %d), timeout=2); print(s.recv(100))", port)
	out := execIn(t, newSandbox(t, policy.Strict()), "python3", "-c", script)
	if out.ExitCode == 0 || strings.Contains(string(out.Stdout), "host-listener") {
		t.Fatalf("reached the host's loopback listener: %q", out.Stdout)
	}
	out = execIn(t, newSandbox(t, policy.Strict()), "python3", "-c", "import socket; s=socket.socket(); s.bind((\"127.0.0.1\", 0)); s.listen(); print(\"lo ok\")")
	mustExit(t, out, 0)
}

func TestTimeoutKillsTree(t *testing.T) {
	inst := newSandbox(t, policy.Strict())
	out, err := inst.Exec(context.Background(), &backend.ExecRequest{
		Argv:    []string{"sh", "-c", "sleep 1000 & sleep 1000 & while :; do :; done"},
		Timeout: 500 * time.Millisecond, MaxOutput: 1024,
	})
	if err != nil {
		t.Fatal(err)
	}
	if out.Status != backend.StatusTimeout {
		t.Fatalf("status %s, want timeout", out.Status)
	}
	time.Sleep(100 * time.Millisecond)
	if b, _ := exec.Command("pgrep", "-f", "sleep 1000").Output(); len(b) > 0 {
		t.Fatalf("orphans survived the timeout: %s", b)
	}
}

func TestMemoryLimitOOM(t *testing.T) {
	p := policy.Strict()
	p.Limits.Memory = 64 << 20
	out := run(t, p, "python3 -c 'a = bytearray(400 << 20); print(len(a))'")
	if out.Status != backend.StatusOOM || out.ExitCode != 137 {
		t.Fatalf("status %s exit %d, want oom 137 (stderr %q)", out.Status, out.ExitCode, out.Stderr)
	}
}

func TestForkBombHeldByPidsLimit(t *testing.T) {
	p := policy.Strict()
	p.Limits.Pids = 16
	inst := newSandbox(t, p)
	out, err := inst.Exec(context.Background(), &backend.ExecRequest{
		Argv:    []string{"sh", "-c", "for i in $(seq 64); do sleep 2 & done 2>&1; echo spawned"},
		Timeout: 10 * time.Second, MaxOutput: 1 << 16,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out.Stdout)+string(out.Stderr), "fork") {
		t.Fatalf("pids limit did not stop forks: stdout %q stderr %q", out.Stdout, out.Stderr)
	}
}

func TestHugeOutputIsCapped(t *testing.T) {
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	inst := newSandbox(t, policy.Strict())
	out, err := inst.Exec(context.Background(), &backend.ExecRequest{
		Argv: []string{"head", "-c", "1000000000", "/dev/zero"}, Timeout: 60 * time.Second, MaxOutput: 1 << 20,
	})
	if err != nil {
		t.Fatal(err)
	}
	mustExit(t, out, 0)
	if len(out.Stdout) != 1<<20 || !out.StdoutTruncated || out.StderrTruncated {
		t.Fatalf("stdout %d bytes truncated=%v", len(out.Stdout), out.StdoutTruncated)
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if grown := int64(after.HeapInuse) - int64(before.HeapInuse); grown > 64<<20 {
		t.Fatalf("kavach heap grew by %d MiB for 1 GB of output", grown>>20)
	}
}

func TestPauseFreezesCounter(t *testing.T) {
	inst := newSandbox(t, policy.Strict())
	done := make(chan *backend.ExecOutput, 1)
	go func() {
		out, _ := inst.Exec(context.Background(), &backend.ExecRequest{
			Argv:    []string{"sh", "-c", "i=0; while [ $i -lt 100000000 ]; do i=$((i+1)); echo $i >> /work/n; done"},
			Timeout: 20 * time.Second, MaxOutput: 1024,
		})
		done <- out
	}()
	read := func() int64 { // the counter file only grows while the loop runs
		st, err := os.Stat(filepath.Join(inst.(*instance).workDir, "n"))
		if err != nil {
			return 0
		}
		return st.Size()
	}
	time.Sleep(300 * time.Millisecond)
	if err := inst.Pause(context.Background()); err != nil {
		t.Fatal(err)
	}
	a := read()
	time.Sleep(300 * time.Millisecond)
	b := read()
	if err := inst.Resume(context.Background()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	c := read()
	inst.Destroy(context.Background())
	out := <-done
	if a == 0 || a != b || b == c {
		t.Fatalf("counter size while paused %d → %d, after resume %d (exec: %+v)", a, b, c, out)
	}
}

func TestReadWriteBindOwnedByCaller(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("as root only: rootless payloads already write as the caller")
	}
	host := t.TempDir() // 0700, owned by root: the sandbox user could not write it without an idmap
	if err := os.WriteFile(filepath.Join(host, "in"), []byte("from-host\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := policy.Strict()
	p.Filesystem.Mounts = []policy.Mount{{Source: host, Dest: "/out", Mode: policy.ReadWrite}}
	out := run(t, p, "cat /out/in && echo from-sandbox > /out/result && stat -c %u /out/result && id -u")
	mustExit(t, out, 0)
	if got, want := string(out.Stdout), fmt.Sprintf("from-host\n%d\n%d\n", sandboxUID, sandboxUID); got != want {
		t.Fatalf("stdout %q", got)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(host, "result"), &st); err != nil || st.Uid != 0 {
		t.Fatalf("host file owner %d, %v; want the directory's owner (0)", st.Uid, err)
	}
	out = run(t, p, "ls -ln / | grep -c ' 0 0 '; echo x > /usr/x")
	if out.ExitCode == 0 {
		t.Fatal("idmapped bind leaked write access elsewhere")
	}
}

func TestInheritedDescriptorsNotPassed(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("inherited-secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	fd, err := syscall.Open(secret, syscall.O_RDONLY, 0) // no O_CLOEXEC, like an fd kavach's caller left open
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	out := run(t, policy.Minimal(), fmt.Sprintf("ls /proc/self/fd | tr '\\n' ' '; cat <&%d; cat <&3", fd))
	if strings.Contains(string(out.Stdout), "inherited-secret") {
		t.Fatalf("inherited descriptor readable inside: %q", out.Stdout)
	}
	if got := strings.Fields(string(out.Stdout)); len(got) != 4 { // 0 1 2 and ls's own directory
		t.Fatalf("descriptors inside: %q", out.Stdout)
	}
}

func TestPayloadCannotForgeResult(t *testing.T) {
	inst := newSandbox(t, policy.Strict())
	out, err := inst.Exec(context.Background(), &backend.ExecRequest{
		Argv: []string{"sh", "-c", `printf '{"started":true,"exited":true,"exit_code":0}' >&3; ` +
			`printf '{"started":false,"errno":13,"error":"AKIAIOSFODNN7EXAMPLE"}' >&3; sleep 30`},
		Timeout: time.Second, MaxOutput: 1024,
	})
	if err != nil {
		t.Fatal(err)
	}
	if out.Status != backend.StatusTimeout || strings.Contains(out.Error, "AKIA") {
		t.Fatalf("forged reply accepted: %+v", out)
	}
	mustExit(t, execIn(t, inst, "true"), 0)
}

func TestInitSurvivesSignals(t *testing.T) {
	inst := newSandbox(t, policy.Minimal())
	out := execIn(t, inst, "sh", "-c", "echo kept > /tmp/k; for s in TERM HUP INT QUIT ABRT SEGV BUS SYS TRAP USR1 USR2 PIPE ALRM; do kill -$s 1; done; sleep 0.2; echo alive")
	mustExit(t, out, 0)
	out = execIn(t, inst, "cat", "/tmp/k")
	if string(out.Stdout) != "kept\n" {
		t.Fatalf("the init was replaced (tmp lost): %q", out.Stdout)
	}
}

func TestReadOnlyBindIsRecursive(t *testing.T) {
	host := t.TempDir()
	inner := filepath.Join(host, "inner")
	if err := os.Mkdir(inner, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", inner, "tmpfs", 0, "size=1m,mode=0777"); err != nil {
		t.Skipf("cannot mount a tmpfs for the test: %v", err)
	}
	defer syscall.Unmount(inner, syscall.MNT_DETACH)
	p := policy.Basic() // no Landlock: the mount flags alone must hold
	p.Filesystem.Mounts = []policy.Mount{{Source: host, Dest: "/data", Mode: policy.ReadOnly}}
	out := run(t, p, "echo x > /data/inner/pwned; grep ' /data' /proc/self/mountinfo")
	if _, err := os.Stat(filepath.Join(inner, "pwned")); err == nil {
		t.Fatalf("wrote through a submount of a read-only bind: %s", out.Stdout)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out.Stdout)), "\n") {
		if f := strings.Fields(line); len(f) > 5 && !strings.HasPrefix(f[5], "ro,") {
			t.Errorf("mount not read-only: %s", line)
		}
	}
}

func TestNoSetIDFilesInWritableBinds(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("as root only (idmapped binds)")
	}
	host := t.TempDir() // owned by root: the bind is idmapped to the sandbox user
	for _, p := range []policy.Policy{policy.Basic(), policy.Strict()} {
		p.Filesystem.Mounts = []policy.Mount{{Source: host, Dest: "/out", Mode: policy.ReadWrite}}
		script := `cp /bin/true /out/t1; chmod 4755 /out/t1; chmod g+s /out/t1; ` +
			`python3 -c "import os; os.close(os.open('/out/t2', os.O_CREAT|os.O_WRONLY, 0o6755))"; ` +
			`python3 -c "import os; os.mknod('/out/t3', 0o104755)"; ` +
			`perl -e 'sysopen(my $f, "/out/t4", 0101, 04755) or die; chmod 02755, "/out/t1" and die "chmod worked"'; ls -l /out`
		out := run(t, p, script)
		entries, _ := os.ReadDir(host)
		for _, e := range entries {
			info, err := e.Info()
			if err == nil && info.Mode()&(os.ModeSetuid|os.ModeSetgid) != 0 {
				t.Fatalf("%s: set-id file planted on the host: %s %v\n%s%s", p.Name, e.Name(), info.Mode(), out.Stdout, out.Stderr)
			}
			os.Remove(filepath.Join(host, e.Name()))
		}
	}
	p := policy.Minimal()
	p.Filesystem.Mounts = []policy.Mount{{Source: host, Dest: "/out", Mode: policy.ReadWrite}}
	_, err := New().Create(context.Background(), &backend.Spec{ID: "t-setid-off", Policy: p})
	if !errors.Is(err, ErrSetIDUnsafe) {
		t.Fatalf("idmapped bind without seccomp: %v, want ErrSetIDUnsafe", err)
	}
}

func TestTimeoutWhilePaused(t *testing.T) {
	inst := newSandbox(t, policy.Strict())
	done := make(chan *backend.ExecOutput, 1)
	go func() {
		out, _ := inst.Exec(context.Background(), &backend.ExecRequest{Argv: []string{"sleep", "30"}, Timeout: time.Second, MaxOutput: 1024})
		done <- out
	}()
	time.Sleep(300 * time.Millisecond)
	if err := inst.Pause(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case out := <-done:
		if out == nil || out.Status != backend.StatusTimeout {
			t.Fatalf("exec: %+v", out)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("an exec that timed out while paused never returned")
	}
}

func TestUserNamespaceByChoice(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("as root only: rootless sandboxes always have a user namespace")
	}
	host := t.TempDir()
	if err := os.Chmod(host, 0o777); err != nil { // no idmapped binds in a user namespace
		t.Fatal(err)
	}
	p := policy.Strict()
	p.UserNamespace = true
	p.Filesystem.Mounts = []policy.Mount{{Source: host, Dest: "/out", Mode: policy.ReadWrite}}
	inst := newSandbox(t, p)
	out := execIn(t, inst, "sh", "-c", "cat /proc/self/uid_map | tr -s ' ' | tr '\\n' ';'; id -u; grep -E '^Cap(Eff|Bnd)' /proc/self/status; echo ok > /out/f; unshare -U true || echo no-nested")
	mustExit(t, out, 0)
	// The kernel prints each uid_map line as "%10d %10d %10d"; the script
	// squeezes runs of spaces (tr -s ' ') and joins the lines with ';'.
	uidMap := fmt.Sprintf("%10d %10d %10d\n%10d %10d %10d\n", 0, 0, 1, sandboxUID, sandboxUID, 1)
	uidMap = strings.ReplaceAll(regexp.MustCompile(` +`).ReplaceAllString(uidMap, " "), "\n", ";")
	want := fmt.Sprintf("%s%d\n", uidMap, sandboxUID) + "CapEff:\t0000000000000000\nCapBnd:\t0000000000000000\nno-nested\n"
	if got := string(out.Stdout); got != want {
		t.Fatalf("stdout %q, want %q (stderr %q)", got, want, out.Stderr)
	}
	if b, err := os.ReadFile(filepath.Join(host, "f")); err != nil || string(b) != "ok\n" {
		t.Fatalf("rw bind in a user namespace: %q %v", b, err)
	}
}

func TestStdinCopyStopsAfterExec(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	inst := newSandbox(t, policy.Strict())
	w.Write([]byte("first\n"))
	out, err := inst.Exec(context.Background(), &backend.ExecRequest{Argv: []string{"head", "-n1"}, Stdin: r, MaxOutput: 1024, Timeout: 5 * time.Second})
	if err != nil || string(out.Stdout) != "first\n" {
		t.Fatalf("exec: %+v %v", out, err)
	}
	// Nothing in kavach keeps reading the caller's file after the exec.
	w.Write([]byte("second\n"))
	buf := make([]byte, 16)
	r.SetReadDeadline(time.Now().Add(time.Second))
	if n, err := r.Read(buf); err != nil || string(buf[:n]) != "second\n" {
		t.Fatalf("caller's stdin after the exec: %q %v", buf[:n], err)
	}
}

// TestStdinSocketNotHandedOver: a socket given as stdin must not become a
// channel out of the sandbox (past the gate and the network rules).
func TestStdinSocketNotHandedOver(t *testing.T) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK, 0) // pollable, like a Go net.Conn
	if err != nil {
		t.Fatal(err)
	}
	mine, theirs := os.NewFile(uintptr(fds[0]), "mine"), os.NewFile(uintptr(fds[1]), "theirs")
	defer mine.Close()
	defer theirs.Close()
	inst := newSandbox(t, policy.Minimal())
	out, err := inst.Exec(context.Background(), &backend.ExecRequest{
		Argv:  []string{"sh", "-c", "echo exfiltrated >&0; echo x > /proc/self/fd/0; true"},
		Stdin: theirs, MaxOutput: 1024, Timeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	mine.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	buf := make([]byte, 64)
	if n, _ := mine.Read(buf); n > 0 {
		t.Fatalf("the payload wrote back through its stdin: %q (%+v)", buf[:n], out)
	}
}

// TestBindSourceSymlinkRefused: a sandbox that can write a host directory
// plants a symlink there; a later bind whose source goes through it must
// not follow it to another host directory.
func TestBindSourceSymlinkRefused(t *testing.T) {
	shared, target := t.TempDir(), t.TempDir()
	os.Chmod(shared, 0o777)
	p := policy.Strict()
	p.Filesystem.Mounts = []policy.Mount{{Source: shared, Dest: "/s", Mode: policy.ReadWrite}}
	mustExit(t, run(t, p, "ln -s "+target+" /s/out"), 0) // the sandbox plants the link (as a host path)
	p.Filesystem.Mounts = append(p.Filesystem.Mounts, policy.Mount{Source: filepath.Join(shared, "out"), Dest: "/o", Mode: policy.ReadWrite})
	_, err := New().Create(context.Background(), &backend.Spec{ID: "t-symlink-source", Policy: p})
	if !errors.Is(err, backend.ErrSymlinkSource) {
		t.Fatalf("bind through a planted symlink: %v, want ErrSymlinkSource", err)
	}
	if entries, _ := os.ReadDir(target); len(entries) != 0 {
		t.Fatalf("target written: %v", entries)
	}
}

// TestIDMapRefusesSetIDFiles: a set-uid program of the directory's owner
// inside an idmapped bind would be writable from inside (a shared-mapping
// write keeps the bit): such a bind is refused.
func TestIDMapRefusesSetIDFiles(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("as root only (idmapped binds)")
	}
	host := t.TempDir()
	prog := filepath.Join(host, "sub", "sb")
	os.MkdirAll(filepath.Dir(prog), 0o755)
	if err := os.WriteFile(prog, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(prog, os.ModeSetuid|0o755); err != nil {
		t.Fatal(err)
	}
	p := policy.Strict()
	p.Filesystem.Mounts = []policy.Mount{{Source: host, Dest: "/rw", Mode: policy.ReadWrite}}
	_, err := New().Create(context.Background(), &backend.Spec{ID: "t-setid-inside", Policy: p})
	if !errors.Is(err, ErrSetIDInside) || !strings.Contains(err.Error(), "sb") {
		t.Fatalf("idmapped bind holding a set-uid program: %v, want ErrSetIDInside", err)
	}
	os.Chmod(prog, 0o755)
	inst, err := New().Create(context.Background(), &backend.Spec{ID: "t-setid-inside-2", Policy: p})
	if err != nil {
		t.Fatalf("without the set-uid bit: %v", err)
	}
	inst.Destroy(context.Background())
}

func TestOversizedRequestKeepsTheSandbox(t *testing.T) {
	inst := newSandbox(t, policy.Strict())
	mustExit(t, execIn(t, inst, "sh", "-c", "echo kept > /tmp/k"), 0)
	for _, n := range []int{400 << 10, 2 << 20} { // above the socket buffer; above the message cap
		big := "BIG=" + strings.Repeat("x", n)
		_, err := inst.Exec(context.Background(), &backend.ExecRequest{Argv: []string{"true"}, Env: []string{big}, MaxOutput: 1024, Timeout: 5 * time.Second})
		if !errors.Is(err, ErrRequestTooLarge) {
			t.Fatalf("request of %d bytes: %v, want ErrRequestTooLarge", n, err)
		}
	}
	out := execIn(t, inst, "cat", "/tmp/k")
	if string(out.Stdout) != "kept\n" {
		t.Fatalf("the sandbox was lost: %q", out.Stdout)
	}
}

// TestQueuedExecHonoursItsContext: an exec waiting for the running one gives
// up when its own context ends, instead of waiting for the other's end.
func TestQueuedExecHonoursItsContext(t *testing.T) {
	inst := newSandbox(t, policy.Strict())
	long := make(chan error, 1)
	go func() {
		_, err := inst.Exec(context.Background(), &backend.ExecRequest{Argv: []string{"sleep", "3"}, Timeout: 10 * time.Second})
		long <- err
	}()
	time.Sleep(200 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := inst.Exec(ctx, &backend.ExecRequest{Argv: []string{"true"}, Timeout: 10 * time.Second})
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Fatalf("queued exec returned after %v with %v", time.Since(start), err)
	}
	if err := <-long; err != nil {
		t.Fatalf("running exec: %v", err)
	}
	if out := execIn(t, inst, "echo", "after"); string(out.Stdout) != "after\n" {
		t.Fatalf("exec after the queue: %+v", out)
	}
}

// TestMountPointNotFollowed: a payload that can write where a later mount
// point goes (here a directory the caller binds at /work) plants a symlink
// to a host directory there. The next sandbox built over it must neither
// create its mount point on the host, as root, nor mount there.
func TestMountPointNotFollowed(t *testing.T) {
	proj, cache, hostDir := t.TempDir(), t.TempDir(), t.TempDir()
	if err := os.Chmod(proj, 0o777); err != nil {
		t.Fatal(err)
	}
	p := policy.Strict()
	p.Filesystem.Mounts = []policy.Mount{{Source: proj, Dest: policy.WorkDir, Mode: policy.ReadWrite}}
	mustExit(t, execIn(t, newSandbox(t, p), "ln", "-s", hostDir, "/work/a"), 0)

	p.Filesystem.Mounts = append(p.Filesystem.Mounts, policy.Mount{Source: cache, Dest: "/work/a/b", Mode: policy.ReadWrite})
	d := New()
	inst, err := d.Create(context.Background(), &backend.Spec{ID: "t-mountpoint-link", Policy: p,
		Env: []string{"PATH=/usr/bin:/bin"}})
	if err == nil {
		defer inst.Destroy(context.Background())
		_, err = inst.Exec(context.Background(), &backend.ExecRequest{Argv: []string{"true"}, Timeout: 10 * time.Second})
	}
	if entries, _ := os.ReadDir(hostDir); len(entries) != 0 {
		t.Fatalf("the mount point was made on the host through the payload's symlink: %v", entries)
	}
	if !errors.Is(err, ErrMountPointLink) && (err == nil || !strings.Contains(err.Error(), "symbolic link")) {
		t.Fatalf("sandbox built over a planted symlink: %v", err)
	}
}

// TestCPUTimeBoundsTheWholeExec: cpu_time bounds an exec's processes
// together; a payload that runs one busy child after another must not get
// the limit once per child.
func TestCPUTimeBoundsTheWholeExec(t *testing.T) {
	p := policy.Strict()
	p.Limits.CPUTime = policy.Duration(time.Second)
	inst := newSandbox(t, p)
	out, err := inst.Exec(context.Background(), &backend.ExecRequest{Argv: []string{"sh", "-c",
		`for i in 1 2 3 4 5; do sh -c 'while :; do :; done'; done; echo survived`}, Timeout: 20 * time.Second, MaxOutput: 1 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if out.Status != backend.StatusSignaled || out.Signal != int(syscall.SIGXCPU) || strings.Contains(string(out.Stdout), "survived") {
		t.Fatalf("status %s signal %d stdout %q: the exec outlived its CPU budget", out.Status, out.Signal, out.Stdout)
	}
	if out.CPUTime > 2500*time.Millisecond {
		t.Fatalf("exec used %v of CPU under a 1s budget", out.CPUTime)
	}
	mustExit(t, execIn(t, inst, "true"), 0) // the next exec has a budget of its own
}

// TestReadOnlyInsideReadWrite: a read-only bind beneath a read-write one
// stays read-only whichever is listed first (applied in list order, the
// read-write parent would cover it).
func TestReadOnlyInsideReadWrite(t *testing.T) {
	proj := t.TempDir()
	guard := filepath.Join(proj, "guard")
	if err := os.MkdirAll(guard, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(guard, "file"), []byte("orig\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{proj, guard, filepath.Join(guard, "file")} {
		if err := os.Chown(f, sandboxUID, sandboxGID); err != nil {
			t.Fatal(err)
		}
	}
	p := policy.Strict()
	p.Filesystem.Mounts = []policy.Mount{
		{Source: guard, Dest: "/data/guard", Mode: policy.ReadOnly},
		{Source: proj, Dest: "/data", Mode: policy.ReadWrite},
	}
	out := execIn(t, newSandbox(t, p), "sh", "-c", "echo x > /data/new && echo PWNED > /data/guard/file")
	if b, _ := os.ReadFile(filepath.Join(guard, "file")); string(b) != "orig\n" {
		t.Fatalf("read-only bind under a read-write one was written: %q (stdout %q)", b, out.Stdout)
	}
	if _, err := os.Stat(filepath.Join(proj, "new")); err != nil {
		t.Fatalf("the read-write parent is not writable: %v (stderr %q)", err, out.Stderr)
	}
}

// TestCPUTimeOneBusyProcess: a single process that runs out of its CPU
// time is reported as killed by SIGXCPU, not SIGKILL (whose 137 reads as
// an OOM kill).
func TestCPUTimeOneBusyProcess(t *testing.T) {
	p := policy.Strict()
	p.Limits.CPUTime = policy.Duration(time.Second)
	out := execIn(t, newSandbox(t, p), "sh", "-c", "while :; do :; done")
	if out.Status != backend.StatusSignaled || out.Signal != int(syscall.SIGXCPU) {
		t.Fatalf("status %s signal %d, want signaled by SIGXCPU", out.Status, out.Signal)
	}
}

// TestMissingWorkdirNamed: a working directory that does not exist is
// reported as such (126), not as a missing command.
func TestMissingWorkdirNamed(t *testing.T) {
	inst := newSandbox(t, policy.Strict())
	out, err := inst.Exec(context.Background(), &backend.ExecRequest{Argv: []string{"sh", "-c", "exit 3"}, Workdir: "/nonexistent/x",
		Timeout: 10 * time.Second, MaxOutput: 1 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if out.Status != backend.StatusError || out.ExitCode != 126 || !strings.Contains(out.Error, "working directory /nonexistent/x") {
		t.Fatalf("status %s exit %d error %q", out.Status, out.ExitCode, out.Error)
	}
	mustExit(t, execIn(t, inst, "true"), 0)
}

// TestCPUTimeSparesTheInit: cpu_time bounds execs, not the sandbox's
// long-lived init, whose own CPU time adds up over many execs (with
// RLIMIT_CPU on it, it died after about ten thousand).
func TestCPUTimeSparesTheInit(t *testing.T) {
	p := policy.Strict()
	p.Limits.CPUTime = policy.Duration(time.Second)
	inst := newSandbox(t, p)
	if !inst.(*instance).countsCPU() {
		t.Skip("no cgroup CPU counter: RLIMIT_CPU is the only bound")
	}
	out := execIn(t, inst, "sh", "-c", "grep 'Max cpu time' /proc/1/limits")
	mustExit(t, out, 0)
	if !strings.Contains(string(out.Stdout), "unlimited") {
		t.Fatalf("the init has a CPU time limit: %q", out.Stdout)
	}
}

// TestIDMapRefusesFileCapabilities: a program with file capabilities in a
// directory that would be idmapped read-write is refused like a set-id one
// (a write through a shared mapping keeps the capabilities).
func TestIDMapRefusesFileCapabilities(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("as root only (idmapped binds)")
	}
	host := t.TempDir()
	prog := filepath.Join(host, "tool")
	if err := os.WriteFile(prog, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	// struct vfs_cap_data, revision 2: cap_setuid permitted, effective.
	capData := []byte{0x01, 0x00, 0x00, 0x02, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	if err := unix.Lsetxattr(prog, "security.capability", capData, 0); err != nil {
		t.Skipf("cannot set file capabilities here: %v", err)
	}
	p := policy.Strict()
	p.Filesystem.Mounts = []policy.Mount{{Source: host, Dest: "/rw", Mode: policy.ReadWrite}}
	_, err := New().Create(context.Background(), &backend.Spec{ID: "t-filecaps-inside", Policy: p})
	if !errors.Is(err, ErrSetIDInside) || !strings.Contains(err.Error(), "file capabilities") {
		t.Fatalf("idmapped bind holding a program with file capabilities: %v, want ErrSetIDInside", err)
	}
}
