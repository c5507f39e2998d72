package runtime

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kavach-sandbox/kavach/backend"
	"github.com/kavach-sandbox/kavach/internal/workfs"
	"github.com/kavach-sandbox/kavach/policy"
	"github.com/kavach-sandbox/kavach/score"
)

func TestResults(t *testing.T) {
	forEachKind(t, func(t *testing.T, k Kind) {
		c := newContainer(t, k, testPolicy())
		cases := []struct {
			argv   []string
			status backend.Status
			code   int
			signal int
			errMsg string
		}{
			{[]string{"true"}, backend.StatusExited, 0, 0, ""},
			{[]string{"sh", "-c", "exit 3"}, backend.StatusExited, 3, 0, ""},
			{[]string{"sh", "-c", "kill -9 $$"}, backend.StatusSignaled, 137, 9, ""},
			{[]string{"kavach-no-such-command"}, backend.StatusError, 127, 0, "command not found: kavach-no-such-command"},
			{[]string{"/etc/passwd"}, backend.StatusError, 126, 0, "permission denied: /etc/passwd"},
		}
		for _, tc := range cases {
			out := run(t, c, tc.argv...)
			if out.Status != tc.status || out.ExitCode != tc.code || out.Signal != tc.signal || out.Error != tc.errMsg {
				t.Errorf("%q: got %s code %d signal %d error %q, want %s %d %d %q (stderr %q)", tc.argv,
					out.Status, out.ExitCode, out.Signal, out.Error, tc.status, tc.code, tc.signal, tc.errMsg, out.Stderr)
			}
		}
	})
}

func TestStreamsStdinEnvWorkdir(t *testing.T) {
	forEachKind(t, func(t *testing.T, k Kind) {
		t.Setenv("KAVACH_HOST_ONLY", "leak")
		c := newContainer(t, k, testPolicy())
		out := run(t, c, "sh", "-c", "echo out; echo err >&2")
		if string(out.Stdout) != "out\n" || string(out.Stderr) != "err\n" {
			t.Errorf("streams: stdout %q stderr %q", out.Stdout, out.Stderr)
		}
		out = runReq(t, c, &backend.ExecRequest{Argv: []string{"cat"}, Stdin: strings.NewReader("from stdin"),
			Timeout: 10 * time.Second, MaxOutput: 100})
		if string(out.Stdout) != "from stdin" {
			t.Errorf("stdin: got %q", out.Stdout)
		}
		if out := run(t, c, "cat"); out.ExitCode != 0 || len(out.Stdout) != 0 {
			t.Errorf("nil stdin: %s %d %q", out.Status, out.ExitCode, out.Stdout)
		}
		out = runReq(t, c, &backend.ExecRequest{Argv: []string{"env"}, Env: []string{"EXTRA=2", "BASE=override"},
			Timeout: 10 * time.Second, MaxOutput: 1 << 16})
		env := string(out.Stdout)
		if !strings.Contains(env, "EXTRA=2\n") || !strings.Contains(env, "BASE=override\n") || strings.Contains(env, "BASE=1") {
			t.Errorf("env not merged: %q", env)
		}
		if strings.Contains(env, "KAVACH_HOST_ONLY") {
			t.Errorf("host environment inherited: %q", env)
		}
		if got := sh(t, c, "pwd"); got != policy.WorkDir+"\n" {
			t.Errorf("default workdir %q", got)
		}
		out = runReq(t, c, &backend.ExecRequest{Argv: []string{"pwd"}, Workdir: "/tmp", Timeout: 10 * time.Second, MaxOutput: 100})
		if string(out.Stdout) != "/tmp\n" {
			t.Errorf("workdir override: %q", out.Stdout)
		}
	})
}

func TestOutputCap(t *testing.T) {
	forEachKind(t, func(t *testing.T, k Kind) {
		c := newContainer(t, k, testPolicy())
		// 8 MiB per stream against a 1000-byte cap: the payload must not
		// block on a full pipe, and each stream is cut separately.
		out := runReq(t, c, &backend.ExecRequest{
			Argv:    []string{"sh", "-c", "head -c 8388608 /dev/zero; head -c 8388608 /dev/zero >&2; echo done >&2"},
			Timeout: 20 * time.Second, MaxOutput: 1000})
		if out.Status != backend.StatusExited || out.ExitCode != 0 {
			t.Fatalf("status %s %d", out.Status, out.ExitCode)
		}
		if len(out.Stdout) != 1000 || !out.StdoutTruncated || len(out.Stderr) != 1000 || !out.StderrTruncated {
			t.Errorf("cap: stdout %d/%v stderr %d/%v", len(out.Stdout), out.StdoutTruncated, len(out.Stderr), out.StderrTruncated)
		}
		if out := run(t, c, "echo", "small"); out.StdoutTruncated {
			t.Errorf("small output flagged as truncated")
		}
	})
}

// processList prints the command lines of every process in the container.
const processList = `for p in /proc/[0-9]*; do tr '\0' ' ' < $p/cmdline 2>/dev/null; echo; done`

