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
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/kavach-sandbox/kavach/policy"
)

// Modifier points.
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
	if l.pack().within(c.pack())&setLevel != levelOff {
		out.Seccomp = l.Seccomp
	}
	return out
}

// set is a Layers packed into a byte: the seccomp level in the low two
// bits, then one bit per other layer. Scores are computed on sets.
type set uint8

// Seccomp levels, as a set's low bits. Strict and custom profiles are both
// allow-lists and score the same.
const (
	levelOff       set = 0
	levelBasic     set = 1
	levelAllowList set = 2
	setLevel       set = 3
)

// Layer bits of a set.
const (
	bitFilesystem = iota + 2
	bitNetworkOff
	bitNetworkAllowlist
	bitLimits
	numSets = 1 << (bitLimits + 1)

	setFilesystem       set = 1 << bitFilesystem
	setNetworkOff       set = 1 << bitNetworkOff
	setNetworkAllowlist set = 1 << bitNetworkAllowlist
	setLimits           set = 1 << bitLimits
)

func levelOf(profile string) set {
	switch profile {
	case policy.SeccompBasic:
		return levelBasic
	case policy.SeccompStrict, policy.SeccompCustom:
		return levelAllowList
	}
	return levelOff
}

// flag is the set with only bit number n, if on (branch-free).
func flag(on bool, n uint) set {
	var x set
	if on {
		x = 1
	}
	return x << n
}

func (l Layers) pack() set { return levelOf(l.Seccomp) | l.flags() }

func (l Layers) flags() set {
	return flag(l.Filesystem, bitFilesystem) | flag(l.NetworkOff, bitNetworkOff) |
		flag(l.NetworkAllowlist, bitNetworkAllowlist) | flag(l.Limits, bitLimits)
}

// policyFlags are the layer bits of the layers p asks, but for seccomp.
func policyFlags(p *policy.Policy) set {
	return flag(p.Filesystem.ReadOnlyRoot, bitFilesystem) | flag(p.HasLimits(), bitLimits)
}

func networkFlags(m policy.NetworkMode) set {
	return flag(m == policy.NetworkOff, bitNetworkOff) | flag(m == policy.NetworkAllowlist, bitNetworkAllowlist)
}

// within returns the layers of s that a backend with capabilities caps can
// enforce: an allow-list capability applies every seccomp profile, a
// deny-list-only one (basic) only basic.
func (s set) within(caps set) set {
	out := s & caps &^ setLevel
	if lvl, c := s&setLevel, caps&setLevel; lvl != levelOff && (c == levelAllowList || c == lvl) {
		out |= lvl
	}
	return out
}

// points[shared][s] is the sum of the modifiers of the enforced set s on a
// backend that shares the host kernel (1) or not (0).
var points = func() (t [2][1 << 8]int8) {
	for s := range set(numSets) {
		var p int8
		switch s & setLevel {
		case levelBasic:
			p = PointsSeccompBasic
		case levelAllowList:
			p = PointsSeccompStrict
		}
		for _, m := range []struct {
			bit set
			pts int8
		}{{setFilesystem, PointsFilesystem}, {setNetworkOff, PointsNetworkOff}, {setNetworkAllowlist, PointsNetworkAllowlist}, {setLimits, PointsLimits}} {
			if s&m.bit != 0 {
				p += m.pts
			}
		}
		t[0][s] = p
		t[1][s] = p
		if s&setLevel == levelOff {
			t[1][s] += PointsSeccompOff
		}
	}
	return t
}()

