package wasm

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/sys"
	"golang.org/x/sys/unix"

	"github.com/kavach-sandbox/kavach/backend"
	"github.com/kavach-sandbox/kavach/internal/capture"
)

// Exit codes and signals of the results that WebAssembly adds.
const (
	// TrapExitCode is the exit code of an exec ended by a WebAssembly trap
	// (status "error", Error "trap: <reason>"): 128+SIGABRT, what a native
	// program that aborts reports.
	TrapExitCode = 134
	// sigXCPU is the signal a native process gets when it passes its CPU
	// time limit; an exec past its CPU budget reports it.
	sigXCPU = 24
)

// Causes of an exec's context ending early.
var (
	errTimeout  = errors.New("wall-clock timeout")
	errCPULimit = errors.New("cpu time limit")
)

// execution is one run of a module.
type execution struct {
	inst    *Instance
	req     *backend.ExecRequest
	ctx     context.Context // ends on timeout, CPU budget, Destroy or the caller
	stdout  *capture.Buffer
	stderr  *capture.Buffer
	memory  *memoryLimiter
	tables  uint64 // host memory the module's tables may take, within the limit
	cpu     time.Duration
	elapsed time.Duration
	// stdinCut is true when the module read an end of input that was
	// only its context ending (see cutShort).
	stdinCut bool
}

// run compiles (or fetches from the cache) and runs one module. The
// timeout covers the compile and the wait for another exec's compile too.
func (i *Instance) run(ctx context.Context, bin []byte, argv []string, req *backend.ExecRequest) (*backend.ExecOutput, error) {
	if err := i.begin(); err != nil {
		return nil, err
	}
	defer i.end()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	defer context.AfterFunc(i.life, func() { cancel(ErrDestroyed) })()
	if req.Timeout > 0 {
		var stop context.CancelFunc
		ctx, stop = context.WithTimeoutCause(ctx, req.Timeout, errTimeout)
		defer stop()
	}
	x := &execution{inst: i, req: req, ctx: ctx, stdout: capture.New(req.MaxOutput), stderr: capture.New(req.MaxOutput)}
	t0 := time.Now()
	c, err := i.eng.acquire(ctx, bin)
	if err != nil {
		if cause := context.Cause(ctx); cause != nil {
			x.elapsed = time.Since(t0)
			return x.ended(x.output(), cause)
		}
		return nil, err
	}
	defer i.eng.release(c)
	if out := i.checkInitialMemory(c); out != nil {
		return out, nil
	}
	x.memory, x.tables = newMemoryLimiter(i.memLimit-c.tables), c.tables
	stdin, closeStdin := stdinFor(ctx, req.Stdin)
	defer closeStdin()
	cfg := i.execConfig(ctx, argv, req, stdin, x.stdout, x.stderr)
	err = x.runOnThread(c.mod, cfg, func() { cancel(errCPULimit) })
	x.stdinCut = cutShort(stdin)
	return x.result(err)
}

// checkInitialMemory refuses a module whose declared initial memory,
// with the most its tables can take, is already past the limit.
func (i *Instance) checkInitialMemory(c *compiled) *backend.ExecOutput {
	need := c.tables
	for _, m := range c.mod.ExportedMemories() {
		need += uint64(m.Min()) * 65536
	}
	if need <= i.memLimit {
		return nil
	}
	msg := fmt.Sprintf("out of memory: the module's initial memory of %s is past the limit of %s", mib(need-c.tables), mib(i.memLimit))
	if c.tables > 0 {
		msg = fmt.Sprintf("out of memory: the module's initial memory of %s and tables of up to %s are past the limit of %s",
			mib(need-c.tables), mib(c.tables), mib(i.memLimit))
	}
	return &backend.ExecOutput{Status: backend.StatusOOM, Stdout: []byte{}, Stderr: []byte{}, Error: msg}
}

// execConfig adds the per-exec parts to the sandbox's module config.
func (i *Instance) execConfig(ctx context.Context, argv []string, req *backend.ExecRequest, stdin io.Reader, stdout, stderr io.Writer) wazero.ModuleConfig {
	cfg := i.modCfg.WithArgs(argv...).WithStdin(stdin).WithStdout(stdout).WithStderr(stderr)
	for _, kv := range execEnv(i.env, req) {
		k, v, _ := strings.Cut(kv, "=")
		cfg = cfg.WithEnv(k, v)
	}
	if i.realTime {
		cfg = cfg.WithNanosleep(func(ns int64) { sleepCtx(ctx, time.Duration(ns)) })
	}
	return cfg
}

// execEnv is Spec.Env overridden by req.Env, plus PWD (the working
// directory: WASI has no current directory, and Go and other runtimes
// resolve relative paths against $PWD) unless already set.
func execEnv(base []string, req *backend.ExecRequest) []string {
	idx := map[string]int{}
	var env []string
	for _, kv := range append(append([]string{}, base...), req.Env...) {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			continue
		}
		if j, dup := idx[k]; dup {
			env[j] = kv
			continue
		}
		idx[k] = len(env)
		env = append(env, kv)
	}
	if _, ok := idx["PWD"]; !ok {
		wd := req.Workdir
		if wd == "" {
			wd = "/work"
		}
		env = append(env, "PWD="+wd)
	}
	return env
}

