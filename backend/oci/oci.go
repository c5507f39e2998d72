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
	// Image is an OCI image layout directory (index.json, blobs/) whose
	// root every sandbox runs on, read-only, instead of the host's system
	// view. It is unpacked once into a cache keyed by the manifest digest.
	// Commands run with the image's environment under the sandbox's.
	Image string
}

// Driver is the oci backend.
type Driver struct{ *runtime.Driver }

// New returns the oci driver. An unknown Options.Runtime yields a driver
// whose Probe says so.
func New(opts Options) *Driver {
	kinds := []runtime.Kind{runtime.Crun, runtime.Runc}
	if opts.Runtime != "" {
		kinds = []runtime.Kind{runtime.Kind(opts.Runtime)}
	}
	return &Driver{runtime.NewDriver(backend.OCI, kinds...).WithImage(opts.Image)}
}
