package egress

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// cleanAll cleans s in one piece.
func cleanAll(c *cleaner, s string) string {
	out, _ := c.clean(nil, []byte(s), true, false)
	return string(out)
}

// cleanStream cleans s through a secretFilter fed in pieces of the given
// sizes (cycled).
func cleanStream(t *testing.T, c *cleaner, s string, sizes []int) string {
	t.Helper()
	f := newSecretFilter(io.NopCloser(&sizedReader{s: s, sizes: sizes}), c, nil)
	var out strings.Builder
	buf := make([]byte, 7)
	for {
		n, err := f.Read(buf)
		out.Write(buf[:n])
		if err == io.EOF {
			return out.String()
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(f.in) > c.window+readChunk {
			t.Fatalf("filter holds %d bytes (window %d)", len(f.in), c.window)
		}
	}
}

type sizedReader struct {
	s     string
	sizes []int
	i     int
}

func (r *sizedReader) Read(p []byte) (int, error) {
	if r.s == "" {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), r.sizes[r.i%len(r.sizes)])], r.s)
	r.i++
	r.s = r.s[n:]
	return n, nil
}

// TestCleanerStreamsEveryForm: every form, surrounded by text and split at
// every point, is replaced exactly as when cleaned in one piece, and the
// result decodes to the placeholder.
func TestCleanerStreamsEveryForm(t *testing.T) {
	ph := GeneratePlaceholder([]byte(reflectTok))
	c := newCleaner([]secretEntry{{secret: reflectTok, rep: ph}})
	rnd := rand.New(rand.NewPCG(1, 2))
	for _, form := range reflectForms {
		enc := encodeAs(form, reflectTok)
		for _, around := range [][2]string{{"", ""}, {"x=", "&y=1"}, {"%%\\\\", "\\"}, {"abc ", " sk_live_51"}} {
			s := around[0] + enc + around[1]
			whole := cleanAll(c, s)
			if !strings.HasPrefix(whole, around[0]) || !strings.HasSuffix(whole, around[1]) {
				t.Fatalf("%s: surroundings changed: %q", form, whole)
			}
			if got := decodeAs(t, form, strings.TrimSuffix(strings.TrimPrefix(whole, around[0]), around[1])); got != ph {
				t.Errorf("%s in %q: decodes to %q, want %q", form, s, got, ph)
			}
			for _, r := range revealing(reflectTok) {
				if strings.Contains(whole, r) {
					t.Fatalf("%s: %q left in %q", form, r, whole)
				}
			}
			for size := 1; size <= len(s)+1; size++ {
				if got := cleanStream(t, c, s, []int{size}); got != whole {
					t.Fatalf("%s, reads of %d: %q, want %q", form, size, got, whole)
				}
			}
			for i := 0; i < 20; i++ {
				sizes := []int{1 + rnd.IntN(9), 1 + rnd.IntN(40), 1 + rnd.IntN(3)}
				if got := cleanStream(t, c, s, sizes); got != whole {
					t.Fatalf("%s, reads of %v: %q, want %q", form, sizes, got, whole)
				}
			}
		}
	}
}

// TestCleanerOtherLengths: a placeholder longer than its secret (short
// secrets get 16 bytes) still replaces every form, and the base64 around a
// fragment keeps none of the secret's bits.
func TestCleanerOtherLengths(t *testing.T) {
	const secret = "Zq9/xT+w"
	ph := GeneratePlaceholder([]byte(secret))
	c := newCleaner([]secretEntry{{secret: secret, rep: ph}})
	for k := 0; k < 3; k++ {
		enc := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("\x00", k) + secret + "\x00\x00\x00"))
		got := cleanAll(c, enc)
		if strings.Contains(got, enc[(8*k+5)/6:8*(k+len(secret))/6]) {
			t.Errorf("alignment %d: %q -> %q", k, enc, got)
		}
		dec, err := base64.StdEncoding.DecodeString(got[:8])
		if err != nil {
			t.Fatalf("alignment %d: %q: %v", k, got, err)
		}
		if dec[k] != ph[0] {
			t.Errorf("alignment %d: the first byte decodes to %q, want the placeholder's %q", k, dec[k], ph[0])
		}
	}
}

