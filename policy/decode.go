package policy

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// Sentinel errors of the policy file decoder. Each is wrapped together with
// ErrInvalid, so errors.Is matches both.
var (
	// ErrSyntax marks input that is not RFC 8259 JSON.
	ErrSyntax = errors.New("malformed JSON")
	// ErrUnknownField marks a key that is not part of the policy schema.
	ErrUnknownField = errors.New("unknown field")
	// ErrDuplicateField marks a key given twice in one object.
	ErrDuplicateField = errors.New("duplicate field")
)

// fileError is a problem found while decoding a policy file. The decoder
// returns it as a concrete pointer so that each enclosing object or array
// can put its own name in front of path while the error travels up; the
// success path never builds a path. toError turns it into the error that
// ParseJSON returns.
type fileError struct {
	class error  // nil (a wrong value), ErrSyntax, ErrUnknownField or ErrDuplicateField
	path  string // field path relative to the object being decoded
	msg   string
}

// in puts the name of the enclosing field or array index ("[3]") in front
// of e's path.
func (e *fileError) in(name string) *fileError {
	switch {
	case e.path == "":
		e.path = name
	case e.path[0] == '[':
		e.path = name + e.path
	default:
		e.path = name + "." + e.path
	}
	return e
}

// toError returns the error ParseJSON reports: it wraps ErrInvalid, the
// class sentinel, and a *FieldError naming the field where there is one.
// An unknown key is not a field of the schema, so it is named in the
// message and by ErrUnknownField only.
func (e *fileError) toError() error {
	switch {
	case e.class == ErrUnknownField:
		return fmt.Errorf("%w: %w %q", ErrInvalid, ErrUnknownField, e.path)
	case e.path == "" && e.class == nil:
		return fmt.Errorf("%w: %s", ErrInvalid, e.msg)
	case e.path == "":
		return fmt.Errorf("%w: %w: %s", ErrInvalid, e.class, e.msg)
	case e.class == nil:
		return fmt.Errorf("%w: %w", ErrInvalid, &FieldError{Field: e.path, Msg: e.msg})
	}
	return fmt.Errorf("%w: %w: %w", ErrInvalid, e.class, &FieldError{Field: e.path, Msg: e.msg})
}

// wrongValue reports a well-formed value that the field cannot take.
func wrongValue(format string, a ...any) *fileError {
	return &fileError{msg: fmt.Sprintf(format, a...)}
}

// decoder is a single-pass reader of one JSON document. It never recurses
// beyond the fixed shape of a policy (at most four nested levels), so the
// depth of any input is bounded without a counter: a value nested where
// the schema has a scalar is rejected when its first byte is seen.
type decoder struct {
	data []byte
	pos  int
	buf  []byte // scratch space for strings that contain escapes
}

// syntax reports malformed JSON at byte offset off.
func (d *decoder) syntax(off int, format string, a ...any) *fileError {
	return &fileError{class: ErrSyntax, msg: fmt.Sprintf("at byte %d: ", off) + fmt.Sprintf(format, a...)}
}

// skipSpace moves past JSON whitespace and returns the next byte, or 0 at
// the end of the input.
func (d *decoder) skipSpace() byte {
	for d.pos < len(d.data) {
		switch c := d.data[d.pos]; c {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return c
		}
	}
	return 0
}

// unexpected reports the byte at the current position (or the end of the
// input) where want was expected.
func (d *decoder) unexpected(want string) *fileError {
	if d.pos >= len(d.data) {
		return d.syntax(d.pos, "unexpected end of input, want %s", want)
	}
	return d.syntax(d.pos, "unexpected %q, want %s", d.data[d.pos], want)
}

// kind names the JSON type of a value by its first byte.
func kind(c byte) string {
	switch {
	case c == '"':
		return "string"
	case c == '{':
		return "object"
	case c == '[':
		return "array"
	case c == 't' || c == 'f':
		return "boolean"
	case c == 'n':
		return "null"
	}
	return "number"
}

// startsValue reports whether c can begin a JSON value.
func startsValue(c byte) bool {
	switch c {
	case '"', '{', '[', 't', 'f', 'n', '-':
		return true
	}
	return c >= '0' && c <= '9'
}

// want checks that the next value starts with open (one of '"', '{', '[')
// and reports a wrong type as naming want otherwise.
func (d *decoder) want(open byte, want string) *fileError {
	c := d.skipSpace()
	if c == open {
		return nil
	}
	if !startsValue(c) {
		return d.unexpected("a value")
	}
	return wrongValue("want %s, got %s", want, kind(c))
}

