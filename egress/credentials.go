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
// headers. Secrets go only into header values (including inside "Basic"
// credentials), and only over https: a placeholder in the URL or over plain
// http is refused, because the secret would travel in clear text or be
// echoed back by the server. Bodies are neither searched nor rewritten.
// It returns the substitutions made, so that the response can be cleaned.
func (p *Proxy) applyCredentials(req *http.Request, t target, scheme string) ([]substitution, error) {
	var bound []substitution
	for _, s := range p.subs {
		inHeaders, inURL := headersContain(req, s.placeholder), urlContains(req, s.placeholder)
		if !inHeaders && !inURL {
			continue
		}
		if !anyMatch(s.hosts, t) {
			return nil, fmt.Errorf("%w: %s", ErrCredentialLeak, t)
		}
		if inURL || scheme != "https" {
			return nil, fmt.Errorf("%w: %s (%s)", ErrCredentialChannel, t, scheme)
		}
		bound = append(bound, s)
	}
	for _, s := range bound {
		substitute(req, s)
	}
	if len(bound) > 0 {
		// The response is checked for the secrets: it must not be compressed.
		req.Header.Set("Accept-Encoding", "identity")
	}
	for _, h := range p.cfg.Headers {
		if anyMatch(h.Hosts, t) {
			req.Header.Set(h.Header, h.Value)
		}
	}
	return bound, nil
}

// headersContain reports whether ph occurs in a header name or value,
// also inside "Basic" credentials.
func headersContain(req *http.Request, ph string) bool {
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
	return false
}

// urlContains reports whether ph occurs in the URL's path, query or user info.
func urlContains(req *http.Request, ph string) bool {
	u := req.URL
	if unescaped, err := url.QueryUnescape(u.RawQuery); err == nil && strings.Contains(unescaped, ph) {
		return true
	}
	return strings.Contains(u.RawQuery, ph) || strings.Contains(u.EscapedPath(), ph) ||
		strings.Contains(u.Path, ph) || u.User != nil && strings.Contains(u.User.String(), ph)
}

// substitute replaces s.placeholder with s.secret in req's header values.
func substitute(req *http.Request, s substitution) {
	for name, vs := range req.Header {
		for i, v := range vs {
			vs[i] = substituteValue(v, s)
		}
		req.Header[name] = vs
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
