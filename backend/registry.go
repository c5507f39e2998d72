package backend

import (
	"context"
	"fmt"
	"sync"

	"github.com/kavach-sandbox/kavach/policy"
	"github.com/kavach-sandbox/kavach/score"
)

var (
	regMu   sync.RWMutex
	drivers = map[Name]Driver{}
)

// Register installs a driver under its name, replacing any earlier one.
func Register(d Driver) {
	regMu.Lock()
	drivers[d.Info().Name] = d
	regMu.Unlock()
}

// Lookup returns the driver for a name. Every known name has a driver:
// backends not built into this binary report why they are unavailable.
func Lookup(n Name) (Driver, error) {
	info, ok := InfoOf(n)
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknown, n)
	}
	regMu.RLock()
	d := drivers[n]
	regMu.RUnlock()
	if d == nil {
		return Unimplemented{info}, nil
	}
	return d, nil
}

// Resolve returns the driver for n; Auto picks the available backend with
// the highest declared score for the policy (never noop).
func Resolve(ctx context.Context, n Name, p *policy.Policy) (Driver, error) {
	if n != Auto {
		return Lookup(n)
	}
	var best Driver
	bestScore := -1
	for _, name := range Names() {
		if name == Noop {
			continue
		}
		d, _ := Lookup(name)
		if !d.Probe(ctx).Available {
			continue
		}
		if s := score.Declared(d.Info().ScoreBackend(), p, d.Capabilities()).Value; s > bestScore {
			best, bestScore = d, s
		}
	}
	if best == nil {
		return nil, fmt.Errorf("%w: auto: no backend is available on this host", ErrUnavailable)
	}
	return best, nil
}

// CleanupStale runs the stale cleanup of every registered driver that has
// one (StaleCleaner): whatever backend a program uses, state that crashed
// kavach processes left under any backend is removed when it starts.
func CleanupStale(ctx context.Context) {
	regMu.RLock()
	var cleaners []StaleCleaner
	for _, d := range drivers {
		if c, ok := d.(StaleCleaner); ok {
			cleaners = append(cleaners, c)
		}
	}
	regMu.RUnlock()
	for _, c := range cleaners {
		c.CleanupStale(ctx)
	}
}

// Unimplemented is the driver of a backend that this build of kavach does
// not implement yet. It is never available and says so.
type Unimplemented struct{ I Info }

// Info returns the backend's description.
func (u Unimplemented) Info() Info { return u.I }

// Probe always reports the backend unavailable, adding what this host
// lacks for it where that is known.
func (u Unimplemented) Probe(context.Context) Availability {
	reason := "not implemented yet in this version of kavach"
	if b := hostBlocker(u.I.Name); b != "" {
		reason += "; this host: " + b
	}
	return Availability{Reason: reason}
}

// Capabilities reports what the backend would enforce once implemented, so
// declared scores follow the score model (package score).
func (u Unimplemented) Capabilities() score.Layers { return FullCapabilities() }

// Create always fails with ErrUnavailable.
func (u Unimplemented) Create(context.Context, *Spec) (Instance, error) {
	return nil, fmt.Errorf("%w: %s: not implemented yet in this version of kavach", ErrUnavailable, u.I.Name)
}

// FullCapabilities is the set of every layer, for backends that can
// enforce all of them.
func FullCapabilities() score.Layers {
	return score.AllLayers
}
