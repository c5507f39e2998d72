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
	"sync"
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

// Layers is a set of protections, one bit each: those a policy asks
// (Asked), those a backend can enforce (its capabilities), or those it
// actually enforced for one sandbox. A policy asks at most one seccomp
// layer. A backend lists each seccomp layer it can apply: one that applies
// allow-lists usually applies the deny-list too, and then lists both.
type Layers uint8

// The layers.
const (
	// SeccompBasic is the seccomp deny-list (profile basic).
	SeccompBasic Layers = 1 << iota
	// SeccompAllowlist is a seccomp allow-list (profile strict or custom).
	SeccompAllowlist
	// Filesystem is Landlock rules or a read-only root.
	Filesystem
	// NetworkOff means no network beyond loopback.
	NetworkOff
	// NetworkAllowlist means the network is reachable only through the
	// egress proxy's allowlist.
	NetworkAllowlist
	// Limits means a memory or CPU limit, and a pids limit.
	Limits

	// AllLayers is every layer.
	AllLayers = SeccompBasic | SeccompAllowlist | Filesystem | NetworkOff | NetworkAllowlist | Limits

	// seccompLayers are the two seccomp layers.
	seccompLayers = SeccompBasic | SeccompAllowlist
)

// layerNames name the layers in bit order, for String.
var layerNames = [...]string{"seccomp-basic", "seccomp-allowlist", "filesystem", "network-off", "network-allowlist", "limits"}

// String lists the layers of l joined by "+", or "none".
func (l Layers) String() string {
	var names []string
	for i, name := range layerNames {
		if l&(1<<i) != 0 {
			names = append(names, name)
		}
	}
	if l&^AllLayers != 0 {
		names = append(names, fmt.Sprintf("%#x", uint8(l&^AllLayers)))
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, "+")
}

// MarshalText encodes l as String does: "none", or the layers' names
// joined by "+". Bits that are no layer are an error.
func (l Layers) MarshalText() ([]byte, error) {
	if l&^AllLayers != 0 {
		return nil, fmt.Errorf("score: layers %#x: bits that are no layer", uint8(l))
	}
	return []byte(l.String()), nil
}

// UnmarshalText decodes what MarshalText encodes.
func (l *Layers) UnmarshalText(b []byte) error {
	var out Layers
	if s := string(b); s != "none" {
		for name := range strings.SplitSeq(s, "+") {
			i := slices.Index(layerNames[:], name)
			if i < 0 {
				return fmt.Errorf("score: unknown layer %q", name)
			}
			out |= 1 << i
		}
	}
	*l = out
	return nil
}

// Has reports whether l holds every layer of x.
func (l Layers) Has(x Layers) bool { return l&x == x }

// SeccompLayer is the layer of a seccomp profile: SeccompBasic for basic,
// SeccompAllowlist for strict and custom, none for off and anything else.
func SeccompLayer(p policy.SeccompProfile) Layers { return seccompLayer[p] }

// Tables indexed by a whole uint8, so that a lookup needs no bounds check;
// values that are not profiles or modes ask no layer.
var (
	seccompLayer = [256]Layers{policy.SeccompBasic: SeccompBasic, policy.SeccompStrict: SeccompAllowlist, policy.SeccompCustom: SeccompAllowlist}
	networkLayer = [256]Layers{policy.NetworkOff: NetworkOff, policy.NetworkAllowlist: NetworkAllowlist}
)

// Asked returns the layers a policy asks for.
func Asked(p *policy.Policy) Layers {
	l := seccompLayer[p.Seccomp] | networkLayer[p.Network.Mode]
	if p.Filesystem.ReadOnlyRoot {
		l |= Filesystem
	}
	if p.HasLimits() {
		l |= Limits
	}
	return l
}

// Intersect returns the layers of l that a backend with capabilities c can
// enforce: those in both.
func (l Layers) Intersect(c Layers) Layers { return l & c }

// strongestSeccomp is l with at most one seccomp layer, the stronger.
func (l Layers) strongestSeccomp() Layers {
	if l&SeccompAllowlist != 0 {
		return l &^ SeccompBasic
	}
	return l
}

// points[shared][l] is the sum of the modifiers of the enforced layers l
// (at most one seccomp layer) on a backend that shares the host kernel (1)
// or not (0).
var points = func() (t [2][AllLayers + 1]int8) {
	for l := range AllLayers + 1 {
		var p int8
		for _, m := range []struct {
			l   Layers
			pts int8
		}{{SeccompBasic, PointsSeccompBasic}, {SeccompAllowlist, PointsSeccompStrict}, {Filesystem, PointsFilesystem}, {NetworkOff, PointsNetworkOff}, {NetworkAllowlist, PointsNetworkAllowlist}, {Limits, PointsLimits}} {
			if l.strongestSeccomp()&m.l != 0 {
				p += m.pts
			}
		}
		t[0][l] = p
		t[1][l] = p
		if l&seccompLayers == 0 {
			t[1][l] += PointsSeccompOff
		}
	}
	return t
}()