// literal consumes the keyword word ("true", "false" or "null") at the
// current position.
func (d *decoder) literal(word string) *fileError {
	end := d.pos + len(word)
	if end > len(d.data) || string(d.data[d.pos:end]) != word {
		return d.unexpected("a value")
	}
	d.pos = end
	return d.delimited()
}

// delimited checks that the number or keyword just read ends where the
// grammar allows, so that "01" or "truex" is reported at the value itself.
func (d *decoder) delimited() *fileError {
	if d.pos == len(d.data) {
		return nil
	}
	switch d.data[d.pos] {
	case ' ', '\t', '\n', '\r', ',', '}', ']':
		return nil
	}
	return d.unexpected("',', '}' or ']' after the value")
}

// null consumes a null literal if one comes next and reports whether it did.
func (d *decoder) null() (bool, *fileError) {
	if d.skipSpace() != 'n' {
		return false, nil
	}
	return true, d.literal("null")
}

// object decodes an object whose keys are listed in keys, calling field
// with the index of each key once its value is due. A key that is not
// listed, or is given twice, is an error. A null value stands for an absent
// field (as encoding/json treated pointer fields): field is not called and
// the key's bit stays clear in *present; keys in notNull reject null.
func (d *decoder) object(keys []string, notNull uint32, present *uint32, field func(k int) *fileError) *fileError {
	if err := d.want('{', "an object"); err != nil {
		return err
	}
	d.pos++
	var seen uint32
	for first := true; ; first = false {
		key, more, err := d.nextKey(first)
		if err != nil || !more {
			return err
		}
		k := lookup(keys, key)
		if k < 0 {
			return &fileError{class: ErrUnknownField, path: keySegment(string(key))}
		}
		if seen&(1<<k) != 0 {
			return &fileError{class: ErrDuplicateField, path: keys[k], msg: "given more than once"}
		}
		seen |= 1 << k
		isNull, err := d.null()
		switch {
		case err != nil:
			return err.in(keys[k])
		case isNull && notNull&(1<<k) != 0:
			return wrongValue("must not be null (omit the field to keep the base value)").in(keys[k])
		case isNull:
			continue
		}
		if err := field(k); err != nil {
			return err.in(keys[k])
		}
		*present |= 1 << k
	}
}

// lookup returns the index of key in keys, or -1.
func lookup(keys []string, key []byte) int {
	for i, k := range keys {
		if len(key) == len(k) && key[0] == k[0] && string(key) == k {
			return i
		}
	}
	return -1
}

// nextKey reads the separator before an object member and the member's key
// and colon. It reports more=false at the closing brace. The key aliases
// the input or d.buf until the next string is read.
func (d *decoder) nextKey(first bool) (key []byte, more bool, err *fileError) {
	c := d.skipSpace()
	if c == '}' {
		d.pos++
		return nil, false, nil
	}
	if !first {
		if c != ',' {
			return nil, false, d.unexpected("',' or '}'")
		}
		d.pos++
		c = d.skipSpace()
	}
	if c != '"' {
		return nil, false, d.unexpected("a string key")
	}
	if key, err = d.string(); err != nil {
		return nil, false, err
	}
	if d.skipSpace() != ':' {
		return nil, false, d.unexpected("':'")
	}
	d.pos++
	return key, true, nil
}

// array decodes an array, calling elem for each element. An empty array
// calls elem never.
func (d *decoder) array(elem func(i int) *fileError) *fileError {
	if err := d.want('[', "an array"); err != nil {
		return err
	}
	d.pos++
	for i := 0; ; i++ {
		c := d.skipSpace()
		if c == ']' {
			d.pos++
			return nil
		}
		if i > 0 {
			if c != ',' {
				return d.unexpected("',' or ']'")
			}
			d.pos++
		}
		if err := elem(i); err != nil {
			return err.in("[" + strconv.Itoa(i) + "]")
		}
	}
}

// stringValue reads a string value; known lists constants that the result
// may share instead of allocating a copy.
func (d *decoder) stringValue(known []string) (string, *fileError) {
	if err := d.want('"', "a string"); err != nil {
		return "", err
	}
	b, err := d.string()
	if err != nil {
		return "", err
	}
	return intern(b, known), nil
}

// intern returns the constant in known that equals b, or a copy of b.
func intern(b []byte, known []string) string {
	for _, k := range known {
		if string(b) == k {
			return k
		}
	}
	return string(b)
}

// stringList reads an array of strings. An empty array gives an empty,
// non-nil slice, as encoding/json did.
func (d *decoder) stringList() ([]string, *fileError) {
	list := []string{}
	err := d.array(func(int) *fileError {
		s, err := d.stringValue(nil)
		list = append(list, s)
		return err
	})
	return list, err
}

