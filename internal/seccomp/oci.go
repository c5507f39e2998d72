//go:build linux

package seccomp

import (
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// OCI returns profile p in the OCI runtime-spec form, for the runc, crun and
// runsc backends, with the same meaning as the BPF program of Compile. It
// returns nil for ProfileOff.
//
// Only the host architecture is listed, so the runtime kills callers that
// enter through another ABI (i386, x32). Conditions use SCMP_CMP_MASKED_EQ
// on the low 32 bits like the BPF form does. The OCI form has no "not in"
// operator, and runtimes OR conditions that repeat an argument index, so a
// "not in" condition becomes several rules whose masked patterns together
// cover exactly the excluded values' complement (complementCover).
func OCI(p Profile, custom []string) (*specs.LinuxSeccomp, error) {
	t, err := hostTarget()
	if err != nil {
		return nil, err
	}
	def, err := definitionFor(p, custom, t)
	if err != nil || def == nil {
		return nil, err
	}
	out := &specs.LinuxSeccomp{
		DefaultAction:   ociAction(def.fallback),
		DefaultErrnoRet: ociErrno(def.fallback),
		Architectures:   []specs.Arch{t.oci},
	}
	for _, r := range def.rules {
		names := knownNames(r.names, t)
		if len(names) == 0 {
			continue
		}
		for _, args := range ociArgs(r.conds) {
			out.Syscalls = append(out.Syscalls, specs.LinuxSyscall{
				Names:    names,
				Action:   ociAction(r.action),
				ErrnoRet: ociErrno(r.action),
				Args:     args,
			})
		}
	}
	return out, nil
}

// knownNames returns the sorted names that exist on t.
func knownNames(names []string, t *target) []string {
	var out []string
	for _, n := range names {
		if _, ok := t.syscalls[n]; ok {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

func ociAction(a action) specs.LinuxSeccompAction {
	if a == actAllow {
		return specs.ActAllow
	}
	return specs.ActErrno
}

func ociErrno(a action) *uint {
	var e uint
	switch a {
	case actEPERM:
		e = uint(unix.EPERM)
	case actENOSYS:
		e = uint(unix.ENOSYS)
	default:
		return nil
	}
	return &e
}

// ociArgs expands a rule's conditions into alternative argument lists: the
// rule matches when any one list matches (all of its entries hold).
func ociArgs(conds []cond) [][]specs.LinuxSeccompArg {
	alts := [][]specs.LinuxSeccompArg{nil}
	for _, c := range conds {
		var next [][]specs.LinuxSeccompArg
		for _, choice := range c.ociChoices() {
			for _, prefix := range alts {
				next = append(next, append(slices.Clone(prefix), choice))
			}
		}
		alts = next
	}
	return alts
}

// ociChoices returns single-argument tests of which exactly one holds
// whenever c holds, and none otherwise.
func (c cond) ociChoices() []specs.LinuxSeccompArg {
	if c.kind == condMaskedEq {
		return []specs.LinuxSeccompArg{maskedArg(c.arg, c.mask, c.value)}
	}
	var out []specs.LinuxSeccompArg
	for _, p := range complementCover(c.values) {
		out = append(out, maskedArg(c.arg, uint64(p.mask), uint64(p.value)))
	}
	return out
}

// maskedArg is (arg & mask) == value in OCI terms: Value is the mask and
// ValueTwo the datum, as libseccomp takes them.
func maskedArg(i uint8, mask, value uint64) specs.LinuxSeccompArg {
	return specs.LinuxSeccompArg{Index: uint(i), Value: mask, ValueTwo: value, Op: specs.OpMaskedEqual}
}

// pattern matches a 32-bit word w when w&mask == value.
type pattern struct{ mask, value uint32 }

// complementCover returns disjoint patterns that together match every
// 32-bit word except the given values. It splits the values on a bit where
// they differ until each branch holds at most one value; a branch with no
// value is one pattern, a branch with value v yields one pattern per free
// bit: "agrees with v below this bit, differs at it".
func complementCover(values []uint32) []pattern {
	vs := slices.Clone(values)
	slices.Sort(vs)
	return cover(0, 0, slices.Compact(vs))
}

// cover handles the branch of words w with w&fixed == prefix; every value
// in vs lies in it.
func cover(fixed, prefix uint32, vs []uint32) []pattern {
	switch len(vs) {
	case 0:
		return []pattern{{fixed, prefix}}
	case 1:
		var out []pattern
		for bit := uint32(1); bit != 0; bit <<= 1 {
			if fixed&bit == 0 {
				out = append(out, pattern{fixed | bit, prefix | (^vs[0] & bit)})
				fixed, prefix = fixed|bit, prefix|(vs[0]&bit)
			}
		}
		return out
	}
	split := (vs[0] ^ vs[len(vs)-1]) & -(vs[0] ^ vs[len(vs)-1]) // lowest differing bit
	var zeros, ones []uint32
	for _, v := range vs {
		if v&split == 0 {
			zeros = append(zeros, v)
		} else {
			ones = append(ones, v)
		}
	}
	return append(cover(fixed|split, prefix, zeros), cover(fixed|split, prefix|split, ones)...)
}