// Backend is what the score needs to know about a backend.
type Backend struct {
	// Base is the backend's base score (backend.Info.Base).
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

// basis is what a breakdown is derived from, packed into one word: the
// layers asked (bits 0-7), the layers enforced (bits 8-15) and the
// backend's kind. A word and not a struct of four bytes: Go stores such a
// struct byte by byte and then copies the Score with wider loads, which
// the CPU cannot forward from the narrower stores; that stall cost more
// than the whole computation of a declared score.
type basis uint32

// Kind bits of a basis.
const (
	basisShared basis = 1 << 16
	basisNoop   basis = 1 << 17
)

func makeBasis(asked, got set, shared, noop bool) basis {
	return basis(asked) | basis(got)<<8 | Backend{SharedKernel: shared, Noop: noop}.kind()
}

// kind is the kind bits of a basis for b.
func (b Backend) kind() basis {
	return basis(b2i(b.SharedKernel))<<16 | basis(b2i(b.Noop))<<17
}

func (b basis) asked() set   { return set(b) }
func (b basis) got() set     { return set(b >> 8) }
func (b basis) shared() bool { return b&basisShared != 0 }
func (b basis) noop() bool   { return b&basisNoop != 0 }

// NumModifiers is the number of modifiers of the score model: every breakdown lists
// all of them, applied or not.
const NumModifiers = 7

// Score is a computed strength score. It is a small value (24 bytes, passed
// in registers: the value, the packed layers and a pointer to a backend's
// reasons for lost layers) computed without allocating unless a backend
// gives such reasons; its label and breakdown are derived from it on
// demand. It encodes to JSON as {"value", "label",
// "modifiers"} and decodes back (UnmarshalJSON). Compare scores by Value or
// String: == also compares the identity of the reasons a backend gave.
type Score struct {
	// Value is the score, from 0 to 100.
	Value int

	// basis is what the breakdown is derived from: the layers asked by
	// the policy and those enforced, and the backend's kind.
	basis basis
	// why holds, per modifier, why an asked layer was not enforced; nil
	// when the backend gave no reasons (always for a declared score).
	why *[NumModifiers]string
}

// String is the display form, e.g. "63 (standard)".
func (s Score) String() string { return strconv.Itoa(s.Value) + " (" + s.Label() + ")" }

// Label is the score's label: minimal, basic, standard, hardened or
// fortress.
func (s Score) Label() string { return Label(s.Value) }

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
	// Written out of inlinable pieces: this is the hot path of picking a
	// backend and of every sandbox creation.
	asked := levelOf(p.Seccomp) | policyFlags(p) | networkFlags(p.Network.Mode)
	// caps.pack(), spelled out: the method call copies caps (a struct of
	// five fields, kept in memory) and made Declared about three times slower.
	can := levelOf(caps.Seccomp) | flag(caps.Filesystem, bitFilesystem) | flag(caps.NetworkOff, bitNetworkOff) |
		flag(caps.NetworkAllowlist, bitNetworkAllowlist) | flag(caps.Limits, bitLimits)
	return newScore(b, asked, asked.within(can), nil)
}

// Compute builds the score from the asked and the enforced layers. lost
// explains, per modifier name, why an asked layer was not enforced.
func Compute(b Backend, asked, enforced Layers, lost map[string]string) Score {
	var why *[NumModifiers]string
	if len(lost) > 0 {
		why = new([NumModifiers]string)
		for i, name := range modifierNames {
			why[i] = lost[name]
		}
		why[0] = lost[ModSeccompStrict] + lost[ModSeccompBasic]
	}
	return newScore(b, asked.pack(), enforced.pack(), why)
}

