package egress

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// The secret of the reflection tests: it has a '/' and a '+', which JSON
// and URL escaping change.
const reflectTok = "sk_live_51Hx/7Qz+eC39HqLyjWDarjtT1zdp7dc"

// reflectSetup runs a proxy with reflectTok bound to bound.test, whose
// server keeps the last credential it received and hands it back, in the
// form a request asks for, to any later request; other.allowed.test is
// allowed but bound to nothing.
type reflectSetup struct {
	p                *running
	bound, other     *upstream
	plainBound       *upstream
	ph               string
	boundURL         string
	plainBoundTarget string
	otherPlainURL    string
}

// keeper is the reflecting server's memory.
type keeper struct {
	mu  sync.Mutex
	tok string
}

func (k *keeper) answer(w http.ResponseWriter, r *http.Request) {
	k.mu.Lock()
	if user, pw, ok := r.BasicAuth(); ok && user != "" {
		k.tok = pw
	} else if a := r.Header.Get("Authorization"); a != "" {
		k.tok = strings.TrimPrefix(a, "Bearer ")
	}
	tok := k.tok
	k.mu.Unlock()
	switch r.URL.Path {
	case "/echo": // the header as received
		w.Header().Set("X-Echo", r.Header.Get("Authorization"))
		io.WriteString(w, r.Header.Get("Authorization"))
	case "/fetch": // what it kept, encoded
		v := encodeAs(r.URL.Query().Get("form"), tok)
		if !strings.ContainsRune(v, 0) {
			w.Header().Set("X-Tok", v)
		}
		io.WriteString(w, v)
	case "/big": // a streamed body, the secret straddling many reads
		fl := w.(http.Flusher)
		io.WriteString(w, strings.Repeat("x", 70<<10)+tok[:9])
		fl.Flush()
		time.Sleep(20 * time.Millisecond)
		io.WriteString(w, tok[9:]+strings.Repeat("y", 300<<10)+tok)
	case "/trailer":
		w.Header().Set("Trailer", "X-Tok")
		io.WriteString(w, "see the trailer")
		w.(http.Flusher).Flush()
		w.Header().Set("X-Tok", tok)
	case "/gzip": // two Content-Encoding lines, the first harmless
		w.Header().Add("Content-Encoding", "identity")
		w.Header().Add("Content-Encoding", "gzip")
		zw := gzip.NewWriter(w)
		io.WriteString(zw, tok)
		zw.Close()
	}
}

// encodeAs returns tok in one of the forms a server might use.
func encodeAs(form, tok string) string {
	perByte := func(f string) string {
		var b strings.Builder
		for i := 0; i < len(tok); i++ {
			fmt.Fprintf(&b, f, tok[i])
		}
		return b.String()
	}
	switch form {
	case "raw":
		return tok
	case "hex":
		return hex.EncodeToString([]byte(tok))
	case "HEX":
		return strings.ToUpper(hex.EncodeToString([]byte(tok)))
	case "json":
		b, _ := json.Marshal(tok)
		return strings.ReplaceAll(string(b), "/", `\/`)
	case "jsonu":
		return `"` + perByte(`\u%04x`) + `"`
	case "jsonU":
		return `"` + perByte(`\u%04X`) + `"`
	case "json1": // only the first character escaped
		return `"\u` + fmt.Sprintf("%04x", tok[0]) + tok[1:] + `"`
	case "query":
		return "q=" + url.QueryEscape(tok)
	case "path":
		return "/" + url.PathEscape(tok)
	case "pct":
		return perByte("%%%02X")
	case "pctlower":
		return perByte("%%%02x")
	case "utf16le":
		return perByte("%c\x00")
	case "utf16be":
		return perByte("\x00%c")
	}
	for k := 0; k < 3; k++ { // base64 at the three alignments, both alphabets
		plain := strings.Repeat("u", k) + tok + "!?"
		switch form {
		case fmt.Sprintf("b64std%d", k):
			return base64.StdEncoding.EncodeToString([]byte(plain))
		case fmt.Sprintf("b64url%d", k):
			return base64.RawURLEncoding.EncodeToString([]byte(plain))
		}
	}
	panic("unknown form " + form)
}

