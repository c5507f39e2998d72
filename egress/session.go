package egress

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"sync"
	"sync/atomic"
	"time"
)

// session is one client connection.
type session struct {
	p      *Proxy
	ctx    context.Context // cancelled when the connection ends or goes idle
	cancel context.CancelFunc
	conn   net.Conn // the client, wrapped to record activity
	rr     *reqReader
	idle   *idleWatch
}

func (p *Proxy) serveConn(ctx context.Context, c net.Conn) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	idle := newIdleWatch(p.cfg.IdleTimeout, cancel)
	defer idle.stop()
	conn := &activityConn{Conn: c, idle: idle}
	context.AfterFunc(ctx, func() { c.Close() })
	s := &session{p: p, ctx: ctx, cancel: cancel, conn: conn, idle: idle}
	s.rr = newReqReader(conn, p.cfg.MaxHeaderBytes)
	if first, err := s.rr.br.Peek(1); err == nil && first[0] == socksVersion {
		s.serveSOCKS()
		return
	}
	s.serveHTTP(s.rr, conn, nil)
}

// closeOnDone closes c when the session ends.
func (s *session) closeOnDone(c io.Closer) {
	context.AfterFunc(s.ctx, func() { c.Close() })
}

// deny reports err as an event and answers the client with an HTTP error.
func (s *session) deny(w io.Writer, method string, t target, err error) {
	err = s.p.scrubErr(err)
	s.report(method, t, err)
	writeError(w, err)
}

// report emits the event for a failed request or tunnel.
func (s *session) report(method string, t target, err error) {
	err = s.p.scrubErr(err)
	s.p.emit(Event{Kind: kindFor(err), Host: t.host, Port: t.port, Reason: err.Error(), Method: method})
}

// scrubErr returns err with every secret and placeholder in its text
// redacted. Upstream failures quote what the server sent (a malformed
// status line, the names of its certificate), and the text goes both to the
// sandbox and to the audit log.
func (p *Proxy) scrubErr(err error) error {
	if p.scrub == nil {
		return err
	}
	msg := err.Error()
	if clean := p.scrub.cleanString(msg, true); clean != msg {
		return &scrubbedError{msg: clean, err: err}
	}
	return err
}

// scrubbedError is an error with a redacted text; errors.Is still sees the
// sentinel it wraps.
type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }

// allow emits an allow event.
func (s *session) allow(method string, t target, reason string) {
	s.p.emit(Event{Kind: KindAllow, Host: t.host, Port: t.port, Reason: reason, Method: method})
}

// writeError writes a complete "Connection: close" HTTP error response whose
// body names the reason.
func writeError(w io.Writer, err error) error {
	status := statusFor(err)
	body := "kavach egress: " + err.Error() + "\n"
	_, werr := fmt.Fprintf(w, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"+
		"Content-Length: %d\r\nConnection: close\r\n\r\n%s", status, http.StatusText(status), len(body), body)
	return werr
}

// idleWatch cancels a session after a period without traffic. Activity is
// recorded with one atomic store; a single timer re-arms itself lazily.
type idleWatch struct {
	timeout time.Duration
	base    time.Time
	last    atomic.Int64 // nanoseconds since base (monotonic)
	stopped atomic.Bool
	timer   *time.Timer
	expire  func()
}

func newIdleWatch(timeout time.Duration, expire func()) *idleWatch {
	w := &idleWatch{timeout: timeout, base: time.Now(), expire: expire}
	w.timer = time.AfterFunc(timeout, w.check)
	return w
}

func (w *idleWatch) touch() { w.last.Store(int64(time.Since(w.base))) }

func (w *idleWatch) check() {
	if w.stopped.Load() {
		return
	}
	quiet := time.Since(w.base) - time.Duration(w.last.Load())
	if quiet >= w.timeout {
		w.expire()
		return
	}
	w.timer.Reset(w.timeout - quiet)
}

func (w *idleWatch) stop() {
	w.stopped.Store(true)
	w.timer.Stop()
}

// activityConn records every successful read and write on an idleWatch.
type activityConn struct {
	net.Conn
	idle *idleWatch
}

func (c *activityConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.idle.touch()
	}
	return n, err
}

func (c *activityConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	if n > 0 {
		c.idle.touch()
	}
	return n, err
}

// CloseWrite half-closes the connection when the underlying one supports it.
func (c *activityConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// reqReader reads HTTP requests with a bound on header size. The header is
// first peeked whole from the buffer, which enforces the bound before any
// parsing and keeps the Host header values that http.ReadRequest drops for
// absolute-URI requests.
type reqReader struct {
	br  *bufio.Reader
	max int
}

func newReqReader(r io.Reader, maxHeader int) *reqReader {
	return &reqReader{br: bufio.NewReaderSize(r, max(maxHeader, 4096)), max: maxHeader}
}

// read returns the next request, io.EOF when the peer closed cleanly
// between requests, or an error wrapping ErrHeaderTooLarge or ErrBadRequest.
func (rr *reqReader) read() (*http.Request, error) {
	head, err := rr.peekHeader()
	if err != nil {
		return nil, err
	}
	hosts := hostValues(head)
	req, err := http.ReadRequest(rr.br)
	if err != nil {
		if isNetError(err) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	if len(hosts) > 0 {
		req.Header["Host"] = hosts
	}
	return req, nil
}

// peekHeader waits until the buffer holds a complete request header and
// returns it without consuming it.
func (rr *reqReader) peekHeader() ([]byte, error) {
	want := 1
	for {
		b, err := rr.br.Peek(want)
		if end := headerEnd(b); end >= 0 {
			return b[:end], nil
		}
		switch {
		case len(b) >= rr.max:
			return nil, fmt.Errorf("%w (limit %d bytes)", ErrHeaderTooLarge, rr.max)
		case len(b) == 0 && errors.Is(err, io.EOF):
			return nil, io.EOF
		case errors.Is(err, io.EOF):
			return nil, io.ErrUnexpectedEOF
		case err != nil:
			return nil, err
		}
		want = len(b) + 1 // block for at least one more byte
		if n := rr.br.Buffered(); n > len(b) {
			want = n // more is already buffered
		}
		want = min(want, rr.max)
	}
}

// headerEnd returns the length of the header block at the start of b (up to
// and including the empty line), or -1.
func headerEnd(b []byte) int {
	for i := bytes.IndexByte(b, '\n'); i >= 0; {
		rest := b[i+1:]
		switch {
		case bytes.HasPrefix(rest, []byte("\n")):
			return i + 2
		case bytes.HasPrefix(rest, []byte("\r\n")):
			return i + 3
		}
		j := bytes.IndexByte(rest, '\n')
		if j < 0 {
			return -1
		}
		i += j + 1
	}
	return -1
}

// hostValues returns the Host header values of a raw request header, parsed
// exactly as net/http parses it.
func hostValues(head []byte) []string {
	tp := textproto.NewReader(bufio.NewReader(bytes.NewReader(head)))
	if _, err := tp.ReadLine(); err != nil {
		return nil
	}
	h, err := tp.ReadMIMEHeader()
	if err != nil {
		return nil
	}
	return h.Values("Host")
}

// isNetError reports read failures of the connection itself (closed, reset,
// timed out), which deserve no answer.
func isNetError(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrUnexpectedEOF)
}

// bufPool holds copy buffers for tunnels and response bodies.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}
