package kavach_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kavach-sandbox/kavach"
	"github.com/kavach-sandbox/kavach/credential"
	"github.com/kavach-sandbox/kavach/lifecycle"
)

func processConfig(t *testing.T, b *kavach.Builder) kavach.Config {
	t.Helper()
	for _, s := range kavach.Backends(context.Background()) {
		if s.Name == "process" && !s.Available {
			t.Skipf("process backend unavailable: %s", s.Reason)
		}
	}
	return mustBuild(t, b.Backend(kavach.Process))
}

// TestGateOffStillRedactsSecrets: turning the gate off stops the scanners,
// never the redaction of registered secrets.
func TestGateOffStillRedactsSecrets(t *testing.T) {
	const value = "kv-gate-off-Zq81Lm27Xp"
	store := credential.NewStore()
	if err := store.Add(context.Background(), "TOK", credential.FromValue([]byte(value))); err != nil {
		t.Fatal(err)
	}
	cfg := processConfig(t, kavach.NewConfig().GateOff().
		Secret(store, credential.Binding{Name: "TOK", Method: credential.MethodEnv, EnvVar: "TOK"}))
	res, err := kavach.Run(context.Background(), cfg, []string{"sh", "-c",
		`echo "tok=$TOK mail=alice@example.com"; printf %s "$TOK" | base64 >&2`})
	if err != nil {
		t.Fatal(err)
	}
	if res.Stdout != "tok=[REDACTED:secret:TOK] mail=alice@example.com\n" || strings.Contains(res.Stderr, "a3YtZ2F0ZS1vZm") {
		t.Fatalf("gate off leaked the registered secret: stdout %q stderr %q", res.Stdout, res.Stderr)
	}
	if res.Gate.Verdict != "warn" || len(res.Gate.Findings) != 2 || res.Gate.Findings[0].Rule != "registered-secret" {
		t.Fatalf("report %+v", res.Gate)
	}
	res, err = kavach.Run(context.Background(), cfg, []string{"echo", "nothing to hide"})
	if err != nil || res.Gate.Verdict != "skipped" {
		t.Fatalf("clean output with the gate off: %+v, %v", res, err)
	}
}

// TestLimitViolationEvent: an exec that runs into its timeout is a policy
// violation for the hooks, and its exit code is 124 whatever the backend.
func TestLimitViolationEvent(t *testing.T) {
	var rec eventLog
	cfg := processConfig(t, kavach.NewConfig().Hook(rec.hook))
	res, err := kavach.Run(context.Background(), cfg, []string{"sleep", "10"}, kavach.WithTimeout(300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != kavach.StatusTimeout || res.ExitCode != 124 || !res.TimedOut {
		t.Fatalf("result %+v", res)
	}
	if got := rec.find(lifecycle.EventViolation); got == nil || got.Details["limit"] != "timeout" {
		t.Fatalf("no timeout violation among %v", rec.types())
	}
	var cpu eventLog
	cfg = processConfig(t, kavach.NewConfig().CPUTime(time.Second).Hook(cpu.hook))
	if res, err = kavach.Run(context.Background(), cfg, []string{"sh", "-c", "while :; do :; done"}); err != nil {
		t.Fatal(err)
	}
	if got := cpu.find(lifecycle.EventViolation); res.ExitStatus() != 152 || got == nil || got.Details["limit"] != "cpu_time" {
		t.Fatalf("cpu budget: exit %d, events %v", res.ExitStatus(), cpu.types())
	}
}

// TestRefusedExecIsAnEvent: an Exec refused for the sandbox's state is
// reported to the hooks, and the error is kavach.ErrWrongState.
func TestRefusedExecIsAnEvent(t *testing.T) {
	var rec eventLog
	ctx := context.Background()
	sb, err := kavach.New(ctx, noopConfig(t, kavach.NewConfig().Hook(rec.hook)))
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Destroy(ctx)
	if _, err := sb.Exec(ctx, []string{"true"}); !errors.Is(err, kavach.ErrWrongState) {
		t.Fatalf("Exec before Start: %v", err)
	}
	if e := rec.find(lifecycle.EventError); e == nil || e.From != "created" || e.Details["error"] == nil {
		t.Fatalf("no error event for the refused exec: %v", rec.types())
	}
	if err := sb.Resume(ctx); !errors.Is(err, kavach.ErrWrongState) || sb.State() != lifecycle.Created {
		t.Fatalf("Resume before Start: %v, state %s", err, sb.State())
	}
}

// TestHookMayCallIntoItsSandbox: a hook that pauses its sandbox on an event
// (as a "pause on violation" hook does) neither stalls for the hook
// timeout nor misses the events its call causes.
func TestHookMayCallIntoItsSandbox(t *testing.T) {
	var rec eventLog
	var sb *kavach.Sandbox
	ctx := context.Background()
	pause := func(e lifecycle.Event) {
		if e.Type == lifecycle.EventExecEnd {
			_ = sb.Pause(ctx)
		}
	}
	cfg := noopConfig(t, kavach.NewConfig().Hook(pause).Hook(rec.hook).HookTimeout(5*time.Second))
	sb, err := kavach.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Destroy(ctx)
	if err := sb.Start(ctx); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := sb.Exec(ctx, []string{"true"}); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("Exec with a re-entrant hook took %v", el)
	}
	if sb.State() != lifecycle.Paused || sb.DroppedEvents() != 0 {
		t.Fatalf("state %s, dropped %d", sb.State(), sb.DroppedEvents())
	}
	if e := rec.find(lifecycle.EventTransition); e == nil {
		t.Fatalf("events %v", rec.types())
	}
	got := strings.Join(rec.types(), " ")
	if !strings.Contains(got, "transition:running>paused") {
		t.Fatalf("the hook's own pause was not delivered: %s", got)
	}
}

// eventLog keeps every event delivered to its hook.
type eventLog struct {
	mu     sync.Mutex
	events []lifecycle.Event
}

func (l *eventLog) hook(e lifecycle.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
}

func (l *eventLog) find(t lifecycle.EventType) *lifecycle.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := range l.events {
		if l.events[i].Type == t {
			e := l.events[i]
			return &e
		}
	}
	return nil
}

