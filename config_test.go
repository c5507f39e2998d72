package kavach_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/kavach-sandbox/kavach"
	"github.com/kavach-sandbox/kavach/credential"
	"github.com/kavach-sandbox/kavach/gate"
	"github.com/kavach-sandbox/kavach/policy"
)

// secretStore holds TOKEN and KEY, closed when the test ends.
func secretStore(t *testing.T) *credential.Store {
	t.Helper()
	s := credential.NewStore()
	t.Cleanup(s.Close)
	for _, n := range []string{"TOKEN", "KEY"} {
		if err := s.Add(context.Background(), n, credential.FromValue([]byte("value-of-"+n))); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// handBuilt is a Config filled in by hand, as a caller may, with every list
// set: the noop backend, an environment secret and a custom gate policy.
func handBuilt(t *testing.T) kavach.Config {
	g := gate.DefaultPolicy()
	g.Allow = []string{"email"}
	return kavach.Config{Backend: kavach.Noop, Policy: policy.Basic(), Gate: &g, Credentials: secretStore(t),
		Secrets: []credential.Binding{{Name: "TOKEN", Method: credential.MethodEnv, EnvVar: "TOKEN"}}}
}

// started creates and starts a sandbox destroyed when the test ends.
func started(t *testing.T, cfg kavach.Config) *kavach.Sandbox {
	t.Helper()
	ctx := context.Background()
	sb, err := kavach.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sb.Destroy(context.Background()) })
	if err := sb.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return sb
}

// tamper rewrites, in place, everything the caller's Config shares with
// whatever New was given: a binding that no longer validates, a gate policy
// New would refuse, and the policy's lists.
func tamper(cfg *kavach.Config) {
	cfg.Secrets[0] = credential.Binding{Name: "MISSING", Method: credential.MethodFD, FD: 1}
	cfg.Gate.Actions[gate.SeverityCritical] = gate.Action(99)
	cfg.Gate.Allow[0] = "no-such-rule"
	cfg.Policy.Env["INJECTED"] = "1"
}

// TestNewOwnsConfig: once New returns, changing the caller's Config, even
// inside its slices and maps, changes nothing in the sandbox: the next exec
// injects what was validated.
func TestNewOwnsConfig(t *testing.T) {
	cfg := handBuilt(t)
	cfg.Policy.Env = map[string]string{"A": "1"}
	sb := started(t, cfg)
	tamper(&cfg)
	res, err := sb.Exec(context.Background(), []string{"true"})
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("exec after the caller changed its config: %+v, %v", res, err)
	}
}