// decodeAs inverts encodeAs.
func decodeAs(t *testing.T, form, v string) string {
	t.Helper()
	var out []byte
	var err error
	switch {
	case form == "raw":
		return v
	case form == "hex" || form == "HEX":
		out, err = hex.DecodeString(v)
	case strings.HasPrefix(form, "json"):
		var s string
		err = json.Unmarshal([]byte(v), &s)
		out = []byte(s)
	case form == "query":
		var s string
		s, err = url.QueryUnescape(strings.TrimPrefix(v, "q="))
		out = []byte(s)
	case form == "path" || strings.HasPrefix(form, "pct"):
		var s string
		s, err = url.PathUnescape(strings.TrimPrefix(v, "/"))
		out = []byte(s)
	case strings.HasPrefix(form, "utf16"):
		return strings.ReplaceAll(v, "\x00", "")
	case strings.HasPrefix(form, "b64"):
		enc := base64.StdEncoding
		if strings.HasPrefix(form, "b64url") {
			enc = base64.RawURLEncoding
		}
		k := int(form[len(form)-1] - '0')
		if out, err = enc.DecodeString(v); err == nil && !bytes.HasPrefix(out, bytes.Repeat([]byte("u"), k)) {
			t.Fatalf("%s: %q decodes to %q: the bytes before the secret changed", form, v, out)
		}
		out = out[k:]
	}
	if err != nil {
		t.Fatalf("%s: cannot decode %q: %v", form, v, err)
	}
	return strings.TrimSuffix(string(out), "!?")
}

var reflectForms = []string{"raw", "hex", "HEX", "json", "jsonu", "jsonU", "json1", "query", "path", "pct", "pctlower",
	"utf16le", "utf16be", "b64std0", "b64std1", "b64std2", "b64url0", "b64url1", "b64url2"}

func newReflectSetup(t *testing.T) *reflectSetup {
	t.Helper()
	k := &keeper{}
	s := &reflectSetup{
		bound: newAnswering(t, true, k.answer), other: newUpstream(t, true),
		plainBound: newAnswering(t, false, k.answer),
	}
	s.ph = GeneratePlaceholder([]byte(reflectTok))
	res := newResolver("bound.test", "127.0.0.1", "other.allowed.test", "127.0.0.1")
	boundRules := rules(t, hostPort("bound.test", s.bound.port), hostPort("bound.test", s.plainBound.port))
	s.p = startProxy(t, Config{
		Allow: append(rules(t, hostPort("other.allowed.test", s.other.port),
			hostPort("other.allowed.test", s.plainBound.port)), boundRules...),
		Substitutions: []Substitution{{Placeholder: s.ph, Secret: []byte(reflectTok), Hosts: boundRules}},
		Resolve:       res.resolve,
		AllowPrivate:  loopback32,
		UpstreamRoots: getPKI(t).pool,
	})
	s.boundURL = fmt.Sprintf("https://bound.test:%d", s.bound.port)
	s.plainBoundTarget = fmt.Sprintf("http://bound.test:%d", s.plainBound.port)
	s.otherPlainURL = fmt.Sprintf("http://other.allowed.test:%d", s.plainBound.port)
	return s
}

// fetched is a response as the sandbox sees it.
type fetched struct {
	code    int
	status  string
	header  http.Header
	trailer http.Header
	body    string
}

func (f fetched) String() string {
	return fmt.Sprintf("%s %v %q trailer %v", f.status, f.header, f.body, f.trailer)
}

func fetch(t *testing.T, c *http.Client, u string, hdr ...string) fetched {
	t.Helper()
	resp, err := c.Do(newGet(t, u, hdr...))
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", u, err)
	}
	return fetched{resp.StatusCode, resp.Status, resp.Header, resp.Trailer, string(b)}
}

// revealing lists strings from which tok can be read back.
func revealing(tok string) []string {
	var out []string
	for _, form := range reflectForms {
		if strings.HasPrefix(form, "b64") { // the part that depends on tok alone
			k := int(form[len(form)-1] - '0')
			v := encodeAs(form, tok)
			if lo, hi := (8*k+5)/6, 8*(k+len(tok))/6; hi-lo >= 8 {
				out = append(out, v[lo:hi])
			}
			continue
		}
		out = append(out, strings.Trim(encodeAs(form, tok), `"/`))
	}
	return out
}

func mustNotReveal(t *testing.T, what string, f fetched) {
	t.Helper()
	all := f.String()
	for _, r := range revealing(reflectTok) {
		if strings.Contains(all, r) {
			t.Fatalf("%s: the sandbox can read the secret (%q) in %s", what, r, all)
		}
	}
}

