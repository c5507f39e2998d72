// Package audit implements kavach's tamper-evident audit chain: an
// append-only file of JSON lines in which every entry carries an
// HMAC-SHA256 over its own fields and the HMAC of the entry before it.
//
// Editing any byte of an entry, deleting, inserting or reordering lines,
// truncating the file or verifying with a different key all break the chain,
// and Verify names the first serial at which it breaks. The genesis entry has
// serial 1 and a previous HMAC of 32 zero bytes; serials then increase by one.
// Deleting entries from the end of the file cannot be detected by the chain
// alone: anchor Log.Head (or VerifyResult.LastHMAC) somewhere else for that.
package audit

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode"
	"unicode/utf8"
)

// FirstSerial is the serial number of the genesis entry of every chain.
const FirstSerial uint64 = 1

// MaxEntrySize is the largest encoded entry (one JSON line, newline
// included) that Append writes and Verify accepts.
const MaxEntrySize = 1 << 20

// TimeLayout is the fixed-width RFC 3339 layout, always UTC with nanoseconds,
// in which entry times are written.
const TimeLayout = "2006-01-02T15:04:05.000000000Z"

// macDomain separates kavach audit MACs from any other use of the same key.
const macDomain = "kavach-audit-v1\x00"

// zeroPrev is the previous-HMAC value of the genesis entry, hex encoded.
var zeroPrev = hex.EncodeToString(make([]byte, sha256.Size))

// Entry is one record of the audit chain.
type Entry struct {
	// Serial numbers entries from FirstSerial upwards without gaps.
	Serial uint64 `json:"serial"`
	// Time is when the entry was appended (UTC, nanosecond precision).
	Time time.Time `json:"time"`
	// Type is the event type, for example "sandbox.created".
	Type string `json:"type"`
	// SandboxID names the sandbox the event concerns, if any.
	SandboxID string `json:"sandbox_id,omitempty"`
	// Payload is the event's details as a compact JSON object.
	Payload json.RawMessage `json:"payload,omitempty"`
	// Prev is the hex HMAC of the previous entry (all zeros for genesis).
	Prev string `json:"prev"`
	// HMAC is the hex HMAC-SHA256 of this entry's canonical encoding.
	HMAC string `json:"hmac"`
}

// wireEntry is the exact on-disk form of an entry. Its JSON encoding (by
// encoding/json, fields in this order) is the only accepted line format.
type wireEntry struct {
	Serial    uint64          `json:"serial"`
	Time      string          `json:"time"`
	Type      string          `json:"type"`
	SandboxID string          `json:"sandbox_id,omitempty"`
	Payload   json.RawMessage `json:"payload,omitempty"`
	Prev      string          `json:"prev"`
	HMAC      string          `json:"hmac"`
}

// errLine describes why a line is not a well-formed entry.
var errLine = errors.New("malformed entry")

// computeMAC returns the HMAC-SHA256 of the canonical encoding of w's
// fields (everything except w.HMAC). prev must be the decoded w.Prev.
//
// Canonical encoding: the domain string, the serial as 8 bytes big-endian,
// then time, type, sandbox id and payload each as an 8-byte big-endian
// length followed by the bytes, and finally the 32 raw bytes of prev.
func computeMAC(key []byte, w *wireEntry, prev []byte) []byte {
	m := hmac.New(sha256.New, key)
	var n [8]byte
	m.Write([]byte(macDomain))
	binary.BigEndian.PutUint64(n[:], w.Serial)
	m.Write(n[:])
	for _, field := range [][]byte{[]byte(w.Time), []byte(w.Type), []byte(w.SandboxID), w.Payload} {
		binary.BigEndian.PutUint64(n[:], uint64(len(field)))
		m.Write(n[:])
		m.Write(field)
	}
	m.Write(prev)
	return m.Sum(nil)
}

// encodeLine returns the canonical JSON line for w, newline included.
func encodeLine(w *wireEntry) ([]byte, error) {
	b, err := json.Marshal(w)
	if err != nil {
		return nil, fmt.Errorf("encode entry %d: %w", w.Serial, err)
	}
	return append(b, '\n'), nil
}

// parseLine decodes one line (without its newline) into a wire entry and
// checks that it is in canonical form: the line must be byte-for-byte what
// encodeLine produces for the decoded fields, so no edit can hide in
// whitespace, key spelling, duplicate keys or number formatting.
func parseLine(line []byte) (*wireEntry, error) {
	if len(line) == 0 {
		return nil, fmt.Errorf("%w: empty line", errLine)
	}
	if len(line) >= MaxEntrySize {
		return nil, fmt.Errorf("%w: line longer than %d bytes", errLine, MaxEntrySize)
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	var w wireEntry
	if err := dec.Decode(&w); err != nil {
		return nil, fmt.Errorf("%w: %v", errLine, err)
	}
	if err := w.validate(); err != nil {
		return nil, err
	}
	canon, err := json.Marshal(&w)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errLine, err)
	}
	if !bytes.Equal(canon, line) {
		return nil, fmt.Errorf("%w: not in canonical encoding", errLine)
	}
	return &w, nil
}

// validate checks the field formats of a decoded entry.
func (w *wireEntry) validate() error {
	if w.Serial < FirstSerial {
		return fmt.Errorf("%w: serial %d below %d", errLine, w.Serial, FirstSerial)
	}
	if _, err := time.Parse(TimeLayout, w.Time); err != nil || len(w.Time) != len(TimeLayout) {
		return fmt.Errorf("%w: time %q is not in layout %s", errLine, w.Time, TimeLayout)
	}
	if err := checkType(w.Type); err != nil {
		return fmt.Errorf("%w: %v", errLine, err)
	}
	if err := checkText("sandbox id", w.SandboxID); err != nil {
		return fmt.Errorf("%w: %v", errLine, err)
	}
	if len(w.Payload) > 0 && w.Payload[0] != '{' {
		return fmt.Errorf("%w: payload is not a JSON object", errLine)
	}
	if _, err := decodeMAC(w.Prev); err != nil {
		return fmt.Errorf("%w: prev: %v", errLine, err)
	}
	if _, err := decodeMAC(w.HMAC); err != nil {
		return fmt.Errorf("%w: hmac: %v", errLine, err)
	}
	return nil
}

// decodeMAC decodes a lowercase hex HMAC-SHA256 value.
func decodeMAC(s string) ([]byte, error) {
	if len(s) != 2*sha256.Size {
		return nil, fmt.Errorf("want %d hex digits, have %d", 2*sha256.Size, len(s))
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, err
	}
	if hex.EncodeToString(b) != s {
		return nil, errors.New("hex digits must be lowercase")
	}
	return b, nil
}

// checkType accepts non-empty printable UTF-8 event types.
func checkType(typ string) error {
	if typ == "" {
		return errors.New("empty event type")
	}
	return checkText("event type", typ)
}

// checkText rejects invalid UTF-8 and control characters, which would not
// survive a JSON round trip byte for byte or would make logs confusing.
func checkText(what, s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s is not valid UTF-8", what)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return fmt.Errorf("%s contains control character %U", what, r)
		}
	}
	return nil
}

// toEntry converts a validated wire entry to its public form.
func (w *wireEntry) toEntry() Entry {
	t, _ := time.Parse(TimeLayout, w.Time) // validated by parseLine
	return Entry{
		Serial:    w.Serial,
		Time:      t,
		Type:      w.Type,
		SandboxID: w.SandboxID,
		Payload:   w.Payload,
		Prev:      w.Prev,
		HMAC:      w.HMAC,
	}
}
