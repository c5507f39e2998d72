package egress

import (
	"encoding/base64"
	"encoding/hex"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// A server can echo what it received, or keep it and return it later, and
// it may do so encoded: inside Basic credentials, JSON-escaped, URL-escaped,
// as hex. A cleaner knows the forms in which each secret can appear and
// swaps every occurrence for the same form of the secret's placeholder. The
// same forms, found in a request to a host the secret is not bound to, are a
// leak.
//
// The forms of a secret are:
//   - the secret itself;
//   - its hex encoding (either letter case);
//   - the part of its base64 encoding (standard and URL alphabets) that
//     depends on the secret alone, at each of the three alignments it can
//     have inside a longer base64 string (Basic credentials, tokens);
//   - its UTF-16 form (each byte followed by a zero byte, or preceded by
//     one), for ASCII secrets;
//
// and any character of a form may appear percent-encoded ("%2F", twice
// "%252F"; "+" for a space), JSON-escaped ("\/", "\u002f", "\u00e4" for
// the UTF-8 of a code point, "\"", "\\") or as an HTML or XML character
// reference ("&#43;", "&#x2B;", "&amp;"). Base64 forms may be wrapped: one
// line break (CR, LF or CRLF, raw or JSON-escaped) may come between any two
// of their characters. The replacement takes the escape style of the match
// (and its line breaks), and a base64 replacement also rewrites the bits of
// the secret in the two characters around it, which it shares with its
// neighbours, so that decoding gives the placeholder.

const (
	// minFormSecret is the shortest secret whose encoded forms are matched
	// and whose every form is a leak on the way out: shorter ones would
	// match ordinary text. Shorter secrets are only replaced raw (and
	// escaped) in responses.
	minFormSecret = 8
	// minEncodedCore is the shortest base64 fragment registered for a
	// secret (as in the output gate).
	minEncodedCore = 8
	// maxEscape is the longest encoding of one byte ("&#0000043;").
	maxEscape = 10
	// maxBreak is the longest line break skipped before a character of a
	// base64 form ("\r\n" JSON-escaped).
	maxBreak = 4
	// wrapCheck is how many base64 characters must end the line before a
	// line break for the character before the break to count as the one
	// before a base64 match that starts after it (see leadIndex).
	wrapCheck = 16
	// keepTail is how many cleaned bytes already passed on a secretFilter
	// keeps for clean to look back at (an escape, a wrapped line).
	keepTail = wrapCheck + maxBreak + maxEscape
	// redactedMarker replaces secrets in texts that must carry neither a
	// secret nor a placeholder (events, error messages), and the values of
	// header rules, which have no placeholder.
	redactedMarker = "[redacted]"
)

// escape styles and letter case seen in a match.
type matchFlags uint8

const (
	escPercent  matchFlags = 1 << iota
	escPercent2            // percent-encoded twice: "%252F"
	escJSON
	escHTML
	upperHex

	escStyles = escPercent | escPercent2 | escJSON | escHTML
)

// form is one byte string that reveals a secret.
type form struct {
	pat      []byte // what is matched; hex forms in lower case
	rep      []byte // what replaces it
	repUpper []byte // replacement when a hex form was matched in upper case
	fold     bool   // hex: letters match in either case
	edge     *b64Edge
	owner    int // index into cleaner.owners; -1 for the forms of one response
}

// b64Edge describes the characters around a base64 fragment that hold bits
// of the secret's first and last bytes.
type b64Edge struct {
	url       bool
	leadBits  uint8 // low bits of the character before the fragment
	trailBits uint8 // high bits of the character after it
	leadVal   byte  // the replacement's bits for them
	trailVal  byte  // (positioned); 0 when the replacement realigns the rest
}

// owner is a secret: where it may go, and whether it is searched for on
// the way out.
type owner struct {
	hosts []Rule
	leak  bool
}

// cleaner matches the forms of a set of secrets.
type cleaner struct {
	forms  []*form
	first  *[256][]*form // forms whose first character is this byte (either case for hex)
	owners []owner
	window int // longest possible match, plus one byte
	// cand marks the bytes a match can start with: the first bytes of the
	// forms and the escape characters. possible marks every byte a match can
	// hold; a match is at least minLen bytes long.
	cand, possible *[256]bool
	minLen         int
	// pair[x] marks the bytes that may follow x at the start of a match.
	pair *[256][4]uint64
}

// secretEntry is one value to clean: the secret, its replacement, and the
// hosts it may be sent to.
type secretEntry struct {
	secret, rep string
	hosts       []Rule
}

// newCleaner returns a cleaner of entries, or nil when there are none.
func newCleaner(entries []secretEntry) *cleaner {
	if len(entries) == 0 {
		return nil
	}
	c := &cleaner{}
	seen := map[string]bool{}
	add := func(f *form) {
		if len(f.pat) == 0 || seen[string(f.pat)] {
			return
		}
		seen[string(f.pat)] = true
		c.forms = append(c.forms, f)
	}
	for i, e := range entries {
		long := len(e.secret) >= minFormSecret
		c.owners = append(c.owners, owner{hosts: e.hosts, leak: long})
		add(&form{pat: []byte(e.secret), rep: []byte(e.rep), owner: i})
		if !long {
			continue
		}
		add(&form{pat: []byte(hex.EncodeToString([]byte(e.secret))), rep: []byte(hex.EncodeToString([]byte(e.rep))),
			repUpper: []byte(strings.ToUpper(hex.EncodeToString([]byte(e.rep)))), fold: true, owner: i})
		if u, ok := utf16Core(e.secret); ok {
			if r, ok := utf16Core(e.rep); ok {
				add(&form{pat: u, rep: r, owner: i})
			}
		}
		for _, url := range []bool{false, true} {
			for k := 0; k < 3; k++ {
				if f := base64Form(e.secret, e.rep, k, url); f != nil {
					f.owner = i
					add(f)
				}
			}
		}
	}
	c.index()
	return c
}

// index builds the tables of the forms.
func (c *cleaner) index() {
	c.first, c.cand, c.possible, c.pair = new([256][]*form), new([256]bool), new([256]bool), new([256][4]uint64)
	follow := func(x byte, ys ...byte) {
		for _, y := range ys {
			c.pair[x][y>>6] |= 1 << (y & 63)
		}
	}
	follow('%', []byte("0123456789abcdefABCDEF")...)
	follow('\\', []byte(`/"\\tu`)...)
	follow('&', []byte("#aqlgAQLG")...)
	c.window, c.minLen = 0, 0
	for _, b := range []byte(`%\\+/"tu0123456789abcdefABCDEF&#;xX`) { // what escapes are made of
		c.possible[b] = true
	}
	c.cand['%'], c.cand['\\'], c.cand['&'] = true, true, true
	inPattern := [256]bool{}
	for _, f := range c.forms {
		p := f.pat[0]
		firsts := []byte{p}
		if f.fold && 'a' <= p && p <= 'f' {
			firsts = append(firsts, p-'a'+'A')
		}
		if p == ' ' {
			firsts = append(firsts, '+') // an escape: bestAt finds f through the space
		}
		for k, x := range firsts {
			if k == 0 || x != '+' {
				c.first[x] = append(c.first[x], f)
			}
			c.cand[x] = true
			switch {
			case len(f.pat) == 1:
				c.pair[x] = [4]uint64{^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0)}
			default:
				q := f.pat[1]
				follow(x, q, '%', '\\', '&')
				if f.edge != nil {
					follow(x, '\r', '\n')
				}
				if f.fold && 'a' <= q && q <= 'f' {
					follow(x, q-'a'+'A')
				}
				if q == ' ' {
					follow(x, '+')
				}
			}
		}
		for _, b := range f.pat {
			c.possible[b] = true
			inPattern[b] = true
		}
		w := maxEscape*len(f.pat) + 1
		if f.edge != nil { // line breaks, and the character after the last one
			for _, b := range []byte("\r\nnr") {
				c.possible[b] = true
			}
			w = (maxEscape+maxBreak)*len(f.pat) + maxBreak + 2
		}
		c.window = max(c.window, w)
		if c.minLen == 0 || len(f.pat) < c.minLen {
			c.minLen = len(f.pat)
		}
	}
	for _, ref := range charRefs {
		if inPattern[ref.c] {
			for _, b := range []byte(ref.name) {
				c.possible[b] = true
			}
		}
	}
}

