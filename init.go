package kavach

import "github.com/kavach-sandbox/kavach/internal/reexec"

// Init must be the first call in the main function of any program that
// creates sandboxes. kavach starts each process sandbox's init, and gVisor's
// exec helper (for secret descriptors, and for the seccomp filter off
// amd64), by re-executing the current binary; in that child, Init runs the
// entry point and never returns. In every other process it returns false
// at once. (gVisor's reaper does not need it: it runs from a package init.)
// Package init functions run in those children too, before Init is
// reached: keep side effects out of init.
//
//	func main() {
//		kavach.Init()
//		...
//	}
func Init() bool { return reexec.Run() }
