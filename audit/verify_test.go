package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestVerifyIntact(t *testing.T) {
	path := writeChain(t, 5)
	res, err := VerifyFile(path, testKey)
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK || res.Entries != 5 || res.FirstBadSerial != 0 || res.Reason != "" || res.Err() != nil {
		t.Fatalf("intact chain: %+v", res)
	}
}

func TestVerifyEmpty(t *testing.T) {
	res := mustVerify(t, nil, testKey)
	if !res.OK || res.Entries != 0 || res.LastHMAC != zeroPrev {
		t.Fatalf("empty chain: %+v", res)
	}
}

func TestVerifyNoKey(t *testing.T) {
	if _, err := Verify(strings.NewReader(""), nil); !errors.Is(err, ErrNoKey) {
		t.Fatalf("err = %v, want ErrNoKey", err)
	}
}

// TestVerifyTampering covers every kind of tampering the chain must reveal.
func TestVerifyTampering(t *testing.T) {
	path := writeChain(t, 5)
	lines := readLines(t, path)
	other := readLines(t, writeChain(t, 5)) // same key, different chain
	join := func(ls ...[]byte) []byte { return bytes.Join(ls, nil) }
	edit := func(i int, old, new string) []byte {
		c := make([][]byte, len(lines))
		copy(c, lines)
		c[i] = bytes.Replace(lines[i], []byte(old), []byte(new), 1)
		if bytes.Equal(c[i], lines[i]) {
			t.Fatalf("edit %q->%q did not apply to line %d", old, new, i)
		}
		return join(c...)
	}
	whole := join(lines...)
	cases := []struct {
		name    string
		data    []byte
		key     []byte
		bad     uint64
		entries int
		reason  string
	}{
		{"payload edited", edit(2, `"status":"exited"`, `"status":"exiteD"`), testKey, 3, 2, "HMAC mismatch"},
		{"type edited", edit(2, `sandbox.exec`, `sandbox.exit`), testKey, 3, 2, "HMAC mismatch"},
		{"sandbox id edited", edit(3, `"sb-1"`, `"sb-2"`), testKey, 4, 3, "HMAC mismatch"},
		{"time edited", edit(1, `"time":"2`, `"time":"1`), testKey, 2, 1, "HMAC mismatch"},
		{"serial edited", edit(2, `"serial":3`, `"serial":9`), testKey, 3, 2, "expected serial 3"},
		{"hmac edited", edit(4, `"hmac":"`, `"hmac":"0`), testKey, 5, 4, "hmac"},
		{"whitespace added", edit(2, `,"type"`, `, "type"`), testKey, 3, 2, "canonical"},
		{"key case changed", edit(2, `"type"`, `"Type"`), testKey, 3, 2, "canonical"},
		{"field added", edit(2, `"type"`, `"x":1,"type"`), testKey, 3, 2, "unknown field"},
		{"first line deleted", join(lines[1:]...), testKey, 1, 0, "expected serial 1, found 2"},
		{"middle line deleted", join(lines[0], lines[1], lines[3], lines[4]), testKey, 3, 2, "expected serial 3, found 4"},
		{"lines reordered", join(lines[0], lines[3], lines[2], lines[1], lines[4]), testKey, 2, 1, "expected serial 2, found 4"},
		{"adjacent lines swapped", join(lines[0], lines[1], lines[3], lines[2], lines[4]), testKey, 3, 2, "expected serial 3, found 4"},
		{"line duplicated", join(lines[0], lines[1], lines[2], lines[2], lines[3], lines[4]), testKey, 4, 3, "expected serial 4, found 3"},
		{"line from another chain", join(lines[0], lines[1], other[2], lines[3], lines[4]), testKey, 3, 2, "prev does not match"},
		{"torn last line", whole[:len(whole)-40], testKey, 5, 4, "truncated"},
		{"final newline removed", whole[:len(whole)-1], testKey, 5, 4, "truncated"},
		{"empty line inserted", join(lines[0], []byte("\n"), lines[1]), testKey, 2, 1, "empty line"},
		{"wrong key", whole, []byte("another key"), 1, 0, "wrong key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := mustVerify(t, tc.data, tc.key)
			if res.OK || res.FirstBadSerial != tc.bad || res.Entries != tc.entries {
				t.Fatalf("got %+v, want first bad serial %d after %d entries", res, tc.bad, tc.entries)
			}
			if !strings.Contains(res.Reason, tc.reason) {
				t.Fatalf("reason %q does not mention %q", res.Reason, tc.reason)
			}
			if !errors.Is(res.Err(), ErrTampered) {
				t.Fatalf("Err() = %v, want ErrTampered", res.Err())
			}
		})
	}
}

