package wasm

import (
	"errors"
	"io"
	"os"

	wsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/sys"
	"golang.org/x/sys/unix"
)

// file is a WASI file backed by a host descriptor that confinedFS opened
// beneath its root. Every operation works on the descriptor, never on a
// path, so nothing done through it can reach another file.
type file struct {
	seeker[int64]
	f        *os.File
	fd       int
	readOnly bool
	appendOn bool
	closed   bool
	st       *sys.Stat_t // cached by Dev, Ino and IsDir
}

func newFile(f *os.File, readOnly, appendOn bool) *file {
	return &file{seeker: seeker[int64]{f}, f: f, fd: int(f.Fd()), readOnly: readOnly, appendOn: appendOn}
}

func (x *file) cached() (*sys.Stat_t, wsys.Errno) {
	if x.st == nil {
		st, errno := x.Stat()
		if errno != 0 {
			return nil, errno
		}
		x.st = &st
	}
	return x.st, 0
}

// Dev returns the device id.
func (x *file) Dev() (uint64, wsys.Errno) {
	st, errno := x.cached()
	if errno != 0 {
		return 0, errno
	}
	return st.Dev, 0
}

// Ino returns the inode number.
func (x *file) Ino() (sys.Inode, wsys.Errno) {
	st, errno := x.cached()
	if errno != 0 {
		return 0, errno
	}
	return st.Ino, 0
}

// IsDir reports whether the file is a directory.
func (x *file) IsDir() (bool, wsys.Errno) {
	st, errno := x.cached()
	if errno != 0 {
		return false, errno
	}
	return st.Mode.IsDir(), 0
}

// IsAppend reports whether writes append.
func (x *file) IsAppend() bool { return x.appendOn }

// SetAppend toggles O_APPEND with fcntl (Linux allows it on an open file).
func (x *file) SetAppend(enable bool) wsys.Errno {
	if x.closed {
		return wsys.EBADF
	}
	fl, err := unix.FcntlInt(uintptr(x.fd), unix.F_GETFL, 0)
	if err != nil {
		return toErrno(err)
	}
	if enable {
		fl |= unix.O_APPEND
	} else {
		fl &^= unix.O_APPEND
	}
	if _, err := unix.FcntlInt(uintptr(x.fd), unix.F_SETFL, fl); err != nil {
		return toErrno(err)
	}
	x.appendOn = enable
	return 0
}

// Stat is fstat(2).
func (x *file) Stat() (sys.Stat_t, wsys.Errno) {
	if x.closed {
		return sys.Stat_t{}, wsys.EBADF
	}
	fi, err := x.f.Stat()
	if err != nil {
		return sys.Stat_t{}, toErrno(err)
	}
	return sys.NewStat_t(fi), 0
}

// Read is read(2).
func (x *file) Read(buf []byte) (int, wsys.Errno) {
	if x.closed {
		return 0, wsys.EBADF
	}
	if len(buf) == 0 {
		return 0, 0
	}
	return result(retry(func() (int, error) { return unix.Read(x.fd, buf) }))
}

// Pread is pread(2).
func (x *file) Pread(buf []byte, off int64) (int, wsys.Errno) {
	if x.closed {
		return 0, wsys.EBADF
	}
	if off < 0 {
		return 0, wsys.EINVAL
	}
	return result(retry(func() (int, error) { return unix.Pread(x.fd, buf, off) }))
}

// seeker gives file its Seek method: lseek(2) through os.File, so that a
// rewound directory also restarts Readdir, and a closed file says EBADF.
// It is generic only because go vet's stdmethods check wants any method
// named Seek to have io.Seeker's signature, which wazero's File interface
// does not use; Off is always int64.
type seeker[Off ~int64] struct{ f *os.File }

// Seek sets the offset of the next Read or Write.
func (s seeker[Off]) Seek(offset Off, whence int) (Off, wsys.Errno) {
	n, err := s.f.Seek(int64(offset), whence)
	return Off(n), toErrno(err)
}

// Readdir returns up to n entries (all when n <= 0), with their inode
// numbers: Go's wasip1 runtime skips entries whose inode is zero.
func (x *file) Readdir(n int) ([]wsys.Dirent, wsys.Errno) {
	if x.closed {
		return nil, wsys.EBADF
	}
	entries, err := x.f.ReadDir(n)
	if err != nil && !errors.Is(err, io.EOF) {
		if errno := toErrno(err); errno != wsys.ENOTDIR {
			return nil, errno
		}
		return nil, wsys.EBADF
	}
	out := make([]wsys.Dirent, 0, len(entries))
	for _, e := range entries {
		var st unix.Stat_t
		if err := unix.Fstatat(x.fd, e.Name(), &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			continue // removed since it was listed
		}
		out = append(out, wsys.Dirent{Ino: st.Ino, Name: e.Name(), Type: e.Type()})
	}
	return out, 0
}

// Write is write(2).
func (x *file) Write(buf []byte) (int, wsys.Errno) {
	if x.closed || x.readOnly {
		return 0, wsys.EBADF
	}
	if len(buf) == 0 {
		return 0, 0
	}
	return result(retry(func() (int, error) { return unix.Write(x.fd, buf) }))
}

// Pwrite is pwrite(2).
func (x *file) Pwrite(buf []byte, off int64) (int, wsys.Errno) {
	if x.closed || x.readOnly {
		return 0, wsys.EBADF
	}
	if off < 0 {
		return 0, wsys.EINVAL
	}
	return result(retry(func() (int, error) { return unix.Pwrite(x.fd, buf, off) }))
}

// Truncate is ftruncate(2).
func (x *file) Truncate(size int64) wsys.Errno {
	switch {
	case x.closed:
		return wsys.EBADF
	case size < 0:
		return wsys.EINVAL
	}
	dir, errno := x.IsDir()
	switch {
	case errno != 0:
		return errno
	case dir:
		return wsys.EISDIR
	case x.readOnly:
		return wsys.EBADF
	}
	return toErrno(unix.Ftruncate(x.fd, size))
}

// Sync is fsync(2).
func (x *file) Sync() wsys.Errno {
	if x.closed {
		return wsys.EBADF
	}
	return toErrno(unix.Fsync(x.fd))
}

// Datasync is fdatasync(2).
func (x *file) Datasync() wsys.Errno {
	if x.closed {
		return wsys.EBADF
	}
	return toErrno(unix.Fdatasync(x.fd))
}

// Utimens sets the file's times; refused on a read-only preopen.
func (x *file) Utimens(atim, mtim int64) wsys.Errno {
	switch {
	case x.closed:
		return wsys.EBADF
	case x.readOnly:
		return wsys.EROFS
	}
	return utimensFd(uintptr(x.fd), atim, mtim)
}

// Close closes the descriptor; later calls do nothing.
func (x *file) Close() wsys.Errno {
	if x.closed {
		return 0
	}
	x.closed = true
	return toErrno(x.f.Close())
}

// retry repeats a system call interrupted by a signal.
func retry(call func() (int, error)) (int, error) {
	for {
		n, err := call()
		if !errors.Is(err, unix.EINTR) {
			return n, err
		}
	}
}

func result(n int, err error) (int, wsys.Errno) {
	if n < 0 {
		n = 0
	}
	return n, toErrno(err)
}
