package runtime

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/kavach-sandbox/kavach/backend"
	"github.com/kavach-sandbox/kavach/internal/seccomp"
)

// writeTestLoader writes the loader with prog into a temporary directory.
func writeTestLoader(t *testing.T, prog *seccomp.Program) string {
	t.Helper()
	if !loaderSupported() {
		t.Skip("the tiny seccomp loader exists for amd64 only")
	}
	dir := t.TempDir()
	if err := writeLoader(dir, prog); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, filepath.Base(loaderPath))
}

// strictProgram is the strict profile's compiled filter.
func strictProgram(t *testing.T) *seccomp.Program {
	t.Helper()
	prog, err := seccomp.Compile(seccomp.ProfileStrict, nil)
	if err != nil {
		t.Fatal(err)
	}
	return prog
}

// runLoader runs the loader on the host with argv and env and returns its
// exit code, stdout and stderr.
func runLoader(t *testing.T, loader string, env []string, argv ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(loader, argv...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("run loader: %v", err)
	}
	return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
}

var loaderEnv = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "KAVACH_T=v"}

func TestLoaderLoadsFilterAndExecs(t *testing.T) {
	loader := writeTestLoader(t, strictProgram(t))
	code, out, errOut := runLoader(t, loader, loaderEnv, "sh", "-c", `echo "$0 $1 $KAVACH_T"; grep '^Seccomp:' /proc/self/status`, "a", "b")
	if code != 0 || out != "a b v\nSeccomp:\t2\n" || errOut != "" {
		t.Errorf("got %d %q %q, want argv, env and Seccomp 2", code, out, errOut)
	}
	// Adversarial: what the strict profile denies stays denied after the
	// loader, and is allowed without it (root may make a user namespace).
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("unshare not installed")
	}
	if err := exec.Command("unshare", "--user", "true").Run(); err != nil {
		t.Skipf("control: unshare --user fails without a filter (%v): the test proves nothing", err)
	}
	if code, _, _ := runLoader(t, loader, loaderEnv, "unshare", "--user", "true"); code == 0 {
		t.Error("unshare --user succeeded under the loader's filter")
	}
}

func TestLoaderStartFailures(t *testing.T) {
	loader := writeTestLoader(t, strictProgram(t))
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "plain"), []byte("#!/bin/sh\necho found\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", 5000)
	cases := []struct {
		name string
		env  []string
		argv []string
		code int
		out  string
	}{
		{"not found", loaderEnv, []string{"kavach-no-such-command"}, 127, ""},
		{"no PATH", []string{"A=1"}, []string{"true"}, 127, ""},
		{"empty name", loaderEnv, []string{""}, 127, ""},
		{"missing path", loaderEnv, []string{dir + "/missing"}, 127, ""},
		{"not a directory", loaderEnv, []string{plain + "/x"}, 127, ""},
		{"not executable", loaderEnv, []string{plain}, 126, ""},
		{"directory", loaderEnv, []string{dir}, 126, ""},
		{"no command", loaderEnv, nil, 126, ""},
		// The search skips empty, too long, missing and non-executable
		// entries and runs the first executable one.
		{"search", []string{"PATH=::/" + long + ":/nonexistent:" + dir + ":" + bin}, []string{"plain"}, 0, "found\n"},
		{"search exhausted", []string{"PATH=/nonexistent:" + dir + ":"}, []string{"plain"}, 127, ""},
	}
	for _, tc := range cases {
		code, out, errOut := runLoader(t, loader, tc.env, tc.argv...)
		wantErr := ""
		switch tc.code {
		case 127:
			wantErr = helperPrefix + "command not found\n"
		case 126:
			wantErr = helperPrefix + "cannot execute\n"
		}
		if code != tc.code || out != tc.out || errOut != wantErr {
			t.Errorf("%s: got %d %q %q, want %d %q %q", tc.name, code, out, errOut, tc.code, tc.out, wantErr)
		}
	}
}

// TestLoaderRefusesWithoutFilter: a filter the kernel rejects must stop
// the loader before the command runs. The control, a valid one-instruction
// filter, shows the same command does run.
func TestLoaderRefusesWithoutFilter(t *testing.T) {
	const retAllow = unix.BPF_RET | unix.BPF_K
	allow := [3]uint32{retAllow, 0, unix.SECCOMP_RET_ALLOW}
	cases := map[string][][3]uint32{
		"control":        {allow},
		"empty":          nil,
		"bad opcode":     {{0xffff, 0, 0}, allow},
		"jump past end":  {{unix.BPF_JMP | unix.BPF_JA, 0, 100}, allow},
		"misaligned ld":  {{unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, 0, 3}, allow},
		"loads past end": {{unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, 0, 4096}, allow},
	}
	for name, insns := range cases {
		t.Run(name, func(t *testing.T) {
			loader := writeTestLoader(t, rawProgram(t, insns))
			marker := filepath.Join(t.TempDir(), "ran")
			code, out, errOut := runLoader(t, loader, loaderEnv, "sh", "-c", "echo ran > "+marker)
			_, statErr := os.Stat(marker)
			if name == "control" {
				if code != 0 || statErr != nil {
					t.Fatalf("valid filter: got %d %q, marker: %v", code, errOut, statErr)
				}
				return
			}
			if code != 126 || out != "" || errOut != loaderFilterMsg+"\n" {
				t.Errorf("got %d %q %q, want 126 and %q", code, out, errOut, loaderFilterMsg)
			}
			if !errors.Is(statErr, os.ErrNotExist) {
				t.Errorf("the command ran without its filter (stat: %v)", statErr)
			}
			if !seccompFailure(errOut) {
				t.Errorf("exec classification does not see %q as a filter failure", errOut)
			}
		})
	}
}

