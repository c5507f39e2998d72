package gate

import (
	"bytes"
	"net/netip"
	"slices"
)

// dataScanner is the personal and financial data family. Its matchers are
// hand-written parsers rather than regular expressions: they run at every
// digit, '@' and ':' and must cost a few nanoseconds when nothing matches.
type dataScanner struct {
	rules   []Rule
	anchors []Anchor
}

// Anchor indexes of the data scanner: 0-9 are the digits.
const (
	anchorAt    = 10
	anchorColon = 11
)

func newDataScanner() *dataScanner {
	high, low, info := SeverityHigh, SeverityLow, SeverityInfo
	s := &dataScanner{rules: []Rule{
		{ID: "credit-card", Severity: high, Description: "payment card number (13-19 digits, known issuer prefix, Luhn-valid; grouped 4-4-4-4/4-6-5 or near a word like card, visa, pan)"},
		{ID: "us-ssn", Severity: high, Description: "US social security number (AAA-GG-SSSS, valid area/group/serial, near the word SSN or social security)"},
		{ID: "iban", Severity: high, Description: "IBAN with valid country length and mod-97 checksum"},
		{ID: "email", Severity: low, Description: "e-mail address"},
		{ID: "phone", Severity: low, Description: "phone number (E.164 +CC…, or North American (AAA) BBB-CCCC forms)"},
		{ID: "ipv4", Severity: info, Description: "IPv4 address"},
		{ID: "ipv6", Severity: info, Description: "IPv6 address"},
	}}
	for i := range s.rules {
		s.rules[i].Scanner = "data"
	}
	s.anchors = ci("0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "@", ":")
	return s
}

func (s *dataScanner) Name() string      { return "data" }
func (s *dataScanner) Rules() []Rule     { return s.rules }
func (s *dataScanner) Anchors() []Anchor { return s.anchors }
func (s *dataScanner) Reach() int        { return 320 }

// Check dispatches a digit, '@' or ':' to the parsers that can start there.
func (s *dataScanner) Check(buf []byte, h Hit, emit func(Match)) {
	try := func(rule string, start, end int) {
		if end > start {
			emit(Match{Rule: rule, Start: start, End: end})
		}
	}
	switch h.Anchor {
	case anchorAt:
		start, end := matchEmail(buf, h.Start)
		try("email", start, end)
	case anchorColon:
		start, end := matchIPv6(buf, h.Start)
		try("ipv6", start, end)
	default:
		i := h.Start
		if i > 0 && isWordByte(buf[i-1]) {
			if isUpper(buf[i-1]) {
				start, end := matchIBAN(buf, i)
				try("iban", start, end)
			}
			return // inside a number or a word: not a start
		}
		s.checkNumber(buf, i, try)
	}
}

// checkNumber runs the number parsers that can match the shape of the
// number starting at buf[i]: the length of its first digit run and the
// byte after it decide, so most numbers cost one short loop.
func (s *dataScanner) checkNumber(buf []byte, i int, try func(string, int, int)) {
	j := i
	for j < len(buf) && j-i < 20 && isDigit(buf[j]) {
		j++
	}
	run, next := j-i, byte(0)
	if j < len(buf) {
		next = buf[j]
	}
	prev := byte(0)
	if i > 0 {
		prev = buf[i-1]
	}
	// A grouped card continues with a group of 3+ digits; a North American
	// phone number continues with a group of exactly 3.
	grouped := (next == ' ' || next == '-') && digitsAt(buf, j+1, 3)
	if run >= 13 || run >= 3 && run <= 6 && grouped {
		if start, end, std := matchCard(buf, i); end > start && (std || nearWord(buf, i, cardWords)) {
			try("credit-card", start, end)
		}
	}
	if run == 3 && next == '-' {
		if start, end := matchSSN(buf, i); end > start && nearWord(buf, i, ssnWords) {
			try("us-ssn", start, end)
		}
	}
	if prev == '+' || (run == 1 || run == 3) && (next == ' ' || next == '-' || next == '.') && digitsAt(buf, j+1, 3) ||
		run == 3 && next == ')' {
		start, end := matchPhone(buf, i)
		try("phone", start, end)
	}
	if run <= 3 && next == '.' {
		start, end := matchIPv4(buf, i)
		try("ipv4", start, end)
	}
}

// numberStart reports whether buf[i] (a digit) begins a number: the byte
// before it is not part of a word or of a dotted/dashed number.
func numberStart(buf []byte, i int) bool {
	if i == 0 {
		return true
	}
	p := buf[i-1]
	return !isWordByte(p) && p != '.'
}

// numberEnd reports whether a number may end just before buf[i].
func numberEnd(buf []byte, i int) bool {
	if i >= len(buf) {
		return true
	}
	c := buf[i]
	if isWordByte(c) {
		return false
	}
	if (c == '.' || c == '-' || c == ':' || c == '/') && i+1 < len(buf) && isDigit(buf[i+1]) {
		return false
	}
	return true
}

// groups is a run of digit groups separated by one kind of separator.
type groups struct {
	ends   [8]int // end offset of each group
	n      int    // number of groups
	digits [20]byte
	nd     int // number of digits (capped at len(digits))
}

// digitGroups reads up to 8 digit groups separated by single separators
// from seps (the same one throughout), starting at i, stopping once more
// than maxDigits digits were read.
func digitGroups(buf []byte, i int, seps string, maxDigits int) groups {
	var g groups
	var sep byte
	for i < len(buf) && g.n < len(g.ends) && g.nd <= maxDigits {
		j := i
		for j < len(buf) && isDigit(buf[j]) {
			if g.nd < len(g.digits) {
				g.digits[g.nd] = buf[j]
			}
			g.nd++
			j++
		}
		if j == i {
			break
		}
		g.ends[g.n] = j
		g.n++
		if j+1 >= len(buf) || !isDigit(buf[j+1]) || !containsByte(seps, buf[j]) || sep != 0 && buf[j] != sep {
			break
		}
		sep = buf[j]
		i = j + 1
	}
	return g
}

func containsByte(s string, c byte) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return true
		}
	}
	return false
}