func newScore(b Backend, asked, got set, why *[NumModifiers]string) Score {
	k := b.kind()
	v := min(max(b.Base+int(points[k&basisShared>>16][got]), 0), 100)
	if k&basisNoop != 0 {
		v = 0
	}
	return Score{Value: v, basis: basis(asked) | basis(got)<<8 | k, why: why}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// modifierNames lists the modifiers in breakdown order.
var modifierNames = [NumModifiers]string{ModSeccompOff, ModSeccompBasic, ModSeccompStrict, ModFilesystem, ModNetworkOff, ModNetworkAllowlist, ModLimits}

// Modifiers is the breakdown: every modifier of the score model in a fixed order,
// with its points, whether it applied and why.
func (s Score) Modifiers() [NumModifiers]Modifier {
	var why [NumModifiers]string
	if s.why != nil {
		why = *s.why
	}
	secAsked, secGot := s.basis.asked()&setLevel, s.basis.got()&setLevel
	mods := [NumModifiers]Modifier{
		s.seccompOff(why[0]),
		modifier(ModSeccompBasic, PointsSeccompBasic, secAsked == levelBasic, secGot == levelBasic, why[1]),
		modifier(ModSeccompStrict, PointsSeccompStrict, secAsked == levelAllowList, secGot == levelAllowList, why[2]),
	}
	for i, b := range [...]set{setFilesystem, setNetworkOff, setNetworkAllowlist, setLimits} {
		n := i + 3
		mods[n] = modifier(modifierNames[n], modifierPoints[n], s.basis.asked()&b != 0, s.basis.got()&b != 0, why[n])
	}
	if s.basis.noop() {
		for i := range mods {
			mods[i].Applied = false
			mods[i].Reason = reasonNoop
		}
	}
	return mods
}

var modifierPoints = [NumModifiers]int{PointsSeccompOff, PointsSeccompBasic, PointsSeccompStrict, PointsFilesystem, PointsNetworkOff, PointsNetworkAllowlist, PointsLimits}

// MarshalJSON encodes the score as {"value", "label", "modifiers"}.
func (s Score) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Value     int                    `json:"value"`
		Label     string                 `json:"label"`
		Modifiers [NumModifiers]Modifier `json:"modifiers"`
	}{s.Value, s.Label(), s.Modifiers()})
}

// Reasons of the breakdown that UnmarshalJSON reads back.
const (
	reasonLost      = "requested but not enforced: "
	reasonNoop      = "noop backend runs nothing: its score is always 0"
	reasonOwnKernel = "backend does not share the host kernel"
	reasonSecLost   = "seccomp requested but not enforced: "
)

// ErrInconsistent is returned by UnmarshalJSON for a score whose label or
// breakdown cannot come from one computation.
var ErrInconsistent = errors.New("inconsistent score")

// UnmarshalJSON decodes what MarshalJSON encodes, rebuilding the layers
// from the breakdown. It rejects, with ErrInconsistent, a score whose
// label or lines do not derive from one set of layers, a noop score other
// than 0, and a seccomp-off reason other than the one the seccomp lines
// imply; unknown fields and duplicate keys are errors too.
//
// Every score that Declared returns round-trips to the same value, label
// and breakdown, and so does every score that Compute returns when, as
// with kavach's backends, the enforced layers are among the asked ones and
// lost reasons are given only for asked layers.
func (s *Score) UnmarshalJSON(data []byte) error {
	var in struct {
		Value     int        `json:"value"`
		Label     string     `json:"label"`
		Modifiers []Modifier `json:"modifiers"`
	}
	if err := decodeStrict(data, &in); err != nil {
		return fmt.Errorf("score: %w", err)
	}
	if in.Value < 0 || in.Value > 100 || in.Label != Label(in.Value) || len(in.Modifiers) != NumModifiers {
		return fmt.Errorf("%w: value %d, label %q, %d modifiers", ErrInconsistent, in.Value, in.Label, len(in.Modifiers))
	}
	out := Score{Value: in.Value, basis: basisOf(in.Modifiers)}
	if out.basis.noop() && out.Value != 0 {
		return fmt.Errorf("%w: a noop score is 0, not %d", ErrInconsistent, out.Value)
	}
	if why := lostReasons(in.Modifiers); why != ([NumModifiers]string{}) && !out.basis.noop() {
		out.why = &why
	}
	if mods := out.Modifiers(); !slices.Equal(mods[:], in.Modifiers) {
		return fmt.Errorf("%w: the breakdown does not derive from one set of layers", ErrInconsistent)
	}
	*s = out
	return nil
}