func TestTimeoutKillsTree(t *testing.T) {
	forEachKind(t, func(t *testing.T, k Kind) {
		c := newContainer(t, k, testPolicy())
		// The payload leaves its session and process group: the kill must
		// still reach it.
		start := time.Now()
		out := runReq(t, c, &backend.ExecRequest{
			Argv:    []string{"sh", "-c", "setsid sleep 301 & (trap '' TERM; sleep 302) & sleep 303"},
			Timeout: 500 * time.Millisecond, MaxOutput: 100})
		if out.Status != backend.StatusTimeout || out.Signal != 9 {
			t.Errorf("status %s signal %d, want timeout 9", out.Status, out.Signal)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("timeout took %v", d)
		}
		ps := sh(t, c, processList)
		for _, s := range []string{"sleep 301", "sleep 302", "sleep 303"} {
			if strings.Contains(ps, s) {
				t.Errorf("%q survived the timeout:\n%s", s, ps)
			}
		}
	})
}

func TestPersistentStateAndReaping(t *testing.T) {
	forEachKind(t, func(t *testing.T, k Kind) {
		c := newContainer(t, k, testPolicy())
		sh(t, c, "echo kept > /tmp/state; echo w > /work/file; sleep 0.1 & sleep 0.1 &")
		if got := sh(t, c, "cat /tmp/state /work/file"); got != "kept\nw\n" {
			t.Errorf("state across execs: %q", got)
		}
		time.Sleep(300 * time.Millisecond)
		// Orphans of the first exec must have been reaped by the init.
		stat := sh(t, c, `for p in /proc/[0-9]*; do cat $p/stat 2>/dev/null; echo; done`)
		for _, line := range strings.Split(stat, "\n") {
			if f := strings.Fields(line); len(f) > 2 && f[2] == "Z" {
				t.Errorf("zombie left: %s", line)
			}
		}
	})
}

func TestPauseStopsCounter(t *testing.T) {
	forEachKind(t, func(t *testing.T, k Kind) {
		c := newContainer(t, k, testPolicy())
		ctx := context.Background()
		// The counter is an exec of its own, running while the others
		// read it (what an exec leaves behind is killed when it ends).
		counting := make(chan struct{})
		go func() {
			defer close(counting)
			_, _ = c.Exec(ctx, &backend.ExecRequest{Argv: []string{"sh", "-c",
				`i=0; while :; do i=$((i+1)); echo $i > /tmp/n.new; mv /tmp/n.new /tmp/n; sleep 0.02; done`}, Timeout: 8 * time.Second})
		}()
		t.Cleanup(func() { _ = c.Destroy(ctx); <-counting })
		read := func() int {
			n, err := strconv.Atoi(strings.TrimSpace(sh(t, c, "cat /tmp/n")))
			if err != nil {
				t.Fatalf("counter: %v", err)
			}
			return n
		}
		time.Sleep(200 * time.Millisecond)
		a := read()
		if err := c.Pause(ctx); err != nil {
			t.Fatalf("pause: %v", err)
		}
		time.Sleep(time.Second)
		if err := c.Resume(ctx); err != nil {
			t.Fatalf("resume: %v", err)
		}
		b := read()
		time.Sleep(time.Second)
		d := read()
		// A running counter advances ~50 times a second (less on a busy
		// host): paused for a second it may move only by what ran around
		// the pause and the reads.
		if b-a > 10 {
			t.Errorf("counter advanced %d while paused (from %d to %d)", b-a, a, b)
		}
		if d-b < 5 {
			t.Errorf("counter advanced only %d after resume", d-b)
		}
		// Destroy (in cleanup) must also release a paused container.
		if err := c.Pause(ctx); err != nil {
			t.Fatalf("pause: %v", err)
		}
	})
}

func TestMemoryLimitOOM(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 not installed: needed to allocate memory")
	}
	forEachKind(t, func(t *testing.T, k Kind) {
		p := testPolicy()
		p.Limits.Memory = 64 << 20
		c := newContainer(t, k, p)
		out := run(t, c, "python3", "-c", "b = bytearray(256 << 20); print('survived')")
		if out.Status != backend.StatusOOM || out.ExitCode != 137 {
			t.Errorf("status %s code %d stdout %q stderr %q, want oom 137", out.Status, out.ExitCode, out.Stdout, out.Stderr)
		}
		if k == Runsc {
			// gVisor's whole sandbox is in the memory cgroup: the kill
			// ends the container, and the instance says so.
			if _, err := c.Exec(context.Background(), &backend.ExecRequest{Argv: []string{"true"}}); !errors.Is(err, ErrBroken) {
				t.Errorf("exec after a gVisor OOM: %v, want ErrBroken", err)
			}
			return
		}
		if out := run(t, c, "python3", "-c", "b = bytearray(16 << 20); print('ok')"); string(out.Stdout) != "ok\n" {
			t.Errorf("small allocation after OOM: %s %q", out.Status, out.Stderr)
		}
	})
}

