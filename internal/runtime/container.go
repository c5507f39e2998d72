package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	goruntime "runtime"
	"strconv"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/kavach-sandbox/kavach/backend"
	"github.com/kavach-sandbox/kavach/egress"
	"github.com/kavach-sandbox/kavach/internal/ocibundle"
)

// ErrBroken reports a container that died (an OOM kill of gVisor's sandbox,
// or a timeout the runtime could not contain without killing the
// container). Only Destroy is useful afterwards.
var ErrBroken = errors.New("container is no longer running")

// initArgs is the init of a gVisor container (and, on other architectures
// than amd64, of every container): a shell that sleeps forever and, as PID
// 1 of the container's pid namespace, reaps the orphans of exec'd commands
// (while it waits for its sleep it reaps any child that exits). Signals
// from inside the container cannot kill it: PID 1 ignores signals it has no
// handler for. gVisor refuses a payload access to its memory; crun and
// runc containers on amd64 run kavach's static init instead (imageinit.go),
// which makes itself non-dumpable.
var initArgs = []string{"/bin/sh", "-c", "while :; do sleep infinity; done"}

// staticInit reports whether the container runs kavach's static init.
func (c *Container) staticInit() bool {
	return c.image != nil || c.rt.kind != Runsc && goruntime.GOARCH == "amd64"
}

// Container is one running container: a backend.Instance.
type Container struct {
	rt     *Runtime
	id     string
	bundle *ocibundle.Bundle
	spec   *backend.Spec
	init   int // host pid of the init (crun, runc) or of the gVisor sandbox
	// reaper adopts the gVisor sandbox's processes (nil for crun, runc).
	reaper *reaper
	cg     *Cgroups
	enf    backend.Enforcement
	// helper: the exec helper is mounted (runsc); filtered: a seccomp
	// filter is applied, so every exec'd command starts through it.
	helper, filtered bool
	// proxy serves the egress allowlist on proxyLn, inside the container's
	// network namespace; caBundle: its CA is bound into the trust store.
	// image is the unpacked OCI image the root comes from (nil: host view).
	image         *ocibundle.Image
	proxy         *egress.Proxy
	proxyLn       net.Listener
	caBundle      bool
	allowlistLost string

	execSeq atomic.Uint64
	broken  atomic.Pointer[string]

	// execMu guards inflight, the execs running; what the last one to end
	// leaves behind is killed while execMu is held, so that no exec starts
	// meanwhile and none of its processes is taken for a leftover.
	execMu   sync.Mutex
	inflight int

	// freezeMu serialises the caller's Pause and Resume with kavach's own
	// freezing to kill processes (killFromHost); paused is the caller's
	// state, which killFromHost leaves as it found it.
	freezeMu  sync.Mutex
	paused    bool
	destroyMu sync.Mutex
	destroyed bool

	// exportMu guards binds, the directories bound under /work, opened at
	// start for exports, and initFD, a pidfd of the crun or runc init (see
	// export.go).
	exportMu sync.RWMutex
	binds    []exportBind
	initFD   *os.File
}

// ID returns the runtime's container id.
func (c *Container) ID() string { return c.id }

// Runtime returns the runtime that runs the container.
func (c *Container) Runtime() *Runtime { return c.rt }

// Bundle returns the container's bundle.
func (c *Container) Bundle() *ocibundle.Bundle { return c.bundle }

// start creates the bundle and starts the container.
func (c *Container) start(ctx context.Context, cfg *ocibundle.Config) error {
	b, err := ocibundle.Create(cfg)
	if err != nil {
		return err
	}
	c.bundle = b
	if b.WorkMounted {
		if err := c.rt.shareMount(b.WorkDir); err != nil {
			return err
		}
	}
	if err := c.openBinds(); err != nil {
		return err
	}
	if err := c.writeCABundle(); err != nil {
		return err
	}
	if c.helper || c.staticInit() {
		if err := prepareHelper(b.Dir, &c.spec.Policy, c.helper && c.filtered); err != nil {
			return err
		}
	}
	if c.staticInit() {
		if err := writeImageInit(b.Dir); err != nil {
			return err
		}
	}
	rp, err := c.rt.Run(ctx, c.id, b.Dir, c.hostStack())
	c.reaper = rp
	if err != nil {
		return err
	}
	st, err := c.rt.State(ctx, c.id)
	if err != nil {
		return err
	}
	if st.Status != "running" || st.Pid <= 0 {
		return fmt.Errorf("%w: %s after start: %s", ErrBroken, c.id, st.Status)
	}
	c.init = st.Pid
	if err := c.openInit(); err != nil {
		return err
	}
	if cgroupsPath(cfg) {
		cg, err := ContainerCgroups(st.Pid)
		if err != nil {
			return err
		}
		c.cg = cg
	}
	if c.proxy != nil {
		return c.serveProxy()
	}
	return nil
}

func cgroupsPath(cfg *ocibundle.Config) bool { return cfg.CgroupsPath != "" }

