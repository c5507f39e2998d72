package score_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/kavach-sandbox/kavach/backend"
	"github.com/kavach-sandbox/kavach/policy"
	"github.com/kavach-sandbox/kavach/score"
)

func sb(t testing.TB, n backend.Name) score.Backend {
	t.Helper()
	info, ok := backend.InfoOf(n)
	if !ok {
		t.Fatalf("InfoOf(%s): unknown", n)
	}
	return info.ScoreBackend()
}

func preset(t testing.TB, name string) *policy.Policy {
	t.Helper()
	p, err := policy.Preset(name)
	if err != nil {
		t.Fatal(err)
	}
	return &p
}

// TestWorkedValues checks the worked values of SPEC §3.
func TestWorkedValues(t *testing.T) {
	tests := []struct {
		backend backend.Name
		policy  string
		want    string
	}{
		{backend.Process, "minimal", "45 (basic)"},
		{backend.Process, "basic", "56 (standard)"},
		{backend.Process, "strict", "63 (standard)"},
		{backend.GVisor, "strict", "83 (hardened)"},
		{backend.Firecracker, "strict", "100 (fortress)"},
		{backend.OCI, "minimal", "50 (standard)"},
		{backend.OCI, "strict", "68 (standard)"},
		{backend.WASM, "minimal", "65 (standard)"},
		{backend.WASM, "strict", "78 (hardened)"},
		{backend.GVisor, "minimal", "70 (hardened)"},
		{backend.GVisor, "basic", "76 (hardened)"},
		{backend.SGX, "strict", "93 (fortress)"},
		{backend.SEV, "basic", "88 (fortress)"},
		{backend.Firecracker, "minimal", "90 (fortress)"},
		{backend.Noop, "minimal", "0 (minimal)"},
		{backend.Noop, "basic", "0 (minimal)"},
		{backend.Noop, "strict", "0 (minimal)"},
	}
	for _, tt := range tests {
		t.Run(string(tt.backend)+"+"+tt.policy, func(t *testing.T) {
			got := score.Declared(sb(t, tt.backend), preset(t, tt.policy), backend.FullCapabilities())
			if got.String() != tt.want {
				t.Fatalf("%s+%s = %q, want %q", tt.backend, tt.policy, got, tt.want)
			}
			if len(got.Modifiers()) != 7 {
				t.Fatalf("%d modifiers, want 7", len(got.Modifiers()))
			}
		})
	}
}

func TestNoopAlwaysZero(t *testing.T) {
	p := policy.Strict()
	p.Network = policy.Network{Mode: policy.NetworkAllowlist, Allow: []string{"a.com"}}
	s := score.Compute(sb(t, backend.Noop), score.Asked(&p), backend.FullCapabilities(), nil)
	if s.Value != 0 || s.Label() != "minimal" {
		t.Fatalf("noop = %s", s)
	}
	for _, m := range s.Modifiers() {
		if m.Applied || !strings.Contains(m.Reason, "noop") {
			t.Fatalf("noop modifier %+v", m)
		}
	}
}

func TestLabels(t *testing.T) {
	tests := []struct {
		v    int
		want string
	}{
		{-10, "minimal"}, {0, "minimal"}, {29, "minimal"},
		{30, "basic"}, {49, "basic"},
		{50, "standard"}, {69, "standard"},
		{70, "hardened"}, {84, "hardened"},
		{85, "fortress"}, {100, "fortress"},
	}
	for _, tt := range tests {
		if got := score.Label(tt.v); got != tt.want {
			t.Errorf("Label(%d) = %q, want %q", tt.v, got, tt.want)
		}
	}
	if s := (score.Score{Value: 63}).String(); s != "63 (standard)" {
		t.Fatalf("String = %q", s)
	}
}