// TestStoredSecretNotReturnedLater: a server keeps the secret it received
// with one request and returns it in the response to another that carried
// no placeholder, over https and over plain http.
func TestStoredSecretNotReturnedLater(t *testing.T) {
	s := newReflectSetup(t)
	c := s.p.client(t, s.p.proxyPool(t))
	if f := fetch(t, c, s.boundURL+"/echo", "Authorization", "Bearer "+s.ph); f.code != 200 || f.body != "Bearer "+s.ph {
		t.Fatalf("storing: %v", f)
	}
	f := fetch(t, c, s.boundURL+"/fetch?form=raw")
	if f.code != 200 {
		t.Fatalf("fetch: %v", f)
	}
	mustNotReveal(t, "https, no placeholder", f)
	if f.body != s.ph || f.header.Get("X-Tok") != s.ph {
		t.Errorf("the secret is not replaced by its placeholder: %v", f)
	}
	// Plain http to the bound host: no substitution there, but the server
	// still holds the secret.
	f = fetch(t, c, s.plainBoundTarget+"/fetch?form=raw")
	mustNotReveal(t, "plain http to the bound host", f)
	if f.code != 200 || f.body != s.ph {
		t.Errorf("plain http: %v", f)
	}
	// A long streamed body, the secret split across reads.
	f = fetch(t, c, s.boundURL+"/big")
	mustNotReveal(t, "streamed body", f)
	if want := strings.Repeat("x", 70<<10) + s.ph + strings.Repeat("y", 300<<10) + s.ph; f.body != want {
		t.Errorf("streamed body differs (%d bytes, want %d)", len(f.body), len(want))
	}
}

// TestEncodedSecretNotReturned: a server returns the secret base64-encoded
// (at every alignment, both alphabets), JSON-escaped, URL-escaped, as hex or
// UTF-16; the sandbox decodes the placeholder, not the secret.
func TestEncodedSecretNotReturned(t *testing.T) {
	s := newReflectSetup(t)
	c := s.p.client(t, s.p.proxyPool(t))
	for _, form := range reflectForms {
		// The request carries the placeholder, as the one that stored it did.
		f := fetch(t, c, s.boundURL+"/fetch?form="+form, "Authorization", "Bearer "+s.ph)
		if f.code != 200 {
			t.Fatalf("%s: %v", form, f)
		}
		mustNotReveal(t, form, f)
		if got := decodeAs(t, form, f.body); got != s.ph {
			t.Errorf("%s: the sandbox decodes %q, want the placeholder %q", form, got, s.ph)
		}
		if h := f.header.Get("X-Tok"); h != "" && h != f.body {
			t.Errorf("%s: header %q, body %q", form, h, f.body)
		}
	}
}

// TestBasicCredentialsNotEchoed: curl -u user:$TOKEN sends the placeholder
// in Basic credentials; the proxy builds the Basic payload of the real
// secret, which an echoing server returns. The sandbox gets back exactly
// what it sent.
func TestBasicCredentialsNotEchoed(t *testing.T) {
	s := newReflectSetup(t)
	c := s.p.client(t, s.p.proxyPool(t))
	for _, user := range []string{"user", "u", "us", "ab:c"} {
		sent := "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+s.ph))
		f := fetch(t, c, s.boundURL+"/echo", "Authorization", sent)
		mustNotReveal(t, "Basic echo", f)
		if f.code != 200 || f.body != sent || f.header.Get("X-Echo") != sent {
			t.Errorf("user %q: echoed %v, want %q", user, f, sent)
		}
	}
	if got := s.bound.requests(); len(got) == 0 || !strings.Contains(decodeBasic(got[0].Authorization), reflectTok) {
		t.Fatalf("upstream did not get the secret: %+v", got)
	}
}

// TestSecretNotInTrailers: trailers are cleaned like the header.
func TestSecretNotInTrailers(t *testing.T) {
	s := newReflectSetup(t)
	c := s.p.client(t, s.p.proxyPool(t))
	fetch(t, c, s.boundURL+"/echo", "Authorization", "Bearer "+s.ph)
	f := fetch(t, c, s.boundURL+"/trailer", "Authorization", "Bearer "+s.ph)
	mustNotReveal(t, "trailer", f)
	if f.code != 200 || f.trailer.Get("X-Tok") != s.ph {
		t.Errorf("trailer: %v", f)
	}
}