// boolean reads true or false.
func (d *decoder) boolean() (bool, *fileError) {
	switch c := d.skipSpace(); c {
	case 't':
		return true, d.literal("true")
	case 'f':
		return false, d.literal("false")
	default:
		if !startsValue(c) {
			return false, d.unexpected("a value")
		}
		return false, wrongValue("want a boolean, got %s", kind(c))
	}
}

// number scans a number per the JSON grammar and returns its text.
func (d *decoder) number(want string) ([]byte, *fileError) {
	c := d.skipSpace()
	if c != '-' && (c < '0' || c > '9') {
		if !startsValue(c) {
			return nil, d.unexpected("a value")
		}
		return nil, wrongValue("want %s, got %s", want, kind(c))
	}
	start := d.pos
	if c == '-' {
		d.pos++
	}
	switch {
	case d.pos < len(d.data) && d.data[d.pos] == '0':
		d.pos++
	case !d.digits():
		return nil, d.unexpected("a digit")
	}
	if d.pos < len(d.data) && d.data[d.pos] == '.' {
		d.pos++
		if !d.digits() {
			return nil, d.unexpected("a digit")
		}
	}
	if d.pos < len(d.data) && (d.data[d.pos] == 'e' || d.data[d.pos] == 'E') {
		d.pos++
		if d.pos < len(d.data) && (d.data[d.pos] == '+' || d.data[d.pos] == '-') {
			d.pos++
		}
		if !d.digits() {
			return nil, d.unexpected("a digit")
		}
	}
	return d.data[start:d.pos], d.delimited()
}

// digits consumes a run of decimal digits and reports whether there was one.
func (d *decoder) digits() bool {
	start := d.pos
	for d.pos < len(d.data) && d.data[d.pos] >= '0' && d.data[d.pos] <= '9' {
		d.pos++
	}
	return d.pos > start
}

// integer reads a number that must be written as an integer (no fraction
// or exponent, as encoding/json required for integer fields).
func (d *decoder) integer(want string) (int64, *fileError) {
	text, err := d.number(want)
	if err != nil {
		return 0, err
	}
	neg := text[0] == '-'
	digits := text
	if neg {
		digits = text[1:]
	}
	var n uint64
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, wrongValue("want %s, got %s", want, clip(text))
		}
		if n > (math.MaxInt64+1)/10 {
			return 0, wrongValue("%s is out of range", clip(text))
		}
		n = n*10 + uint64(c-'0')
	}
	switch {
	case neg && n <= math.MaxInt64+1:
		return -int64(n), nil
	case !neg && n <= math.MaxInt64:
		return int64(n), nil
	}
	return 0, wrongValue("%s is out of range", clip(text))
}

// float reads a number as a finite float64.
func (d *decoder) float() (float64, *fileError) {
	text, err := d.number("a number")
	if err != nil {
		return 0, err
	}
	v, perr := strconv.ParseFloat(string(text), 64)
	if perr != nil {
		return 0, wrongValue("%s is out of range", clip(text))
	}
	return v, nil
}

// size reads a Size written as a number of bytes or a string like "512M".
func (d *decoder) size() (Size, *fileError) {
	if d.skipSpace() != '"' {
		n, err := d.integer(`bytes or a string like "512M"`)
		return Size(n), err
	}
	b, err := d.string()
	if err != nil {
		return 0, err
	}
	v, perr := ParseSize(string(b))
	if perr != nil {
		return 0, wrongValue("%v", perr)
	}
	return v, nil
}

// duration reads a Duration in Go syntax ("30s"); a bare number is
// rejected because its unit would be a guess.
func (d *decoder) duration() (Duration, *fileError) {
	if err := d.want('"', `a string like "30s"`); err != nil {
		return 0, err
	}
	b, err := d.string()
	if err != nil {
		return 0, err
	}
	if v, ok := simpleDuration(b); ok {
		return Duration(v), nil
	}
	v, perr := time.ParseDuration(string(b))
	if perr != nil {
		return 0, wrongValue("%v", durationError(b))
	}
	return Duration(v), nil
}

