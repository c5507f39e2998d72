package kavach

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/kavach-sandbox/kavach/audit"
	"github.com/kavach-sandbox/kavach/backend"
	"github.com/kavach-sandbox/kavach/credential"
	"github.com/kavach-sandbox/kavach/gate"
	"github.com/kavach-sandbox/kavach/lifecycle"
	"github.com/kavach-sandbox/kavach/policy"
	"github.com/kavach-sandbox/kavach/quarantine"
)

// Builder builds a Config fluently:
//
//	cfg, err := kavach.NewConfig().Backend(kavach.GVisor).Seccomp("strict").Network(false).Build()
//
// Order rule: Policy sets the base policy (default: strict) and may be
// called at any point; every other setter is an override that Build applies
// on top of that base. So Policy never undoes an earlier Memory or Seccomp
// call, and when a setter is called twice the last call wins (Env, Mount and
// AllowHosts add to what is there). Invalid values are reported by Build,
// naming the field; a later valid call does not cancel an earlier invalid
// one.
//
// A Builder used in one expression, as above, lives on the caller's stack:
// building a configuration does not allocate unless a list setter (Env,
// Mount, AllowHosts, SeccompAllow, Hook, Secret) is used.
type Builder struct {
	backend  backend.Name
	base     policy.Policy
	hasBase  bool // false: the strict preset
	over     overrides
	minScore int
	hooks    []lifecycle.Hook
	hookWait time.Duration
	errs     []error

	gatePolicy *gate.Policy
	gateOff    bool
	quarantine *quarantine.Store
	creds      *credential.Store
	secrets    []credential.Binding
	audit      *audit.Log
}

// field is a set of policy fields overridden by setters.
type field uint16

const (
	fSeccomp field = 1 << iota // with seccompAllow
	fNetwork                   // network replaces the base's
	fReadOnlyRoot
	fMemory
	fCPUs
	fPids
	fTimeout
	fCPUTime
	fMaxOutput
	fWorkdir
	fHostname
	fBestEffort
)

// overrides hold the setters' values; set says which scalar fields are
// present. Lists (mounts, env, hosts) are added to the base's.
type overrides struct {
	set          field
	seccomp      policy.SeccompProfile
	seccompAllow []string
	network      policy.Network
	moreHosts    []string // AllowHosts before any Network call: added to the base's allowlist
	readOnlyRoot bool
	limits       policy.Limits
	mounts       []policy.Mount
	env          []string // key, value, key, value...
	workdir      string
	hostname     string
	bestEffort   bool
}

// apply performs the overrides on p, a copy of the base that owns its
// slices and map.
func (o *overrides) apply(p *policy.Policy) {
	if o.set&fSeccomp != 0 {
		p.Seccomp, p.SeccompAllow = o.seccomp, slices.Clone(o.seccompAllow)
	}
	o.applyNetwork(p)
	if o.set&fReadOnlyRoot != 0 {
		p.Filesystem.ReadOnlyRoot = o.readOnlyRoot
	}
	if len(o.mounts) > 0 {
		p.Filesystem.Mounts = append(p.Filesystem.Mounts, o.mounts...)
	}
	o.applyLimits(&p.Limits)
	if len(o.env) > 0 {
		if p.Env == nil {
			p.Env = make(map[string]string, len(o.env)/2)
		}
		for i := 0; i < len(o.env); i += 2 {
			p.Env[o.env[i]] = o.env[i+1]
		}
	}
	if o.set&fWorkdir != 0 {
		p.Workdir = o.workdir
	}
	if o.set&fHostname != 0 {
		p.Hostname = o.hostname
	}
	if o.set&fBestEffort != 0 {
		p.BestEffort = o.bestEffort
	}
}

func (o *overrides) applyNetwork(p *policy.Policy) {
	switch {
	case o.set&fNetwork != 0:
		p.Network = policy.Network{Mode: o.network.Mode, Allow: slices.Clone(o.network.Allow)}
	case len(o.moreHosts) > 0:
		if p.Network.Mode != policy.NetworkAllowlist {
			p.Network = policy.Network{Mode: policy.NetworkAllowlist}
		}
		p.Network.Allow = append(p.Network.Allow, o.moreHosts...)
	}
}

func (o *overrides) applyLimits(l *policy.Limits) {
	if o.set&fMemory != 0 {
		l.Memory = o.limits.Memory
	}
	if o.set&fCPUs != 0 {
		l.CPUs = o.limits.CPUs
	}
	if o.set&fPids != 0 {
		l.Pids = o.limits.Pids
	}
	if o.set&fTimeout != 0 {
		l.Timeout = o.limits.Timeout
	}
	if o.set&fCPUTime != 0 {
		l.CPUTime = o.limits.CPUTime
	}
	if o.set&fMaxOutput != 0 {
		l.MaxOutput = o.limits.MaxOutput
	}
}