// matchCard finds a Luhn-valid card number with a known issuer prefix,
// written as one run of digits or as groups separated by spaces or dashes.
// std reports whether it is written in a standard card grouping (4-4-4-4,
// 4-6-5, 4-6-4, 4-4-4-4-3), which no other kind of number uses.
func matchCard(buf []byte, i int) (start, end int, std bool) {
	if !numberStart(buf, i) {
		return 0, 0, false
	}
	g := digitGroups(buf, i, " -", 19)
	var sizes [8]int
	n := 0
	for k, end := range g.ends[:g.n] {
		size := end - i - n - k // digits in this group
		if g.n > 1 && (size < 3 || size > 6) {
			return 0, 0, false
		}
		sizes[k] = size
		n += size
		if n >= 13 && n <= 19 && numberEnd(buf, end) && cardNumber(g.digits[:n]) {
			return i, end, standardGrouping(sizes[:k+1])
		}
	}
	return 0, 0, false
}

// cardGroupings are the ways card numbers are printed in groups.
var cardGroupings = [][]int{{4, 4, 4, 4}, {4, 6, 5}, {4, 6, 4}, {4, 4, 4, 4, 3}}

func standardGrouping(sizes []int) bool {
	for _, g := range cardGroupings {
		if slices.Equal(g, sizes) {
			return true
		}
	}
	return false
}

// Context words. A Luhn-valid run of digits is a card number only near one
// of cardWords (one random 16-digit id in 40 passes Luhn with a known
// issuer prefix); a dashed AAA-GG-SSSS is an SSN only near one of ssnWords
// (part numbers and serials share the shape).
var (
	cardWords = []string{"card", "visa", "amex", "american express", "discover", "jcb", "diners", "maestro",
		"unionpay", "cc", "ccn", "pan", "payment", "credit", "debit"}
	ssnWords = []string{"ssn", "social security", "social_security", "social-security", "socialsecurity"}
)

// contextReach is how far before a number its context word may start.
const contextReach = 32

// nearWord reports whether one of words (lower case) occurs in the
// contextReach bytes before buf[i], ignoring case, not preceded by a
// letter; words of up to three letters must not be followed by one either
// ("pan" is not "japan" nor "panel").
func nearWord(buf []byte, i int, words []string) bool {
	lo := max(0, i-contextReach)
	for j := lo; j < i; j++ {
		if j > 0 && isLetter(buf[j-1]) {
			continue
		}
		for _, w := range words {
			end := j + len(w)
			if end <= i && foldByte(buf[j]) == w[0] && equalFold(buf[j:end], w) &&
				(len(w) > 3 || end == len(buf) || !isLetter(buf[end])) {
				return true
			}
		}
	}
	return false
}

// cardNumber checks issuer prefix, length and Luhn checksum.
func cardNumber(d []byte) bool {
	n := len(d)
	p2 := int(d[0]-'0')*10 + int(d[1]-'0')
	p3 := p2*10 + int(d[2]-'0')
	p4 := p3*10 + int(d[3]-'0')
	var ok bool
	switch {
	case d[0] == '4':
		ok = n == 13 || n == 16 || n == 19
	case p2 >= 51 && p2 <= 55, p4 >= 2221 && p4 <= 2720:
		ok = n == 16
	case p2 == 34 || p2 == 37:
		ok = n == 15
	case p4 == 6011 || p2 == 65 || p3 >= 644 && p3 <= 649, p2 == 62, p4 >= 3528 && p4 <= 3589:
		ok = n >= 16
	case p2 == 36 || p2 == 38 || p2 == 39 || p3 >= 300 && p3 <= 305:
		ok = n >= 14
	}
	return ok && luhn(d)
}

