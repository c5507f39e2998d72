//go:build linux

package seccomp

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Load sets no_new_privs and installs the filter. It asks the kernel to
// apply the filter to every thread of the process (SECCOMP_FILTER_FLAG_TSYNC)
// and falls back to the calling thread alone on kernels without that flag.
// The caller should have locked the OS thread (runtime.LockOSThread) and
// exec the payload from it: the filter survives execve, and it is the last
// sandbox step because it may deny what earlier steps need.
// Loading an empty program (ProfileOff) does nothing.
func (p *Program) Load() error {
	if p.Empty() {
		return nil
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("seccomp: set no_new_privs: %w", err)
	}
	fprog := unix.SockFprog{Len: uint16(len(p.filter)), Filter: &p.filter[0]}
	err := install(&fprog, unix.SECCOMP_FILTER_FLAG_TSYNC)
	if errors.Is(err, unix.EINVAL) {
		err = install(&fprog, 0)
	}
	if err != nil {
		return fmt.Errorf("seccomp: load filter: %w", err)
	}
	return nil
}

// install calls seccomp(SECCOMP_SET_MODE_FILTER). With TSYNC, a positive
// return is the id of a thread that could not be synchronized.
func install(fprog *unix.SockFprog, flags uintptr) error {
	r, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, flags, uintptr(unsafe.Pointer(fprog)))
	switch {
	case errno != 0:
		return errno
	case r != 0:
		return fmt.Errorf("thread %d has a diverging seccomp filter", r)
	}
	return nil
}
