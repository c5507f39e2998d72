package wasm

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/kavach-sandbox/kavach/policy"
)

// ErrNestedMount is returned by Create for a policy whose read-only mount
// lies inside (or is) the host directory of a read-write mount. Each mount
// is a separate WASI preopen, so the module could reach the read-only
// directory through the read-write preopen's handle and write there;
// kavach refuses the policy instead of pretending the mount is read-only.
var ErrNestedMount = errors.New("wasm: read-only mount inside a read-write mount")

// mountDir is a mount with its host directory resolved.
type mountDir struct {
	policy.Mount
	real string      // absolute, symlinks resolved
	info os.FileInfo // of real, to compare directories by identity
}

// checkMountNesting refuses a read-only mount whose host directory is,
// or lies beneath, the host directory of a read-write mount. Symlinks are
// resolved first, and directories are compared by device and inode, so
// an alias through a symlink or a bind mount of the read-write directory
// itself is caught too.
func checkMountNesting(mounts []policy.Mount) error {
	var ro, rw []mountDir
	for _, m := range mounts {
		d, err := resolveMount(m)
		if err != nil {
			return err
		}
		if m.Mode == policy.ReadOnly {
			ro = append(ro, d)
		} else {
			rw = append(rw, d)
		}
	}
	for _, r := range ro {
		for _, w := range rw {
			if within(r.real, w.info) {
				return fmt.Errorf("%w: %s (read-only at %s) is inside %s (read-write at %s), so the module could write to it through %s",
					ErrNestedMount, r.Source, r.Dest, w.Source, w.Dest, w.Dest)
			}
		}
	}
	return nil
}

func resolveMount(m policy.Mount) (mountDir, error) {
	real, err := filepath.EvalSymlinks(m.Source)
	if err == nil {
		real, err = filepath.Abs(real)
	}
	var info os.FileInfo
	if err == nil {
		info, err = os.Stat(real)
	}
	if err != nil {
		return mountDir{}, fmt.Errorf("wasm: mount %s: %w", m.Dest, err)
	}
	return mountDir{Mount: m, real: real, info: info}, nil
}

// within reports whether the directory dir, or one of its ancestors, is
// the directory top.
func within(dir string, top os.FileInfo) bool {
	for {
		if st, err := os.Stat(dir); err == nil && os.SameFile(st, top) {
			return true
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return false
		}
		dir = parent
	}
}
