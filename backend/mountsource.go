package backend

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// ErrSymlinkSource refuses a policy mount whose source has a symbolic link
// in its path. Backends bind what the source names when the sandbox
// starts, and a sandbox that can write a directory on that path (an
// earlier one, through a read-write mount) could point the link anywhere.
var ErrSymlinkSource = errors.New("mount source contains a symbolic link")

// OpenMountSource opens a policy mount's source as an O_PATH descriptor
// without following a symbolic link in any component of its path.
func OpenMountSource(path string) (int, error) {
	fd, err := unix.Openat2(unix.AT_FDCWD, path, &unix.OpenHow{
		Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	})
	switch {
	case errors.Is(err, unix.ELOOP):
		return -1, fmt.Errorf("%w: %s (give the resolved path)", ErrSymlinkSource, path)
	case err != nil:
		return -1, fmt.Errorf("mount source %s: %w", path, err)
	}
	return fd, nil
}

// StatMountSource stats a policy mount's source as OpenMountSource opens it.
func StatMountSource(path string, st *unix.Stat_t) error {
	fd, err := OpenMountSource(path)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Fstat(fd, st)
}
