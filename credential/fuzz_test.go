package credential

import (
	"reflect"
	"strings"
	"testing"
)

// FuzzParseBinding: the --secret parser never panics, accepts only valid
// bindings, round-trips through String and never echoes the text after '='.
func FuzzParseBinding(f *testing.F) {
	for _, s := range []string{"T=env:X", "T=env", "T=stdin", "T=fd:3", "T=proxy:a,b:1", "T=fd:00003", "=", "T=proxy:,"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := ParseBinding(s)
		if err != nil {
			name, spec, ok := strings.Cut(s, "=")
			// The name may be echoed; nothing after '=' may.
			if ok && len(spec) > 8 && name != "" && strings.Contains(strings.ReplaceAll(err.Error(), name, ""), spec) {
				t.Fatalf("error echoes %q: %v", spec, err)
			}
			return
		}
		if err := b.Validate(); err != nil {
			t.Fatalf("accepted invalid binding %+v: %v", b, err)
		}
		again, err := ParseBinding(b.String())
		if err != nil || !reflect.DeepEqual(again, b) {
			t.Fatalf("round trip of %q: %+v, %v", s, again, err)
		}
	})
}

// FuzzParseSourceSpec: the --secret-from parser never panics and yields
// only env or file sources.
func FuzzParseSourceSpec(f *testing.F) {
	for _, s := range []string{"T=env:X", "T=file:/a", "T=value:x", "T="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		name, src, err := ParseSourceSpec(s)
		if err != nil {
			return
		}
		if checkName(name) != nil || (src.kind != sourceEnv && src.kind != sourceFile) {
			t.Fatalf("accepted %q as %q %v", s, name, src)
		}
	})
}
