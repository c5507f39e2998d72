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
	all := score.Layers{Seccomp: "strict", Filesystem: true, NetworkOff: true, Limits: true}
	none := score.Layers{Seccomp: "off"}
	tests := []struct {
		name string
		b    score.Backend
		l    score.Layers
		want int
	}{
		{"above 100", score.Backend{Base: 99}, all, 100},
		{"exactly 100", score.Backend{Base: 87}, all, 100},
		{"below 0", score.Backend{Base: 2, SharedKernel: true}, none, 0},
		{"exactly 0", score.Backend{Base: 5, SharedKernel: true}, none, 0},
		{"in range", score.Backend{Base: 10, SharedKernel: true}, none, 5},
	}
	for _, tt := range tests {
		s := score.Compute(tt.b, tt.l, tt.l, nil)
		if s.Value != tt.want || s.Label() != score.Label(tt.want) {
			t.Errorf("%s: %s, want %d", tt.name, s, tt.want)
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

	enforced := asked
	enforced.Seccomp = policy.SeccompOff
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

	enforced = asked
	enforced.Filesystem, enforced.Limits = false, false
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
	tests := []struct {
		name      string
		asked     string
		caps      string
		wantProto string
	}{
		{"strict on full", "strict", "custom", "strict"},
		{"custom on full", "custom", "custom", "custom"},
		{"basic on full", "basic", "custom", "basic"},
		{"strict on strict", "strict", "strict", "strict"},
		{"basic on strict", "basic", "strict", "basic"},
		{"basic on basic", "basic", "basic", "basic"},
		{"strict on basic-only", "strict", "basic", "off"},
		{"custom on basic-only", "custom", "basic", "off"},
		{"strict on none", "strict", "off", "off"},
		{"strict on empty", "strict", "", "off"},
		{"off on full", "off", "custom", "off"},
	}
	for _, tt := range tests {
		got := score.Layers{Seccomp: tt.asked, Filesystem: true, NetworkOff: true, Limits: true}.
			Intersect(score.Layers{Seccomp: tt.caps, Filesystem: true, NetworkOff: false, NetworkAllowlist: true, Limits: true})
		want := score.Layers{Seccomp: tt.wantProto, Filesystem: true, Limits: true}
		if got != want {
			t.Errorf("%s: %+v, want %+v", tt.name, got, want)
		}
	}
}

func TestAsked(t *testing.T) {
	p := policy.Minimal()
	p.Network = policy.Network{Mode: policy.NetworkAllowlist, Allow: []string{"a.com"}}
	p.Limits.Pids = 10 // a pids limit alone does not earn the modifier
	got := score.Asked(&p)
	want := score.Layers{Seccomp: "off", NetworkAllowlist: true}
	if got != want {
		t.Fatalf("Asked = %+v, want %+v", got, want)
	}
	p.Limits.CPUs = 0.5
	if !score.Asked(&p).Limits {
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
	if b.Noop {
		return 0
	}
	allow := func(s string) bool { return s == "strict" || s == "custom" }
	v := b.Base
	switch {
	case p.Seccomp == "basic" && (caps.Seccomp == "basic" || allow(caps.Seccomp)):
		v += 3
	case allow(p.Seccomp) && allow(caps.Seccomp):
		v += 5
	case b.SharedKernel:
		v -= 5
	}
	if p.Filesystem.ReadOnlyRoot && caps.Filesystem {
		v += 3
	}
	if p.Network.Mode == "off" && caps.NetworkOff {
		v += 3
	}
	if p.Network.Mode == "allowlist" && caps.NetworkAllowlist {
		v++
	}
	if (p.Limits.Memory > 0 || p.Limits.CPUs > 0) && p.Limits.Pids > 0 && caps.Limits {
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
		{Seccomp: "off"},
		{Seccomp: "basic", Filesystem: true},
		{Seccomp: "strict", NetworkOff: true, Limits: true},
		{Seccomp: "custom", NetworkAllowlist: true},
		{},
	}
	for _, n := range backend.Names() {
		for _, name := range policy.Presets {
			p := preset(t, name)
			variants := []policy.Policy{*p, *p, *p, *p}
			variants[1].Network = policy.Network{Mode: policy.NetworkAllowlist, Allow: []string{"a.com"}}
			variants[2].Seccomp, variants[2].SeccompAllow = policy.SeccompCustom, []string{"read"}
			variants[3].Seccomp, variants[3].Limits.Pids = policy.SeccompBasic, 0
			for _, v := range variants {
				for _, caps := range capsList {
					be := sb(t, n)
					want := reference(be, &v, caps)
					got := score.Declared(be, &v, caps)
					viaLayers := score.Compute(be, score.Asked(&v), score.Asked(&v).Intersect(caps), nil)
					if got.Value != want || got.Label() != score.Label(want) || viaLayers.String() != got.String() {
						t.Errorf("%s+%s/%s caps %+v: Declared = %s, Compute = %s, reference %d", n, name, v.Seccomp, caps, got, viaLayers, want)
					}
					sum := be.Base
					for _, m := range got.Modifiers() {
						if m.Applied {
							sum += m.Points
						}
					}
					if !be.Noop && min(max(sum, 0), 100) != want {
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
			for _, caps := range []score.Layers{backend.FullCapabilities(), {Seccomp: "basic", Filesystem: true}, {}} {
				scores = append(scores, score.Declared(sb(t, n), preset(t, name), caps))
			}
		}
	}
	asked := score.Asked(preset(t, "strict"))
	scores = append(scores, score.Compute(sb(t, backend.Process), asked, score.Layers{Seccomp: "off", NetworkOff: true},
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
		"strict lost": score.Compute(proc, strict, score.Layers{Seccomp: "off", Filesystem: true, NetworkOff: true, Limits: true},
			map[string]string{score.ModSeccompStrict: "kernel lacks seccomp"}),
		"basic lost": score.Compute(proc, basic, score.Layers{Seccomp: "off", NetworkOff: true},
			map[string]string{score.ModSeccompBasic: "no filter", score.ModNetworkOff: "no netns"}),
		"strict degraded to basic": score.Compute(proc, strict, score.Layers{Seccomp: "basic", Filesystem: true, NetworkOff: true, Limits: true},
			map[string]string{score.ModSeccompStrict: "allow-list unsupported"}),
		"own kernel": score.Compute(gv, strict, score.Layers{Seccomp: "off", NetworkOff: true},
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
		score.Layers{Seccomp: "off", Filesystem: true, NetworkOff: true, Limits: true},
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