func TestPidsLimit(t *testing.T) {
	forEachKind(t, func(t *testing.T, k Kind) {
		p := testPolicy()
		p.Limits.Pids = 16
		c := newContainer(t, k, p)
		out := run(t, c, "sh", "-c", "i=0; while [ $i -lt 64 ]; do sleep 2 & i=$((i+1)); done; echo all started")
		if out.ExitCode == 0 || strings.Contains(string(out.Stdout), "all started") {
			t.Errorf("64 processes started under a pids limit of 16: %s %d %q", out.Status, out.ExitCode, out.Stderr)
		}
		if !strings.Contains(strings.ToLower(string(out.Stderr)), "fork") {
			t.Errorf("no fork failure reported: %q", out.Stderr)
		}
	})
}

func TestReadOnlyRootAndHostFilesHidden(t *testing.T) {
	secret, err := os.CreateTemp("/root", "kavach-secret-*")
	if err != nil {
		t.Skipf("cannot create a host file under /root: %v", err)
	}
	secret.Close()
	t.Cleanup(func() { os.Remove(secret.Name()) })
	forEachKind(t, func(t *testing.T, k Kind) {
		c := newContainer(t, k, testPolicy())
		for _, path := range []string{"/usr/kavach-x", "/etc/kavach-x", "/kavach-x", "/etc/passwd", "/bin/sh"} {
			out := run(t, c, "sh", "-c", "echo x >> "+path)
			if out.ExitCode == 0 {
				t.Errorf("wrote %s on a read-only root", path)
			}
		}
		sh(t, c, "echo ok > /tmp/w && echo ok > /work/w")
		out := run(t, c, "sh", "-c", "cat "+secret.Name()+"; ls /root /home")
		if out.ExitCode == 0 || bytes.Contains(out.Stdout, []byte("kavach-secret")) {
			t.Errorf("host file visible: %s %d %q", out.Status, out.ExitCode, out.Stdout)
		}
		if got := sh(t, c, "cat /etc/passwd"); strings.Contains(got, "/root:/bin/bash") {
			t.Errorf("host /etc/passwd visible: %q", got)
		}
	})
}

func TestNetwork(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan struct{}, 16)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			conn.Close()
			accepted <- struct{}{}
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	connect := fmt.Sprintf("exec 3<>/dev/tcp/127.0.0.1/%d && echo connected", port)
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash not installed: needed for /dev/tcp")
	}
	forEachKind(t, func(t *testing.T, k Kind) {
		for len(accepted) > 0 {
			<-accepted // from the previous runtime's network-on probe
		}
		off := newContainer(t, k, testPolicy())
		if out := run(t, off, "bash", "-c", connect); out.ExitCode == 0 {
			t.Errorf("connected to a host listener with the network off: %q", out.Stdout)
		}
		select {
		case <-accepted:
			t.Errorf("host listener accepted a connection from a sandbox without network")
		case <-time.After(50 * time.Millisecond):
		}
		// The same probe succeeds with the host's network: the test can fail.
		p := testPolicy()
		p.Network.Mode = policy.NetworkOn
		on := newContainer(t, k, p)
		if out := run(t, on, "bash", "-c", connect); out.ExitCode != 0 {
			t.Errorf("network on: could not connect: %q", out.Stderr)
		}
	})
}

func TestSeccompApplied(t *testing.T) {
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("unshare not installed")
	}
	forEachKind(t, func(t *testing.T, k Kind) {
		// Without a filter an unprivileged user may create a user
		// namespace; basic and strict deny it.
		p := testPolicy()
		p.Seccomp = policy.SeccompOff
		off := newContainer(t, k, p)
		control := run(t, off, "unshare", "--user", "true")
		for _, prof := range []policy.SeccompProfile{policy.SeccompBasic, policy.SeccompStrict} {
			p.Seccomp = prof
			c := newContainer(t, k, p)
			if got := c.Enforcement().Layers & (score.SeccompBasic | score.SeccompAllowlist); got != score.SeccompLayer(prof) {
				t.Errorf("%s: enforcement reports seccomp %v", prof, got)
			}
			out := run(t, c, "unshare", "--user", "true")
			if out.ExitCode == 0 {
				t.Errorf("%s: unshare --user succeeded under seccomp", prof)
			}
			if control.ExitCode != 0 && k != Runsc {
				t.Errorf("control without seccomp failed (%q): the test proves nothing", control.Stderr)
			}
			if out := run(t, c, "sh", "-c", "ls / | sort | head -1"); out.ExitCode != 0 {
				t.Errorf("%s: ordinary commands fail: %q", prof, out.Stderr)
			}
		}
	})
}

