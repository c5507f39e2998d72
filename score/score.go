// Package score computes kavach's strength score: a number from 0 to 100
// that says how strongly a sandbox confines its code, with a label and a
// breakdown of every modifier.
//
//	score = clamp(base + modifiers, 0, 100)
//
// The declared score assumes a backend enforces everything the policy asks
// that the backend supports; the effective score counts only the layers the
// backend reports it actually applied.
package score

import (
	"strconv"

	"github.com/kavach-sandbox/kavach/policy"
)

// Modifier points (SPEC §3).
const (
	PointsSeccompOff       = -5
	PointsSeccompBasic     = 3
	PointsSeccompStrict    = 5
	PointsFilesystem       = 3
	PointsNetworkOff       = 3
	PointsNetworkAllowlist = 1
	PointsLimits           = 2
)

// Modifier names, as they appear in breakdowns.
const (
	ModSeccompOff       = "seccomp-off"
	ModSeccompBasic     = "seccomp-basic"
	ModSeccompStrict    = "seccomp-strict"
	ModFilesystem       = "filesystem"
	ModNetworkOff       = "network-off"
	ModNetworkAllowlist = "network-allowlist"
	ModLimits           = "resource-limits"
)

// Layers is a set of protections: asked by a policy, supported by a
// backend, or actually enforced for one sandbox.
type Layers struct {
	// Seccomp is the profile in force: off, basic, strict or custom.
	Seccomp string `json:"seccomp"`
	// Filesystem is Landlock rules or a read-only root.
	Filesystem bool `json:"filesystem"`
	// NetworkOff means no network beyond loopback.
	NetworkOff bool `json:"network_off"`
	// NetworkAllowlist means the network is reachable only through the
	// egress proxy's allowlist.
	NetworkAllowlist bool `json:"network_allowlist"`
	// Limits means a memory or CPU limit, and a pids limit.
	Limits bool `json:"limits"`
}

// Asked returns the layers a policy asks for.
func Asked(p *policy.Policy) Layers {
	return Layers{
		Seccomp:          p.Seccomp,
		Filesystem:       p.Filesystem.ReadOnlyRoot,
		NetworkOff:       p.Network.Mode == policy.NetworkOff,
		NetworkAllowlist: p.Network.Mode == policy.NetworkAllowlist,
		Limits:           p.HasLimits(),
	}
}

// Intersect returns the layers of l that the backend capabilities c can
// enforce. A seccomp profile c cannot apply degrades to "off".
func (l Layers) Intersect(c Layers) Layers {
	out := Layers{
		Seccomp:          policy.SeccompOff,
		Filesystem:       l.Filesystem && c.Filesystem,
		NetworkOff:       l.NetworkOff && c.NetworkOff,
		NetworkAllowlist: l.NetworkAllowlist && c.NetworkAllowlist,
		Limits:           l.Limits && c.Limits,
	}
	if l.Seccomp != policy.SeccompOff && seccompSupports(c.Seccomp, l.Seccomp) {
		out.Seccomp = l.Seccomp
	}
	return out
}

// seccompSupports reports whether a backend whose seccomp capability is
// capability can apply profile: an allow-list capability (strict or custom)
// can apply every profile, a deny-list-only one (basic) only basic.
func seccompSupports(capability, profile string) bool {
	switch capability {
	case policy.SeccompStrict, policy.SeccompCustom:
		return true
	case policy.SeccompBasic:
		return profile == policy.SeccompBasic
	}
	return false
}

// Backend is what the score needs to know about a backend.
type Backend struct {
	Name string
	Base int
	// SharedKernel is true for backends whose payload talks to the host
	// kernel directly (process, oci): only they lose points without seccomp.
	SharedKernel bool
	// Noop backends always score 0.
	Noop bool
}

// Modifier is one line of a score breakdown.
type Modifier struct {
	Name    string `json:"name"`
	Points  int    `json:"points"`
	Applied bool   `json:"applied"`
	Reason  string `json:"reason"`
}

// NumModifiers is the number of modifiers of SPEC §3: every breakdown lists
// all of them, applied or not.
const NumModifiers = 7

// Score is a computed strength score. The breakdown is a fixed-size array:
// a score is a plain value, computed without allocating.
type Score struct {
	Value     int                    `json:"value"`
	Label     string                 `json:"label"`
	Modifiers [NumModifiers]Modifier `json:"modifiers"`
}

// String is the display form, e.g. "63 (standard)".
func (s Score) String() string { return strconv.Itoa(s.Value) + " (" + s.Label + ")" }

