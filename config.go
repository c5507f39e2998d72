package kavach

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
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
// NewConfig, or fill it in and call Validate. In a Config filled in by
// hand, an empty Backend means DefaultBackend and a zero Policy (no field
// set at all) the strict preset, the defaults of NewConfig.
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
	// Registered secrets (Credentials) are still redacted from output and
	// exported files, with a "registered-secret" finding (verdict "warn").
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

// Validate checks the configuration; errors name the field. It fills in
// defaults (the backend; the strict policy for a zero one; the allowlist
// hosts of proxy-bound secrets), so it writes to c: New and NewPool
// validate a copy and leave the caller's Config untouched.
func (c *Config) Validate() error {
	if c.Backend == "" {
		c.Backend = DefaultBackend
	}
	// Every valid policy names a seccomp profile: test that before the
	// (slower) reflection.
	if c.Policy.Seccomp == 0 && reflect.ValueOf(c.Policy).IsZero() {
		c.Policy = policy.Strict()
	}
	if _, err := backend.ParseName(string(c.Backend)); err != nil {
		return fmt.Errorf("%w: backend: %w", ErrConfig, err)
	}
	if c.MinScore < 0 || c.MinScore > 100 {
		return fmt.Errorf("%w: min_score: %d is outside 0..100", ErrConfig, c.MinScore)
	}
	if err := c.validateBoundary(); err != nil {
		return err
	}
	if c.Gate != nil {
		if err := c.Gate.Validate(); err != nil {
			return fmt.Errorf("%w: gate: %w", ErrConfig, err)
		}
	}
	if err := proxyHosts(&c.Policy, c.Secrets); err != nil {
		return err
	}
	if err := c.Policy.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return nil
}

// validateBoundary checks the hooks and the secret bindings.
func (c *Config) validateBoundary() error {
	if c.HookTimeout < 0 {
		return fmt.Errorf("%w: hook_timeout: must not be negative", ErrConfig)
	}
	for i, h := range c.Hooks {
		if h == nil {
			return fmt.Errorf("%w: hooks[%d]: nil hook", ErrConfig, i)
		}
	}
	if len(c.Secrets) > 0 && c.Credentials == nil {
		return fmt.Errorf("%w: credentials: secrets are bound but no credential store is set", ErrConfig)
	}
	for i, b := range c.Secrets {
		if err := b.Validate(); err != nil {
			return fmt.Errorf("%w: secrets[%d]: %w", ErrConfig, i, err)
		}
	}
	if i, err := credential.CheckConflicts(c.Secrets); err != nil {
		return fmt.Errorf("%w: secrets[%d]: %w", ErrConfig, i, err)
	}
	return nil
}

// clone returns a deep copy of c: its policy, hooks, gate policy, secret
// bindings and egress ranges are the copy's own, so that validating or
// running it neither writes to c's memory nor sees later changes to it.
// The stores, logs and certificate pool it points to are shared, as they
// are meant to be.
func (c *Config) clone() Config {
	out := *c
	out.Policy = c.Policy.Clone()
	out.ownBoundary()
	return out
}

// ownBoundary replaces c's hooks, gate policy, secret bindings and egress
// ranges with copies. Lists that are empty stay nil: nothing is allocated
// for a configuration without them.
func (c *Config) ownBoundary() {
	c.Hooks = slices.Clone(c.Hooks)
	if c.Gate != nil {
		g := c.Gate.Clone()
		c.Gate = &g
	}
	c.Secrets = slices.Clone(c.Secrets)
	for i := range c.Secrets {
		c.Secrets[i].Hosts = slices.Clone(c.Secrets[i].Hosts)
	}
	c.Egress.AllowPrivate = slices.Clone(c.Egress.AllowPrivate)
}

// ErrConfig is wrapped by every configuration error.
var ErrConfig = errors.New("invalid configuration")
