package gate

import (
	"bytes"
	"context"
	"encoding/base64"
	"testing"
)

const fuzzSecret = "fuzz-Secret-Value-42"

// FuzzScan checks that Scan and ScanStream never panic, agree with each
// other, and never let a registered secret (raw or base64) through.
func FuzzScan(f *testing.F) {
	f.Add([]byte("key " + fakeAWS + " mail a@b.co " + fuzzSecret))
	f.Add([]byte("\x00\xff" + fuzzSecret + fuzzSecret[:7]))
	f.Add([]byte("-----BEGIN RSA PRIVATE KEY-----\nAAAA"))
	f.Add([]byte("4111 1111 1111 1111 +1 415 555 2671 fe80::1 DE89 3704 0044 0532 0130 00"))
	f.Add([]byte("password=" + base64.StdEncoding.EncodeToString([]byte(fuzzSecret))))
	g := newGate(f, DefaultPolicy())
	g.AddSecret("fz", []byte(fuzzSecret))
	g.chunk = 97
	f.Fuzz(func(t *testing.T, data []byte) {
		out, rep := g.Scan("stdout", data)
		if bytes.Contains(out, []byte(fuzzSecret)) {
			t.Fatalf("secret left in output %q", out)
		}
		if bytes.Contains(out, []byte(base64.StdEncoding.EncodeToString([]byte(fuzzSecret)))) {
			t.Fatalf("base64 secret left in output %q", out)
		}
		for _, f := range rep.Findings {
			if f.Offset < 0 || f.Length <= 0 || f.Offset+int64(f.Length) > int64(len(data)) {
				t.Fatalf("finding out of range: %+v (len %d)", f, len(data))
			}
		}
		var sout bytes.Buffer
		srep, err := g.ScanStream(context.Background(), "stdout", bytes.NewReader(data), &sout)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(sout.Bytes(), out) || srep.Verdict != rep.Verdict || len(srep.Findings) != len(rep.Findings) {
			t.Fatalf("stream and scan disagree: %q vs %q", sout.Bytes(), out)
		}
	})
}
