package audit

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// FuzzVerify feeds arbitrary files to Verify: it must never panic, and an
// accepted file must have exactly one entry per line.
func FuzzVerify(f *testing.F) {
	data, err := os.ReadFile(writeChain(f, 3))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add(data[:len(data)-7])
	f.Add([]byte("\n\n"))
	f.Add([]byte(`{"serial":1}` + "\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		res, err := Verify(bytes.NewReader(in), testKey)
		if err != nil {
			t.Fatalf("Verify returned an error for in-memory input: %v", err)
		}
		if res.OK && res.Entries != bytes.Count(in, []byte("\n")) {
			t.Fatalf("accepted %d entries in %d lines", res.Entries, bytes.Count(in, []byte("\n")))
		}
		if !res.OK && (res.FirstBadSerial != uint64(res.Entries)+1 || res.Reason == "") {
			t.Fatalf("inconsistent failure: %+v", res)
		}
	})
}

// FuzzParseLine checks that the line parser never panics and accepts only
// lines that re-encode to exactly themselves.
func FuzzParseLine(f *testing.F) {
	for _, line := range readLines(f, writeChain(f, 2)) {
		f.Add(bytes.TrimSuffix(line, []byte("\n")))
	}
	f.Add([]byte(`{"serial":1,"time":"x","type":"t","prev":"","hmac":""}`))
	f.Add([]byte(`{"serial":18446744073709551615}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		w, err := parseLine(line)
		if err != nil {
			return
		}
		enc, err := encodeLine(w)
		if err != nil || !bytes.Equal(enc, append(bytes.Clone(line), '\n')) {
			t.Fatalf("accepted non-canonical line %q (re-encodes to %q, %v)", line, enc, err)
		}
	})
}

// FuzzRedactPayload checks that redaction always yields valid JSON in which
// the secret no longer occurs in any decoded string.
func FuzzRedactPayload(f *testing.F) {
	f.Add("s3cret", "before s3cret after", 12.5)
	f.Add(`"\`, `x"\y`, -1e9)
	f.Add("12", "no", 12.0)
	f.Fuzz(func(t *testing.T, secret, value string, num float64) {
		const repl = "[REDACTED:S]"
		if secret == "" || strings.Contains(repl, secret) || strings.Contains(secret, "\x00") {
			return // a secret inside the marker itself cannot be checked this way
		}
		r := NewSecretRedactor(map[string][]byte{"S": []byte(secret)})
		p, err := encodePayload(map[string]any{value: []any{value, num}}, r.Redact)
		if err != nil {
			return // e.g. NaN is not JSON
		}
		var decoded any
		if err := json.Unmarshal(p, &decoded); err != nil {
			t.Fatalf("redacted payload is not JSON: %q: %v", p, err)
		}
		var walk func(any)
		walk = func(v any) {
			switch v := v.(type) {
			case string:
				// Markers become NUL so that text around them cannot
				// combine with marker bytes into a false match.
				if strings.Contains(strings.ReplaceAll(v, repl, "\x00"), secret) {
					t.Fatalf("secret %q survives in %q", secret, v)
				}
			case []any:
				for _, e := range v {
					walk(e)
				}
			case map[string]any:
				for k, e := range v {
					walk(k)
					walk(e)
				}
			}
		}
		walk(decoded)
	})
}
