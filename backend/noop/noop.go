// Package noop is the backend that runs nothing. Every exec returns exit 0
// with empty output, and its score is always 0. It exists for tests and for
// exercising kavach's plumbing (policy, lifecycle, gate, audit) without
// isolation.
package noop

import (
	"context"
	"io"
	"time"

	"github.com/kavach-sandbox/kavach/backend"
	"github.com/kavach-sandbox/kavach/score"
)

// Driver is the noop backend.
type Driver struct{}

// New returns the noop driver.
func New() Driver { return Driver{} }

// Info describes the backend.
func (Driver) Info() backend.Info {
	i, _ := backend.InfoOf(backend.Noop)
	return i
}

// Probe reports that noop is always available.
func (Driver) Probe(context.Context) backend.Availability {
	return backend.Availability{Available: true, Reason: "runs nothing (testing only)"}
}

// Capabilities is empty: noop enforces nothing.
func (Driver) Capabilities() score.Layers { return 0 }

// Create returns a sandbox that runs nothing.
func (Driver) Create(context.Context, *backend.Spec) (backend.Instance, error) {
	return instance{}, nil
}

type instance struct{}

func (instance) Enforcement() backend.Enforcement {
	return backend.Enforcement{Layers: 0, Notes: []string{"noop: nothing is run, nothing is enforced"}}
}

// Exec drains stdin (so a writer is never blocked) and returns exit 0.
func (instance) Exec(ctx context.Context, req *backend.ExecRequest) (*backend.ExecOutput, error) {
	start := time.Now()
	if req.Stdin != nil {
		_, _ = io.Copy(io.Discard, req.Stdin)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return &backend.ExecOutput{Status: backend.StatusExited, Stdout: []byte{}, Stderr: []byte{}, Duration: time.Since(start)}, nil
}

func (instance) Pause(context.Context) error   { return nil }
func (instance) Resume(context.Context) error  { return nil }
func (instance) Destroy(context.Context) error { return nil }
