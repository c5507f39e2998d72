package egress

import (
	"encoding/base64"
	"encoding/hex"
	"strings"
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
// and any character of a form may appear percent-encoded ("%2F"; "+" for a
// space) or JSON-escaped ("\/", "\u002f", "\"", "\\"). The replacement
// takes the escape style of the match, and a base64 replacement also
// rewrites the bits of the secret in the two characters around it, which
// it shares with its neighbours, so that decoding gives the placeholder.

const (
	// minFormSecret is the shortest secret whose encoded forms are matched
	// and whose every form is a leak on the way out: shorter ones would
	// match ordinary text. Shorter secrets are only replaced raw (and
	// escaped) in responses.
	minFormSecret = 8
	// minEncodedCore is the shortest base64 fragment registered for a
	// secret (as in the output gate).
	minEncodedCore = 8
	// maxEscape is the longest encoding of one character ("\u00XX").
	maxEscape = 6
	// redactedMarker replaces secrets in texts that must carry neither a
	// secret nor a placeholder (events, error messages), and the values of
	// header rules, which have no placeholder.
	redactedMarker = "[redacted]"
)

// escape styles and letter case seen in a match.
type matchFlags uint8

const (
	escPercent matchFlags = 1 << iota
	escJSON
	upperHex
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
	c.window, c.minLen = 0, 0
	for _, b := range []byte(`%\\+/"tu0123456789abcdefABCDEF`) { // what escapes are made of
		c.possible[b] = true
	}
	c.cand['%'], c.cand['\\'] = true, true
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
				follow(x, q, '%', '\\')
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
		}
		c.window = max(c.window, maxEscape*len(f.pat)+1)
		if c.minLen == 0 || len(f.pat) < c.minLen {
			c.minLen = len(f.pat)
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

// matchAt matches f at b[i:] and returns the end of the match (0 if none)
// and the escapes it used; more reports that b ends too early to tell.
func matchAt[T text](f *form, b T, i int, eof bool) (end int, fl matchFlags, more bool) {
	return matchFrom(f, b, i, 0, eof, 0)
}

func matchFrom[T text](f *form, b T, bi, pi int, eof bool, fl matchFlags) (int, matchFlags, bool) {
	more := false
	for ; pi < len(f.pat); pi++ {
		if bi >= len(b) {
			return 0, 0, !eof
		}
		c, x := f.pat[pi], b[bi]
		if x == '%' || x == '\\' || x == '+' && c == ' ' {
			if x == c { // the escape character itself
				end, fl2, m := matchFrom(f, b, bi+1, pi+1, eof, fl)
				if end > 0 {
					return end, fl2, false
				}
				more = more || m
			}
			n, v, st := unescape(b, bi, eof)
			if n < 0 {
				return 0, 0, true
			}
			if n == 0 || !f.same(v, c) {
				return 0, 0, more
			}
			fl |= st
			if v != c {
				fl |= upperHex
			}
			bi += n
			continue
		}
		if !f.same(x, c) {
			return 0, 0, more
		}
		if x != c {
			fl |= upperHex
		}
		bi++
	}
	return bi, fl, false
}

func (f *form) same(v, c byte) bool {
	return v == c || f.fold && 'A' <= v && v <= 'F' && v-'A'+'a' == c
}

// unescape decodes the escape at b[i:]: its length (0 if none, -1 if b
// ends inside it), the byte it stands for, and its style.
func unescape[T text](b T, i int, eof bool) (int, byte, matchFlags) {
	rest := len(b) - i
	short := func() (int, byte, matchFlags) {
		if eof {
			return 0, 0, 0
		}
		return -1, 0, 0
	}
	switch b[i] {
	case '+':
		return 1, ' ', escPercent
	case '%':
		if rest < 3 {
			return short()
		}
		if v, ok := hexByte(b[i+1], b[i+2]); ok {
			return 3, v, escPercent
		}
	case '\\':
		if rest < 2 {
			return short()
		}
		switch b[i+1] {
		case '/', '"', '\\':
			return 2, b[i+1], escJSON
		case 't':
			return 2, '\t', escJSON
		case 'u':
			if rest < 6 {
				return short()
			}
			hi, ok1 := hexByte(b[i+2], b[i+3])
			lo, ok2 := hexByte(b[i+4], b[i+5])
			if ok1 && ok2 && hi == 0 && lo < 0x80 {
				return 6, lo, escJSON
			}
		}
	}
	return 0, 0, 0
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

// bestAt returns the longest form matching at b[i:] (the first listed on
// a tie), or more when b ends too early to tell.
func bestAt[T text](c *cleaner, b T, i int, eof bool) (best *form, end int, fl matchFlags, more bool) {
	lists := [2][]*form{c.first[b[i]]}
	if c.escapeAt(b[i]) {
		n, v, _ := unescape(b, i, eof)
		if n < 0 {
			return nil, 0, 0, true
		}
		if n > 0 {
			lists[1] = c.first[v]
		}
	}
	for _, forms := range lists {
		for _, f := range forms {
			e, efl, m := matchAt(f, b, i, eof)
			if m {
				return nil, 0, 0, true
			}
			if e > 0 && f.edge != nil && f.edge.trailBits > 0 && e == len(b) && !eof {
				return nil, 0, 0, true // the next character holds bits of the secret
			}
			if e > end || e == end && e > 0 && c.before(f, best) {
				best, end, fl = f, e, efl
			}
		}
	}
	return best, end, fl, false
}

// escapeAt reports whether x starts an escape that a form may begin with.
func (c *cleaner) escapeAt(x byte) bool {
	return x == '%' || x == '\\' || x == '+' && c.first[' '] != nil
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
// used. The last byte of out, if a base64 character, must still be
// changeable, and the maxEscape bytes before it visible: a base64 match
// rewrites the character before it unless it is escaped. clean may change
// in after what it used.
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
		out = f.emit(out, in, end, fl, redact)
		i, start = end, end
	}
	return append(out, in[start:i]...), i
}

// emit appends the replacement of a match of f that ends at in[end].
func (f *form) emit(out, in []byte, end int, fl matchFlags, redact bool) []byte {
	if redact {
		return append(out, redactedMarker...)
	}
	rep := f.rep
	if fl&upperHex != 0 && f.repUpper != nil {
		rep = f.repUpper
	}
	if e := f.edge; e != nil {
		// An escaped edge character is left alone: rewriting the last byte
		// of "%2F" or "\u0041" would break the escape. (After the match,
		// an escape starts with '%' or '\', which fix leaves alone.)
		if e.leadBits > 0 && len(out) > 0 && !endsInEscape(out) {
			out[len(out)-1] = e.fix(out[len(out)-1], 1<<e.leadBits-1, e.leadVal)
		}
		if e.trailBits > 0 && end < len(in) {
			in[end] = e.fix(in[end], trailMask(e.trailBits), e.trailVal)
		}
	}
	switch fl & (escPercent | escJSON) {
	case escPercent:
		return appendPercent(out, rep)
	case escJSON:
		return appendJSON(out, rep)
	}
	return append(out, rep...)
}

// endsInEscape reports whether b may end with a percent or JSON escape.
func endsInEscape(b []byte) bool {
	n := len(b)
	isHex := func(c byte) bool { _, ok := hexDigit(c); return ok }
	return n >= 2 && b[n-2] == '\\' ||
		n >= 3 && b[n-3] == '%' && isHex(b[n-2]) && isHex(b[n-1]) ||
		n >= 6 && b[n-6] == '\\' && b[n-5] == 'u'
}

func appendPercent(out, s []byte) []byte {
	const digits = "0123456789ABCDEF"
	for _, c := range s {
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~", c) >= 0 {
			out = append(out, c)
		} else {
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
		lists := [2][]*form{c.first[s[i]]}
		if c.escapeAt(s[i]) {
			if n, v, _ := unescape(s, i, eof); n > 0 {
				lists[1] = c.first[v]
			}
		}
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
