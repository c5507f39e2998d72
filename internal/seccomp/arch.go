//go:build linux

package seccomp

import (
	"fmt"
	"runtime"

	"github.com/elastic/go-seccomp-bpf/arch"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// target describes the architecture a filter is built for.
type target struct {
	name     string         // Linux architecture name
	audit    uint32         // AUDIT_ARCH_* value seccomp_data.arch must carry
	x32      bool           // reject syscall numbers with the x32 bit set
	syscalls map[string]int // syscall name → number
	oci      specs.Arch     // libseccomp name for the OCI form
}

// x32SyscallBit marks x32 ABI syscalls on x86_64; they carry the same audit
// architecture as native calls.
const x32SyscallBit = 0x40000000

var (
	targetAMD64 = &target{
		name: "x86_64", audit: unix.AUDIT_ARCH_X86_64, x32: true,
		syscalls: arch.X86_64.SyscallNames, oci: specs.ArchX86_64,
	}
	targetARM64 = &target{
		name: "aarch64", audit: unix.AUDIT_ARCH_AARCH64,
		syscalls: arch.AARCH64.SyscallNames, oci: specs.ArchAARCH64,
	}
)

// targetFor returns the target for a GOARCH value.
func targetFor(goarch string) (*target, error) {
	switch goarch {
	case "amd64":
		return targetAMD64, nil
	case "arm64":
		return targetARM64, nil
	}
	return nil, fmt.Errorf("seccomp: %w: %s", ErrUnsupportedArch, goarch)
}

// hostTarget returns the target of the running binary.
func hostTarget() (*target, error) { return targetFor(runtime.GOARCH) }
