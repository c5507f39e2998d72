package wasm

import (
	"context"
	"os/exec"
	"testing"

	"github.com/kavach-sandbox/kavach/backend"
	"github.com/kavach-sandbox/kavach/policy"
)

// benchModules are the modules every benchmark runs: a 120-byte
// hand-made WASI hello and the Go test program (about 3 MB).
func benchModules() map[string]struct {
	bin  []byte
	argv []string
} {
	return map[string]struct {
		bin  []byte
		argv []string
	}{
		"tiny":    {tinyModule, []string{"tiny"}},
		"gohello": {guestBin, []string{"guest", "hello"}},
	}
}

// BenchmarkColdCompile compiles a module in a fresh runtime without any
// compilation cache.
func BenchmarkColdCompile(b *testing.B) {
	ctx := context.Background()
	for name, m := range benchModules() {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				e, err := newEngine(ctx, Options{NoFileCache: true}.withDefaults())
				if err != nil {
					b.Fatal(err)
				}
				if _, _, err := e.compile(ctx, m.bin); err != nil {
					b.Fatal(err)
				}
				_ = e.close(ctx)
			}
		})
	}
}

// BenchmarkFileCacheCompile compiles a module in a fresh runtime whose
// file compilation cache already holds it (a new kavach process).
func BenchmarkFileCacheCompile(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	o := Options{CacheDir: dir}.withDefaults()
	for name, m := range benchModules() {
		b.Run(name, func(b *testing.B) {
			warm, err := newEngine(ctx, o)
			if err != nil {
				b.Fatal(err)
			}
			if _, _, err := warm.compile(ctx, m.bin); err != nil {
				b.Fatal(err)
			}
			_ = warm.close(ctx)
			for b.Loop() {
				e, err := newEngine(ctx, o)
				if err != nil {
					b.Fatal(err)
				}
				if _, _, err := e.compile(ctx, m.bin); err != nil {
					b.Fatal(err)
				}
				_ = e.close(ctx)
			}
		})
	}
}

// BenchmarkRunCached is one exec end to end (instantiate, run, capture,
// close) with the module in the in-memory cache: what repeated runs cost.
func BenchmarkRunCached(b *testing.B) {
	inst := newSandbox(b, policy.Strict())
	ctx := context.Background()
	for name, m := range benchModules() {
		b.Run(name, func(b *testing.B) {
			r := &backend.ExecRequest{Argv: m.argv, MaxOutput: 1 << 20, Timeout: policy.DefaultTimeout}
			for b.Loop() {
				out, err := inst.ExecModule(ctx, m.bin, r)
				if err != nil || out.Status != backend.StatusExited {
					b.Fatalf("%+v, %v", out, err)
				}
			}
		})
	}
}

// BenchmarkCreateDestroy is the cost of a sandbox's lifecycle (private
// /work and /tmp, preopens) without an exec.
func BenchmarkCreateDestroy(b *testing.B) {
	ctx := context.Background()
	for b.Loop() {
		inst, err := testDriver.Create(ctx, &backend.Spec{ID: "bench", Policy: policy.Strict()})
		if err != nil {
			b.Fatal(err)
		}
		_ = inst.Destroy(ctx)
	}
}

// BenchmarkNativeExec is the reference point for a host process: a bare
// fork/exec of true(1) with no isolation at all.
func BenchmarkNativeExec(b *testing.B) {
	path, err := exec.LookPath("true")
	if err != nil {
		b.Skip(err)
	}
	for b.Loop() {
		if err := exec.Command(path).Run(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBoundTables is the table check that runs before each compile
// (not on a cache hit). For the Go module it includes the copy that
// gives its table a maximum.
func BenchmarkBoundTables(b *testing.B) {
	for name, m := range benchModules() {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if _, _, err := boundTables(m.bin); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
