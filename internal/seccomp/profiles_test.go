//go:build linux

package seccomp

import (
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func mustAssemble(t *testing.T, p Profile, custom []string, tg *target) []unix.SockFilter {
	t.Helper()
	def, err := definitionFor(p, custom, tg)
	if err != nil {
		t.Fatalf("definition %s: %v", p, err)
	}
	prog, err := assemble(def, tg)
	if err != nil {
		t.Fatalf("assemble %s for %s: %v", p, tg.name, err)
	}
	return prog
}

// sys builds a native x86_64 call.
func sys(t *testing.T, name string, args ...uint64) call {
	t.Helper()
	nr, ok := targetAMD64.syscalls[name]
	if !ok {
		t.Fatalf("no syscall %s", name)
	}
	c := call{nr: uint32(nr), arch: unix.AUDIT_ARCH_X86_64}
	copy(c.args[:], args)
	return c
}

func TestBuiltinNamesExistOnX86_64(t *testing.T) {
	var all []string
	all = append(all, basicDenyNames...)
	all = append(all, strictAllowNames...)
	for _, r := range append(basicConditionalDenies(), strictConditionalAllows()...) {
		all = append(all, r.names...)
	}
	for _, name := range all {
		if _, ok := targetAMD64.syscalls[name]; !ok {
			t.Errorf("%s is not an x86_64 syscall", name)
		}
	}
	for _, list := range [][]string{basicDenyNames, strictAllowNames} {
		sorted := slices.Sorted(slices.Values(list))
		if len(slices.Compact(sorted)) != len(list) {
			t.Errorf("duplicate names in %v", list[:3])
		}
	}
	for _, name := range strictAllowNames {
		if slices.Contains(basicDenyNames, name) {
			t.Errorf("strict allows %s from the basic deny set", name)
		}
	}
}

func TestProfilesAssembleOnBothArches(t *testing.T) {
	for _, tg := range []*target{targetAMD64, targetARM64} {
		for _, p := range []Profile{ProfileBasic, ProfileStrict} {
			prog := mustAssemble(t, p, nil, tg)
			t.Logf("%s/%s: %d instructions", tg.name, p, len(prog))
		}
	}
	if _, err := targetFor("riscv64"); !errors.Is(err, ErrUnsupportedArch) {
		t.Errorf("riscv64: got %v, want ErrUnsupportedArch", err)
	}
}

// Values from <linux/personality.h> and the exit signal for clone.
const (
	perLinux32      = 0x0008
	readImpliesExec = 0x0400000
	addrNoRandomize = 0x0040000
	sigchld         = uint64(unix.SIGCHLD)
)

// Adversarial argument values: flags OR'ed into the socket type, garbage in
// the high half of int arguments (the kernel truncates it away).
const hi = uint64(1) << 32

func TestFilterDecisions(t *testing.T) {
	cases := []struct {
		name          string
		c             call
		basic, strict uint32
	}{
		{"read", sys(t, "read", 0, 0, 1), retAllow, retAllow},
		{"ptrace", sys(t, "ptrace", unix.PTRACE_TRACEME), retEPERM, retEPERM},
		{"mount", sys(t, "mount"), retEPERM, retEPERM},
		{"unshare", sys(t, "unshare", unix.CLONE_NEWUSER), retEPERM, retEPERM},
		{"setns", sys(t, "setns", 3, 0), retEPERM, retEPERM},
		{"clone3", sys(t, "clone3"), retENOSYS, retENOSYS},
		{"fork-like clone", sys(t, "clone", sigchld), retAllow, retAllow},
		{"thread clone", sys(t, "clone", unix.CLONE_VM|unix.CLONE_THREAD|unix.CLONE_SIGHAND|unix.CLONE_FS|unix.CLONE_FILES), retAllow, retAllow},
		{"clone newuser", sys(t, "clone", unix.CLONE_NEWUSER|sigchld), retEPERM, retEPERM},
		{"clone newnet", sys(t, "clone", unix.CLONE_NEWNET), retEPERM, retEPERM},
		{"clone newuser hi garbage", sys(t, "clone", hi|unix.CLONE_NEWUSER), retEPERM, retEPERM},
		{"socket inet stream", sys(t, "socket", unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0), retAllow, retAllow},
		{"socket unix dgram", sys(t, "socket", unix.AF_UNIX, unix.SOCK_DGRAM, 0), retAllow, retAllow},
		{"socket inet6 tcp", sys(t, "socket", unix.AF_INET6, unix.SOCK_STREAM|unix.SOCK_NONBLOCK, unix.IPPROTO_TCP), retAllow, retAllow},
		{"socket packet", sys(t, "socket", unix.AF_PACKET, unix.SOCK_DGRAM, 0), retEPERM, retEPERM},
		{"socket packet hi garbage", sys(t, "socket", hi|unix.AF_PACKET, unix.SOCK_DGRAM, 0), retEPERM, retEPERM},
		{"socket raw cloexec", sys(t, "socket", unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 1), retEPERM, retEPERM},
		{"socket raw nonblock hi", sys(t, "socket", unix.AF_INET6, hi|unix.SOCK_RAW|unix.SOCK_NONBLOCK, 58), retEPERM, retEPERM},
		{"socket netlink raw", sys(t, "socket", unix.AF_NETLINK, unix.SOCK_RAW, 0), retEPERM, retEPERM},
		{"socket netlink audit dgram", sys(t, "socket", unix.AF_NETLINK, unix.SOCK_DGRAM, netlinkAudit), retEPERM, retEPERM},
		{"socket netlink route dgram", sys(t, "socket", unix.AF_NETLINK, unix.SOCK_DGRAM, 0), retAllow, retEPERM},
		{"socket mptcp", sys(t, "socket", unix.AF_INET, unix.SOCK_STREAM, ipprotoMPTCP), retEPERM, retEPERM},
		{"socket mptcp hi garbage", sys(t, "socket", unix.AF_INET, unix.SOCK_STREAM, hi|ipprotoMPTCP), retEPERM, retEPERM},
		{"socket vsock", sys(t, "socket", unix.AF_VSOCK, unix.SOCK_STREAM, 0), retEPERM, retEPERM},
		{"socket netlink uevent", sys(t, "socket", unix.AF_NETLINK, unix.SOCK_DGRAM, netlinkUevent), retEPERM, retEPERM},
		{"ioctl tcgets", sys(t, "ioctl", 0, unix.TCGETS), retAllow, retAllow},
		{"ioctl tiocsti", sys(t, "ioctl", 0, unix.TIOCSTI), retEPERM, retEPERM},
		{"ioctl tiocsti hi garbage", sys(t, "ioctl", 0, hi|unix.TIOCSTI), retEPERM, retEPERM},
		{"ioctl tioclinux", sys(t, "ioctl", 0, tiocLinux), retEPERM, retEPERM},
		{"personality linux", sys(t, "personality", 0), retAllow, retAllow},
		{"prlimit64 self", sys(t, "prlimit64", 0, unix.RLIMIT_NOFILE), retAllow, retAllow},
		{"prlimit64 pid 1", sys(t, "prlimit64", 1, unix.RLIMIT_NOFILE), retEPERM, retEPERM},
		{"prlimit64 pid 1 hi garbage", sys(t, "prlimit64", hi|1, unix.RLIMIT_NOFILE), retEPERM, retEPERM},
		{"personality query", sys(t, "personality", 0xffffffff), retAllow, retAllow},
		{"personality query hi", sys(t, "personality", hi|0xffffffff), retAllow, retAllow},
		{"personality linux32", sys(t, "personality", perLinux32), retEPERM, retEPERM},
		{"personality read implies exec", sys(t, "personality", readImpliesExec), retEPERM, retEPERM},
		{"personality no randomize", sys(t, "personality", addrNoRandomize), retEPERM, retEPERM},
		{"bpf", sys(t, "bpf"), retEPERM, retEPERM},
		{"io_uring_setup", sys(t, "io_uring_setup"), retEPERM, retEPERM},
		{"unknown syscall number", call{nr: 1000, arch: unix.AUDIT_ARCH_X86_64}, retAllow, retEPERM},
		{"i386 entry", call{nr: 20, arch: unix.AUDIT_ARCH_I386}, retKill, retKill},
		{"x32 entry", call{nr: x32SyscallBit | 39, arch: unix.AUDIT_ARCH_X86_64}, retKill, retKill},
	}
	basic := mustAssemble(t, ProfileBasic, nil, targetAMD64)
	strict := mustAssemble(t, ProfileStrict, nil, targetAMD64)
	for _, tc := range cases {
		if got := evalBPF(t, basic, tc.c); got != tc.basic {
			t.Errorf("basic %s: got %#x, want %#x", tc.name, got, tc.basic)
		}
		if got := evalBPF(t, strict, tc.c); got != tc.strict {
			t.Errorf("strict %s: got %#x, want %#x", tc.name, got, tc.strict)
		}
	}
}

func TestStrictDeniesEveryBasicDenial(t *testing.T) {
	basic := mustAssemble(t, ProfileBasic, nil, targetAMD64)
	strict := mustAssemble(t, ProfileStrict, nil, targetAMD64)
	for _, c := range sampleCalls(targetAMD64) {
		b, s := evalBPF(t, basic, c), evalBPF(t, strict, c)
		if b != retAllow && s != b {
			t.Errorf("nr %d args %#x: basic %#x but strict %#x", c.nr, c.args[:3], b, s)
		}
	}
}

func TestARM64FilterChecksItsArch(t *testing.T) {
	prog := mustAssemble(t, ProfileBasic, nil, targetARM64)
	ptrace := uint32(targetARM64.syscalls["ptrace"])
	if got := evalBPF(t, prog, call{nr: ptrace, arch: unix.AUDIT_ARCH_AARCH64}); got != retEPERM {
		t.Errorf("arm64 ptrace: got %#x", got)
	}
	if got := evalBPF(t, prog, call{nr: 26, arch: unix.AUDIT_ARCH_ARM}); got != retKill {
		t.Errorf("arm compat entry: got %#x, want kill", got)
	}
}

// sampleCalls returns every syscall of the target with zero arguments, and
// the argument-filtered syscalls with many adversarial argument vectors.
func sampleCalls(tg *target) []call {
	var calls []call
	for _, nr := range tg.syscalls {
		calls = append(calls, call{nr: uint32(nr), arch: tg.audit})
	}
	values := []uint64{
		0, 1, 2, 3, 5, 6, 8, 9, 10, 16, 17, 58, 255, 256, ipprotoMPTCP,
		unix.TIOCSTI, tiocLinux, unix.TCGETS, 0xffffffff, 0xfffffffe,
		unix.SOCK_RAW | unix.SOCK_CLOEXEC, unix.SOCK_STREAM | unix.SOCK_NONBLOCK,
		unix.CLONE_NEWUSER | sigchld, unix.CLONE_NEWNS, unix.CLONE_VM | unix.CLONE_THREAD,
		perLinux32, readImpliesExec, hi | unix.AF_PACKET, hi | ipprotoMPTCP,
		hi | unix.TIOCSTI, hi | 0xffffffff, hi,
	}
	for _, name := range []string{"socket", "ioctl", "clone", "personality"} {
		nr := uint32(tg.syscalls[name])
		for _, a := range values {
			for _, b := range values {
				for _, c := range values {
					calls = append(calls, call{nr: nr, arch: tg.audit, args: [6]uint64{a, b, c}})
				}
			}
		}
	}
	return calls
}

func TestComplementCover(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	sets := [][]uint32{{0}, {0, 0xffffffff}, {unix.TIOCSTI, tiocLinux}, {5, 5, 7, 1 << 31, 12345}}
	for range 20 {
		set := make([]uint32, 1+rng.IntN(6))
		for i := range set {
			set[i] = rng.Uint32() & 0xff
		}
		sets = append(sets, set)
	}
	for _, set := range sets {
		cover := complementCover(set)
		words := slices.Clone(set)
		for range 2000 {
			words = append(words, rng.Uint32(), rng.Uint32()&0xff)
		}
		for _, w := range words {
			matches := 0
			for _, p := range cover {
				if w&p.mask == p.value {
					matches++
				}
			}
			want := 1
			if slices.Contains(set, w) {
				want = 0
			}
			if matches != want {
				t.Fatalf("set %#x word %#x: %d patterns match, want %d", set, w, matches, want)
			}
		}
	}
}

func TestCustomProfile(t *testing.T) {
	prog := mustAssemble(t, ProfileCustom, []string{"read", "write", "exit_group", "ptrace", "socket", "clone3", "read"}, targetAMD64)
	for _, tc := range []struct {
		c    call
		want uint32
	}{
		{sys(t, "read"), retAllow},
		{sys(t, "exit_group"), retAllow},
		{sys(t, "ptrace"), retEPERM}, // basic deny set wins
		{sys(t, "clone3"), retENOSYS},
		{sys(t, "socket", unix.AF_INET, unix.SOCK_STREAM), retAllow},
		{sys(t, "socket", unix.AF_INET, unix.SOCK_RAW), retEPERM},
		{sys(t, "openat"), retEPERM},
		{sys(t, "clone", sigchld), retEPERM}, // not listed
	} {
		if got := evalBPF(t, prog, tc.c); got != tc.want {
			t.Errorf("custom nr %d: got %#x, want %#x", tc.c.nr, got, tc.want)
		}
	}
	_, err := Compile(ProfileCustom, []string{"read", "no_such_call"})
	if !errors.Is(err, ErrUnknownSyscall) || !strings.Contains(err.Error(), `"no_such_call"`) {
		t.Errorf("unknown name: got %v", err)
	}
	if _, err := Compile(ProfileCustom, nil); !errors.Is(err, ErrEmptyCustom) {
		t.Errorf("empty custom: got %v", err)
	}
	if _, err := Compile(ProfileBasic, []string{"read"}); !errors.Is(err, ErrUnknownProfile) {
		t.Errorf("names with basic: got %v", err)
	}
	if _, err := Compile("paranoid", nil); !errors.Is(err, ErrUnknownProfile) {
		t.Errorf("unknown profile: got %v", err)
	}
	if _, err := OCI("paranoid", nil); !errors.Is(err, ErrUnknownProfile) {
		t.Errorf("unknown OCI profile: got %v", err)
	}
}

func TestCompileCachesAndMarshals(t *testing.T) {
	a, err := Compile(ProfileCustom, []string{"write", "read", "exit_group"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Compile(ProfileCustom, []string{"exit_group", "read", "write", "read"})
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Error("same custom set compiled twice")
	}
	for _, p := range []Profile{ProfileOff, ProfileBasic, ProfileStrict} {
		prog, err := Compile(p, nil)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := prog.MarshalBinary()
		back, err := UnmarshalProgram(raw)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if !slices.Equal(back.Instructions(), prog.Instructions()) || back.Empty() != (p == ProfileOff) {
			t.Errorf("%s: round trip changed the program", p)
		}
	}
	good, _ := a.MarshalBinary()
	noRet := slices.Clone(good)
	noRet[len(noRet)-8] = byte(unix.BPF_LD)
	for name, bad := range map[string][]byte{
		"empty":     nil,
		"magic":     append([]byte("XXXX"), good[4:]...),
		"truncated": good[:len(good)-3],
		"trailing":  append(slices.Clone(good), 0),
		"no return": noRet,
	} {
		if _, err := UnmarshalProgram(bad); !errors.Is(err, ErrBadProgram) {
			t.Errorf("%s: got %v, want ErrBadProgram", name, err)
		}
	}
}
