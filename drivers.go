package kavach

import (
	"github.com/kavach-sandbox/kavach/backend"
	"github.com/kavach-sandbox/kavach/backend/gvisor"
	"github.com/kavach-sandbox/kavach/backend/noop"
	"github.com/kavach-sandbox/kavach/backend/oci"
	"github.com/kavach-sandbox/kavach/backend/process"
	"github.com/kavach-sandbox/kavach/backend/wasm"
)

// The backends built into kavach. A backend not registered here reports
// "not implemented yet" as its unavailability reason.
func init() {
	backend.Register(noop.New())
	backend.Register(process.New())
	backend.Register(wasm.New())
	backend.Register(oci.New(oci.Options{}))
	backend.Register(gvisor.New())
}
