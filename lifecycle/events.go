package lifecycle

import (
	"sync"
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

// Dispatcher delivers events to hooks, in order, one event at a time.
//
// Delivery policy: each hook is called synchronously, so hooks see events in
// order and an audit hook has written an event before the operation that
// caused it returns. A hook that has not returned within Timeout is left
// running in the background and the sandbox moves on; while it is still
// running, later events for that hook are dropped and counted in Dropped, so
// a stuck hook can never block a sandbox for more than Timeout per event.
type Dispatcher struct {
	Timeout time.Duration

	mu      sync.Mutex
	hooks   []*hookState
	dropped uint64
}

type hookState struct {
	fn   Hook
	busy chan struct{} // non-nil while a timed-out call is still running
}

// Add registers a hook.
func (d *Dispatcher) Add(h Hook) {
	if h == nil {
		return
	}
	d.mu.Lock()
	d.hooks = append(d.hooks, &hookState{fn: h})
	d.mu.Unlock()
}

// Len returns the number of registered hooks.
func (d *Dispatcher) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.hooks)
}

// Dropped returns how many events were not delivered to stuck hooks.
func (d *Dispatcher) Dropped() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.dropped
}

// Emit delivers e to every hook.
func (d *Dispatcher) Emit(e Event) {
	d.mu.Lock()
	defer d.mu.Unlock()
	timeout := d.Timeout
	if timeout <= 0 {
		timeout = DefaultHookTimeout
	}
	for _, h := range d.hooks {
		if !d.deliver(h, e, timeout) {
			d.dropped++
		}
	}
}

func (d *Dispatcher) deliver(h *hookState, e Event, timeout time.Duration) bool {
	if h.busy != nil {
		select {
		case <-h.busy:
			h.busy = nil
		default:
			return false
		}
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
		h.busy = done
	}
	return true
}
