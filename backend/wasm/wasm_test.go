package wasm

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kavach-sandbox/kavach/backend"
	"github.com/kavach-sandbox/kavach/policy"
	"github.com/kavach-sandbox/kavach/score"
)

func TestProbe(t *testing.T) {
	a := testDriver.Probe(context.Background())
	if !a.Available {
		t.Fatalf("probe: unavailable: %s", a.Reason)
	}
	if !strings.Contains(a.Reason, cacheDir) {
		t.Errorf("probe reason %q does not name the cache dir", a.Reason)
	}
}

func TestHello(t *testing.T) {
	inst := newSandbox(t, policy.Strict())
	out := run(t, inst, req("hello"))
	wantExit(t, out, 0)
	if string(out.Stdout) != "hello from wasm\n" || len(out.Stderr) != 0 {
		t.Fatalf("stdout %q stderr %q", out.Stdout, out.Stderr)
	}
	if out.Duration <= 0 || out.CPUTime <= 0 || out.MaxRSSKB <= 0 {
		t.Errorf("duration %v cpu %v maxrss %d: want all measured", out.Duration, out.CPUTime, out.MaxRSSKB)
	}
}

func TestArgsAndEnvironment(t *testing.T) {
	t.Setenv("KAVACH_HOST_SECRET", "leak")
	inst := newSandbox(t, policy.Strict())
	out := run(t, inst, req("args", "a b", "", "c"))
	wantExit(t, out, 0)
	if got, want := string(out.Stdout), filepath.Base(guestWasm)+"|args|a b||c\n"; got != want {
		t.Errorf("argv %q, want %q", got, want)
	}
	r := req("env")
	r.Env = []string{"LANG=override", "EXTRA=1"}
	out = run(t, inst, r)
	wantExit(t, out, 0)
	if got, want := string(out.Stdout), "EXTRA=1\nHOME=/work\nLANG=override\nPWD=/work\n"; got != want {
		t.Errorf("environment %q, want %q (host environment must not leak)", got, want)
	}
}

func TestStdin(t *testing.T) {
	inst := newSandbox(t, policy.Strict())
	for name, mk := range map[string]func(string) io.Reader{
		"bytes": func(s string) io.Reader { return strings.NewReader(s) },
		"pipe": func(s string) io.Reader {
			pr, pw := io.Pipe()
			go func() { _, _ = io.WriteString(pw, s); pw.Close() }()
			return pr
		},
	} {
		t.Run(name, func(t *testing.T) {
			payload := strings.Repeat("stdin payload ", 10000)
			r := req("echo")
			r.Stdin = mk(payload)
			out := run(t, inst, r)
			wantExit(t, out, 0)
			if string(out.Stdout) != payload {
				t.Fatalf("echoed %d bytes, want %d", len(out.Stdout), len(payload))
			}
		})
	}
	out := run(t, inst, req("echo")) // nil stdin is empty
	wantExit(t, out, 0)
	if len(out.Stdout) != 0 {
		t.Fatalf("nil stdin echoed %q", out.Stdout)
	}
}

func TestExitCodes(t *testing.T) {
	inst := newSandbox(t, policy.Strict())
	for _, code := range []int{0, 1, 3, 42, 255} {
		out := run(t, inst, req("exit", strconv.Itoa(code)))
		wantExit(t, out, code)
		if code != 0 && !strings.Contains(string(out.Stderr), "exiting with") {
			t.Errorf("stderr %q", out.Stderr)
		}
	}
}

func TestOutputCap(t *testing.T) {
	inst := newSandbox(t, policy.Strict())
	r := req("spew", "5000")
	r.MaxOutput = 100
	out := run(t, inst, r)
	wantExit(t, out, 0)
	if len(out.Stdout) != 100 || len(out.Stderr) != 100 || !out.StdoutTruncated || !out.StderrTruncated {
		t.Fatalf("stdout %d (trunc %v) stderr %d (trunc %v), want 100 bytes each, truncated",
			len(out.Stdout), out.StdoutTruncated, len(out.Stderr), out.StderrTruncated)
	}
}

// mountPolicy mounts a fresh host directory holding "file" at /data.
func mountPolicy(t *testing.T, mode policy.Access) (policy.Policy, string) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "file"), []byte("host data"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := policy.Strict()
	p.Filesystem.Mounts = []policy.Mount{{Source: dir, Dest: "/data", Mode: mode}}
	return p, dir
}

