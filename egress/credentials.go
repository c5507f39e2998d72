package egress

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// applyCredentials enforces the credential bindings on a request to t: a
// placeholder bound to t is replaced by its secret, a placeholder not bound
// to t blocks the request as a leak, and header rules for t set their
// headers. Placeholders are looked for in header values (including inside
// "Basic" credentials), the URL path, query and user info. Bodies are
// neither searched nor rewritten.
func (p *Proxy) applyCredentials(req *http.Request, t target) error {
	var bound []substitution
	for _, s := range p.subs {
		if !requestContains(req, s.placeholder) {
			continue
		}
		if !anyMatch(s.hosts, t) {
			return fmt.Errorf("%w: %s", ErrCredentialLeak, t)
		}
		bound = append(bound, s)
	}
	for _, s := range bound {
		substitute(req, s)
	}
	for _, h := range p.cfg.Headers {
		if anyMatch(h.Hosts, t) {
			req.Header.Set(h.Header, h.Value)
		}
	}
	return nil
}

// requestContains reports whether ph occurs anywhere substitute looks.
func requestContains(req *http.Request, ph string) bool {
	for name, vs := range req.Header {
		if strings.Contains(name, ph) {
			return true
		}
		for _, v := range vs {
			if strings.Contains(v, ph) || strings.Contains(decodeBasic(v), ph) {
				return true
			}
		}
	}
	u := req.URL
	if unescaped, err := url.QueryUnescape(u.RawQuery); err == nil && strings.Contains(unescaped, ph) {
		return true
	}
	return strings.Contains(u.RawQuery, ph) || strings.Contains(u.EscapedPath(), ph) ||
		strings.Contains(u.Path, ph) || u.User != nil && strings.Contains(u.User.String(), ph)
}

// substitute replaces s.placeholder with s.secret in req's headers and URL.
func substitute(req *http.Request, s substitution) {
	for name, vs := range req.Header {
		for i, v := range vs {
			vs[i] = substituteValue(v, s)
		}
		req.Header[name] = vs
	}
	u := req.URL
	escaped := escapeAll(s.secret)
	u.RawQuery = strings.ReplaceAll(u.RawQuery, s.placeholder, escaped)
	if p := u.EscapedPath(); strings.Contains(p, s.placeholder) {
		u.RawPath = strings.ReplaceAll(p, s.placeholder, escaped)
		u.Path, _ = url.PathUnescape(u.RawPath) // escapeAll output always unescapes
	}
	if u.User != nil {
		name := strings.ReplaceAll(u.User.Username(), s.placeholder, s.secret)
		if pw, ok := u.User.Password(); ok {
			u.User = url.UserPassword(name, strings.ReplaceAll(pw, s.placeholder, s.secret))
		} else {
			u.User = url.User(name)
		}
	}
}

// substituteValue replaces the placeholder in one header value, also inside
// base64 "Basic" credentials (as git and URL user info produce).
func substituteValue(v string, s substitution) string {
	v = strings.ReplaceAll(v, s.placeholder, s.secret)
	if plain := decodeBasic(v); strings.Contains(plain, s.placeholder) {
		plain = strings.ReplaceAll(plain, s.placeholder, s.secret)
		v = v[:len(v)-len(basicPayload(v))] + base64.StdEncoding.EncodeToString([]byte(plain))
	}
	return v
}

// basicPayload returns the base64 part of a "Basic <payload>" value, or "".
func basicPayload(v string) string {
	scheme, payload, ok := strings.Cut(v, " ")
	if !ok || !strings.EqualFold(scheme, "Basic") {
		return ""
	}
	return strings.TrimLeft(payload, " ")
}

// decodeBasic returns the decoded credentials of a "Basic" header value, or "".
func decodeBasic(v string) string {
	payload := basicPayload(v)
	if payload == "" {
		return ""
	}
	b, err := base64.StdEncoding.DecodeString(payload)
	if err != nil {
		return ""
	}
	return string(b)
}

// escapeAll percent-encodes every byte outside the RFC 3986 unreserved set,
// which is safe in both a path segment and a query value.
func escapeAll(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}