func TestEnforcement(t *testing.T) {
	forEachKind(t, func(t *testing.T, k Kind) {
		c := newContainer(t, k, testPolicy())
		enf := c.Enforcement()
		want := score.SeccompAllowlist | score.Filesystem | score.NetworkOff | score.Limits
		if enf.Layers != want || len(enf.Lost) != 0 {
			t.Errorf("enforcement %+v lost %v, want %+v", enf.Layers, enf.Lost, want)
		}
		p := testPolicy()
		p.Network = policy.Network{Mode: policy.NetworkAllowlist, Allow: []string{"example.com"}}
		a := newContainer(t, k, p)
		// Every runtime serves the egress proxy as root (runsc through
		// --network=host in the sandbox's own namespace).
		if e := a.Enforcement(); !e.Layers.Has(score.NetworkAllowlist) || len(e.Lost) != 0 {
			t.Errorf("allowlist: %+v lost %v", e.Layers, e.Lost)
		}
	})
}

func TestGVisorKernelInUse(t *testing.T) {
	requireRuntime(t, Runsc)
	p := testPolicy()
	p.Seccomp = policy.SeccompOff // the seccomp profiles deny syslog(2)
	c := newContainer(t, Runsc, p)
	if got := sh(t, c, "dmesg"); !strings.Contains(got, "gVisor") {
		t.Errorf("dmesg does not show gVisor: %q", got)
	}
	if c.rt.Platform() == "kvm" {
		t.Errorf("kvm platform chosen")
	}
}

func TestStaleCleanup(t *testing.T) {
	rt := requireRuntime(t, Runc)
	ctx := context.Background()
	id, die := mortalOwner(t, "stale")
	p := testPolicy()
	c := &Container{rt: rt, id: id, spec: &backend.Spec{ID: "stale", Policy: p, Env: testEnv}}
	cfg := bundleConfig(rt, c, nil)
	if err := c.start(ctx, cfg); err != nil {
		_ = c.Destroy(ctx)
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { _ = c.Destroy(ctx) })
	live := newContainer(t, Runc, testPolicy())
	die()
	CleanupStale(ctx, rt)
	assertGone(t, c)
	if out := run(t, live, "true"); out.ExitCode != 0 {
		t.Errorf("cleanup touched a live container: %s", out.Status)
	}
}

func TestDetectMissing(t *testing.T) {
	_, err := Detect(context.Background(), Kind("kavach-no-such-runtime"))
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("err %v, want ErrNotFound", err)
	}
	a := NewDriver(backend.OCI, Kind("kavach-no-such-runtime")).Probe(context.Background())
	if a.Available || !strings.Contains(a.Reason, "not found in PATH") {
		t.Errorf("probe %+v", a)
	}
}