func TestClamp(t *testing.T) {
	all := score.SeccompAllowlist | score.Filesystem | score.NetworkOff | score.Limits
	none := score.Layers(0)
	tests := []struct {
		name string
		b    score.Backend
		l    score.Layers
		want int
	}{
		{"above 100", score.NewBackend(99, false, false), all, 100},
		{"exactly 100", score.NewBackend(87, false, false), all, 100},
		{"below 0", score.NewBackend(2, true, false), none, 0},
		{"exactly 0", score.NewBackend(5, true, false), none, 0},
		{"in range", score.NewBackend(10, true, false), none, 5},
		{"base above the range", score.NewBackend(120, true, false), none, 100},
		{"base above the range, clamped last", score.NewBackend(103, true, false), none, 98},
		{"negative base", score.NewBackend(-10, false, false), all, 3},
		{"noop", score.NewBackend(90, false, true), all, 0},
		{"noop outside the range", score.NewBackend(200, false, true), all, 0},
	}
	for _, tt := range tests {
		s := score.Compute(tt.b, tt.l, tt.l, nil)
		if s.Value != tt.want || s.Label() != score.Label(tt.want) {
			t.Errorf("%s: %s, want %d", tt.name, s, tt.want)
		}
	}
}

// TestNewBackend: a Backend reports what it was made from, and two made
// alike are equal, whatever their base; bases beyond the range where the
// modifiers can still change a score score alike.
func TestNewBackend(t *testing.T) {
	bases := []int{-1000, 1000}
	for b := -300; b <= 300; b++ {
		bases = append(bases, b)
	}
	for _, base := range bases {
		for _, shared := range []bool{false, true} {
			for _, noop := range []bool{false, true} {
				b := score.NewBackend(base, shared, noop)
				if b.Base() != base || b.SharedKernel() != shared || b.Noop() != noop {
					t.Errorf("NewBackend(%d, %v, %v) = base %d shared %v noop %v", base, shared, noop, b.Base(), b.SharedKernel(), b.Noop())
				}
				if b != score.NewBackend(base, shared, noop) {
					t.Errorf("NewBackend(%d, %v, %v) differs from itself", base, shared, noop)
				}
				for l := range score.AllLayers + 1 {
					if l.Has(score.SeccompBasic | score.SeccompAllowlist) {
						continue // a policy asks one seccomp layer
					}
					if got, want := score.Compute(b, l, l, nil).Value, direct(base, shared, noop, l); got != want {
						t.Errorf("NewBackend(%d, %v, %v), layers %s: %d, want %d", base, shared, noop, l, got, want)
					}
				}
			}
		}
	}
}

// direct is the score of enforced layers l computed from the rules.
func direct(base int, shared, noop bool, l score.Layers) int {
	if noop {
		return 0
	}
	v := base
	for _, m := range []struct {
		l   score.Layers
		pts int
	}{{score.SeccompBasic, 3}, {score.SeccompAllowlist, 5}, {score.Filesystem, 3}, {score.NetworkOff, 3}, {score.NetworkAllowlist, 1}, {score.Limits, 2}} {
		if l.Has(m.l) {
			v += m.pts
		}
	}
	if shared && l&(score.SeccompBasic|score.SeccompAllowlist) == 0 {
		v -= 5
	}
	return min(max(v, 0), 100)
}

// TestComputeTwoSeccompLayers: a backend reporting both seccomp layers as
// enforced gets the points of the stronger only.
func TestComputeTwoSeccompLayers(t *testing.T) {
	b := sb(t, backend.Process)
	asked := score.Asked(preset(t, "strict"))
	both := score.Compute(b, asked, asked|score.SeccompBasic, nil)
	if want := score.Compute(b, asked, asked, nil); both != want {
		t.Fatalf("both seccomp layers = %s %+v, want %s", both, both.Modifiers(), want)
	}
}

