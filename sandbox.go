package kavach

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode"

	"github.com/kavach-sandbox/kavach/backend"
	"github.com/kavach-sandbox/kavach/egress"
	"github.com/kavach-sandbox/kavach/gate"
	"github.com/kavach-sandbox/kavach/lifecycle"
	"github.com/kavach-sandbox/kavach/policy"
	"github.com/kavach-sandbox/kavach/score"
)

// Sandbox is one isolated environment. It is safe for concurrent use.
type Sandbox struct {
	id     string
	cfg    Config
	driver backend.Driver
	inst   backend.Instance
	score  score.Score
	fsm    lifecycle.FSM
	hooks  lifecycle.Dispatcher
	gate   *gate.Gate
	// redact removes registered secret values (and their encodings) from
	// bytes kavach keeps: quarantined output, audit entries.
	redact func([]byte) []byte

	// life ends when the sandbox stops or is destroyed, cancelling the
	// execs in flight.
	life    context.Context
	endLife context.CancelFunc
}

// New creates a sandbox in the created state. The sandbox keeps a deep copy
// of cfg: changing cfg afterwards, even inside its slices, maps and gate
// policy, does not change the sandbox. It refuses with an error
// wrapping ErrUnavailable, ErrLayerUnavailable or ErrScoreTooLow when the
// backend cannot run here, cannot apply the policy, or would score below
// Config.MinScore.
func New(ctx context.Context, cfg Config) (*Sandbox, error) {
	cleanupStale(ctx)
	cfg = cfg.clone() // the sandbox owns its configuration; the caller keeps theirs
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	d, err := backend.Resolve(ctx, cfg.Backend, &cfg.Policy)
	if err != nil {
		return nil, err
	}
	info := d.Info()
	if cp, ok := d.(backend.CreateProver); !ok || !cp.CreateProves() {
		if a := d.Probe(ctx); !a.Available {
			return nil, fmt.Errorf("%w: %s: %s", ErrUnavailable, info.Name, a.Reason)
		}
	}
	if decl := score.Declared(info.ScoreBackend(), &cfg.Policy, d.Capabilities()).Value; decl < cfg.MinScore {
		return nil, fmt.Errorf("%w: %s scores %d (%s), minimum is %d", ErrScoreTooLow, info.Name, decl, score.Label(decl), cfg.MinScore)
	}
	g, err := newGate(&cfg)
	if err != nil {
		return nil, err
	}
	s := &Sandbox{id: newID(), cfg: cfg, driver: d, gate: g}
	s.life, s.endLife = context.WithCancel(context.Background())
	s.hooks.Timeout = cfg.HookTimeout
	s.redact = secretRedactor(cfg.Credentials)
	if cfg.Audit != nil {
		if s.redact != nil {
			cfg.Audit.SetRedact(s.redact)
		}
		s.hooks.Add(auditHook(cfg.Audit))
	}
	for _, h := range cfg.Hooks {
		s.hooks.Add(h)
	}
	eg, placeholders, err := egressSpec(&cfg, s.networkEvent)
	if err != nil {
		return nil, err
	}
	spec := &backend.Spec{ID: s.id, Policy: cfg.Policy, Env: append(baseEnv(&cfg.Policy), placeholders...),
		BestEffort: cfg.Policy.BestEffort, Egress: eg}
	inst, err := d.Create(ctx, spec)
	if err != nil {
		s.endLife()
		return nil, wrapf(err, "create %s sandbox", info.Name)
	}
	s.inst = inst
	if err := s.checkEnforcement(); err != nil {
		s.endLife()
		_ = inst.Destroy(context.WithoutCancel(ctx))
		return nil, err
	}
	s.emit(lifecycle.Event{Type: lifecycle.EventTransition, To: lifecycle.Created.String(),
		Details: map[string]any{"score": s.score.String(), "policy": cfg.Policy.Name}})
	return s, nil
}

// checkEnforcement computes the effective score from what the backend
// applied and refuses lost layers (unless best-effort) and low scores.
func (s *Sandbox) checkEnforcement() error {
	enf := s.inst.Enforcement()
	s.score = score.Compute(s.driver.Info().ScoreBackend(), score.Asked(&s.cfg.Policy), enf.Layers, enf.Lost)
	if lost := lostLayers(s.score, s.driver.Info()); len(lost) > 0 && !s.cfg.Policy.BestEffort && s.driver.Info().Name != backend.Noop {
		return fmt.Errorf("%w on %s: %s (set best_effort to run with a lower score)",
			ErrLayerUnavailable, s.driver.Info().Name, strings.Join(lost, "; "))
	}
	if s.score.Value < s.cfg.MinScore {
		return fmt.Errorf("%w: effective score %s, minimum is %d", ErrScoreTooLow, s.score, s.cfg.MinScore)
	}
	return nil
}

