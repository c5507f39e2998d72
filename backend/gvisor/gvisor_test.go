package gvisor

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kavach-sandbox/kavach/backend"
	"github.com/kavach-sandbox/kavach/internal/reexec"
	"github.com/kavach-sandbox/kavach/internal/runtime"
	"github.com/kavach-sandbox/kavach/policy"
	"github.com/kavach-sandbox/kavach/score"
)

func TestMain(m *testing.M) {
	if reexec.Run() {
		return
	}
	os.Exit(m.Run())
}

func TestInfo(t *testing.T) {
	i := New().Info()
	if i.Name != backend.GVisor || i.Base != 70 || i.SharedKernel {
		t.Errorf("info %+v", i)
	}
	p := policy.Strict()
	if s := score.Declared(i.ScoreBackend(), &p, New().Capabilities()); s.String() != "83 (hardened)" {
		t.Errorf("declared gvisor+strict %s, want 83 (hardened)", s)
	}
}

// TestAllowlistCapability: as root (CAP_SYS_ADMIN) the gvisor backend
// declares the egress allowlist; the runtime tests exercise it end to end.
func TestAllowlistCapability(t *testing.T) {
	if got, want := New().Capabilities().Has(score.NetworkAllowlist), os.Geteuid() == 0; got != want {
		t.Errorf("NetworkAllowlist %v, want %v", got, want)
	}
}

// TestStrictSandbox runs the default policy end to end: gVisor's kernel is
// in use, every strict layer is enforced, and the effective score is 83.
func TestStrictSandbox(t *testing.T) {
	ctx := context.Background()
	d := New()
	if a := d.Probe(ctx); !a.Available {
		if _, err := runtime.Detect(ctx, runtime.Runsc); errors.Is(err, runtime.ErrNotFound) {
			t.Skipf("runsc not installed: %s", a.Reason)
		}
		t.Fatalf("probe: %s", a.Reason)
	}
	if p := d.Runtime().Platform(); p == "kvm" || p == "" {
		t.Errorf("platform %q", p)
	}
	pol := policy.Strict()
	inst, err := d.Create(ctx, &backend.Spec{ID: "gvisor-strict", Policy: pol, Env: []string{"PATH=/usr/bin:/bin"}})
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Destroy(ctx)
	enf := inst.Enforcement()
	if s := score.Compute(d.Info().ScoreBackend(), score.Asked(&pol), enf.Layers, enf.Lost); s.Value != 83 {
		t.Errorf("effective score %s (lost %v)", s, enf.Lost)
	}
	out, err := inst.Exec(ctx, &backend.ExecRequest{Argv: []string{"cat", "/proc/self/status"}, Timeout: 10 * time.Second, MaxOutput: 1 << 16})
	if err != nil || out.ExitCode != 0 {
		t.Fatalf("exec: %v %+v", err, out)
	}
	// The exec'd command carries the policy's seccomp filter.
	if !strings.Contains(string(out.Stdout), "Seccomp:\t2") {
		t.Errorf("exec'd process not in seccomp filter mode:\n%s", out.Stdout)
	}
}
