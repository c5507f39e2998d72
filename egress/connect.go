package egress

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

const (
	established = "HTTP/1.1 200 Connection established\r\n\r\n"
	// recordTypeHandshake is the first byte of a TLS ClientHello record.
	recordTypeHandshake = 0x16
	// extensionECH is the encrypted_client_hello extension, which would hide
	// the real server name behind an allowed outer one.
	extensionECH = 0xfe0d
)

// opener answers the client's request to open a tunnel, in the client's
// protocol (HTTP CONNECT or SOCKS5).
type opener interface {
	// method names the request in events ("CONNECT", "SOCKS5").
	method() string
	// established tells the client the tunnel is open.
	established() error
	// refuse tells the client why the tunnel is refused.
	refuse(err error)
}

// httpOpener answers an HTTP CONNECT.
type httpOpener struct{ w io.Writer }

func (httpOpener) method() string       { return http.MethodConnect }
func (o httpOpener) established() error { _, err := io.WriteString(o.w, established); return err }
func (o httpOpener) refuse(err error)   { writeError(o.w, err) }

// handleConnect serves a CONNECT request.
func (s *session) handleConnect(req *http.Request) {
	t, err := parseTarget(req.RequestURI, 0)
	s.openTunnel(httpOpener{s.conn}, t, err)
}

// openTunnel applies the tunnel policy to t and serves the tunnel. parseErr
// is the client's malformed target, if any.
func (s *session) openTunnel(o opener, t target, parseErr error) {
	refuse := func(err error) {
		err = s.p.scrubErr(err)
		s.report(o.method(), t, err)
		o.refuse(err)
	}
	switch {
	case parseErr != nil:
		refuse(parseErr)
	case !anyMatch(s.p.cfg.Allow, t):
		refuse(fmt.Errorf("%w: %s", ErrHostNotAllowed, t))
	case s.p.isBound(t):
		// Check now for a clear refusal; the transport re-resolves and
		// re-checks when it dials.
		if _, err := s.p.checkedAddrs(s.ctx, t); err != nil {
			refuse(err)
			return
		}
		s.terminate(o, t)
	default:
		aps, err := s.p.checkedAddrs(s.ctx, t)
		if err != nil {
			refuse(err)
			return
		}
		up, err := s.p.dialAddrs(s.ctx, aps)
		if err != nil {
			refuse(err)
			return
		}
		s.tunnel(o, t, &activityConn{Conn: up, idle: s.idle})
	}
}

// isBound reports whether a substitution or header rule names t, which makes
// the proxy terminate TLS for it.
func (p *Proxy) isBound(t target) bool { return anyMatch(p.bound, t) }

// tunnel relays an unbound tunnel to the dialed upstream. A name target must
// open with a TLS ClientHello whose SNI is the target host, or speak HTTP
// (then every request is checked); an IP-literal target is relayed as is,
// its first bytes searched for placeholders.
func (s *session) tunnel(o opener, t target, up net.Conn) {
	s.closeOnDone(up)
	defer up.Close()
	if err := o.established(); err != nil {
		return
	}
	if t.ip.IsValid() {
		s.allow(o.method(), t, "tunnel")
		s.relay(up, nil, s.leakScan(o.method(), t))
		return
	}
	first, err := s.peekFirst()
	if err != nil {
		return
	}
	switch {
	case first == recordTypeHandshake:
		hello, err := s.sniffHello(t)
		if err != nil {
			s.report(o.method(), t, err)
			return
		}
		s.allow(o.method(), t, "tunnel (TLS, SNI checked)")
		s.relay(up, hello, nil)
	case s.looksLikeHTTP():
		up.Close() // every request is checked and forwarded on its own
		s.allow(o.method(), t, "tunnel (HTTP, requests checked)")
		s.serveHTTP(s.rr, s.conn, &tunnel{t: t, scheme: "http"})
	default:
		s.report(o.method(), t, fmt.Errorf("%w: %s: a tunnel to a host name must start with TLS or HTTP", ErrHostMismatch, t))
	}
}

// terminate serves a tunnel to a bound host: the proxy completes TLS with a
// certificate from its CA and forwards each request itself.
func (s *session) terminate(o opener, t target) {
	if err := o.established(); err != nil {
		return
	}
	first, err := s.peekFirst()
	switch {
	case err != nil:
		return
	case first != recordTypeHandshake && s.looksLikeHTTP():
		s.allow(o.method(), t, "tunnel (HTTP, requests checked)")
		s.serveHTTP(s.rr, s.conn, &tunnel{t: t, scheme: "http"})
		return
	case first != recordTypeHandshake:
		s.report(o.method(), t, fmt.Errorf("%w: %s: a tunnel to a bound host must speak TLS or HTTP", ErrBadRequest, t))
		return
	}
	tc, err := s.handshake(t)
	if err != nil {
		s.report(o.method(), t, err)
		return
	}
	s.allow(o.method(), t, "tunnel (TLS terminated)")
	s.serveHTTP(newReqReader(tc, s.p.cfg.MaxHeaderBytes), tc, &tunnel{t: t, scheme: "https"})
}

// handshake completes the client's TLS handshake with a leaf for t.
func (s *session) handshake(t target) (*tls.Conn, error) {
	var sniErr error
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"http/1.1"},
		GetCertificate: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
			if sniErr = checkHello(t, h.ServerName, h.Extensions); sniErr != nil {
				return nil, sniErr
			}
			return s.p.ca.leaf(t.host)
		},
	}
	tc := tls.Server(&bufferedConn{Conn: s.conn, r: s.rr.br}, cfg)
	s.closeOnDone(tc)
	if err := tc.HandshakeContext(s.ctx); err != nil {
		if sniErr != nil {
			return nil, sniErr
		}
		return nil, fmt.Errorf("%w: TLS handshake with the client: %v", ErrBadRequest, err)
	}
	return tc, nil
}

