package wasm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tetratelabs/wazero"
	wsysfs "github.com/tetratelabs/wazero/experimental/sysfs"

	"github.com/kavach-sandbox/kavach/backend"
	"github.com/kavach-sandbox/kavach/internal/workfs"
	"github.com/kavach-sandbox/kavach/policy"
	"github.com/kavach-sandbox/kavach/score"
)

// preopen is one directory the module sees.
type preopen struct {
	guest string
	host  string
	mode  policy.Access
	fs    *confinedFS
}

// Instance is one wasm sandbox. Besides the backend.Instance methods it
// runs modules given as bytes (ExecModule) or read from an io.Reader
// (ExecReader). It is safe for concurrent use: execs run in parallel, each
// in its own module instance, sharing the sandbox's preopened directories.
type Instance struct {
	id        string
	eng       *engine
	env       []string
	memLimit  uint64
	cpuBudget time.Duration
	preopens  []preopen
	baseDir   string   // private host directory behind /work and /tmp
	mounted   []string // their file systems of their own, as root
	modCfg    wazero.ModuleConfig
	realTime  bool
	enf       backend.Enforcement

	life       context.Context // cancelled by Destroy
	endLife    context.CancelCauseFunc
	mu         sync.Mutex
	running    int
	paused     bool
	destroyed  bool
	wg         sync.WaitGroup
	destroyErr error
}

func newInstance(eng *engine, o Options, spec *backend.Spec) (_ *Instance, err error) {
	p := &spec.Policy
	i := &Instance{id: spec.ID, eng: eng, env: spec.Env, realTime: !o.Deterministic}
	i.memLimit = uint64(o.DefaultMemory)
	if p.Limits.Memory > 0 {
		i.memLimit = uint64(min(int64(p.Limits.Memory), o.MaxMemory))
	}
	i.cpuBudget = time.Duration(p.Limits.CPUTime)
	defer func() {
		if err != nil {
			i.release()
		}
	}()
	if err := i.openPreopens(p); err != nil {
		return nil, err
	}
	i.modCfg = i.baseModuleConfig()
	i.enf = i.enforcement(p)
	i.life, i.endLife = context.WithCancelCause(context.Background())
	return i, nil
}

// openPreopens creates the private /work and /tmp (unless the policy
// mounts a host directory there) and opens every preopen's root.
func (i *Instance) openPreopens(p *policy.Policy) error {
	if err := checkMountNesting(p.Filesystem.Mounts); err != nil {
		return err
	}
	mounted := map[string]bool{}
	for _, m := range p.Filesystem.Mounts {
		mounted[path.Clean(m.Dest)] = true
	}
	base, err := os.MkdirTemp("", fmt.Sprintf("%s%d-", stalePrefix, os.Getpid()))
	if err != nil {
		return fmt.Errorf("wasm: create sandbox directory: %w", err)
	}
	i.baseDir = base
	for _, guest := range []string{policy.WorkDir, "/tmp"} {
		if mounted[guest] {
			continue
		}
		host := filepath.Join(base, path.Base(guest))
		if err := os.Mkdir(host, 0o755); err != nil {
			return fmt.Errorf("wasm: create %s: %w", guest, err)
		}
		if err := i.bound(host, guest, p); err != nil {
			return err
		}
		if err := i.addPreopen(guest, host, policy.ReadWrite); err != nil {
			return err
		}
	}
	for _, m := range p.Filesystem.Mounts {
		if err := i.addPreopen(path.Clean(m.Dest), m.Source, m.Mode); err != nil {
			return err
		}
	}
	return nil
}

// bound gives the private directory host behind guest (/work or /tmp) a
// file system of its own (as root with CAP_SYS_ADMIN; otherwise it stays a
// plain directory of the host's temporary directory).
func (i *Instance) bound(host, guest string, p *policy.Policy) error {
	if !workfs.Supported() {
		return nil
	}
	if err := workfs.Mount(host, i.fsSize(guest, p), os.Geteuid(), os.Getegid(), 0o755); err != nil {
		return fmt.Errorf("wasm: %s: %w", guest, err)
	}
	i.mounted = append(i.mounted, host)
	return nil
}

