package egress

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

// Defaults for the limits in Config.
const (
	DefaultMaxHeaderBytes = 32 << 10
	DefaultMaxConns       = 256
	DefaultIdleTimeout    = 2 * time.Minute

	// minPlaceholderBytes is the shortest placeholder New accepts: shorter
	// ones would match ordinary request text.
	minPlaceholderBytes = 8
	// hostAddrRefresh is how often the host's interface addresses are re-read.
	hostAddrRefresh = 5 * time.Second
)

// Substitution binds a secret to hosts: the sandbox holds Placeholder, and the
// proxy replaces it with Secret only in requests to Hosts.
type Substitution struct {
	Placeholder string
	Secret      []byte
	Hosts       []Rule
}

// HeaderRule sets a header on every request to Hosts, for example
// "Authorization: Bearer <secret>". Value is never shown to the sandbox.
type HeaderRule struct {
	Hosts  []Rule
	Header string
	Value  string
}

// Config configures a Proxy. The zero value denies everything.
type Config struct {
	// Allow lists the destinations the sandbox may reach.
	Allow []Rule
	// Substitutions swap placeholders for secrets in requests to bound hosts.
	Substitutions []Substitution
	// Headers add headers to requests to bound hosts.
	Headers []HeaderRule
	// Resolve looks up host names; nil means net.DefaultResolver.
	Resolve func(ctx context.Context, host string) ([]netip.Addr, error)
	// Dial connects to a checked "ip:port"; nil means a net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// AllowPrivate lists non-public ranges the proxy may dial anyway. Empty
	// by default; tests use it for upstream servers on loopback.
	AllowPrivate []netip.Prefix
	// UpstreamRoots verifies upstream TLS where the proxy terminates TLS;
	// nil means the host's system roots.
	UpstreamRoots *x509.CertPool
	// OnEvent receives every decision, synchronously: it must not block.
	OnEvent func(Event)
	// MaxHeaderBytes bounds a request's header (default DefaultMaxHeaderBytes).
	MaxHeaderBytes int
	// MaxConns bounds concurrent client connections (default DefaultMaxConns).
	MaxConns int
	// IdleTimeout closes a client connection, or a tunnel, after this long
	// without traffic in either direction (default DefaultIdleTimeout).
	IdleTimeout time.Duration
}

// Proxy is kavach's egress proxy. It is safe for concurrent use; one Proxy may
// serve several listeners.
type Proxy struct {
	cfg       Config
	subs      []substitution
	bound     []Rule     // every host rule that a substitution or header rule names
	ca        *authority // nil when no host needs TLS termination
	clean     *cleaner   // the secrets (nil when none): cleaned from responses, leaks in requests
	scrub     *cleaner   // the secrets and placeholders, redacted from events and error texts
	transport *http.Transport
	own       hostAddrs
	sem       chan struct{}

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	listeners map[net.Listener]netip.AddrPort
}

// substitution is a validated Substitution.
type substitution struct {
	placeholder string
	secret      string
	hosts       []Rule
}

// New validates cfg and returns a Proxy. When a substitution or header rule
// binds hosts, it generates the per-proxy CA (ECDSA P-256) used to terminate
// TLS for those hosts.
func New(cfg Config) (*Proxy, error) {
	if err := normalizeConfig(&cfg); err != nil {
		return nil, err
	}
	subs, err := validateSubstitutions(cfg.Substitutions)
	if err != nil {
		return nil, err
	}
	if err := validateHeaderRules(cfg.Headers); err != nil {
		return nil, err
	}
	p := &Proxy{
		cfg:       cfg,
		subs:      subs,
		sem:       make(chan struct{}, cfg.MaxConns),
		own:       hostAddrs{refresh: hostAddrRefresh},
		listeners: make(map[net.Listener]netip.AddrPort),
	}
	p.bound = boundRules(cfg)
	p.clean, p.scrub = secretCleaners(subs, cfg.Headers)
	if len(p.bound) > 0 {
		if p.ca, err = newAuthority(p.bound); err != nil {
			return nil, fmt.Errorf("egress: %w", err)
		}
	}
	p.transport = p.newTransport()
	p.ctx, p.cancel = context.WithCancel(context.Background())
	return p, nil
}