func TestLayersString(t *testing.T) {
	for l, want := range map[score.Layers]string{
		0: "none",
		score.SeccompAllowlist | score.Filesystem | score.Limits: "seccomp-allowlist+filesystem+limits",
		score.AllLayers:         "seccomp-basic+seccomp-allowlist+filesystem+network-off+network-allowlist+limits",
		score.NetworkOff | 0x80: "network-off+0x80",
	} {
		if got := l.String(); got != want {
			t.Errorf("%#x: %q, want %q", uint8(l), got, want)
		}
	}
	if !score.AllLayers.Has(score.Filesystem|score.Limits) || score.Filesystem.Has(score.Filesystem|score.Limits) {
		t.Error("Has")
	}
	for l := range score.AllLayers + 1 {
		text, err := l.MarshalText()
		var back score.Layers
		if err != nil || back.UnmarshalText(text) != nil || back != l {
			t.Errorf("%s: text %q (%v), back %s", l, text, err, back)
		}
	}
	if _, err := (score.AllLayers + 1).MarshalText(); err == nil {
		t.Error("bits that are no layer encoded")
	}
	var l score.Layers
	for _, bad := range []string{"", "seccomp", "filesystem+", "none+limits", "Limits"} {
		if err := l.UnmarshalText([]byte(bad)); err == nil {
			t.Errorf("%q decoded as %s", bad, l)
		}
	}
}

// TestBreakdown checks that every one of the 7 modifiers is listed, in a
// fixed order, with its points, applied flag and reason.
func TestBreakdown(t *testing.T) {
	s := score.Declared(sb(t, backend.Process), preset(t, "strict"), backend.FullCapabilities())
	want := []score.Modifier{
		{Name: "seccomp-off", Points: -5, Applied: false, Reason: "seccomp filter in force"},
		{Name: "seccomp-basic", Points: 3, Applied: false, Reason: "not requested by the policy"},
		{Name: "seccomp-strict", Points: 5, Applied: true, Reason: "enforced"},
		{Name: "filesystem", Points: 3, Applied: true, Reason: "enforced"},
		{Name: "network-off", Points: 3, Applied: true, Reason: "enforced"},
		{Name: "network-allowlist", Points: 1, Applied: false, Reason: "not requested by the policy"},
		{Name: "resource-limits", Points: 2, Applied: true, Reason: "enforced"},
	}
	if len(s.Modifiers()) != len(want) {
		t.Fatalf("modifiers: %+v", s.Modifiers())
	}
	for i := range want {
		if s.Modifiers()[i] != want[i] {
			t.Errorf("modifier %d = %+v, want %+v", i, s.Modifiers()[i], want[i])
		}
	}
	sum := 50
	for _, m := range s.Modifiers() {
		if m.Applied {
			sum += m.Points
		}
	}
	if sum != s.Value {
		t.Fatalf("breakdown sums to %d, score is %d", sum, s.Value)
	}

	// seccomp off counts only on backends that share the host kernel.
	g := score.Declared(sb(t, backend.GVisor), preset(t, "minimal"), backend.FullCapabilities())
	if m := g.Modifiers()[0]; m.Applied || m.Reason != "backend does not share the host kernel" {
		t.Fatalf("gvisor seccomp-off = %+v", m)
	}
	p := score.Declared(sb(t, backend.Process), preset(t, "minimal"), backend.FullCapabilities())
	if m := p.Modifiers()[0]; !m.Applied || m.Reason != "no seccomp filter on a backend that shares the host kernel" {
		t.Fatalf("process seccomp-off = %+v", m)
	}

	data, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var generic map[string]any
	_ = json.Unmarshal(data, &generic)
	if len(generic) != 3 || generic["value"] != float64(63) || generic["label"] != "standard" {
		t.Fatalf("JSON = %s", data)
	}
	mod := generic["modifiers"].([]any)[0].(map[string]any)
	for _, k := range []string{"name", "points", "applied", "reason"} {
		if _, ok := mod[k]; !ok {
			t.Fatalf("modifier JSON lacks %q: %s", k, data)
		}
	}
}

