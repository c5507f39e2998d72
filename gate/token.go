package gate

// Provider tokens are parsed, not matched with regular expressions: a token
// is its literal prefix (the anchor) followed by a few segments, each a run
// of bytes from one class or one of a few literals. Matching starts at the
// anchor and never backtracks (no segment's class contains the first byte
// of the literal after it), so a hit costs at most the token's maximum
// length in table look-ups, however the surrounding bytes are arranged.

// byteClass is a set of bytes.
type byteClass [256]bool

// class returns the set of the bytes in each of the strings; "a-z" style
// ranges are expanded when a string has the form x-y.
func class(parts ...string) *byteClass {
	var c byteClass
	for _, p := range parts {
		if len(p) == 3 && p[1] == '-' {
			for b := int(p[0]); b <= int(p[2]); b++ {
				c[b] = true
			}
			continue
		}
		for i := 0; i < len(p); i++ {
			c[p[i]] = true
		}
	}
	return &c
}

// Byte classes of the token formats.
var (
	clsDigit      = class("0-9")
	clsHexLower   = class("0-9", "a-f")
	clsHex        = class("0-9", "a-f", "A-F")
	clsUpperDigit = class("A-Z", "0-9")
	clsLowerDigit = class("a-z", "0-9")
	clsLetters    = class("a-z", "A-Z")
	clsAlnum      = class("a-z", "A-Z", "0-9")
	clsAlnumDash  = class("a-z", "A-Z", "0-9", "-")
	clsWord       = class("a-z", "A-Z", "0-9", "_")
	clsWordDash   = class("a-z", "A-Z", "0-9", "_-") // also the base64url alphabet
	clsB64        = class("a-z", "A-Z", "0-9", "+/")
	clsB64Pad     = class("=")
	clsBech32     = class("QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L")
)

// seg is one segment of a token: a run of min..max bytes of cls, or, when
// cls is nil, one of lits (the longest that matches; "" makes it optional).
type seg struct {
	cls      *byteClass
	min, max int
	lits     []string
}

func run(cls *byteClass, min, max int) seg { return seg{cls: cls, min: min, max: max} }
func lit(alts ...string) seg               { return seg{lits: alts} }

// tokenSpec describes a token format after its anchor.
type tokenSpec struct {
	segs []seg
	// notBefore, if set, is the set of bytes that may not precede the
	// anchor; notAfter, if set, the set of bytes that may not follow the
	// token. When notAfter is nil the last run is cut at its maximum length
	// instead: a fixed-format token glued to more text is still reported.
	notBefore, notAfter *byteClass
}

// maxLen is the longest body the spec can match after its anchor.
func (t tokenSpec) maxLen() int {
	n := 0
	for _, s := range t.segs {
		if s.cls != nil {
			n += s.max
			continue
		}
		longest := 0
		for _, l := range s.lits {
			longest = max(longest, len(l))
		}
		n += longest
	}
	return n
}

// match parses the token whose anchor is buf[start:i] and returns its end,
// or -1.
func (t tokenSpec) match(buf []byte, start, i int) int {
	if t.notBefore != nil && start > 0 && t.notBefore[buf[start-1]] {
		return -1
	}
	for k, s := range t.segs {
		if s.cls == nil {
			i = matchLit(buf, i, s.lits)
		} else {
			i = matchRun(buf, i, s, k == len(t.segs)-1 && t.notAfter == nil)
		}
		if i < 0 {
			return -1
		}
	}
	if t.notAfter != nil && i < len(buf) && t.notAfter[buf[i]] {
		return -1
	}
	return i
}

// matchLit returns the end of the longest alternative that occurs at i.
func matchLit(buf []byte, i int, alts []string) int {
	end := -1
	for _, a := range alts {
		if i+len(a) <= len(buf) && string(buf[i:i+len(a)]) == a && i+len(a) > end {
			end = i + len(a)
		}
	}
	return end
}

// matchRun reads a run of s.cls at i. A run longer than s.max fails unless
// cut is set, in which case it is cut at s.max.
func matchRun(buf []byte, i int, s seg, cut bool) int {
	j, lim := i, min(len(buf), i+s.max+1)
	for j < lim && s.cls[buf[j]] {
		j++
	}
	n := j - i
	switch {
	case n < s.min:
		return -1
	case n > s.max && !cut:
		return -1
	case n > s.max:
		return i + s.max
	}
	return j
}

// tokenPattern is a pattern that parses spec at each of the anchors.
func tokenPattern(anchors []Anchor, spec tokenSpec) pattern {
	return pattern{
		anchors: anchors,
		after:   spec.maxLen() + 1,
		before:  1,
		match: func(buf []byte, h Hit) (int, int) {
			if end := spec.match(buf, h.Start, h.End); end > h.End {
				return h.Start, end
			}
			return 0, 0
		},
	}
}

// token is a rule for a provider token recognised by its fixed prefix.
func token(id string, sev Severity, desc string, anchors []Anchor, spec tokenSpec) ruleDef {
	return rule(id, sev, desc, tokenPattern(anchors, spec))
}

// prefixed is a token whose prefix contains a separator ('_', '-', '.') or
// is otherwise distinctive: no boundary is required on either side, and a
// body longer than its format is cut at the format's length.
func prefixed(segs ...seg) tokenSpec { return tokenSpec{segs: segs} }

// bounded is a token whose prefix and body are drawn from one alphabet
// (AKIA + 16 upper-case letters and digits): it must not be part of a
// longer run of that alphabet, or random data would match, but any other
// byte may touch it.
func bounded(alphabet *byteClass, segs ...seg) tokenSpec {
	return tokenSpec{segs: segs, notBefore: alphabet, notAfter: alphabet}
}

// wordStart is a token with a short or common prefix: it must start a word
// (the byte before is not [A-Za-z0-9_]); its body is cut at its maximum.
func wordStart(segs ...seg) tokenSpec { return tokenSpec{segs: segs, notBefore: clsWord} }

// wholeWord is a token that must be a whole word: not preceded by
// [A-Za-z0-9_] and not followed by [A-Za-z0-9_-].
func wholeWord(segs ...seg) tokenSpec {
	return tokenSpec{segs: segs, notBefore: clsWord, notAfter: clsWordDash}
}