// normalizeConfig applies defaults and normalizes every rule in place.
func normalizeConfig(cfg *Config) error {
	if cfg.MaxHeaderBytes <= 0 {
		cfg.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.Resolve == nil {
		cfg.Resolve = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}
	}
	if cfg.Dial == nil {
		d := &net.Dialer{Timeout: 30 * time.Second}
		cfg.Dial = d.DialContext
	}
	cfg.AllowPrivate = slices.Clone(cfg.AllowPrivate)
	for i, pfx := range cfg.AllowPrivate {
		if pfx.Addr().Is4In6() && pfx.Bits() >= 96 {
			cfg.AllowPrivate[i] = netip.PrefixFrom(pfx.Addr().Unmap(), pfx.Bits()-96)
		}
	}
	var err error
	if cfg.Allow, err = normalizeRules(cfg.Allow); err != nil {
		return err
	}
	for i := range cfg.Substitutions {
		s := &cfg.Substitutions[i]
		if s.Hosts, err = normalizeRules(s.Hosts); err != nil {
			return err
		}
	}
	for i := range cfg.Headers {
		h := &cfg.Headers[i]
		if h.Hosts, err = normalizeRules(h.Hosts); err != nil {
			return err
		}
	}
	return nil
}

// normalizeRules returns a copy of rules with host names normalized, so rules
// built as struct literals behave like parsed ones.
func normalizeRules(rules []Rule) ([]Rule, error) {
	out := make([]Rule, len(rules))
	for i, r := range rules {
		if r.Port < 0 || r.Port > 65535 {
			return nil, fmt.Errorf("egress: %w: %s: port out of range", ErrInvalidRule, r)
		}
		if r.IP.IsValid() {
			r.IP, r.Host, r.Wildcard = r.IP.Unmap().WithZone(""), "", false
		} else {
			h, err := normalizeHost(r.Host)
			if err != nil {
				return nil, fmt.Errorf("egress: %w %q: %v", ErrInvalidRule, r.Host, err)
			}
			r.Host = h
		}
		out[i] = r
	}
	return out, nil
}

func validateSubstitutions(in []Substitution) ([]substitution, error) {
	out := make([]substitution, 0, len(in))
	seen := make(map[string]bool)
	for i, s := range in {
		if err := checkSubstitution(s); err != nil {
			return nil, fmt.Errorf("egress: %w: substitution %d: %v", ErrInvalidConfig, i, err)
		}
		if seen[s.Placeholder] {
			return nil, fmt.Errorf("egress: %w: substitution %d: duplicate placeholder", ErrInvalidConfig, i)
		}
		seen[s.Placeholder] = true
		out = append(out, substitution{placeholder: s.Placeholder, secret: string(s.Secret), hosts: s.Hosts})
	}
	return out, nil
}

func checkSubstitution(s Substitution) error {
	switch {
	case len(s.Placeholder) < minPlaceholderBytes:
		return fmt.Errorf("placeholder shorter than %d bytes", minPlaceholderBytes)
	case !printableNoSpace(s.Placeholder):
		return errors.New("placeholder must be printable ASCII without spaces")
	case len(s.Secret) == 0:
		return errors.New("empty secret")
	case strings.ContainsAny(string(s.Secret), "\r\n\x00"):
		return errors.New("secret contains CR, LF or NUL")
	case strings.Contains(string(s.Secret), s.Placeholder):
		return errors.New("placeholder occurs in the secret")
	case len(s.Hosts) == 0:
		return errors.New("no hosts bound")
	}
	return nil
}