// next returns the first position from i where a match may start, or
// len(b). Where a byte no match can hold lies minLen-1 bytes ahead, no
// match starts before it; nor where two zero bytes lie there, since no
// match holds two in a row (zero bytes come only from UTF-16 forms, and a
// secret holds none).
func next[T text](c *cleaner, b T, i int) int {
	cand, possible, skip := c.cand, c.possible, c.minLen-1
	for i < len(b) {
		x := b[i]
		if cand[x] {
			if i+1 == len(b) {
				return i
			}
			if y := b[i+1]; c.pair[x][y>>6]&(1<<(y&63)) != 0 {
				return i
			}
			i++
			continue
		}
		if j := i + skip; skip > 0 && j < len(b) {
			if y := b[j]; !possible[y] {
				i = j + 1
				continue
			} else if y == 0 && b[j-1] == 0 {
				i = j
				continue
			}
		}
		i++
	}
	return len(b)
}

// with returns a cleaner that also replaces extra (tried first).
func (c *cleaner) with(extra []*form) *cleaner {
	if len(extra) == 0 {
		return c
	}
	d := &cleaner{owners: c.owners}
	d.forms = append(append(d.forms, extra...), c.forms...)
	d.index()
	return d
}

// utf16Core returns s with a zero byte after every byte but the last: it
// is found in both the little- and big-endian UTF-16 forms of s.
func utf16Core(s string) ([]byte, bool) {
	out := make([]byte, 0, 2*len(s))
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return nil, false
		}
		if i > 0 {
			out = append(out, 0)
		}
		out = append(out, s[i])
	}
	return out, true
}

