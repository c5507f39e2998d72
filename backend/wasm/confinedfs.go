package wasm

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"
	"syscall"

	wsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/sys"
	"golang.org/x/sys/unix"
)

// confinedFS is the file system behind one WASI preopen. Every path is
// resolved by an os.Root, which on Linux walks each component with
// openat2(RESOLVE_BENEATH) semantics: ".." and symbolic links (including
// links the module itself creates) can never reach outside the host
// directory. wazero's own DirFS joins path strings and lets the host kernel
// follow symlinks, so a module could escape through a relative link; kavach
// does not use it.
type confinedFS struct {
	wsys.UnimplementedFS
	root     *os.Root
	readOnly bool
}

// openConfinedFS opens dir as the root of a preopen.
func openConfinedFS(dir string, readOnly bool) (*confinedFS, error) {
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	return &confinedFS{root: r, readOnly: readOnly}, nil
}

// Close releases the root directory handle.
func (c *confinedFS) Close() error { return c.root.Close() }

// String names the host directory, for wazero's diagnostics.
func (c *confinedFS) String() string { return c.root.Name() }

// rel turns a guest path (already cleaned by wazero's WASI layer) into a
// name relative to the root.
func rel(p string) string {
	p = strings.TrimLeft(p, "/")
	if p == "" {
		return "."
	}
	return p
}

const writeFlags = wsys.O_RDWR | wsys.O_WRONLY | wsys.O_APPEND | wsys.O_CREAT | wsys.O_TRUNC

// OpenFile opens a file or directory beneath the root.
func (c *confinedFS) OpenFile(p string, flag wsys.Oflag, perm fs.FileMode) (wsys.File, wsys.Errno) {
	if c.readOnly && flag&writeFlags != 0 {
		return nil, wsys.EROFS
	}
	if flag&wsys.O_DIRECTORY != 0 && flag&(wsys.O_RDWR|wsys.O_WRONLY) != 0 {
		return nil, wsys.EISDIR
	}
	f, err := c.root.OpenFile(rel(p), osFlags(flag), perm)
	if err != nil {
		return nil, toErrno(err)
	}
	return newFile(f, c.readOnly, flag&wsys.O_APPEND != 0), 0
}

// osFlags converts WASI open flags to Linux open(2) flags.
func osFlags(f wsys.Oflag) int {
	out := os.O_RDONLY
	switch {
	case f&wsys.O_RDWR != 0:
		out = os.O_RDWR
	case f&wsys.O_WRONLY != 0:
		out = os.O_WRONLY
	}
	pairs := []struct {
		w  wsys.Oflag
		os int
	}{
		{wsys.O_APPEND, unix.O_APPEND}, {wsys.O_CREAT, unix.O_CREAT}, {wsys.O_DIRECTORY, unix.O_DIRECTORY},
		{wsys.O_DSYNC, unix.O_DSYNC}, {wsys.O_EXCL, unix.O_EXCL}, {wsys.O_NOFOLLOW, unix.O_NOFOLLOW},
		{wsys.O_NONBLOCK, unix.O_NONBLOCK}, {wsys.O_RSYNC, unix.O_RSYNC}, {wsys.O_SYNC, unix.O_SYNC},
		{wsys.O_TRUNC, unix.O_TRUNC},
	}
	for _, p := range pairs {
		if f&p.w != 0 {
			out |= p.os
		}
	}
	return out
}

// Lstat stats a path without following a final symbolic link.
func (c *confinedFS) Lstat(p string) (sys.Stat_t, wsys.Errno) {
	fi, err := c.root.Lstat(rel(p))
	if err != nil {
		return sys.Stat_t{}, toErrno(err)
	}
	return sys.NewStat_t(fi), 0
}

// Stat stats a path, following symbolic links that stay beneath the root.
func (c *confinedFS) Stat(p string) (sys.Stat_t, wsys.Errno) {
	fi, err := c.root.Stat(rel(p))
	if err != nil {
		return sys.Stat_t{}, toErrno(err)
	}
	return sys.NewStat_t(fi), 0
}

// Mkdir creates a directory.
func (c *confinedFS) Mkdir(p string, perm fs.FileMode) wsys.Errno {
	if c.readOnly {
		return wsys.EROFS
	}
	return toErrno(c.root.Mkdir(rel(p), perm))
}

