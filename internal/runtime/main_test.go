package runtime

import (
	"os"
	"testing"

	"github.com/kavach-sandbox/kavach/internal/reexec"
)

// TestMain lets the test binary serve as the in-container seccomp helper.
func TestMain(m *testing.M) {
	if reexec.Run() {
		return
	}
	os.Exit(m.Run())
}
