package kavach

import "github.com/kavach-sandbox/kavach/internal/reexec"

// Init must be the first call in the main function of any program that
// creates process sandboxes. kavach starts each sandbox's init by
// re-executing the current binary; in that child, Init runs the sandbox
// setup and never returns. In every other process it returns false at once.
//
//	func main() {
//		kavach.Init()
//		...
//	}
func Init() bool { return reexec.Run() }
