package egress

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"strings"
	"sync"
	"sync/atomic"
)

// tunnel is the fixed destination of requests read inside a CONNECT tunnel.
type tunnel struct {
	t      target
	scheme string // "http", or "https" when the proxy terminated TLS
}

// serveHTTP answers requests read from rr until the client closes, a
// request asks to close, or a request is denied. With tun == nil the session
// is a forward proxy (absolute-URI requests and CONNECT); otherwise every
// request goes to the tunnel's destination.
func (s *session) serveHTTP(rr *reqReader, w io.Writer, tun *tunnel) {
	for s.ctx.Err() == nil {
		req, err := rr.read()
		if err != nil {
			if !errors.Is(err, io.EOF) && !isNetError(err) {
				s.deny(w, "", target{}, err)
			}
			return
		}
		if req.Method == http.MethodConnect {
			if tun != nil {
				s.deny(w, req.Method, tun.t, fmt.Errorf("%w: CONNECT inside a tunnel", ErrBadRequest))
				return
			}
			s.handleConnect(req)
			return
		}
		if !s.handleRequest(w, req, tun) {
			return
		}
	}
}

// handleRequest checks and forwards one request and reports whether the
// connection may carry another.
func (s *session) handleRequest(w io.Writer, req *http.Request, tun *tunnel) bool {
	t, scheme, err := requestTarget(req, tun)
	if err != nil {
		s.deny(w, req.Method, t, err)
		return false
	}
	out, body, restore, err := s.p.prepare(req, t, scheme)
	if err != nil {
		s.deny(w, req.Method, t, err)
		return false
	}
	if expectsContinue(req) {
		body.cont = w
	}
	resp, err := s.p.transport.RoundTrip(out.WithContext(s.ctx))
	body.responding()
	if err != nil {
		if !errors.Is(err, ErrAddressNotAllowed) && !errors.Is(err, ErrProxyItself) && !errors.Is(err, ErrUpstream) {
			err = fmt.Errorf("%w: %v", ErrUpstream, err)
		}
		s.deny(w, req.Method, t, err)
		return false
	}
	defer resp.Body.Close()
	if c := s.p.clean; c != nil {
		if err := cleanResponse(resp, c.with(restore), s.p.isBound(t)); err != nil {
			s.deny(w, req.Method, t, err)
			return false
		}
	}
	s.allow(req.Method, t, "forward "+scheme)
	if err := writeResponse(w, resp, req.Close); err != nil {
		return false
	}
	// Keep the connection only when its framing is known: the response
	// asked for no close and the request body was read to its end.
	return !resp.Close && !req.Close && body.done()
}

// requestTarget returns the destination of req and checks that its Host
// header names the same host (no domain fronting).
func requestTarget(req *http.Request, tun *tunnel) (target, string, error) {
	if tun != nil {
		if req.URL.IsAbs() || req.URL.Host != "" {
			if err := sameHost(req.URL.Host, tun.t); err != nil {
				return tun.t, tun.scheme, err
			}
		}
		hosts := req.Header.Values("Host")
		if len(hosts) != 1 {
			return tun.t, tun.scheme, fmt.Errorf("%w: request needs exactly one Host header", ErrBadRequest)
		}
		return tun.t, tun.scheme, sameHost(hosts[0], tun.t)
	}
	switch {
	case req.URL.Scheme == "https":
		return target{}, "", fmt.Errorf("%w: use CONNECT for https", ErrBadRequest)
	case req.URL.Scheme != "http" || req.URL.Host == "":
		return target{}, "", fmt.Errorf("%w: not a proxy request (absolute http:// URI required)", ErrBadRequest)
	}
	t, err := parseTarget(req.URL.Host, 80)
	if err != nil {
		return target{}, "", err
	}
	switch hosts := req.Header.Values("Host"); len(hosts) {
	case 0:
		return t, "http", nil
	case 1:
		return t, "http", sameHost(hosts[0], t)
	default:
		return t, "http", fmt.Errorf("%w: several Host headers", ErrHostMismatch)
	}
}

// sameHost checks that a Host value names t: the same host, and the same
// port when it gives one.
func sameHost(hostport string, t target) error {
	h, err := parseTarget(hostport, t.port)
	if err != nil || h.host != t.host || h.port != t.port {
		return fmt.Errorf("%w: Host %q does not match request target %s", ErrHostMismatch, hostport, t)
	}
	return nil
}