// TestCleanerEscapeCharactersInSecret: a secret holding '%' and '\' is
// found raw and escaped.
func TestCleanerEscapeCharactersInSecret(t *testing.T) {
	const secret = `a%41b\u0041c%zz`
	c := newCleaner([]secretEntry{{secret: secret, rep: "PLACEHOLDER-16ch"}})
	for in, want := range map[string]string{
		secret:                          "PLACEHOLDER-16ch",
		"x" + secret + "y":              "xPLACEHOLDER-16chy",
		`a%2541b%5Cu0041c%25zz`:         "PLACEHOLDER-16ch",
		`a%41b\\u0041c%zz`:              "PLACEHOLDER-16ch",
		`a%41b\u0041c%z`:                `a%41b\u0041c%z`,
		`"a%41b\\u0041c%zz"`:            `"PLACEHOLDER-16ch"`,
		`a%41b\u005cu0041c%zz and more`: "PLACEHOLDER-16ch and more",
	} {
		if got := cleanAll(c, in); got != want {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
}

// TestCleanerShortSecret: a secret shorter than minFormSecret is replaced
// raw but is not searched for in encoded forms or on the way out.
func TestCleanerShortSecret(t *testing.T) {
	c := newCleaner([]secretEntry{{secret: "ab1", rep: "PLACEHOLDER-16ch"}})
	if got := cleanAll(c, "xab1y 616231 YWIx"); got != "xPLACEHOLDER-16chy 616231 YWIx" {
		t.Errorf("got %q", got)
	}
	if leakIn(c, "ab1", true, func(int) bool { return true }) {
		t.Error("a short secret is searched for on the way out")
	}
}

// TestCleanerBoundedMemory: data that keeps almost matching is released
// as it comes, holding back no more than the window.
func TestCleanerBoundedMemory(t *testing.T) {
	c := newCleaner([]secretEntry{{secret: reflectTok, rep: GeneratePlaceholder([]byte(reflectTok))}})
	almost := encodeAs("jsonu", reflectTok[:len(reflectTok)-1])
	s := strings.Repeat(almost[1:len(almost)-1], 4000)
	if got := cleanStream(t, c, s, []int{1000, 33, 4096}); got != s {
		t.Fatal("near matches changed")
	}
}

// BenchmarkSecretFilter measures cleaning a 1 MiB response body: JSON-like
// text with escapes, and base64 text (every byte could be part of a match).
func BenchmarkSecretFilter(b *testing.B) {
	ph := GeneratePlaceholder([]byte(reflectTok))
	c := newCleaner([]secretEntry{{secret: reflectTok, rep: ph}})
	var js, b64 strings.Builder
	for js.Len() < 1<<20 {
		js.WriteString(`{"id":"cus_9s6XKzkNRiz8i3","url":"https:\/\/api.example.com\/v1\/items?q=a%20b","n":12345},` + "\n")
	}
	rnd := make([]byte, 3<<18)
	for i := range rnd {
		rnd[i] = byte(i * 7919 >> 3)
	}
	b64.WriteString(base64.StdEncoding.EncodeToString(rnd))
	for _, bc := range []struct{ name, data string }{{"json", js.String()}, {"base64", b64.String()}} {
		b.Run(bc.name, func(b *testing.B) {
			buf := make([]byte, 32<<10)
			b.SetBytes(int64(len(bc.data)))
			for i := 0; i < b.N; i++ {
				data := bc.data
				f := newSecretFilter(io.NopCloser(strings.NewReader(data)), c, nil)
				for {
					if _, err := f.Read(buf); err != nil {
						break
					}
				}
			}
		})
	}
}

// TestCleanerEscapedEdge: when the base64 character after the fragment is
// JSON-escaped ("\/") or percent-encoded, the escape stays valid.
func TestCleanerEscapedEdge(t *testing.T) {
	ph := GeneratePlaceholder([]byte(reflectTok))
	c := newCleaner([]secretEntry{{secret: reflectTok, rep: ph}})
	found := 0
	for k := 0; k < 3; k++ {
		for x := 0; x < 256; x++ {
			enc := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("u", k) + reflectTok + string([]byte{byte(x)}) + "!?"))
			hi := 8 * (k + len(reflectTok)) / 6
			if 8*(k+len(reflectTok))%6 == 0 || enc[hi] != '/' {
				continue
			}
			found++
			for _, esc := range [][2]string{{`\/`, "json"}, {"%2F", "pct"}} {
				in := strings.ReplaceAll(enc, "/", esc[0])
				got := cleanAll(c, in)
				var plain string
				if esc[1] == "json" {
					if err := json.Unmarshal([]byte(`"`+got+`"`), &plain); err != nil {
						t.Fatalf("k=%d %q -> %q: %v", k, in, got, err)
					}
				} else {
					var err error
					if plain, err = url.PathUnescape(got); err != nil {
						t.Fatalf("k=%d %q -> %q: %v", k, in, got, err)
					}
				}
				dec, err := base64.StdEncoding.DecodeString(plain)
				if err != nil || !strings.Contains(string(dec), ph[1:len(ph)-1]) || strings.Contains(string(dec), reflectTok[1:len(reflectTok)-1]) {
					t.Errorf("k=%d %q -> %q -> %q %v", k, in, got, dec, err)
				}
			}
		}
	}
	if found == 0 {
		t.Fatal("no case with '/' after the fragment")
	}
}