func (l *eventLog) types() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, e := range l.events {
		s := string(e.Type)
		if e.Type == lifecycle.EventTransition {
			s += ":" + e.From + ">" + e.To
		}
		out = append(out, s)
	}
	return out
}

// TestZeroConfigRunsStrict: a Config filled in by hand with nothing set runs
// like NewConfig().Build(): the default backend and the strict policy.
func TestZeroConfigRunsStrict(t *testing.T) {
	processConfig(t, kavach.NewConfig()) // skips where the process backend cannot run
	res, err := kavach.Run(context.Background(), kavach.Config{}, []string{"echo", "hi"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Stdout != "hi\n" || res.Backend != "process" || res.Score.String() != "63 (standard)" {
		t.Fatalf("zero Config: %+v", res)
	}
}

// TestArgvSecretsNotInEvents: a secret the gate knows, written on the
// command line, reaches the payload but not the events (and so not the
// audit chain), with the gate on or off.
func TestArgvSecretsNotInEvents(t *testing.T) {
	const key = "AKIAQX7ZK3M9PLWT4BNV"
	for _, off := range []bool{false, true} {
		var rec eventLog
		b := kavach.NewConfig().Hook(rec.hook)
		if off {
			b.GateOff()
		}
		cfg := processConfig(t, b)
		res, err := kavach.Run(context.Background(), cfg, []string{"sh", "-c", "echo " + key + " | wc -c"})
		if err != nil || strings.TrimSpace(res.Stdout) != "21" {
			t.Fatalf("gate off %v: %+v, %v", off, res, err)
		}
		for _, e := range rec.all() {
			if strings.Contains(fmt.Sprint(e.Details), key) {
				t.Errorf("gate off %v: %s event shows the key: %v", off, e.Type, e.Details)
			}
		}
		if e := rec.find(lifecycle.EventExecStart); e == nil || !strings.Contains(fmt.Sprint(e.Details["argv"]), "REDACTED") {
			t.Errorf("gate off %v: exec.start argv %v", off, e)
		}
	}
}

func (l *eventLog) all() []lifecycle.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events)
}

// TestTruncatedTokenNotShown: a token the output cap cuts short does not
// escape the gate by no longer matching: the partial token is dropped.
func TestTruncatedTokenNotShown(t *testing.T) {
	const token = "ghp_abcdefghijklmnopqrstuvwxyzABCDEF123456"
	cfg := processConfig(t, kavach.NewConfig().MaxOutput(1024))
	res, err := kavach.Run(context.Background(), cfg, []string{"sh", "-c",
		"head -c 985 /dev/zero | tr '\\0' a; echo; echo " + token})
	if err != nil {
		t.Fatal(err)
	}
	if !res.StdoutTruncated || strings.Contains(res.Stdout, "ghp_") || !strings.HasPrefix(res.Stdout, "aaaa") {
		t.Fatalf("truncated %v, stdout ends %q, verdict %s", res.StdoutTruncated, res.Stdout[max(0, len(res.Stdout)-40):], res.Gate.Verdict)
	}
}

// TestRegisteredSecretInArgvWithGateOff: with the gate off, a registered
// secret on the command line is still kept out of events and of the
// result's error text.
func TestRegisteredSecretInArgvWithGateOff(t *testing.T) {
	const value = "plainsecretvalue42zz"
	store := credential.NewStore()
	if err := store.Add(context.Background(), "TOK", credential.FromValue([]byte(value))); err != nil {
		t.Fatal(err)
	}
	var rec eventLog
	cfg := processConfig(t, kavach.NewConfig().GateOff().Hook(rec.hook).
		Secret(store, credential.Binding{Name: "TOK", Method: credential.MethodEnv, EnvVar: "TOK"}))
	res, err := kavach.Run(context.Background(), cfg, []string{value})
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 127 || strings.Contains(res.Error, value) {
		t.Fatalf("result error %q (exit %d)", res.Error, res.ExitCode)
	}
	for _, e := range rec.all() {
		if strings.Contains(fmt.Sprint(e.Details), value) {
			t.Errorf("%s event shows the secret: %v", e.Type, e.Details)
		}
	}
}

// TestWithTimeoutZeroKeepsThePolicys: WithTimeout(0) or a negative duration
// does not remove the timeout.
func TestWithTimeoutZeroKeepsThePolicys(t *testing.T) {
	cfg := processConfig(t, kavach.NewConfig().Timeout(500*time.Millisecond))
	for _, d := range []time.Duration{0, -time.Second} {
		res, err := kavach.Run(context.Background(), cfg, []string{"sleep", "5"}, kavach.WithTimeout(d))
		if err != nil || res.Status != kavach.StatusTimeout {
			t.Fatalf("WithTimeout(%v): %+v, %v", d, res, err)
		}
	}
}
