package egress

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"strings"
)

// A server can echo what it received — a header in an error page, a token
// in a debug response — or keep it and return it in a later response, to a
// request that carried no placeholder. No secret may come back to the
// sandbox that way: cleanResponse swaps every form of every secret (see
// cleaner) for the same form of its placeholder, in the status line, the
// header, the body and the trailers of every response the proxy forwards.

// maxBufferedBody is the largest body of known length that is cleaned
// whole, so that its Content-Length stays exact. Longer bodies, and bodies
// of unknown length, are cleaned as they stream and sent chunked.
const maxBufferedBody = 256 << 10

// cleanResponse cleans resp with c. A compressed body cannot be checked:
// from a bound host (asked for identity encoding) it is refused; from
// another host it is passed on as is (see docs/network.md for why that is
// a limit, not a proof). A partial response (206) from a bound host, which
// was asked for no range, is refused: ranges would let a secret be read in
// pieces that each look harmless.
func cleanResponse(resp *http.Response, c *cleaner, bound bool) error {
	if bound && resp.StatusCode == http.StatusPartialContent {
		return fmt.Errorf("%w: partial content (206) from a host bound to a credential cannot be checked", ErrUpstream)
	}
	resp.Status = c.cleanString(resp.Status, false)
	cleanHeader(resp.Header, c)
	cleanHeader(resp.Trailer, c) // declared names; values arrive after the body
	if resp.Body == nil || resp.Body == http.NoBody {
		return nil
	}
	if enc := contentEncoding(resp.Header); enc != "" {
		if bound {
			return fmt.Errorf("%w: %s-encoded response from a host bound to a credential cannot be checked", ErrUpstream, enc)
		}
		return nil
	}
	if resp.ContentLength >= 0 && resp.ContentLength <= maxBufferedBody {
		body, err := io.ReadAll(io.LimitReader(resp.Body, resp.ContentLength+1))
		if err != nil {
			return fmt.Errorf("%w: reading response: %v", ErrUpstream, err)
		}
		if int64(len(body)) != resp.ContentLength {
			return fmt.Errorf("%w: response body does not match its Content-Length", ErrUpstream)
		}
		body, _ = c.clean(make([]byte, 0, len(body)), body, true, false)
		cleanHeader(resp.Trailer, c)
		resp.Body = struct {
			io.Reader
			io.Closer
		}{bytes.NewReader(body), resp.Body}
		resp.ContentLength = int64(len(body))
		if _, ok := resp.Header["Content-Length"]; ok {
			resp.Header.Set("Content-Length", fmt.Sprint(len(body)))
		}
		return nil
	}
	resp.Body = newSecretFilter(resp.Body, c, func() { cleanHeader(resp.Trailer, c) })
	resp.ContentLength = -1
	resp.Header.Del("Content-Length")
	if resp.ProtoAtLeast(1, 1) {
		resp.TransferEncoding = []string{"chunked"}
	} else {
		resp.Close = true
	}
	return nil
}

// contentEncoding returns the first coding other than identity in every
// Content-Encoding line of h, or "".
func contentEncoding(h http.Header) string {
	for _, v := range h.Values("Content-Encoding") {
		for _, coding := range strings.Split(v, ",") {
			if coding = textproto.TrimString(coding); coding != "" && !strings.EqualFold(coding, "identity") {
				return coding
			}
		}
	}
	return ""
}

// cleanHeader cleans the names and values of h in place (h may be shared
// with the writer of the response). A name that would not be a valid
// header name once cleaned is dropped.
func cleanHeader(h http.Header, c *cleaner) {
	var renamed []string
	for name, vs := range h {
		for i, v := range vs {
			vs[i] = c.cleanString(v, false)
		}
		if c.cleanString(name, false) != name {
			renamed = append(renamed, name)
		}
	}
	for _, name := range renamed {
		vs := h[name]
		delete(h, name)
		if clean := c.cleanString(name, false); isToken(clean) {
			key := http.CanonicalHeaderKey(clean)
			h[key] = append(h[key], vs...)
		}
	}
}

// readChunk is how much a secretFilter reads at a time.
const readChunk = 32 << 10

// secretFilter cleans a stream. It holds back the bytes of a possible
// match that the data read so far ends too early to decide (at most
// cleaner.window), and a last cleaned byte that is a base64 character,
// which a base64 match may still rewrite (with the line break after it,
// when it ends a line of wrapped base64); memory stays bounded by one read
// plus the window. A stream paused after anything else (a line of text, an
// event, a JSON object) is passed on whole.
type secretFilter struct {
	src   io.ReadCloser
	c     *cleaner
	in    []byte // read, not yet cleaned
	out   []byte // cleaned; out[off:] not yet returned, out[:off] the last keepTail returned (read by clean)
	off   int
	eof   bool
	err   error
	atEOF func()
}

func newSecretFilter(src io.ReadCloser, c *cleaner, atEOF func()) *secretFilter {
	return &secretFilter{src: src, c: c, atEOF: atEOF}
}

// ready returns how many cleaned bytes may be returned: not a base64
// character that a match may still rewrite (see leadIndex), nor the line
// break after it.
func (f *secretFilter) ready() int {
	n := len(f.out) - f.off
	if i := leadIndex(f.out); !f.eof && i >= f.off && b64Value[f.out[i]] != 0xff {
		n = i - f.off
	}
	return n
}

func (f *secretFilter) Read(p []byte) (int, error) {
	for f.ready() == 0 {
		if f.eof {
			if f.err != nil {
				return 0, f.err
			}
			return 0, io.EOF
		}
		f.fill()
	}
	n := copy(p, f.out[f.off:f.off+f.ready()])
	f.off += n
	return n, nil
}

// fill reads once from src and cleans what it can.
func (f *secretFilter) fill() {
	if drop := f.off - keepTail; drop > 0 {
		f.out = f.out[:copy(f.out, f.out[drop:])]
		f.off -= drop
	}
	if cap(f.in)-len(f.in) < readChunk/2 {
		f.in = append(make([]byte, 0, len(f.in)+readChunk), f.in...)
	}
	n, err := f.src.Read(f.in[len(f.in):cap(f.in)])
	f.in = f.in[:len(f.in)+n]
	switch {
	case err == io.EOF:
		f.eof = true
		if f.atEOF != nil {
			f.atEOF()
		}
	case err != nil:
		// What is held back is never released: it may be part of a secret.
		f.eof, f.err, f.in = true, err, nil
		return
	}
	var used int
	f.out, used = f.c.clean(f.out, f.in, f.eof, false)
	f.in = f.in[:copy(f.in, f.in[used:])]
}

func (f *secretFilter) Close() error { return f.src.Close() }
