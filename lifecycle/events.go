package lifecycle

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// EventType names an event.
type EventType string

// Event types.
const (
	EventTransition EventType = "transition" // a lifecycle state change
	EventExecStart  EventType = "exec.start"
	EventExecEnd    EventType = "exec.end"
	EventGate       EventType = "gate.verdict"
	EventViolation  EventType = "policy.violation"
	EventNetwork    EventType = "network"
	EventError      EventType = "error"
)

// Event is delivered to hooks. Details never carry secret values.
type Event struct {
	Type      EventType      `json:"type"`
	SandboxID string         `json:"sandbox_id"`
	Backend   string         `json:"backend"`
	Time      time.Time      `json:"time"`
	From      string         `json:"from,omitempty"`
	To        string         `json:"to,omitempty"`
	Details   map[string]any `json:"details,omitempty"`
}

// Hook receives events.
type Hook func(Event)

// DefaultHookTimeout bounds how long one hook call may hold up a sandbox.
const DefaultHookTimeout = 2 * time.Second

// Dispatcher delivers events to hooks.
//
// Delivery policy: Emit calls every hook synchronously, in registration
// order, so an event has reached every hook before the operation that
// caused it returns (an audit hook has written it), and the events of one
// goroutine's operations arrive in order. No lock is held while a hook
// runs: the hooks of different sandboxes run concurrently, and a hook may
// call back into the sandbox whose event it handles (the events that call
// causes are delivered while the outer call waits). A hook must therefore
// be safe for concurrent use. A hook that has not returned within Timeout
// is left running in the background and Emit moves on; until that call
// returns, later events for the hook are dropped and counted in Dropped.
// So a stuck hook holds up an operation for at most Timeout per event, and
// the calls left running are at most those that had started when it got
// stuck (one per goroutine emitting then), not one per later event.
type Dispatcher struct {
	// Timeout bounds one hook call (DefaultHookTimeout when 0). Set it
	// before the first Add.
	Timeout time.Duration

	mu      sync.Mutex
	hooks   []*hookState // replaced, never changed in place, by Add
	dropped atomic.Uint64
}

type hookState struct {
	fn Hook

	mu    sync.Mutex
	stuck chan struct{} // closed when a timed-out call returns; nil if none
}

// Add registers a hook.
func (d *Dispatcher) Add(h Hook) {
	if h == nil {
		return
	}
	d.mu.Lock()
	d.hooks = append(slices.Clip(d.hooks), &hookState{fn: h})
	d.mu.Unlock()
}

// Len returns the number of registered hooks.
func (d *Dispatcher) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.hooks)
}

// Dropped returns how many events were not delivered to stuck hooks.
func (d *Dispatcher) Dropped() uint64 { return d.dropped.Load() }

// Emit delivers e to every hook.
func (d *Dispatcher) Emit(e Event) {
	d.mu.Lock()
	hooks, timeout := d.hooks, d.Timeout
	d.mu.Unlock()
	if timeout <= 0 {
		timeout = DefaultHookTimeout
	}
	for _, h := range hooks {
		if !h.deliver(e, timeout) {
			d.dropped.Add(1)
		}
	}
}

// deliver calls the hook with e and waits for it up to timeout. It
// reports false, without calling it, while an earlier call that timed out
// is still running.
func (h *hookState) deliver(e Event, timeout time.Duration) bool {
	if h.isStuck() {
		return false
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() { _ = recover() }() // a panicking hook must not take the sandbox down
		h.fn(e)
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		h.mu.Lock()
		if h.stuck == nil {
			h.stuck = done
		}
		h.mu.Unlock()
	}
	return true
}

// isStuck reports whether a call that timed out is still running.
func (h *hookState) isStuck() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stuck == nil {
		return false
	}
	select {
	case <-h.stuck:
		h.stuck = nil
		return false
	default:
		return true
	}
}
