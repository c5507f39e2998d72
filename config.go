package kavach

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/kavach-sandbox/kavach/audit"
	"github.com/kavach-sandbox/kavach/backend"
	"github.com/kavach-sandbox/kavach/credential"
	"github.com/kavach-sandbox/kavach/gate"
	"github.com/kavach-sandbox/kavach/lifecycle"
	"github.com/kavach-sandbox/kavach/policy"
	"github.com/kavach-sandbox/kavach/quarantine"
)

// Backend names, re-exported for the builder.
const (
	Noop        = backend.Noop
	Process     = backend.Process
	OCI         = backend.OCI
	WASM        = backend.WASM
	GVisor      = backend.GVisor
	SGX         = backend.SGX
	SEV         = backend.SEV
	Firecracker = backend.Firecracker
	Auto        = backend.Auto
)

// DefaultBackend is used when a configuration names none.
const DefaultBackend = backend.Process

// Config is a complete, validated sandbox configuration. Build one with
// NewConfig, or fill it in and call Validate.
type Config struct {
	// Backend is the isolation backend; Auto picks the strongest available.
	Backend backend.Name
	// Policy is what the sandbox may do.
	Policy policy.Policy
	// MinScore refuses to run when the effective score would be lower.
	MinScore int
	// Hooks receive this sandbox's events (global hooks: AddHook).
	Hooks []lifecycle.Hook
	// HookTimeout bounds each hook call (default lifecycle.DefaultHookTimeout).
	HookTimeout time.Duration

	// Gate is the externalization gate's policy; nil means the default
	// (critical → block, high → quarantine, medium/low → warn and redact).
	Gate *gate.Policy
	// GateOff disables the gate; results then say "verdict": "skipped".
	GateOff bool
	// Quarantine keeps quarantined output; without one it is blocked.
	Quarantine *quarantine.Store
	// Credentials holds the secrets that Secrets inject.
	Credentials *credential.Store
	// Secrets are injected into every exec, each through its own channel.
	Secrets []credential.Binding
	// Audit, when set, receives every event of the sandbox.
	Audit *audit.Log
	// Egress adjusts the egress proxy of an allowlist policy.
	Egress EgressOptions
}

// EgressOptions override how the egress proxy resolves names, which private
// ranges it may reach and which upstream certificates it trusts. They exist
// for tests and private deployments; the zero value uses the host's own.
type EgressOptions struct {
	Resolve       func(ctx context.Context, host string) ([]netip.Addr, error)
	AllowPrivate  []netip.Prefix
	UpstreamRoots *x509.CertPool
}

// Validate checks the configuration; errors name the field.
func (c *Config) Validate() error {
	if c.Backend == "" {
		c.Backend = DefaultBackend
	}
	if _, err := backend.ParseName(string(c.Backend)); err != nil {
		return fmt.Errorf("%w: backend: %w", ErrConfig, err)
	}
	if c.MinScore < 0 || c.MinScore > 100 {
		return fmt.Errorf("%w: min_score: %d is outside 0..100", ErrConfig, c.MinScore)
	}
	if err := proxyHosts(&c.Policy, c.Secrets); err != nil {
		return err
	}
	if err := c.Policy.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return nil
}

// ErrConfig is wrapped by every configuration error.
var ErrConfig = errors.New("invalid configuration")

// Builder builds a Config fluently:
//
//	cfg, err := kavach.NewConfig().Backend(kavach.GVisor).Seccomp("strict").Network(false).Build()
//
// Order rule: Policy sets the base policy (default: strict) and may be
// called at any point; every other setter is an override that Build applies
// on top of that base, in call order. So Policy never undoes an earlier
// Memory or Seccomp call, and when a setter is called twice the last call
// wins. Invalid values are reported by Build, naming the field.
type Builder struct {
	backend   backend.Name
	base      policy.Policy
	overrides []func(*policy.Policy)
	minScore  int
	hooks     []lifecycle.Hook
	hookWait  time.Duration
	errs      []error

	gatePolicy *gate.Policy
	gateOff    bool
	quarantine *quarantine.Store
	creds      *credential.Store
	secrets    []credential.Binding
	audit      *audit.Log
}

// NewConfig starts a builder with the default backend and the strict policy.
func NewConfig() *Builder {
	return &Builder{backend: DefaultBackend, base: policy.Strict()}
}

func (b *Builder) fail(field, format string, a ...any) *Builder {
	b.errs = append(b.errs, &policy.FieldError{Field: field, Msg: fmt.Sprintf(format, a...)})
	return b
}

