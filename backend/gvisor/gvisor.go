// Package gvisor is kavach's gvisor backend: each sandbox is a container
// run by runsc, gVisor's runtime, so the payload's system calls are served
// by gVisor's user-space kernel instead of the host's. The bundle is the
// same as the oci backend's (internal/ocibundle); runsc runs with the
// fastest platform that works here (systrap, else ptrace; never kvm),
// --oci-seccomp so the policy's seccomp filter applies inside gVisor too,
// and --network=none unless the policy gives the host's network or an
// egress allowlist. An allowlist runs with --network=host in the sandbox's
// own empty network namespace, where kavach serves the egress proxy on
// 127.0.0.1:3128: gVisor's netstack is bypassed for that policy (see
// docs/containers.md for the trade-off).
package gvisor

import (
	"github.com/kavach-sandbox/kavach/backend"
	"github.com/kavach-sandbox/kavach/internal/runtime"
)

// Driver is the gvisor backend.
type Driver struct{ *runtime.Driver }

// New returns the gvisor driver.
func New() *Driver { return &Driver{runtime.NewDriver(backend.GVisor, runtime.Runsc)} }
