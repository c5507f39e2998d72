package egress

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"html/template"
	"math/rand/v2"
	"net/url"
	"strings"
	"testing"
	"time"
)

// wrapLines breaks s into lines of n characters, each ending with sep.
func wrapLines(s string, n int, sep string) string {
	var b strings.Builder
	for i := 0; i < len(s); i += n {
		b.WriteString(s[i:min(len(s), i+n)])
		b.WriteString(sep)
	}
	return b.String()
}

// checkStreams fails unless s, streamed in pieces of every size up to
// max and of some random mixes, is cleaned as in one piece.
func checkStreams(t *testing.T, c *cleaner, s string, max int, rnd *rand.Rand) {
	t.Helper()
	whole := cleanAll(c, s)
	for size := 1; size <= max; size++ {
		if got := cleanStream(t, c, s, []int{size}); got != whole {
			t.Fatalf("reads of %d: %q, want %q", size, got, whole)
		}
	}
	for i := 0; i < 10; i++ {
		sizes := []int{1 + rnd.IntN(9), 1 + rnd.IntN(90), 1 + rnd.IntN(3)}
		if got := cleanStream(t, c, s, sizes); got != whole {
			t.Fatalf("reads of %v: %q, want %q", sizes, got, whole)
		}
	}
}

// TestCleanerCharacterReferences: a secret written with HTML or XML
// character references (html/template writes "+" as "&#43;") is replaced,
// and the replacement reads back as the placeholder.
func TestCleanerCharacterReferences(t *testing.T) {
	const secret = `tk+<a&b>"q'Z/9x`
	ph := GeneratePlaceholder([]byte(secret))
	c := newCleaner([]secretEntry{{secret: secret, rep: ph}})
	var tmpl bytes.Buffer
	template.Must(template.New("").Parse(`<p title="{{.}}">{{.}}</p>`)).Execute(&tmpl, secret)
	inputs := []string{
		tmpl.String(),
		html.EscapeString(secret),
		strings.NewReplacer("+", "&#x2B;", "<", "&#60;", "&", "&#X26;", "'", "&apos;", `"`, "&#0034;").Replace(secret),
		strings.NewReplacer("+", "&#43;", "&", "&AMP;", "<", "&LT;", ">", "&GT;", `"`, "&QUOT;").Replace(secret),
	}
	for _, in := range inputs {
		got := cleanAll(c, in)
		if strings.Contains(html.UnescapeString(got), secret) || !strings.Contains(html.UnescapeString(got), ph) {
			t.Errorf("%q: cleaned to %q", in, got)
		}
		checkStreams(t, c, in, len(in)+1, rand.New(rand.NewPCG(5, 6)))
	}
	// A reference must be complete: no ';', too many digits, or not a
	// character, and it stands for nothing.
	for _, in := range []string{"tk&#43<a&b>", "tk&#00000043;<a&b>", "tk&#x0;<a&b>", "tk&plus;<a&b>"} {
		c := newCleaner([]secretEntry{{secret: "tk+<a&b>", rep: "PLACEHOLDER-16ch"}})
		if got := cleanAll(c, in); got != in {
			t.Errorf("%q changed to %q", in, got)
		}
	}
}

