package egress

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"html/template"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// boundTLSSetup runs a proxy with reflectTok bound to bound.test, served
// over TLS by answer; a response that hangs shows as a slow test (the idle
// timeout is 4 s).
func boundTLSSetup(t *testing.T, answer http.HandlerFunc) (p *running, c *http.Client, base, ph string) {
	t.Helper()
	srv := newAnswering(t, true, answer)
	ph = GeneratePlaceholder([]byte(reflectTok))
	br := rules(t, hostPort("bound.test", srv.port))
	p = startProxy(t, Config{
		Allow:         br,
		Substitutions: []Substitution{{Placeholder: ph, Secret: []byte(reflectTok), Hosts: br}},
		Resolve:       newResolver("bound.test", "127.0.0.1").resolve,
		AllowPrivate:  loopback32,
		UpstreamRoots: getPKI(t).pool,
		IdleTimeout:   4 * time.Second,
	})
	return p, p.client(t, p.proxyPool(t)), fmt.Sprintf("https://bound.test:%d", srv.port), ph
}

// timedFetch fetches u and fails when it takes more than 2 s.
func timedFetch(t *testing.T, c *http.Client, u string, hdr ...string) fetched {
	t.Helper()
	start := time.Now()
	f := fetch(t, c, u, hdr...)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("GET %s took %v: the client waited for the end of the body", u, d)
	}
	return f
}

// TestLargeKnownLengthBody: a body longer than maxBufferedBody with a
// Content-Length is cleaned as it streams and sent chunked (its length
// may change), not with the framing of the original: the client gets it
// whole, at once, over plain http.
func TestLargeKnownLengthBody(t *testing.T) {
	big := strings.Repeat("z", maxBufferedBody+44<<10) + reflectTok
	srv := newAnswering(t, false, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(big)))
		io.WriteString(w, big)
	})
	ph := GeneratePlaceholder([]byte(reflectTok))
	p := startProxy(t, Config{
		Allow:         rules(t, hostPort("other.allowed.test", srv.port)),
		Substitutions: []Substitution{{Placeholder: ph, Secret: []byte(reflectTok), Hosts: rules(t, "bound.test")}},
		Resolve:       newResolver("other.allowed.test", "127.0.0.1").resolve,
		AllowPrivate:  loopback32,
		IdleTimeout:   4 * time.Second,
	})
	c := p.client(t, nil)
	for i := 0; i < 2; i++ { // the connection stays usable
		f := timedFetch(t, c, fmt.Sprintf("http://other.allowed.test:%d/", srv.port))
		if f.body != strings.TrimSuffix(big, reflectTok)+ph {
			t.Fatalf("body of %d bytes, want %d ending with the placeholder", len(f.body), len(big))
		}
	}
}

// TestLargeKnownLengthBodyOverTLS: the same through terminated TLS to a
// bound host.
func TestLargeKnownLengthBodyOverTLS(t *testing.T) {
	big := strings.Repeat("z", maxBufferedBody+44<<10)
	_, c, base, _ := boundTLSSetup(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(big)))
		io.WriteString(w, big)
	})
	if f := timedFetch(t, c, base+"/"); f.body != big || f.header.Get("Content-Length") != "" {
		t.Errorf("body of %d bytes, Content-Length %q", len(f.body), f.header.Get("Content-Length"))
	}
}

// TestHTTP10LargeBodyEndsWithClose: an HTTP/1.0 response cannot be sent
// chunked; a streamed body ends by closing the connection.
func TestHTTP10LargeBodyEndsWithClose(t *testing.T) {
	big := strings.Repeat("q", maxBufferedBody+44<<10)
	srv := tcpServer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			if _, err := http.ReadRequest(br); err != nil {
				return
			}
			fmt.Fprintf(c, "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: %d\r\n\r\n%s", len(big), big)
		}
	})
	hp := hostPort("bound.test", int(srv.Port()))
	p := startProxy(t, Config{
		Allow:         rules(t, hp),
		Substitutions: []Substitution{{Placeholder: GeneratePlaceholder([]byte(reflectTok)), Secret: []byte(reflectTok), Hosts: rules(t, hp)}},
		Resolve:       newResolver("bound.test", "127.0.0.1").resolve,
		AllowPrivate:  loopback32,
		IdleTimeout:   4 * time.Second,
	})
	if f := timedFetch(t, p.client(t, nil), "http://"+hp+"/"); f.body != big {
		t.Errorf("body of %d bytes, want %d", len(f.body), len(big))
	}
}

// TestTemplateEchoCleaned: a server that echoes the credential in an HTML
// page, escaped by html/template ("+" as "&#43;"), shows the sandbox its
// placeholder.
func TestTemplateEchoCleaned(t *testing.T) {
	page := template.Must(template.New("").Parse(`<p>token {{.}} is not valid</p>`))
	_, c, base, ph := boundTLSSetup(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusUnauthorized)
		page.Execute(w, strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
	})
	f := fetch(t, c, base+"/", "Authorization", "Bearer "+ph)
	if plain := html.UnescapeString(f.body); strings.Contains(plain, reflectTok) || plain != "<p>token "+ph+" is not valid</p>" {
		t.Errorf("the sandbox reads %q", f.body)
	}
}

