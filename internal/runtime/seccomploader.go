package runtime

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"

	"github.com/kavach-sandbox/kavach/internal/seccomp"
)

// The exec helper (seccompexec.go) is kavach's own Go binary: under
// gVisor's ptrace platform its start-up alone costs ~13 ms per exec. When
// an exec needs nothing but the filter (no secret descriptors), kavach
// starts it through a tiny static x86-64 loader instead, written into the
// bundle's kavach directory (bound read-only at helperDir) with the
// compiled filter embedded: no file to open, no parsing, two system calls
// before execve. Its argv is [loaderPath, command, args...].
//
// Failures keep the helper's observable results: one line on stderr that
// starts with helperPrefix, exit 127 when the command is not found (empty
// name, no PATH, ENOENT or ENOTDIR) and 126 when it cannot be executed or
// the filter cannot be loaded (then the command never runs).
//
// A name without a slash is searched in the PATH of the environment like
// exec.LookPath does: empty elements are skipped, ENOENT, EACCES and
// ENOTDIR go on to the next directory, any other execve error is final
// (126), and a search that finds nothing is 127.
//
//	_start: mov (%rsp),%rbx               # argc
//	        cmp $2,%rbx; jb fail126       # no command
//	        lea 16(%rsp),%r12              # r12 = &argv[1]: the command's argv
//	        lea 16(%rsp,%rbx,8),%r13       # r13 = envp
//	        mov $157,%eax; mov $38,%edi; mov $1,%esi
//	        xor %edx,%edx; xor %r10d,%r10d; xor %r8d,%r8d
//	        syscall                        # prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
//	        test %rax,%rax; jnz failfilter
//	        mov $317,%eax; mov $1,%edi; xor %esi,%esi
//	        lea fprog(%rip),%rdx
//	        syscall                        # seccomp(SECCOMP_SET_MODE_FILTER, 0, &fprog)
//	        test %rax,%rax; jnz failfilter
//	        mov (%r12),%rdi                # the command's name
//	        cmpb $0,(%rdi); je fail127     # empty name: not found
//	        mov %rdi,%rsi
//	1:      mov (%rsi),%al                 # look for a slash
//	        test %al,%al; jz search
//	        cmp $'/',%al; je direct
//	        inc %rsi; jmp 1b
//	direct: mov %r12,%rsi; mov %r13,%rdx
//	        mov $59,%eax; syscall          # execve(name, &argv[1], envp)
//	        cmp $-2,%rax; je fail127       # ENOENT
//	        cmp $-20,%rax; je fail127      # ENOTDIR
//	        jmp fail126
//	search: mov %r13,%rbx                  # find "PATH=" in envp
//	2:      mov (%rbx),%rsi
//	        test %rsi,%rsi; jz fail127     # no PATH: not found
//	        add $8,%rbx
//	        cmpl $0x48544150,(%rsi); jne 2b # "PATH"
//	        cmpb $'=',4(%rsi); jne 2b
//	        lea 5(%rsi),%r14               # r14 = cursor in PATH's value
//	        sub $4096,%rsp                 # path buffer at rsp
//	        lea 4095(%rsp),%rbp            # rbp = its last byte
//	nextdir: mov %rsp,%rdi                 # rdi = write position
//	3:      mov (%r14),%al                 # copy the directory
//	        test %al,%al; jz 4f
//	        cmp $':',%al; je 4f
//	        cmp %rbp,%rdi; jae 7f          # too long: skip it
//	        mov %al,(%rdi); inc %rdi; inc %r14; jmp 3b
//	4:      cmp %rsp,%rdi; je skip         # empty element: skip it
//	        movb $'/',(%rdi); inc %rdi
//	        mov (%r12),%rsi
//	5:      cmp %rbp,%rdi; jae 7f          # copy the name and its NUL
//	        mov (%rsi),%al; mov %al,(%rdi)
//	        inc %rdi; inc %rsi
//	        test %al,%al; jnz 5b
//	        mov %rsp,%rdi; mov %r12,%rsi; mov %r13,%rdx
//	        mov $59,%eax; syscall          # execve(dir/name, &argv[1], envp)
//	        cmp $-2,%rax; je skip          # ENOENT
//	        cmp $-13,%rax; je skip         # EACCES
//	        cmp $-20,%rax; je skip         # ENOTDIR
//	        jmp fail126                    # anything else is final
//	7:      mov (%r14),%al                 # skip to the element's end
//	        test %al,%al; jz skip
//	        cmp $':',%al; je skip
//	        inc %r14; jmp 7b
//	skip:   cmpb $0,(%r14); je fail127     # PATH exhausted: not found
//	        inc %r14; jmp nextdir          # past the ':'
//	fail127: mov $127,%ebx; lea msg127(%rip),%rsi; mov $len127,%edx; jmp die
//	fail126: mov $126,%ebx; lea msg126(%rip),%rsi; mov $len126,%edx; jmp die
//	failfilter: mov $126,%ebx; lea msgfilter(%rip),%rsi; mov $lenfilter,%edx
//	die:    mov $1,%eax; mov $2,%edi; syscall  # write(2, msg, len)
//	        mov %ebx,%edi; mov $231,%eax; syscall # exit_group(code)
//	msg127, msg126, msgfilter:             # loaderMessages, right after the code
//	        .balign 8, 0
//	fprog:  .short len; .zero 6; .quad filter # struct sock_fprog (written by loaderELF)
//	filter: ...                            # struct sock_filter[len]
var loaderCode = []byte{
	0x48, 0x8b, 0x1c, 0x24, 0x48, 0x83, 0xfb, 0x02, 0x0f, 0x82, 0x54, 0x01,
	0x00, 0x00, 0x4c, 0x8d, 0x64, 0x24, 0x10, 0x4c, 0x8d, 0x6c, 0xdc, 0x10,
	0xb8, 0x9d, 0x00, 0x00, 0x00, 0xbf, 0x26, 0x00, 0x00, 0x00, 0xbe, 0x01,
	0x00, 0x00, 0x00, 0x31, 0xd2, 0x45, 0x31, 0xd2, 0x45, 0x31, 0xc0, 0x0f,
	0x05, 0x48, 0x85, 0xc0, 0x0f, 0x85, 0x3b, 0x01, 0x00, 0x00, 0xb8, 0x3d,
	0x01, 0x00, 0x00, 0xbf, 0x01, 0x00, 0x00, 0x00, 0x31, 0xf6, 0x48, 0x8d,
	0x15, 0xc3, 0x01, 0x00, 0x00, 0x0f, 0x05, 0x48, 0x85, 0xc0, 0x0f, 0x85,
	0x1d, 0x01, 0x00, 0x00, 0x49, 0x8b, 0x3c, 0x24, 0x80, 0x3f, 0x00, 0x0f,
	0x84, 0xea, 0x00, 0x00, 0x00, 0x48, 0x89, 0xfe, 0x8a, 0x06, 0x84, 0xc0,
	0x74, 0x2f, 0x3c, 0x2f, 0x74, 0x05, 0x48, 0xff, 0xc6, 0xeb, 0xf1, 0x4c,
	0x89, 0xe6, 0x4c, 0x89, 0xea, 0xb8, 0x3b, 0x00, 0x00, 0x00, 0x0f, 0x05,
	0x48, 0x83, 0xf8, 0xfe, 0x0f, 0x84, 0xc1, 0x00, 0x00, 0x00, 0x48, 0x83,
	0xf8, 0xec, 0x0f, 0x84, 0xb7, 0x00, 0x00, 0x00, 0xe9, 0xc5, 0x00, 0x00,
	0x00, 0x4c, 0x89, 0xeb, 0x48, 0x8b, 0x33, 0x48, 0x85, 0xf6, 0x0f, 0x84,
	0xa3, 0x00, 0x00, 0x00, 0x48, 0x83, 0xc3, 0x08, 0x81, 0x3e, 0x50, 0x41,
	0x54, 0x48, 0x75, 0xe8, 0x80, 0x7e, 0x04, 0x3d, 0x75, 0xe2, 0x4c, 0x8d,
	0x76, 0x05, 0x48, 0x81, 0xec, 0x00, 0x10, 0x00, 0x00, 0x48, 0x8d, 0xac,
	0x24, 0xff, 0x0f, 0x00, 0x00, 0x48, 0x89, 0xe7, 0x41, 0x8a, 0x06, 0x84,
	0xc0, 0x74, 0x13, 0x3c, 0x3a, 0x74, 0x0f, 0x48, 0x39, 0xef, 0x73, 0x50,
	0x88, 0x07, 0x48, 0xff, 0xc7, 0x49, 0xff, 0xc6, 0xeb, 0xe6, 0x48, 0x39,
	0xe7, 0x74, 0x51, 0xc6, 0x07, 0x2f, 0x48, 0xff, 0xc7, 0x49, 0x8b, 0x34,
	0x24, 0x48, 0x39, 0xef, 0x73, 0x32, 0x8a, 0x06, 0x88, 0x07, 0x48, 0xff,
	0xc7, 0x48, 0xff, 0xc6, 0x84, 0xc0, 0x75, 0xed, 0x48, 0x89, 0xe7, 0x4c,
	0x89, 0xe6, 0x4c, 0x89, 0xea, 0xb8, 0x3b, 0x00, 0x00, 0x00, 0x0f, 0x05,
	0x48, 0x83, 0xf8, 0xfe, 0x74, 0x1e, 0x48, 0x83, 0xf8, 0xf3, 0x74, 0x18,
	0x48, 0x83, 0xf8, 0xec, 0x74, 0x12, 0xeb, 0x2e, 0x41, 0x8a, 0x06, 0x84,
	0xc0, 0x74, 0x09, 0x3c, 0x3a, 0x74, 0x05, 0x49, 0xff, 0xc6, 0xeb, 0xf0,
	0x41, 0x80, 0x3e, 0x00, 0x74, 0x05, 0x49, 0xff, 0xc6, 0xeb, 0x82, 0xbb,
	0x7f, 0x00, 0x00, 0x00, 0x48, 0x8d, 0x35, 0x40, 0x00, 0x00, 0x00, 0xba,
	0x23, 0x00, 0x00, 0x00, 0xeb, 0x24, 0xbb, 0x7e, 0x00, 0x00, 0x00, 0x48,
	0x8d, 0x35, 0x50, 0x00, 0x00, 0x00, 0xba, 0x20, 0x00, 0x00, 0x00, 0xeb,
	0x11, 0xbb, 0x7e, 0x00, 0x00, 0x00, 0x48, 0x8d, 0x35, 0x5d, 0x00, 0x00,
	0x00, 0xba, 0x2d, 0x00, 0x00, 0x00, 0xb8, 0x01, 0x00, 0x00, 0x00, 0xbf,
	0x02, 0x00, 0x00, 0x00, 0x0f, 0x05, 0x89, 0xdf, 0xb8, 0xe7, 0x00, 0x00,
	0x00, 0x0f, 0x05,
}

