package wasm

import (
	"bytes"
	"context"
	"io"
	"strings"
	"time"
)

// maxStdinRead bounds one read of the caller's stdin.
const maxStdinRead = 64 << 10

// stdinFor returns the module's stdin for one exec and a function to call
// when the exec ends. In-memory readers never block and are used as they
// are; any other reader is wrapped in an execStdin.
func stdinFor(ctx context.Context, r io.Reader) (io.Reader, func()) {
	switch r.(type) {
	case nil:
		return bytes.NewReader(nil), func() {}
	case *bytes.Reader, *strings.Reader, *bytes.Buffer:
		return r, func() {}
	}
	s := &execStdin{ctx: ctx, r: r}
	return s, s.close
}

// execStdin feeds the caller's stdin to one exec without letting the exec
// outlive its context, and without taking more from the caller's reader
// than the module reads:
//
//   - The caller's reader is read only when the module reads, never
//     ahead, and at most as much as the module asked for. A module that
//     never reads stdin leaves the reader untouched for a later exec.
//   - Each read runs in a goroutine, so that a module blocked reading
//     stdin still meets its timeout: when the exec's context ends, Read
//     returns EOF at once.
//   - When the exec ends with a read still blocked in the caller's
//     reader, close interrupts it with SetReadDeadline where the reader
//     has one (os.File pipes and sockets, net.Conn), waits for the read
//     goroutine and clears the deadline again, so nothing outlives the
//     exec and nothing is consumed. A reader without deadlines cannot be
//     interrupted: its read goroutine ends when that read returns, and
//     the bytes it returns are dropped.
//
// wazero calls Read only from the exec's goroutine, which also calls
// close after the module ended, so execStdin needs no lock.
type execStdin struct {
	ctx     context.Context
	r       io.Reader
	buf     []byte
	pending chan readResult // the read left running when ctx ended
	cut     bool            // a Read returned EOF because ctx ended
}

// cutShort reports whether the module read an end of input that was only
// the end of its exec's context: whatever it did next (a filter exits 0 at
// EOF) is a consequence of kavach stopping it, not its own result.
func cutShort(r io.Reader) bool {
	s, ok := r.(*execStdin)
	return ok && s.cut
}

type readResult struct {
	n   int
	err error
}

// Read implements io.Reader for the module.
func (s *execStdin) Read(p []byte) (int, error) {
	if s.pending != nil || s.ctx.Err() != nil {
		s.cut = true
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	n := min(len(p), maxStdinRead)
	if cap(s.buf) < n {
		s.buf = make([]byte, n)
	}
	buf := s.buf[:n]
	done := make(chan readResult, 1)
	go func() {
		n, err := s.r.Read(buf)
		done <- readResult{n, err}
	}()
	select {
	case res := <-done:
		return copy(p, buf[:res.n]), res.err
	case <-s.ctx.Done():
		s.pending, s.cut = done, true
		return 0, io.EOF
	}
}

// readDeadliner is a reader whose blocked reads can be interrupted.
type readDeadliner interface {
	SetReadDeadline(time.Time) error
}

// close ends the read left running when the exec's context ended, if
// the reader allows it.
func (s *execStdin) close() {
	if s.pending == nil {
		return
	}
	d, ok := s.r.(readDeadliner)
	if !ok || d.SetReadDeadline(time.Now()) != nil {
		return // the read goroutine ends when the caller's reader returns
	}
	<-s.pending
	_ = d.SetReadDeadline(time.Time{})
}