func printableNoSpace(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// forbiddenHeaders are headers a HeaderRule may not set: they frame the
// request or route it.
var forbiddenHeaders = map[string]bool{
	"Host": true, "Content-Length": true, "Transfer-Encoding": true, "Connection": true,
	"Te": true, "Trailer": true, "Upgrade": true, "Keep-Alive": true, "Proxy-Connection": true,
}

func validateHeaderRules(rules []HeaderRule) error {
	for i, h := range rules {
		name := http.CanonicalHeaderKey(h.Header)
		switch {
		case !isToken(h.Header):
			return fmt.Errorf("egress: %w: header rule %d: invalid header name", ErrInvalidConfig, i)
		case forbiddenHeaders[name]:
			return fmt.Errorf("egress: %w: header rule %d: header %s cannot be set", ErrInvalidConfig, i, name)
		case strings.ContainsAny(h.Value, "\r\n\x00"):
			return fmt.Errorf("egress: %w: header rule %d: value contains CR, LF or NUL", ErrInvalidConfig, i)
		case len(h.Hosts) == 0:
			return fmt.Errorf("egress: %w: header rule %d: no hosts bound", ErrInvalidConfig, i)
		}
	}
	return nil
}

// isToken reports whether s is an RFC 9110 token (a valid header name).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
		if !ok {
			return false
		}
	}
	return true
}

// secretCleaners returns the cleaner of responses and requests (secrets
// of substitutions and values of header rules, with what replaces them in
// responses) and the cleaner of events, which also knows the placeholders.
func secretCleaners(subs []substitution, headers []HeaderRule) (clean, scrub *cleaner) {
	var entries []secretEntry
	for _, s := range subs {
		entries = append(entries, secretEntry{secret: s.secret, rep: s.placeholder, hosts: s.hosts})
	}
	for _, h := range headers {
		if !credentialHeader(h.Header) {
			continue // e.g. "Accept: application/json": cleaning it would break responses
		}
		// A header rule's value has no placeholder. Its credentials
		// ("Bearer <token>") are what a server echoes most often.
		for _, v := range headerSecrets(h) {
			if len(v) >= minFormSecret {
				entries = append(entries, secretEntry{secret: v, rep: redactedMarker, hosts: h.Hosts})
			}
		}
	}
	all := slices.Clone(entries)
	for _, s := range subs {
		all = append(all, secretEntry{secret: s.placeholder, rep: redactedMarker, hosts: s.hosts})
	}
	return newCleaner(entries), newCleaner(all)
}

// headerSecrets returns the values of a credential header rule that a
// server may echo: the whole value; the credentials after the scheme (the
// token of "Bearer <token>"); for "Basic" credentials, the decoded
// "user:password" and the password; for a Cookie rule, each cookie's value
// (servers list the cookies they got, decoded from the header).
func headerSecrets(h HeaderRule) []string {
	values := []string{h.Value}
	if scheme, cred, ok := strings.Cut(h.Value, " "); ok {
		cred = strings.TrimLeft(cred, " ")
		values = append(values, cred)
		if strings.EqualFold(scheme, "Basic") {
			if plain, err := base64.StdEncoding.DecodeString(cred); err == nil {
				values = append(values, string(plain))
				if _, pw, ok := strings.Cut(string(plain), ":"); ok {
					values = append(values, pw)
				}
			}
		}
	}
	if strings.EqualFold(h.Header, "Cookie") {
		for _, pair := range strings.Split(h.Value, ";") {
			if _, v, ok := strings.Cut(pair, "="); ok {
				values = append(values, strings.Trim(strings.TrimSpace(v), `"`))
			}
		}
	}
	return values
}

// credentialHeader reports whether a header rule for name sets a
// credential, whose value is then treated as a secret.
func credentialHeader(name string) bool {
	name = strings.ToLower(name)
	switch name {
	case "authorization", "proxy-authorization", "cookie":
		return true
	}
	for _, word := range []string{"auth", "key", "token", "secret", "password", "passwd", "session", "signature", "credential"} {
		if strings.Contains(name, word) {
			return true
		}
	}
	return false
}

func boundRules(cfg Config) []Rule {
	var out []Rule
	for _, s := range cfg.Substitutions {
		out = append(out, s.Hosts...)
	}
	for _, h := range cfg.Headers {
		out = append(out, h.Hosts...)
	}
	return out
}

func (p *Proxy) newTransport() *http.Transport {
	return &http.Transport{
		DialContext:            p.dialUpstream,
		TLSClientConfig:        &tls.Config{RootCAs: p.cfg.UpstreamRoots, MinVersion: tls.VersionTLS12},
		TLSNextProto:           map[string]func(string, *tls.Conn) http.RoundTripper{}, // HTTP/1.1 only
		TLSHandshakeTimeout:    30 * time.Second,
		DisableCompression:     true,
		MaxIdleConns:           64,
		MaxIdleConnsPerHost:    8,
		IdleConnTimeout:        p.cfg.IdleTimeout,
		MaxResponseHeaderBytes: 1 << 20,
	}
}

