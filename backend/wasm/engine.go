package wasm

import (
	"container/list"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// wasiModule is the import module name of WASI preview 1.
const wasiModule = "wasi_snapshot_preview1"

// engine is the process-wide wazero runtime of one Driver: one runtime,
// the WASI host module instantiated once, a compilation cache on disk, and
// an in-memory cache of compiled modules keyed by the module's SHA-256.
// wazero runtimes and compiled modules are safe for concurrent use; every
// exec instantiates an anonymous module, so any number run at once.
type engine struct {
	rt       wazero.Runtime
	cache    wazero.CompilationCache
	cacheDir string // "" when the file cache is off
	note     string // why the file cache is off, if it is
	wasi     map[string]api.FunctionDefinition

	mu       sync.Mutex
	mods     map[[32]byte]*list.Element // of *compiled
	lru      *list.List                 // front: most recently used
	maxMods  int
	compiles atomic.Int64
	hits     atomic.Int64
}

// compiled is one entry of the in-memory cache. ready is closed once mod
// (with tables) or err is set; refs counts execs using mod, so eviction
// closes it only when no exec is about to instantiate it.
type compiled struct {
	key     [32]byte
	ready   chan struct{}
	mod     wazero.CompiledModule
	tables  uint64 // most host memory the module's tables can take
	err     error
	refs    int
	evicted bool
}

// errCompileCanceled marks a compile that ended because the exec that
// started it ended: another exec waiting for it compiles anew.
var errCompileCanceled = errors.New("wasm: compile canceled")

// newEngine creates the runtime. The file cache is best effort: when its
// directory cannot be created, modules are compiled in memory only.
func newEngine(ctx context.Context, o Options) (*engine, error) {
	e := &engine{mods: map[[32]byte]*list.Element{}, lru: list.New(), maxMods: o.MaxCachedModules}
	e.cache, e.cacheDir, e.note = compilationCache(o)
	cfg := wazero.NewRuntimeConfig().
		WithCompilationCache(e.cache).
		WithCloseOnContextDone(true).
		WithMemoryLimitPages(pages(o.MaxMemory)).
		WithCustomSections(false)
	e.rt = wazero.NewRuntimeWithConfig(ctx, cfg)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, e.rt); err != nil {
		_ = e.rt.Close(ctx)
		return nil, fmt.Errorf("wasm: instantiate WASI host module: %w", err)
	}
	e.wasi = e.rt.Module(wasiModule).ExportedFunctionDefinitions()
	return e, nil
}

func compilationCache(o Options) (c wazero.CompilationCache, dir, note string) {
	if o.NoFileCache {
		return wazero.NewCompilationCache(), "", "file compilation cache disabled"
	}
	dir = o.CacheDir
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return wazero.NewCompilationCache(), "", "no file compilation cache: " + err.Error()
		}
		dir = filepath.Join(base, "kavach", "wasm")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return wazero.NewCompilationCache(), "", "no file compilation cache: " + err.Error()
	}
	c, err := wazero.NewCompilationCacheWithDir(dir)
	if err != nil {
		return wazero.NewCompilationCache(), "", "no file compilation cache: " + err.Error()
	}
	return c, dir, ""
}

// pages converts a byte count to 64 KiB WebAssembly pages, capped at the
// 4 GiB of a 32-bit memory.
func pages(bytes int64) uint32 {
	const page, maxPages = 65536, 65536
	return uint32(min(max((bytes+page-1)/page, 1), maxPages))
}

func (e *engine) close(ctx context.Context) error {
	return errors.Join(e.rt.Close(ctx), e.cache.Close(ctx))
}

// acquire returns the compiled form of bin, compiling it at most once
// however many execs ask at the same time. It gives up when ctx ends, also
// while waiting for another exec's compile; a waiter whose compile was
// abandoned by the exec that started it compiles the module itself. Call
// release when the exec is done with it.
func (e *engine) acquire(ctx context.Context, bin []byte) (*compiled, error) {
	key := sha256.Sum256(bin)
	for {
		c, owner := e.lookup(key)
		if owner {
			return e.compileFor(ctx, c, bin)
		}
		e.hits.Add(1)
		select {
		case <-c.ready:
		case <-ctx.Done():
			e.release(c)
			return nil, fmt.Errorf("wasm: compile: %w", context.Cause(ctx))
		}
		if c.err == nil {
			return c, nil
		}
		e.release(c)
		if !errors.Is(c.err, errCompileCanceled) || ctx.Err() != nil {
			return nil, c.err
		}
		e.hits.Add(-1) // not served from the cache after all
	}
}