// fsSize is the size of the file system behind guest (/work or /tmp): the
// policy's, but at most half the memory limit. Its pages are kavach's own
// memory (kavach writes them, not a process of the sandbox's cgroup), so
// the two together are bounded like the module's linear memory.
func (i *Instance) fsSize(guest string, p *policy.Policy) int64 {
	size := p.EffectiveWorkSize()
	if guest != policy.WorkDir {
		size = p.EffectiveTmpSize()
	}
	return min(size, max(int64(i.memLimit/2), 1<<20))
}

func (i *Instance) addPreopen(guest, host string, mode policy.Access) error {
	st, err := os.Stat(host)
	if err != nil {
		return fmt.Errorf("wasm: mount %s: %w", guest, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("wasm: mount %s: %s is not a directory (WASI preopens are directories)", guest, host)
	}
	cfs, err := openConfinedFS(host, mode == policy.ReadOnly)
	if err != nil {
		return fmt.Errorf("wasm: mount %s: %w", guest, err)
	}
	i.preopens = append(i.preopens, preopen{guest: guest, host: host, mode: mode, fs: cfs})
	return nil
}

// baseModuleConfig is the part of the module configuration that every
// exec of this sandbox shares.
func (i *Instance) baseModuleConfig() wazero.ModuleConfig {
	fsc := wazero.NewFSConfig()
	for _, po := range i.preopens {
		fsc = fsc.(wsysfs.FSConfig).WithSysFSMount(po.fs, po.guest)
	}
	cfg := wazero.NewModuleConfig().WithName("").WithStartFunctions().WithFSConfig(fsc)
	if i.realTime {
		cfg = cfg.WithSysWalltime().WithSysNanotime().WithRandSource(cryptoRand{})
	}
	return cfg
}

// enforcement reports the asked layers that wazero really applies.
func (i *Instance) enforcement(p *policy.Policy) backend.Enforcement {
	enf := backend.Enforcement{
		Layers: score.Asked(p) &^ (score.SeccompBasic | score.SeccompAllowlist),
		Lost:   map[string]string{},
	}
	const noSyscalls = "not applicable: a WebAssembly module makes no system calls (its only system interface is the WASI preview 1 functions kavach provides), so there is nothing for seccomp to filter"
	switch p.Seccomp {
	case policy.SeccompBasic:
		enf.Lost[score.ModSeccompBasic] = noSyscalls
	case policy.SeccompStrict, policy.SeccompCustom:
		enf.Lost[score.ModSeccompStrict] = noSyscalls
	}
	enf.Notes = i.notes(p)
	return enf
}

func (i *Instance) notes(p *policy.Policy) []string {
	var views []string
	for _, po := range i.preopens {
		views = append(views, po.guest+" ("+string(po.mode)+")")
	}
	notes := []string{
		fmt.Sprintf("wazero %s engine, WASI preview 1", engineKind()),
		"filesystem: only the preopened directories " + strings.Join(views, ", ") +
			" are visible; every path resolves beneath its preopen (no .. or symlink escape)",
		"network: WASI preview 1 has no sockets: the module has no network access whatever the policy says",
		fmt.Sprintf("memory: linear memory limited to %s (%s)", mib(i.memLimit), memSource(p)),
		"pids: WASI preview 1 has no processes or threads: each exec is a single thread",
		"seccomp: not applicable (no system calls); the seccomp-off penalty does not apply to a backend that does not share the host kernel",
	}
	if p.Limits.CPUs > 0 {
		notes = append(notes, fmt.Sprintf("cpus %g: an exec runs on one thread, so it never uses more than one core; fractional shares are not enforced", p.Limits.CPUs))
	}
	if p.Limits.CPUTime > 0 {
		notes = append(notes, "cpu_time: enforced by a watchdog on the exec thread's CPU clock (ends the exec with SIGXCPU status)")
	}
	if workfs.Supported() {
		notes = append(notes, fmt.Sprintf("/work and /tmp (unless a mount replaces them): file systems of their own of %s and %s, each at most half the memory limit: their pages are kavach's memory (writes beyond fail with EIO)",
			mib(uint64(i.fsSize(policy.WorkDir, p))), mib(uint64(i.fsSize("/tmp", p)))))
	} else {
		notes = append(notes, "work_size, tmp_size: not enforced without root and CAP_SYS_ADMIN (/work and /tmp are private directories of the host's temporary directory)")
	}
	if !i.realTime {
		notes = append(notes, "clocks and random numbers are deterministic")
	}
	return notes
}

func memSource(p *policy.Policy) string {
	if p.Limits.Memory > 0 {
		return "policy"
	}
	return "kavach default: the policy sets no memory limit"
}

func mib(b uint64) string {
	if b%(1<<20) == 0 {
		return strconv.FormatUint(b>>20, 10) + " MiB"
	}
	return strconv.FormatUint(b, 10) + " bytes"
}

// Enforcement reports the layers applied to this sandbox.
func (i *Instance) Enforcement() backend.Enforcement { return i.enf }

// Exec runs the module at the host path req.Argv[0] (relative to the
// caller's working directory) with the arguments req.Argv[1:]; the module
// sees the file's base name as argv[0]. A missing file is reported like a
// missing command (status error, exit 127), an unreadable one like a
// non-executable one (exit 126).
func (i *Instance) Exec(ctx context.Context, req *backend.ExecRequest) (*backend.ExecOutput, error) {
	if len(req.Argv) == 0 || req.Argv[0] == "" {
		return nil, errors.New("wasm: exec: empty command")
	}
	bin, out := readModule(req.Argv[0])
	if out != nil {
		return out, nil
	}
	argv := append([]string{filepath.Base(req.Argv[0])}, req.Argv[1:]...)
	return i.run(ctx, bin, argv, req)
}

// ExecModule runs a module held in memory. req.Argv is the argv the module
// sees (argv[0] included; "module" when empty). Everything else in req
// means what it means for Exec.
func (i *Instance) ExecModule(ctx context.Context, module []byte, req *backend.ExecRequest) (*backend.ExecOutput, error) {
	argv := req.Argv
	if len(argv) == 0 {
		argv = []string{"module"}
	}
	return i.run(ctx, module, argv, req)
}

// ExecReader reads a module (at most MaxModuleSize bytes) from r and runs
// it as ExecModule does.
func (i *Instance) ExecReader(ctx context.Context, r io.Reader, req *backend.ExecRequest) (*backend.ExecOutput, error) {
	bin, err := io.ReadAll(io.LimitReader(r, MaxModuleSize+1))
	if err != nil {
		return nil, fmt.Errorf("wasm: read module: %w", err)
	}
	if len(bin) > MaxModuleSize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrInvalidModule, MaxModuleSize)
	}
	return i.ExecModule(ctx, bin, req)
}

