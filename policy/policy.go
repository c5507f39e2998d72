// Package policy defines what a sandbox is allowed to do: its seccomp
// profile, filesystem view, network access, resource limits, environment,
// working directory and hostname. Policies come from the presets minimal,
// basic and strict, from Go code, or from JSON and YAML files.
package policy

import (
	"cmp"
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Access is the access mode of a bind mount.
type Access string

// Access modes.
const (
	ReadOnly  Access = "ro"
	ReadWrite Access = "rw"
)

// WorkDir is the sandbox's private writable directory and default current
// directory.
const WorkDir = "/work"

// Mount makes a host path visible inside the sandbox.
type Mount struct {
	Source string `json:"source"` // absolute host path
	Dest   string `json:"dest"`   // absolute path inside the sandbox
	Mode   Access `json:"mode"`   // "ro" or "rw"
}

// MountOrder returns the mounts in the order they are applied: a mount
// before every mount beneath its destination, and otherwise as listed.
// Applied as listed, a read-only mount listed before a read-write mount of
// a parent directory would be covered by it — and the path it should
// protect would be writable.
func (f *Filesystem) MountOrder() []Mount {
	out := slices.Clone(f.Mounts)
	slices.SortStableFunc(out, func(a, b Mount) int {
		return cmp.Compare(depth(a.Dest), depth(b.Dest))
	})
	return out
}

// depth is the number of components of a clean absolute path ("/" is 0).
func depth(p string) int {
	p = path.Clean(p)
	if p == "/" {
		return 0
	}
	return strings.Count(p, "/")
}

// Filesystem describes the sandbox's file system view.
type Filesystem struct {
	// ReadOnlyRoot makes everything read-only except /tmp, the work
	// directory and rw mounts, and confines access with Landlock where the
	// backend supports it.
	ReadOnlyRoot bool `json:"read_only_root"`
	// Mounts are extra host paths bound into the sandbox. Backends apply
	// them in MountOrder, parents before what lies beneath them, whatever
	// their order here.
	Mounts []Mount `json:"mounts,omitempty"`
	// TmpSize caps the sandbox's /tmp (0: DefaultTmpSize).
	TmpSize Size `json:"tmp_size,omitempty"`
	// WorkSize caps the sandbox's work directory /work (0: see
	// Policy.EffectiveWorkSize) where the backend gives it a file system of
	// its own (as root); it does not apply when a mount replaces /work.
	WorkSize Size `json:"work_size,omitempty"`
}

// Network describes network access.
type Network struct {
	Mode  NetworkMode `json:"mode"`
	Allow []string    `json:"allow,omitempty"` // host, *.host, host:port (allowlist mode)
}

// Limits are resource limits. Zero means "no limit" for every field.
type Limits struct {
	Memory    Size     `json:"memory,omitempty"`     // bytes
	CPUs      float64  `json:"cpus,omitempty"`       // fractional cores
	Pids      int64    `json:"pids,omitempty"`       // processes and threads
	Timeout   Duration `json:"timeout,omitempty"`    // wall clock per exec
	CPUTime   Duration `json:"cpu_time,omitempty"`   // CPU time per exec
	MaxOutput Size     `json:"max_output,omitempty"` // per stream
}

// Policy is everything a sandbox is allowed to do.
type Policy struct {
	Name         string            `json:"name,omitempty"`
	Seccomp      SeccompProfile    `json:"seccomp"`
	SeccompAllow []string          `json:"seccomp_allow,omitempty"`
	Filesystem   Filesystem        `json:"filesystem"`
	Network      Network           `json:"network"`
	Limits       Limits            `json:"limits"`
	Env          map[string]string `json:"env,omitempty"`
	InheritEnv   bool              `json:"inherit_env,omitempty"`
	Workdir      string            `json:"workdir,omitempty"`
	Hostname     string            `json:"hostname,omitempty"`
	// UserNamespace asks for a user namespace even when kavach runs as root
	// (it always has one otherwise), so that the sandbox's setup holds
	// capabilities over its own namespaces only.
	UserNamespace bool `json:"user_namespace,omitempty"`
	// BestEffort runs with a lower effective score when the backend cannot
	// apply a requested layer, instead of refusing to run.
	BestEffort bool `json:"best_effort,omitempty"`
}

// Defaults that apply when a policy leaves them unset.
const (
	DefaultTimeout   = 30 * time.Second
	DefaultMaxOutput = Size(1 << 20)
	DefaultHostname  = "kavach"
	DefaultTmpSize   = Size(256 << 20)
	DefaultWorkSize  = Size(1 << 30)
)

// MaxMaxOutput is the largest per-stream output cap a policy may set. kavach
// holds an exec's output in memory while the gate scans it and the result
// is built (a few copies of it), outside the sandbox's own memory limit, so
// an unbounded cap would let a payload exhaust the host's memory. Larger
// artifacts leave through Export.
const MaxMaxOutput = Size(256 << 20)

// Minimal is the least confined preset: no seccomp filter, the host's
// system directories visible, network on, no limits but the timeout.
func Minimal() Policy {
	return Policy{
		Name:    "minimal",
		Seccomp: SeccompOff,
		Network: Network{Mode: NetworkOn},
		Limits:  Limits{Timeout: Duration(DefaultTimeout), MaxOutput: DefaultMaxOutput},
		Workdir: WorkDir,
	}
}

// Basic adds the seccomp deny-list and cuts the network.
func Basic() Policy {
	p := Minimal()
	p.Name = "basic"
	p.Seccomp = SeccompBasic
	p.Network = Network{Mode: NetworkOff}
	return p
}

// Strict is the default: seccomp allow-list, read-only root with writable
// /tmp and work directory, no network, 512 MiB memory, one CPU, 64 pids.
func Strict() Policy {
	return Policy{
		Name:       "strict",
		Seccomp:    SeccompStrict,
		Filesystem: Filesystem{ReadOnlyRoot: true},
		Network:    Network{Mode: NetworkOff},
		Limits:     Limits{Memory: 512 << 20, CPUs: 1, Pids: 64, Timeout: Duration(DefaultTimeout), MaxOutput: DefaultMaxOutput},
		Workdir:    WorkDir,
	}
}

// Presets lists the preset names in increasing strength.
var Presets = []string{"minimal", "basic", "strict"}

// ErrUnknownPreset is returned for a preset name that does not exist.
var ErrUnknownPreset = errors.New("unknown policy preset")

// Preset returns the preset with the given name (case-insensitive).
func Preset(name string) (Policy, error) {
	switch strings.ToLower(strings.TrimSpace(name)) {
	case "minimal":
		return Minimal(), nil
	case "basic":
		return Basic(), nil
	case "strict":
		return Strict(), nil
	}
	return Policy{}, fmt.Errorf("%w %s (want one of %s)", ErrUnknownPreset, quote(name), strings.Join(Presets, ", "))
}

// Clone returns a deep copy of p.
func (p Policy) Clone() Policy {
	q := p
	q.SeccompAllow = slices.Clone(p.SeccompAllow)
	q.Filesystem.Mounts = slices.Clone(p.Filesystem.Mounts)
	q.Network.Allow = slices.Clone(p.Network.Allow)
	if p.Env != nil {
		q.Env = make(map[string]string, len(p.Env))
		for k, v := range p.Env {
			q.Env[k] = v
		}
	}
	return q
}

// FieldError is a validation error that names the offending field.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// ErrInvalid is wrapped by every validation error.
var ErrInvalid = errors.New("invalid policy")

func invalid(field, format string, a ...any) error {
	return fmt.Errorf("%w: %w", ErrInvalid, &FieldError{Field: field, Msg: fmt.Sprintf(format, a...)})
}

// Validate checks that every value is possible. The error names the field.
func (p *Policy) Validate() error { return p.validate(nil) }

// validate is Validate, reporting modeErr (a network mode a file named
// that is none) where the network mode is checked.
func (p *Policy) validate(modeErr error) error {
	if err := p.validateSeccomp(); err != nil {
		return err
	}
	if err := p.validateFilesystem(); err != nil {
		return err
	}
	if modeErr != nil {
		return modeErr
	}
	if err := p.validateNetwork(); err != nil {
		return err
	}
	if err := p.Limits.validate(); err != nil {
		return err
	}
	return p.validateProcess()
}

func (p *Policy) validateSeccomp() error {
	switch p.Seccomp {
	case SeccompOff, SeccompBasic, SeccompStrict:
		if len(p.SeccompAllow) > 0 {
			return invalid("seccomp_allow", "only valid with seccomp %q", SeccompCustom)
		}
	case SeccompCustom:
		if len(p.SeccompAllow) == 0 {
			return invalid("seccomp_allow", "custom seccomp profile needs at least one system call")
		}
		for i, s := range p.SeccompAllow {
			if s == "" || strings.ContainsAny(s, " /") || hasControl(s) {
				return invalid(fmt.Sprintf("seccomp_allow[%d]", i), "invalid system call name %s", quote(s))
			}
		}
	default:
		return invalid("seccomp", "unknown profile %s (want off, basic, strict or custom)", quote(p.Seccomp.String()))
	}
	return nil
}

func (p *Policy) validateFilesystem() error {
	if p.Filesystem.TmpSize < 0 {
		return invalid("filesystem.tmp_size", "must not be negative")
	}
	if p.Filesystem.WorkSize < 0 {
		return invalid("filesystem.work_size", "must not be negative")
	}
	if len(p.Filesystem.Mounts) == 0 {
		return nil
	}
	seen := make(map[string]int, len(p.Filesystem.Mounts))
	for i, m := range p.Filesystem.Mounts {
		// Field names are built only for an error: a valid policy
		// validates without formatting.
		field := func(sub string) string { return "filesystem.mounts[" + strconv.Itoa(i) + "]." + sub }
		if err := checkAbs(m.Source); err != nil {
			return invalid(field("source"), "%s", err)
		}
		if err := checkAbs(m.Dest); err != nil {
			return invalid(field("dest"), "%s", err)
		}
		if m.Mode != ReadOnly && m.Mode != ReadWrite {
			return invalid(field("mode"), "must be \"ro\" or \"rw\", not %s", quote(m.Mode))
		}
		d := path.Clean(m.Dest)
		if d == "/" || d == "/proc" || d == "/dev" {
			return invalid(field("dest"), "cannot mount over %s", quote(d))
		}
		if j, dup := seen[d]; dup {
			return invalid(field("dest"), "duplicate path %s (also filesystem.mounts[%d])", quote(d), j)
		}
		seen[d] = i
	}
	return nil
}

// checkAbs returns why p is not a usable absolute path, or nil.
func checkAbs(p string) error {
	switch {
	case p == "":
		return errors.New("must not be empty")
	case !path.IsAbs(p):
		return fmt.Errorf("must be an absolute path, not %s", quote(p))
	case strings.IndexByte(p, 0) >= 0:
		return errors.New("contains a NUL byte")
	}
	return nil
}

func (p *Policy) validateNetwork() error {
	switch p.Network.Mode {
	case NetworkOff, NetworkOn:
		if len(p.Network.Allow) > 0 {
			return invalid("network.allow", "only valid with network mode %q", NetworkAllowlist)
		}
	case NetworkAllowlist:
		if len(p.Network.Allow) == 0 {
			return invalid("network.allow", "allowlist mode needs at least one host")
		}
		seen := make(map[string]bool, len(p.Network.Allow))
		for i, h := range p.Network.Allow {
			if h == "" || strings.ContainsAny(h, " /@") || hasControl(h) {
				return invalid(fmt.Sprintf("network.allow[%d]", i), "invalid host %s", quote(h))
			}
			if seen[strings.ToLower(h)] {
				return invalid(fmt.Sprintf("network.allow[%d]", i), "duplicate host %s", quote(h))
			}
			seen[strings.ToLower(h)] = true
		}
	default:
		return invalid("network.mode", "unknown mode %s (want off, on or allowlist)", quote(p.Network.Mode.String()))
	}
	return nil
}

// Bounds of Limits.CPUs (when it is not 0, "no limit"). The kernel's CFS
// bandwidth control grants at least 1 ms of CPU per period, so 1% of a core
// is the least that its default 100 ms period can express; anything smaller
// would only throttle in long bursts, and a value such as 5e-324 must not
// earn the resource-limit score modifier. The upper bound is beyond any
// machine and keeps quota arithmetic far inside int64.
const (
	MinCPUs = 0.01  // least CPU limit, in cores
	MaxCPUs = 65536 // greatest CPU limit, in cores
)

func (l *Limits) validate() error {
	switch {
	case l.Memory < 0:
		return invalid("limits.memory", "must not be negative")
	case l.Memory != 0 && l.Memory < 1<<20:
		return invalid("limits.memory", "%d bytes is too small (at least 1M)", l.Memory)
	case l.CPUs != 0 && !(l.CPUs >= MinCPUs && l.CPUs <= MaxCPUs): // NaN fails both comparisons
		return invalid("limits.cpus", "must be between %v and %v cores, not %v", MinCPUs, MaxCPUs, l.CPUs)
	case l.Pids < 0:
		return invalid("limits.pids", "must be positive")
	case l.Timeout < 0:
		return invalid("limits.timeout", "must not be negative")
	case l.CPUTime < 0:
		return invalid("limits.cpu_time", "must not be negative")
	case l.MaxOutput < 0:
		return invalid("limits.max_output", "must not be negative")
	case l.MaxOutput > MaxMaxOutput:
		return invalid("limits.max_output", "%s is above the ceiling of %s (export larger artifacts as files)", l.MaxOutput, MaxMaxOutput)
	}
	return nil
}

func (p *Policy) validateProcess() error {
	if p.Workdir != "" {
		if err := checkAbs(p.Workdir); err != nil {
			return invalid("workdir", "%s", err)
		}
	}
	if p.Hostname != "" && (len(p.Hostname) > 64 || strings.ContainsAny(p.Hostname, " /") || hasControl(p.Hostname)) {
		return invalid("hostname", "invalid hostname %s", quote(p.Hostname))
	}
	if len(p.Env) == 0 {
		return nil
	}
	for k, v := range p.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return invalid("env", "invalid variable name %s", quote(k))
		}
		if strings.IndexByte(v, 0) >= 0 {
			return invalid("env", "variable %s: value contains a NUL byte", quote(k))
		}
	}
	return nil
}

