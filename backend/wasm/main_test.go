package wasm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
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
	var err error
	if guestWasm, err = buildGuest(); err != nil {
		fmt.Fprintln(os.Stderr, "build test module:", err)
		return 1
	}
	if guestBin, err = os.ReadFile(guestWasm); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if cacheDir, err = os.MkdirTemp("", "kavach-wasmtest-cache-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(cacheDir)
	testDriver = NewWithOptions(Options{CacheDir: cacheDir})
	defer testDriver.Close(context.Background())
	return m.Run()
}

// buildGuest builds testdata/guest with GOOS=wasip1 GOARCH=wasm once per
// source content and Go version, caching the module under os.TempDir.
func buildGuest() (string, error) {
	src, err := os.ReadFile(filepath.Join("testdata", "guest", "main.go"))
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(append(src, runtime.Version()...))
	out := filepath.Join(os.TempDir(), "kavach-wasmtest-guest-"+hex.EncodeToString(sum[:8])+".wasm")
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	tmp := out + fmt.Sprintf(".%d.tmp", os.Getpid())
	cmd := exec.Command(gobin, "build", "-o", tmp, "./testdata/guest")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("go build: %v\n%s", err, b)
	}
	return out, os.Rename(tmp, out)
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
