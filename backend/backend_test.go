package backend

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/kavach-sandbox/kavach/policy"
	"github.com/kavach-sandbox/kavach/score"
)

func TestParseName(t *testing.T) {
	tests := []struct {
		in   string
		want Name
	}{
		{"noop", Noop}, {"process", Process}, {"oci", OCI}, {"wasm", WASM}, {"gvisor", GVisor},
		{"sgx", SGX}, {"sev", SEV}, {"firecracker", Firecracker}, {"auto", Auto},
		{"GVisor", GVisor}, {" process ", Process}, {"AUTO", Auto}, {"\tWasm\n", WASM}, {"FireCracker", Firecracker},
	}
	for _, tt := range tests {
		got, err := ParseName(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseName(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, in := range []string{"", "docker", "g visor", "process2", "kvm"} {
		got, err := ParseName(in)
		if !errors.Is(err, ErrUnknown) || got != "" {
			t.Errorf("ParseName(%q) = %q, %v; want ErrUnknown", in, got, err)
			continue
		}
		msg := err.Error()
		want := `unknown backend "` + in + `" (want one of noop, process, oci, wasm, gvisor, sgx, sev, firecracker, auto)`
		if msg != want {
			t.Errorf("ParseName(%q) error\n got %q\nwant %q", in, msg, want)
		}
	}
}

func TestNamesAndBaseScores(t *testing.T) {
	want := []struct {
		name   Name
		base   int
		shared bool
	}{
		{Noop, 0, false}, {Process, 50, true}, {OCI, 55, true}, {WASM, 65, false},
		{GVisor, 70, false}, {SGX, 80, false}, {SEV, 82, false}, {Firecracker, 90, false},
	}
	names := Names()
	if len(names) != 8 {
		t.Fatalf("Names() = %v, want 8 names", names)
	}
	for i, w := range want {
		if names[i] != w.name {
			t.Errorf("Names()[%d] = %s, want %s", i, names[i], w.name)
		}
		info, ok := InfoOf(w.name)
		if !ok || info.Name != w.name || info.Base != w.base || info.SharedKernel != w.shared || info.Isolation == "" {
			t.Errorf("InfoOf(%s) = %+v, %v", w.name, info, ok)
		}
		sb := info.ScoreBackend()
		if sb != score.NewBackend(w.base, w.shared, w.name == Noop) || sb.Base() != w.base || sb.SharedKernel() != w.shared || sb.Noop() != (w.name == Noop) {
			t.Errorf("ScoreBackend(%s) = %+v", w.name, sb)
		}
	}
	if _, ok := InfoOf(Auto); ok {
		t.Error("auto is not a backend of its own")
	}
	names[0] = "changed"
	if Names()[0] != Noop {
		t.Error("Names returns a shared slice")
	}
}

// withDrivers runs f with exactly the given drivers registered.
func withDrivers(t *testing.T, ds ...Driver) {
	t.Helper()
	regMu.Lock()
	saved := drivers
	drivers = map[Name]Driver{}
	regMu.Unlock()
	for _, d := range ds {
		Register(d)
	}
	t.Cleanup(func() {
		regMu.Lock()
		drivers = saved
		regMu.Unlock()
	})
}

func TestLookupUnimplemented(t *testing.T) {
	withDrivers(t)
	for _, n := range Names() {
		d, err := Lookup(n)
		if err != nil {
			t.Fatalf("Lookup(%s): %v", n, err)
		}
		u, ok := d.(Unimplemented)
		if !ok {
			t.Fatalf("Lookup(%s) = %T, want Unimplemented", n, d)
		}
		if u.Info().Name != n {
			t.Errorf("Info().Name = %s", u.Info().Name)
		}
		a := d.Probe(context.Background())
		if a.Available || !strings.Contains(a.Reason, "not implemented yet") {
			t.Errorf("Probe(%s) = %+v", n, a)
		}
		if d.Capabilities() != FullCapabilities() {
			t.Errorf("Capabilities(%s) = %+v", n, d.Capabilities())
		}
		inst, err := d.Create(context.Background(), &Spec{ID: "x", Policy: policy.Strict()})
		if inst != nil || !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "not implemented yet") || !strings.Contains(err.Error(), string(n)) {
			t.Errorf("Create(%s) = %v, %v", n, inst, err)
		}
	}
	for _, n := range []Name{Auto, "docker", ""} {
		if d, err := Lookup(n); d != nil || !errors.Is(err, ErrUnknown) {
			t.Errorf("Lookup(%q) = %v, %v; want ErrUnknown", n, d, err)
		}
	}
}

func TestFullCapabilities(t *testing.T) {
	want := score.SeccompBasic | score.SeccompAllowlist | score.Filesystem | score.NetworkOff | score.NetworkAllowlist | score.Limits
	if got := FullCapabilities(); got != want {
		t.Fatalf("FullCapabilities = %+v", got)
	}
}

// fake is a driver with a chosen availability and capabilities.
type fake struct {
	name      Name
	available bool
	caps      score.Layers
}

func (f fake) Info() Info {
	i, _ := InfoOf(f.name)
	return i
}
func (f fake) Probe(context.Context) Availability {
	return Availability{Available: f.available, Reason: "fake"}
}
func (f fake) Capabilities() score.Layers { return f.caps }
func (f fake) Create(context.Context, *Spec) (Instance, error) {
	return nil, errors.New("fake")
}

func TestRegisterAndResolve(t *testing.T) {
	p := policy.Strict()
	ctx := context.Background()

	withDrivers(t)
	if _, err := Resolve(ctx, Auto, &p); !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "auto") {
		t.Fatalf("auto with nothing available: %v", err)
	}

	full := FullCapabilities()
	withDrivers(t,
		fake{Noop, true, 0},
		fake{Process, true, full},
		fake{OCI, true, full},
		fake{GVisor, false, full},
	)
	d, err := Resolve(ctx, Auto, &p)
	if err != nil || d.Info().Name != OCI {
		t.Fatalf("auto = %v, %v; want oci (the available backend with the highest score)", d, err)
	}
	// A weaker backend that enforces more can beat a higher base.
	withDrivers(t,
		fake{Process, true, full},
		fake{OCI, true, 0},
	)
	if d, err := Resolve(ctx, Auto, &p); err != nil || d.Info().Name != Process {
		t.Fatalf("auto = %v, %v; want process (63 beats oci's 50)", d, err)
	}
	// Only noop available: auto never picks it.
	withDrivers(t, fake{Noop, true, 0})
	if d, err := Resolve(ctx, Auto, &p); err == nil {
		t.Fatalf("auto picked %s", d.Info().Name)
	}
	// A named backend resolves to its driver, available or not.
	withDrivers(t, fake{GVisor, false, full})
	if d, err := Resolve(ctx, GVisor, &p); err != nil || d.Info().Name != GVisor {
		t.Fatalf("Resolve(gvisor) = %v, %v", d, err)
	}
	if _, ok := mustLookup(t, GVisor).(fake); !ok {
		t.Fatal("Register did not install the driver")
	}
	Register(fake{GVisor, true, full})
	if !mustLookup(t, GVisor).Probe(ctx).Available {
		t.Fatal("Register did not replace the earlier driver")
	}
}

func mustLookup(t *testing.T, n Name) Driver {
	t.Helper()
	d, err := Lookup(n)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestMergeEnv(t *testing.T) {
	base := []string{"PATH=/bin", "HOME=/work", "A=1"}
	got := MergeEnv(base, []string{"A=2", "B=3"}, nil, []string{"PATH=/usr/bin", "A=4"})
	want := []string{"PATH=/usr/bin", "HOME=/work", "A=4", "B=3"}
	if !reflect.DeepEqual(got, want) || base[2] != "A=1" {
		t.Fatalf("MergeEnv = %q (base %q), want %q", got, base, want)
	}
}