// TestEffectiveLostLayers: a backend that could not apply a layer scores
// lower and says which modifier it lost.
func TestEffectiveLostLayers(t *testing.T) {
	p := preset(t, "strict")
	asked := score.Asked(p)
	b := sb(t, backend.Process)

	enforced := asked &^ score.SeccompAllowlist
	s := score.Compute(b, asked, enforced, map[string]string{score.ModSeccompStrict: "kernel lacks seccomp filter support"})
	if s.String() != "53 (standard)" {
		t.Fatalf("process+strict without seccomp = %s, want 53 (standard)", s)
	}
	if m := s.Modifiers()[2]; m.Name != "seccomp-strict" || m.Applied || m.Reason != "requested but not enforced: kernel lacks seccomp filter support" {
		t.Fatalf("seccomp-strict = %+v", m)
	}
	if m := s.Modifiers()[0]; !m.Applied || !strings.Contains(m.Reason, "kernel lacks seccomp") {
		t.Fatalf("seccomp-off = %+v", m)
	}

	enforced = asked &^ (score.Filesystem | score.Limits)
	s = score.Compute(b, asked, enforced, map[string]string{score.ModFilesystem: "landlock unavailable"})
	if s.Value != 58 {
		t.Fatalf("without filesystem and limits = %s, want 58", s)
	}
	if m := s.Modifiers()[3]; m.Reason != "requested but not enforced: landlock unavailable" {
		t.Fatalf("filesystem = %+v", m)
	}
	if m := s.Modifiers()[6]; m.Applied || m.Reason != "requested but not supported by this backend" {
		t.Fatalf("resource-limits = %+v", m)
	}
}

func TestIntersect(t *testing.T) {
	const both = score.SeccompBasic | score.SeccompAllowlist
	tests := []struct {
		name  string
		asked policy.SeccompProfile
		caps  score.Layers
		want  score.Layers
	}{
		{"strict on full", policy.SeccompStrict, both, score.SeccompAllowlist},
		{"custom on full", policy.SeccompCustom, both, score.SeccompAllowlist},
		{"basic on full", policy.SeccompBasic, both, score.SeccompBasic},
		{"strict on allow-list only", policy.SeccompStrict, score.SeccompAllowlist, score.SeccompAllowlist},
		{"basic on allow-list only", policy.SeccompBasic, score.SeccompAllowlist, 0},
		{"basic on basic", policy.SeccompBasic, score.SeccompBasic, score.SeccompBasic},
		{"strict on basic-only", policy.SeccompStrict, score.SeccompBasic, 0},
		{"custom on basic-only", policy.SeccompCustom, score.SeccompBasic, 0},
		{"strict on none", policy.SeccompStrict, 0, 0},
		{"off on full", policy.SeccompOff, both, 0},
		{"unset on full", 0, both, 0},
		{"not a profile on full", policy.SeccompCustom + 1, both, 0},
	}
	for _, tt := range tests {
		asked := score.SeccompLayer(tt.asked) | score.Filesystem | score.NetworkOff | score.Limits
		got := asked.Intersect(tt.caps | score.Filesystem | score.NetworkAllowlist | score.Limits)
		if want := tt.want | score.Filesystem | score.Limits; got != want {
			t.Errorf("%s: %s, want %s", tt.name, got, want)
		}
	}
}

func TestAsked(t *testing.T) {
	p := policy.Minimal()
	p.Network = policy.Network{Mode: policy.NetworkAllowlist, Allow: []string{"a.com"}}
	p.Limits.Pids = 10 // a pids limit alone does not earn the modifier
	got := score.Asked(&p)
	if want := score.NetworkAllowlist; got != want {
		t.Fatalf("Asked = %s, want %s", got, want)
	}
	p.Limits.CPUs = 0.5
	if !score.Asked(&p).Has(score.Limits) {
		t.Fatal("cpus + pids must earn resource-limits")
	}
	s := score.Declared(sb(t, backend.Process), &p, backend.FullCapabilities())
	if s.String() != "48 (basic)" { // 50 - 5 + 1 + 2
		t.Fatalf("process+minimal+allowlist+limits = %s", s)
	}
}

