package runtime

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
)

// The container's init is a 202-byte static x86-64 ELF kavach writes into
// the bundle (an image root may hold no shell and no C library, and a
// program that embeds kavach may be dynamically linked). It makes itself
// non-dumpable — it runs as the same user as every payload, which could
// otherwise rewrite it through /proc/1/mem and keep code of its own running
// between execs — sets SIGCHLD to SIG_IGN (the kernel then reaps orphans of
// exec'd commands at once) and pauses forever. As PID 1 of the container's
// pid namespace it ignores every signal sent from inside; SIGKILL from the
// runtime ends it.
//
//	_start: mov $157,%eax; mov $4,%edi; xor %esi,%esi
//	        syscall                            # prctl(PR_SET_DUMPABLE, 0)
//	        mov $13,%eax; mov $17,%edi; lea act(%rip),%rsi; xor %edx,%edx
//	        mov $8,%r10d; syscall              # rt_sigaction(SIGCHLD, act, 0, 8)
//	1:      mov $34,%eax; syscall; jmp 1b      # pause()
//	act:    .quad 1, 0, 0, 0                   # SIG_IGN
var initCode = []byte{
	0xb8, 0x9d, 0x00, 0x00, 0x00, 0xbf, 0x04, 0x00, 0x00, 0x00, 0x31, 0xf6, 0x0f, 0x05,
	0xb8, 0x0d, 0x00, 0x00, 0x00, 0xbf, 0x11, 0x00, 0x00, 0x00, 0x48, 0x8d,
	0x35, 0x13, 0x00, 0x00, 0x00, 0x31, 0xd2, 0x41, 0xba, 0x08, 0x00, 0x00,
	0x00, 0x0f, 0x05, 0xb8, 0x22, 0x00, 0x00, 0x00, 0x0f, 0x05, 0xeb, 0xf7,
	1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
}

// imageInitPath is where the init is inside the container (the bundle's
// kavach directory is bound read-only at helperDir).
const imageInitPath = helperDir + "/kavach-oci-init"

// Layout of kavach's static ELF programs: loaded at elfBase, the code
// right after the ELF header and the one program header.
const (
	elfBase    = 0x400000
	elfHeaders = 64 + 56
)

// initELF returns the init as an ELF executable.
func initELF() []byte { return staticELF(initCode) }

// staticELF wraps body in an ELF executable: header, one loadable
// read+execute segment holding the whole file, body after the headers
// (entry point: its first byte).
func staticELF(body []byte) []byte {
	const ehSize, phSize = 64, 56
	total := elfHeaders + len(body)
	b := make([]byte, elfHeaders, total)
	copy(b, []byte{0x7f, 'E', 'L', 'F', 2, 1, 1}) // 64-bit, little-endian, version 1
	le := binary.LittleEndian
	le.PutUint16(b[16:], 2)                  // ET_EXEC
	le.PutUint16(b[18:], 62)                 // EM_X86_64
	le.PutUint32(b[20:], 1)                  // EV_CURRENT
	le.PutUint64(b[24:], elfBase+elfHeaders) // entry
	le.PutUint64(b[32:], ehSize)             // program headers
	le.PutUint16(b[52:], ehSize)
	le.PutUint16(b[54:], phSize)
	le.PutUint16(b[56:], 1)
	ph := b[ehSize:]
	le.PutUint32(ph[0:], 1) // PT_LOAD
	le.PutUint32(ph[4:], 5) // PF_R|PF_X
	le.PutUint64(ph[16:], elfBase)
	le.PutUint64(ph[24:], elfBase)
	le.PutUint64(ph[32:], uint64(total))
	le.PutUint64(ph[40:], uint64(total))
	le.PutUint64(ph[48:], 0x1000)
	return append(b, body...)
}

// writeImageInit puts the init into the bundle's kavach directory.
func writeImageInit(bundleDir string) error {
	if goruntime.GOARCH != "amd64" {
		return fmt.Errorf("image root: kavach's static init exists for amd64 only, not %s", goruntime.GOARCH)
	}
	if err := os.WriteFile(filepath.Join(bundleDir, "kavach", filepath.Base(imageInitPath)), initELF(), 0o755); err != nil {
		return fmt.Errorf("image root: write init: %w", err)
	}
	return nil
}
