package egress

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// A server can echo what it received — a header in an error page, a token
// in a debug response. The secrets substituted into a request must not come
// back to the sandbox that way: unsubstitute swaps them for their
// placeholders again in the response's headers and body.

// unsubstitute cleans resp of the secrets in subs. A compressed body cannot
// be checked, so it is refused (the request asked for identity encoding).
func unsubstitute(resp *http.Response, subs []substitution) error {
	if enc := resp.Header.Get("Content-Encoding"); enc != "" && !strings.EqualFold(enc, "identity") {
		return fmt.Errorf("%w: %s-encoded response to a request that carried a secret cannot be checked", ErrUpstream, enc)
	}
	for name, vs := range resp.Header {
		for i, v := range vs {
			for _, s := range subs {
				v = strings.ReplaceAll(v, s.secret, s.placeholder)
			}
			vs[i] = v
		}
		resp.Header[name] = vs
	}
	if resp.Body == nil || resp.Body == http.NoBody {
		return nil
	}
	resp.Body = newSecretFilter(resp.Body, subs)
	if sameLengths(subs) {
		return nil // the body keeps its length
	}
	resp.ContentLength = -1
	resp.Header.Del("Content-Length")
	return nil
}

func sameLengths(subs []substitution) bool {
	for _, s := range subs {
		if len(s.secret) != len(s.placeholder) {
			return false
		}
	}
	return true
}

// secretFilter replaces every secret in a stream by its placeholder,
// holding back the last len(longest secret)-1 bytes of each read so that a
// secret split across reads is still found.
type secretFilter struct {
	src  io.ReadCloser
	subs []substitution
	keep int
	in   []byte // read but not yet released
	out  []byte // released, not yet returned
	eof  bool
}

func newSecretFilter(src io.ReadCloser, subs []substitution) *secretFilter {
	keep := 0
	for _, s := range subs {
		keep = max(keep, len(s.secret)-1)
	}
	return &secretFilter{src: src, subs: subs, keep: keep}
}

func (f *secretFilter) Read(p []byte) (int, error) {
	for len(f.out) == 0 {
		if f.eof {
			return 0, io.EOF
		}
		buf := make([]byte, 32<<10)
		n, err := f.src.Read(buf)
		f.in = append(f.in, buf[:n]...)
		if err == io.EOF {
			f.eof = true
		} else if err != nil {
			return 0, err
		}
		f.release()
	}
	n := copy(p, f.out)
	f.out = f.out[n:]
	return n, nil
}

// release replaces the secrets in the pending bytes and moves all but the
// held-back tail (everything, at the end of the stream) to out. A match is
// never cut: the tail starts after the last replacement.
func (f *secretFilter) release() {
	data := f.in
	for _, s := range f.subs {
		data = bytes.ReplaceAll(data, []byte(s.secret), []byte(s.placeholder))
	}
	cut := len(data)
	if !f.eof {
		cut = max(0, len(data)-f.keep)
	}
	f.out = append(f.out, data[:cut]...)
	f.in = append([]byte(nil), data[cut:]...)
}

func (f *secretFilter) Close() error { return f.src.Close() }
