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
// echoed back by the server. The real value of a secret (or of a header
// rule), in any of the forms a cleaner knows, in the method, URL or header
// of a request to a host it is not bound to is a leak too. Bodies are
// neither searched nor rewritten.
// It returns the forms to restore in the response: the Basic credentials
// the proxy built, mapped back to what the client sent.
func (p *Proxy) applyCredentials(req *http.Request, t target, scheme string) ([]*form, error) {
	if p.leaksSecret(req, t) {
		return nil, fmt.Errorf("%w: %s (the real value of a secret)", ErrCredentialLeak, t)
	}
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
	var restore []*form
	for _, s := range bound {
		restore = substitute(req, s, restore)
	}
	if p.isBound(t) {
		// Every response from a bound host is checked for the secrets: it
		// must not be compressed, nor a part of a whole (a secret split
		// across ranges is in no response whole).
		req.Header.Set("Accept-Encoding", "identity")
		req.Header.Del("Range")
		req.Header.Del("If-Range")
	}
	for _, h := range p.cfg.Headers {
		if anyMatch(h.Hosts, t) {
			req.Header.Set(h.Header, h.Value)
		}
	}
	return restore, nil
}

// leaksSecret reports whether req, on its way to t, carries the real value
// of a secret that is not bound to t.
func (p *Proxy) leaksSecret(req *http.Request, t target) bool {
	c := p.clean
	if c == nil {
		return false
	}
	unbound := func(owner int) bool { return !anyMatch(c.owners[owner].hosts, t) }
	has := func(s string) bool { return leakIn(c, s, true, unbound) }
	u := req.URL
	if has(req.Method) || has(u.RawQuery) || has(u.EscapedPath()) || has(u.Path) || u.User != nil && has(u.User.String()) {
		return true
	}
	for name, vs := range req.Header {
		if has(name) {
			return true
		}
		for _, v := range vs {
			if has(v) {
				return true
			}
		}
	}
	return false
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

// substitute replaces s.placeholder with s.secret in req's header values
// and adds to restore the Basic credentials it rebuilt.
func substitute(req *http.Request, s substitution, restore []*form) []*form {
	for name, vs := range req.Header {
		for i, v := range vs {
			var built, sent string
			vs[i], built, sent = substituteValue(v, s)
			if built != "" {
				restore = append(restore, &form{pat: []byte(built), rep: []byte(sent), owner: -1})
			}
		}
		req.Header[name] = vs
	}
	return restore
}

// substituteValue replaces the placeholder in one header value, also inside
// base64 "Basic" credentials (as git and URL user info produce). When it
// rebuilt Basic credentials it also returns their new and original payloads.
func substituteValue(v string, s substitution) (out, built, sent string) {
	orig := basicPayload(v)
	v = strings.ReplaceAll(v, s.placeholder, s.secret)
	if plain := decodeBasic(v); strings.Contains(plain, s.placeholder) {
		plain = strings.ReplaceAll(plain, s.placeholder, s.secret)
		built = base64.StdEncoding.EncodeToString([]byte(plain))
		v = v[:len(v)-len(basicPayload(v))] + built
		sent = orig
	}
	return v, built, sent
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