// simpleDuration parses the common form of a duration, an integer and one
// unit ("30s", "500ms", "2h"), without the allocation time.ParseDuration
// costs; ok is false for anything else, which goes to time.ParseDuration.
func simpleDuration(b []byte) (v time.Duration, ok bool) {
	var n int64
	i := 0
	for ; i < len(b) && i < 18 && b[i] >= '0' && b[i] <= '9'; i++ {
		n = n*10 + int64(b[i]-'0') // 18 digits cannot overflow
	}
	if i == 0 {
		return 0, false
	}
	var unit time.Duration
	switch string(b[i:]) {
	case "ns":
		unit = time.Nanosecond
	case "us", "\u00b5s", "\u03bcs":
		unit = time.Microsecond
	case "ms":
		unit = time.Millisecond
	case "s":
		unit = time.Second
	case "m":
		unit = time.Minute
	case "h":
		unit = time.Hour
	default:
		return 0, false
	}
	if n > math.MaxInt64/int64(unit) {
		return 0, false
	}
	return time.Duration(n) * unit, true
}

// string reads the string whose opening quote is at d.pos and returns its
// decoded bytes: a subslice of the input when it holds no escape, d.buf
// otherwise. Raw control characters, invalid UTF-8, invalid escapes and
// unpaired surrogates are rejected, not replaced.
func (d *decoder) string() ([]byte, *fileError) {
	data, start := d.data, d.pos+1
	for i := start; i < len(data); {
		if plain[data[i]] {
			i++
			continue
		}
		switch c := data[i]; {
		case c == '"':
			d.pos = i + 1
			return data[start:i], nil
		case c == '\\':
			d.buf = append(d.buf[:0], data[start:i]...)
			return d.unescape(i)
		case c < 0x20:
			return nil, d.syntax(i, "control character %#02x in string", c)
		case c < utf8.RuneSelf:
			i++
		default:
			n, err := d.utf8At(i)
			if err != nil {
				return nil, err
			}
			i += n
		}
	}
	return nil, d.syntax(len(d.data), "unterminated string")
}

// plain marks the bytes that stand for themselves inside a string: ASCII
// other than control characters, the quote and the backslash.
var plain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// utf8At validates the multi-byte UTF-8 sequence at i and returns its length.
func (d *decoder) utf8At(i int) (int, *fileError) {
	r, n := utf8.DecodeRune(d.data[i:])
	if r == utf8.RuneError && n <= 1 {
		return 0, d.syntax(i, "invalid UTF-8 in string")
	}
	return n, nil
}

// unescape continues string at the backslash at i, decoding into d.buf.
func (d *decoder) unescape(i int) ([]byte, *fileError) {
	for i < len(d.data) {
		c := d.data[i]
		switch {
		case c == '"':
			d.pos = i + 1
			return d.buf, nil
		case c == '\\':
			n, err := d.escape(i)
			if err != nil {
				return nil, err
			}
			i += n
		case c < 0x20:
			return nil, d.syntax(i, "control character %#02x in string", c)
		case c < utf8.RuneSelf:
			d.buf = append(d.buf, c)
			i++
		default:
			n, err := d.utf8At(i)
			if err != nil {
				return nil, err
			}
			d.buf = append(d.buf, d.data[i:i+n]...)
			i += n
		}
	}
	return nil, d.syntax(len(d.data), "unterminated string")
}

// escapes maps the byte after a backslash to what it stands for.
var escapes = [256]byte{'"': '"', '\\': '\\', '/': '/', 'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t'}

// escape decodes the escape sequence at i into d.buf and returns its length.
func (d *decoder) escape(i int) (int, *fileError) {
	if i+1 >= len(d.data) {
		return 0, d.syntax(len(d.data), "unterminated string")
	}
	c := d.data[i+1]
	if c != 'u' {
		if escapes[c] == 0 {
			return 0, d.syntax(i, "invalid escape %q", d.data[i:i+2])
		}
		d.buf = append(d.buf, escapes[c])
		return 2, nil
	}
	r, ok := hex4(d.data[i+2:])
	switch {
	case !ok:
		return 0, d.syntax(i, "invalid \\u escape")
	case r >= 0xDC00 && r <= 0xDFFF:
		return 0, d.syntax(i, "unpaired surrogate \\u%04X", r)
	case r < 0xD800 || r > 0xDBFF:
		d.buf = utf8.AppendRune(d.buf, r)
		return 6, nil
	}
	rest := d.data[i+6:]
	lo, ok := hex4(rest[min(2, len(rest)):])
	if len(rest) < 2 || rest[0] != '\\' || rest[1] != 'u' || !ok || lo < 0xDC00 || lo > 0xDFFF {
		return 0, d.syntax(i, "unpaired surrogate \\u%04X", r)
	}
	d.buf = utf8.AppendRune(d.buf, 0x10000+(r-0xD800)<<10+(lo-0xDC00))
	return 12, nil
}

// hex4 decodes four hexadecimal digits at the start of b.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}
