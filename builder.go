package kavach

import (
	"errors"
	"fmt"
	"math"
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
// on top of that base, in call order. So Policy never undoes an earlier
// Memory or Seccomp call, and when a setter is called twice the last call
// wins. Invalid values are reported by Build, naming the field.
type Builder struct {
	backend  backend.Name
	base     policy.Policy
	ops      []op
	opsBuf   [4]op // the first overrides need no allocation of their own
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

// opKind names a policy override.
type opKind uint8

const (
	opSeccomp opKind = iota
	opSeccompAllow
	opNetwork
	opAllowHosts
	opReadOnlyRoot
	opMount
	opMemory
	opCPUs
	opPids
	opTimeout
	opCPUTime
	opMaxOutput
	opEnv
	opWorkdir
	opHostname
	opBestEffort
)

// op is one recorded override; which fields it uses depends on kind
// (booleans are n != 0, CPU counts are float64 bits in n).
type op struct {
	kind opKind
	s, t string
	n    int64
	list []string
}

// apply performs the override on p.
func (o *op) apply(p *policy.Policy) {
	switch o.kind {
	case opSeccomp:
		p.Seccomp, p.SeccompAllow = o.s, nil
	case opSeccompAllow:
		p.Seccomp, p.SeccompAllow = policy.SeccompCustom, append([]string(nil), o.list...)
	case opNetwork:
		p.Network = policy.Network{Mode: policy.NetworkMode(o.s)}
	case opAllowHosts:
		if p.Network.Mode != policy.NetworkAllowlist {
			p.Network = policy.Network{Mode: policy.NetworkAllowlist}
		}
		p.Network.Allow = append(p.Network.Allow, o.list...)
	case opReadOnlyRoot:
		p.Filesystem.ReadOnlyRoot = o.n != 0
	case opMount:
		p.Filesystem.Mounts = append(p.Filesystem.Mounts, policy.Mount{Source: o.s, Dest: o.t, Mode: policy.Access(o.list[0])})
	case opMemory:
		p.Limits.Memory = policy.Size(o.n)
	case opCPUs:
		p.Limits.CPUs = math.Float64frombits(uint64(o.n))
	case opPids:
		p.Limits.Pids = o.n
	case opTimeout:
		p.Limits.Timeout = policy.Duration(o.n)
	case opCPUTime:
		p.Limits.CPUTime = policy.Duration(o.n)
	case opMaxOutput:
		p.Limits.MaxOutput = policy.Size(o.n)
	case opEnv:
		if p.Env == nil {
			p.Env = map[string]string{}
		}
		p.Env[o.s] = o.t
	case opWorkdir:
		p.Workdir = o.s
	case opHostname:
		p.Hostname = o.s
	case opBestEffort:
		p.BestEffort = o.n != 0
	}
}

// NewConfig starts a builder with the default backend and the strict policy.
func NewConfig() *Builder {
	b := &Builder{backend: DefaultBackend, base: policy.Strict()}
	b.ops = b.opsBuf[:0]
	return b
}

func (b *Builder) fail(field, format string, a ...any) *Builder {
	b.errs = append(b.errs, &policy.FieldError{Field: field, Msg: fmt.Sprintf(format, a...)})
	return b
}

func (b *Builder) add(o op) *Builder {
	b.ops = append(b.ops, o)
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
func (b *Builder) Seccomp(profile string) *Builder { return b.add(op{kind: opSeccomp, s: profile}) }

// SeccompAllow sets a custom seccomp allow-list.
func (b *Builder) SeccompAllow(syscalls ...string) *Builder {
	return b.add(op{kind: opSeccompAllow, list: append([]string(nil), syscalls...)})
}

// Network turns the network on (unrestricted) or off.
func (b *Builder) Network(on bool) *Builder {
	mode := policy.NetworkOff
	if on {
		mode = policy.NetworkOn
	}
	return b.add(op{kind: opNetwork, s: string(mode)})
}

// AllowHosts restricts the network to these hosts through the egress proxy.
func (b *Builder) AllowHosts(hosts ...string) *Builder {
	return b.add(op{kind: opAllowHosts, list: append([]string(nil), hosts...)})
}

// ReadOnlyRoot makes the root file system read-only (and confined).
func (b *Builder) ReadOnlyRoot(on bool) *Builder {
	return b.add(op{kind: opReadOnlyRoot, n: boolInt(on)})
}

// Mount makes a host path visible at dest ("" = same path).
func (b *Builder) Mount(source, dest string, mode policy.Access) *Builder {
	if dest == "" {
		dest = source
	}
	return b.add(op{kind: opMount, s: source, t: dest, list: []string{string(mode)}})
}

// Memory sets the memory limit in bytes.
func (b *Builder) Memory(bytes int64) *Builder {
	if bytes <= 0 {
		return b.fail("memory", "must be positive, not %d", bytes)
	}
	return b.add(op{kind: opMemory, n: bytes})
}

// CPUs sets the CPU limit in fractional cores.
func (b *Builder) CPUs(n float64) *Builder {
	if !(n > 0) || n > 1<<16 {
		return b.fail("cpus", "must be positive, not %v", n)
	}
	return b.add(op{kind: opCPUs, n: int64(math.Float64bits(n))})
}

// Pids sets the limit on processes and threads.
func (b *Builder) Pids(n int64) *Builder {
	if n <= 0 {
		return b.fail("pids", "must be positive, not %d", n)
	}
	return b.add(op{kind: opPids, n: n})
}

// Timeout sets the wall-clock limit of each exec.
func (b *Builder) Timeout(d time.Duration) *Builder {
	if d <= 0 {
		return b.fail("timeout", "must be positive, not %v", d)
	}
	return b.add(op{kind: opTimeout, n: int64(d)})
}

// CPUTime sets the CPU-time limit of each exec.
func (b *Builder) CPUTime(d time.Duration) *Builder {
	if d <= 0 {
		return b.fail("cpu_time", "must be positive, not %v", d)
	}
	return b.add(op{kind: opCPUTime, n: int64(d)})
}

// MaxOutput caps each of stdout and stderr.
func (b *Builder) MaxOutput(bytes int64) *Builder {
	if bytes <= 0 {
		return b.fail("max_output", "must be positive, not %d", bytes)
	}
	return b.add(op{kind: opMaxOutput, n: bytes})
}

// Env sets an environment variable inside the sandbox.
func (b *Builder) Env(key, value string) *Builder { return b.add(op{kind: opEnv, s: key, t: value}) }

// Workdir sets the working directory inside the sandbox.
func (b *Builder) Workdir(dir string) *Builder { return b.add(op{kind: opWorkdir, s: dir}) }

// Hostname sets the sandbox's hostname.
func (b *Builder) Hostname(name string) *Builder { return b.add(op{kind: opHostname, s: name}) }

// BestEffort runs with a lower score when a layer cannot be applied.
func (b *Builder) BestEffort(on bool) *Builder { return b.add(op{kind: opBestEffort, n: boolInt(on)}) }

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
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
	cfg := Config{Backend: b.backend, Policy: b.base.Clone(), MinScore: b.minScore, HookTimeout: b.hookWait,
		Gate: b.gatePolicy, GateOff: b.gateOff, Quarantine: b.quarantine, Credentials: b.creds, Audit: b.audit}
	for i := range b.ops {
		b.ops[i].apply(&cfg.Policy)
	}
	if len(b.hooks) > 0 {
		cfg.Hooks = append([]lifecycle.Hook(nil), b.hooks...)
	}
	if len(b.secrets) > 0 {
		cfg.Secrets = append([]credential.Binding(nil), b.secrets...)
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}