// checkHello enforces that a ClientHello names t: for a host name the SNI
// must equal it, and an encrypted ClientHello (which could hide another
// name) is refused.
func checkHello(t target, sni string, extensions []uint16) error {
	for _, e := range extensions {
		if e == extensionECH {
			return fmt.Errorf("%w: %s: encrypted ClientHello hides the server name", ErrHostMismatch, t)
		}
	}
	if t.ip.IsValid() {
		return nil
	}
	if sni == "" {
		return fmt.Errorf("%w: %s: TLS ClientHello has no SNI", ErrHostMismatch, t)
	}
	if name, err := normalizeHost(sni); err != nil || name != t.host {
		return fmt.Errorf("%w: TLS SNI %q does not match CONNECT host %s", ErrHostMismatch, sni, t)
	}
	return nil
}

// peekFirst waits for the first byte the client sends into the tunnel.
func (s *session) peekFirst() (byte, error) {
	b, err := s.rr.br.Peek(1)
	if err != nil {
		return 0, err
	}
	return b[0], nil
}

// looksLikeHTTP reports whether the buffered tunnel data starts with an
// HTTP request line ("METHOD SP ...").
func (s *session) looksLikeHTTP() bool {
	b, _ := s.rr.br.Peek(min(s.rr.br.Buffered(), 16))
	for i, c := range b {
		switch {
		case c == ' ':
			return i > 0
		case c < 'A' || c > 'Z':
			return false
		}
	}
	return false
}

// errHelloRead stops the TLS handshake used to parse a ClientHello.
var errHelloRead = errors.New("client hello read")

// sniffHello reads the client's TLS ClientHello without answering it, checks
// its SNI against t and returns the bytes consumed, to be replayed upstream.
func (s *session) sniffHello(t target) ([]byte, error) {
	var seen bytes.Buffer
	var sni string
	var exts []uint16
	probe := tls.Server(&sniffConn{r: io.TeeReader(s.rr.br, &seen)}, &tls.Config{
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			sni, exts = h.ServerName, h.Extensions
			return nil, errHelloRead
		},
	})
	if err := probe.HandshakeContext(s.ctx); !errors.Is(err, errHelloRead) {
		return nil, fmt.Errorf("%w: %s: malformed TLS ClientHello: %v", ErrBadRequest, t, err)
	}
	if err := checkHello(t, sni, exts); err != nil {
		return nil, err
	}
	return seen.Bytes(), nil
}

// sniffConn feeds a ClientHello to crypto/tls and swallows its replies.
type sniffConn struct{ r io.Reader }

func (c *sniffConn) Read(b []byte) (int, error)       { return c.r.Read(b) }
func (c *sniffConn) Write(b []byte) (int, error)      { return len(b), nil }
func (c *sniffConn) Close() error                     { return nil }
func (c *sniffConn) SetDeadline(time.Time) error      { return nil }
func (c *sniffConn) SetReadDeadline(time.Time) error  { return nil }
func (c *sniffConn) SetWriteDeadline(time.Time) error { return nil }
func (c *sniffConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *sniffConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }

// bufferedConn reads through r, which holds bytes already read from Conn.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(b []byte) (int, error) { return c.r.Read(b) }

// leakScan returns a check of everything a client sends into an opaque
// tunnel: any credential placeholder there, or the real value of a secret
// in any form the cleaner knows, is a leak (no secret is bound to a host
// whose tunnel stays opaque). It keeps the last bytes of each chunk so that
// a value split across reads is found.
func (s *session) leakScan(method string, t target) func([]byte) error {
	c := s.p.clean
	if c == nil {
		return nil
	}
	keep := c.window
	for _, sub := range s.p.subs {
		keep = max(keep, len(sub.placeholder)-1)
	}
	unbound := func(owner int) bool { return !anyMatch(c.owners[owner].hosts, t) }
	var window []byte
	return func(b []byte) error {
		window = append(window, b...)
		var err error
		for _, sub := range s.p.subs {
			if bytes.Contains(window, []byte(sub.placeholder)) {
				err = fmt.Errorf("%w: %s", ErrCredentialLeak, t)
			}
		}
		if err == nil && leakIn(c, window, false, unbound) {
			err = fmt.Errorf("%w: %s (the real value of a secret)", ErrCredentialLeak, t)
		}
		if err != nil {
			s.report(method, t, err)
			return err
		}
		if len(window) > keep {
			window = append(window[:0], window[len(window)-keep:]...)
		}
		return nil
	}
}

// relay copies between the client and up until both directions end, the
// session is cancelled, or check rejects what the client sends. prefix is
// sent upstream before anything else.
func (s *session) relay(up net.Conn, prefix []byte, check func([]byte) error) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := copyStream(s.conn, up, nil); err != nil {
			s.cancel()
		}
		closeWrite(s.conn)
	}()
	if _, err := up.Write(prefix); err == nil {
		if err := copyStream(up, s.rr.br, check); err != nil {
			s.cancel() // a rejected or broken stream ends both directions
		}
	}
	closeWrite(up)
	<-done
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
}

// copyStream copies src to dst through a pooled buffer; check, when set,
// sees each chunk before it is forwarded.
func copyStream(dst io.Writer, src io.Reader, check func([]byte) error) error {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			if check != nil {
				if err := check(buf[:n]); err != nil {
					return err
				}
			}
			if _, err := dst.Write(buf[:n]); err != nil {
				return err
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}