// TestStdinFileNotHandedOver: a caller's stdin that is a file (here one open
// for writing too, as a terminal is) reaches the payload as a pipe, never as
// the caller's descriptor, which the payload could write to around the gate.
func TestStdinFileNotHandedOver(t *testing.T) {
	forEachKind(t, func(t *testing.T, k Kind) {
		c := newContainer(t, k, testPolicy())
		f, err := os.OpenFile(filepath.Join(t.TempDir(), "stdin"), os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString("input\n"); err != nil {
			t.Fatal(err)
		}
		if _, err := f.Seek(0, 0); err != nil {
			t.Fatal(err)
		}
		out := runReq(t, c, &backend.ExecRequest{Argv: []string{"sh", "-c",
			"readlink /proc/self/fd/0; read l; echo got $l; echo smuggled >&0"}, Stdin: f, Timeout: 10 * time.Second, MaxOutput: 1 << 10})
		// gVisor shows a descriptor donated by the host as host:[N].
		if pipe := strings.HasPrefix(string(out.Stdout), "pipe:") || k == Runsc && strings.HasPrefix(string(out.Stdout), "host:"); !pipe || !strings.Contains(string(out.Stdout), "got input") {
			t.Errorf("stdin inside: %q (stderr %q)", out.Stdout, out.Stderr)
		}
		data, err := os.ReadFile(f.Name())
		if err != nil || strings.Contains(string(data), "smuggled") {
			t.Errorf("payload wrote to the caller's stdin file: %q, %v", data, err)
		}
	})
}

// TestSweepStaleEveryRuntime: the sweep a kavach process runs when it starts
// (whatever backend it uses) deletes the containers of dead owners under
// every runtime, payload included, without probing the runtimes.
func TestSweepStaleEveryRuntime(t *testing.T) {
	ctx := context.Background()
	var stale []*Container
	var deaths []func()
	for _, k := range kinds {
		rt, err := Detect(ctx, k)
		if err != nil {
			continue
		}
		id, die := mortalOwner(t, "sweep-"+string(k))
		deaths = append(deaths, die)
		c := &Container{rt: rt, id: id, spec: &backend.Spec{ID: "sweep", Policy: testPolicy(), Env: testEnv}}
		if err := c.start(ctx, bundleConfig(rt, c, nil)); err != nil {
			_ = c.Destroy(ctx)
			t.Fatalf("%s: start: %v", k, err)
		}
		t.Cleanup(func() { _ = c.Destroy(ctx) })
		stale = append(stale, c)
	}
	if len(stale) == 0 {
		t.Skip("no OCI runtime installed")
	}
	for _, die := range deaths {
		die()
	}
	// Other packages' test processes may sweep these too: the outcome is
	// the same code's.
	sweepOnce = sync.Once{}
	SweepStale(ctx)
	for _, c := range stale {
		c.reaper.wait(reaperWait) // a gVisor sandbox's reaper exits once it has reaped it
		assertGone(t, c)
		if _, err := os.Stat(c.bundle.Dir); !os.IsNotExist(err) {
			t.Errorf("%s: bundle left: %v", c.id, err)
		}
		if left, _ := filepath.Glob(filepath.Join(c.rt.root, c.id+"*")); len(left) > 0 {
			t.Errorf("%s: runtime state left: %v", c.id, left)
		}
	}
}

// TestCPUTimeBoundsTheWholeExec: cpu_time bounds an exec's processes
// together, in every runtime; one busy child after another must not get
// the limit once per child.
func TestCPUTimeBoundsTheWholeExec(t *testing.T) {
	forEachKind(t, func(t *testing.T, k Kind) {
		p := testPolicy()
		p.Limits.CPUTime = policy.Duration(time.Second)
		c := newContainer(t, k, p)
		out := runReq(t, c, &backend.ExecRequest{Argv: []string{"sh", "-c",
			`for i in 1 2 3 4 5; do sh -c 'while :; do :; done'; done; echo survived`}, Timeout: 20 * time.Second, MaxOutput: 1 << 10})
		if out.Status != backend.StatusSignaled || out.Signal != int(syscall.SIGXCPU) || strings.Contains(string(out.Stdout), "survived") {
			t.Fatalf("status %s signal %d stdout %q after %v: the exec outlived its CPU budget", out.Status, out.Signal, out.Stdout, out.Duration)
		}
		if out := run(t, c, "true"); out.Status != backend.StatusExited {
			t.Errorf("next exec: %s", out.Status)
		}
	})
}

// TestExecEnvNeverOnDisk: an exec's environment (where env-bound secrets
// go) reaches the runtime through an in-memory file: no file under the
// runtime's state holds it while the exec runs, and the payload does not
// inherit that file.
func TestExecEnvNeverOnDisk(t *testing.T) {
	forEachKind(t, func(t *testing.T, k Kind) {
		const secret = "kv-env-secret-Q81zLm27Xp"
		c := newContainer(t, k, testPolicy())
		done := make(chan *backend.ExecOutput, 1)
		go func() {
			done <- runReq(t, c, &backend.ExecRequest{Argv: []string{"sh", "-c", "ls /proc/self/fd | tr '\\n' ' '; sleep 1"},
				Env: []string{"TOKEN=" + secret}, Timeout: 10 * time.Second, MaxOutput: 1 << 10})
		}()
		time.Sleep(400 * time.Millisecond)
		_ = filepath.WalkDir(StateDir(), func(p string, d os.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				if data, err := os.ReadFile(p); err == nil && strings.Contains(string(data), secret) {
					t.Errorf("%s holds the exec's environment", p)
				}
			}
			return nil
		})
		// gVisor's /proc/self/fd is not listable here; runsc passes no
		// descriptor into the sandbox anyway.
		if out := <-done; k != Runsc && strings.TrimSpace(string(out.Stdout)) != "0 1 2 3" {
			t.Errorf("descriptors of the payload: %q (0-2 and the one ls opens); stderr %q", out.Stdout, out.Stderr)
		}
	})
}

// TestCPUTimeLeftoversDoNotSpendTheNextBudget: under a CPU budget, what an
// exec leaves running in the container is killed when it ends — the
// budget is read from the container's whole cgroup, so a leftover would
// spend the next exec's — and one busy process is reported as SIGXCPU.
func TestCPUTimeLeftoversDoNotSpendTheNextBudget(t *testing.T) {
	forEachKind(t, func(t *testing.T, k Kind) {
		p := testPolicy()
		p.Limits.CPUTime = policy.Duration(time.Second)
		c := newContainer(t, k, p)
		if out := sh(t, c, "setsid sh -c 'while :; do :; done' >/dev/null 2>&1 & echo started"); out != "started\n" {
			t.Fatalf("background start: %q", out)
		}
		time.Sleep(1500 * time.Millisecond)
		if out := run(t, c, "sh", "-c", "sleep 1; echo slept"); out.Status != backend.StatusExited || string(out.Stdout) != "slept\n" {
			t.Fatalf("an exec after a busy leftover: status %s signal %d stdout %q", out.Status, out.Signal, out.Stdout)
		}
		if k == Runsc {
			return // gVisor does not enforce RLIMIT_CPU; the budget kills with SIGKILL
		}
		out := runReq(t, c, &backend.ExecRequest{Argv: []string{"sh", "-c", "while :; do :; done"}, Timeout: 20 * time.Second, MaxOutput: 1 << 10})
		if out.Status != backend.StatusSignaled || out.Signal != int(syscall.SIGXCPU) {
			t.Errorf("one busy process: status %s signal %d, want SIGXCPU", out.Status, out.Signal)
		}
	})
}