// NewConfig starts a builder with the default backend and the strict policy.
func NewConfig() *Builder { return &Builder{backend: DefaultBackend} }

func (b *Builder) fail(field, format string, a ...any) *Builder {
	b.errs = append(b.errs, &policy.FieldError{Field: field, Msg: fmt.Sprintf(format, a...)})
	return b
}

// Backend selects the isolation backend.
func (b *Builder) Backend(n backend.Name) *Builder {
	name, err := backend.ParseName(string(n))
	if err != nil {
		return b.fail("backend", "%v", err)
	}
	b.backend = name
	return b
}

// Policy sets the base policy that the other setters override.
func (b *Builder) Policy(p policy.Policy) *Builder {
	b.base, b.hasBase = p.Clone(), true
	return b
}

// Preset sets the base policy to a named preset.
func (b *Builder) Preset(name string) *Builder {
	p, err := policy.Preset(name)
	if err != nil {
		return b.fail("policy", "%v", err)
	}
	return b.Policy(p)
}

// Seccomp sets the seccomp profile by name: off, basic or strict (custom
// comes with SeccompAllow).
func (b *Builder) Seccomp(profile string) *Builder {
	p, err := policy.ParseSeccomp(profile)
	if err != nil {
		b.errs = append(b.errs, err)
		return b
	}
	b.over.set |= fSeccomp
	b.over.seccomp, b.over.seccompAllow = p, nil
	return b
}

// SeccompAllow sets a custom seccomp allow-list.
func (b *Builder) SeccompAllow(syscalls ...string) *Builder {
	b.over.set |= fSeccomp
	b.over.seccomp, b.over.seccompAllow = policy.SeccompCustom, slices.Clone(syscalls)
	return b
}

// Network turns the network on (unrestricted) or off.
func (b *Builder) Network(on bool) *Builder {
	mode := policy.NetworkOff
	if on {
		mode = policy.NetworkOn
	}
	b.over.set |= fNetwork
	b.over.network, b.over.moreHosts = policy.Network{Mode: mode}, nil
	return b
}

// AllowHosts restricts the network to these hosts through the egress proxy,
// in addition to the hosts already allowed.
func (b *Builder) AllowHosts(hosts ...string) *Builder {
	o := &b.over
	if o.set&fNetwork == 0 {
		o.moreHosts = append(o.moreHosts, hosts...)
		return b
	}
	if o.network.Mode != policy.NetworkAllowlist {
		o.network = policy.Network{Mode: policy.NetworkAllowlist}
	}
	o.network.Allow = append(o.network.Allow, hosts...)
	return b
}

// ReadOnlyRoot makes the root file system read-only (and confined).
func (b *Builder) ReadOnlyRoot(on bool) *Builder {
	b.over.set |= fReadOnlyRoot
	b.over.readOnlyRoot = on
	return b
}

// Mount makes a host path visible at dest ("" = same path).
func (b *Builder) Mount(source, dest string, mode policy.Access) *Builder {
	if dest == "" {
		dest = source
	}
	b.over.mounts = append(b.over.mounts, policy.Mount{Source: source, Dest: dest, Mode: mode})
	return b
}

// Memory sets the memory limit in bytes.
func (b *Builder) Memory(bytes int64) *Builder {
	if bytes <= 0 {
		return b.fail("limits.memory", "must be positive, not %d", bytes)
	}
	b.over.set |= fMemory
	b.over.limits.Memory = policy.Size(bytes)
	return b
}

// CPUs sets the CPU limit in fractional cores.
func (b *Builder) CPUs(n float64) *Builder {
	if !(n > 0) || n > 1<<16 {
		return b.fail("limits.cpus", "must be a number of cores in (0, 65536], not %v", n)
	}
	b.over.set |= fCPUs
	b.over.limits.CPUs = n
	return b
}

// Pids sets the limit on processes and threads.
func (b *Builder) Pids(n int64) *Builder {
	if n <= 0 {
		return b.fail("limits.pids", "must be positive, not %d", n)
	}
	b.over.set |= fPids
	b.over.limits.Pids = n
	return b
}