// base64Form returns the fragment of the base64 encoding of secret that
// does not depend on its neighbours when secret starts k bytes after a
// 3-byte boundary, or nil when it is too short to register.
func base64Form(secret, rep string, k int, url bool) *form {
	enc := base64.RawStdEncoding
	if url {
		enc = base64.RawURLEncoding
	}
	encode := func(v string) (string, int) {
		full := enc.EncodeToString(append(make([]byte, k), v...))
		return full, 8 * (k + len(v)) / 6
	}
	full, hi := encode(secret)
	lo := (8*k + 5) / 6
	if hi-lo < minEncodedCore {
		return nil
	}
	rfull, rhi := encode(rep)
	e := &b64Edge{url: url, leadBits: uint8(6*lo - 8*k), trailBits: uint8(8*(k+len(secret)) - 6*hi)}
	if e.leadBits > 0 {
		e.leadVal = b64Value[rfull[lo-1]] & (1<<e.leadBits - 1)
	}
	if rtrail := uint8(8*(k+len(rep)) - 6*rhi); rtrail == e.trailBits && e.trailBits > 0 {
		e.trailVal = b64Value[rfull[rhi]] & trailMask(e.trailBits)
	}
	return &form{pat: []byte(full[lo:hi]), rep: []byte(rfull[lo:rhi]), edge: e}
}

func trailMask(bits uint8) byte { return (1<<bits - 1) << (6 - bits) }

// b64Value maps a character of either base64 alphabet to its value, and
// every other byte to 0xff.
var b64Value = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for i, c := range "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789" {
		t[c] = byte(i)
	}
	t['+'], t['/'], t['-'], t['_'] = 62, 63, 62, 63
	return t
}()

// fix replaces the secret's bits (mask) of the base64 character x by val,
// keeping x's alphabet.
func (e *b64Edge) fix(x byte, mask, val byte) byte {
	v := b64Value[x]
	if v == 0xff {
		return x
	}
	v = v&^mask | val
	url := e.url
	switch x {
	case '+', '/':
		url = false
	case '-', '_':
		url = true
	}
	const std = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	switch {
	case v < 62 || !url:
		return std[v]
	case v == 62:
		return '-'
	default:
		return '_'
	}
}

type text interface{ ~string | ~[]byte }

// reading is one way to decode an escape: how many input bytes it takes,
// the bytes it stands for (one, or the UTF-8 of a code point), its style.
type reading struct {
	v     [4]byte
	n, nv uint8
	st    matchFlags
}

