// Package credential keeps the secrets a sandbox may use and plans how they
// are injected: through an environment variable, stdin, an inherited pipe
// on a chosen file descriptor, or substitution by the egress proxy
// (MethodProxy).
//
// Values are read once, kept in memory only, never written to disk by this
// package and never included in errors or formatted output. Go cannot
// guarantee that no copy of a value survives in memory; docs/credentials.md
// lists what is and is not wiped.
package credential

import (
	"encoding/json"
	"fmt"
	"io"
)

// Secret is a named secret value. Every way of printing or encoding it
// (String, GoString, Format with any verb, MarshalJSON, MarshalText) yields
// "[secret NAME]"; only Bytes returns the value. The value is reachable
// only through a function value, which reflection-based printing (fmt on a
// struct holding a Secret in an unexported field) shows as a code address:
// a plain pointer would be followed and its bytes printed.
type Secret struct {
	name string
	v    func() *box
}

// box holds a secret value.
type box struct{ b []byte }

// hide wraps a value so that only calling the function reaches it.
func hide(value []byte) func() *box {
	bx := &box{b: value}
	return func() *box { return bx }
}

// newSecret takes ownership of value.
func newSecret(name string, value []byte) *Secret {
	return &Secret{name: name, v: hide(value)}
}

// Name returns the secret's name.
func (s Secret) Name() string { return s.name }

// String returns "[secret NAME]".
func (s Secret) String() string { return "[secret " + s.name + "]" }

// GoString returns "[secret NAME]", also for %#v.
func (s Secret) GoString() string { return s.String() }

// Format writes "[secret NAME]" whatever the verb and flags.
func (s Secret) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, s.String()) }

// MarshalJSON encodes the secret as the JSON string "[secret NAME]".
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// MarshalText encodes the secret as "[secret NAME]".
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Bytes returns the value itself, not a copy, for an injector to use right
// away. Do not keep or modify it; it is wiped by Zero and Store.Close.
func (s *Secret) Bytes() []byte {
	if s.v == nil {
		return nil
	}
	return s.v().b
}

// Len returns the length of the value.
func (s *Secret) Len() int { return len(s.Bytes()) }

// Zero overwrites the value with zeros and forgets it.
func (s *Secret) Zero() {
	if s.v == nil {
		return
	}
	bx := s.v()
	clear(bx.b)
	bx.b = nil
}