// Timeout sets the wall-clock limit of each exec.
func (b *Builder) Timeout(d time.Duration) *Builder {
	if d <= 0 {
		return b.fail("limits.timeout", "must be positive, not %v", d)
	}
	b.over.set |= fTimeout
	b.over.limits.Timeout = policy.Duration(d)
	return b
}

// CPUTime sets the CPU-time limit of each exec.
func (b *Builder) CPUTime(d time.Duration) *Builder {
	if d <= 0 {
		return b.fail("limits.cpu_time", "must be positive, not %v", d)
	}
	b.over.set |= fCPUTime
	b.over.limits.CPUTime = policy.Duration(d)
	return b
}

// MaxOutput caps each of stdout and stderr.
func (b *Builder) MaxOutput(bytes int64) *Builder {
	if bytes <= 0 {
		return b.fail("limits.max_output", "must be positive, not %d", bytes)
	}
	b.over.set |= fMaxOutput
	b.over.limits.MaxOutput = policy.Size(bytes)
	return b
}

// Env sets an environment variable inside the sandbox.
func (b *Builder) Env(key, value string) *Builder {
	b.over.env = append(b.over.env, key, value)
	return b
}

// Workdir sets the working directory inside the sandbox.
func (b *Builder) Workdir(dir string) *Builder {
	b.over.set |= fWorkdir
	b.over.workdir = dir
	return b
}

// Hostname sets the sandbox's hostname.
func (b *Builder) Hostname(name string) *Builder {
	b.over.set |= fHostname
	b.over.hostname = name
	return b
}

// BestEffort runs with a lower score when a layer cannot be applied.
func (b *Builder) BestEffort(on bool) *Builder {
	b.over.set |= fBestEffort
	b.over.bestEffort = on
	return b
}

// MinScore refuses to run below this effective score.
func (b *Builder) MinScore(n int) *Builder {
	if n < 0 || n > 100 {
		return b.fail("min_score", "%d is outside 0..100", n)
	}
	b.minScore = n
	return b
}

// Hook registers a hook for the sandbox's events.
func (b *Builder) Hook(h lifecycle.Hook) *Builder {
	if h == nil {
		return b.fail("hooks", "nil hook")
	}
	b.hooks = append(b.hooks, h)
	return b
}

// HookTimeout bounds each hook call.
func (b *Builder) HookTimeout(d time.Duration) *Builder {
	if d < 0 {
		return b.fail("hook_timeout", "must not be negative, not %v", d)
	}
	b.hookWait = d
	return b
}

// Gate sets the gate policy (a copy: later changes to p do not apply).
func (b *Builder) Gate(p gate.Policy) *Builder {
	p = p.Clone()
	b.gatePolicy, b.gateOff = &p, false
	return b
}

// GateOff disables the externalization gate (results say "skipped").
// Registered secrets are still redacted wherever they appear.
func (b *Builder) GateOff() *Builder {
	b.gateOff = true
	return b
}

// Quarantine sets where quarantined output is kept.
func (b *Builder) Quarantine(q *quarantine.Store) *Builder {
	b.quarantine = q
	return b
}

// Secret injects a secret from store into every exec, as the binding says.
func (b *Builder) Secret(store *credential.Store, bind credential.Binding) *Builder {
	bind.Hosts = slices.Clone(bind.Hosts)
	b.creds = store
	b.secrets = append(b.secrets, bind)
	return b
}

// Audit records every event of the sandbox in the audit chain.
func (b *Builder) Audit(log *audit.Log) *Builder {
	b.audit = log
	return b
}

// Build returns the validated configuration. The configuration owns its
// memory: later setter calls, or another Build, do not change it.
func (b *Builder) Build() (Config, error) {
	if len(b.errs) > 0 {
		return Config{}, fmt.Errorf("%w: %w", ErrConfig, errors.Join(b.errs...))
	}
	// Field by field, not a composite literal: Go builds a literal in a
	// temporary and copies it with wide loads that the CPU cannot forward
	// from the narrow stores that just wrote it, a stall that cost more
	// than the rest of Build.
	var cfg Config
	cfg.Backend, cfg.MinScore, cfg.Hooks, cfg.HookTimeout = b.backend, b.minScore, b.hooks, b.hookWait
	cfg.Gate, cfg.GateOff, cfg.Quarantine, cfg.Credentials = b.gatePolicy, b.gateOff, b.quarantine, b.creds
	cfg.Secrets, cfg.Audit = b.secrets, b.audit
	cfg.ownBoundary() // the lists above are the builder's
	if b.hasBase {
		cfg.Policy = b.base.Clone()
	} else {
		cfg.Policy = policy.Strict()
	}
	b.over.apply(&cfg.Policy)
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}