// byteReading returns the reading of n bytes that stands for v.
func byteReading(n int, v byte, st matchFlags) reading {
	return reading{v: [4]byte{v}, n: uint8(n), nv: 1, st: st}
}

// runeReading returns the reading of n bytes that stands for the UTF-8 of
// the code point v.
func runeReading(n int, v rune, st matchFlags) reading {
	if v < utf8.RuneSelf {
		return byteReading(n, byte(v), st)
	}
	r := reading{n: uint8(n), st: st}
	r.nv = uint8(utf8.EncodeRune(r.v[:], v))
	return r
}

// isEscape reports whether x may start an escape where the pattern holds c.
func isEscape(x, c byte) bool {
	return x == '%' || x == '\\' || x == '&' || x == '+' && c == ' '
}

// matchAt matches f at b[i:] and returns the end of the match (0 if none)
// and the escapes it used; more reports that b ends too early to tell.
func matchAt[T text](f *form, b T, i int, eof bool) (end int, fl matchFlags, more bool) {
	m := matcher[T]{f: f, b: b, eof: eof}
	return m.run(i, 0, 0)
}

// matcher matches one form at one place. Where the input holds an escape
// character that the pattern also holds, both readings are tried (the
// character itself first); each such branch point that failed is
// remembered, so a match takes time linear in the states (pattern index,
// input index) rather than exponential in the escape characters.
type matcher[T text] struct {
	f    *form
	b    T
	eof  bool
	dead map[uint64]bool // failed branch points; nil until one fails
}

// run matches f.pat[pi:] at b[bi:]. It reports more as soon as a reading
// tried before any success needs more input: with more, that reading
// might succeed, and it comes first.
func (m *matcher[T]) run(bi, pi int, fl matchFlags) (int, matchFlags, bool) {
	f, b := m.f, m.b
	for pi < len(f.pat) {
		if bi >= len(b) {
			return 0, 0, !m.eof
		}
		x := b[bi]
		if pi > 0 && f.edge != nil && (x == '\r' || x == '\n' || x == '\\') {
			// A line break between two characters of base64 (MIME, PEM).
			n, short := lineBreak(b, bi, m.eof)
			if short {
				return 0, 0, true
			}
			if n > 0 {
				if bi += n; bi >= len(b) {
					return 0, 0, !m.eof
				}
				x = b[bi]
			}
		}
		c := f.pat[pi]
		if !isEscape(x, c) {
			if !f.same(x, c) {
				return 0, 0, false
			}
			if x != c {
				fl |= upperHex
			}
			bi, pi = bi+1, pi+1
			continue
		}
		type option struct {
			bi, pi int
			fl     matchFlags
		}
		var opts [3]option
		n := 0
		if x == c { // the escape character itself
			opts[n] = option{bi + 1, pi + 1, fl}
			n++
		}
		rs, k, short := unescape(b, bi, m.eof)
		for _, r := range rs[:k] {
			if ok, upper := f.reads(r, pi); ok {
				o := option{bi + int(r.n), pi + int(r.nv), fl | r.st}
				if upper {
					o.fl |= upperHex
				}
				opts[n] = o
				n++
			}
		}
		if n == 1 && !short {
			bi, pi, fl = opts[0].bi, opts[0].pi, opts[0].fl
			continue
		}
		key := uint64(pi)<<32 | uint64(bi)
		if m.dead[key] {
			return 0, 0, false
		}
		for _, o := range opts[:n] {
			if end, efl, more := m.run(o.bi, o.pi, o.fl); more || end > 0 {
				return end, efl, more
			}
		}
		if short { // a reading not yet known comes last
			return 0, 0, true
		}
		if m.dead == nil {
			m.dead = make(map[uint64]bool)
		}
		m.dead[key] = true
		return 0, 0, false
	}
	return bi, fl, false
}

// reads reports whether r stands for f.pat[pi:pi+r.nv], and whether it
// did so with an upper-case hex letter.
func (f *form) reads(r reading, pi int) (ok, upper bool) {
	if pi+int(r.nv) > len(f.pat) {
		return false, false
	}
	for j := 0; j < int(r.nv); j++ {
		v, c := r.v[j], f.pat[pi+j]
		if !f.same(v, c) {
			return false, false
		}
		upper = upper || v != c
	}
	return true, upper
}