var sinkScore score.Score

func BenchmarkDeclaredScore(b *testing.B) {
	be := sb(b, backend.Process)
	p := preset(b, "strict")
	caps := backend.FullCapabilities()
	b.ReportAllocs()
	for b.Loop() {
		sinkScore = score.Declared(be, p, caps)
	}
}

// BenchmarkDeclaredScoreCall measures the declared score through a
// function value, which keeps the compiler from inlining it: the cost of a
// caller that does not inline it.
func BenchmarkDeclaredScoreCall(b *testing.B) {
	be := sb(b, backend.Process)
	p := preset(b, "strict")
	caps := backend.FullCapabilities()
	b.ReportAllocs()
	for b.Loop() {
		sinkScore = declaredFunc(be, p, caps)
	}
}

// declaredFunc is a variable, so that calls through it are not inlined.
var declaredFunc = score.Declared

var sinkMods [score.NumModifiers]score.Modifier

// BenchmarkScoreBreakdown measures deriving the 7-line breakdown of a score.
func BenchmarkScoreBreakdown(b *testing.B) {
	s := score.Declared(sb(b, backend.Process), preset(b, "strict"), backend.FullCapabilities())
	b.ReportAllocs()
	for b.Loop() {
		sinkMods = s.Modifiers()
	}
}

// reference computes a declared value straight from the rules of SPEC §3,
// independently of the package's packed representation.
func reference(b score.Backend, p *policy.Policy, caps score.Layers) int {
	if b.Noop() {
		return 0
	}
	can := func(l score.Layers) bool { return caps&l != 0 }
	v := b.Base()
	switch {
	case p.Seccomp == policy.SeccompBasic && can(score.SeccompBasic):
		v += 3
	case (p.Seccomp == policy.SeccompStrict || p.Seccomp == policy.SeccompCustom) && can(score.SeccompAllowlist):
		v += 5
	case b.SharedKernel():
		v -= 5
	}
	if p.Filesystem.ReadOnlyRoot && can(score.Filesystem) {
		v += 3
	}
	if p.Network.Mode == policy.NetworkOff && can(score.NetworkOff) {
		v += 3
	}
	if p.Network.Mode == policy.NetworkAllowlist && can(score.NetworkAllowlist) {
		v++
	}
	if (p.Limits.Memory > 0 || p.Limits.CPUs > 0) && p.Limits.Pids > 0 && can(score.Limits) {
		v += 2
	}
	return min(max(v, 0), 100)
}

// TestDeclaredMatchesReference checks the declared score, the breakdown's
// applied points and the Layers path (Compute) against the reference for
// every backend, preset, policy variant and capability set.
func TestDeclaredMatchesReference(t *testing.T) {
	capsList := []score.Layers{
		backend.FullCapabilities(),
		score.SeccompBasic | score.Filesystem,
		score.SeccompBasic | score.SeccompAllowlist | score.NetworkOff | score.Limits,
		score.SeccompAllowlist | score.NetworkAllowlist,
		score.AllLayers | 0xc0, // bits that are no layer are ignored
		0,
	}
	for _, n := range backend.Names() {
		for _, name := range policy.Presets {
			p := preset(t, name)
			variants := []policy.Policy{*p, *p, *p, *p, *p}
			variants[1].Network = policy.Network{Mode: policy.NetworkAllowlist, Allow: []string{"a.com"}}
			variants[2].Seccomp, variants[2].SeccompAllow = policy.SeccompCustom, []string{"read"}
			variants[3].Seccomp, variants[3].Limits.Pids = policy.SeccompBasic, 0
			variants[4].Seccomp, variants[4].Network.Mode = policy.SeccompCustom+1, policy.NetworkAllowlist+1 // not valid: ask nothing
			for _, v := range variants {
				for _, caps := range capsList {
					be := sb(t, n)
					want := reference(be, &v, caps)
					got := score.Declared(be, &v, caps)
					viaLayers := score.Compute(be, score.Asked(&v), score.Asked(&v).Intersect(caps), nil)
					if got.Value != want || got.Label() != score.Label(want) || viaLayers.String() != got.String() {
						t.Errorf("%s+%s/%s caps %+v: Declared = %s, Compute = %s, reference %d", n, name, v.Seccomp, caps, got, viaLayers, want)
					}
					sum := be.Base()
					for _, m := range got.Modifiers() {
						if m.Applied {
							sum += m.Points
						}
					}
					if !be.Noop() && min(max(sum, 0), 100) != want {
						t.Errorf("%s+%s caps %+v: breakdown sums to %d, want %d", n, name, caps, sum, want)
					}
				}
			}
		}
	}
}