// lookup returns the cache entry of key with a reference taken, adding an
// empty one (owner: the caller must compile it) when there is none.
func (e *engine) lookup(key [32]byte) (c *compiled, owner bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if el, ok := e.mods[key]; ok {
		c := el.Value.(*compiled)
		c.refs++
		e.lru.MoveToFront(el)
		return c, false
	}
	c = &compiled{key: key, ready: make(chan struct{}), refs: 1}
	e.mods[key] = e.lru.PushFront(c)
	e.evictLocked()
	return c, true
}

// compileFor fills the entry the caller owns and wakes its waiters.
func (e *engine) compileFor(ctx context.Context, c *compiled, bin []byte) (*compiled, error) {
	c.mod, c.tables, c.err = e.compile(ctx, bin)
	if c.err != nil {
		e.forget(c) // do not cache failures: a canceled compile may succeed later
	}
	close(c.ready)
	if c.err != nil {
		e.release(c)
		return nil, c.err
	}
	return c, nil
}

// compile bounds the module's tables, then compiles and validates it. It
// returns the most host memory the tables can take.
func (e *engine) compile(ctx context.Context, bin []byte) (wazero.CompiledModule, uint64, error) {
	if len(bin) < 8 || string(bin[:4]) != "\x00asm" {
		return nil, 0, fmt.Errorf("%w: not a WebAssembly binary (no \\0asm header)", ErrInvalidModule)
	}
	bounded, tables, err := boundTables(bin)
	if err != nil {
		return nil, 0, err
	}
	e.compiles.Add(1)
	mod, err := e.rt.CompileModule(experimental.WithCompilationWorkers(ctx, compileWorkers()), bounded)
	if err != nil {
		if ctx.Err() != nil {
			return nil, 0, fmt.Errorf("%w: %w", errCompileCanceled, context.Cause(ctx))
		}
		return nil, 0, fmt.Errorf("%w: %v", ErrInvalidModule, err)
	}
	if err := e.checkWASI(mod); err != nil {
		_ = mod.Close(ctx)
		return nil, 0, err
	}
	return mod, tables, nil
}

// compileWorkers is how many goroutines compile a module's functions.
// wazero checks the context between functions only when it compiles with
// more than one, so there are always at least two: a compile then stops
// when its exec times out or is canceled.
func compileWorkers() int { return max(2, runtime.GOMAXPROCS(0)) }

// checkWASI accepts only WASI preview 1 commands: every import is a WASI
// function with the right signature, and _start exists.
func (e *engine) checkWASI(mod wazero.CompiledModule) error {
	for _, imp := range mod.ImportedFunctions() {
		m, name, _ := imp.Import()
		host, ok := e.wasi[name]
		if m != wasiModule || !ok {
			return fmt.Errorf("%w: imports function %s.%s, which kavach does not provide (only %s)",
				ErrInvalidModule, m, name, wasiModule)
		}
		if !sameSignature(imp, host) {
			return fmt.Errorf("%w: imports %s.%s with a wrong signature", ErrInvalidModule, m, name)
		}
	}
	if len(mod.ImportedMemories()) > 0 {
		return fmt.Errorf("%w: imports a memory, which kavach does not provide", ErrInvalidModule)
	}
	start, ok := mod.ExportedFunctions()["_start"]
	if !ok {
		return fmt.Errorf("%w: not a WASI command: no exported _start function", ErrInvalidModule)
	}
	if len(start.ParamTypes()) != 0 || len(start.ResultTypes()) != 0 {
		return fmt.Errorf("%w: _start must take and return nothing", ErrInvalidModule)
	}
	return nil
}

func sameSignature(a, b api.FunctionDefinition) bool {
	return string(a.ParamTypes()) == string(b.ParamTypes()) && string(a.ResultTypes()) == string(b.ResultTypes())
}

// release ends one exec's use of c.
func (e *engine) release(c *compiled) {
	e.mu.Lock()
	c.refs--
	closeNow := c.evicted && c.refs == 0 && c.mod != nil
	e.mu.Unlock()
	if closeNow {
		_ = c.mod.Close(context.Background())
	}
}

// forget removes c from the cache without closing it.
func (e *engine) forget(c *compiled) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if el, ok := e.mods[c.key]; ok && el.Value == c {
		e.lru.Remove(el)
		delete(e.mods, c.key)
	}
}

// evictLocked drops the least recently used modules beyond maxMods; one
// still in use is closed by its last release.
func (e *engine) evictLocked() {
	for e.maxMods > 0 && e.lru.Len() > e.maxMods {
		el := e.lru.Back()
		c := el.Value.(*compiled)
		e.lru.Remove(el)
		delete(e.mods, c.key)
		c.evicted = true
		if c.refs == 0 && c.mod != nil {
			go func() { _ = c.mod.Close(context.Background()) }()
		}
	}
}
