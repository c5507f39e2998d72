//go:build linux

package seccomp

import (
	"fmt"
	"slices"

	"golang.org/x/sys/unix"
)

// Offsets in struct seccomp_data (little-endian targets only).
const (
	offNr   = 0
	offArch = 4
	offArgs = 16
)

// maxJump is the farthest a conditional BPF jump reaches.
const maxJump = 255

// retValue is the filter's return value for an action.
func retValue(a action) uint32 {
	switch a {
	case actEPERM:
		return unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
	case actENOSYS:
		return unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
	}
	return unix.SECCOMP_RET_ALLOW
}

func load(off uint32) unix.SockFilter {
	return unix.SockFilter{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: off}
}

func ret(k uint32) unix.SockFilter {
	return unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: k}
}

func and(k uint32) unix.SockFilter {
	return unix.SockFilter{Code: unix.BPF_ALU | unix.BPF_AND | unix.BPF_K, K: k}
}

func jump(op uint16, k uint32, jt, jf uint8) unix.SockFilter {
	return unix.SockFilter{Code: unix.BPF_JMP | op | unix.BPF_K, K: k, Jt: jt, Jf: jf}
}

// argLo and argHi are the offsets of the halves of argument i.
func argLo(i uint8) uint32 { return offArgs + 8*uint32(i) }
func argHi(i uint8) uint32 { return argLo(i) + 4 }

// assemble renders a definition as a BPF program for target t:
//
//	prologue: foreign architecture or x32 number → kill the process
//	for each syscall with rules: jeq nr, else skip its block
//	    block: the syscall's rules, then the fallback action
//	fallback action
//
// Every block ends in a return, so argument loads inside a block never leak
// into the next syscall comparison. Syscalls with argument conditions are
// tested first: they are the ones the kernel cannot cache as always-allowed.
func assemble(d *definition, t *target) ([]unix.SockFilter, error) {
	bySyscall, order := groupBySyscall(d, t)
	prog := prologue(t)
	for _, nr := range order {
		block, err := syscallBlock(bySyscall[nr], d.fallback)
		if err != nil {
			return nil, fmt.Errorf("seccomp: syscall %d: %w", nr, err)
		}
		if len(block) > maxJump {
			return nil, fmt.Errorf("seccomp: syscall %d: block of %d instructions is too long", nr, len(block))
		}
		prog = append(prog, jump(unix.BPF_JEQ, uint32(nr), 0, uint8(len(block))))
		prog = append(prog, block...)
	}
	prog = append(prog, ret(retValue(d.fallback)))
	if len(prog) > unix.BPF_MAXINSNS {
		return nil, fmt.Errorf("seccomp: program of %d instructions exceeds %d", len(prog), unix.BPF_MAXINSNS)
	}
	return prog, nil
}

// prologue kills the process on a foreign ABI and leaves the syscall number
// in the accumulator.
func prologue(t *target) []unix.SockFilter {
	kill := ret(unix.SECCOMP_RET_KILL_PROCESS)
	prog := []unix.SockFilter{
		load(offArch),
		jump(unix.BPF_JEQ, t.audit, 1, 0),
		kill,
		load(offNr),
	}
	if t.x32 {
		prog = append(prog, jump(unix.BPF_JSET, x32SyscallBit, 0, 1), kill)
	}
	return prog
}

// groupBySyscall maps syscall numbers to their rules (in definition order)
// and returns the numbers in emission order. Names unknown on t are skipped:
// such a syscall cannot be called there.
func groupBySyscall(d *definition, t *target) (map[int][]rule, []int) {
	bySyscall := map[int][]rule{}
	for _, r := range d.rules {
		for _, name := range r.names {
			if nr, ok := t.syscalls[name]; ok {
				bySyscall[nr] = append(bySyscall[nr], r)
			}
		}
	}
	order := make([]int, 0, len(bySyscall))
	for nr := range bySyscall {
		order = append(order, nr)
	}
	conditional := func(nr int) bool { return len(bySyscall[nr][0].conds) > 0 }
	slices.SortFunc(order, func(a, b int) int {
		if ca, cb := conditional(a), conditional(b); ca != cb {
			if ca {
				return -1
			}
			return 1
		}
		return a - b
	})
	return bySyscall, order
}

// syscallBlock is the code for one syscall: each rule in turn, then the
// fallback. It is entered with the syscall number in the accumulator and
// always returns.
func syscallBlock(rules []rule, fallback action) ([]unix.SockFilter, error) {
	if len(rules) == 1 && len(rules[0].conds) == 0 {
		return []unix.SockFilter{ret(retValue(rules[0].action))}, nil
	}
	var block []unix.SockFilter
	for _, r := range rules {
		frag, err := ruleCode(r)
		if err != nil {
			return nil, err
		}
		block = append(block, frag...)
	}
	return append(block, ret(retValue(fallback))), nil
}

// fragment is rule code under construction: jumps marked fail are patched
// to land just past the rule's return.
type fragment struct {
	code []unix.SockFilter
	fail []failJump
}

type failJump struct {
	at     int
	onTrue bool
}

func (f *fragment) emit(ins unix.SockFilter) { f.code = append(f.code, ins) }

// emitFail emits a conditional jump whose true (or false) branch fails the
// rule and whose other branch falls through.
func (f *fragment) emitFail(op uint16, k uint32, failOnTrue bool) {
	f.fail = append(f.fail, failJump{at: len(f.code), onTrue: failOnTrue})
	f.emit(jump(op, k, 0, 0))
}

// ruleCode is the code for one rule: its conditions in turn, each jumping
// past the rule when it does not hold, then the rule's return.
func ruleCode(r rule) ([]unix.SockFilter, error) {
	var f fragment
	for _, c := range r.conds {
		c.emit(&f)
	}
	f.emit(ret(retValue(r.action)))
	for _, j := range f.fail {
		skip := len(f.code) - j.at - 1
		if skip > maxJump {
			return nil, fmt.Errorf("rule for %v: %d instructions is too long", r.names, len(f.code))
		}
		if j.onTrue {
			f.code[j.at].Jt = uint8(skip)
		} else {
			f.code[j.at].Jf = uint8(skip)
		}
	}
	return f.code, nil
}

// emit appends the test for c; control falls through when c holds.
func (c cond) emit(f *fragment) {
	switch c.kind {
	case condMaskedEq:
		emitMaskedEq(f, argHi(c.arg), uint32(c.mask>>32), uint32(c.value>>32))
		emitMaskedEq(f, argLo(c.arg), uint32(c.mask), uint32(c.value))
	case condNotIn:
		f.emit(load(argLo(c.arg)))
		for _, v := range c.values {
			f.emitFail(unix.BPF_JEQ, v, true)
		}
	}
}

// emitMaskedEq tests (word & mask) == value for one 32-bit half.
func emitMaskedEq(f *fragment, off, mask, value uint32) {
	switch {
	case mask == 0:
		return // nothing to test in this half
	case mask == value && mask&(mask-1) == 0:
		f.emit(load(off)) // one bit that must be set
		f.emitFail(unix.BPF_JSET, mask, false)
		return
	}
	f.emit(load(off))
	if mask != low32 {
		f.emit(and(mask))
	}
	f.emitFail(unix.BPF_JEQ, value&mask, false)
}
