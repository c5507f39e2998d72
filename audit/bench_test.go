package audit

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkAppend measures the append rate for each durability policy.
func BenchmarkAppend(b *testing.B) {
	policies := []struct {
		name string
		opts Options
	}{
		{"fsync-each", Options{}},
		{"fsync-every-64", Options{SyncEvery: 64}},
		{"no-fsync", Options{NoSync: true}},
	}
	payload := map[string]any{"argv": []string{"python3", "-c", "print(1)"}, "backend": "process", "status": "exited", "exit_code": 0}
	for _, p := range policies {
		b.Run(p.name, func(b *testing.B) {
			l, err := OpenOptions(filepath.Join(b.TempDir(), "a.jsonl"), testKey, p.opts)
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := l.Append(ctx, "sandbox.exec", "sb-0123456789", payload); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
		})
	}
}

// BenchmarkAppendRedacted measures the cost of the redaction hook.
func BenchmarkAppendRedacted(b *testing.B) {
	l, err := OpenOptions(filepath.Join(b.TempDir(), "a.jsonl"), testKey, Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	r := NewSecretRedactor(map[string][]byte{"A": []byte("secret-value-a"), "B": []byte("secret-value-b")})
	l.SetRedact(r.Redact)
	payload := map[string]any{"argv": []string{"python3", "-c", "print(1)"}, "backend": "process", "status": "exited", "exit_code": 0}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := l.Append(context.Background(), "sandbox.exec", "sb-0123456789", payload); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}

// BenchmarkVerify measures verification throughput.
func BenchmarkVerify(b *testing.B) {
	data, err := os.ReadFile(writeChain(b, 10000))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := Verify(bytes.NewReader(data), testKey)
		if err != nil || !res.OK {
			b.Fatal(res, err)
		}
	}
	b.ReportMetric(float64(b.N*10000)/b.Elapsed().Seconds(), "entries/s")
}
