// Command int80 makes one syscall through the 32-bit int 0x80 entry point
// (getpid, i386 number 20) and prints what it returned.
package main

import "fmt"

// int80 performs the i386 syscall nr with no arguments.
func int80(nr uint64) int64

func main() {
	fmt.Printf("int80 getpid=%d\n", int80(20))
}