// TestJSONRoundTrip: a score decodes back to the same value, label and
// breakdown, lost reasons included; a tampered score is rejected.
func TestJSONRoundTrip(t *testing.T) {
	var scores []score.Score
	for _, n := range backend.Names() {
		for _, name := range policy.Presets {
			for _, caps := range []score.Layers{backend.FullCapabilities(), score.SeccompBasic | score.Filesystem, 0} {
				scores = append(scores, score.Declared(sb(t, n), preset(t, name), caps))
			}
		}
	}
	asked := score.Asked(preset(t, "strict"))
	scores = append(scores, score.Compute(sb(t, backend.Process), asked, score.NetworkOff,
		map[string]string{score.ModSeccompStrict: "kernel lacks seccomp", score.ModFilesystem: "landlock unavailable"}))
	for _, s := range scores {
		data, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		var back score.Score
		if err := json.Unmarshal(data, &back); err != nil {
			t.Fatalf("%s: %v\n%s", s, err, data)
		}
		if back.String() != s.String() || back.Modifiers() != s.Modifiers() {
			t.Fatalf("round trip changed %s:\n got  %+v\n want %+v", s, back.Modifiers(), s.Modifiers())
		}
	}
	good, _ := json.Marshal(score.Declared(sb(t, backend.Process), preset(t, "strict"), backend.FullCapabilities()))
	for name, bad := range map[string]string{
		"label":        strings.Replace(string(good), `"standard"`, `"fortress"`, 1),
		"value":        strings.Replace(string(good), `"value":63`, `"value":101`, 1),
		"applied flip": strings.Replace(string(good), `"applied":true,"reason":"enforced"`, `"applied":false,"reason":"enforced"`, 1),
		"reason":       strings.Replace(string(good), `"not requested by the policy"`, `"enforced"`, 1),
		"lines":        `{"value":63,"label":"standard","modifiers":[]}`,
	} {
		var s score.Score
		if err := json.Unmarshal([]byte(bad), &s); !errors.Is(err, score.ErrInconsistent) {
			t.Errorf("%s: tampered score decoded: %v %s", name, err, bad)
		}
	}
}

