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
	if err := c.validateBoundary(); err != nil {
		return err
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
	return nil
}

// ErrConfig is wrapped by every configuration error.
var ErrConfig = errors.New("invalid configuration")