func TestReadPreopenedFile(t *testing.T) {
	p, _ := mountPolicy(t, policy.ReadOnly)
	inst := newSandbox(t, p)
	out := run(t, inst, req("cat", "/data/file"))
	wantExit(t, out, 0)
	if string(out.Stdout) != "host data" {
		t.Fatalf("read %q", out.Stdout)
	}
	// The work directory is private, writable and the current directory.
	wantExit(t, run(t, inst, req("write", "note", "in work")), 0)
	out = run(t, inst, req("cat", "/work/note"))
	wantExit(t, out, 0)
	if string(out.Stdout) != "in work" {
		t.Fatalf("work dir file %q", out.Stdout)
	}
	wantExit(t, run(t, inst, req("write", "/tmp/t", "x")), 0)
}

func TestNothingOutsidePreopensIsVisible(t *testing.T) {
	p, dir := mountPolicy(t, policy.ReadWrite)
	outside := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(outside, []byte("host secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A symlink planted on the host inside the mount, pointing out of it.
	if err := os.Symlink(outside, filepath.Join(dir, "abs-link")); err != nil {
		t.Fatal(err)
	}
	rel, _ := filepath.Rel(dir, outside)
	if err := os.Symlink(rel, filepath.Join(dir, "rel-link")); err != nil {
		t.Fatal(err)
	}
	inst := newSandbox(t, p)
	up := strings.Repeat("../", 20)
	for _, path := range []string{
		"/etc/passwd", outside, "/work/" + up + "etc/passwd", "/data/" + up + outside[1:],
		"/data/abs-link", "/data/rel-link", "/proc/self/environ",
	} {
		out := run(t, inst, req("cat", path))
		if out.Status != backend.StatusExited || out.ExitCode != 1 || len(out.Stdout) != 0 {
			t.Errorf("cat %s: status %s exit %d stdout %q: want a failed read", path, out.Status, out.ExitCode, out.Stdout)
		}
	}
	// A symlink the module creates itself, relative (absolute targets are
	// refused outright), in its work dir and in the rw mount.
	for _, link := range []string{"/work/escape", "/data/escape"} {
		out := run(t, inst, req("symlink-read", up+outside[1:], link))
		if out.ExitCode != 1 || bytes.Contains(out.Stdout, []byte("secret")) {
			t.Errorf("symlink escape via %s: exit %d stdout %q stderr %q", link, out.ExitCode, out.Stdout, out.Stderr)
		}
	}
	out := run(t, inst, req("symlink-read", "/etc/passwd", "/work/abs"))
	if out.ExitCode != 1 || len(out.Stdout) != 0 {
		t.Errorf("absolute symlink: exit %d stdout %q", out.ExitCode, out.Stdout)
	}
}

func TestReadOnlyMountRefusesWrites(t *testing.T) {
	p, dir := mountPolicy(t, policy.ReadOnly)
	inst := newSandbox(t, p)
	for _, path := range []string{"/data/file", "/data/new"} {
		out := run(t, inst, req("write", path, "overwritten"))
		if out.ExitCode != 1 || !strings.Contains(strings.ToLower(string(out.Stderr)), "read-only") {
			t.Errorf("write %s: exit %d stderr %q, want a read-only error", path, out.ExitCode, out.Stderr)
		}
	}
	out := run(t, inst, req("fsops", "/data"))
	if out.ExitCode != 1 {
		t.Errorf("fsops on a read-only mount: exit %d", out.ExitCode)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "file")); string(b) != "host data" {
		t.Fatalf("host file changed to %q", b)
	}
	if _, err := os.Stat(filepath.Join(dir, "new")); err == nil {
		t.Fatal("a file was created in a read-only mount")
	}
}

func TestReadWriteMountAndFileOperations(t *testing.T) {
	p, dir := mountPolicy(t, policy.ReadWrite)
	inst := newSandbox(t, p)
	out := run(t, inst, req("fsops", "/data"))
	wantExit(t, out, 0)
	if got, want := string(out.Stdout), "one+two 2000 b,g\n"; got != want {
		t.Fatalf("fsops printed %q, want %q", got, want)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "a", "g")); err != nil || string(b) != "one+two" {
		t.Fatalf("host sees %q, %v", b, err)
	}
}

