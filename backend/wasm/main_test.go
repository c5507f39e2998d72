package wasm

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/kavach-sandbox/kavach/backend"
	"github.com/kavach-sandbox/kavach/policy"
)

var (
	// guestWasm is the path of testdata/guest built for wasip1.
	guestWasm string
	// guestBin is its content.
	guestBin []byte
	// testDriver is shared by the tests; its file cache lives in cacheDir.
	testDriver *Driver
	cacheDir   string
)

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "kavach-wasmtest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if guestWasm, err = buildGuest(dir); err != nil {
		fmt.Fprintln(os.Stderr, "build test module:", err)
		return 1
	}
	if guestBin, err = os.ReadFile(guestWasm); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cacheDir = filepath.Join(dir, "cache")
	testDriver = NewWithOptions(Options{CacheDir: cacheDir})
	defer testDriver.Close(context.Background())
	return m.Run()
}

// buildGuest builds testdata/guest with GOOS=wasip1 GOARCH=wasm into dir
// (Go's build cache makes a rebuild of unchanged sources quick).
func buildGuest(dir string) (string, error) {
	out := filepath.Join(dir, "guest.wasm")
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", out, "./testdata/guest")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, b)
	}
	return out, nil
}

// newSandbox creates a sandbox of the shared driver and destroys it when
// the test ends.
func newSandbox(t testing.TB, p policy.Policy) *Instance {
	t.Helper()
	return newSandboxOf(t, testDriver, p)
}

func newSandboxOf(t testing.TB, d *Driver, p policy.Policy) *Instance {
	t.Helper()
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	inst, err := d.Create(context.Background(), &backend.Spec{ID: t.Name(), Policy: p, Env: []string{"HOME=/work", "LANG=C.UTF-8"}})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	t.Cleanup(func() {
		if err := inst.Destroy(context.Background()); err != nil {
			t.Errorf("Destroy: %v", err)
		}
	})
	return inst.(*Instance)
}

// req is an exec request of the guest with the default caps.
func req(args ...string) *backend.ExecRequest {
	return &backend.ExecRequest{Argv: append([]string{guestWasm}, args...), Timeout: policy.DefaultTimeout, MaxOutput: 1 << 20}
}

func run(t testing.TB, inst *Instance, r *backend.ExecRequest) *backend.ExecOutput {
	t.Helper()
	out, err := inst.Exec(context.Background(), r)
	if err != nil {
		t.Fatalf("Exec %v: %v", r.Argv[1:], err)
	}
	return out
}

func wantExit(t testing.TB, out *backend.ExecOutput, code int) {
	t.Helper()
	if out.Status != backend.StatusExited || out.ExitCode != code {
		t.Fatalf("status %s exit %d (error %q, stderr %q), want exited %d", out.Status, out.ExitCode, out.Error, out.Stderr, code)
	}
}
