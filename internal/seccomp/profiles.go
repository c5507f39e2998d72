//go:build linux

package seccomp

import (
	"fmt"
	"slices"

	"golang.org/x/sys/unix"
)

// action is what a rule does with a matching syscall.
type action uint8

const (
	actAllow  action = iota // run the syscall
	actEPERM                // fail with EPERM
	actENOSYS               // fail with ENOSYS (clone3, so libc falls back to clone)
)

// condKind selects how a condition tests one syscall argument.
type condKind uint8

const (
	// condMaskedEq holds when (arg & mask) == value (64-bit mask and value).
	condMaskedEq condKind = iota
	// condNotIn holds when the low 32 bits of arg are none of values.
	condNotIn
)

// cond tests one argument. Conditions on int-typed arguments only look at
// the low 32 bits: the kernel truncates the register, so a check on the high
// half could be dodged by a caller that sets garbage there.
type cond struct {
	arg    uint8 // argument index, 0-5
	kind   condKind
	mask   uint64   // condMaskedEq
	value  uint64   // condMaskedEq
	values []uint32 // condNotIn
}

// rule applies action to the named syscalls when all of its conditions hold.
type rule struct {
	names  []string
	action action
	conds  []cond
}

// definition is one profile: its rules, and the action for syscalls that no
// rule matches. For every syscall, all of its rules share one action and an
// unconditional rule is its only rule (validate), so the outcome does not
// depend on rule order. That is what lets the same definition become BPF
// (first match wins) and OCI (libseccomp merges rules) with equal meaning.
type definition struct {
	fallback action
	rules    []rule
}

// Argument values the conditions use.
const (
	low32          = 0xffffffff
	sockTypeMask   = 0xf // SOCK_NONBLOCK and SOCK_CLOEXEC live above it
	ipprotoMPTCP   = 262
	netlinkAudit   = 9
	netlinkUevent  = 15 // NETLINK_KOBJECT_UEVENT
	tiocLinux      = 0x541c
	personaLinux   = 0          // PER_LINUX
	personaQuery   = 0xffffffff // personality(0xffffffff) reads the persona
	protocolMaxLow = 0xffffff00 // protocol < 256: every IPPROTO_* but MPTCP
)

// modeArgs gives, for each call that sets a file mode, the index of the
// mode argument. Neither profile lets a mode carry the set-user-ID or
// set-group-ID bit: a sandbox must not plant set-id programs in a host
// directory it may write (an idmapped read-write bind makes the files it
// creates belong to the directory's owner on the host). openat2 passes its
// mode in memory the filter cannot read, so it is refused with ENOSYS and
// callers fall back to openat.
var modeArgs = []struct {
	name string
	arg  uint8
}{
	{"chmod", 1}, {"fchmod", 1}, {"fchmodat", 2}, {"fchmodat2", 2},
	{"creat", 1}, {"open", 2}, {"openat", 3}, {"mknod", 1}, {"mknodat", 2},
}

// setIDBits are S_ISUID and S_ISGID.
const (
	sISUID    = 0o4000
	sISGID    = 0o2000
	setIDBits = sISUID | sISGID
)

// openat2NoSys refuses openat2 (see modeArgs).
var openat2NoSys = rule{names: []string{"openat2"}, action: actENOSYS}

// cloneNewFlags are the namespace flags clone(2) accepts. CLONE_NEWTIME is
// left out: its bit is part of the exit signal in clone's flags, and it is
// only usable through clone3 and unshare, which are both denied.
var cloneNewFlags = []uint64{
	unix.CLONE_NEWNS, unix.CLONE_NEWCGROUP, unix.CLONE_NEWUTS,
	unix.CLONE_NEWIPC, unix.CLONE_NEWUSER, unix.CLONE_NEWPID,
	unix.CLONE_NEWNET,
}

// maskedEq holds when (arg & mask) == value.
func maskedEq(arg uint8, mask, value uint64) cond {
	return cond{arg: arg, kind: condMaskedEq, mask: mask, value: value}
}

// eq32 holds when the low 32 bits of arg equal v.
func eq32(arg uint8, v uint32) cond { return maskedEq(arg, low32, uint64(v)) }

// notIn32 holds when the low 32 bits of arg are none of vs.
func notIn32(arg uint8, vs ...uint32) cond {
	return cond{arg: arg, kind: condNotIn, values: vs}
}

// deny is an EPERM rule for one syscall under conditions.
func deny(name string, conds ...cond) rule {
	return rule{names: []string{name}, action: actEPERM, conds: conds}
}

// allow is an allow rule for one syscall under conditions.
func allow(name string, conds ...cond) rule {
	return rule{names: []string{name}, action: actAllow, conds: conds}
}

// clone3NoSys makes clone3 fail with ENOSYS: glibc then falls back to clone,
// whose flags are a register the filter can read (clone3's are in memory).
var clone3NoSys = rule{names: []string{"clone3"}, action: actENOSYS}