func TestMemoryLimit(t *testing.T) {
	p := policy.Strict()
	p.Limits.Memory = 64 << 20
	inst := newSandbox(t, p)
	out := run(t, inst, req("alloc"))
	if out.Status != backend.StatusOOM || !strings.Contains(out.Error, "past the limit of 64 MiB") {
		t.Fatalf("status %s error %q stderr %q, want oom", out.Status, out.Error, tail(out.Stderr))
	}
	if out.MaxRSSKB > 64<<10 || out.MaxRSSKB < 32<<10 {
		t.Errorf("peak memory %d KiB, want between 32 and 64 MiB", out.MaxRSSKB)
	}
	if !strings.Contains(string(out.Stderr), "out of memory") {
		t.Errorf("stderr %q, want Go's out of memory report", tail(out.Stderr))
	}
	// A raw module that traps after memory.grow fails is reported the same.
	res, err := inst.ExecModule(context.Background(), growModule, &backend.ExecRequest{MaxOutput: 100})
	if err != nil || res.Status != backend.StatusOOM {
		t.Fatalf("grow module: %+v, %v; want oom", res, err)
	}
	// An initial memory past the limit is refused before running.
	p.Limits.Memory = 1 << 20
	small := newSandbox(t, p)
	res, err = small.ExecModule(context.Background(), bigMemoryModule, &backend.ExecRequest{})
	if err != nil || res.Status != backend.StatusOOM || !strings.Contains(res.Error, "initial memory") {
		t.Fatalf("big initial memory: %+v, %v; want oom", res, err)
	}
}

func TestDefaultMemoryLimitAlwaysApplies(t *testing.T) {
	d := NewWithOptions(Options{CacheDir: cacheDir, DefaultMemory: 48 << 20})
	defer d.Close(context.Background())
	inst := newSandboxOf(t, d, policy.Minimal())
	out := run(t, inst, req("alloc"))
	if out.Status != backend.StatusOOM || !strings.Contains(out.Error, "48 MiB") {
		t.Fatalf("status %s error %q, want oom at the 48 MiB default", out.Status, out.Error)
	}
	if !slicesContain(inst.Enforcement().Notes, "48 MiB (kavach default") {
		t.Errorf("notes %q do not report the default memory limit", inst.Enforcement().Notes)
	}
}

func TestTimeout(t *testing.T) {
	inst := newSandbox(t, policy.Strict())
	pr, pw := io.Pipe() // never written: the module blocks reading stdin
	defer pw.Close()
	for name, r := range map[string]*backend.ExecRequest{
		"spin":    req("spin"),
		"sleep":   req("sleep", "1h"),
		"stdin":   {Argv: []string{guestWasm, "echo"}, Stdin: pr, MaxOutput: 100},
		"rawloop": nil,
	} {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			var out *backend.ExecOutput
			var err error
			if r == nil {
				out, err = inst.ExecModule(context.Background(), loopModule, &backend.ExecRequest{Timeout: 200 * time.Millisecond})
			} else {
				r.Timeout = 200 * time.Millisecond
				out, err = inst.Exec(context.Background(), r)
			}
			if err != nil || out.Status != backend.StatusTimeout {
				t.Fatalf("%+v, %v; want timeout", out, err)
			}
			if el := time.Since(start); el > 5*time.Second {
				t.Fatalf("timeout took %v", el)
			}
		})
	}
}

func TestCPUTimeLimit(t *testing.T) {
	p := policy.Strict()
	p.Limits.CPUTime = policy.Duration(150 * time.Millisecond)
	inst := newSandbox(t, p)
	out := run(t, inst, req("spin"))
	if out.Status != backend.StatusSignaled || out.Signal != 24 || out.CPUTime < 150*time.Millisecond {
		t.Fatalf("status %s signal %d cpu %v, want SIGXCPU after 150ms of CPU", out.Status, out.Signal, out.CPUTime)
	}
	// Sleeping uses no CPU: the budget does not end it.
	out = run(t, inst, req("sleep", "300ms"))
	wantExit(t, out, 0)
}

func TestGoPanicsExitLikeNativeGo(t *testing.T) {
	inst := newSandbox(t, policy.Strict())
	for cmd, want := range map[string]string{"panic": "panic: boom", "nil": "nil pointer dereference"} {
		out := run(t, inst, req(cmd))
		wantExit(t, out, 2)
		if !strings.Contains(string(out.Stderr), want) {
			t.Errorf("%s: stderr %q, want %q", cmd, tail(out.Stderr), want)
		}
	}
}