// lostLayers lists the asked modifiers that were not applied, with reasons.
// A seccomp profile is only required where the payload shares the host
// kernel: a backend with a kernel of its own (gVisor, a VM) or none at all
// (WebAssembly) loses its points but is not refused.
func lostLayers(sc score.Score, info backend.Info) []string {
	var out []string
	for _, m := range sc.Modifiers() {
		seccomp := m.Name == score.ModSeccompBasic || m.Name == score.ModSeccompStrict
		if seccomp && !info.SharedKernel {
			continue
		}
		if m.Points > 0 && !m.Applied && strings.HasPrefix(m.Reason, "requested") {
			out = append(out, m.Name+": "+m.Reason)
		}
	}
	return out
}

// baseEnv is the environment every exec starts from: a sane PATH, HOME and
// LANG, the host environment only when the policy asks, then policy.Env.
func baseEnv(p *policy.Policy) []string {
	m := map[string]string{
		"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME": workdirOf(p),
		"LANG": "C.UTF-8",
	}
	if p.InheritEnv {
		for _, kv := range os.Environ() {
			if k, v, ok := strings.Cut(kv, "="); ok {
				m[k] = v
			}
		}
	}
	for k, v := range p.Env {
		m[k] = v
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	env := make([]string, len(keys))
	for i, k := range keys {
		env[i] = k + "=" + m[k]
	}
	return env
}

func workdirOf(p *policy.Policy) string {
	if p.Workdir != "" {
		return p.Workdir
	}
	return policy.WorkDir
}

// networkEvent reports a decision of the egress proxy to the hooks.
// A refused connection or a blocked credential leak is a policy violation.
func (s *Sandbox) networkEvent(e egress.Event) {
	typ := lifecycle.EventNetwork
	if e.Kind == egress.KindDeny || e.Kind == egress.KindLeak {
		typ = lifecycle.EventViolation
	}
	s.emit(lifecycle.Event{Type: typ, Time: e.Time, Details: map[string]any{
		"decision": e.Kind, "host": e.Host, "port": e.Port, "reason": e.Reason, "method": e.Method}})
}

// ID returns the sandbox id.
func (s *Sandbox) ID() string { return s.id }

// DroppedEvents returns how many of this sandbox's events its hooks missed
// because an earlier call had run past Config.HookTimeout and was still
// running.
func (s *Sandbox) DroppedEvents() uint64 { return s.hooks.Dropped() }

// Backend returns the backend the sandbox runs on.
func (s *Sandbox) Backend() backend.Name { return s.driver.Info().Name }

// State returns the lifecycle state.
func (s *Sandbox) State() lifecycle.State { return s.fsm.State() }

// Score returns the effective strength score.
func (s *Sandbox) Score() score.Score { return s.score }

// Enforcement returns what the backend applied.
func (s *Sandbox) Enforcement() backend.Enforcement { return s.inst.Enforcement() }

// Start moves the sandbox to running.
func (s *Sandbox) Start(ctx context.Context) error { return s.transition(ctx, lifecycle.Running, nil) }

// Pause freezes every process in the sandbox.
func (s *Sandbox) Pause(ctx context.Context) error {
	return s.transition(ctx, lifecycle.Paused, func(lifecycle.State) error { return s.inst.Pause(ctx) })
}

// Resume thaws a paused sandbox. On a created sandbox it fails with an
// error wrapping ErrWrongState (start it with Start); in running, stopped or
// destroyed, with one wrapping ErrTransition.
func (s *Sandbox) Resume(ctx context.Context) error {
	return s.transition(ctx, lifecycle.Running, func(from lifecycle.State) error {
		if from != lifecycle.Paused {
			return fmt.Errorf("%w: resume: sandbox is %s, not paused", ErrWrongState, from)
		}
		return s.inst.Resume(ctx)
	})
}

// Stop ends the sandbox's activity: execs in flight are killed (they
// return ErrStopped) and no new one starts; files can still be exported, and
// only Destroy is possible afterwards.
func (s *Sandbox) Stop(ctx context.Context) error {
	return s.transition(ctx, lifecycle.Stopped, func(from lifecycle.State) error {
		if from == lifecycle.Paused {
			if err := s.inst.Resume(ctx); err != nil { // thaw so that the execs can be killed
				return err
			}
		}
		s.endLife()
		return nil
	})
}

// ErrStopped is returned by an exec cut short by Stop or Destroy.
var ErrStopped = errors.New("sandbox stopped")

// Destroy releases everything the sandbox holds. It is safe to call more
// than once; later calls return nil.
func (s *Sandbox) Destroy(ctx context.Context) error {
	if s.fsm.State() == lifecycle.Destroyed {
		return nil
	}
	return s.transition(ctx, lifecycle.Destroyed, func(lifecycle.State) error {
		s.endLife()
		return s.inst.Destroy(ctx)
	})
}

func (s *Sandbox) transition(ctx context.Context, to lifecycle.State, do func(lifecycle.State) error) error {
	from, err := s.fsm.Transition(to, do)
	if err != nil {
		s.emit(lifecycle.Event{Type: lifecycle.EventError, From: from.String(), To: to.String(),
			Details: map[string]any{"error": err.Error()}})
		return wrapf(err, "sandbox %s", s.id)
	}
	s.emit(lifecycle.Event{Type: lifecycle.EventTransition, From: from.String(), To: to.String()})
	return nil
}

func (s *Sandbox) emit(e lifecycle.Event) {
	e.SandboxID, e.Backend = s.id, string(s.driver.Info().Name)
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	s.hooks.Emit(e)
	globalHooks.Emit(e)
}

// ExecOption adjusts one exec.
type ExecOption func(*backend.ExecRequest)

// WithStdin gives the command this standard input (default: empty).
func WithStdin(r io.Reader) ExecOption { return func(q *backend.ExecRequest) { q.Stdin = r } }

// WithEnv adds "K=V" entries to the command's environment.
func WithEnv(kv ...string) ExecOption {
	return func(q *backend.ExecRequest) { q.Env = append(q.Env, kv...) }
}

// WithWorkdir runs the command in another directory of the sandbox.
func WithWorkdir(dir string) ExecOption { return func(q *backend.ExecRequest) { q.Workdir = dir } }

// WithTimeout overrides the policy's wall-clock timeout for one exec. A
// duration of zero or less keeps the policy's: an exec always has a
// timeout (a caller passing the time left of a deadline that has passed
// must not get an unbounded exec).
func WithTimeout(d time.Duration) ExecOption {
	return func(q *backend.ExecRequest) {
		if d > 0 {
			q.Timeout = d
		}
	}
}

// Exec runs a command in a running sandbox and returns its result. The argv
// is passed as given; use "sh", "-c", "..." for shell syntax.
func (s *Sandbox) Exec(ctx context.Context, argv []string, opts ...ExecOption) (*Result, error) {
	shown := s.redactArgv(argv)
	if err := s.fsm.Expect(lifecycle.Running); err != nil {
		s.emit(lifecycle.Event{Type: lifecycle.EventError, From: s.fsm.State().String(),
			Details: map[string]any{"argv": shown, "error": err.Error()}})
		return nil, wrapf(err, "exec in sandbox %s", s.id)
	}
	if len(argv) == 0 || argv[0] == "" {
		return nil, fmt.Errorf("%w: exec: empty command", ErrConfig)
	}
	p := &s.cfg.Policy
	req := &backend.ExecRequest{Argv: argv, Timeout: p.EffectiveTimeout(), MaxOutput: p.EffectiveMaxOutput(), Workdir: workdirOf(p)}
	for _, o := range opts {
		o(req)
	}
	wipe, err := s.inject(req)
	if err != nil {
		return nil, wrapf(err, "exec in sandbox %s", s.id)
	}
	s.emit(lifecycle.Event{Type: lifecycle.EventExecStart, Details: map[string]any{"argv": shown}})
	execCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := context.AfterFunc(s.life, func() { cancel(ErrStopped) })
	defer stop()
	out, err := s.inst.Exec(execCtx, req)
	wipe()
	if err != nil && errors.Is(context.Cause(execCtx), ErrStopped) {
		err = ErrStopped
	}
	if err != nil {
		s.emit(lifecycle.Event{Type: lifecycle.EventError, Details: map[string]any{"argv": shown, "error": s.redactText(err.Error())}})
		return nil, wrapf(err, "exec in sandbox %s", s.id)
	}
	res := s.result(out)
	s.applyGate(ctx, res, cutPartial(out.Stdout, out.StdoutTruncated), cutPartial(out.Stderr, out.StderrTruncated))
	if limit := limitHit(res, &s.cfg.Policy); limit != "" {
		s.emit(lifecycle.Event{Type: lifecycle.EventViolation, Details: map[string]any{"argv": shown, "limit": limit}})
	}
	s.emit(lifecycle.Event{Type: lifecycle.EventExecEnd, Details: map[string]any{
		"argv": shown, "status": string(res.Status), "exit_code": res.ExitCode, "score": res.Score.String(),
		"duration_ms": res.DurationMS,
	}})
	return res, nil
}

// redactArgv returns argv as events (and so audit entries) show it: with
// whatever the gate finds in it redacted, so that a secret on a command
// line — registered, or any the gate knows, such as a cloud key — is not
// written to a long-lived log. With the gate off, the default gate and the
// registered secrets still apply. The argv itself runs as given.
func (s *Sandbox) redactArgv(argv []string) []string {
	if s.hooks.Len() == 0 && globalHooks.Len() == 0 {
		return argv // no event is delivered anywhere
	}
	var out []string
	for i, a := range argv {
		if r := s.redactText(a); r != a {
			if out == nil {
				out = slices.Clone(argv)
			}
			out[i] = r
		}
	}
	if out == nil {
		return argv
	}
	return out
}

// redactText returns text with what the gates of redactArgv find in it
// redacted.
func (s *Sandbox) redactText(text string) string {
	if text == "" {
		return text
	}
	gates := []*gate.Gate{s.gate}
	if s.gate == nil || s.cfg.GateOff {
		gates = []*gate.Gate{argvGate(), s.gate} // s.gate: registered secrets only, or nil
	}
	for _, g := range gates {
		if g == nil {
			continue
		}
		if red, rep := g.Scan("text", []byte(text)); len(rep.Findings) > 0 {
			text = string(red)
		}
	}
	return text
}

// argvGate scans the command lines of sandboxes whose gate is off.
var argvGate = sync.OnceValue(func() *gate.Gate {
	g, _ := gate.New(gate.DefaultPolicy()) // the default policy is valid
	return g
})

// partialReach is how far back from the cut of a truncated stream a
// partial token is looked for.
const partialReach = 1 << 10

// cutPartial drops, from a stream cut at its output cap, a token the cap
// cut short: a secret missing its last characters no longer matches the
// gate's rules, but its prefix would still tell most of it. The candidate
// is what follows the last whitespace in the final partialReach bytes (or
// those bytes, when there is none); it is dropped when it looks like a
// token — at least 8 bytes holding both a letter and a digit — so that
// ordinary output keeps every byte up to the cap. The stream is flagged
// truncated already.
func cutPartial(b []byte, truncated bool) []byte {
	if !truncated || len(b) == 0 {
		return b
	}
	start := max(0, len(b)-partialReach)
	if i := bytes.LastIndexAny(b[start:], " \t\r\n"); i >= 0 {
		start += i + 1
	}
	if run := b[start:]; len(run) >= 8 && tokenLike(run) {
		return b[:start]
	}
	return b
}

// tokenLike reports whether b holds both an ASCII letter and a digit.
func tokenLike(b []byte) bool {
	letter := bytes.ContainsFunc(b, func(r rune) bool { return r < 0x80 && unicode.IsLetter(r) })
	digit := bytes.ContainsFunc(b, func(r rune) bool { return r >= '0' && r <= '9' })
	return letter && digit
}

// limitHit names the policy limit an exec ran into, judging by its result,
// or "": the wall-clock timeout, the memory limit, or the CPU time (every
// backend reports a used-up CPU budget as a kill by SIGXCPU).
func limitHit(res *Result, p *policy.Policy) string {
	switch {
	case res.Status == StatusTimeout:
		return "timeout"
	case res.Status == StatusOOM:
		return "memory"
	case res.Status == StatusSignaled && res.Signal == int(syscall.SIGXCPU) && p.Limits.CPUTime > 0:
		return "cpu_time"
	}
	return ""
}

// result builds the caller's result from a backend's output. The exit code
// of a timed-out or OOM-killed exec is the same on every backend: 124 and
// 137, what `kavach run` exits with (the signal is kept as reported).
func (s *Sandbox) result(o *backend.ExecOutput) *Result {
	code := o.ExitCode
	switch o.Status {
	case StatusTimeout:
		code = 124
	case StatusOOM:
		code = 137
	}
	return &Result{
		ID: s.id, Backend: string(s.driver.Info().Name), Status: o.Status, ExitCode: code, Signal: o.Signal,
		TimedOut: o.Status == StatusTimeout, OOMKilled: o.Status == StatusOOM,
		StdoutTruncated: o.StdoutTruncated, StderrTruncated: o.StderrTruncated,
		DurationMS: elapsedMS(o.Duration), CPUMS: elapsedMS(o.CPUTime), MaxRSSKB: o.MaxRSSKB,
		Score: s.score, Error: s.redactText(o.Error),
	}
}