// TestCleanerWrappedBase64: base64 of the secret wrapped at 76 columns
// with CRLF (MIME) or 64 with LF (PEM), or in a JSON string with "\n", is
// replaced wherever the wrap falls inside it; the lines keep their length
// and the whole decodes to the placeholder, streamed or not.
func TestCleanerWrappedBase64(t *testing.T) {
	ph := GeneratePlaceholder([]byte(reflectTok))
	c := newCleaner([]secretEntry{{secret: reflectTok, rep: ph}})
	rnd := rand.New(rand.NewPCG(7, 8))
	for _, wrap := range []struct {
		cols int
		sep  string
	}{{76, "\r\n"}, {64, "\n"}, {64, `\n`}} {
		for pre := 0; pre < 60; pre++ { // moves the secret along the line
			plain := strings.Repeat("p", pre) + reflectTok + "!?"
			in := wrapLines(base64.StdEncoding.EncodeToString([]byte(plain)), wrap.cols, wrap.sep)
			got := cleanAll(c, in)
			lines, gotLines := strings.Split(in, wrap.sep), strings.Split(got, wrap.sep)
			if len(lines) != len(gotLines) {
				t.Fatalf("%d columns, %d before: lines %q became %q", wrap.cols, pre, lines, gotLines)
			}
			for i := range lines {
				if len(lines[i]) != len(gotLines[i]) {
					t.Fatalf("%d columns, %d before: line %q became %q", wrap.cols, pre, lines[i], gotLines[i])
				}
			}
			dec, err := base64.StdEncoding.DecodeString(strings.Join(gotLines, ""))
			if err != nil {
				t.Fatalf("%d columns, %d before: %q: %v", wrap.cols, pre, got, err)
			}
			want := strings.Repeat("p", pre) + ph + "!?"
			if wrap.sep == `\n` {
				// After an escaped line break the character before the
				// fragment is left alone: it may keep bits of the
				// secret's first byte, but nothing of the rest.
				if string(dec[pre+1:]) != want[pre+1:] {
					t.Errorf("JSON, %d before: decodes to %q, want %q", pre, dec, want)
				}
			} else if string(dec) != want {
				t.Errorf("%d columns, %d before: decodes to %q, want %q", wrap.cols, pre, dec, want)
			}
			if pre%7 == 0 {
				checkStreams(t, c, "data: "+in+"end", 90, rnd)
			}
		}
	}
	// One line break at most between two characters.
	enc := base64.StdEncoding.EncodeToString([]byte(reflectTok))
	for _, in := range []string{enc[:20] + "\n\n" + enc[20:], enc[:20] + "\r\n\r\n" + enc[20:], enc[:20] + " \n" + enc[20:]} {
		if got := cleanAll(c, in); got != in {
			t.Errorf("%q changed to %q", in, got)
		}
	}
}

// TestFilterPassesTextLines: a stream paused after a line of text is
// passed on whole; only after a line of base64 is its last character
// (which a wrapped match on the next line may rewrite) held back.
func TestFilterPassesTextLines(t *testing.T) {
	c := newCleaner([]secretEntry{{secret: reflectTok, rep: GeneratePlaceholder([]byte(reflectTok))}})
	for in, held := range map[string]int{
		"log: step 1 done\n":                0,
		"data: {\"x\":\"abc\"}\r\n":         0,
		"short line\n":                      0,
		"TWFueSBoYW5kcyBtYWtlIGxpZ2h0\r\n":  3,
		"TWFueSBoYW5kcyBtYWtlIGxpZ2h0\n\n":  0,
		"TWFueSBoYW5kcyBtYWtlIGxpZ2h0 \n":   0,
		"TWFueSBoYW5kcyBtYWtlIGxpZ2h0":      1,
		"TWFueSBoYW5kcyBtYWtlIGxpZ2h0%41":   0,
		"TWFueSBoYW5kcyBtYWtlIGxpZ2h0\\/":   0,
		"TWFueSBoYW5kcyBtYWtlIGxpZ2h0\\n":   0, // a JSON escape: never rewritten, nor crossed
		"TWFueSBoYW5kcyBtYWtlIGxpZ2h0\r":    2,
		"TWFueSBoYW5kcyBtYWtlIGxpZ2h0&#43;": 0,
	} {
		f := newSecretFilter(nil, c, nil)
		f.out, _ = c.clean(nil, []byte(in), false, false)
		if got := len(in) - f.ready(); got != held {
			t.Errorf("%q: %d bytes held back, want %d", in, got, held)
		}
	}
}