// Chmod changes a file's permission bits.
func (c *confinedFS) Chmod(p string, perm fs.FileMode) wsys.Errno {
	if c.readOnly {
		return wsys.EROFS
	}
	return toErrno(c.root.Chmod(rel(p), perm))
}

// Rename moves a file or directory within the root.
func (c *confinedFS) Rename(from, to string) wsys.Errno {
	if c.readOnly {
		return wsys.EROFS
	}
	return toErrno(c.root.Rename(rel(from), rel(to)))
}

// Rmdir removes an empty directory.
func (c *confinedFS) Rmdir(p string) wsys.Errno {
	return c.remove(p, true)
}

// Unlink removes a file or symbolic link.
func (c *confinedFS) Unlink(p string) wsys.Errno {
	return c.remove(p, false)
}

// remove checks the kind of the final component (so that Rmdir of a file
// says ENOTDIR and Unlink of a directory EISDIR, as POSIX does) and removes
// it. A concurrent swap between the check and the removal can only change
// the error number: os.Root never removes anything outside the root.
func (c *confinedFS) remove(p string, dir bool) wsys.Errno {
	if c.readOnly {
		return wsys.EROFS
	}
	name := rel(p)
	fi, err := c.root.Lstat(name)
	if err != nil {
		return toErrno(err)
	}
	switch {
	case dir && !fi.IsDir():
		return wsys.ENOTDIR
	case !dir && fi.IsDir():
		return wsys.EISDIR
	}
	return toErrno(c.root.Remove(name))
}

// Link creates a hard link within the root.
func (c *confinedFS) Link(oldPath, newPath string) wsys.Errno {
	if c.readOnly {
		return wsys.EROFS
	}
	return toErrno(c.root.Link(rel(oldPath), rel(newPath)))
}

// Symlink creates a symbolic link. Absolute targets are refused; relative
// targets are stored as given and can never be followed out of the root.
func (c *confinedFS) Symlink(target, link string) wsys.Errno {
	if c.readOnly {
		return wsys.EROFS
	}
	if path.IsAbs(target) {
		return wsys.EPERM
	}
	return toErrno(c.root.Symlink(target, rel(link)))
}

// Readlink returns a symbolic link's target.
func (c *confinedFS) Readlink(p string) (string, wsys.Errno) {
	s, err := c.root.Readlink(rel(p))
	if err != nil {
		return "", toErrno(err)
	}
	return s, 0
}

// Utimens sets access and modification times, following symbolic links
// beneath the root. The file is opened with O_PATH through the root and
// changed through its /proc/self/fd magic link, so the times of a file
// outside the root can never be touched.
func (c *confinedFS) Utimens(p string, atim, mtim int64) wsys.Errno {
	if c.readOnly {
		return wsys.EROFS
	}
	f, err := c.root.OpenFile(rel(p), unix.O_PATH, 0)
	if err != nil {
		return toErrno(err)
	}
	defer f.Close()
	return utimensFd(f.Fd(), atim, mtim)
}

// utimensFd sets the times of an open file descriptor.
func utimensFd(fd uintptr, atim, mtim int64) wsys.Errno {
	ts := []unix.Timespec{timespec(atim), timespec(mtim)}
	err := unix.UtimesNanoAt(unix.AT_FDCWD, "/proc/self/fd/"+strconv.FormatUint(uint64(fd), 10), ts, 0)
	return toErrno(err)
}

func timespec(ns int64) unix.Timespec {
	if ns == wsys.UTIME_OMIT {
		return unix.Timespec{Nsec: unix.UTIME_OMIT}
	}
	return unix.NsecToTimespec(ns)
}

// toErrno converts a host error to a WASI errno. Errors without an errno
// are os.Root refusing a path that leaves the root: EPERM, the same answer
// wazero gives for "../" escapes.
func toErrno(err error) wsys.Errno {
	if err == nil {
		return 0
	}
	var en syscall.Errno
	switch {
	case errors.As(err, &en):
		return wsys.UnwrapOSError(en)
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, fs.ErrExist), errors.Is(err, fs.ErrClosed),
		errors.Is(err, fs.ErrInvalid):
		return wsys.UnwrapOSError(err)
	}
	return wsys.EPERM
}