// lostReasons reads back the reasons why asked layers were lost. The
// seccomp-off line's reason is not read but derived as Compute derives it,
// from the strict and basic lines, so that any other is rejected.
func lostReasons(mods []Modifier) [NumModifiers]string {
	var why [NumModifiers]string
	for i := 1; i < NumModifiers; i++ {
		if w, ok := strings.CutPrefix(mods[i].Reason, reasonLost); ok {
			why[i] = w
		}
	}
	why[0] = why[2] + why[1]
	return why
}

// decodeStrict decodes data into v, refusing unknown fields and objects
// that hold one key twice (compared as encoding/json matches keys, without
// regard to case), which encoding/json would otherwise resolve silently in
// favour of the last.
func decodeStrict(data []byte, v any) error {
	if err := checkKeys(json.NewDecoder(bytes.NewReader(data))); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("data after the score")
	}
	return nil
}

// checkKeys reads one JSON value from dec and fails on an object that
// holds a key twice.
func checkKeys(dec *json.Decoder) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	delim, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	var seen map[string]bool
	if delim == '{' {
		seen = map[string]bool{}
	}
	for dec.More() {
		if seen != nil {
			if tok, err = dec.Token(); err != nil {
				return err
			}
			key := foldKey(tok.(string))
			if seen[key] {
				return fmt.Errorf("duplicate key %q", tok)
			}
			seen[key] = true
		}
		if err := checkKeys(dec); err != nil {
			return err
		}
	}
	_, err = dec.Token() // the closing delimiter
	return err
}

// foldKey maps every rune of s to the smallest rune of its case-folding
// orbit: two keys that encoding/json matches alike fold to one string.
func foldKey(s string) string {
	return strings.Map(func(r rune) rune {
		low := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			low = min(low, f)
		}
		return low
	}, s)
}

// basisOf reads the layers back from a breakdown. A layer was asked when
// its line says "requested" or it was applied; a seccomp level, though,
// was asked only when no other level's line says "requested" (a policy
// asks one level, which a backend may enforce as another).
func basisOf(mods []Modifier) basis {
	if mods[0].Reason == reasonNoop {
		return basisNoop
	}
	var applied, requested set
	bits := [NumModifiers]set{0, levelBasic, levelAllowList, setFilesystem, setNetworkOff, setNetworkAllowlist, setLimits}
	for i := 1; i < NumModifiers; i++ {
		if mods[i].Applied {
			applied |= bits[i]
		}
		if strings.HasPrefix(mods[i].Reason, "requested") {
			requested |= bits[i]
		}
	}
	asked := requested | applied&^setLevel
	if requested&setLevel == levelOff {
		asked |= applied & setLevel
	}
	return makeBasis(asked, applied, mods[0].Reason != reasonOwnKernel, false)
}

func modifier(name string, points int, asked, got bool, why string) Modifier {
	m := Modifier{Name: name, Points: points, Applied: got}
	switch {
	case got:
		m.Reason = "enforced"
	case asked && why != "":
		m.Reason = reasonLost + why
	case asked:
		m.Reason = "requested but not supported by this backend"
	default:
		m.Reason = "not requested by the policy"
	}
	return m
}

func (s Score) seccompOff(why string) Modifier {
	m := Modifier{Name: ModSeccompOff, Points: PointsSeccompOff}
	asked, got := s.basis.asked()&setLevel, s.basis.got()&setLevel
	switch {
	case !s.basis.shared():
		m.Reason = reasonOwnKernel
	case got == levelOff && asked != levelOff:
		m.Applied = true
		m.Reason = "seccomp requested but not enforced"
		if why != "" {
			m.Reason = reasonSecLost + why
		}
	case got == levelOff:
		m.Applied = true
		m.Reason = "no seccomp filter on a backend that shares the host kernel"
	default:
		m.Reason = "seccomp filter in force"
	}
	return m
}
