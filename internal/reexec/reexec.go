// Package reexec lets kavach run code in a fresh copy of the current binary:
// a backend registers an entry point under a name, starts /proc/self/exe
// with that name as argv[0], and the child's call to Run dispatches to it.
package reexec

import (
	"os"
	"sync"
)

var (
	mu      sync.Mutex
	entries = map[string]func(){}
)

// Register installs an entry point. Names start with "kavach-" by convention.
func Register(name string, fn func()) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := entries[name]; dup {
		panic("reexec: duplicate entry point " + name)
	}
	entries[name] = fn
}

// Run runs the entry point named by argv[0], if any. Entry points do not
// return (they exec or exit); Run returns true only if one did.
func Run() bool {
	mu.Lock()
	fn := entries[os.Args[0]]
	mu.Unlock()
	if fn == nil {
		return false
	}
	fn()
	return true
}

// Self is the path that re-executes the current binary.
const Self = "/proc/self/exe"