// hopHeaders are connection-scoped headers a proxy must not forward.
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

func removeHopHeaders(h http.Header) {
	for _, v := range h["Connection"] {
		for _, name := range strings.Split(v, ",") {
			if name = textproto.TrimString(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, name := range hopHeaders {
		h.Del(name)
	}
}

// prepare checks req against the allowlist and the credential bindings and
// returns the request to send upstream, and the forms to restore in its
// response (see applyCredentials).
func (p *Proxy) prepare(req *http.Request, t target, scheme string) (*http.Request, *bodyTracker, []*form, error) {
	if !anyMatch(p.cfg.Allow, t) {
		return nil, nil, nil, fmt.Errorf("%w: %s", ErrHostNotAllowed, t)
	}
	out := req.Clone(req.Context())
	out.RequestURI = ""
	out.URL.Scheme, out.URL.Host = scheme, t.String()
	if h := req.Header.Get("Host"); h != "" {
		out.Host = h // already checked to name t; forwarded as the client wrote it
	}
	out.Header.Del("Host")
	removeHopHeaders(out.Header)
	out.Header.Del("Expect") // answered by the proxy itself
	if _, ok := out.Header["User-Agent"]; !ok {
		out.Header["User-Agent"] = []string{""} // stops the transport adding its own
	}
	restore, err := p.applyCredentials(out, t, scheme)
	if err != nil {
		return nil, nil, nil, err
	}
	body := &bodyTracker{ReadCloser: req.Body}
	if req.Body == nil || req.Body == http.NoBody {
		body.eof.Store(true)
	} else {
		out.Body = body
	}
	return out, body, restore, nil
}

// bodyTracker records whether a request body was read to its end, and
// answers "Expect: 100-continue" when the body is first read.
type bodyTracker struct {
	io.ReadCloser
	eof  atomic.Bool
	mu   sync.Mutex
	cont io.Writer // where to send "100 Continue"; nil once sent or once the response started
}

func (b *bodyTracker) Read(p []byte) (int, error) {
	b.mu.Lock()
	if b.cont != nil {
		_, err := io.WriteString(b.cont, "HTTP/1.1 100 Continue\r\n\r\n")
		b.cont = nil
		if err != nil {
			b.mu.Unlock()
			return 0, err
		}
	}
	b.mu.Unlock()
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.eof.Store(true)
	}
	return n, err
}

// responding stops any later "100 Continue", so that it cannot interleave
// with the response.
func (b *bodyTracker) responding() {
	b.mu.Lock()
	b.cont = nil
	b.mu.Unlock()
}

// expectsContinue reports whether the client waits for "100 Continue"
// before it sends the body.
func expectsContinue(req *http.Request) bool {
	return req.ProtoAtLeast(1, 1) && req.ContentLength != 0 &&
		strings.EqualFold(strings.TrimSpace(req.Header.Get("Expect")), "100-continue")
}

func (b *bodyTracker) done() bool { return b.eof.Load() }

// respBufferSize is the write buffer for responses to the client.
const respBufferSize = 16 << 10

// writeResponse writes resp to the client. Header and body chunks are
// buffered, and the buffer is flushed before every wait for more upstream
// data, so streamed responses reach the client without delay.
func writeResponse(w io.Writer, resp *http.Response, closeAfter bool) error {
	removeHopHeaders(resp.Header)
	resp.Close = resp.Close || closeAfter
	bw := bufio.NewWriterSize(w, respBufferSize)
	if resp.ContentLength < 0 || resp.ContentLength > respBufferSize {
		// Possibly streamed: pass each piece on as soon as it arrives. A
		// small body of known length goes out with the header in one write.
		resp.Body = &flushingBody{ReadCloser: resp.Body, w: bw}
	}
	if err := resp.Write(writerOnly{bw}); err != nil {
		return fmt.Errorf("write response: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write response: %w", err)
	}
	return nil
}

// flushingBody flushes w before each read of the upstream body.
type flushingBody struct {
	io.ReadCloser
	w *bufio.Writer
}

func (b *flushingBody) Read(p []byte) (int, error) {
	if err := b.w.Flush(); err != nil {
		return 0, err
	}
	return b.ReadCloser.Read(p)
}

// writerOnly hides the ReadFrom method of a bufio.Writer, which would
// otherwise read the body into the very buffer flushingBody flushes.
type writerOnly struct{ w io.Writer }

func (w writerOnly) Write(p []byte) (int, error) { return w.w.Write(p) }