func (f *form) same(v, c byte) bool {
	return v == c || f.fold && 'A' <= v && v <= 'F' && v-'A'+'a' == c
}

// lineBreak returns the length of the line break at b[i:] (CR, LF or
// CRLF, raw or JSON-escaped), 0 if none; short reports that b ends too
// early to tell.
func lineBreak[T text](b T, i int, eof bool) (n int, short bool) {
	one := func(j int) (int, byte, bool) { // a CR or LF at j, and its length
		if j >= len(b) {
			return 0, 0, !eof
		}
		switch b[j] {
		case '\r', '\n':
			return 1, b[j], false
		case '\\':
			if j+1 >= len(b) {
				return 0, 0, !eof
			}
			switch b[j+1] {
			case 'r':
				return 2, '\r', false
			case 'n':
				return 2, '\n', false
			}
		}
		return 0, 0, false
	}
	n, x, short := one(i)
	if n == 0 || short || x == '\n' {
		return n, short
	}
	m, y, short := one(i + n)
	if short {
		return 0, true
	}
	if y == '\n' {
		n += m
	}
	return n, false
}

// trailAt returns where the character after a base64 match that ends at
// e is: at e, or after one raw line break. short reports that b ends too
// early to tell.
func trailAt[T text](b T, e int, eof bool) (int, bool) {
	j := e
	if j < len(b) && b[j] == '\r' {
		j++
	}
	if j < len(b) && b[j] == '\n' && (j == e || b[j-1] == '\r') {
		j++
	}
	return j, j >= len(b) && !eof
}

// unescape decodes the escape at b[i:]: its readings (none, one, or two
// for "%25XX", which is "%" or the byte XX percent-encoded twice), and
// short when b ends too early to tell. The readings are:
//   - percent: "%2F", "%252F", "+" for a space;
//   - JSON: "\/", "\"", "\\", "\t", "\n", "\r", "\u002f", "\u00e4" and
//     surrogate pairs (as UTF-8);
//   - HTML and XML character references: "&#43;", "&#x2B;" (as UTF-8),
//     "&amp;", "&quot;", "&apos;", "&lt;", "&gt;".
func unescape[T text](b T, i int, eof bool) (rs [2]reading, k int, short bool) {
	rest := len(b) - i
	switch b[i] {
	case '+':
		rs[0] = byteReading(1, ' ', escPercent)
		return rs, 1, false
	case '%':
		if rest < 3 {
			return rs, 0, !eof
		}
		v, ok := hexByte(b[i+1], b[i+2])
		if !ok {
			return rs, 0, false
		}
		rs[0] = byteReading(3, v, escPercent)
		if v != '%' {
			return rs, 1, false
		}
		if rest < 5 {
			return rs, 1, !eof
		}
		if w, ok := hexByte(b[i+3], b[i+4]); ok {
			rs[1] = byteReading(5, w, escPercent2)
			return rs, 2, false
		}
		return rs, 1, false
	case '\\':
		if rest < 2 {
			return rs, 0, !eof
		}
		var v byte
		switch x := b[i+1]; x {
		case '/', '"', '\\':
			v = x
		case 't':
			v = '\t'
		case 'n':
			v = '\n'
		case 'r':
			v = '\r'
		case 'u':
			return unescapeU(b, i, eof)
		default:
			return rs, 0, false
		}
		rs[0] = byteReading(2, v, escJSON)
		return rs, 1, false
	case '&':
		n, r, short := charRef(b, i, eof)
		if n == 0 {
			return rs, 0, short
		}
		rs[0] = runeReading(n, r, escHTML)
		return rs, 1, false
	}
	return rs, 0, false
}

// unescapeU decodes the JSON escape "\uXXXX" at b[i:], or a surrogate
// pair of them, as UTF-8.
func unescapeU[T text](b T, i int, eof bool) (rs [2]reading, k int, short bool) {
	rest := len(b) - i
	if rest < 6 {
		return rs, 0, !eof
	}
	r, ok := hex4(b, i+2)
	n := 6
	switch {
	case !ok || 0xdc00 <= r && r < 0xe000: // a lone low surrogate
		return rs, 0, false
	case 0xd800 <= r && r < 0xdc00:
		if rest < 12 {
			return rs, 0, !eof
		}
		lo, ok := hex4(b, i+8)
		if b[i+6] != '\\' || b[i+7] != 'u' || !ok || lo < 0xdc00 || lo >= 0xe000 {
			return rs, 0, false
		}
		r, n = utf16.DecodeRune(r, lo), 12
	}
	rs[0] = runeReading(n, r, escJSON)
	return rs, 1, false
}