func TestTraps(t *testing.T) {
	inst := newSandbox(t, policy.Strict())
	for name, tc := range map[string]struct {
		mod    []byte
		reason string
	}{
		"unreachable":   {unreachableModule, "trap: unreachable"},
		"out of bounds": {oobModule, "trap: out of bounds memory access"},
		"stack":         {recurseModule, "trap: stack overflow"},
	} {
		out, err := inst.ExecModule(context.Background(), tc.mod, &backend.ExecRequest{Timeout: 10 * time.Second})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if out.Status != backend.StatusError || out.ExitCode != TrapExitCode || out.Error != tc.reason {
			t.Errorf("%s: status %s exit %d error %q, want error %d %q", name, out.Status, out.ExitCode, out.Error, TrapExitCode, tc.reason)
		}
	}
}

func TestInvalidModules(t *testing.T) {
	inst := newSandbox(t, policy.Strict())
	for name, mod := range map[string][]byte{
		"truncated":   guestBin[:len(guestBin)/2],
		"text":        []byte("#!/bin/sh\necho not wasm\n"),
		"empty":       {},
		"host import": hostImportModule,
		"bad sig":     badSigModule,
		"reactor":     reactorModule,
	} {
		out, err := inst.ExecModule(context.Background(), mod, &backend.ExecRequest{})
		if !errors.Is(err, ErrInvalidModule) {
			t.Errorf("%s: %+v, %v; want ErrInvalidModule", name, out, err)
		}
	}
	_, err := inst.ExecModule(context.Background(), hostImportModule, &backend.ExecRequest{})
	if err == nil || !strings.Contains(err.Error(), "env.foo") {
		t.Errorf("host import error %v does not name env.foo", err)
	}
	// Through Exec, a text file on disk is rejected the same way.
	txt := filepath.Join(t.TempDir(), "x.wasm")
	_ = os.WriteFile(txt, []byte("hello"), 0o644)
	if _, err := inst.Exec(context.Background(), &backend.ExecRequest{Argv: []string{txt}}); !errors.Is(err, ErrInvalidModule) {
		t.Errorf("text file: %v", err)
	}
}

func TestCommandNotFoundOrUnreadable(t *testing.T) {
	inst := newSandbox(t, policy.Strict())
	for path, code := range map[string]int{"/nonexistent/m.wasm": 127, t.TempDir(): 126} {
		out, err := inst.Exec(context.Background(), &backend.ExecRequest{Argv: []string{path}})
		if err != nil || out.Status != backend.StatusError || out.ExitCode != code {
			t.Errorf("%s: %+v, %v; want error %d", path, out, err, code)
		}
	}
}

func TestExecReader(t *testing.T) {
	inst := newSandbox(t, policy.Strict())
	out, err := inst.ExecReader(context.Background(), bytes.NewReader(guestBin),
		&backend.ExecRequest{Argv: []string{"g", "args", "x"}, MaxOutput: 100})
	if err != nil {
		t.Fatal(err)
	}
	wantExit(t, out, 0)
	if string(out.Stdout) != "g|args|x\n" {
		t.Fatalf("stdout %q", out.Stdout)
	}
}

