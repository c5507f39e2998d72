package kavach

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/kavach-sandbox/kavach/audit"
	"github.com/kavach-sandbox/kavach/backend"
	"github.com/kavach-sandbox/kavach/credential"
	"github.com/kavach-sandbox/kavach/gate"
	"github.com/kavach-sandbox/kavach/lifecycle"
)

// Quarantiner keeps withheld output until someone approves it. The
// quarantine package's Store implements it.
type Quarantiner interface {
	Put(ctx context.Context, sandboxID string, findings []gate.Finding, artifacts map[string][]byte) (string, error)
}

// ErrStdinConflict: a secret is injected on stdin and the exec also has stdin.
var ErrStdinConflict = errors.New("stdin is already used by a secret")

// newGate builds the sandbox's gate from its policy and registers every
// secret the sandbox can see, so that they are redacted wherever they appear.
func newGate(cfg *Config) (*gate.Gate, error) {
	if cfg.GateOff {
		return nil, nil
	}
	p := gate.DefaultPolicy()
	if cfg.Gate != nil {
		p = *cfg.Gate
	}
	g, err := gate.New(p)
	if err != nil {
		return nil, fmt.Errorf("%w: gate: %w", ErrConfig, err)
	}
	if cfg.Credentials != nil {
		for name, v := range cfg.Credentials.Values() {
			g.AddSecret(name, v)
			clear(v)
		}
	}
	return g, nil
}

// inject adds the configured secrets to one exec, each through its own
// channel only. The returned function wipes kavach's copies.
func (s *Sandbox) inject(req *backend.ExecRequest) (func(), error) {
	if len(s.cfg.Secrets) == 0 {
		return func() {}, nil
	}
	if s.cfg.Credentials == nil {
		return nil, fmt.Errorf("%w: secrets are bound but Config.Credentials is nil", ErrConfig)
	}
	inj, err := s.cfg.Credentials.Plan(s.cfg.Secrets)
	if err != nil {
		return nil, err
	}
	if len(inj.Proxy) > 0 {
		inj.Zero()
		return nil, fmt.Errorf("%w: secret substitution through the egress proxy is not available on %s",
			ErrLayerUnavailable, s.Backend())
	}
	req.Env = append(req.Env, inj.Env...)
	if inj.Stdin != nil {
		if req.Stdin != nil {
			inj.Zero()
			return nil, ErrStdinConflict
		}
		req.Stdin = bytes.NewReader(inj.Stdin)
	}
	if len(inj.FDs) > 0 {
		req.Files = inj.FDs
	}
	return inj.Zero, nil
}

// applyGate scans the result's output, then passes, redacts, quarantines
// or withholds it according to the gate policy.
func (s *Sandbox) applyGate(ctx context.Context, res *Result, stdout, stderr []byte) {
	if s.gate == nil {
		res.Gate = gate.SkippedReport()
		res.Stdout, res.Stderr = string(stdout), string(stderr)
		return
	}
	redOut, r1 := s.gate.Scan("stdout", stdout)
	redErr, r2 := s.gate.Scan("stderr", stderr)
	rep := gate.Merge(r1, r2)
	switch rep.Verdict {
	case gate.VerdictBlock:
		res.Status = StatusBlocked
	case gate.VerdictQuarantine:
		res.Status = StatusBlocked
		if s.cfg.Quarantine == nil {
			rep.Verdict = gate.VerdictBlock // nowhere to keep it: withhold for good
			break
		}
		id, err := s.cfg.Quarantine.Put(ctx, s.id, rep.Findings, map[string][]byte{"stdout": stdout, "stderr": stderr})
		if err != nil {
			rep.Verdict = gate.VerdictBlock
			s.emit(lifecycle.Event{Type: lifecycle.EventError, Details: map[string]any{"error": "quarantine: " + err.Error()}})
			break
		}
		rep.QuarantineID = id
	default:
		res.Stdout, res.Stderr = string(redOut), string(redErr)
	}
	res.Gate = rep
	s.emit(lifecycle.Event{Type: lifecycle.EventGate, Details: map[string]any{
		"verdict": string(rep.Verdict), "findings": rep.Findings, "quarantine_id": rep.QuarantineID}})
}

// auditHook appends every event of the sandbox to the audit chain. Event
// details never hold secret values; the log's redactor scrubs registered
// secrets as a second line of defence.
func auditHook(log *audit.Log) lifecycle.Hook {
	return func(e lifecycle.Event) {
		_, _ = log.Append(context.Background(), string(e.Type), e.SandboxID, e)
	}
}

// secretRedactor returns the audit redactor for the configured secrets.
func secretRedactor(store *credential.Store) func([]byte) []byte {
	if store == nil {
		return nil
	}
	r := audit.NewSecretRedactor(store.Values())
	return r.Redact
}