// TestCleanerDoubleEscapes: a secret percent-encoded twice ("%252F"), and
// a non-ASCII secret JSON-escaped ("\u00e4", surrogate pairs) or
// percent-encoded, are replaced, in the style matched.
func TestCleanerDoubleEscapes(t *testing.T) {
	ph := GeneratePlaceholder([]byte(reflectTok))
	c := newCleaner([]secretEntry{{secret: reflectTok, rep: ph}})
	twice := url.QueryEscape(url.QueryEscape(reflectTok))
	if got := cleanAll(c, "q="+twice+"&x=1"); got != "q="+url.QueryEscape(url.QueryEscape(ph))+"&x=1" {
		t.Errorf("%q cleaned to %q", twice, got)
	}
	const accented = "pässwort-Gehéim-😀-2024"
	aph := GeneratePlaceholder([]byte(accented))
	ac := newCleaner([]secretEntry{{secret: accented, rep: aph}})
	ascii, _ := json.Marshal(accented)
	var escaped strings.Builder // every non-ASCII character as \uXXXX
	for _, r := range string(ascii) {
		if r < 0x80 {
			escaped.WriteRune(r)
		} else if r > 0xffff {
			r1, r2 := 0xd800+(r-0x10000)>>10, 0xdc00+(r-0x10000)&0x3ff
			fmt.Fprintf(&escaped, `\u%04x\u%04X`, r1, r2)
		} else {
			fmt.Fprintf(&escaped, `\u%04x`, r)
		}
	}
	for _, in := range []string{escaped.String(), url.PathEscape(accented), url.QueryEscape(url.QueryEscape(accented))} {
		got := cleanAll(ac, in)
		if strings.Contains(got, "sswort") || !strings.Contains(got, aph[3:len(aph)-3]) {
			t.Errorf("%q cleaned to %q", in, got)
		}
		checkStreams(t, ac, in, len(in)+1, rand.New(rand.NewPCG(9, 10)))
	}
	// A lone surrogate stands for nothing.
	if got := cleanAll(ac, `p\udc00sswort`); got != `p\udc00sswort` {
		t.Errorf("lone surrogate: %q", got)
	}
}

// TestCleanerBackslashRunsLinear: a secret with a long run of backslashes,
// against input with twice as many, is cleaned in linear time (every
// backslash reads as itself or as half of "\\": trying both without
// memory took 2^n steps).
func TestCleanerBackslashRunsLinear(t *testing.T) {
	secret := "pw" + strings.Repeat(`\`, 40) + "Z9"
	c := newCleaner([]secretEntry{{secret: secret, rep: GeneratePlaceholder([]byte(secret))}})
	in := strings.Repeat("pw"+strings.Repeat(`\`, 80)+"Q", 20) + "pw" + strings.Repeat(`\\`, 40) + "Z9"
	done := make(chan string, 1)
	go func() { done <- cleanAll(c, in) }()
	select {
	case got := <-done:
		if strings.Contains(got, "Z9") {
			t.Errorf("the escaped secret at the end was not replaced: %q", got[len(got)-100:])
		}
	case <-time.After(5 * time.Second):
		t.Fatal("cleaning 2 KiB took more than 5 s")
	}
	if !leakIn(c, "x"+strings.Repeat(`\`, 80)+"pw"+strings.Repeat(`\\`, 40)+"Z9", true, func(int) bool { return true }) {
		t.Error("the escaped secret is no leak")
	}
}

// TestCleanerStreamedLikeWholeWithBackslash: for a secret ending in "\u",
// whose backslash may read as itself or start an escape, cleaning split at
// any point gives what cleaning in one piece gives.
func TestCleanerStreamedLikeWholeWithBackslash(t *testing.T) {
	const secret = `9Cu~4.e\u`
	c := newCleaner([]secretEntry{{secret: secret, rep: GeneratePlaceholder([]byte(secret))}})
	parts := []string{"", "x", secret, "9Cu~4.e", `9Cu~4.e\`, "0075", `\u0075`, "00", "u", `\`, `\\`}
	for _, a := range parts {
		for _, b := range parts {
			for _, d := range parts {
				s := a + b + d
				whole := cleanAll(c, s)
				for at := 1; at < len(s); at++ {
					if got := cleanStream(t, c, s, []int{at, 1000}); got != whole {
						t.Fatalf("%q split at %d: %q, whole %q", s, at, got, whole)
					}
				}
			}
		}
	}
}