func (b *Builder) override(f func(*policy.Policy)) *Builder {
	b.overrides = append(b.overrides, f)
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
	b.base = p.Clone()
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

// Seccomp sets the seccomp profile: off, basic or strict.
func (b *Builder) Seccomp(profile string) *Builder {
	return b.override(func(p *policy.Policy) { p.Seccomp, p.SeccompAllow = profile, nil })
}

// SeccompAllow sets a custom seccomp allow-list.
func (b *Builder) SeccompAllow(syscalls ...string) *Builder {
	return b.override(func(p *policy.Policy) {
		p.Seccomp, p.SeccompAllow = policy.SeccompCustom, append([]string(nil), syscalls...)
	})
}

// Network turns the network on (unrestricted) or off.
func (b *Builder) Network(on bool) *Builder {
	mode := policy.NetworkOff
	if on {
		mode = policy.NetworkOn
	}
	return b.override(func(p *policy.Policy) { p.Network = policy.Network{Mode: mode} })
}

// AllowHosts restricts the network to these hosts through the egress proxy.
func (b *Builder) AllowHosts(hosts ...string) *Builder {
	return b.override(func(p *policy.Policy) {
		if p.Network.Mode != policy.NetworkAllowlist {
			p.Network = policy.Network{Mode: policy.NetworkAllowlist}
		}
		p.Network.Allow = append(p.Network.Allow, hosts...)
	})
}

// ReadOnlyRoot makes the root file system read-only (and confined).
func (b *Builder) ReadOnlyRoot(on bool) *Builder {
	return b.override(func(p *policy.Policy) { p.Filesystem.ReadOnlyRoot = on })
}

// Mount makes a host path visible at dest ("" = same path).
func (b *Builder) Mount(source, dest string, mode policy.Access) *Builder {
	if dest == "" {
		dest = source
	}
	return b.override(func(p *policy.Policy) {
		p.Filesystem.Mounts = append(p.Filesystem.Mounts, policy.Mount{Source: source, Dest: dest, Mode: mode})
	})
}

// Memory sets the memory limit in bytes.
func (b *Builder) Memory(bytes int64) *Builder {
	if bytes <= 0 {
		return b.fail("memory", "must be positive, not %d", bytes)
	}
	return b.override(func(p *policy.Policy) { p.Limits.Memory = policy.Size(bytes) })
}

// CPUs sets the CPU limit in fractional cores.
func (b *Builder) CPUs(n float64) *Builder {
	if !(n > 0) {
		return b.fail("cpus", "must be positive, not %v", n)
	}
	return b.override(func(p *policy.Policy) { p.Limits.CPUs = n })
}

// Pids sets the limit on processes and threads.
func (b *Builder) Pids(n int64) *Builder {
	if n <= 0 {
		return b.fail("pids", "must be positive, not %d", n)
	}
	return b.override(func(p *policy.Policy) { p.Limits.Pids = n })
}

// Timeout sets the wall-clock limit of each exec.
func (b *Builder) Timeout(d time.Duration) *Builder {
	if d <= 0 {
		return b.fail("timeout", "must be positive, not %v", d)
	}
	return b.override(func(p *policy.Policy) { p.Limits.Timeout = policy.Duration(d) })
}

// CPUTime sets the CPU-time limit of each exec.
func (b *Builder) CPUTime(d time.Duration) *Builder {
	if d <= 0 {
		return b.fail("cpu_time", "must be positive, not %v", d)
	}
	return b.override(func(p *policy.Policy) { p.Limits.CPUTime = policy.Duration(d) })
}

// MaxOutput caps each of stdout and stderr.
func (b *Builder) MaxOutput(bytes int64) *Builder {
	if bytes <= 0 {
		return b.fail("max_output", "must be positive, not %d", bytes)
	}
	return b.override(func(p *policy.Policy) { p.Limits.MaxOutput = policy.Size(bytes) })
}

// Env sets an environment variable inside the sandbox.
func (b *Builder) Env(key, value string) *Builder {
	return b.override(func(p *policy.Policy) {
		if p.Env == nil {
			p.Env = map[string]string{}
		}
		p.Env[key] = value
	})
}

// Workdir sets the working directory inside the sandbox.
func (b *Builder) Workdir(dir string) *Builder {
	return b.override(func(p *policy.Policy) { p.Workdir = dir })
}

// Hostname sets the sandbox's hostname.
func (b *Builder) Hostname(name string) *Builder {
	return b.override(func(p *policy.Policy) { p.Hostname = name })
}

// BestEffort runs with a lower score when a layer cannot be applied.
func (b *Builder) BestEffort(on bool) *Builder {
	return b.override(func(p *policy.Policy) { p.BestEffort = on })
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
	b.hooks = append(b.hooks, h)
	return b
}

// HookTimeout bounds each hook call.
func (b *Builder) HookTimeout(d time.Duration) *Builder {
	b.hookWait = d
	return b
}

// Gate sets the gate policy.
func (b *Builder) Gate(p gate.Policy) *Builder {
	b.gatePolicy, b.gateOff = &p, false
	return b
}

// GateOff disables the externalization gate (results say "skipped").
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
	b.creds = store
	b.secrets = append(b.secrets, bind)
	return b
}

// Audit records every event of the sandbox in the audit chain.
func (b *Builder) Audit(log *audit.Log) *Builder {
	b.audit = log
	return b
}

// Build returns the validated configuration.
func (b *Builder) Build() (Config, error) {
	if len(b.errs) > 0 {
		return Config{}, fmt.Errorf("%w: %w", ErrConfig, errors.Join(b.errs...))
	}
	p := b.base.Clone()
	for _, f := range b.overrides {
		f(&p)
	}
	cfg := Config{Backend: b.backend, Policy: p, MinScore: b.minScore, Hooks: append([]lifecycle.Hook(nil), b.hooks...),
		HookTimeout: b.hookWait, Gate: b.gatePolicy, GateOff: b.gateOff, Quarantine: b.quarantine,
		Credentials: b.creds, Secrets: append([]credential.Binding(nil), b.secrets...), Audit: b.audit}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}