// TestJSONRoundTripLostReasons: effective scores of layers lost with a
// reason, as backends produce them, decode back to the same breakdown.
func TestJSONRoundTripLostReasons(t *testing.T) {
	proc, gv := sb(t, backend.Process), sb(t, backend.GVisor)
	strict, basic := score.Asked(preset(t, "strict")), score.Asked(preset(t, "basic"))
	for name, s := range map[string]score.Score{
		"strict lost": score.Compute(proc, strict, score.Filesystem|score.NetworkOff|score.Limits,
			map[string]string{score.ModSeccompStrict: "kernel lacks seccomp"}),
		"basic lost": score.Compute(proc, basic, score.NetworkOff,
			map[string]string{score.ModSeccompBasic: "no filter", score.ModNetworkOff: "no netns"}),
		"strict degraded to basic": score.Compute(proc, strict, score.SeccompBasic|score.Filesystem|score.NetworkOff|score.Limits,
			map[string]string{score.ModSeccompStrict: "allow-list unsupported"}),
		"own kernel": score.Compute(gv, strict, score.NetworkOff,
			map[string]string{score.ModSeccompStrict: "ignored", score.ModLimits: "no cgroups"}),
	} {
		data, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		var back score.Score
		if err := json.Unmarshal(data, &back); err != nil {
			t.Errorf("%s: %v\n%s", name, err, data)
			continue
		}
		if back.String() != s.String() || back.Modifiers() != s.Modifiers() {
			t.Errorf("%s: round trip changed the breakdown:\n got  %+v\n want %+v", name, back.Modifiers(), s.Modifiers())
		}
	}
}

// TestJSONRejectsForgedScores: scores no computation produces, and JSON
// that encoding/json would read ambiguously, are refused.
func TestJSONRejectsForgedScores(t *testing.T) {
	noop, _ := json.Marshal(score.Declared(sb(t, backend.Noop), preset(t, "strict"), backend.FullCapabilities()))
	lost, _ := json.Marshal(score.Compute(sb(t, backend.Process), score.Asked(preset(t, "strict")),
		score.Filesystem|score.NetworkOff|score.Limits,
		map[string]string{score.ModSeccompStrict: "kernel lacks seccomp"}))
	good, _ := json.Marshal(score.Declared(sb(t, backend.Process), preset(t, "strict"), backend.FullCapabilities()))
	body := strings.TrimPrefix(string(good), `{"value":63,"label":"standard",`)
	for name, tc := range map[string]struct {
		json string
		err  error
	}{
		"noop of 100": {strings.Replace(string(noop), `"value":0,"label":"minimal"`, `"value":100,"label":"fortress"`, 1), score.ErrInconsistent},
		"noop of 45":  {strings.Replace(string(noop), `"value":0,"label":"minimal"`, `"value":45,"label":"basic"`, 1), score.ErrInconsistent},
		"seccomp-off reason": {strings.Replace(string(lost), `not enforced: kernel lacks seccomp"`, `not enforced: anything at all"`, 1),
			score.ErrInconsistent},
		"seccomp-off reason dropped": {strings.Replace(string(lost), `"seccomp requested but not enforced: kernel lacks seccomp"`,
			`"seccomp requested but not enforced"`, 1), score.ErrInconsistent},
		"unknown field":          {`{"value":63,"label":"standard","extra":1,` + body, nil},
		"unknown modifier field": {strings.Replace(string(good), `"points":-5,`, `"points":-5,"weight":2,`, 1), nil},
		"duplicate value":        {`{"value":100,"value":63,"label":"standard",` + body, nil},
		"duplicate in any case":  {`{"VALUE":100,"value":63,"label":"standard",` + body, nil},
		"duplicate modifier key": {strings.Replace(string(good), `"points":-5,`, `"points":-5,"Points":-5,`, 1), nil},
		"two values":             {string(good) + string(good), nil},
	} {
		if tc.json == string(noop) || tc.json == string(lost) || tc.json == string(good) {
			t.Fatalf("%s: the forgery did not change the JSON", name)
		}
		var s score.Score
		err := s.UnmarshalJSON([]byte(tc.json))
		if err == nil || (tc.err != nil && !errors.Is(err, tc.err)) {
			t.Errorf("%s: decoded (%v): %s", name, err, tc.json)
		}
	}
	// The forgeries above differ from a genuine score only by the change.
	for _, data := range [][]byte{noop, lost, good, []byte(`{"value":63,"label":"standard",` + body)} {
		var s score.Score
		if err := s.UnmarshalJSON(data); err != nil {
			t.Errorf("genuine score rejected: %v\n%s", err, data)
		}
	}
}