// readModule reads a module file, or returns the result of a command that
// cannot be started.
func readModule(name string) ([]byte, *backend.ExecOutput) {
	f, err := os.Open(name)
	if err == nil {
		defer f.Close()
		var st os.FileInfo
		if st, err = f.Stat(); err == nil && st.IsDir() {
			err = syscall.EISDIR
		}
	}
	var bin []byte
	if err == nil {
		bin, err = io.ReadAll(io.LimitReader(f, MaxModuleSize+1))
	}
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, startFailure(127, "command not found: "+name)
	case err != nil:
		return nil, startFailure(126, "permission denied: "+name+" ("+err.Error()+")")
	case len(bin) > MaxModuleSize:
		return nil, startFailure(126, fmt.Sprintf("permission denied: %s (module larger than %d bytes)", name, MaxModuleSize))
	}
	return bin, nil
}

func startFailure(code int, msg string) *backend.ExecOutput {
	return &backend.ExecOutput{Status: backend.StatusError, ExitCode: code, Error: msg, Stdout: []byte{}, Stderr: []byte{}}
}

// begin registers an exec, refusing on a paused or destroyed sandbox.
func (i *Instance) begin() error {
	i.mu.Lock()
	defer i.mu.Unlock()
	switch {
	case i.destroyed:
		return ErrDestroyed
	case i.paused:
		return ErrPaused
	}
	i.running++
	i.wg.Add(1)
	return nil
}