// HasLimits reports whether the policy asks for the limits that earn the
// resource-limit score modifier: a memory or CPU limit, and a pids limit.
func (p *Policy) HasLimits() bool {
	return (p.Limits.Memory > 0 || p.Limits.CPUs > 0) && p.Limits.Pids > 0
}

// EffectiveTimeout is the wall-clock timeout, with the default applied.
func (p *Policy) EffectiveTimeout() time.Duration {
	if p.Limits.Timeout > 0 {
		return time.Duration(p.Limits.Timeout)
	}
	return DefaultTimeout
}

// BindsWorkDir reports whether a mount of the policy replaces the work
// directory: a host directory bound at /work.
func (p *Policy) BindsWorkDir() bool {
	for _, m := range p.Filesystem.Mounts {
		if path.Clean(m.Dest) == WorkDir {
			return true
		}
	}
	return false
}

// EffectiveTmpSize is the size of the sandbox's /tmp, with the default
// applied.
func (p *Policy) EffectiveTmpSize() int64 {
	if p.Filesystem.TmpSize > 0 {
		return int64(p.Filesystem.TmpSize)
	}
	return int64(DefaultTmpSize)
}

// EffectiveWorkSize is the size of the work directory's own file system,
// with the default applied: DefaultWorkSize, or half the memory limit when
// that is less. The file system is a tmpfs whose pages count against the
// memory limit, so that a payload filling /work gets ENOSPC rather than an
// out-of-memory kill.
func (p *Policy) EffectiveWorkSize() int64 {
	switch {
	case p.Filesystem.WorkSize > 0:
		return int64(p.Filesystem.WorkSize)
	case p.Limits.Memory > 0:
		return min(int64(DefaultWorkSize), max(int64(p.Limits.Memory)/2, 1<<20))
	}
	return int64(DefaultWorkSize)
}

// EffectiveMaxOutput is the per-stream output cap, with the default applied.
func (p *Policy) EffectiveMaxOutput() int64 {
	if p.Limits.MaxOutput > 0 {
		return int64(p.Limits.MaxOutput)
	}
	return int64(DefaultMaxOutput)
}
