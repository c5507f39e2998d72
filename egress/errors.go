package egress

import (
	"errors"
	"net/http"
	"time"
)

// Sentinel errors. Denials returned to clients and reported in events wrap one
// of these, so callers can classify them with errors.Is.
var (
	// ErrInvalidRule reports an allowlist entry that cannot be parsed.
	ErrInvalidRule = errors.New("invalid allowlist entry")
	// ErrInvalidConfig reports a Config that New refuses.
	ErrInvalidConfig = errors.New("invalid egress config")
	// ErrHostNotAllowed reports a target that no allowlist rule matches.
	ErrHostNotAllowed = errors.New("host not in allowlist")
	// ErrAddressNotAllowed reports a target that resolved to a forbidden address.
	ErrAddressNotAllowed = errors.New("destination address not allowed")
	// ErrProxyItself reports a request whose destination is the proxy's own listener.
	ErrProxyItself = errors.New("destination is the egress proxy itself")
	// ErrHostMismatch reports a Host header or TLS SNI that differs from the request target.
	ErrHostMismatch = errors.New("host mismatch")
	// ErrCredentialLeak reports a credential placeholder sent to a host it is not bound to.
	ErrCredentialLeak = errors.New("credential placeholder sent to a host it is not bound to")
	// ErrCredentialChannel reports a placeholder for a bound host where the
	// proxy will not put the secret: over plain http (anyone on the path
	// would read it), or in the URL (servers echo paths and queries back).
	ErrCredentialChannel = errors.New("secrets are only substituted in request headers over https")
	// ErrHeaderTooLarge reports a request whose header exceeds Config.MaxHeaderBytes.
	ErrHeaderTooLarge = errors.New("request header too large")
	// ErrTooManyConns reports a connection refused because Config.MaxConns are active.
	ErrTooManyConns = errors.New("too many connections")
	// ErrBadRequest reports a request the proxy cannot interpret.
	ErrBadRequest = errors.New("bad request")
	// ErrUpstream reports a failure to reach or talk to an allowed upstream.
	ErrUpstream = errors.New("upstream failure")
)

// Event kinds.
const (
	KindAllow = "allow"
	KindDeny  = "deny"
	KindLeak  = "leak"
)

// Event is one proxy decision. It never carries secret values or placeholders.
type Event struct {
	Time   time.Time
	Kind   string // KindAllow, KindDeny or KindLeak
	Host   string // target host as requested (normalized), or "" when unknown
	Port   int
	Reason string // why: the denial error text, or what was allowed ("tunnel", "forward", ...)
	Method string // HTTP method ("CONNECT", "GET", ...), "SOCKS5", or "" when no request was read
}

// statusFor maps a denial to the HTTP status the client receives.
func statusFor(err error) int {
	switch {
	case errors.Is(err, ErrHeaderTooLarge):
		return http.StatusRequestHeaderFieldsTooLarge
	case errors.Is(err, ErrTooManyConns):
		return http.StatusServiceUnavailable
	case errors.Is(err, ErrBadRequest):
		return http.StatusBadRequest
	case errors.Is(err, ErrUpstream):
		return http.StatusBadGateway
	default:
		return http.StatusForbidden
	}
}

// kindFor maps a failure to its event kind. An upstream failure happened
// after the policy let the connection through, so it is reported as an allow
// whose reason names the failure.
func kindFor(err error) string {
	switch {
	case errors.Is(err, ErrCredentialLeak):
		return KindLeak
	case errors.Is(err, ErrUpstream):
		return KindAllow
	default:
		return KindDeny
	}
}