// TestMissingWorkdirNamed: a working directory that does not exist is
// reported as such (126), not as a missing command.
func TestMissingWorkdirNamed(t *testing.T) {
	forEachKind(t, func(t *testing.T, k Kind) {
		c := newContainer(t, k, testPolicy())
		out := runReq(t, c, &backend.ExecRequest{Argv: []string{"true"}, Workdir: "/nonexistent/x", Timeout: 10 * time.Second, MaxOutput: 1 << 10})
		if out.Status != backend.StatusError || out.ExitCode != 126 || !strings.Contains(out.Error, "working directory") {
			t.Errorf("status %s exit %d error %q", out.Status, out.ExitCode, out.Error)
		}
	})
}

// TestInitMemoryOutOfReach: a payload, which runs as the same user as the
// container's init, cannot open the init's memory to rewrite it (and so
// keep code of its own running between execs).
func TestInitMemoryOutOfReach(t *testing.T) {
	forEachKind(t, func(t *testing.T, k Kind) {
		c := newContainer(t, k, testPolicy())
		out := run(t, c, "python3", "-c", "import os\ntry:\n os.open('/proc/1/mem', os.O_RDWR); print('opened')\nexcept OSError as e: print('refused', e.errno)")
		if !strings.HasPrefix(string(out.Stdout), "refused") {
			t.Errorf("/proc/1/mem of the init: %q (stderr %q)", out.Stdout, out.Stderr)
		}
		if out := sh(t, c, "echo alive"); out != "alive\n" {
			t.Errorf("exec after: %q", out)
		}
	})
}

// TestLeftoversKilledAfterExec: in crun and runc containers, what an exec
// leaves running is killed when it ends, as in the process backend (it runs
// as the same user as the next exec, whose environment it could read).
func TestLeftoversKilledAfterExec(t *testing.T) {
	forEachKind(t, func(t *testing.T, k Kind) {
		if k == Runsc {
			t.Skip("gVisor: only under a CPU budget")
		}
		c := newContainer(t, k, testPolicy())
		if out := sh(t, c, "setsid sleep 60 >/dev/null 2>&1 & echo started"); out != "started\n" {
			t.Fatalf("background start: %q", out)
		}
		if out := sh(t, c, "ps -eo comm | grep -c '^sleep$' || true"); out != "0\n" {
			t.Errorf("sleep processes left from the earlier exec: %q", out)
		}
	})
}

// TestPausedStaysPausedWhenLeftoversAreKilled: the caller pauses the
// container while an exec that left a process behind is ending; kavach's
// own freezing to kill that leftover must not thaw the caller's pause.
func TestPausedStaysPausedWhenLeftoversAreKilled(t *testing.T) {
	forEachKind(t, func(t *testing.T, k Kind) {
		if k == Runsc {
			t.Skip("gVisor: leftovers are killed from inside, only under a CPU budget")
		}
		c := newContainer(t, k, testPolicy())
		ctx := context.Background()
		done := make(chan struct{})
		go func() {
			defer close(done)
			// The leftover holds the output pipe: the exec drains it for a while.
			_, _ = c.Exec(ctx, &backend.ExecRequest{Argv: []string{"sh", "-c", "sleep 100 & echo started"}, Timeout: 3 * time.Second})
		}()
		time.Sleep(100 * time.Millisecond)
		if err := c.Pause(ctx); err != nil {
			t.Fatalf("pause: %v", err)
		}
		<-done
		state, err := os.ReadFile(filepath.Join(c.cg.dirs["freezer"], "freezer.state"))
		if err != nil {
			t.Skipf("no v1 freezer to read: %v", err)
		}
		if strings.TrimSpace(string(state)) != "FROZEN" {
			t.Errorf("after the leftover was killed, the paused container is %s", state)
		}
		if err := c.Resume(ctx); err != nil {
			t.Fatalf("resume: %v", err)
		}
		if out := sh(t, c, "echo alive"); out != "alive\n" {
			t.Errorf("after resume: %q", out)
		}
	})
}

// TestNoMessageQueues: a payload cannot create POSIX message queues, whose
// quota is per user and so shared by every sandbox — neither with mq_open
// nor through a /dev/mqueue file system.
func TestNoMessageQueues(t *testing.T) {
	forEachKind(t, func(t *testing.T, k Kind) {
		c := newContainer(t, k, testPolicy())
		out := run(t, c, "python3", "-c", "import os\ntry:\n os.open('/dev/mqueue/q', os.O_CREAT|os.O_RDWR); print('created')\nexcept OSError as e: print('refused', e.errno)")
		if !strings.HasPrefix(string(out.Stdout), "refused") {
			t.Errorf("/dev/mqueue: %q (stderr %q)", out.Stdout, out.Stderr)
		}
	})
}

