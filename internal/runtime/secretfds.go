package runtime

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/kavach-sandbox/kavach/credential"
)

// Secret descriptors (ExecRequest.Files): each fd number of the payload is
// the read end of a pipe that holds the given bytes; nothing touches disk
// and nothing is in the environment.
//
// crun and runc: the pipes are passed to "runtime exec --preserve-fds N"
// at their numbers (3 .. 3+N-1); numbers the request leaves out are
// /dev/null. runsc's exec has no such flag: there the bytes travel at the
// head of the exec's stdin and the exec helper, inside gVisor, reads
// exactly that many bytes, makes the pipes, moves them to their numbers and
// execs the command, which then reads the rest of stdin as its own.

// MaxSecretFD is the highest descriptor number a secret may be given.
const MaxSecretFD = 255

// maxSecretBytes bounds one secret passed through gVisor's helper: the
// helper fills the pipe before it execs the payload, so it must fit the
// pipe's buffer (raised to this size with F_SETPIPE_SZ).
const maxSecretBytes = 1 << 20

// ErrSecretFD reports an unusable ExecRequest.Files entry.
var ErrSecretFD = errors.New("secret descriptor")

// secretTargets validates the requested numbers and returns them sorted.
func secretTargets(files map[int][]byte, viaHelper bool) ([]int, error) {
	fds := make([]int, 0, len(files))
	for fd, data := range files {
		if fd < 3 || fd > MaxSecretFD {
			return nil, fmt.Errorf("%w %d: must be 3..%d", ErrSecretFD, fd, MaxSecretFD)
		}
		if viaHelper && len(data) > maxSecretBytes {
			return nil, fmt.Errorf("%w %d: %d bytes, at most %d under gVisor", ErrSecretFD, fd, len(data), maxSecretBytes)
		}
		fds = append(fds, fd)
	}
	slices.Sort(fds)
	return fds, nil
}

// secretPipes are the host side of the secret descriptors of one exec.
type secretPipes struct {
	// child are the files for exec.Cmd.ExtraFiles: index i is fd 3+i.
	child []*os.File
	// stop ends the writers (they wipe their copies) when the exec ends.
	stop context.CancelFunc
}

// newSecretPipes makes one pipe per secret, fed by credential.PipeFor from
// a private copy, and /dev/null for the numbers in between.
func newSecretPipes(ctx context.Context, files map[int][]byte, fds []int) (*secretPipes, error) {
	if len(fds) == 0 {
		return &secretPipes{}, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &secretPipes{stop: cancel}
	for fd := 3; fd <= fds[len(fds)-1]; fd++ {
		var f *os.File
		var err error
		if data, ok := files[fd]; ok {
			f, err = credential.PipeFor(ctx, data)
		} else {
			f, err = os.Open(os.DevNull)
		}
		if err != nil {
			s.close()
			return nil, fmt.Errorf("%w %d: %w", ErrSecretFD, fd, err)
		}
		s.child = append(s.child, f)
	}
	return s, nil
}

// started closes the parent's copies of the child's ends.
func (s *secretPipes) started() {
	for _, f := range s.child {
		_ = f.Close()
	}
	s.child = nil
}

// close releases everything (after the exec ended): a writer still blocked
// on a payload that never read returns.
func (s *secretPipes) close() {
	s.started()
	if s.stop != nil {
		s.stop()
	}
}

// helperSecrets encodes the secrets for gVisor's helper: the option string
// ("fd=N:LEN" entries) and the bytes to put before the exec's stdin.
//
// The head is one private copy of exact size (no copies left behind by a
// growing buffer), which the caller wipes once the exec has ended.
func helperSecrets(files map[int][]byte, fds []int) ([]string, []byte) {
	opts := make([]string, 0, len(fds))
	n := 0
	for _, fd := range fds {
		opts = append(opts, "fd="+strconv.Itoa(fd)+":"+strconv.Itoa(len(files[fd])))
		n += len(files[fd])
	}
	head := make([]byte, 0, n)
	for _, fd := range fds {
		head = append(head, files[fd]...)
	}
	return opts, head
}

// withHead returns stdin preceded by head (nil stdin: head alone).
func withHead(head []byte, stdin io.Reader) io.Reader {
	if len(head) == 0 {
		return stdin
	}
	if stdin == nil {
		return bytes.NewReader(head)
	}
	return io.MultiReader(bytes.NewReader(head), stdin)
}

// helperFD is one secret the helper installs.
type helperFD struct{ fd, size int }

// parseHelperFD parses "fd=N:LEN".
func parseHelperFD(opt string) (helperFD, error) {
	n, size, ok := strings.Cut(strings.TrimPrefix(opt, "fd="), ":")
	fd, err1 := strconv.Atoi(n)
	sz, err2 := strconv.Atoi(size)
	if !ok || err1 != nil || err2 != nil || fd < 3 || fd > MaxSecretFD || sz < 0 || sz > maxSecretBytes {
		return helperFD{}, fmt.Errorf("bad option %q", opt)
	}
	return helperFD{fd, sz}, nil
}

// installSecrets runs in the helper: read each secret from stdin (exactly
// its length, unbuffered), put it into a pipe and move the read end to its
// number. The sources are first moved above every target so that no move
// closes another's source.
func installSecrets(secrets []helperFD) error {
	top := 0
	for _, s := range secrets {
		top = max(top, s.fd)
	}
	srcs := make([]int, len(secrets))
	for i, s := range secrets {
		fd, err := secretPipe(s.size, top+1)
		if err != nil {
			return fmt.Errorf("fd %d: %w", s.fd, err)
		}
		srcs[i] = fd
	}
	for i, s := range secrets {
		if err := unix.Dup3(srcs[i], s.fd, 0); err != nil {
			return fmt.Errorf("fd %d: %w", s.fd, err)
		}
		unix.Close(srcs[i])
	}
	return nil
}

// secretPipe reads size bytes from stdin into a new pipe and returns the
// pipe's read end, close-on-exec, at a number of at least min.
func secretPipe(size, min int) (int, error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return -1, err
	}
	defer unix.Close(p[1])
	if size > 0 {
		if _, err := unix.FcntlInt(uintptr(p[1]), unix.F_SETPIPE_SZ, size); err != nil {
			unix.Close(p[0])
			return -1, fmt.Errorf("pipe size: %w", err)
		}
	}
	if err := copyExact(p[1], 0, size); err != nil {
		unix.Close(p[0])
		return -1, err
	}
	fd, err := unix.FcntlInt(uintptr(p[0]), unix.F_DUPFD_CLOEXEC, min)
	unix.Close(p[0])
	return fd, err
}

// copyExact copies n bytes from fd src to fd dst with plain reads, never
// reading past them.
func copyExact(dst, src, n int) error {
	buf := make([]byte, min(n, 32<<10))
	for n > 0 {
		r, err := unix.Read(src, buf[:min(n, len(buf))])
		if err == unix.EINTR {
			continue
		}
		if err != nil || r == 0 {
			return fmt.Errorf("read secret from stdin: %v", errors.Join(err, io.ErrUnexpectedEOF))
		}
		if _, err := unix.Write(dst, buf[:r]); err != nil {
			return fmt.Errorf("fill pipe: %w", err)
		}
		n -= r
	}
	return nil
}
