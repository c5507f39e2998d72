// Package process is kavach's default backend: the payload runs as PID 1 of
// its own pid, mount, network, uts, ipc and cgroup namespaces (and a user
// namespace when kavach is not root), in a fresh tmpfs root that holds only
// read-only binds of the host's system directories, behind Landlock and a
// seccomp-bpf filter, as an unprivileged user with no capabilities, in a
// cgroup that carries its limits.
//
// Each Exec starts a sandbox init by re-executing the current binary (see
// kavach.Init), sends it the configuration over a pipe, and the init builds
// the sandbox from inside and execs the payload. The sandbox's /work
// directory persists between the execs of one sandbox.
package process

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/kavach-sandbox/kavach/backend"
	"github.com/kavach-sandbox/kavach/internal/cgroup"
	"github.com/kavach-sandbox/kavach/policy"
	"github.com/kavach-sandbox/kavach/score"
)

// Driver is the process backend.
type Driver struct {
	mu     sync.Mutex
	probed bool
	avail  backend.Availability
}

// New returns the process backend driver.
func New() *Driver { return &Driver{} }

// Info describes the backend.
func (d *Driver) Info() backend.Info {
	i, _ := backend.InfoOf(backend.Process)
	return i
}

// Probe checks the host's namespace support and then starts one real
// sandbox running /bin/true. The answer is cached for the process.
func (d *Driver) Probe(ctx context.Context) backend.Availability {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.probed {
		d.avail, d.probed = probe(ctx), true
	}
	return d.avail
}

// CreateProves reports that a successful Create is itself the proof that
// the host can run the backend: kavach then skips the probe sandbox before
// creating the first real one.
func (d *Driver) CreateProves() bool { return true }

// CleanupStale removes the state directories and cgroups of process
// sandboxes whose kavach process died without destroying them (their inits
// died with it). It runs once per process.
func (d *Driver) CleanupStale(ctx context.Context) {
	cleanupOnce.Do(func() { cleanStale(ctx) })
}

// proven records a sandbox that started, as the probe's answer.
func (d *Driver) proven() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.probed {
		d.avail, d.probed = backend.Availability{Available: true, Reason: availableReason()}, true
	}
}

func probe(ctx context.Context) backend.Availability {
	if reason := namespaceProblem(); reason != "" {
		return backend.Availability{Reason: reason}
	}
	p := policy.Minimal()
	p.Network.Mode = policy.NetworkOff
	inst, err := newInstance(ctx, &backend.Spec{ID: "probe-" + strconv.Itoa(os.Getpid()), Policy: p, BestEffort: true})
	if err != nil {
		return backend.Availability{Reason: "cannot create a sandbox: " + err.Error()}
	}
	defer inst.Destroy(context.WithoutCancel(ctx))
	out, err := inst.Exec(ctx, &backend.ExecRequest{Argv: []string{"/bin/true"}, MaxOutput: 4096})
	if err != nil {
		return backend.Availability{Reason: "cannot start a sandbox: " + err.Error()}
	}
	if out.Status != backend.StatusExited || out.ExitCode != 0 {
		return backend.Availability{Reason: fmt.Sprintf("probe sandbox failed: %s %d %s", out.Status, out.ExitCode, strings.TrimSpace(out.Error+" "+string(out.Stderr)))}
	}
	return backend.Availability{Available: true, Reason: availableReason()}
}

func availableReason() string {
	mode := "as root"
	if os.Geteuid() != 0 {
		mode = "rootless (user namespace)"
	}
	return "namespaces, seccomp, Landlock, cgroups " + cgroupVersion() + "; " + mode
}

// namespaceProblem explains why this host cannot create the namespaces the
// backend needs, or returns "".
func namespaceProblem() string {
	if _, err := os.Stat("/proc/self/ns/pid"); err != nil {
		return "namespaces are not available: " + err.Error()
	}
	if os.Geteuid() == 0 {
		return ""
	}
	if b, err := os.ReadFile("/proc/sys/kernel/unprivileged_userns_clone"); err == nil && strings.TrimSpace(string(b)) == "0" {
		return "unprivileged user namespaces are disabled (sysctl kernel.unprivileged_userns_clone=0)"
	}
	if b, err := os.ReadFile("/proc/sys/user/max_user_namespaces"); err == nil && strings.TrimSpace(string(b)) == "0" {
		return "user namespaces are disabled (sysctl user.max_user_namespaces=0)"
	}
	if b, err := os.ReadFile("/proc/sys/kernel/apparmor_restrict_unprivileged_userns"); err == nil && strings.TrimSpace(string(b)) == "1" {
		return "AppArmor restricts unprivileged user namespaces (sysctl kernel.apparmor_restrict_unprivileged_userns=1)"
	}
	return ""
}

func cgroupVersion() string {
	s := cgroup.Detect()
	if s.Version == 0 {
		return "unavailable"
	}
	return "v" + strconv.Itoa(s.Version)
}

// Capabilities reports the layers the backend can enforce on this host.
func (d *Driver) Capabilities() score.Layers {
	// The network allowlist: the egress proxy on a listener inside the
	// sandbox's network namespace.
	c := score.SeccompBasic | score.SeccompAllowlist | score.Filesystem | score.NetworkOff | score.NetworkAllowlist
	if s := cgroup.Detect(); s.Memory && s.Pids {
		c |= score.Limits
	}
	return c
}

// Create prepares a sandbox: its state directory, work directory and cgroup.
func (d *Driver) Create(ctx context.Context, spec *backend.Spec) (backend.Instance, error) {
	d.mu.Lock()
	avail, probed := d.avail, d.probed
	d.mu.Unlock()
	if probed && !avail.Available {
		return nil, fmt.Errorf("%w: process: %s", backend.ErrUnavailable, avail.Reason)
	}
	if reason := namespaceProblem(); reason != "" {
		return nil, fmt.Errorf("%w: process: %s", backend.ErrUnavailable, reason)
	}
	inst, err := newInstance(ctx, spec)
	if err != nil {
		return nil, err
	}
	d.proven()
	return inst, nil
}