// TestUnrunnableCommands: a file with the execute bit but no valid format
// is "not executable" (126), a script whose interpreter is missing "not
// found" (127), on every runtime as on the process backend.
func TestUnrunnableCommands(t *testing.T) {
	dir := t.TempDir()
	garbage, script := filepath.Join(dir, "garbage"), filepath.Join(dir, "script")
	if err := os.WriteFile(garbage, []byte("\x01\x02garbage"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(script, []byte("#!/nonexistent/interpreter\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	forEachKind(t, func(t *testing.T, k Kind) {
		p := testPolicy()
		p.Filesystem.Mounts = []policy.Mount{{Source: dir, Dest: "/bin-under-test", Mode: policy.ReadOnly}}
		c := newContainer(t, k, p)
		for cmd, want := range map[string]int{"/bin-under-test/garbage": 126, "/bin-under-test/script": 127} {
			out := run(t, c, cmd)
			if out.Status != backend.StatusError || out.ExitCode != want {
				t.Errorf("%s: status %s exit %d (stderr %q), want error %d", cmd, out.Status, out.ExitCode, out.Stderr, want)
			}
		}
	})
}

// TestWorkSizeBounded: as root, the container's /work is a file system of
// the policy's work_size (shared with crun's launcher namespace when that
// is in use): a payload writing more gets ENOSPC, what it wrote persists
// between execs, and destroying the container unmounts it everywhere
// (assertGone).
func TestWorkSizeBounded(t *testing.T) {
	if !workfs.Supported() {
		t.Skip("a work file system of its own needs root")
	}
	forEachKind(t, func(t *testing.T, k Kind) {
		p := testPolicy()
		p.Filesystem.WorkSize = 8 << 20
		c := newContainer(t, k, p)
		out := run(t, c, "/bin/sh", "-c", "dd if=/dev/zero of=/work/fill bs=1M count=32")
		if out.ExitCode == 0 || !strings.Contains(string(out.Stderr), "No space left on device") {
			t.Fatalf("writing 32 MiB into an 8 MiB /work: exit %d, stderr %q", out.ExitCode, out.Stderr)
		}
		if fi, err := os.Stat(filepath.Join(c.bundle.WorkDir, "fill")); err != nil || fi.Size() > 8<<20 {
			t.Fatalf("host side of /work/fill: %v, %v", fi, err)
		}
		sh(t, c, "rm /work/fill && echo kept > /work/f")
		if got := sh(t, c, "cat /work/f"); got != "kept\n" {
			t.Fatalf("/work did not persist: %q", got)
		}
		if l := c.rt.launcher; l != nil {
			var data []byte
			_ = l.do(func() (err error) { data, err = os.ReadFile("/proc/thread-self/mountinfo"); return err })
			if !strings.Contains(string(data), " "+c.bundle.WorkDir+" ") {
				t.Fatalf("the work file system is not mounted in the crun launcher's namespace")
			}
		}
	})
}

// TestWorkBindNoFileSystem: a policy mount at /work replaces the work
// directory: no file system is made for it, the enforcement says so, and
// exports read the bound directory.
func TestWorkBindNoFileSystem(t *testing.T) {
	if !workfs.Supported() {
		t.Skip("a work file system of its own needs root")
	}
	forEachKind(t, func(t *testing.T, k Kind) {
		host := t.TempDir()
		hostTree(t, []string{host}, nil)
		p := testPolicy()
		p.Filesystem.Mounts = []policy.Mount{{Source: host, Dest: "/work", Mode: policy.ReadWrite}}
		c := newContainer(t, k, p)
		sh(t, c, "echo bound > /work/f")
		if c.bundle.WorkMounted || !strings.Contains(strings.Join(c.Enforcement().Notes, "\n"), "work_size: not applied") {
			t.Errorf("work mounted %v, notes %q", c.bundle.WorkMounted, c.Enforcement().Notes)
		}
		if data, err := c.ReadFile(context.Background(), "/work/f", 1<<10); err != nil || string(data) != "bound\n" {
			t.Errorf("export from the bound /work: %q, %v", data, err)
		}
	})
}

// TestExportFollowsTheBind: an export from a bind under /work reads the
// directory that was bound, not whatever its host path names later. The
// payload, able to write the bind's parent through another (read-write)
// bind, renames the bound directory and puts a symbolic link to a host
// directory it cannot see in its place; the export must not read it. A
// source path holding a symbolic link is refused, and a file bound at its
// own path is not exported.
func TestExportFollowsTheBind(t *testing.T) {
	forEachKind(t, func(t *testing.T, k Kind) {
		base := t.TempDir()
		srv, guard, secret := filepath.Join(base, "srv"), filepath.Join(base, "srv", "guard"), filepath.Join(base, "secret")
		hostTree(t, []string{srv}, map[string]string{filepath.Join(secret, "token"): "host only", filepath.Join(guard, "note"): "guarded"})
		p := testPolicy()
		p.Filesystem.Mounts = []policy.Mount{{Source: srv, Dest: "/work/proj", Mode: policy.ReadWrite},
			{Source: guard, Dest: "/work/guard", Mode: policy.ReadOnly}}
		c := newContainer(t, k, p)
		sh(t, c, "mv /work/proj/guard /work/proj/g2 && ln -s "+secret+" /work/proj/guard")
		if data, err := c.ReadFile(context.Background(), "/work/guard/token", 1<<10); err == nil {
			t.Fatalf("export through a swapped bind source read %q", data)
		}
		if data, err := c.ReadFile(context.Background(), "/work/guard/note", 1<<10); err != nil || string(data) != "guarded" {
			t.Errorf("export from the bound directory: %q, %v", data, err)
		}

		link := filepath.Join(base, "link")
		if err := os.Symlink(secret, link); err != nil {
			t.Fatal(err)
		}
		p.Filesystem.Mounts = []policy.Mount{{Source: link, Dest: "/work/in", Mode: policy.ReadOnly}}
		d := NewDriver(backend.OCI, k)
		if k == Runsc {
			d = NewDriver(backend.GVisor, k)
		}
		if inst, err := d.Create(context.Background(), &backend.Spec{ID: "symlink-source", Policy: p, Env: testEnv}); !errors.Is(err, backend.ErrSymlinkSource) {
			if inst != nil {
				_ = inst.Destroy(context.Background())
			}
			t.Errorf("a symlinked mount source: %v", err)
		}

		file := filepath.Join(base, "f.txt")
		if err := os.WriteFile(file, []byte("file"), 0o644); err != nil {
			t.Fatal(err)
		}
		p.Filesystem.Mounts = []policy.Mount{{Source: file, Dest: "/work/f.txt", Mode: policy.ReadOnly}}
		fc := newContainer(t, k, p)
		data, err := fc.ReadFile(context.Background(), "/work/f.txt", 1<<10)
		switch {
		case k == Runsc && !errors.Is(err, ErrExportPath):
			t.Errorf("gVisor: export of a file bound at its own path: %q, %v", data, err)
		case k != Runsc && (err != nil || string(data) != "file"):
			t.Errorf("export of a file bound at its own path, through the container's root: %q, %v", data, err)
		}
	})
}

// TestExportSeesNestedMounts: a mount nested in a read-write one hides
// part of it from the sandbox; a symbolic link the payload makes in the
// outer directory leads, on the host, to the hidden part. An export
// through that link must not read it.
func TestExportSeesNestedMounts(t *testing.T) {
	forEachKind(t, func(t *testing.T, k Kind) {
		base := t.TempDir()
		proj, hidden, mask := filepath.Join(base, "proj"), filepath.Join(base, "proj", "hidden"), filepath.Join(base, "mask")
		hostTree(t, []string{proj, mask}, map[string]string{filepath.Join(hidden, "config"): "hidden"})
		p := testPolicy()
		p.Filesystem.Mounts = []policy.Mount{{Source: proj, Dest: "/work/proj", Mode: policy.ReadWrite},
			{Source: mask, Dest: "/work/proj/hidden", Mode: policy.ReadOnly}}
		c := newContainer(t, k, p)
		if out := run(t, c, "cat", "/work/proj/hidden/config"); out.ExitCode == 0 {
			t.Fatalf("the nested mount does not hide the file: %q", out.Stdout)
		}
		sh(t, c, "ln -s hidden /work/proj/lnk")
		if data, err := c.ReadFile(context.Background(), "/work/proj/lnk/config", 1<<10); err == nil {
			t.Fatalf("export through a link read what a nested mount hides: %q", data)
		}
	})
}

// TestExportAfterInitDeath: once the crun or runc init is gone (its pid
// free for a host process to reuse), an export reads nothing through
// /proc/<pid>/root: it fails with ErrBroken.
func TestExportAfterInitDeath(t *testing.T) {
	for _, k := range []Kind{Crun, Runc} {
		t.Run(string(k), func(t *testing.T) {
			requireRuntime(t, k)
			c := newContainer(t, k, testPolicy())
			sh(t, c, "echo x > /work/f")
			if data, err := c.ReadFile(context.Background(), "/work/f", 1<<10); err != nil || string(data) != "x\n" {
				t.Fatalf("export before: %q, %v", data, err)
			}
			if err := syscall.Kill(c.init, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(5 * time.Second)
			for unix.PidfdSendSignal(int(c.initFD.Fd()), 0, nil, 0) == nil && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if data, err := c.ReadFile(context.Background(), "/work/f", 1<<10); !errors.Is(err, ErrBroken) {
				t.Fatalf("export after the init died: %q, %v", data, err)
			}
		})
	}
}

// hostTree makes host directories for a test's mounts: writable, made
// writable by the sandbox user (mode 0777, the containers do not idmap
// binds), and files with their content, their directories made as needed.
func hostTree(t *testing.T, writable []string, files map[string]string) {
	t.Helper()
	for _, d := range writable {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	for name, data := range files {
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(name, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
