package egress

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Rule is one allowlist entry.
type Rule struct {
	// Host is the normalized host name (lower-case ASCII, no trailing dot).
	// For a wildcard rule it is the domain below the "*." prefix. It is empty
	// for IP rules.
	Host string
	// Wildcard makes the rule match subdomains of Host only, never Host itself.
	Wildcard bool
	// Port restricts the rule to one port; 0 means ports 80 and 443.
	Port int
	// IP is set when the entry is an IP literal.
	IP netip.Addr
}

// ParseRule parses an allowlist entry: "host", "*.host", "host:port",
// "1.2.3.4", "1.2.3.4:8080", "::1" or "[::1]:443". Host names are compared as
// ASCII: internationalized names must be given in punycode form.
func ParseRule(s string) (Rule, error) {
	r, err := parseRule(s)
	if err != nil {
		return Rule{}, fmt.Errorf("%w %q: %s", ErrInvalidRule, s, err)
	}
	return r, nil
}

func parseRule(s string) (Rule, error) {
	if s == "" {
		return Rule{}, fmt.Errorf("empty entry")
	}
	if ip, err := netip.ParseAddr(s); err == nil {
		return ipRule(ip, 0)
	}
	host, port := s, 0
	if h, p, err := net.SplitHostPort(s); err == nil {
		n, err := parsePort(p)
		if err != nil {
			return Rule{}, err
		}
		host, port = h, n
	} else if strings.ContainsAny(s, "[]") || strings.Count(s, ":") > 0 {
		return Rule{}, fmt.Errorf("malformed host:port: %v", err)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return ipRule(ip, port)
	}
	wildcard := false
	if rest, ok := strings.CutPrefix(host, "*."); ok {
		wildcard, host = true, rest
	}
	name, err := normalizeHost(host)
	if err != nil {
		return Rule{}, err
	}
	if wildcard && !strings.Contains(name, ".") {
		return Rule{}, fmt.Errorf("wildcard over a top-level domain is too broad")
	}
	return Rule{Host: name, Wildcard: wildcard, Port: port}, nil
}

func ipRule(ip netip.Addr, port int) (Rule, error) {
	if ip.Zone() != "" {
		return Rule{}, fmt.Errorf("IP zones are not allowed")
	}
	return Rule{IP: ip.Unmap(), Port: port}, nil
}

func parsePort(p string) (int, error) {
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 || p[0] == '+' || p[0] == '0' {
		return 0, fmt.Errorf("port %q out of range 1-65535", p)
	}
	return n, nil
}

// normalizeHost lower-cases an ASCII host name, strips one trailing dot and
// validates it. Non-ASCII names are refused: they must arrive as punycode.
func normalizeHost(h string) (string, error) {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return "", fmt.Errorf("host name length out of range")
	}
	b := []byte(h)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
	}
	h = string(b)
	for _, label := range strings.Split(h, ".") {
		if err := checkLabel(label); err != nil {
			return "", err
		}
	}
	return h, nil
}

func checkLabel(l string) error {
	if l == "" || len(l) > 63 {
		return fmt.Errorf("empty or over-long label in host name")
	}
	if l[0] == '-' || l[len(l)-1] == '-' {
		return fmt.Errorf("label %q starts or ends with a hyphen", l)
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		ok := 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_'
		if !ok {
			return fmt.Errorf("invalid character %q in host name", c)
		}
	}
	return nil
}

// String returns the rule in the form ParseRule accepts.
func (r Rule) String() string {
	host := r.Host
	switch {
	case r.IP.IsValid():
		host = r.IP.String()
		if r.Port != 0 {
			return netip.AddrPortFrom(r.IP, uint16(r.Port)).String()
		}
		return host
	case r.Wildcard:
		host = "*." + host
	}
	if r.Port != 0 {
		return host + ":" + strconv.Itoa(r.Port)
	}
	return host
}

// portMatches reports whether the rule admits port.
func (r Rule) portMatches(port int) bool {
	if r.Port == 0 {
		return port == 80 || port == 443
	}
	return port == r.Port
}

// matches reports whether the rule admits target t.
func (r Rule) matches(t target) bool {
	if !r.portMatches(t.port) {
		return false
	}
	if r.IP.IsValid() || t.ip.IsValid() {
		return r.IP.IsValid() && t.ip.IsValid() && r.IP == t.ip
	}
	if r.Wildcard {
		return len(t.host) > len(r.Host)+1 && strings.HasSuffix(t.host, "."+r.Host)
	}
	return t.host == r.Host
}

// matchesAddr reports whether the rule names address ap literally.
func (r Rule) matchesAddr(ap netip.AddrPort) bool {
	return r.IP.IsValid() && r.IP == ap.Addr().Unmap() && r.portMatches(int(ap.Port()))
}

func anyMatch(rules []Rule, t target) bool {
	for _, r := range rules {
		if r.matches(t) {
			return true
		}
	}
	return false
}

// target is a normalized destination: a host name or an IP literal, and a port.
type target struct {
	host string     // normalized name, or the IP literal's text form
	ip   netip.Addr // set for IP-literal targets (unmapped)
	port int
}

func (t target) String() string {
	if t.ip.IsValid() {
		return netip.AddrPortFrom(t.ip, uint16(t.port)).String()
	}
	return net.JoinHostPort(t.host, strconv.Itoa(t.port))
}

// parseTarget parses "host:port" (or "host" with defaultPort when
// defaultPort != 0) into a normalized target.
func parseTarget(hostport string, defaultPort int) (target, error) {
	host, portStr, err := net.SplitHostPort(hostport)
	if err != nil {
		if defaultPort == 0 {
			return target{}, fmt.Errorf("%w: target %q: %v", ErrBadRequest, hostport, err)
		}
		host, portStr = strings.TrimSuffix(strings.TrimPrefix(hostport, "["), "]"), strconv.Itoa(defaultPort)
	}
	port, err := parsePort(portStr)
	if err != nil {
		return target{}, fmt.Errorf("%w: target %q: %v", ErrBadRequest, hostport, err)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Zone() != "" {
			return target{}, fmt.Errorf("%w: target %q: IP zones are not allowed", ErrBadRequest, hostport)
		}
		ip = ip.Unmap()
		return target{host: ip.String(), ip: ip, port: port}, nil
	}
	name, err := normalizeHost(host)
	if err != nil {
		return target{}, fmt.Errorf("%w: target %q: %v", ErrBadRequest, hostport, err)
	}
	return target{host: name, port: port}, nil
}
