package kavach

import (
	"net/netip"
	"reflect"
	"testing"

	"github.com/kavach-sandbox/kavach/credential"
	"github.com/kavach-sandbox/kavach/gate"
	"github.com/kavach-sandbox/kavach/lifecycle"
	"github.com/kavach-sandbox/kavach/policy"
)

// fullConfig has every list and map of a Config set.
func fullConfig() Config {
	p := policy.Strict()
	p.Seccomp, p.SeccompAllow = policy.SeccompCustom, []string{"read", "write"}
	p.Filesystem.Mounts = []policy.Mount{{Source: "/usr", Dest: "/usr", Mode: policy.ReadOnly}}
	p.Network = policy.Network{Mode: policy.NetworkAllowlist, Allow: []string{"a.example.com"}}
	p.Env = map[string]string{"K": "V"}
	g := gate.DefaultPolicy()
	g.Allow = []string{"email"}
	return Config{Backend: Noop, Policy: p, Gate: &g,
		Hooks:   []lifecycle.Hook{func(lifecycle.Event) {}},
		Secrets: []credential.Binding{{Name: "T", Method: credential.MethodProxy, Hosts: []string{"h.example.com"}}},
		Egress:  EgressOptions{AllowPrivate: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}}
}

// TestCloneIsDeep: writing through every list and map of a Config does
// not reach its clone.
func TestCloneIsDeep(t *testing.T) {
	orig := fullConfig()
	c := orig.clone()
	orig.Policy.SeccompAllow[0] = "execve"
	orig.Policy.Filesystem.Mounts[0].Mode = policy.ReadWrite
	orig.Policy.Network.Allow[0] = "evil.example.com"
	orig.Policy.Env["K"] = "changed"
	orig.Gate.Actions[gate.SeverityCritical] = gate.ActionPass
	orig.Gate.Allow[0] = "ipv4"
	hook := orig.Hooks[0]
	orig.Hooks[0] = nil
	orig.Secrets[0].Hosts[0] = "evil.example.com"
	orig.Secrets[0].Name = "OTHER"
	orig.Egress.AllowPrivate[0] = netip.MustParsePrefix("0.0.0.0/0")

	if reflect.ValueOf(c.Hooks[0]).Pointer() != reflect.ValueOf(hook).Pointer() {
		t.Error("the clone's hook changed")
	}
	want := fullConfig()
	c.Hooks, want.Hooks = nil, nil // funcs do not compare
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("the clone changed with the original:\n got  %+v\n want %+v", c, want)
	}
}

// TestCloneEmptyAllocatesNothing: a Config without lists is copied without
// allocating, which keeps Build allocation-free.
func TestCloneEmptyAllocatesNothing(t *testing.T) {
	c := Config{Backend: Process, Policy: policy.Strict()}
	var sink Config
	if n := testing.AllocsPerRun(100, func() { sink = c.clone() }); n != 0 {
		t.Fatalf("clone of a config without lists: %v allocations", n)
	}
	_ = sink
}
