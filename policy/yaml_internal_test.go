package policy

import (
	"encoding/json"
	"testing"
)

// FuzzYAMLToJSON checks that whatever YAML the converter accepts comes out
// as valid JSON: strings are escaped, numbers are JSON numbers, and the
// structure is balanced, so the decoder sees exactly what the file says.
func FuzzYAMLToJSON(f *testing.F) {
	for _, s := range []string{
		"", "a: b\n", "env: {A: \"\\0\\x01\\\"\\\\\\u2028\", B: 2024-01-01}\n", "a: [1, -0, 1.5e-3, true, ~, 'x']\n",
		"a: &x {b: [*x]}\n", "a: &x [1]\nb: [*x, *x]\n", "'': {\"\": ''}\n", "a: |\n  line\n  \ttab\n",
		"a: !!float 1\nb: !!int -0\n", "a: 0x10\n", "? [a]\n: b\n", "a: .inf\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := yamlToJSON(data)
		if err != nil {
			return
		}
		if !json.Valid(out) {
			t.Fatalf("yamlToJSON(%q) = %q: not valid JSON", data, out)
		}
		if len(out) > len(data)*6+2+maxAliasBytes+64 {
			t.Fatalf("yamlToJSON(%q) wrote %d bytes", data, len(out))
		}
	})
}
