//go:build linux

package seccomp

import (
	"encoding/binary"
	"testing"

	"golang.org/x/sys/unix"
)

// call is the input of a seccomp filter (struct seccomp_data, minus ip).
type call struct {
	nr   uint32
	arch uint32
	args [6]uint64
}

// Filter results the tests compare against.
const (
	retAllow  = unix.SECCOMP_RET_ALLOW
	retEPERM  = unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
	retENOSYS = unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
	retKill   = unix.SECCOMP_RET_KILL_PROCESS
)

// evalBPF runs a seccomp filter the way the kernel would, for the
// instructions this package emits. It fails the test on anything else,
// on out-of-range loads and on jumps past the end.
func evalBPF(tb testing.TB, prog []unix.SockFilter, c call) uint32 {
	tb.Helper()
	var data [64]byte
	binary.LittleEndian.PutUint32(data[0:], c.nr)
	binary.LittleEndian.PutUint32(data[4:], c.arch)
	for i, a := range c.args {
		binary.LittleEndian.PutUint64(data[16+8*i:], a)
	}
	var acc uint32
	for pc := 0; pc < len(prog); pc++ {
		ins := prog[pc]
		switch ins.Code {
		case unix.BPF_LD | unix.BPF_W | unix.BPF_ABS:
			if ins.K%4 != 0 || ins.K > 60 {
				tb.Fatalf("pc %d: load at offset %d", pc, ins.K)
			}
			acc = binary.LittleEndian.Uint32(data[ins.K:])
		case unix.BPF_ALU | unix.BPF_AND | unix.BPF_K:
			acc &= ins.K
		case unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K:
			pc += branch(acc == ins.K, ins)
		case unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K:
			pc += branch(acc&ins.K != 0, ins)
		case unix.BPF_RET | unix.BPF_K:
			return ins.K
		default:
			tb.Fatalf("pc %d: unexpected opcode %#x", pc, ins.Code)
		}
	}
	tb.Fatalf("filter fell off its end")
	return 0
}

func branch(cond bool, ins unix.SockFilter) int {
	if cond {
		return int(ins.Jt)
	}
	return int(ins.Jf)
}

// dispatchedSyscalls walks the dispatch chain of an assembled filter (after
// the prologue) and returns the syscall numbers it tests.
func dispatchedSyscalls(tb testing.TB, prog []unix.SockFilter, t *target) []int {
	tb.Helper()
	pc := len(prologue(t))
	var nrs []int
	for prog[pc].Code != unix.BPF_RET|unix.BPF_K {
		ins := prog[pc]
		if ins.Code != unix.BPF_JMP|unix.BPF_JEQ|unix.BPF_K || ins.Jt != 0 {
			tb.Fatalf("pc %d: not a dispatch jump: %+v", pc, ins)
		}
		nrs = append(nrs, int(ins.K))
		pc += 1 + int(ins.Jf)
	}
	if pc != len(prog)-1 {
		tb.Fatalf("dispatch chain ends at %d of %d", pc, len(prog))
	}
	return nrs
}
