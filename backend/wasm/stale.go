package wasm

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/kavach-sandbox/kavach/internal/workfs"
)

// stalePrefix names the private host directories of wasm sandboxes:
// kavach-wasm-<pid>-<random>.
const stalePrefix = "kavach-wasm-"

// sweepStale removes the private directories that sandboxes of a kavach
// process that no longer exists left behind (it crashed before Destroy).
// Directories of live processes, including this one, are left alone.
func sweepStale() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), stalePrefix+"*"))
	for _, dir := range dirs {
		pidStr, _, ok := strings.Cut(strings.TrimPrefix(filepath.Base(dir), stalePrefix), "-")
		pid, err := strconv.Atoi(pidStr)
		if !ok || err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		if errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
			_ = workfs.RemoveAll(dir, filepath.Join(dir, "tmp"), filepath.Join(dir, "work"))
		}
	}
}
