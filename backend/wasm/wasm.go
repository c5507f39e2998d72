// Package wasm is kavach's WebAssembly backend: WASI preview 1 command
// modules run inside kavach's own process on wazero, a pure-Go WebAssembly
// runtime. The module makes no system calls of its own; everything it can
// do goes through the WASI functions kavach provides, and the policy
// decides what those reach: preopened directories (read-only or read-write
// exactly as the policy says, nothing else), the environment from the
// config, stdin from the caller, captured stdout and stderr.
//
// Exec takes a host path to a .wasm file as Argv[0]. Library callers can
// also run a module held in memory with Instance.ExecModule or read from
// an io.Reader with Instance.ExecReader. See docs/wasm.md for what is and
// is not enforced.
package wasm

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/kavach-sandbox/kavach/backend"
	"github.com/kavach-sandbox/kavach/policy"
	"github.com/kavach-sandbox/kavach/score"
)

// ErrInvalidModule is wrapped by every error about a module that is not a
// runnable WASI preview 1 command: not WebAssembly, truncated, invalid,
// importing functions kavach does not provide, or without _start. The
// command line maps it to exit status 125.
var ErrInvalidModule = errors.New("invalid WebAssembly module")

// ErrPauseUnsupported is returned by Pause while an exec is running:
// wazero cannot freeze a module in the middle of its execution.
var ErrPauseUnsupported = errors.New("wasm: cannot pause a running WebAssembly module")

// ErrPaused is returned by Exec on a paused sandbox.
var ErrPaused = errors.New("wasm: sandbox is paused")

// ErrDestroyed is returned by Exec on a destroyed sandbox, and by an exec
// that Destroy interrupted.
var ErrDestroyed = errors.New("wasm: sandbox destroyed")

var errDriverClosed = errors.New("wasm: driver closed")

// Defaults of Options.
const (
	// DefaultMemory caps a module's linear memory when the policy sets no
	// memory limit.
	DefaultMemory = 256 << 20
	// DefaultMaxCachedModules bounds the in-memory compiled-module cache.
	DefaultMaxCachedModules = 64
	// MaxModuleSize is the largest module Exec and ExecReader accept.
	MaxModuleSize = 256 << 20
)

// Options tune a Driver. The zero value is the default.
type Options struct {
	// CacheDir holds wazero's file compilation cache (default
	// $XDG_CACHE_HOME/kavach/wasm, from os.UserCacheDir).
	CacheDir string
	// NoFileCache keeps compiled code in memory only.
	NoFileCache bool
	// DefaultMemory is the memory limit when the policy has none
	// (default DefaultMemory).
	DefaultMemory int64
	// MaxMemory caps every limit, policy or default (default and at most
	// 4 GiB, the size of a 32-bit WebAssembly memory).
	MaxMemory int64
	// MaxCachedModules bounds the in-memory compiled-module cache
	// (default DefaultMaxCachedModules).
	MaxCachedModules int
	// Deterministic gives modules wazero's fake clocks and a fixed random
	// source instead of the host's, for reproducible runs.
	Deterministic bool
}

func (o Options) withDefaults() Options {
	const maxMemory = 4 << 30
	if o.DefaultMemory <= 0 {
		o.DefaultMemory = DefaultMemory
	}
	if o.MaxMemory <= 0 || o.MaxMemory > maxMemory {
		o.MaxMemory = maxMemory
	}
	o.DefaultMemory = min(o.DefaultMemory, o.MaxMemory)
	if o.MaxCachedModules <= 0 {
		o.MaxCachedModules = DefaultMaxCachedModules
	}
	return o
}

// Driver is the wasm backend. It owns one wazero runtime, created on first
// use and shared by all its sandboxes. It is safe for concurrent use.
type Driver struct {
	opts Options

	engOnce sync.Once
	eng     atomic.Pointer[engine]
	engErr  error

	probeOnce sync.Once
	probe     backend.Availability

	sweepOnce sync.Once
}

// New returns the wasm driver with default options.
func New() *Driver { return NewWithOptions(Options{}) }

// NewWithOptions returns a wasm driver with the given options.
func NewWithOptions(o Options) *Driver { return &Driver{opts: o.withDefaults()} }

// Info describes the backend.
func (d *Driver) Info() backend.Info {
	i, _ := backend.InfoOf(backend.WASM)
	return i
}

