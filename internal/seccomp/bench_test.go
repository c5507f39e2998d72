//go:build linux

package seccomp

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkCompileCold assembles a profile from its definition each time.
func BenchmarkCompileCold(b *testing.B) {
	for _, p := range []Profile{ProfileBasic, ProfileStrict} {
		b.Run(string(p), func(b *testing.B) {
			for b.Loop() {
				if _, err := compile(p, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCompileCached is the sandbox start path after the first start.
func BenchmarkCompileCached(b *testing.B) {
	for _, p := range []Profile{ProfileBasic, ProfileStrict} {
		b.Run(string(p), func(b *testing.B) {
			for b.Loop() {
				if _, err := Compile(p, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkUnmarshal is what a sandbox init pays for a program received
// from its parent.
func BenchmarkUnmarshal(b *testing.B) {
	prog, err := Compile(ProfileStrict, nil)
	if err != nil {
		b.Fatal(err)
	}
	raw, _ := prog.MarshalBinary()
	for b.Loop() {
		if _, err := UnmarshalProgram(raw); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoad measures Load (no_new_privs + seccomp with TSYNC) in fresh
// child processes, since a filter cannot be removed once loaded. The
// child-measured time is reported as load-ns/op; ns/op includes the spawn.
func BenchmarkLoad(b *testing.B) {
	for _, p := range []Profile{ProfileBasic, ProfileStrict} {
		b.Run(string(p), func(b *testing.B) {
			var total time.Duration
			for b.Loop() {
				out, errOut, err := runChild(b, p, "", "loadbench")
				if err != nil {
					b.Fatalf("%v: %s", err, errOut)
				}
				ns, err := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
				if err != nil {
					b.Fatal(err)
				}
				total += time.Duration(ns)
			}
			b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "load-ns/op")
		})
	}
}
