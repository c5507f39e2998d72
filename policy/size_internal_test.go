package policy

import "testing"

// FuzzFractionBytes checks the 128-bit path of fractionBytes against the
// digit-doubling path on every fraction both can take.
func FuzzFractionBytes(f *testing.F) {
	for _, s := range []string{"5", "0009765625", "3", "999999999999999999", "000000000000000001", "75", "00000095367431640625"} {
		f.Add(s, uint8(40))
	}
	f.Fuzz(func(t *testing.T, frac string, shift uint8) {
		for i := 0; i < len(frac); i++ {
			if frac[i] < '0' || frac[i] > '9' {
				return
			}
		}
		p := int(shift % 41)
		if len(frac) > p || len(frac) > 18 || frac != "" && frac[len(frac)-1] == '0' {
			return
		}
		got, gotOK := fractionBytes(frac, 1<<p)
		want, wantOK := doubleFraction(frac, p)
		if gotOK != wantOK || (gotOK && got != want) {
			t.Fatalf("0.%s * 2^%d: fractionBytes %d %v, doubleFraction %d %v", frac, p, got, gotOK, want, wantOK)
		}
	})
}
