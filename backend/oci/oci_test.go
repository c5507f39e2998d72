package oci

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kavach-sandbox/kavach/backend"
	"github.com/kavach-sandbox/kavach/internal/reexec"
	"github.com/kavach-sandbox/kavach/internal/runtime"
	"github.com/kavach-sandbox/kavach/policy"
)

func TestMain(m *testing.M) {
	if reexec.Run() {
		return
	}
	os.Exit(m.Run())
}

func TestInfo(t *testing.T) {
	i := New(Options{}).Info()
	if i.Name != backend.OCI || i.Base != 55 || !i.SharedKernel {
		t.Errorf("info %+v", i)
	}
}

func TestPrefersCrunAndHonoursChoice(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		opts Options
		want runtime.Kind
	}{{Options{}, runtime.Crun}, {Options{Runtime: "runc"}, runtime.Runc}} {
		if _, err := runtime.Detect(ctx, tc.want); err != nil {
			t.Logf("skip %s: %v", tc.want, err)
			continue
		}
		d := New(tc.opts)
		if a := d.Probe(ctx); !a.Available {
			t.Fatalf("probe: %s", a.Reason)
		}
		if got := d.Runtime().Kind(); got != tc.want {
			t.Errorf("%+v uses %s, want %s", tc.opts, got, tc.want)
		}
	}
}

func TestUnknownRuntimeUnavailable(t *testing.T) {
	a := New(Options{Runtime: "kavach-no-such-runtime"}).Probe(context.Background())
	if a.Available || !strings.Contains(a.Reason, "not found in PATH") {
		t.Errorf("probe %+v", a)
	}
}

// TestEndToEnd drives the backend through the Driver interface only.
func TestEndToEnd(t *testing.T) {
	ctx := context.Background()
	d := New(Options{})
	if a := d.Probe(ctx); !a.Available {
		if _, err := runtime.Detect(ctx, runtime.Runc); err != nil {
			t.Skipf("no OCI runtime: %s", a.Reason)
		}
		t.Fatalf("probe: %s", a.Reason)
	}
	inst, err := d.Create(ctx, &backend.Spec{ID: "oci-e2e", Policy: policy.Strict(), Env: []string{"PATH=/usr/bin:/bin"}})
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Destroy(ctx)
	out, err := inst.Exec(ctx, &backend.ExecRequest{Argv: []string{"sh", "-c", "echo $PATH; exit 5"}, Timeout: 10 * time.Second, MaxOutput: 100})
	if err != nil || out.Status != backend.StatusExited || out.ExitCode != 5 || string(out.Stdout) != "/usr/bin:/bin\n" {
		t.Fatalf("exec: %v %+v", err, out)
	}
	if err := inst.Destroy(ctx); err != nil {
		t.Fatal(err)
	}
	if err := inst.Destroy(ctx); err != nil {
		t.Errorf("second destroy: %v", err)
	}
}
