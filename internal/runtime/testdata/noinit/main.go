// Command noinit is a program that links kavach's container runtime but
// never dispatches re-exec entry points (it does not call kavach.Init).
// Run as a reaper, it must act as one: its main must not run.
package main

import (
	"fmt"
	"os"

	_ "github.com/kavach-sandbox/kavach/internal/runtime"
)

func main() {
	fmt.Println("main ran")
	os.Exit(3)
}
