package kavach

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/kavach-sandbox/kavach/audit"
	"github.com/kavach-sandbox/kavach/backend"
	"github.com/kavach-sandbox/kavach/credential"
	"github.com/kavach-sandbox/kavach/egress"
	"github.com/kavach-sandbox/kavach/gate"
	"github.com/kavach-sandbox/kavach/lifecycle"
	"github.com/kavach-sandbox/kavach/policy"
)

// ErrStdinConflict: a secret is injected on stdin and the exec also has stdin.
var ErrStdinConflict = errors.New("stdin is already used by a secret")

// newGate builds the sandbox's gate from its policy and registers every
// secret the sandbox can see, so that they are redacted wherever they appear.
// With the gate turned off it returns a gate that looks only for those
// secrets, or nil when there are none: registered secrets are redacted
// whatever the gate's setting.
func newGate(cfg *Config) (*gate.Gate, error) {
	var g *gate.Gate
	switch {
	case cfg.GateOff && cfg.Credentials == nil:
		return nil, nil
	case cfg.GateOff:
		g = gate.NewSecretsOnly()
	default:
		p := gate.DefaultPolicy()
		if cfg.Gate != nil {
			p = *cfg.Gate
		}
		var err error
		if g, err = gate.New(p); err != nil {
			return nil, fmt.Errorf("%w: gate: %w", ErrConfig, err)
		}
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
	direct := directBindings(s.cfg.Secrets)
	if len(direct) == 0 {
		return func() {}, nil
	}
	inj, err := s.cfg.Credentials.Plan(direct)
	if err != nil {
		return nil, err
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
	if s.cfg.GateOff && len(rep.Findings) == 0 {
		rep = gate.SkippedReport() // only registered secrets were looked for
	}
	switch rep.Verdict {
	case gate.VerdictBlock:
		res.Status = StatusBlocked
	case gate.VerdictQuarantine:
		res.Status = StatusBlocked
		if s.cfg.Quarantine == nil {
			rep.Verdict = gate.VerdictBlock // nowhere to keep it: withhold for good
			break
		}
		item, err := s.cfg.Quarantine.Put(ctx, s.id, rep.Findings, map[string][]byte{"stdout": s.scrub(stdout), "stderr": s.scrub(stderr)})
		if err != nil {
			rep.Verdict = gate.VerdictBlock
			s.emit(lifecycle.Event{Type: lifecycle.EventError, Details: map[string]any{"error": "quarantine: " + err.Error()}})
			break
		}
		rep.QuarantineID = item.ID
	default:
		res.Stdout, res.Stderr = string(redOut), string(redErr)
	}
	res.Gate = rep
	s.emit(lifecycle.Event{Type: lifecycle.EventGate, Details: map[string]any{
		"verdict": string(rep.Verdict), "findings": rep.Findings, "quarantine_id": rep.QuarantineID}})
}

// scrub removes registered secrets from bytes about to be kept on disk
// (quarantine): a secret is never written to a file, even for review.
func (s *Sandbox) scrub(b []byte) []byte {
	if s.redact == nil {
		return b
	}
	return s.redact(b)
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

// directBindings are the secrets the payload receives itself; proxy
// bindings stay outside and are substituted by the egress proxy.
func directBindings(all []credential.Binding) []credential.Binding {
	var out []credential.Binding
	for _, b := range all {
		if b.Method != credential.MethodProxy {
			out = append(out, b)
		}
	}
	return out
}

// proxyHosts opens the network to the hosts that proxy-bound secrets name:
// such a secret needs the egress proxy, so a policy without network gets an
// allowlist of exactly those hosts. Unrestricted networking is refused:
// traffic would not go through the proxy.
func proxyHosts(p *policy.Policy, binds []credential.Binding) error {
	for _, b := range binds {
		if b.Method != credential.MethodProxy {
			continue
		}
		switch p.Network.Mode {
		case policy.NetworkOn:
			return fmt.Errorf("%w: secret %s is bound to hosts, which needs the network allowlist, not unrestricted network", ErrConfig, b.Name)
		case policy.NetworkOff:
			p.Network = policy.Network{Mode: policy.NetworkAllowlist}
		}
		for _, h := range b.Hosts {
			if !slices.Contains(p.Network.Allow, h) {
				// Clip: never append into an array another policy may share.
				p.Network.Allow = append(slices.Clip(p.Network.Allow), h)
			}
		}
	}
	return nil
}

// egressSpec builds the proxy's substitutions: each proxy-bound secret is
// replaced in the sandbox by a random placeholder of the same shape, in the
// environment variable named after the secret, and the proxy swaps it back
// only in requests to the secret's hosts.
func egressSpec(cfg *Config, onEvent func(egress.Event)) (backend.Egress, []string, error) {
	e := backend.Egress{OnEvent: onEvent, Resolve: cfg.Egress.Resolve, AllowPrivate: cfg.Egress.AllowPrivate,
		UpstreamRoots: cfg.Egress.UpstreamRoots}
	var proxied []credential.Binding
	for _, b := range cfg.Secrets {
		if b.Method == credential.MethodProxy {
			proxied = append(proxied, b)
		}
	}
	if len(proxied) == 0 {
		return e, nil, nil
	}
	if cfg.Credentials == nil {
		return e, nil, fmt.Errorf("%w: secrets are bound but Config.Credentials is nil", ErrConfig)
	}
	inj, err := cfg.Credentials.Plan(proxied)
	if err != nil {
		return e, nil, err
	}
	defer inj.Zero()
	var env []string
	for _, ps := range inj.Proxy {
		sub := egress.Substitution{Placeholder: egress.GeneratePlaceholder(ps.Value), Secret: slices.Clone(ps.Value)}
		for _, h := range ps.Hosts {
			r, err := egress.ParseRule(h)
			if err != nil {
				return e, nil, fmt.Errorf("%w: secret %s: %w", ErrConfig, ps.Name, err)
			}
			sub.Hosts = append(sub.Hosts, r)
		}
		e.Substitutions = append(e.Substitutions, sub)
		env = append(env, ps.Name+"="+sub.Placeholder)
	}
	return e, env, nil
}

// DefaultExportLimit caps an exported file when the gate policy sets no
// maximum artifact size.
const DefaultExportLimit = 64 << 20

// Exported is a file handed out of a sandbox through the gate.
type Exported struct {
	// Path is the file's path inside the sandbox.
	Path string
	// Data is the content after the gate: redacted on warn, nil when the
	// gate blocked or quarantined it.
	Data []byte
	// Gate is the gate's verdict on the file.
	Gate gate.Report
}

// ErrExportUnsupported: the backend cannot hand files out.
var ErrExportUnsupported = errors.New("backend cannot export files")

// Export copies a file out of the sandbox. Like stdout and stderr, it is
// scanned first, and passed, redacted, quarantined or withheld.
func (s *Sandbox) Export(ctx context.Context, path string) (*Exported, error) {
	if st := s.fsm.State(); st == lifecycle.Destroyed || st == lifecycle.Created {
		return nil, fmt.Errorf("%w: export from sandbox %s: sandbox is %s", lifecycle.ErrWrongState, s.id, st)
	}
	fr, ok := s.inst.(backend.FileReader)
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrExportUnsupported, s.Backend())
	}
	limit := int64(DefaultExportLimit)
	if s.cfg.Gate != nil && s.cfg.Gate.MaxArtifactSize > 0 {
		limit = s.cfg.Gate.MaxArtifactSize
	}
	data, err := fr.ReadFile(ctx, path, limit)
	if err != nil {
		return nil, fmt.Errorf("export %s from sandbox %s: %w", path, s.id, err)
	}
	out := &Exported{Path: path}
	if s.gate == nil {
		out.Data, out.Gate = data, gate.SkippedReport()
		return out, nil
	}
	red, rep := s.gate.Scan("file:"+path, data)
	if s.cfg.GateOff && len(rep.Findings) == 0 {
		rep = gate.SkippedReport() // only registered secrets were looked for
	}
	switch rep.Verdict {
	case gate.VerdictBlock:
	case gate.VerdictQuarantine:
		if s.cfg.Quarantine == nil {
			rep.Verdict = gate.VerdictBlock
			break
		}
		item, err := s.cfg.Quarantine.Put(ctx, s.id, rep.Findings, map[string][]byte{"file:" + path: s.scrub(data)})
		if err != nil {
			rep.Verdict = gate.VerdictBlock
			break
		}
		rep.QuarantineID = item.ID
	default:
		out.Data = red
	}
	out.Gate = rep
	s.emit(lifecycle.Event{Type: lifecycle.EventGate, Details: map[string]any{
		"artifact": "file:" + path, "verdict": string(rep.Verdict), "findings": rep.Findings, "quarantine_id": rep.QuarantineID}})
	return out, nil
}