// matchSSN finds AAA-GG-SSSS with a valid area (not 000, 666 or 9xx),
// group (not 00) and serial (not 0000).
func matchSSN(buf []byte, i int) (int, int) {
	if !numberStart(buf, i) || i > 0 && buf[i-1] == '-' || i+11 > len(buf) {
		return 0, 0
	}
	s := buf[i : i+11]
	for k, c := range s {
		if k == 3 || k == 6 {
			if c != '-' {
				return 0, 0
			}
		} else if !isDigit(c) {
			return 0, 0
		}
	}
	if !numberEnd(buf, i+11) || i+11 < len(buf) && buf[i+11] == '-' {
		return 0, 0
	}
	area := string(s[:3])
	if area == "000" || area == "666" || s[0] == '9' || string(s[4:6]) == "00" || string(s[7:11]) == "0000" {
		return 0, 0
	}
	return i, i + 11
}

// matchIBAN finds an IBAN at two upper-case letters followed by the check
// digits, compact or in groups of four separated by single spaces.
func matchIBAN(buf []byte, i int) (int, int) {
	if i < 2 || !isUpper(buf[i-2]) || !isUpper(buf[i-1]) || i > 2 && isWordByte(buf[i-3]) {
		return 0, 0
	}
	want, ok := ibanLengths[string(buf[i-2:i])]
	if !ok {
		return 0, 0
	}
	start, j := i-2, i-2
	var compact [34]byte
	n := 0
	for j < len(buf) && n < want {
		c := buf[j]
		switch {
		case isUpper(c) || isDigit(c):
			compact[n] = c
			n++
		case c == ' ' && n%4 == 0 && j+1 < len(buf) && (isUpper(buf[j+1]) || isDigit(buf[j+1])):
		default:
			return 0, 0
		}
		j++
	}
	if n == want && (j == len(buf) || !isWordByte(buf[j])) && ibanValid(compact[:n]) {
		return start, j
	}
	return 0, 0
}

func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }

// matchPhone finds E.164 numbers (+ and 8-15 digits, optional separators)
// and North American numbers written with separators: (AAA) BBB-CCCC,
// AAA-BBB-CCCC, AAA.BBB.CCCC, 1-AAA-BBB-CCCC. Plain digit runs, dates and
// versions are not phone numbers.
func matchPhone(buf []byte, i int) (int, int) {
	if i > 0 && (buf[i-1] == '+' || buf[i-1] == '(') {
		if i > 1 && (isWordByte(buf[i-2]) || buf[i-2] == '+' || buf[i-2] == '(') {
			return 0, 0
		}
	} else if !numberStart(buf, i) || i > 0 && (buf[i-1] == '-' || buf[i-1] == ')') {
		return 0, 0
	}
	switch {
	case i > 0 && buf[i-1] == '+':
		return matchE164(buf, i)
	case i > 0 && buf[i-1] == '(':
		return matchNANPParen(buf, i)
	default:
		return matchNANP(buf, i)
	}
}

func matchE164(buf []byte, i int) (int, int) {
	end, n := i, 0
	for j := i; j < len(buf) && n <= 15; j++ {
		c := buf[j]
		if isDigit(c) {
			n++
			end = j + 1
			continue
		}
		if (c == ' ' || c == '-' || c == '.') && j+1 < len(buf) && isDigit(buf[j+1]) && isDigit(buf[j-1]) {
			continue
		}
		break
	}
	if n >= 8 && n <= 15 && buf[i] != '0' && numberEnd(buf, end) {
		return i - 1, end
	}
	return 0, 0
}

func matchNANPParen(buf []byte, i int) (int, int) {
	if i+5 > len(buf) || buf[i+3] != ')' || !allDigits(buf[i:i+3]) || buf[i] < '2' {
		return 0, 0
	}
	j := i + 4
	if buf[j] == ' ' || buf[j] == '-' {
		j++
	}
	g := digitGroups(buf, j, "-. ", 7)
	if g.nd == 7 && g.n == 2 && g.ends[0]-j == 3 && numberEnd(buf, g.ends[1]) {
		return i - 1, g.ends[1]
	}
	return 0, 0
}

