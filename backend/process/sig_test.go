package process

import (
	"os"
	"syscall"
)

// syscall0 is the null signal: it checks that a process exists.
func syscall0() os.Signal { return syscall.Signal(0) }
