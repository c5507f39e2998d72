// Package ocibundle builds the OCI runtime bundles that kavach's container
// backends (oci with crun or runc, gvisor with runsc) hand to a runtime.
//
// A bundle is a private directory holding config.json, a root directory and
// the sandbox's work directory. The root directory is nearly empty: the
// host's system directories (/usr and the /bin, /lib*, /sbin entries) are
// bind-mounted read-only over it by the runtime, /etc is a small generated
// directory (users, hosts, resolver, library cache and certificates only),
// /proc, a minimal /dev and a size-capped /tmp are fresh, and the work
// directory is bound read-write at /work. Nothing else of the host is
// visible unless the policy mounts it.
package ocibundle

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/kavach-sandbox/kavach/backend"
	"github.com/kavach-sandbox/kavach/internal/workfs"
	"github.com/kavach-sandbox/kavach/policy"
)

// OCIVersion is the runtime-spec version written into config.json. crun
// 1.8 rejects anything newer than 1.0.x, and every field kavach uses exists
// in 1.0.2.
const OCIVersion = "1.0.2"

// Sandbox identity: payloads run as this unprivileged uid and gid (see
// backend.SandboxUID), with no capabilities, unless the bundle is rootless
// (then as uid 0 of a user namespace that maps only the caller's own uid).
const (
	UID = backend.SandboxUID
	GID = backend.SandboxGID
)

// ErrExists is returned by Create when the bundle directory already exists.
var ErrExists = errors.New("ocibundle: bundle directory already exists")

// Config describes one bundle.
type Config struct {
	// Dir is the bundle directory to create; it must not exist.
	Dir string
	// Policy is the validated sandbox policy.
	Policy *policy.Policy
	// Env is the environment of the init process ("K=V").
	Env []string
	// Args is the container's init process.
	Args []string
	// Seccomp is the filter in OCI form; nil means none.
	Seccomp *specs.LinuxSeccomp
	// CgroupsPath places the container's cgroup; empty leaves it to the
	// runtime.
	CgroupsPath string
	// Rootless maps the caller's uid to root in a user namespace.
	Rootless bool
	// PidsAsRlimit enforces the pids limit with RLIMIT_NPROC inside the
	// container instead of the pids cgroup. gVisor needs it: its own
	// threads share the container's host cgroup, while RLIMIT_NPROC is
	// counted by its kernel over the payload's tasks only.
	PidsAsRlimit bool
	// Extra are mounted after all others. Top-level destinations get their
	// mount points in the generated root.
	Extra []specs.Mount
	// RootFS is a caller-given root directory used instead of the host
	// view; it is mounted read-only.
	RootFS string
}

// Bundle is a created bundle.
type Bundle struct {
	// Dir holds config.json.
	Dir string
	// RootFS is the container's root directory on the host.
	RootFS string
	// WorkDir is the host directory bound at /work.
	WorkDir string
	// WorkMounted is true when WorkDir is a file system of its own (a
	// tmpfs of the policy's work size, as root) and false when it is a
	// plain directory.
	WorkMounted bool
	// Spec is what config.json holds.
	Spec *specs.Spec
}

// Create builds the bundle directory and writes config.json. On error
// nothing is left behind.
func Create(c *Config) (b *Bundle, err error) {
	if c.Policy == nil || len(c.Args) == 0 || c.Dir == "" {
		return nil, errors.New("ocibundle: config needs Dir, Policy and Args")
	}
	if err := os.Mkdir(c.Dir, 0o711); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("%w: %s", ErrExists, c.Dir)
		}
		return nil, fmt.Errorf("ocibundle: create bundle: %w", err)
	}
	defer func() {
		if err != nil {
			_ = workfs.RemoveAll(c.Dir, filepath.Join(c.Dir, "work"))
		}
	}()
	b = &Bundle{Dir: c.Dir, RootFS: filepath.Join(c.Dir, "rootfs"), WorkDir: filepath.Join(c.Dir, "work")}
	if c.RootFS != "" {
		b.RootFS = c.RootFS
	}
	view, err := b.prepare(c)
	if err != nil {
		return nil, err
	}
	b.Spec = buildSpec(c, b, view)
	if err := writeJSON(filepath.Join(c.Dir, "config.json"), b.Spec); err != nil {
		return nil, err
	}
	return b, nil
}

// prepare makes the root and work directories and returns the host view's
// mounts.
func (b *Bundle) prepare(c *Config) ([]specs.Mount, error) {
	if err := os.Mkdir(b.WorkDir, 0o700); err != nil {
		return nil, fmt.Errorf("ocibundle: create work dir: %w", err)
	}
	uid, gid := hostIDs(c.Rootless)
	if !c.Rootless && workfs.Supported() && !c.Policy.BindsWorkDir() {
		if err := workfs.Mount(b.WorkDir, c.Policy.EffectiveWorkSize(), uid, gid, 0o700); err != nil {
			return nil, fmt.Errorf("ocibundle: %w", err)
		}
		b.WorkMounted = true
	} else if err := os.Chown(b.WorkDir, uid, gid); err != nil {
		return nil, fmt.Errorf("ocibundle: chown work dir: %w", err)
	}
	var view []specs.Mount
	if c.RootFS == "" {
		v, err := buildRootFS(b.RootFS, c.Policy)
		if err != nil {
			return nil, err
		}
		view = v
	}
	if err := mountPoints(b, c.Policy.Filesystem.MountOrder()); err != nil {
		return nil, err
	}
	for _, m := range c.Extra {
		if strings.Count(m.Destination, "/") == 1 && c.RootFS == "" {
			if err := makeMountPoint(filepath.Join(b.RootFS, m.Destination), true); err != nil {
				return nil, err
			}
		}
	}
	return view, nil
}

// hostIDs is the host uid and gid that own the work directory.
func hostIDs(rootless bool) (int, int) {
	if rootless {
		return os.Geteuid(), os.Getegid()
	}
	return UID, GID
}

// Remove deletes the bundle directory, work directory (and its file
// system) included.
func (b *Bundle) Remove() error {
	if err := workfs.RemoveAll(b.Dir, b.WorkDir); err != nil {
		return fmt.Errorf("ocibundle: remove %s: %w", b.Dir, err)
	}
	return nil
}

// Process returns the process description of a command run in the
// container with runtime exec: same user, capabilities (none), rlimits and
// no-new-privileges as the init process.
func (b *Bundle) Process(argv, env []string, cwd string) *specs.Process {
	p := *b.Spec.Process
	p.Args, p.Env, p.Cwd = argv, env, cwd
	return &p
}

func writeJSON(path string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("ocibundle: encode %s: %w", filepath.Base(path), err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("ocibundle: write %s: %w", filepath.Base(path), err)
	}
	return nil
}
