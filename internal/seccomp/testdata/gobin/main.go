// Command gobin exercises the Go runtime features a sandboxed Go program
// relies on: threads, timers, signals, os/exec and TCP on loopback.
package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"time"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "gobin:", err)
		os.Exit(1)
	}
}

func run() error {
	runtime.GOMAXPROCS(4)
	var wg sync.WaitGroup
	sums := make([]int, 8)
	for i := range sums {
		wg.Go(func() {
			for j := range 100000 {
				sums[i] += j
			}
			runtime.Gosched()
		})
	}
	wg.Wait()
	<-time.After(5 * time.Millisecond)
	if err := exec.Command("/bin/true").Run(); err != nil {
		return fmt.Errorf("exec /bin/true: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			io.Copy(c, c)
			c.Close()
		}
	}()
	var d net.Dialer
	d.SetMultipathTCP(true) // listeners already try MPTCP first
	c, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("ping")); err != nil {
		return err
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil {
		return fmt.Errorf("echo: %w", err)
	}
	mptcp, _ := c.(*net.TCPConn).MultipathTCP()
	fmt.Printf("go-ok %s sum=%d mptcp=%v\n", buf, sums[7], mptcp)
	return nil
}