// charRefs are the named character references that are decoded.
var charRefs = []struct {
	name string // after '&'
	c    byte
}{
	{"amp;", '&'}, {"quot;", '"'}, {"apos;", '\''}, {"lt;", '<'}, {"gt;", '>'},
	{"AMP;", '&'}, {"QUOT;", '"'}, {"LT;", '<'}, {"GT;", '>'},
}

// charRef decodes the HTML or XML character reference at b[i:] (b[i] is
// '&'): its length (0 if none) and code point; short reports that b ends
// too early to tell. Numeric references have at most 7 decimal or 6 hex
// digits and need their ';'.
func charRef[T text](b T, i int, eof bool) (n int, r rune, short bool) {
	j := i + 1
	if j >= len(b) {
		return 0, 0, !eof
	}
	if b[j] != '#' {
		for _, ref := range charRefs {
			k := 0
			for k < len(ref.name) && j+k < len(b) && b[j+k] == ref.name[k] {
				k++
			}
			switch {
			case k == len(ref.name):
				return 1 + k, rune(ref.c), false
			case j+k == len(b) && !eof:
				short = true
			}
		}
		return 0, 0, short
	}
	j++
	base, digits := 10, 7
	if j < len(b) && (b[j] == 'x' || b[j] == 'X') {
		base, digits = 16, 6
		j++
	}
	start, v := j, 0
	for ; j < len(b) && j-start < digits; j++ {
		d, ok := hexDigit(b[j])
		if !ok || int(d) >= base {
			break
		}
		v = v*base + int(d)
	}
	switch {
	case j >= len(b):
		return 0, 0, !eof
	case j == start || b[j] != ';' || v == 0 || v > utf8.MaxRune || 0xd800 <= v && v < 0xe000:
		return 0, 0, false
	}
	return j + 1 - i, rune(v), false
}

// hex4 decodes the four hex digits at b[i:].
func hex4[T text](b T, i int) (rune, bool) {
	hi, ok1 := hexByte(b[i], b[i+1])
	lo, ok2 := hexByte(b[i+2], b[i+3])
	return rune(hi)<<8 | rune(lo), ok1 && ok2
}

func hexByte(a, b byte) (byte, bool) {
	x, ok1 := hexDigit(a)
	y, ok2 := hexDigit(b)
	return x<<4 | y, ok1 && ok2
}