// runOnThread instantiates and runs the module on a locked OS thread, so
// that the thread's CPU clock measures the module and a watchdog can
// enforce a CPU budget.
func (x *execution) runOnThread(mod wazero.CompiledModule, cfg wazero.ModuleConfig, overBudget func()) (err error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	clock := threadClock(unix.Gettid())
	cpu0, t0 := cpuTime(clock), time.Now()
	if b := x.inst.cpuBudget; b > 0 {
		go watchCPU(x.ctx, clock, cpu0, b, overBudget)
	}
	defer func() {
		x.cpu, x.elapsed = cpuTime(clock)-cpu0, time.Since(t0)
		if r := recover(); r != nil { // wazero panics if the initial memory allocation is refused
			err = fmt.Errorf("wasm: instantiate: %v", r)
		}
	}()
	ctx := experimental.WithMemoryAllocator(x.ctx, x.memory)
	m, err := x.inst.eng.rt.InstantiateModule(ctx, mod, cfg)
	if err != nil {
		return err
	}
	defer m.Close(context.WithoutCancel(ctx))
	_, err = m.ExportedFunction("_start").Call(ctx)
	return err
}

// output is the result so far: output, times and peak memory.
func (x *execution) output() *backend.ExecOutput {
	out := &backend.ExecOutput{
		Stdout: x.stdout.Bytes(), Stderr: x.stderr.Bytes(),
		StdoutTruncated: x.stdout.Truncated(), StderrTruncated: x.stderr.Truncated(),
		Duration: x.elapsed, CPUTime: x.cpu,
	}
	if x.memory != nil {
		out.MaxRSSKB = int64(x.memory.peak.Load() / 1024)
	}
	return out
}

// result turns how the module ended into an ExecOutput.
func (x *execution) result(err error) (*backend.ExecOutput, error) {
	out := x.output()
	if cause := context.Cause(x.ctx); cause != nil && (stoppedByKavach(err) || x.stdinCut) {
		return x.ended(out, cause)
	}
	var exit *sys.ExitError
	switch {
	case err == nil:
		out.Status = backend.StatusExited
	case errors.As(err, &exit):
		out.Status, out.ExitCode = backend.StatusExited, int(exit.ExitCode()&0xff)
	case isTrap(err):
		out.Status, out.ExitCode, out.Error = backend.StatusError, TrapExitCode, "trap: "+trapReason(err)
	case x.memory.refused.Load() == 0:
		return nil, fmt.Errorf("%w: %v", ErrInvalidModule, err)
	}
	if failed := out.Status != backend.StatusExited || out.ExitCode != 0; failed && x.memory.refused.Load() > 0 {
		out.Status = backend.StatusOOM
		out.Error = fmt.Sprintf("out of memory: the module asked for %s of linear memory, past the limit of %s",
			mib(x.memory.refused.Load()), mib(x.inst.memLimit))
		if x.tables > 0 {
			out.Error += fmt.Sprintf(" (%s of it reserved for the module's tables)", mib(x.tables))
		}
	}
	return out, nil
}

// stoppedByKavach reports whether the module ended because its context
// did: wazero closes it with a context exit code (or a trap raised while
// closing). A module that exited on its own in the same instant keeps its
// own exit code.
func stoppedByKavach(err error) bool {
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		code := exit.ExitCode()
		return code == sys.ExitCodeContextCanceled || code == sys.ExitCodeDeadlineExceeded
	}
	return err != nil
}

// ended reports an exec that kavach stopped.
func (x *execution) ended(out *backend.ExecOutput, cause error) (*backend.ExecOutput, error) {
	switch {
	case errors.Is(cause, errTimeout):
		out.Status = backend.StatusTimeout
		out.Error = fmt.Sprintf("wall-clock timeout of %s exceeded", x.req.Timeout)
	case errors.Is(cause, errCPULimit):
		out.Status, out.Signal = backend.StatusSignaled, sigXCPU
		out.Error = fmt.Sprintf("cpu time limit of %s exceeded", x.inst.cpuBudget)
	default: // Destroy, or the caller's context
		return nil, fmt.Errorf("wasm: exec: %w", cause)
	}
	return out, nil
}

// trapMessages are wazero's runtime errors: the WebAssembly traps. Most
// reach the caller as "wasm error: <message>" with a stack trace; stack
// exhaustion arrives bare.
var trapMessages = map[string]bool{
	"stack overflow": true, "invalid conversion to integer": true, "integer overflow": true,
	"integer divide by zero": true, "unreachable": true, "out of bounds memory access": true,
	"invalid table access": true, "indirect call type mismatch": true, "unaligned atomic": true,
	"expected shared memory": true, "too many waiters": true, "uncaught exception": true,
	"null reference": true,
}

// isTrap reports whether err is a WebAssembly trap.
func isTrap(err error) bool {
	return strings.HasPrefix(err.Error(), "wasm error: ") || trapMessages[trapReason(err)]
}

// trapReason is the first line of a trap, without wazero's prefix and
// stack trace: "unreachable", "out of bounds memory access", "stack
// overflow", "integer divide by zero", ...
func trapReason(err error) string {
	msg, _, _ := strings.Cut(err.Error(), "\n")
	return strings.TrimPrefix(msg, "wasm error: ")
}

// sleepCtx sleeps for d or until ctx is done, so that a sleeping module
// still meets its timeout.
func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// cryptoRand is the host's random source for random_get.
type cryptoRand struct{}

func (cryptoRand) Read(p []byte) (int, error) { return rand.Read(p) }