func matchNANP(buf []byte, i int) (int, int) {
	g := digitGroups(buf, i, "-. ", 11)
	if g.n < 3 || g.nd > 11 {
		return 0, 0
	}
	end := g.ends[g.n-1]
	if !numberEnd(buf, end) {
		return 0, 0
	}
	switch {
	case g.hasSizes(i, 3, 3, 4) && g.digits[0] >= '2':
	case g.hasSizes(i, 1, 3, 3, 4) && g.digits[0] == '1' && g.digits[1] >= '2':
	default:
		return 0, 0
	}
	return i, end
}

// hasSizes reports whether the groups, starting at start, have the sizes.
func (g *groups) hasSizes(start int, sizes ...int) bool {
	if g.n != len(sizes) {
		return false
	}
	for k, want := range sizes {
		if g.ends[k]-start != want {
			return false
		}
		start = g.ends[k] + 1
	}
	return true
}

// digitsAt reports whether buf[i:i+n] exists and is all digits.
func digitsAt(buf []byte, i, n int) bool {
	return i+n <= len(buf) && allDigits(buf[i:i+n])
}

func allDigits(b []byte) bool {
	for _, c := range b {
		if !isDigit(c) {
			return false
		}
	}
	return true
}

// matchIPv4 finds dotted quads with octets 0-255 and no leading zeros.
func matchIPv4(buf []byte, i int) (int, int) {
	if !numberStart(buf, i) {
		return 0, 0
	}
	j := i
	for part := 0; part < 4; part++ {
		if part > 0 {
			if j >= len(buf) || buf[j] != '.' {
				return 0, 0
			}
			j++
		}
		k, v := j, 0
		for k < len(buf) && k-j < 4 && isDigit(buf[k]) {
			v = v*10 + int(buf[k]-'0')
			k++
		}
		if k == j || k-j > 3 || v > 255 || k-j > 1 && buf[j] == '0' {
			return 0, 0
		}
		j = k
	}
	if numberEnd(buf, j) {
		return i, j
	}
	return 0, 0
}

// matchEmail finds local@domain.tld around an '@'.
func matchEmail(buf []byte, at int) (int, int) {
	start := at
	for start > 0 && at-start < 64 && isLocalByte(buf[start-1]) {
		start--
	}
	for start < at && buf[start] == '.' {
		start++
	}
	if start == at {
		return 0, 0
	}
	end, lastDot := at+1, -1
	for end < len(buf) && end-at <= 253 && (isWordByte(buf[end]) && buf[end] != '_' || buf[end] == '-' || buf[end] == '.') {
		if buf[end] == '.' {
			if buf[end-1] == '.' || buf[end-1] == '@' {
				return 0, 0
			}
			lastDot = end
		}
		end++
	}
	for end > at+1 && (buf[end-1] == '.' || buf[end-1] == '-') {
		end--
	}
	if lastDot < 0 || lastDot >= end-2 || !emailTLD(buf[lastDot+1:end]) {
		return 0, 0
	}
	return start, end
}

func isLocalByte(c byte) bool {
	return isWordByte(c) || c == '.' || c == '%' || c == '+' || c == '-'
}

// emailTLD accepts an alphabetic top-level domain that is not a common file
// extension (icon@2x.png is a file name, not an address).
func emailTLD(tld []byte) bool {
	for _, c := range tld {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	switch string(tld) {
	case "png", "jpg", "jpeg", "gif", "svg", "webp", "css", "js", "ico":
		return false
	}
	return true
}

// matchIPv6 runs at the first ':' of a run of hex digits, colons and dots
// bounded by non-word bytes, and reports the run if it parses as IPv6 and
// contains a digit (so that "std::map" or "a::b" is not an address).
func matchIPv6(buf []byte, c int) (int, int) {
	if c+1 >= len(buf) || !(isHexByte(buf[c+1]) || buf[c+1] == ':') {
		return 0, 0
	}
	start := c
	for start > 0 && c-start < 40 && isHexByte(buf[start-1]) {
		start--
	}
	if start > 0 && (isWordByte(buf[start-1]) || buf[start-1] == ':' || buf[start-1] == '.') {
		return 0, 0
	}
	end := c + 1
	for end < len(buf) && end-start < 46 && (isHexByte(buf[end]) || buf[end] == ':' || buf[end] == '.') {
		end++
	}
	for end > c && buf[end-1] == '.' {
		end--
	}
	if end < len(buf) && isWordByte(buf[end]) {
		return 0, 0
	}
	run := buf[start:end]
	if !hasDigit(run) || bytes.Count(run, []byte(":")) < 2 {
		return 0, 0
	}
	if a, err := netip.ParseAddr(string(run)); err == nil && a.Is6() {
		return start, end
	}
	return 0, 0
}

func hasDigit(b []byte) bool {
	for _, c := range b {
		if isDigit(c) {
			return true
		}
	}
	return false
}