// loaderMessages follow loaderCode: the lea displacements above point
// into them, so their order and lengths are fixed.
const loaderMessages = helperPrefix + "command not found\n" +
	helperPrefix + "cannot execute\n" +
	loaderFilterMsg + "\n"

// loaderFilterMsg is the loader's line when the filter cannot be loaded.
const loaderFilterMsg = helperSeccompPrefix + "cannot load filter"

// loaderPath is where the loader is inside the container.
const loaderPath = helperDir + "/kavach-oci-seccomp"

// loaderSupported reports whether the tiny loader exists for this
// architecture; elsewhere every filtered exec uses the Go helper.
func loaderSupported() bool { return goruntime.GOARCH == "amd64" }

// loaderELF returns the loader with prog embedded.
func loaderELF(prog *seccomp.Program) []byte {
	insns := prog.Instructions()
	body := append(append([]byte{}, loaderCode...), loaderMessages...)
	for len(body)%8 != 0 {
		body = append(body, 0)
	}
	fprog := len(body)
	body = binary.LittleEndian.AppendUint16(body, uint16(len(insns)))
	body = append(body, make([]byte, 6)...)
	body = binary.LittleEndian.AppendUint64(body, elfBase+elfHeaders+uint64(fprog+16))
	for _, ins := range insns {
		body = binary.LittleEndian.AppendUint16(body, ins.Code)
		body = append(body, ins.Jt, ins.Jf)
		body = binary.LittleEndian.AppendUint32(body, ins.K)
	}
	return staticELF(body)
}

// writeLoader puts the loader with prog into the bundle's kavach
// directory dir.
func writeLoader(dir string, prog *seccomp.Program) error {
	if err := os.WriteFile(filepath.Join(dir, filepath.Base(loaderPath)), loaderELF(prog), 0o755); err != nil {
		return fmt.Errorf("seccomp loader: %w", err)
	}
	return nil
}