// Label returns the label of a score value.
func Label(v int) string {
	switch {
	case v >= 85:
		return "fortress"
	case v >= 70:
		return "hardened"
	case v >= 50:
		return "standard"
	case v >= 30:
		return "basic"
	}
	return "minimal"
}

// Declared is the score of a backend running a policy, assuming the backend
// enforces every asked layer it supports (caps).
func Declared(b Backend, p *policy.Policy, caps Layers) Score {
	asked := Asked(p)
	return Compute(b, asked, asked.Intersect(caps), nil)
}

// DeclaredValue is Declared(b, p, caps).Value without building the
// breakdown: it does not allocate, for hot paths such as picking the
// strongest backend.
func DeclaredValue(b Backend, p *policy.Policy, caps Layers) int {
	if b.Noop {
		return 0
	}
	got := Asked(p).Intersect(caps)
	v := b.Base
	switch {
	case got.Seccomp == policy.SeccompOff:
		if b.SharedKernel {
			v += PointsSeccompOff
		}
	case got.Seccomp == policy.SeccompBasic:
		v += PointsSeccompBasic
	case isAllowList(got.Seccomp):
		v += PointsSeccompStrict
	}
	if got.Filesystem {
		v += PointsFilesystem
	}
	if got.NetworkOff {
		v += PointsNetworkOff
	}
	if got.NetworkAllowlist {
		v += PointsNetworkAllowlist
	}
	if got.Limits {
		v += PointsLimits
	}
	return min(max(v, 0), 100)
}

// Compute builds the score from the asked and the enforced layers. lost
// explains, per modifier name, why an asked layer was not enforced.
func Compute(b Backend, asked, enforced Layers, lost map[string]string) Score {
	secAsked, secGot := asked.Seccomp, enforced.Seccomp
	mods := [NumModifiers]Modifier{
		seccompOff(b, secAsked, secGot, lost[ModSeccompStrict]+lost[ModSeccompBasic]),
		modifier(ModSeccompBasic, PointsSeccompBasic, secAsked == policy.SeccompBasic, secGot == policy.SeccompBasic, lost[ModSeccompBasic]),
		modifier(ModSeccompStrict, PointsSeccompStrict, isAllowList(secAsked), isAllowList(secGot), lost[ModSeccompStrict]),
		modifier(ModFilesystem, PointsFilesystem, asked.Filesystem, enforced.Filesystem, lost[ModFilesystem]),
		modifier(ModNetworkOff, PointsNetworkOff, asked.NetworkOff, enforced.NetworkOff, lost[ModNetworkOff]),
		modifier(ModNetworkAllowlist, PointsNetworkAllowlist, asked.NetworkAllowlist, enforced.NetworkAllowlist, lost[ModNetworkAllowlist]),
		modifier(ModLimits, PointsLimits, asked.Limits, enforced.Limits, lost[ModLimits]),
	}
	if b.Noop {
		for i := range mods {
			mods[i].Applied = false
			mods[i].Reason = "noop backend runs nothing: its score is always 0"
		}
		return Score{Value: 0, Label: Label(0), Modifiers: mods}
	}
	v := b.Base
	for _, m := range mods {
		if m.Applied {
			v += m.Points
		}
	}
	v = min(max(v, 0), 100)
	return Score{Value: v, Label: Label(v), Modifiers: mods}
}

func isAllowList(profile string) bool {
	return profile == policy.SeccompStrict || profile == policy.SeccompCustom
}

func modifier(name string, points int, asked, got bool, why string) Modifier {
	m := Modifier{Name: name, Points: points, Applied: got}
	switch {
	case got:
		m.Reason = "enforced"
	case asked && why != "":
		m.Reason = "requested but not enforced: " + why
	case asked:
		m.Reason = "requested but not supported by this backend"
	default:
		m.Reason = "not requested by the policy"
	}
	return m
}

func seccompOff(b Backend, asked, got string, why string) Modifier {
	m := Modifier{Name: ModSeccompOff, Points: PointsSeccompOff}
	switch {
	case !b.SharedKernel:
		m.Reason = "backend does not share the host kernel"
	case got == policy.SeccompOff && asked != policy.SeccompOff:
		m.Applied = true
		m.Reason = "seccomp requested but not enforced"
		if why != "" {
			m.Reason += ": " + why
		}
	case got == policy.SeccompOff:
		m.Applied = true
		m.Reason = "no seccomp filter on a backend that shares the host kernel"
	default:
		m.Reason = "seccomp filter in force"
	}
	return m
}
