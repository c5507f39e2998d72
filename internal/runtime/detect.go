package runtime

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/kavach-sandbox/kavach/internal/ocibundle"
	"github.com/kavach-sandbox/kavach/policy"
)

// probeTimeout bounds one probe container (runsc needs ~0.2 s here).
const probeTimeout = 20 * time.Second

var (
	probeMu sync.Mutex
	probes  = map[Kind]*probeResult{}
)

type probeResult struct {
	rt  *Runtime
	err error
}

// Detect finds the runtime of the given kind and proves that it can run a
// container on this host: it starts one whose init is /bin/true. The first
// call per kind in a process does the work (and cleans up containers left
// by crashed kavach processes); later calls return the cached answer.
func Detect(ctx context.Context, kind Kind) (*Runtime, error) {
	probeMu.Lock()
	defer probeMu.Unlock()
	if p, ok := probes[kind]; ok {
		return p.rt, p.err
	}
	rt, err := detect(ctx, kind)
	if ctx.Err() != nil && err != nil {
		return nil, err // do not cache an answer the caller cut short
	}
	probes[kind] = &probeResult{rt, err}
	return rt, err
}

func detect(ctx context.Context, kind Kind) (*Runtime, error) {
	path, err := exec.LookPath(string(kind))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", kind, ErrNotFound)
	}
	rt := &Runtime{kind: kind, path: path, root: filepath.Join(StateDir(), string(kind)), rootless: os.Geteuid() != 0}
	if err := os.MkdirAll(rt.root, 0o700); err != nil {
		return nil, fmt.Errorf("%s: state dir: %w", kind, err)
	}
	if err := os.MkdirAll(BundleDir(), 0o711); err != nil {
		return nil, fmt.Errorf("%s: bundle dir: %w", kind, err)
	}
	if kind == Runsc {
		rt.platform = runscPlatform(ctx, path)
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	CleanupStale(ctx, rt)
	err = rt.probe(ctx)
	if err != nil && kind == Crun && strings.Contains(err.Error(), hybridRefusal) && hybridControllers() {
		if err = rt.enableHybridWorkaround(); err == nil {
			err = rt.probe(ctx)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %v", kind, ErrProbe, err)
	}
	return rt, nil
}

// enableHybridWorkaround makes crun start in a mount namespace where the
// hybrid layout's cgroup2 controllers are hidden.
func (r *Runtime) enableHybridWorkaround() error {
	empty, err := emptyFile(StateDir())
	if err != nil {
		return err
	}
	l, err := newLauncher(empty)
	if err != nil {
		return err
	}
	r.launcher = l
	return nil
}

// runscPlatform picks the fastest platform this runsc build knows that
// works without hardware virtualization: systrap if the build has it, else
// ptrace. kvm is never chosen (it hangs or crawls where KVM is emulated).
func runscPlatform(ctx context.Context, path string) string {
	out, _ := exec.CommandContext(ctx, path, "flags").CombinedOutput()
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "platform to use") && strings.Contains(line, "systrap") {
			return "systrap"
		}
	}
	return "ptrace"
}

// probe runs a throwaway container whose init is /bin/true.
func (r *Runtime) probe(ctx context.Context) error {
	id := ContainerID("probe-" + string(r.kind))
	dir := filepath.Join(BundleDir(), id)
	p := policy.Minimal()
	p.Network.Mode = policy.NetworkOff
	b, err := ocibundle.Create(&ocibundle.Config{Dir: dir, Policy: &p, Args: []string{"/bin/true"},
		Env: []string{"PATH=/usr/bin:/bin"}, Rootless: r.rootless})
	if err != nil {
		return err
	}
	defer b.Remove()
	cmd := r.command([]string{}, "run", "--bundle", dir, id)
	if r.kind == Runsc {
		cmd = r.command([]string{"--network=none"}, "run", "--bundle", dir, id)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = r.start(cmd)
	if err == nil {
		err = waitCtx(ctx, cmd)
	}
	_ = r.Delete(context.WithoutCancel(ctx), id)
	if err != nil {
		if msg := lastLine(out.String()); msg != "" {
			return fmt.Errorf("%w: %s", err, msg)
		}
		return err
	}
	return nil
}

// waitCtx waits for cmd, killing it when ctx ends first.
func waitCtx(ctx context.Context, cmd *exec.Cmd) error {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		<-done
		return ctx.Err()
	}
}
