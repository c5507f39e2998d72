// Package oci is kavach's oci backend: each sandbox is a container run by
// the host's crun or runc from a bundle that kavach generates (see
// internal/ocibundle), with commands started in it by "runtime exec". The
// payload shares the host kernel, confined by namespaces, a read-only root,
// seccomp, cgroups, no capabilities and no-new-privileges.
package oci

import (
	"github.com/kavach-sandbox/kavach/backend"
	"github.com/kavach-sandbox/kavach/internal/runtime"
)

// Options configure the backend.
type Options struct {
	// Runtime selects "crun" or "runc". Empty prefers crun (faster) and
	// falls back to runc.
	Runtime string
}

// Driver is the oci backend.
type Driver struct{ *runtime.Driver }

// New returns the oci driver. An unknown Options.Runtime yields a driver
// whose Probe says so.
func New(opts Options) *Driver {
	switch opts.Runtime {
	case "":
		return &Driver{runtime.NewDriver(backend.OCI, runtime.Crun, runtime.Runc)}
	default:
		return &Driver{runtime.NewDriver(backend.OCI, runtime.Kind(opts.Runtime))}
	}
}
