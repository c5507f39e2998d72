// Package kavach runs untrusted code in an isolation backend, scans what
// comes out before it leaves, and says with a number from 0 to 100 how
// strongly the code was confined.
//
// The quickest use is Run:
//
//	cfg, _ := kavach.NewConfig().Build() // process backend, strict policy
//	res, err := kavach.Run(ctx, cfg, []string{"python3", "-c", "print(6*7)"})
//
// For repeated execution, create a Sandbox (or claim one from a Pool) and
// call Exec on it; its lifecycle is created → running ⇄ paused → stopped →
// destroyed, and every transition, exec and verdict is delivered to hooks.
package kavach

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/kavach-sandbox/kavach/backend"
	"github.com/kavach-sandbox/kavach/lifecycle"
	"github.com/kavach-sandbox/kavach/policy"
	"github.com/kavach-sandbox/kavach/score"
)

// Errors callers can test with errors.Is.
var (
	// ErrScoreTooLow: the effective score is below Config.MinScore.
	ErrScoreTooLow = errors.New("strength score below the required minimum")
	// ErrLayerUnavailable: the backend cannot apply a layer the policy asks
	// for, and the policy is not best-effort.
	ErrLayerUnavailable = errors.New("policy layer cannot be enforced")
	// ErrUnavailable: the backend cannot run on this host.
	ErrUnavailable = backend.ErrUnavailable
	// ErrWrongState: the operation is not allowed in the sandbox's
	// current state (for example Exec on a sandbox that is not running).
	ErrWrongState = lifecycle.ErrWrongState
	// ErrTransition: the lifecycle does not allow the transition asked
	// for (for example Pause of a created sandbox).
	ErrTransition = lifecycle.ErrTransition
)

var globalHooks lifecycle.Dispatcher

var staleOnce sync.Once

// cleanupStale removes, on the first sandbox, pool or backend listing of
// this process, what kavach processes that died without destroying their
// sandboxes left under any backend (stale state is cleaned on the
// next start). Containers of crun, runc and gVisor outlive their creator
// and keep running their payloads until then.
func cleanupStale(ctx context.Context) {
	staleOnce.Do(func() { backend.CleanupStale(context.WithoutCancel(ctx)) })
}

// AddHook registers a hook that receives the events of every sandbox. It is
// called from the goroutine of the operation that caused the event, so it
// must be safe for concurrent use; see lifecycle.Dispatcher for how long
// it may take (lifecycle.DefaultHookTimeout per event).
func AddHook(h lifecycle.Hook) { globalHooks.Add(h) }

// DroppedEvents returns how many events global hooks missed because an
// earlier call of theirs had run past the hook timeout and was still
// running (see lifecycle.Dispatcher).
func DroppedEvents() uint64 { return globalHooks.Dropped() }

// Score is the declared strength score of a backend running a policy: what
// the backend would achieve if it enforces everything it supports.
func Score(name backend.Name, p policy.Policy) (score.Score, error) {
	d, err := backend.Resolve(context.Background(), name, &p)
	if err != nil {
		return score.Score{}, err
	}
	return score.Declared(d.Info().ScoreBackend(), &p, d.Capabilities()), nil
}

// BackendStatus describes one backend on this host.
type BackendStatus struct {
	Name      string `json:"name"`
	Available bool   `json:"available"`
	BaseScore int    `json:"base_score"`
	Reason    string `json:"reason"`
}

// Backends probes every backend and reports its availability.
func Backends(ctx context.Context) []BackendStatus {
	cleanupStale(ctx)
	names := backend.Names()
	out := make([]BackendStatus, len(names))
	for i, n := range names {
		d, _ := backend.Lookup(n)
		a := d.Probe(ctx)
		out[i] = BackendStatus{Name: string(n), Available: a.Available, BaseScore: d.Info().Base, Reason: a.Reason}
	}
	return out
}

// Run creates a sandbox, runs one command in it and destroys it.
func Run(ctx context.Context, cfg Config, argv []string, opts ...ExecOption) (*Result, error) {
	sb, err := New(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer sb.Destroy(context.WithoutCancel(ctx))
	if err := sb.Start(ctx); err != nil {
		return nil, err
	}
	return sb.Exec(ctx, argv, opts...)
}

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "kv-" + hex.EncodeToString(b[:])
}

// elapsedMS converts a duration to fractional milliseconds.
func elapsedMS(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func wrapf(err error, format string, a ...any) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf(format+": %w", append(a, err)...)
}