// TestVerifyEveryByte flips every byte of a chain in turn: each flip must be
// caught at the serial of the line that holds the byte.
func TestVerifyEveryByte(t *testing.T) {
	path := writeChain(t, 4)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	serial := uint64(1)
	for i := range data {
		for _, mask := range []byte{0x01, 0x20, 0x80} {
			mutated := bytes.Clone(data)
			mutated[i] ^= mask
			res := mustVerify(t, mutated, testKey)
			if res.OK || res.FirstBadSerial != serial {
				t.Fatalf("byte %d ^ %#x (line %d): got %+v", i, mask, serial, res)
			}
		}
		if data[i] == '\n' {
			serial++
		}
	}
}

// TestVerifyForgedEntry appends a well-formed entry MACed with another key.
func TestVerifyForgedEntry(t *testing.T) {
	path := writeChain(t, 3)
	res, err := VerifyFile(path, testKey)
	if err != nil {
		t.Fatal(err)
	}
	prev, _ := hex.DecodeString(res.LastHMAC)
	w := &wireEntry{Serial: 4, Time: "2026-01-01T00:00:00.000000000Z", Type: "sandbox.exec", Prev: res.LastHMAC}
	w.HMAC = hex.EncodeToString(computeMAC([]byte("attacker key"), w, prev))
	line, err := encodeLine(w)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	got := mustVerify(t, append(data, line...), testKey)
	if got.OK || got.FirstBadSerial != 4 || got.Entries != 3 {
		t.Fatalf("forged entry: %+v", got)
	}
}

func TestVerifyGenesisPrevMustBeZero(t *testing.T) {
	prev := bytes.Repeat([]byte{7}, sha256.Size)
	w := &wireEntry{Serial: 1, Time: "2026-01-01T00:00:00.000000000Z", Type: "x", Prev: hex.EncodeToString(prev)}
	w.HMAC = hex.EncodeToString(computeMAC(testKey, w, prev))
	line, _ := encodeLine(w)
	if res := mustVerify(t, line, testKey); res.OK || res.FirstBadSerial != 1 {
		t.Fatalf("non-zero genesis prev accepted: %+v", res)
	}
}

func TestVerifyLongLine(t *testing.T) {
	data := append(bytes.Repeat([]byte("a"), MaxEntrySize+10), '\n')
	res := mustVerify(t, data, testKey)
	if res.OK || res.FirstBadSerial != 1 || !strings.Contains(res.Reason, "longer") {
		t.Fatalf("long line: %+v", res)
	}
}

// TestVerifyTailDeletionNeedsAnchor documents the limit of a hash chain:
// dropping final entries leaves a valid chain, but a different head.
func TestVerifyTailDeletionNeedsAnchor(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.jsonl")
	l, err := Open(path, testKey)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := l.Append(context.Background(), "e", "", nil); err != nil {
			t.Fatal(err)
		}
	}
	serial, head := l.Head()
	l.Close()
	lines := readLines(t, path)
	res := mustVerify(t, bytes.Join(lines[:2], nil), testKey)
	if !res.OK || res.Entries != 2 {
		t.Fatalf("prefix of a chain must verify: %+v", res)
	}
	if serial != 3 || res.LastHMAC == head {
		t.Fatalf("anchor (serial %d, %s) must differ from truncated head %s", serial, head, res.LastHMAC)
	}
}