// CACertPEM returns the PEM certificate of the proxy's CA, for the sandbox's
// trust store, or nil when no host needs TLS termination. The CA is name
// constrained to the bound hosts.
func (p *Proxy) CACertPEM() []byte {
	if p.ca == nil {
		return nil
	}
	return append([]byte(nil), p.ca.certPEM...)
}

// Serve accepts connections on l until ctx is done, l is closed or the Proxy
// is closed. It closes l and every connection it accepted, waits for their
// handlers and returns nil; any other accept failure is returned.
func (p *Proxy) Serve(ctx context.Context, l net.Listener) error {
	if err := p.register(l); err != nil {
		l.Close()
		return err
	}
	defer p.wg.Done()
	defer p.removeListener(l)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(p.ctx, cancel)
	defer stop()
	context.AfterFunc(ctx, func() { l.Close() })

	var conns sync.WaitGroup
	defer conns.Wait()
	defer cancel() // runs before conns.Wait: tells the connections to finish
	return p.acceptLoop(ctx, l, &conns)
}

func (p *Proxy) acceptLoop(ctx context.Context, l net.Listener, conns *sync.WaitGroup) error {
	var backoff time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			if !isTemporary(err) {
				return fmt.Errorf("egress: accept: %w", err)
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			select {
			case <-time.After(backoff):
				continue
			case <-ctx.Done():
				return nil
			}
		}
		backoff = 0
		select {
		case p.sem <- struct{}{}:
		default:
			p.rejectBusy(c)
			continue
		}
		conns.Add(1)
		go func() {
			defer conns.Done()
			defer func() { <-p.sem }()
			p.serveConn(ctx, c)
		}()
	}
}

// isTemporary reports accept errors worth retrying (file descriptor
// exhaustion, aborted handshakes).
func isTemporary(err error) bool {
	var ne interface{ Temporary() bool }
	return errors.As(err, &ne) && ne.Temporary()
}

// rejectBusy answers a connection over the MaxConns limit with 503.
func (p *Proxy) rejectBusy(c net.Conn) {
	defer c.Close()
	err := fmt.Errorf("%w (limit %d)", ErrTooManyConns, p.cfg.MaxConns)
	p.emit(Event{Kind: KindDeny, Reason: err.Error()})
	c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	writeError(c, err)
}

// register records l as one of the proxy's own addresses and counts the Serve
// call for Close.
func (p *Proxy) register(l net.Listener) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ctx.Err() != nil {
		return fmt.Errorf("egress: serve: %w", net.ErrClosed)
	}
	var ap netip.AddrPort
	if ta, ok := l.Addr().(*net.TCPAddr); ok {
		ap = ta.AddrPort()
		ap = netip.AddrPortFrom(ap.Addr().Unmap().WithZone(""), ap.Port())
	}
	p.listeners[l] = ap
	p.wg.Add(1)
	return nil
}

func (p *Proxy) removeListener(l net.Listener) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.listeners, l)
}

// isSelf reports whether ap is one of the proxy's own TCP listeners.
func (p *Proxy) isSelf(ap netip.AddrPort) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, la := range p.listeners {
		if !la.IsValid() || la.Port() != ap.Port() {
			continue
		}
		a := ap.Addr()
		if la.Addr() == a {
			return true
		}
		if la.Addr().IsUnspecified() && (a.IsLoopback() || a.IsUnspecified() || p.own.get()[a]) {
			return true
		}
	}
	return false
}

// Close stops every Serve call, closes all connections and waits for them.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.cancel()
	p.mu.Unlock()
	p.wg.Wait()
	p.transport.CloseIdleConnections()
	return nil
}

// emit delivers an event to Config.OnEvent.
func (p *Proxy) emit(e Event) {
	if p.cfg.OnEvent == nil {
		return
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	p.cfg.OnEvent(e)
}