// TestEveryContentEncodingChecked: a response from a bound host encoded
// in any line of Content-Encoding cannot be checked and is refused, also to
// a request that carried no placeholder.
func TestEveryContentEncodingChecked(t *testing.T) {
	s := newReflectSetup(t)
	c := s.p.client(t, s.p.proxyPool(t))
	fetch(t, c, s.boundURL+"/echo", "Authorization", "Bearer "+s.ph)
	for _, hdr := range [][]string{{"Authorization", "Bearer " + s.ph}, nil} {
		f := fetch(t, c, s.boundURL+"/gzip", hdr...)
		if f.code != 502 || !strings.Contains(f.body, "gzip-encoded") {
			t.Errorf("encoded response (headers %q) passed: %v", hdr, f)
		}
		if zr, err := gzip.NewReader(strings.NewReader(f.body)); err == nil {
			if plain, _ := io.ReadAll(zr); strings.Contains(string(plain), reflectTok) {
				t.Errorf("the sandbox can read the secret in the compressed body")
			}
		}
	}
	// Requests to a bound host ask for an uncompressed response.
	for _, r := range s.bound.requests() {
		if got := r.Header.Get("Accept-Encoding"); got != "identity" {
			t.Errorf("request to the bound host asked for %q", got)
		}
	}
}

// TestRealSecretToUnboundHostIsLeak: the real value of a secret, in any of
// the forms the proxy recognises, headed for a host it is not bound to is a
// leak; to its own host it may go.
func TestRealSecretToUnboundHostIsLeak(t *testing.T) {
	s := newReflectSetup(t)
	c := s.p.client(t, getPKI(t).pool)
	basic := base64.StdEncoding.EncodeToString([]byte("user:" + reflectTok))
	cases := []struct {
		name, path string
		hdr        []string
	}{
		{"bearer", "/", []string{"Authorization", "Bearer " + reflectTok}},
		{"basic", "/", []string{"Authorization", "Basic " + basic}},
		{"base64url", "/", []string{"X-Data", base64.RawURLEncoding.EncodeToString([]byte("xy" + reflectTok))}},
		{"hex", "/", []string{"X-Data", strings.ToUpper(hex.EncodeToString([]byte(reflectTok)))}},
		{"json", "/", []string{"X-Data", encodeAs("jsonu", reflectTok)}},
		{"query", "/x?" + encodeAs("query", reflectTok), nil},
		{"path", "/x" + encodeAs("path", reflectTok), nil},
	}
	for _, tc := range cases {
		f := fetch(t, c, s.otherPlainURL+tc.path, tc.hdr...)
		if f.code != 403 || !strings.Contains(f.body, "credential") {
			t.Errorf("%s: real secret to an unbound host: %v", tc.name, f)
		}
		mustNotReveal(t, tc.name, f)
	}
	// Inside a CONNECT tunnel to an unbound host, as plain HTTP.
	target := hostPort("other.allowed.test", s.plainBound.port)
	_, _, conn := s.p.connect(t, target)
	fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: %s\r\nAuthorization: Basic %s\r\n\r\n", target, basic)
	if resp, err := http.ReadResponse(bufio.NewReader(conn), nil); err != nil || resp.StatusCode != 403 {
		t.Errorf("real secret in tunnelled HTTP: %v %v", resp, err)
	}
	if n := len(s.plainBound.requests()); n != 0 {
		t.Errorf("%d requests carrying the real secret reached an upstream", n)
	}
	ev := s.p.events.mustFind(t, KindLeak, "credential")
	if ev.Host != "other.allowed.test" {
		t.Errorf("leak event %+v", ev)
	}
	for _, ev := range s.p.events.list() {
		for _, r := range append(revealing(reflectTok), s.ph) {
			if strings.Contains(fmt.Sprint(ev), r) {
				t.Errorf("event carries a credential: %+v", ev)
			}
		}
	}
	// To the host it is bound to, the real value is no leak.
	tc := s.p.client(t, s.p.proxyPool(t))
	if f := fetch(t, tc, s.boundURL+"/echo", "Authorization", "Bearer "+reflectTok); f.code != 200 {
		t.Errorf("real secret to its own host: %v", f)
	}
}

