package egress

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
)

// SOCKS5 (RFC 1928) constants.
const (
	socksVersion     = 0x05
	socksNoAuth      = 0x00
	socksNoMethod    = 0xff
	socksCmdConnect  = 0x01
	socksAtypIPv4    = 0x01
	socksAtypDomain  = 0x03
	socksAtypIPv6    = 0x04
	socksMethodLabel = "SOCKS5"

	socksSucceeded       = 0x00
	socksGeneralFailure  = 0x01
	socksNotAllowed      = 0x02
	socksHostUnreachable = 0x04
	socksCmdUnsupported  = 0x07
	socksAtypUnsupported = 0x08
)

// serveSOCKS serves a SOCKS5 client: no authentication, CONNECT only (no
// BIND, no UDP). The tunnel obeys exactly the policy of an HTTP CONNECT.
func (s *session) serveSOCKS() {
	if err := s.socksGreet(); err != nil {
		return
	}
	t, err := s.socksRequest()
	var unsupported *socksError
	if errors.As(err, &unsupported) {
		s.report(socksMethodLabel, t, err)
		socksOpener{s.conn}.reply(unsupported.code)
		return
	}
	if err != nil && isNetError(err) {
		return
	}
	s.openTunnel(socksOpener{s.conn}, t, err)
}

// socksGreet negotiates the authentication method: only "none" is offered.
func (s *session) socksGreet() error {
	var hdr [2]byte
	if _, err := io.ReadFull(s.rr.br, hdr[:]); err != nil {
		return err
	}
	methods := make([]byte, hdr[1])
	if _, err := io.ReadFull(s.rr.br, methods); err != nil {
		return err
	}
	for _, m := range methods {
		if m == socksNoAuth {
			_, err := s.conn.Write([]byte{socksVersion, socksNoAuth})
			return err
		}
	}
	s.conn.Write([]byte{socksVersion, socksNoMethod})
	err := fmt.Errorf("%w: SOCKS5 client offers no supported authentication method", ErrBadRequest)
	s.report(socksMethodLabel, target{}, err)
	return err
}

// socksError is a request the proxy refuses with a specific SOCKS reply code.
type socksError struct {
	code byte
	msg  string
}

func (e *socksError) Error() string { return e.msg }
func (e *socksError) Unwrap() error { return ErrBadRequest }

// socksRequest reads the client's request and returns its target.
func (s *session) socksRequest() (target, error) {
	var hdr [4]byte // VER CMD RSV ATYP
	if _, err := io.ReadFull(s.rr.br, hdr[:]); err != nil {
		return target{}, err
	}
	host, err := s.socksAddr(hdr[3])
	if err != nil {
		return target{}, err
	}
	var port [2]byte
	if _, err := io.ReadFull(s.rr.br, port[:]); err != nil {
		return target{}, err
	}
	hostport := net.JoinHostPort(host, strconv.Itoa(int(binary.BigEndian.Uint16(port[:]))))
	t, perr := parseTarget(hostport, 0)
	switch {
	case hdr[0] != socksVersion:
		return t, fmt.Errorf("%w: SOCKS version %d", ErrBadRequest, hdr[0])
	case hdr[1] != socksCmdConnect:
		return t, &socksError{socksCmdUnsupported, fmt.Sprintf("SOCKS5 command %d not supported (CONNECT only; no UDP)", hdr[1])}
	}
	return t, perr
}

// socksAddr reads a DST.ADDR of type atyp.
func (s *session) socksAddr(atyp byte) (string, error) {
	var b []byte
	switch atyp {
	case socksAtypIPv4:
		b = make([]byte, 4)
	case socksAtypIPv6:
		b = make([]byte, 16)
	case socksAtypDomain:
		n, err := s.rr.br.ReadByte()
		if err != nil {
			return "", err
		}
		b = make([]byte, n)
	default:
		return "", &socksError{socksAtypUnsupported, fmt.Sprintf("SOCKS5 address type %d not supported", atyp)}
	}
	if _, err := io.ReadFull(s.rr.br, b); err != nil {
		return "", err
	}
	if atyp == socksAtypDomain {
		return string(b), nil
	}
	ip, _ := netip.AddrFromSlice(b)
	return ip.String(), nil
}

// socksOpener answers a SOCKS5 CONNECT.
type socksOpener struct{ w io.Writer }

func (socksOpener) method() string       { return socksMethodLabel }
func (o socksOpener) established() error { return o.reply(socksSucceeded) }
func (o socksOpener) refuse(err error)   { o.reply(socksReplyFor(err)) }

// reply sends a SOCKS5 reply; the bound address is not disclosed.
func (o socksOpener) reply(code byte) error {
	_, err := o.w.Write([]byte{socksVersion, code, 0, socksAtypIPv4, 0, 0, 0, 0, 0, 0})
	return err
}

func socksReplyFor(err error) byte {
	switch {
	case errors.Is(err, ErrUpstream):
		return socksHostUnreachable
	case errors.Is(err, ErrBadRequest):
		return socksGeneralFailure
	default:
		return socksNotAllowed
	}
}
