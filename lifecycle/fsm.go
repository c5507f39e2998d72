// Package lifecycle holds the sandbox state machine and the events it
// emits to hooks.
//
//	created ──► running ◄──► paused
//	   │          │  │          │
//	   │          │  └─► stopped ◄┘
//	   ▼          ▼        │
//	destroyed ◄───┴────────┘ (also from paused)
package lifecycle

import (
	"errors"
	"fmt"
	"sync"
)

// State is a sandbox lifecycle state.
type State uint8

// States.
const (
	Created State = iota
	Running
	Paused
	Stopped
	Destroyed
	numStates
)

var stateNames = [numStates]string{"created", "running", "paused", "stopped", "destroyed"}

// String returns the state's name.
func (s State) String() string {
	if s < numStates {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// MarshalText encodes the state by name.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// States lists every state in order.
func States() []State { return []State{Created, Running, Paused, Stopped, Destroyed} }

// transitions are the allowed transitions, and no others.
var transitions = [...][2]State{
	{Created, Running}, {Created, Destroyed},
	{Running, Paused}, {Running, Stopped}, {Running, Destroyed},
	{Paused, Running}, {Paused, Stopped}, {Paused, Destroyed},
	{Stopped, Destroyed},
}

// allowed answers every (from, to) pair of uint8 states with one load:
// it is indexed by from<<8|to, so no index needs a bounds check and no
// answer a branch, and only the entries of transitions are true. Its
// 64 KiB are zero-filled, and the entries init writes all lie in the first
// kilobyte: at most two of its pages are ever backed by memory.
var allowed [1 << 16]bool

func init() {
	for _, t := range transitions {
		allowed[pair(t[0], t[1])] = true
	}
}

func pair(from, to State) uint16 { return uint16(from)<<8 | uint16(to) }

// ErrTransition is wrapped by every rejected transition.
var ErrTransition = errors.New("invalid lifecycle transition")

// TransitionError names both states of a rejected transition.
type TransitionError struct{ From, To State }

func (e *TransitionError) Error() string {
	return fmt.Sprintf("invalid lifecycle transition %s → %s", e.From, e.To)
}

// Unwrap makes errors.Is(err, ErrTransition) true.
func (e *TransitionError) Unwrap() error { return ErrTransition }

// CanTransition reports whether from → to is one of the allowed transitions.
func CanTransition(from, to State) bool {
	return allowed[pair(from, to)]
}

// Check returns nil for an allowed transition and a *TransitionError otherwise.
func Check(from, to State) error {
	if CanTransition(from, to) {
		return nil
	}
	return &TransitionError{From: from, To: to}
}

// FSM is a state machine safe for concurrent use.
type FSM struct {
	mu    sync.Mutex
	state State
}

// State returns the current state.
func (m *FSM) State() State {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.state
}

// Transition moves to "to" if allowed, running do first while holding the
// lock: when do fails, the state is unchanged. It returns the previous state.
func (m *FSM) Transition(to State, do func(from State) error) (State, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	from := m.state
	if err := Check(from, to); err != nil {
		return from, err
	}
	if do != nil {
		if err := do(from); err != nil {
			return from, err
		}
	}
	m.state = to
	return from, nil
}

// Expect returns an error wrapping ErrWrongState unless the machine is in
// state want.
func (m *FSM) Expect(want State) error {
	if got := m.State(); got != want {
		return fmt.Errorf("%w: sandbox is %s, not %s", ErrWrongState, got, want)
	}
	return nil
}

// ErrWrongState is returned when an operation needs another state.
var ErrWrongState = errors.New("operation not allowed in this state")
