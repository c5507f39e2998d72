// Command guest is the WASI test program of the wasm backend's tests. It is
// built with GOOS=wasip1 GOARCH=wasm at test time; its first argument picks
// what it does.
package main

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fail(fmt.Errorf("usage: guest COMMAND [ARG...]"))
	}
	args := os.Args[2:]
	switch os.Args[1] {
	case "hello":
		fmt.Println("hello from wasm")
	case "args":
		fmt.Println(strings.Join(os.Args, "|"))
	case "env":
		env := os.Environ()
		sort.Strings(env)
		fmt.Println(strings.Join(env, "\n"))
	case "echo":
		_, err := io.Copy(os.Stdout, os.Stdin)
		check(err)
	case "exit":
		n, err := strconv.Atoi(args[0])
		check(err)
		fmt.Fprintln(os.Stderr, "exiting with", n)
		os.Exit(n)
	case "cat":
		b, err := os.ReadFile(args[0])
		check(err)
		os.Stdout.Write(b)
	case "write":
		check(os.WriteFile(args[0], []byte(args[1]), 0o644))
	case "fill": // write args[1] MiB of zeros to args[0]
		fill(args[0], args[1])
	case "symlink-read": // create a symlink, then read through it
		check(os.Symlink(args[0], args[1]))
		b, err := os.ReadFile(args[1])
		check(err)
		os.Stdout.Write(b)
	case "fsops":
		fsops(args[0])
	case "alloc":
		alloc()
	case "spin":
		spin()
	case "sleep":
		d, err := time.ParseDuration(args[0])
		check(err)
		time.Sleep(d)
		fmt.Println("slept")
	case "panic":
		panic("boom")
	case "nil":
		var p *struct{ x int }
		fmt.Println(p.x)
	case "spew":
		n, err := strconv.Atoi(args[0])
		check(err)
		os.Stdout.Write([]byte(strings.Repeat("o", n)))
		os.Stderr.Write([]byte(strings.Repeat("e", n)))
	default:
		fail(fmt.Errorf("unknown command %q", os.Args[1]))
	}
}

// fsops exercises directory operations in dir and prints what it sees.
func fsops(dir string) {
	check(os.MkdirAll(dir+"/a/b", 0o755))
	check(os.WriteFile(dir+"/a/b/f", []byte("one"), 0o644))
	f, err := os.OpenFile(dir+"/a/b/f", os.O_APPEND|os.O_WRONLY, 0)
	check(err)
	_, err = f.WriteString("+two")
	check(err)
	check(f.Close())
	check(os.Rename(dir+"/a/b/f", dir+"/a/g"))
	check(os.Chtimes(dir+"/a/g", time.Unix(1000, 0), time.Unix(2000, 0)))
	st, err := os.Stat(dir + "/a/g")
	check(err)
	b, err := os.ReadFile(dir + "/a/g")
	check(err)
	entries, err := os.ReadDir(dir + "/a")
	check(err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	check(os.Remove(dir + "/a/b"))
	if err := os.Remove(dir + "/a"); err == nil {
		fail(fmt.Errorf("removed a non-empty directory"))
	}
	fmt.Printf("%s %d %s\n", b, st.ModTime().Unix(), strings.Join(names, ","))
}

var sink [][]byte

func alloc() {
	for i := 0; ; i++ {
		b := make([]byte, 1<<20)
		for j := range b {
			b[j] = byte(j)
		}
		sink = append(sink, b)
		if i%16 == 0 {
			fmt.Fprintln(os.Stderr, "allocated MiB:", i+1)
		}
	}
}

var counter int

func spin() {
	for {
		counter++
	}
}

func check(err error) {
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "guest:", err)
	os.Exit(1)
}

// fill writes n MiB of zeros to name, one MiB at a time.
func fill(name, n string) {
	mib, err := strconv.Atoi(n)
	check(err)
	f, err := os.Create(name)
	check(err)
	chunk := make([]byte, 1<<20)
	for range mib {
		_, err := f.Write(chunk)
		check(err)
	}
	check(f.Close())
}