// Enforcement reports what the runtime applied.
func (c *Container) Enforcement() backend.Enforcement { return c.enf }

// markBroken records why the container can no longer run commands.
func (c *Container) markBroken(why string) { c.broken.CompareAndSwap(nil, &why) }

// brokenErr returns ErrBroken with the reason, or nil.
func (c *Container) brokenErr() error {
	if why := c.broken.Load(); why != nil {
		return fmt.Errorf("%w: %s", ErrBroken, *why)
	}
	return nil
}

// Pause freezes the container.
func (c *Container) Pause(ctx context.Context) error {
	if err := c.brokenErr(); err != nil {
		return err
	}
	c.freezeMu.Lock()
	defer c.freezeMu.Unlock()
	if err := c.rt.Pause(ctx, c.id); err != nil {
		return err
	}
	c.paused = true
	return nil
}

// Resume thaws the container.
func (c *Container) Resume(ctx context.Context) error {
	if err := c.brokenErr(); err != nil {
		return err
	}
	c.freezeMu.Lock()
	defer c.freezeMu.Unlock()
	if err := c.rt.Resume(ctx, c.id); err != nil {
		return err
	}
	c.paused = false
	return nil
}

// Destroy kills every process, deletes the container (its cgroups with it),
// waits for gVisor's reaper to exit (at most 5 s) and removes the bundle
// and work directory. It is idempotent.
func (c *Container) Destroy(ctx context.Context) error {
	c.destroyMu.Lock()
	defer c.destroyMu.Unlock()
	if c.destroyed {
		return nil
	}
	c.markBroken("destroyed")
	ctx = context.WithoutCancel(ctx)
	c.closeProxy()
	_ = c.rt.KillAll(ctx, c.id) // a paused or dead container still deletes below
	err := c.rt.Delete(ctx, c.id)
	if err != nil && !c.gone(ctx) {
		return fmt.Errorf("destroy %s: %w", c.id, err)
	}
	c.destroyed = true
	c.closeBinds()
	killCgroupProcs(c.id) // processes the runtime may not know it started
	c.reaper.wait(reaperWait)
	removeCgroups(c.id)
	if c.bundle != nil {
		return c.bundle.Remove()
	}
	return nil
}

// gone reports whether the runtime no longer knows the container.
func (c *Container) gone(ctx context.Context) bool {
	ids, err := c.rt.List(ctx)
	if err != nil {
		return false
	}
	for _, id := range ids {
		if id == c.id {
			return false
		}
	}
	return true
}

// processFile returns the process description of one exec as an
// in-memory file (memfd) that the runtime reads through /proc/self/fd: it
// holds the exec's environment, secrets included, which are never written
// to disk. Under gVisor the command starts through the tiny seccomp loader
// when only a filter applies, through the exec helper when secretOpts are
// given.
func (c *Container) processFile(argv, env []string, cwd string, secretOpts []string) (*os.File, error) {
	switch secrets := len(secretOpts) > 0; {
	case c.viaLoader(secrets):
		argv = append([]string{loaderPath}, argv...)
	case c.viaHelper(secrets):
		argv = helperArgs(c.filtered, secretOpts, argv)
	}
	data, err := json.Marshal(c.bundle.Process(argv, env, cwd))
	if err != nil {
		return nil, fmt.Errorf("exec: process description: %w", err)
	}
	defer clear(data)
	fd, err := unix.MemfdCreate("kavach-exec-"+strconv.FormatUint(c.execSeq.Add(1), 10), unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("exec: process description: %w", err)
	}
	f := os.NewFile(uintptr(fd), "kavach-exec")
	if _, err := f.Write(data); err != nil {
		f.Close()
		return nil, fmt.Errorf("exec: process description: %w", err)
	}
	return f, nil
}

// viaHelper reports whether an exec starts through the exec helper or the
// tiny loader (both report start failures the same way).
func (c *Container) viaHelper(secrets bool) bool { return c.helper && (c.filtered || secrets) }

// viaLoader reports whether an exec starts through the tiny seccomp loader:
// it needs the filter and no secret descriptors (only the Go helper
// installs those).
func (c *Container) viaLoader(secrets bool) bool {
	return c.helper && c.filtered && !secrets && loaderSupported()
}

// useImage unpacks (or finds in the cache) the image layout and makes it
// the container's root: the image's environment under the spec's, and
// kavach's own init (an image may have no shell).
func (c *Container) useImage(ctx context.Context, layout string, cfg *ocibundle.Config) error {
	img, err := ocibundle.UnpackImage(ctx, layout, ImageCacheDir())
	if err != nil {
		return err
	}
	spec := *c.spec
	spec.Env = backend.MergeEnv(img.Env, c.spec.Env)
	c.spec, c.image = &spec, img
	cfg.RootFS, cfg.Env, cfg.Args = img.RootFS, spec.Env, []string{imageInitPath}
	cfg.Policy = &c.spec.Policy
	return nil
}
