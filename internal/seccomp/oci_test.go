//go:build linux

package seccomp

import (
	"encoding/json"
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// evalOCI decides a call the way runc with libseccomp does: the entries that
// name the syscall and whose conditions all hold decide; none → default.
// Matching entries with different results make the profile ambiguous.
func evalOCI(t *testing.T, prof *specs.LinuxSeccomp, name string, c call) uint32 {
	t.Helper()
	result := ociRet(t, prof.DefaultAction, prof.DefaultErrnoRet)
	matched := false
	for _, sc := range prof.Syscalls {
		if !slices.Contains(sc.Names, name) || !argsHold(t, sc.Args, c) {
			continue
		}
		r := ociRet(t, sc.Action, sc.ErrnoRet)
		if matched && r != result {
			t.Fatalf("%s %#x: ambiguous OCI rules", name, c.args[:3])
		}
		result, matched = r, true
	}
	return result
}

func argsHold(t *testing.T, args []specs.LinuxSeccompArg, c call) bool {
	t.Helper()
	for _, a := range args {
		if a.Op != specs.OpMaskedEqual {
			t.Fatalf("unexpected operator %s", a.Op)
		}
		if c.args[a.Index]&a.Value != a.ValueTwo {
			return false
		}
	}
	return true
}

func ociRet(t *testing.T, a specs.LinuxSeccompAction, errno *uint) uint32 {
	t.Helper()
	switch {
	case a == specs.ActAllow && errno == nil:
		return retAllow
	case a == specs.ActErrno && errno != nil:
		return unix.SECCOMP_RET_ERRNO | uint32(*errno)
	}
	t.Fatalf("unexpected action %s", a)
	return 0
}

// TestOCIMatchesBPF checks that both renderings of every profile decide
// every syscall, under many adversarial argument vectors, the same way,
// and that they name the same syscalls.
func TestOCIMatchesBPF(t *testing.T) {
	tg := targetAMD64
	names := map[int]string{}
	for name, nr := range tg.syscalls {
		names[nr] = name
	}
	for _, p := range []Profile{ProfileBasic, ProfileStrict} {
		prof := roundTripOCI(t, p)
		prog := mustAssemble(t, p, nil, tg)
		for _, c := range sampleCalls(tg) {
			name := names[int(c.nr)]
			if b, o := evalBPF(t, prog, c), evalOCI(t, prof, name, c); b != o {
				t.Errorf("%s %s %#x: BPF %#x, OCI %#x", p, name, c.args[:3], b, o)
			}
		}
		var bpfNames, ociNames []string
		for _, nr := range dispatchedSyscalls(t, prog, tg) {
			bpfNames = append(bpfNames, names[nr])
		}
		for _, sc := range prof.Syscalls {
			ociNames = append(ociNames, sc.Names...)
		}
		slices.Sort(bpfNames)
		slices.Sort(ociNames)
		if ociNames = slices.Compact(ociNames); !slices.Equal(bpfNames, ociNames) {
			t.Errorf("%s: BPF names %d, OCI names %d differ", p, len(bpfNames), len(ociNames))
		}
		t.Logf("%s: %d syscalls, %d OCI entries", p, len(ociNames), len(prof.Syscalls))
	}
}

// roundTripOCI checks the OCI form's shape and that it survives JSON.
func roundTripOCI(t *testing.T, p Profile) *specs.LinuxSeccomp {
	t.Helper()
	prof, err := OCI(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(prof)
	if err != nil {
		t.Fatal(err)
	}
	var back specs.LinuxSeccomp
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(back.Architectures, []specs.Arch{specs.ArchX86_64}) {
		t.Errorf("%s: architectures %v", p, back.Architectures)
	}
	def := ociRet(t, back.DefaultAction, back.DefaultErrnoRet)
	for _, sc := range back.Syscalls {
		if len(sc.Names) == 0 {
			t.Errorf("%s: entry without names", p)
		}
		// runc drops entries whose action equals the default one.
		if ociRet(t, sc.Action, sc.ErrnoRet) == def {
			t.Errorf("%s: entry %v repeats the default action", p, sc.Names)
		}
		seen := map[uint]bool{}
		for _, a := range sc.Args {
			if a.Index > 5 || seen[a.Index] {
				t.Errorf("%s: entry %v: bad or repeated index %d", p, sc.Names, a.Index)
			}
			seen[a.Index] = true
		}
	}
	return &back
}

func TestOCIOffAndCustom(t *testing.T) {
	if prof, err := OCI(ProfileOff, nil); prof != nil || err != nil {
		t.Errorf("off: got %v, %v", prof, err)
	}
	prof, err := OCI(ProfileCustom, []string{"read", "ioctl"})
	if err != nil {
		t.Fatal(err)
	}
	c := sys(t, "ioctl", 1, unix.TIOCSTI)
	if got := evalOCI(t, prof, "ioctl", c); got != retEPERM {
		t.Errorf("custom ioctl TIOCSTI: %#x", got)
	}
	c.args[1] = unix.TCGETS
	if got := evalOCI(t, prof, "ioctl", c); got != retAllow {
		t.Errorf("custom ioctl TCGETS: %#x", got)
	}
}