func hexDigit(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// startLists returns the lists of forms that may match at b[i:]: by its
// first byte, and by the bytes its escape may stand for; more when b ends
// too early to tell.
func startLists[T text](c *cleaner, b T, i int, eof bool) (lists [3][]*form, more bool) {
	x := b[i]
	lists[0] = c.first[x]
	if c.escapeAt(x) {
		rs, k, short := unescape(b, i, eof)
		if short {
			return lists, true
		}
		for j, r := range rs[:k] {
			if r.v[0] != x {
				lists[1+j] = c.first[r.v[0]]
			}
		}
	}
	return lists, false
}

// bestAt returns the longest form matching at b[i:] (the first listed on
// a tie), or more when b ends too early to tell.
func bestAt[T text](c *cleaner, b T, i int, eof bool) (best *form, end int, fl matchFlags, more bool) {
	x := b[i]
	if forms := c.first[x]; forms != nil {
		if best, end, fl, more = bestOf(c, forms, b, i, eof, best, end, fl); more {
			return nil, 0, 0, true
		}
	}
	if !c.escapeAt(x) {
		return best, end, fl, false
	}
	rs, k, short := unescape(b, i, eof)
	if short {
		return nil, 0, 0, true
	}
	for j := 0; j < k; j++ {
		if v := rs[j].v[0]; v != x && c.first[v] != nil {
			if best, end, fl, more = bestOf(c, c.first[v], b, i, eof, best, end, fl); more {
				return nil, 0, 0, true
			}
		}
	}
	return best, end, fl, false
}

// bestOf returns the longest match at b[i:] among forms and the best so
// far (the first listed on a tie), or more when b ends too early to tell.
func bestOf[T text](c *cleaner, forms []*form, b T, i int, eof bool, best *form, end int, fl matchFlags) (*form, int, matchFlags, bool) {
	for _, f := range forms {
		e, efl, m := matchAt(f, b, i, eof)
		if m {
			return nil, 0, 0, true
		}
		if e > 0 && f.edge != nil && f.edge.trailBits > 0 {
			if _, short := trailAt(b, e, eof); short {
				return nil, 0, 0, true // the next character holds bits of the secret
			}
		}
		if e > end || e == end && e > 0 && c.before(f, best) {
			best, end, fl = f, e, efl
		}
	}
	return best, end, fl, false
}

// escapeAt reports whether x starts an escape that a form may begin with.
func (c *cleaner) escapeAt(x byte) bool {
	return x == '%' || x == '\\' || x == '&' || x == '+' && c.first[' '] != nil
}

// before reports whether f is listed before g.
func (c *cleaner) before(f, g *form) bool {
	for _, h := range c.forms {
		switch h {
		case f:
			return true
		case g:
			return false
		}
	}
	return false
}

// clean appends in, cleaned, to out. It stops before a possible match that
// in ends too early to decide (unless eof) and returns how much of in it
// used. The base64 character at leadIndex(out), if any, must still be
// changeable, and the keepTail bytes before it visible: a base64 match
// rewrites the character before it. clean may change in after what it
// used.
func (c *cleaner) clean(out, in []byte, eof, redact bool) ([]byte, int) {
	start, i := 0, 0
	for {
		if i = next(c, in, i); i == len(in) {
			break
		}
		f, end, fl, more := bestAt(c, in, i, eof)
		if more {
			break
		}
		if f == nil {
			i++
			continue
		}
		out = append(out, in[start:i]...)
		out = f.emit(out, in, i, end, fl, redact)
		i, start = end, end
	}
	return append(out, in[start:i]...), i
}

// emit appends the replacement of a match of f at in[start:end].
func (f *form) emit(out, in []byte, start, end int, fl matchFlags, redact bool) []byte {
	if redact {
		return append(out, redactedMarker...)
	}
	rep := f.rep
	if fl&upperHex != 0 && f.repUpper != nil {
		rep = f.repUpper
	}
	e := f.edge
	if e == nil {
		return appendStyled(out, rep, fl)
	}
	if i := leadIndex(out); e.leadBits > 0 && i >= 0 {
		out[i] = e.fix(out[i], 1<<e.leadBits-1, e.leadVal)
	}
	if j, _ := trailAt(in, end, true); e.trailBits > 0 && j < len(in) {
		in[j] = e.fix(in[j], trailMask(e.trailBits), e.trailVal)
	}
	// The line breaks of the match go where they were, counted in
	// characters of the form.
	done := 0
	for bi, pi := start, 0; bi < end; pi++ {
		if n, _ := lineBreak(in, bi, true); pi > 0 && n > 0 {
			if pi < len(rep) { // (a shorter replacement loses the rest)
				out = appendStyled(out, rep[done:pi], fl)
				out = append(out, in[bi:bi+n]...)
				done = pi
			}
			bi += n
		}
		if bi < end { // one character: base64 forms hold no escape character
			n := 1
			if rs, k, _ := unescape(in, bi, true); isEscape(in[bi], 0) && k > 0 {
				n = int(rs[k-1].n)
			}
			bi += n
		}
	}
	return appendStyled(out, rep[done:], fl)
}

// leadIndex returns the index in out of the character before a match that
// starts at the end of out, which a base64 match rewrites, or -1. That is
// the last byte, unless it ends an escape (rewriting the last byte of
// "%2F" or "\u0041" would break the escape; after the match, an escape
// starts with '%', '\' or '&', which fix leaves alone). After a raw line
// break, it is the last character of the line when the line ends with
// wrapCheck base64 characters (wrapped base64), or none.
func leadIndex(out []byte) int {
	n, brk := len(out), 0
	if n > 0 && out[n-1] == '\n' {
		brk++
	}
	if n > brk && out[n-1-brk] == '\r' {
		brk++
	}
	switch {
	case brk > 0:
		line := out[:n-brk]
		if len(line) < wrapCheck {
			return -1
		}
		for _, c := range line[len(line)-wrapCheck:] {
			if b64Value[c] == 0xff {
				return -1
			}
		}
		return len(line) - 1
	case n == 0 || endsInEscape(out):
		return -1
	}
	return n - 1
}

// endsInEscape reports whether b may end with a percent or JSON escape.
func endsInEscape(b []byte) bool {
	n := len(b)
	isHex := func(c byte) bool { _, ok := hexDigit(c); return ok }
	return n >= 2 && b[n-2] == '\\' ||
		n >= 3 && b[n-3] == '%' && isHex(b[n-2]) && isHex(b[n-1]) ||
		n >= 5 && string(b[n-5:n-2]) == "%25" && isHex(b[n-2]) && isHex(b[n-1]) ||
		n >= 6 && b[n-6] == '\\' && b[n-5] == 'u'
}

// appendStyled appends s escaped in the one style of fl (as is when the
// match used none, or several).
func appendStyled(out, s []byte, fl matchFlags) []byte {
	switch fl & escStyles {
	case escPercent:
		return appendPercent(out, s, false)
	case escPercent2:
		return appendPercent(out, s, true)
	case escJSON:
		return appendJSON(out, s)
	case escHTML:
		return appendHTML(out, s)
	}
	return append(out, s...)
}

func appendPercent(out, s []byte, twice bool) []byte {
	const digits = "0123456789ABCDEF"
	for _, c := range s {
		switch {
		case 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~", c) >= 0:
			out = append(out, c)
		case twice:
			out = append(out, '%', '2', '5', digits[c>>4], digits[c&15])
		default:
			out = append(out, '%', digits[c>>4], digits[c&15])
		}
	}
	return out
}

func appendJSON(out, s []byte) []byte {
	const digits = "0123456789abcdef"
	for _, c := range s {
		switch {
		case c == '"' || c == '\\' || c == '/':
			out = append(out, '\\', c)
		case c < 0x20:
			out = append(out, '\\', 'u', '0', '0', digits[c>>4], digits[c&15])
		default:
			out = append(out, c)
		}
	}
	return out
}

// appendHTML appends s with the characters HTML and XML give meaning to
// written as references, as html/template writes them.
func appendHTML(out, s []byte) []byte {
	for _, c := range s {
		switch c {
		case '&':
			out = append(out, "&amp;"...)
		case '<':
			out = append(out, "&lt;"...)
		case '>':
			out = append(out, "&gt;"...)
		case '"':
			out = append(out, "&#34;"...)
		case '\'':
			out = append(out, "&#39;"...)
		case '+':
			out = append(out, "&#43;"...)
		default:
			out = append(out, c)
		}
	}
	return out
}

// cleanString returns s cleaned (every form replaced by its replacement,
// or by redactedMarker when redact is set).
func (c *cleaner) cleanString(s string, redact bool) string {
	if c == nil || !containsForm(c, s) {
		return s
	}
	out, _ := c.clean(make([]byte, 0, len(s)+16), []byte(s), true, redact)
	return string(out)
}

func containsForm[T text](c *cleaner, s T) bool {
	for i := next(c, s, 0); i < len(s); i = next(c, s, i+1) {
		if f, _, _, _ := bestAt(c, s, i, true); f != nil {
			return true
		}
	}
	return false
}

// leakIn reports whether s holds a form of a secret that is searched for
// on the way out and for which unbound(owner) is true. With eof unset, a
// match that s ends too early to decide is not reported.
func leakIn[T text](c *cleaner, s T, eof bool, unbound func(int) bool) bool {
	for i := next(c, s, 0); i < len(s); i = next(c, s, i+1) {
		lists, _ := startLists(c, s, i, eof)
		for _, forms := range lists {
			for _, f := range forms {
				if f.owner < 0 || !c.owners[f.owner].leak || !unbound(f.owner) {
					continue
				}
				if end, _, _ := matchAt(f, s, i, eof); end > 0 {
					return true
				}
			}
		}
	}
	return false
}