// TestPoolOwnsConfig: sandboxes a pool prepares after NewPool returned
// come from the configuration NewPool validated, not the caller's memory.
func TestPoolOwnsConfig(t *testing.T) {
	ctx := context.Background()
	cfg := handBuilt(t)
	cfg.Policy.Env = map[string]string{"A": "1"}
	p, err := kavach.NewPool(ctx, cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	tamper(&cfg)
	for range 3 { // the first is prepared; the others are made after the change
		sb, err := p.Claim(ctx)
		if err != nil {
			t.Fatalf("claim after the caller changed its config: %v", err)
		}
		_, err = sb.Exec(ctx, []string{"true"})
		_ = sb.Destroy(ctx)
		if err != nil {
			t.Fatalf("exec after the caller changed its config: %v", err)
		}
	}
}

// TestNewLeavesConfigAlone: New validates its own copy. Two concurrent
// News of one hand-built Config, whose allowlist has room to grow, neither
// write into the caller's array nor race (go test -race).
func TestNewLeavesConfigAlone(t *testing.T) {
	cfg := handBuilt(t)
	allow := make([]string, 1, 8)
	allow[0] = "base.example.com"
	cfg.Policy.Network = policy.Network{Mode: policy.NetworkAllowlist, Allow: allow}
	cfg.Secrets = []credential.Binding{{Name: "TOKEN", Method: credential.MethodProxy, Hosts: []string{"api.example.com"}}}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Go(func() {
			sb, err := kavach.New(context.Background(), cfg)
			if err == nil {
				err = sb.Destroy(context.Background())
			}
			errs[i] = err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if got := allow[:cap(allow)]; got[0] != "base.example.com" || slices.ContainsFunc(got[1:], func(s string) bool { return s != "" }) {
		t.Fatalf("New wrote into the caller's allowlist: %q", got)
	}
	if cfg.Backend != kavach.Noop || len(cfg.Policy.Network.Allow) != 1 {
		t.Fatalf("New changed the caller's config: %+v", cfg)
	}
}

// TestValidateMatchesNew: what New would refuse, Validate and Build refuse
// first, naming the field: an impossible gate policy, and two secrets on
// one channel (which would fail every exec).
func TestValidateMatchesNew(t *testing.T) {
	fd := func(name string, n int) credential.Binding {
		return credential.Binding{Name: name, Method: credential.MethodFD, FD: n}
	}
	env := func(name, v string) credential.Binding {
		return credential.Binding{Name: name, Method: credential.MethodEnv, EnvVar: v}
	}
	stdin := func(name string) credential.Binding {
		return credential.Binding{Name: name, Method: credential.MethodStdin}
	}
	tests := []struct {
		name    string
		gate    *gate.Policy
		secrets []credential.Binding
		field   string
	}{
		{"gate action 99", &gate.Policy{Actions: map[gate.Severity]gate.Action{gate.SeverityHigh: 99}}, nil, "gate"},
		{"gate negative artifact size", &gate.Policy{MaxArtifactSize: -5}, nil, "gate"},
		{"gate allows a mandatory rule", &gate.Policy{Allow: []string{gate.RuleRegisteredSecret}}, nil, "gate"},
		{"two secrets on one fd", nil, []credential.Binding{fd("TOKEN", 3), fd("KEY", 3)}, "secrets[1]"},
		{"two secrets in one env var", nil, []credential.Binding{fd("TOKEN", 3), env("TOKEN", "X"), env("KEY", "X")}, "secrets[2]"},
		{"two secrets on stdin", nil, []credential.Binding{stdin("TOKEN"), stdin("KEY")}, "secrets[1]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := secretStore(t)
			cfg := kavach.Config{Backend: kavach.Noop, Policy: policy.Basic(), Gate: tt.gate, Credentials: store, Secrets: tt.secrets}
			check := func(what string, err error) {
				t.Helper()
				if !errors.Is(err, kavach.ErrConfig) || !strings.Contains(err.Error(), tt.field) {
					t.Errorf("%s: %v, want ErrConfig naming %s", what, err, tt.field)
				}
			}
			check("Validate", cfg.Validate())
			sb, err := kavach.New(context.Background(), cfg)
			if err == nil {
				_ = sb.Destroy(context.Background())
			}
			check("New", err)
			b := kavach.NewConfig().Backend(kavach.Noop)
			if tt.gate != nil {
				b.Gate(*tt.gate)
			}
			for _, s := range tt.secrets {
				b.Secret(store, s)
			}
			_, err = b.Build()
			check("Build", err)
		})
	}
	// One secret on several channels is fine.
	cfg := kavach.Config{Backend: kavach.Noop, Policy: policy.Basic(), Credentials: secretStore(t),
		Secrets: []credential.Binding{fd("TOKEN", 3), env("TOKEN", "T"), stdin("TOKEN"), fd("KEY", 4)}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if _, err := started(t, cfg).Exec(context.Background(), []string{"true"}); err != nil {
		t.Fatal(err)
	}
}

// TestValidateNeverWritesSharedArrays: Validate adds proxy hosts to the
// allowlist without writing into an array another Config shares, so two
// copies of one Config validated one after the other keep their own hosts.
func TestValidateNeverWritesSharedArrays(t *testing.T) {
	allow := make([]string, 1, 8)
	allow[0] = "base.example.com"
	proxied := func(host string) kavach.Config {
		return kavach.Config{Backend: kavach.Noop, Policy: policy.Basic(), Credentials: secretStore(t),
			Secrets: []credential.Binding{{Name: "TOKEN", Method: credential.MethodProxy, Hosts: []string{host}}}}
	}
	c1, c2 := proxied("one.example.com"), proxied("two.example.com")
	c1.Policy.Network = policy.Network{Mode: policy.NetworkAllowlist, Allow: allow}
	c2.Policy.Network = c1.Policy.Network
	if err := c1.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := c2.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := c1.Policy.Network.Allow; !slices.Equal(got, []string{"base.example.com", "one.example.com"}) {
		t.Fatalf("first config's allowlist = %q", got)
	}
	if got := allow[:cap(allow)]; slices.ContainsFunc(got[1:], func(s string) bool { return s != "" }) {
		t.Fatalf("Validate wrote into a shared array: %q", got)
	}
}