// engine creates the runtime once.
func (d *Driver) engine(ctx context.Context) (*engine, error) {
	d.engOnce.Do(func() {
		var e *engine
		if e, d.engErr = newEngine(context.WithoutCancel(ctx), d.opts); e != nil {
			d.eng.Store(e)
		}
	})
	if e := d.eng.Load(); e != nil || d.engErr != nil {
		return e, d.engErr
	}
	return nil, errDriverClosed
}

// Probe runs a hand-made WASI module for real once and caches the answer.
func (d *Driver) Probe(ctx context.Context) backend.Availability {
	d.probeOnce.Do(func() { d.probe = d.runProbe(ctx) })
	return d.probe
}

func (d *Driver) runProbe(ctx context.Context) backend.Availability {
	eng, err := d.engine(ctx)
	if err != nil {
		return backend.Availability{Reason: err.Error()}
	}
	inst, err := d.Create(ctx, &backend.Spec{ID: "probe", Policy: policy.Strict()})
	if err != nil {
		return backend.Availability{Reason: "create probe sandbox: " + err.Error()}
	}
	defer inst.Destroy(context.WithoutCancel(ctx))
	out, err := inst.(*Instance).ExecModule(ctx, helloModule("ok\n"), &backend.ExecRequest{Argv: []string{"probe"}, MaxOutput: 64})
	switch {
	case err != nil:
		return backend.Availability{Reason: "probe module: " + err.Error()}
	case out.Status != backend.StatusExited || string(out.Stdout) != "ok\n":
		return backend.Availability{Reason: fmt.Sprintf("probe module: status %s, stdout %q", out.Status, out.Stdout)}
	}
	reason := fmt.Sprintf("wazero %s engine (%s)", engineKind(), runtime.GOARCH)
	if eng.cacheDir != "" {
		reason += ", compilation cache " + eng.cacheDir
	} else {
		reason += ", " + eng.note
	}
	return backend.Availability{Available: true, Reason: reason}
}

// engineKind names the wazero engine NewRuntimeConfig picks here.
func engineKind() string {
	switch runtime.GOARCH {
	case "amd64", "arm64":
		return "compiler"
	}
	return "interpreter"
}

// CleanupStale removes the private directories of wasm sandboxes whose
// kavach process died without destroying them. It runs once per process.
func (d *Driver) CleanupStale(context.Context) { d.sweepOnce.Do(sweepStale) }

// Capabilities are the layers wazero enforces. There is no seccomp layer: a
// module makes no system calls, so there is nothing to filter, and the
// seccomp-off penalty does not apply because wasm does not share the host
// kernel.
func (d *Driver) Capabilities() score.Layers {
	return score.Filesystem | score.NetworkOff | score.NetworkAllowlist | score.Limits
}

// Create prepares a sandbox: a private work directory and /tmp, and the
// policy's mounts as preopens. Nothing runs until Exec.
func (d *Driver) Create(ctx context.Context, spec *backend.Spec) (backend.Instance, error) {
	eng, err := d.engine(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", backend.ErrUnavailable, err)
	}
	d.sweepOnce.Do(sweepStale)
	return newInstance(eng, d.opts, spec)
}

// Close releases the runtime and every compiled module. Sandboxes of the
// driver must be destroyed first.
func (d *Driver) Close(ctx context.Context) error {
	d.engOnce.Do(func() { d.engErr = errDriverClosed })
	if e := d.eng.Swap(nil); e != nil {
		return e.close(ctx)
	}
	return nil
}

// Stats are counters of the compiled-module cache.
type Stats struct {
	// Compiles counts modules compiled (from source or the file cache).
	Compiles int64
	// Hits counts execs served by the in-memory cache.
	Hits int64
	// Cached is the number of modules in the in-memory cache.
	Cached int
	// CacheDir is the file compilation cache, "" when off.
	CacheDir string
}

// Stats reports the compiled-module cache counters.
func (d *Driver) Stats() Stats {
	e := d.eng.Load()
	if e == nil {
		return Stats{}
	}
	e.mu.Lock()
	n := e.lru.Len()
	e.mu.Unlock()
	return Stats{Compiles: e.compiles.Load(), Hits: e.hits.Load(), Cached: n, CacheDir: e.cacheDir}
}