func TestConcurrentRunsCompileOnce(t *testing.T) {
	d := NewWithOptions(Options{CacheDir: cacheDir})
	defer d.Close(context.Background())
	inst := newSandboxOf(t, d, policy.Strict())
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := req("args", strconv.Itoa(i))
			r.Stdin = strings.NewReader("x")
			out, err := inst.Exec(context.Background(), r)
			switch {
			case err != nil:
				errs <- err
			case out.Status != backend.StatusExited || string(out.Stdout) != filepath.Base(guestWasm)+"|args|"+strconv.Itoa(i)+"\n":
				errs <- errors.New("run " + strconv.Itoa(i) + ": " + string(out.Status) + " " + string(out.Stdout))
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if st := d.Stats(); st.Compiles != 1 || st.Hits != n-1 || st.Cached != 1 {
		t.Fatalf("stats %+v, want 1 compile and %d cache hits", st, n-1)
	}
}

func TestPauseResume(t *testing.T) {
	inst := newSandbox(t, policy.Strict())
	ctx := context.Background()
	if err := inst.Pause(ctx); err != nil {
		t.Fatalf("pause idle sandbox: %v", err)
	}
	if _, err := inst.Exec(ctx, req("hello")); !errors.Is(err, ErrPaused) {
		t.Fatalf("exec while paused: %v, want ErrPaused", err)
	}
	if err := inst.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	r := req("spin")
	r.Timeout = 3 * time.Second
	go func() { _, err := inst.Exec(ctx, r); done <- err }()
	waitRunning(t, inst)
	if err := inst.Pause(ctx); !errors.Is(err, ErrPauseUnsupported) {
		t.Fatalf("pause with a running exec: %v, want ErrPauseUnsupported", err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	wantExit(t, run(t, inst, req("hello")), 0)
}

func waitRunning(t *testing.T, inst *Instance) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		inst.mu.Lock()
		n := inst.running
		inst.mu.Unlock()
		if n > 0 {
			time.Sleep(50 * time.Millisecond) // let it reach the module
			return
		}
	}
	t.Fatal("exec did not start")
}

func TestDestroyStopsExecsAndRemovesFiles(t *testing.T) {
	inst, err := testDriver.Create(context.Background(), &backend.Spec{ID: "destroy", Policy: policy.Strict()})
	if err != nil {
		t.Fatal(err)
	}
	w := inst.(*Instance)
	base := w.baseDir
	wantExit(t, run(t, w, req("write", "/work/f", "x")), 0)
	done := make(chan error, 1)
	go func() { _, err := w.Exec(context.Background(), req("spin")); done <- err }()
	waitRunning(t, w)
	if err := inst.Destroy(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrDestroyed) {
			t.Fatalf("interrupted exec: %v, want ErrDestroyed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Destroy did not stop the exec")
	}
	if _, err := os.Stat(base); !os.IsNotExist(err) {
		t.Fatalf("sandbox directory %s still exists: %v", base, err)
	}
	if err := inst.Destroy(context.Background()); err != nil {
		t.Fatalf("second Destroy: %v", err)
	}
	if _, err := w.Exec(context.Background(), req("hello")); !errors.Is(err, ErrDestroyed) {
		t.Fatalf("exec after destroy: %v", err)
	}
}

func TestSweepStaleDirectories(t *testing.T) {
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skip("no true(1):", err)
	}
	dead := filepath.Join(os.TempDir(), stalePrefix+strconv.Itoa(cmd.Process.Pid)+"-test")
	live := filepath.Join(os.TempDir(), stalePrefix+strconv.Itoa(os.Getppid())+"-test")
	for _, d := range []string{dead, live} {
		if err := os.MkdirAll(filepath.Join(d, "work"), 0o755); err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(d)
	}
	sweepStale()
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Errorf("stale directory of a dead process survived: %v", err)
	}
	if _, err := os.Stat(live); err != nil {
		t.Errorf("directory of a live process was removed: %v", err)
	}
}

func TestEnforcementAndScore(t *testing.T) {
	info := testDriver.Info().ScoreBackend()
	for _, tc := range []struct {
		p    policy.Policy
		want string
	}{
		{policy.Minimal(), "65 (standard)"},
		{policy.Basic(), "68 (standard)"},
		{policy.Strict(), "73 (hardened)"},
	} {
		inst := newSandbox(t, tc.p)
		enf := inst.Enforcement()
		got := score.Compute(info, score.Asked(&tc.p), enf.Layers, enf.Lost)
		if got.String() != tc.want {
			t.Errorf("%s: effective score %s, want %s", tc.p.Name, got, tc.want)
		}
		if decl := score.Declared(info, &tc.p, testDriver.Capabilities()); decl.String() != got.String() {
			t.Errorf("%s: declared %s differs from effective %s", tc.p.Name, decl, got)
		}
		if tc.p.Seccomp == policy.SeccompStrict && !strings.HasPrefix(enf.Lost[score.ModSeccompStrict], "not applicable") {
			t.Errorf("strict: Lost = %v, want the seccomp modifier explained", enf.Lost)
		}
		if !slicesContain(enf.Notes, "no sockets") || !slicesContain(enf.Notes, "no processes") {
			t.Errorf("%s: notes %q must explain network and pids", tc.p.Name, enf.Notes)
		}
	}
}

func TestMountOfAFileIsRefused(t *testing.T) {
	f := filepath.Join(t.TempDir(), "f")
	_ = os.WriteFile(f, nil, 0o644)
	p := policy.Strict()
	p.Filesystem.Mounts = []policy.Mount{{Source: f, Dest: "/f", Mode: policy.ReadOnly}}
	if _, err := testDriver.Create(context.Background(), &backend.Spec{ID: "f", Policy: p}); err == nil {
		t.Fatal("a file mount was accepted")
	}
}

func slicesContain(notes []string, sub string) bool {
	for _, n := range notes {
		if strings.Contains(n, sub) {
			return true
		}
	}
	return false
}

func tail(b []byte) string {
	if len(b) > 300 {
		b = b[len(b)-300:]
	}
	return string(b)
}
