package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/kavach-sandbox/kavach/backend"
	"github.com/kavach-sandbox/kavach/internal/ocibundle"
	"github.com/kavach-sandbox/kavach/policy"
)

// ErrExportPath is returned for an export outside the container's /work,
// or of a file bound at its own path.
var ErrExportPath = errors.New("runtime: path cannot be exported")

// exportBind is a policy mount at or under /work of a gVisor container,
// its source opened when the container started.
type exportBind struct {
	dest string   // clean destination in the container
	src  *os.File // O_PATH descriptor of the source; nil for a file
}

// openBinds opens the source of every policy mount at or under /work. An
// export reads beneath these descriptors, not beneath the sources' host
// paths: a payload that can write a directory holding a source (bound
// elsewhere, read-write) could rename the source and put a symbolic link
// to any host directory in its place, and the runtime's bind, like this
// descriptor, keeps the directory that was bound.
func (c *Container) openBinds() error {
	if c.rt.kind != Runsc { // crun and runc: exports read the container's own view
		return nil
	}
	for _, m := range c.spec.Policy.Filesystem.MountOrder() { // parents first
		dest := filepath.Clean(m.Dest)
		if dest != policy.WorkDir && !strings.HasPrefix(dest, policy.WorkDir+"/") {
			continue
		}
		fd, err := backend.OpenMountSource(m.Source)
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return fmt.Errorf("open mount source %s: %w", m.Source, err)
		}
		b := exportBind{dest: dest}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			b.src = os.NewFile(uintptr(fd), m.Source)
		} else {
			unix.Close(fd)
		}
		c.exportMu.Lock()
		c.binds = append(c.binds, b)
		c.exportMu.Unlock()
	}
	return nil
}

// openInit opens a pidfd of the crun or runc init, through which exports
// make sure that the /proc/<pid>/root they opened is still the init's (a
// dead init's pid can be reused by a host process).
func (c *Container) openInit() error {
	if c.rt.kind == Runsc {
		return nil
	}
	fd, err := unix.PidfdOpen(c.init, 0)
	if err != nil {
		return fmt.Errorf("pidfd of the container's init %d: %w", c.init, err)
	}
	c.exportMu.Lock()
	c.initFD = os.NewFile(uintptr(fd), "pidfd")
	c.exportMu.Unlock()
	return nil
}

// initRoot opens the crun or runc init's root directory and checks,
// after opening it, that the init is still alive: the directory is then
// the container's, not that of a process that reused the pid.
func (c *Container) initRoot() (*os.File, error) {
	if c.initFD == nil {
		return nil, fmt.Errorf("%w: %s: no init", ErrBroken, c.id)
	}
	root, err := os.OpenFile("/proc/"+strconv.Itoa(c.init)+"/root", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: the init's root: %w", ErrBroken, c.id, err)
	}
	if err := unix.PidfdSendSignal(int(c.initFD.Fd()), 0, nil, 0); err != nil {
		root.Close()
		return nil, fmt.Errorf("%w: %s: the init is gone: %w", ErrBroken, c.id, err)
	}
	return root, nil
}

// closeBinds closes the descriptors openBinds and openInit opened.
func (c *Container) closeBinds() {
	c.exportMu.Lock()
	defer c.exportMu.Unlock()
	if c.initFD != nil {
		c.initFD.Close()
		c.initFD = nil
	}
	for _, b := range c.binds {
		if b.src != nil {
			b.src.Close()
		}
	}
	c.binds = nil
}

// ReadFile exports a file of the container's /work, read as the sandbox
// user. Other paths live in the runtime's own view (gVisor keeps /tmp in
// its memory), so containers export from /work only.
//
// crun and runc: the file is read through the container's own root
// (/proc/<init>/root), as the process backend does, so every mount, every
// permission and every link resolves as it does for the payload.
//
// gVisor's view is not visible from the host: the file is read from the
// host directory behind it — the private work directory, or the source, as
// it was bound, of the deepest policy mount holding it — with no symbolic
// link allowed on the path (a link that stays within a bound directory
// could lead on the host to what a nested mount hides from the sandbox).
func (c *Container) ReadFile(ctx context.Context, path string, max int64) ([]byte, error) {
	clean := filepath.Clean("/" + path)
	if !strings.HasPrefix(clean, policy.WorkDir+"/") {
		return nil, fmt.Errorf("%w: %s: containers export files from %s only", ErrExportPath, path, policy.WorkDir)
	}
	if err := c.brokenErr(); err != nil {
		return nil, err
	}
	c.exportMu.RLock()
	defer c.exportMu.RUnlock()
	if c.rt.kind != Runsc {
		root, err := c.initRoot()
		if err != nil {
			return nil, err
		}
		defer root.Close()
		return backend.ReadFileAs("/proc/self/fd/"+strconv.Itoa(int(root.Fd())), clean, max, ocibundle.UID, ocibundle.GID)
	}
	dir, rel := c.bundle.WorkDir, strings.TrimPrefix(clean, policy.WorkDir+"/")
	for _, b := range c.binds { // parents first: the last match is the deepest
		if clean == b.dest && b.src == nil {
			return nil, fmt.Errorf("%w: %s: a file bound at its own path (export it from its host path)", ErrExportPath, path)
		}
		if r, ok := strings.CutPrefix(clean, b.dest+"/"); ok && b.src != nil {
			dir, rel = "/proc/self/fd/"+strconv.Itoa(int(b.src.Fd())), r
		}
	}
	return backend.ReadFileNoLinks(dir, rel, max, ocibundle.UID, ocibundle.GID)
}