// TestRealSecretInOpaqueTunnel: the real secret, base64-encoded and split
// across writes, in a tunnel to an IP literal is a leak.
func TestRealSecretInOpaqueTunnel(t *testing.T) {
	received := make(chan []byte, 1)
	sink := tcpServer(t, func(c net.Conn) {
		b, _ := io.ReadAll(c)
		received <- b
	})
	p := startProxy(t, Config{
		Allow:         rules(t, sink.String()),
		Substitutions: []Substitution{{Placeholder: GeneratePlaceholder([]byte(reflectTok)), Secret: []byte(reflectTok), Hosts: rules(t, "bound.test")}},
	})
	_, _, conn := p.connect(t, sink.String())
	auth := "AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00user\x00"+reflectTok)) + "\r\n"
	conn.Write([]byte("HELO harmless\r\n" + auth[:20]))
	time.Sleep(50 * time.Millisecond)
	conn.Write([]byte(auth[20:]))
	p.events.mustFind(t, KindLeak, "credential")
	select {
	case b := <-received:
		if strings.Contains(string(b), auth[12:40]) {
			t.Error("the secret was relayed through an opaque tunnel")
		}
	case <-time.After(5 * time.Second):
		t.Error("tunnel not closed after the leak")
	}
}

// TestUpstreamTextScrubbed: what a server writes where the proxy quotes it
// (a status line's reason phrase, a malformed response in an error) does
// not carry the secret to the sandbox or to the events.
func TestUpstreamTextScrubbed(t *testing.T) {
	answers := map[string]string{
		"reason":         "HTTP/1.1 200 " + reflectTok + "\r\nContent-Length: 2\r\n\r\nok",
		"header line":    "HTTP/1.1 200 OK\r\nbad line " + reflectTok + "\r\n\r\n",
		"content length": "HTTP/1.1 200 OK\r\nContent-Length: " + reflectTok + "\r\n\r\n",
	}
	for name, answer := range answers {
		srv := tcpServer(t, func(c net.Conn) {
			http.ReadRequest(bufio.NewReader(c))
			io.WriteString(c, answer)
		})
		p := startProxy(t, Config{
			Allow:         rules(t, hostPort("bound.test", int(srv.Port()))),
			Substitutions: []Substitution{{Placeholder: GeneratePlaceholder([]byte(reflectTok)), Secret: []byte(reflectTok), Hosts: rules(t, hostPort("bound.test", int(srv.Port())))}},
			Resolve:       newResolver("bound.test", "127.0.0.1").resolve,
			AllowPrivate:  loopback32,
		})
		f := fetch(t, p.client(t, nil), fmt.Sprintf("http://bound.test:%d/", srv.Port()))
		if strings.Contains(f.String(), reflectTok) {
			t.Errorf("%s: the sandbox reads the secret in %v", name, f)
		}
		for _, ev := range p.events.list() {
			if strings.Contains(fmt.Sprint(ev), reflectTok) {
				t.Errorf("%s: event carries the secret: %+v", name, ev)
			}
		}
	}
}

// TestHeaderRuleValueNotEchoed: the value a credential header rule adds is
// never shown to the sandbox, not even by a server that echoes it; a rule
// for an ordinary header is left alone.
func TestHeaderRuleValueNotEchoed(t *testing.T) {
	bound := newUpstream(t, true)
	const token = "hr_9f8e7d6c5b4a3210"
	p := startProxy(t, Config{
		Allow: rules(t, hostPort("bound.test", bound.port)),
		Headers: []HeaderRule{
			{Hosts: rules(t, hostPort("bound.test", bound.port)), Header: "Authorization", Value: "Bearer " + token},
			{Hosts: rules(t, hostPort("bound.test", bound.port)), Header: "Accept", Value: "text/plain; charset=utf-8"},
		},
		Resolve:       newResolver("bound.test", "127.0.0.1").resolve,
		AllowPrivate:  loopback32,
		UpstreamRoots: getPKI(t).pool,
	})
	f := fetch(t, p.client(t, p.proxyPool(t)), fmt.Sprintf("https://bound.test:%d/echo", bound.port))
	if f.code != 200 || strings.Contains(f.String(), token) || f.body != "you sent [redacted]" {
		t.Errorf("echo of a header rule: %v", f)
	}
	if ct := f.header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Errorf("Content-Type %q: an ordinary header rule was treated as a secret", ct)
	}
}