// TestWrappedBase64EchoCleaned: a server that returns the request it got
// as MIME base64 (76 columns, CRLF) shows the sandbox its placeholder,
// wherever the path the sandbox chose puts the line breaks.
func TestWrappedBase64EchoCleaned(t *testing.T) {
	_, c, base, ph := boundTLSSetup(t, func(w http.ResponseWriter, r *http.Request) {
		raw := "GET " + r.URL.Path + " HTTP/1.1\r\nAuthorization: " + r.Header.Get("Authorization") + "\r\n\r\n"
		io.WriteString(w, wrapLines(base64.StdEncoding.EncodeToString([]byte(raw)), 76, "\r\n"))
	})
	for n := 1; n <= 40; n += 3 {
		path := "/" + strings.Repeat("a", n)
		f := fetch(t, c, base+path, "Authorization", "Bearer "+ph)
		dec, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(f.body, "\r\n", ""))
		if want := "GET " + path + " HTTP/1.1\r\nAuthorization: Bearer " + ph + "\r\n\r\n"; err != nil || string(dec) != want {
			t.Errorf("path %s: the sandbox decodes %q (%v), want %q", path, dec, err, want)
		}
	}
}

// TestNoRangesFromBoundHost: the sandbox cannot read a stored secret in
// pieces: Range and If-Range are not forwarded to a bound host, and a
// partial response from it is refused.
func TestNoRangesFromBoundHost(t *testing.T) {
	var mu sync.Mutex
	var stored string
	var ranges []string
	_, c, base, ph := boundTLSSetup(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if a := r.Header.Get("Authorization"); a != "" { // a request log
			stored += "Authorization: " + a + "\n"
		}
		ranges = append(ranges, r.Header.Get("Range")+r.Header.Get("If-Range"))
		if r.URL.Path == "/partial" {
			w.Header().Set("Content-Range", "bytes 0-19/*")
			w.WriteHeader(http.StatusPartialContent)
			io.WriteString(w, stored[:20])
			return
		}
		http.ServeContent(w, r, "log.txt", time.Time{}, strings.NewReader(stored))
	})
	fetch(t, c, base+"/store", "Authorization", "Bearer "+ph)
	for _, rng := range []string{"bytes=0-29", "bytes=30-", "bytes=0-29,30-"} {
		f := fetch(t, c, base+"/log", "Range", rng, "If-Range", `"x"`)
		if f.code != 200 || f.body != "Authorization: Bearer "+ph+"\n" {
			t.Errorf("Range %s: %v", rng, f)
		}
	}
	if f := fetch(t, c, base+"/partial"); f.code != 502 || !strings.Contains(f.body, "partial content") {
		t.Errorf("a partial response passed: %v", f)
	}
	mu.Lock()
	defer mu.Unlock()
	if got := strings.Join(ranges, ""); got != "" {
		t.Errorf("the bound host got ranges: %q", got)
	}
}

// TestHeaderRuleDecodedValuesNotEchoed: a server that lists the cookies
// and the Basic credentials it received, decoded, shows the sandbox none
// of the values header rules set.
func TestHeaderRuleDecodedValuesNotEchoed(t *testing.T) {
	const (
		session = "s3ss10n-9f8e7d6c5b4a3210"
		other   = "pref-7a6b5c4d3e2f"
		pw      = "Pa55w0rd-Xq7Zr2"
	)
	bound := newAnswering(t, true, func(w http.ResponseWriter, r *http.Request) {
		out := map[string]string{}
		for _, c := range r.Cookies() {
			out[c.Name] = c.Value
		}
		if u, p, ok := r.BasicAuth(); ok {
			out["user"], out["password"], out["both"] = u, p, u+":"+p
		}
		json.NewEncoder(w).Encode(out) // as httpbin's /cookies and /basic-auth do
	})
	hp := hostPort("bound.test", bound.port)
	p := startProxy(t, Config{
		Allow: rules(t, hp),
		Headers: []HeaderRule{
			{Hosts: rules(t, hp), Header: "Cookie", Value: `theme=dark; session=` + session + `; pref="` + other + `"`},
			{Hosts: rules(t, hp), Header: "Authorization", Value: "Basic " + base64.StdEncoding.EncodeToString([]byte("deploy:"+pw))},
		},
		Resolve: newResolver("bound.test", "127.0.0.1").resolve, AllowPrivate: loopback32, UpstreamRoots: getPKI(t).pool,
	})
	f := fetch(t, p.client(t, p.proxyPool(t)), fmt.Sprintf("https://bound.test:%d/cookies", bound.port))
	var got map[string]string
	if err := json.Unmarshal([]byte(f.body), &got); err != nil {
		t.Fatalf("%v: %v", f, err)
	}
	want := map[string]string{"theme": "dark", "session": redactedMarker, "pref": redactedMarker,
		"user": "deploy", "password": redactedMarker, "both": redactedMarker}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("the sandbox reads %v, want %v", got, want)
	}
}