// Backend is what the score needs to know about a backend: its base score,
// whether it shares the host kernel and whether it is the noop backend,
// with the score of every set of enforced layers worked out in advance.
// Make one with NewBackend; the zero Backend is not usable.
type Backend struct {
	scores *scoreTable
	base   int
}

// A scoreTable holds, for each set of enforced layers got (the index), the
// score's value in the upper half and, in the lower half, the basis of the
// score but for its asked layers. It has 256 entries so that any Layers
// indexes it without a bounds check; only the first 64 are used.
type scoreTable [256]uint64

// Bases beyond which a backend's scores no longer change: the modifiers
// add at most 14 points and take away at most 5, and scores are clamped to
// 0..100, so any base up to -20 scores as -20 does, and any base from 120
// as 120 does.
const (
	lowestBase  = -20
	highestBase = 120
)

// tables[noop][shared][base-lowestBase] holds the score table of each kind
// of backend, built on first use.
var tables [2][2][highestBase - lowestBase + 1]struct {
	once sync.Once
	t    *scoreTable
}

// NewBackend describes a backend with base score base (0 to 100 for
// kavach's backends; any value is allowed), that shares the host kernel
// (process, oci: only they lose points without seccomp), or that is the
// noop backend (always 0). Two Backends made alike are equal.
func NewBackend(base int, sharedKernel, noop bool) Backend {
	tb := min(max(base, lowestBase), highestBase)
	e := &tables[b2i(noop)][b2i(sharedKernel)][tb-lowestBase]
	e.once.Do(func() { e.t = newScoreTable(tb, sharedKernel, noop) })
	return Backend{scores: e.t, base: base}
}

// newScoreTable computes the scores of a backend.
func newScoreTable(base int, shared, noop bool) *scoreTable {
	t := new(scoreTable)
	for got := range AllLayers + 1 {
		v := min(max(base+int(points[b2i(shared)][got]), 0), 100)
		if noop {
			v = 0
		}
		t[got] = uint64(v)<<32 | uint64(makeBasis(0, got, shared, noop))
	}
	return t
}

// Base is the backend's base score.
func (b Backend) Base() int { return b.base }

// SharedKernel reports whether the backend's payloads talk to the host
// kernel directly.
func (b Backend) SharedKernel() bool { return basis(b.scores[0]).shared() }

// Noop reports whether this is the noop backend.
func (b Backend) Noop() bool { return basis(b.scores[0]).noop() }

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

func makeBasis(asked, got Layers, shared, noop bool) basis {
	return basis(asked) | basis(got)<<8 | basis(b2i(shared))<<16 | basis(b2i(noop))<<17
}

func (b basis) asked() Layers { return Layers(b) }
func (b basis) got() Layers   { return Layers(b >> 8) }
func (b basis) shared() bool  { return b&basisShared != 0 }
func (b basis) noop() bool    { return b&basisNoop != 0 }

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
// enforces every asked layer it supports (caps). It is small enough to be
// inlined: picking a backend and creating a sandbox call it.
func Declared(b Backend, p *policy.Policy, caps Layers) Score {
	return b.declared(Asked(p), caps)
}

// declared is the declared score of a policy asking asked on b.
func (b Backend) declared(asked, caps Layers) Score {
	e := b.scores[asked&caps]
	return Score{Value: int(e >> 32), basis: basis(e) | basis(asked)}
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
	asked, got := asked.strongestSeccomp()&AllLayers, enforced.strongestSeccomp()&AllLayers
	e := b.scores[got]
	return Score{Value: int(e >> 32), basis: basis(e) | basis(asked), why: why}
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
	mods := [NumModifiers]Modifier{s.seccompOff(why[0])}
	for i, b := range [...]Layers{SeccompBasic, SeccompAllowlist, Filesystem, NetworkOff, NetworkAllowlist, Limits} {
		n := i + 1
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
	var applied, requested Layers
	bits := [NumModifiers]Layers{0, SeccompBasic, SeccompAllowlist, Filesystem, NetworkOff, NetworkAllowlist, Limits}
	for i := 1; i < NumModifiers; i++ {
		if mods[i].Applied {
			applied |= bits[i]
		}
		if strings.HasPrefix(mods[i].Reason, "requested") {
			requested |= bits[i]
		}
	}
	asked := requested | applied&^seccompLayers
	if requested&seccompLayers == 0 {
		asked |= applied & seccompLayers
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
	asked, got := s.basis.asked()&seccompLayers, s.basis.got()&seccompLayers
	switch {
	case !s.basis.shared():
		m.Reason = reasonOwnKernel
	case got == 0 && asked != 0:
		m.Applied = true
		m.Reason = "seccomp requested but not enforced"
		if why != "" {
			m.Reason = reasonSecLost + why
		}
	case got == 0:
		m.Applied = true
		m.Reason = "no seccomp filter on a backend that shares the host kernel"
	default:
		m.Reason = "seccomp filter in force"
	}
	return m
}