func (i *Instance) end() {
	i.mu.Lock()
	i.running--
	i.mu.Unlock()
	i.wg.Done()
}

// Pause marks an idle sandbox paused: execs are refused until Resume.
// wazero cannot freeze a module mid-execution, so pausing while an exec
// runs fails with ErrPauseUnsupported rather than pretending.
func (i *Instance) Pause(context.Context) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	switch {
	case i.destroyed:
		return ErrDestroyed
	case i.running > 0:
		return fmt.Errorf("%w (%d exec(s) running)", ErrPauseUnsupported, i.running)
	}
	i.paused = true
	return nil
}

// Resume lets execs run again.
func (i *Instance) Resume(context.Context) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.destroyed {
		return ErrDestroyed
	}
	i.paused = false
	return nil
}

// Destroy stops running execs (their modules are closed at the next
// function call or loop iteration), waits for them and for ReadFile calls
// in progress, closes the preopens and removes the private directories.
// It is idempotent.
func (i *Instance) Destroy(ctx context.Context) error {
	i.mu.Lock()
	if i.destroyed {
		err := i.destroyErr
		i.mu.Unlock()
		return err
	}
	i.destroyed = true
	i.mu.Unlock()
	i.endLife(ErrDestroyed)
	done := make(chan struct{})
	go func() { i.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
		err = i.release()
	case <-ctx.Done():
		// The execs end on their own now that their contexts are
		// cancelled; the directories are removed after the last one.
		err = fmt.Errorf("wasm: destroy %s: %w", i.id, ctx.Err())
		go func() { <-done; _ = i.release() }()
	}
	i.mu.Lock()
	i.destroyErr = err
	i.mu.Unlock()
	return err
}

// release closes the preopens and removes the private directories. It
// runs when no exec or ReadFile is left (or, in newInstance, before the
// sandbox is shared).
func (i *Instance) release() error {
	i.mu.Lock()
	preopens, base, mounted := i.preopens, i.baseDir, i.mounted
	i.preopens, i.baseDir, i.mounted = nil, "", nil
	i.mu.Unlock()
	var errs []error
	for _, po := range preopens {
		errs = append(errs, po.fs.Close())
	}
	for _, m := range mounted {
		errs = append(errs, workfs.Unmount(m))
	}
	if base != "" {
		errs = append(errs, os.RemoveAll(base))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("wasm: destroy %s: %w", i.id, err)
	}
	return nil
}

// ReadFile reads a file of the sandbox's /work, /tmp or a mount, resolved
// beneath the host directory behind it (no symlink or ".." escapes). It
// works in every state but destroyed; Destroy waits for reads in progress
// before it removes the directories.
func (i *Instance) ReadFile(_ context.Context, path string, max int64) ([]byte, error) {
	host, rel, err := i.holdPath(path)
	if err != nil {
		return nil, err
	}
	defer i.wg.Done()
	return backend.ReadFileIn(host, rel, max)
}

// holdPath finds the preopen that holds the guest path (the longest guest
// prefix) and registers the read with the WaitGroup that Destroy waits
// on. The caller calls i.wg.Done when it is done with the directory.
func (i *Instance) holdPath(guestPath string) (host, rel string, err error) {
	clean := filepath.Clean("/" + guestPath)
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.destroyed {
		return "", "", fmt.Errorf("wasm: read %s: %w", guestPath, ErrDestroyed)
	}
	var best *preopen
	for k := range i.preopens {
		p := &i.preopens[k]
		if (clean == p.guest || strings.HasPrefix(clean, strings.TrimSuffix(p.guest, "/")+"/")) &&
			(best == nil || len(p.guest) > len(best.guest)) {
			best = p
		}
	}
	if best == nil {
		return "", "", fmt.Errorf("wasm: %s: not in a directory of the sandbox: %w", guestPath, os.ErrNotExist)
	}
	i.wg.Add(1)
	return best.host, strings.TrimPrefix(clean, best.guest), nil
}