// basicConditionalDenies are the argument-dependent parts of the deny set.
func basicConditionalDenies() []rule {
	rules := []rule{
		deny("socket", eq32(0, unix.AF_PACKET)),
		deny("socket", maskedEq(1, sockTypeMask, unix.SOCK_RAW)),
		deny("socket", maskedEq(1, sockTypeMask, unix.SOCK_PACKET)),
		deny("socket", eq32(2, ipprotoMPTCP)),
		deny("socket", eq32(0, unix.AF_NETLINK), eq32(2, netlinkAudit)),
		// Host device events: the uevent netlink family is not per network
		// namespace.
		deny("socket", eq32(0, unix.AF_NETLINK), eq32(2, netlinkUevent)),
		// vsock's port space is the whole machine's, in every network
		// namespace: it would reach the hypervisor and the host from a
		// sandbox whose network is off.
		deny("socket", eq32(0, unix.AF_VSOCK)),
		deny("ioctl", eq32(1, unix.TIOCSTI)),
		deny("ioctl", eq32(1, tiocLinux)),
		deny("personality", notIn32(0, personaLinux, personaQuery)),
		// Another process's limits: the payload shares its uid with the
		// sandbox's init, whose limits (open files, CPU) it could otherwise
		// lower to break every later exec. Its own (pid 0) stay settable.
		deny("prlimit64", notIn32(0, 0)),
	}
	for _, f := range cloneNewFlags {
		rules = append(rules, deny("clone", maskedEq(0, f, f)))
	}
	for _, m := range modeArgs {
		rules = append(rules, deny(m.name, maskedEq(m.arg, sISUID, sISUID)), deny(m.name, maskedEq(m.arg, sISGID, sISGID)))
	}
	return rules
}

// strictConditionalAllows are the argument-dependent parts of the strict
// allow-list; each excludes what basicConditionalDenies denies.
func strictConditionalAllows() []rule {
	var newMask uint64
	for _, f := range cloneNewFlags {
		newMask |= f
	}
	rules := []rule{
		allow("clone", maskedEq(0, newMask, 0)),
		allow("ioctl", notIn32(1, unix.TIOCSTI, tiocLinux)),
		allow("personality", eq32(0, personaLinux)),
		allow("personality", eq32(0, personaQuery)),
		allow("prlimit64", eq32(0, 0)),
	}
	for _, m := range modeArgs {
		rules = append(rules, allow(m.name, maskedEq(m.arg, setIDBits, 0)))
	}
	for _, family := range []uint32{unix.AF_UNIX, unix.AF_INET, unix.AF_INET6} {
		for _, typ := range []uint64{unix.SOCK_STREAM, unix.SOCK_DGRAM, unix.SOCK_SEQPACKET} {
			rules = append(rules, allow("socket", eq32(0, family),
				maskedEq(1, sockTypeMask, typ), maskedEq(2, protocolMaxLow, 0)))
		}
	}
	return rules
}

// basicDefinition is the deny-list profile.
func basicDefinition() *definition {
	rules := []rule{{names: basicDenyNames, action: actEPERM}, clone3NoSys, openat2NoSys}
	return &definition{fallback: actAllow, rules: append(rules, basicConditionalDenies()...)}
}

// strictDefinition is the allow-list profile.
func strictDefinition() *definition {
	return allowListDefinition(strictAllowNames, strictConditionalAllows())
}

// allowListDefinition builds a default-deny profile from unconditional and
// conditional allow rules. Denied syscalls need no rules of their own:
// they are simply not allowed.
func allowListDefinition(names []string, conditional []rule) *definition {
	rules := []rule{clone3NoSys, openat2NoSys}
	if len(names) > 0 {
		rules = append(rules, rule{names: names, action: actAllow})
	}
	return &definition{fallback: actEPERM, rules: append(rules, conditional...)}
}

// customDefinition builds an allow-list from caller-given names, which must
// all be known on the target. Names in the basic deny set stay denied,
// clone3 and openat2 stay ENOSYS, and every name strict allows only under
// conditions (socket, ioctl, clone, personality, prlimit64 and the calls
// that take a file mode) gets those conditions.
func customDefinition(names []string, t *target) (*definition, error) {
	if len(names) == 0 {
		return nil, fmt.Errorf("seccomp: custom profile: %w", ErrEmptyCustom)
	}
	conditional := strictConditionalAllows()
	var plain []string
	var conds []rule
	for _, name := range names {
		if _, ok := t.syscalls[name]; !ok {
			return nil, fmt.Errorf("seccomp: custom profile: %w: %q (%s)", ErrUnknownSyscall, name, t.name)
		}
		switch {
		case slices.Contains(basicDenyNames, name), name == "clone3", name == "openat2":
			continue
		case hasRulesFor(conditional, name):
			if !hasRulesFor(conds, name) {
				conds = append(conds, rulesFor(conditional, name)...)
			}
		case !slices.Contains(plain, name):
			plain = append(plain, name)
		}
	}
	return allowListDefinition(plain, conds), nil
}

// hasRulesFor reports whether any rule names the syscall.
func hasRulesFor(rules []rule, name string) bool {
	return len(rulesFor(rules, name)) > 0
}

// rulesFor returns the rules that name the syscall.
func rulesFor(rules []rule, name string) []rule {
	var out []rule
	for _, r := range rules {
		if slices.Contains(r.names, name) {
			out = append(out, r)
		}
	}
	return out
}

// validate checks the invariants that make rule order irrelevant: per
// syscall one action, an unconditional rule stands alone, and no rule tests
// one argument twice (OCI runtimes would OR such conditions).
func (d *definition) validate() error {
	type seen struct {
		action        action
		unconditional bool
		rules         int
	}
	bySyscall := map[string]*seen{}
	for _, r := range d.rules {
		if err := r.validateArgs(); err != nil {
			return err
		}
		for _, name := range r.names {
			s := bySyscall[name]
			if s == nil {
				s = &seen{action: r.action}
				bySyscall[name] = s
			}
			s.rules++
			s.unconditional = s.unconditional || len(r.conds) == 0
			if s.action != r.action || (s.unconditional && s.rules > 1) {
				return fmt.Errorf("seccomp: conflicting rules for %s", name)
			}
		}
	}
	return nil
}

// validateArgs checks argument indices: in range and each used once.
func (r rule) validateArgs() error {
	var used [6]bool
	for _, c := range r.conds {
		if c.arg > 5 || used[c.arg] {
			return fmt.Errorf("seccomp: rule for %v: bad or repeated argument %d", r.names, c.arg)
		}
		used[c.arg] = true
	}
	return nil
}
