// Package runtime drives the OCI runtime command-line tools that kavach's
// container backends use: crun and runc for the oci backend, runsc (gVisor)
// for the gvisor backend. It finds a runtime, proves that it can start a
// container on this host (once per process), applies the host workarounds a
// runtime needs only where they are detected, and maps kavach's sandbox
// lifecycle onto the runtime's subcommands.
package runtime

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Kind names a runtime.
type Kind string

// The runtimes kavach drives.
const (
	Crun  Kind = "crun"
	Runc  Kind = "runc"
	Runsc Kind = "runsc"
)

// Sentinel errors, testable with errors.Is.
var (
	// ErrNotFound reports a runtime binary missing from PATH.
	ErrNotFound = errors.New("not found in PATH")
	// ErrProbe reports a runtime that is installed but cannot start a
	// container on this host.
	ErrProbe = errors.New("cannot start a container")
	// ErrCommand reports a runtime subcommand that failed.
	ErrCommand = errors.New("runtime command failed")
)

// Runtime is one usable runtime binary with the flags this host needs.
type Runtime struct {
	kind Kind
	path string
	// root is the runtime's state directory (--root), owned by kavach.
	root string
	// platform is runsc's platform (systrap or ptrace).
	platform string
	// rootless is set when kavach does not run as root.
	rootless bool
	// launcher starts crun in a private mount namespace that hides the
	// cgroup2 controllers of a hybrid layout (nil when not needed).
	launcher *launcher
}

// Kind returns the runtime's kind.
func (r *Runtime) Kind() Kind { return r.kind }

// Path returns the runtime binary.
func (r *Runtime) Path() string { return r.path }

// Platform returns runsc's platform ("" for crun and runc).
func (r *Runtime) Platform() string { return r.platform }

// Rootless reports whether containers are created without root.
func (r *Runtime) Rootless() bool { return r.rootless }

// HybridWorkaround reports whether crun runs with the hybrid-cgroup
// workaround.
func (r *Runtime) HybridWorkaround() bool { return r.launcher != nil }

// StateDir is the directory kavach owns for container state and bundles:
// /run/kavach/oci as root, a per-user directory in the temp dir otherwise.
func StateDir() string {
	if os.Geteuid() == 0 {
		return "/run/kavach/oci"
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("kavach-%d", os.Geteuid()), "oci")
}

// globalArgs are the flags before the subcommand.
func (r *Runtime) globalArgs() []string {
	args := []string{"--root", r.root}
	if r.kind == Runsc {
		args = append(args, "--platform="+r.platform, "--oci-seccomp")
		if r.rootless {
			args = append(args, "--rootless")
		}
	}
	return args
}

// command builds an invocation of the runtime.
func (r *Runtime) command(global []string, args ...string) *exec.Cmd {
	all := append(append(r.globalArgs(), global...), args...)
	cmd := exec.Command(r.path, all...)
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	if r.rootless {
		if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
			cmd.Env = append(cmd.Env, "XDG_RUNTIME_DIR="+d)
		}
	}
	return cmd
}

// shareMount makes what is mounted on dir in kavach's mount namespace
// visible to the runtime, which the crun launcher runs in a namespace of
// its own.
func (r *Runtime) shareMount(dir string) error {
	if r.launcher != nil {
		return r.launcher.share(dir)
	}
	return nil
}

// start starts cmd, in the crun launcher's mount namespace when needed.
func (r *Runtime) start(cmd *exec.Cmd) error {
	if r.launcher != nil {
		return r.launcher.start(cmd)
	}
	return cmd.Start()
}

// run runs a runtime subcommand to completion and returns its stdout. ctx
// cancellation kills the runtime process.
func (r *Runtime) run(ctx context.Context, global []string, args ...string) ([]byte, error) {
	cmd := r.command(global, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := r.start(cmd); err != nil {
		return nil, fmt.Errorf("%s %s: %w", r.kind, args[0], err)
	}
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			_ = cmd.Process.Kill()
		case <-done:
		}
	}()
	err := cmd.Wait()
	close(done)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s %s: %w", r.kind, args[0], ctx.Err())
		}
		return stdout.Bytes(), fmt.Errorf("%w: %s %s: %v: %s", ErrCommand, r.kind, args[0], err, lastLine(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// lastLine is the last non-empty line of s, the runtime's error message.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}
