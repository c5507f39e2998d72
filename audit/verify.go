package audit

import (
	"bufio"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
)

// VerifyResult is the outcome of verifying an audit chain.
type VerifyResult struct {
	// OK is true when every line is a valid entry and the chain is unbroken.
	OK bool
	// Entries counts the entries that verified, all of them when OK.
	Entries int
	// FirstBadSerial is the serial at which the chain breaks: the serial the
	// first bad line should have had (for an edited, deleted, reordered or
	// torn line alike). It is 0 when OK; real serials start at 1.
	FirstBadSerial uint64
	// Reason says why the chain breaks; empty when OK.
	Reason string
	// LastHMAC is the hex HMAC of the last verified entry (all zeros if
	// none). Comparing it with a copy kept elsewhere detects deletion of
	// entries from the end, which the chain alone cannot.
	LastHMAC string
}

// Err returns nil for an intact chain and otherwise an error wrapping
// ErrTampered that names the first bad serial.
func (r VerifyResult) Err() error {
	if r.OK {
		return nil
	}
	return fmt.Errorf("%w: first bad serial %d: %s", ErrTampered, r.FirstBadSerial, r.Reason)
}

// Verify checks a whole audit chain read from r with key. A broken chain is
// reported in the result, not as an error; the error is non-nil only for an
// empty key (ErrNoKey) or a failure to read r. Memory use is bounded by
// MaxEntrySize whatever the input.
func Verify(r io.Reader, key []byte) (VerifyResult, error) {
	if len(key) == 0 {
		return VerifyResult{}, ErrNoKey
	}
	v := verifier{key: key, next: FirstSerial, prev: make([]byte, sha256.Size)}
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := readLine(br)
		if err == io.EOF {
			return v.result(""), nil
		}
		if errors.Is(err, errTorn) || errors.Is(err, errLong) {
			return v.result(err.Error()), nil
		}
		if err != nil {
			return VerifyResult{}, fmt.Errorf("audit: verify: read: %w", err)
		}
		if reason := v.check(line); reason != "" {
			return v.result(reason), nil
		}
	}
}

// VerifyFile verifies the audit file at path. See Verify.
func VerifyFile(path string, key []byte) (VerifyResult, error) {
	f, err := os.Open(path)
	if err != nil {
		return VerifyResult{}, fmt.Errorf("audit: verify: %w", err)
	}
	defer f.Close()
	return Verify(f, key)
}

// verifier walks a chain one line at a time.
type verifier struct {
	key  []byte
	next uint64 // serial the next line must have
	prev []byte // raw HMAC of the last verified entry
	n    int    // entries verified
}

// check verifies one line (without its newline) as entry v.next and
// returns why it is bad, or "" and advances.
func (v *verifier) check(line []byte) string {
	w, err := parseLine(line)
	if err != nil {
		return err.Error()
	}
	if w.Serial != v.next {
		return fmt.Sprintf("expected serial %d, found %d (entry deleted, inserted or reordered)", v.next, w.Serial)
	}
	prev, _ := decodeMAC(w.Prev) // validated by parseLine
	if !hmac.Equal(prev, v.prev) {
		return "prev does not match the HMAC of the previous entry"
	}
	want, _ := decodeMAC(w.HMAC)
	mac := computeMAC(v.key, w, prev)
	if !hmac.Equal(mac, want) {
		return "HMAC mismatch (entry edited or wrong key)"
	}
	v.prev, v.next, v.n = mac, v.next+1, v.n+1
	return ""
}

// result builds the verdict; an empty reason means the chain is intact.
func (v *verifier) result(reason string) VerifyResult {
	r := VerifyResult{OK: reason == "", Entries: v.n, Reason: reason, LastHMAC: hex.EncodeToString(v.prev)}
	if !r.OK {
		r.FirstBadSerial = v.next
	}
	return r
}

var (
	errTorn = errors.New("truncated final entry (no trailing newline)")
	errLong = fmt.Errorf("line longer than %d bytes", MaxEntrySize)
)

// readLine returns the next line without its newline. It returns io.EOF at
// a clean end, errTorn for trailing bytes without a newline and errLong for
// a line over MaxEntrySize.
func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		frag, err := br.ReadSlice('\n')
		if len(line)+len(frag) > MaxEntrySize {
			return nil, errLong
		}
		switch {
		case err == nil:
			if line == nil {
				return frag[:len(frag)-1], nil
			}
			return append(line, frag[:len(frag)-1]...), nil
		case errors.Is(err, bufio.ErrBufferFull):
			line = append(line, frag...)
		case err == io.EOF && len(line)+len(frag) == 0:
			return nil, io.EOF
		case err == io.EOF:
			return nil, errTorn
		default:
			return nil, err
		}
	}
}