// TestCleanerEscapedBase64: base64 with every character JSON- or
// percent-escaped is cleaned and stays valid.
func TestCleanerEscapedBase64(t *testing.T) {
	ph := GeneratePlaceholder([]byte(reflectTok))
	c := newCleaner([]secretEntry{{secret: reflectTok, rep: ph}})
	for k := 0; k < 3; k++ {
		enc := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("u", k) + reflectTok + "!?"))
		var js, pct strings.Builder
		for i := 0; i < len(enc); i++ {
			fmt.Fprintf(&js, `\u%04x`, enc[i])
			fmt.Fprintf(&pct, "%%%02X", enc[i])
		}
		var fromJSON, fromPct string
		got := cleanAll(c, js.String())
		if lo := (8*k + 5) / 6; got[:6*lo] != js.String()[:6*lo] {
			t.Errorf("k=%d: the escapes before the fragment changed: %q, was %q", k, got[:6*lo], js.String()[:6*lo])
		}
		if err := json.Unmarshal([]byte(`"`+got+`"`), &fromJSON); err != nil {
			t.Fatalf("k=%d: %q: %v", k, got, err)
		}
		got = cleanAll(c, pct.String())
		fromPct, err := url.PathUnescape(got)
		if err != nil {
			t.Fatalf("k=%d: %q: %v", k, got, err)
		}
		for _, plain := range []string{fromJSON, fromPct} {
			dec, err := base64.StdEncoding.DecodeString(plain)
			if err != nil || !strings.Contains(string(dec), ph[1:len(ph)-1]) || strings.Contains(plain, enc[4:len(enc)-6]) {
				t.Errorf("k=%d: %q -> %q %v", k, plain, dec, err)
			}
		}
	}
}

// TestFilterPassesPausedStream: a stream paused after an event is passed
// on whole, so that streamed responses (server-sent events) are not held up.
func TestFilterPassesPausedStream(t *testing.T) {
	c := newCleaner([]secretEntry{{secret: reflectTok, rep: GeneratePlaceholder([]byte(reflectTok))}})
	pr, pw := io.Pipe()
	f := newSecretFilter(pr, c, nil)
	defer pw.Close()
	const event = "data: {\"token\":\"sk\"}\n\n"
	go pw.Write([]byte(event))
	got := make(chan string, 1)
	go func() {
		buf := make([]byte, 100)
		n, _ := io.ReadAtLeast(f, buf, len(event))
		got <- string(buf[:n])
	}()
	select {
	case s := <-got:
		if s != event {
			t.Fatalf("read %q", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the end of the event is held back")
	}
}

// TestCleanerRandom: random secrets in random text, in every form, split
// at random: streaming gives what cleaning in one piece gives, and neither
// leaves the secret.
func TestCleanerRandom(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 4))
	const chars = "abcdefABCDEF0123456789xyz/+-_%\\ .~\"u"
	pick := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = chars[rnd.IntN(len(chars))]
		}
		return string(b)
	}
	for iter := 0; iter < 300; iter++ {
		secret := pick(8 + rnd.IntN(30))
		c := newCleaner([]secretEntry{{secret: secret, rep: GeneratePlaceholder([]byte(secret))}})
		var sb strings.Builder
		for sb.Len() < 2000 {
			if rnd.IntN(3) == 0 {
				sb.WriteString(encodeAs(reflectForms[rnd.IntN(len(reflectForms))], secret))
			} else {
				sb.WriteString(pick(rnd.IntN(40)))
			}
		}
		s := sb.String()
		whole := cleanAll(c, s)
		for _, r := range revealing(secret) {
			if strings.Contains(whole, r) {
				t.Fatalf("secret %q: %q left in %q", secret, r, whole)
			}
		}
		sizes := []int{1 + rnd.IntN(50), 1 + rnd.IntN(5), 1 + rnd.IntN(500)}
		if got := cleanStream(t, c, s, sizes); got != whole {
			t.Fatalf("secret %q, reads of %v: streamed and whole differ", secret, sizes)
		}
	}
}

// TestCleanHeaderNames: a secret in a header name is replaced too; a name
// that would not be a valid header name once cleaned is dropped.
func TestCleanHeaderNames(t *testing.T) {
	c := newCleaner([]secretEntry{{secret: "Tok-abcdefgh", rep: "Plc-zyxwvuts"}, {secret: "Sec-12345678", rep: "bad name"}})
	h := http.Header{"X-Tok-abcdefgh": {"1"}, "X-Sec-12345678": {"2"}, "Other": {"Tok-abcdefgh"}}
	cleanHeader(h, c)
	want := http.Header{"X-Plc-Zyxwvuts": {"1"}, "Other": {"Plc-zyxwvuts"}}
	if fmt.Sprint(h) != fmt.Sprint(want) {
		t.Errorf("cleaned header %v, want %v", h, want)
	}
}