// rawProgram builds a Program from {code, jt<<8|jf, k} triples through
// the wire format, so the kernel, not kavach's compiler, judges them.
func rawProgram(t *testing.T, insns [][3]uint32) *seccomp.Program {
	t.Helper()
	b := append([]byte("KSB1"), binary.LittleEndian.AppendUint32(nil, uint32(len(insns)))...)
	for _, in := range insns {
		b = binary.LittleEndian.AppendUint16(b, uint16(in[0]))
		b = append(b, byte(in[1]>>8), byte(in[1]))
		b = binary.LittleEndian.AppendUint32(b, in[2])
	}
	prog, err := seccomp.UnmarshalProgram(b)
	if err != nil {
		t.Fatalf("decode test program: %v", err)
	}
	return prog
}

func TestLoaderLayout(t *testing.T) {
	elf := loaderELF(strictProgram(t))
	body := elf[elfHeaders:]
	if !bytes.HasPrefix(body[len(loaderCode):], []byte(loaderMessages)) {
		t.Fatal("messages do not follow the code")
	}
	off := (len(loaderCode) + len(loaderMessages) + 7) &^ 7
	n := binary.LittleEndian.Uint16(body[off:])
	addr := binary.LittleEndian.Uint64(body[off+8:])
	if want := strictProgram(t).Instructions(); int(n) != len(want) || len(body) != off+16+8*len(want) {
		t.Errorf("fprog length %d, body %d bytes, want %d instructions", n, len(body), len(want))
	}
	if addr != elfBase+elfHeaders+uint64(off+16) {
		t.Errorf("fprog points at %#x", addr)
	}
}

// TestLoaderInGVisor: under runsc a filtered exec without secrets starts
// through the loader, is filtered, and one whose filter the kernel rejects
// never runs and is reported as a failed exec.
func TestLoaderInGVisor(t *testing.T) {
	if !loaderSupported() {
		t.Skip("the tiny seccomp loader exists for amd64 only")
	}
	requireRuntime(t, Runsc)
	c := newContainer(t, Runsc, testPolicy())
	if got := processArgs(t, c, nil); got[0] != loaderPath || got[1] != "true" {
		t.Errorf("exec without secrets starts as %q, want the loader", got)
	}
	if got := processArgs(t, c, []string{"fd=3:1"}); got[0] != helperPath {
		t.Errorf("exec with secrets starts as %q, want the Go helper", got)
	}
	if out := sh(t, c, "grep '^Seccomp:' /proc/self/status"); out != "Seccomp:\t2\n" {
		t.Errorf("inside gVisor: %q, want Seccomp 2", out)
	}
	// A second loader whose filter gVisor rejects, started (filtered) by
	// the real one: the command must not run, the exec must fail.
	bad := rawProgram(t, [][3]uint32{{0xffff, 0, 0}, {unix.BPF_RET | unix.BPF_K, 0, unix.SECCOMP_RET_ALLOW}})
	if err := os.WriteFile(filepath.Join(c.bundle.Dir, "kavach", "corrupt"), loaderELF(bad), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := c.Exec(context.Background(), &backend.ExecRequest{
		Argv: []string{helperDir + "/corrupt", "sh", "-c", "echo ran > /tmp/ran"}, Timeout: 10 * time.Second, MaxOutput: 1024})
	if !errors.Is(err, ErrCommand) || !strings.Contains(err.Error(), "cannot load filter") {
		t.Errorf("exec through a rejected filter: %v, want ErrCommand", err)
	}
	if out := run(t, c, "test", "-e", "/tmp/ran"); out.ExitCode != 1 {
		t.Errorf("the command ran without its filter (test -e: %d %q)", out.ExitCode, out.Stderr)
	}
}

// processArgs is the argv runsc starts for "true" with the helper options.
func processArgs(t *testing.T, c *Container, secretOpts []string) []string {
	t.Helper()
	p, err := c.processFile([]string{"true"}, testEnv, "/", secretOpts)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	data, err := os.ReadFile("/proc/self/fd/" + strconv.Itoa(int(p.Fd())))
	if err != nil {
		t.Fatal(err)
	}
	var proc specs.Process
	if err := json.Unmarshal(data, &proc); err != nil {
		t.Fatal(err)
	}
	return proc.Args
}
