package gate

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"
)

// adversarialKeywords lists every distinct prefilter keyword of the
// built-in scanners, in their original case.
func adversarialKeywords() []string {
	var kws []string
	for _, s := range builtinScanners() {
		for _, a := range s.Anchors() {
			kws = append(kws, a.Keyword)
		}
	}
	slices.Sort(kws)
	return slices.Compact(kws)
}

// adversarialInputs builds, for every keyword, size bytes of the keyword
// repeated back to back and separated by '=', plus one line mixing every
// keyword: the inputs that make a per-hit check run over its whole window.
func adversarialInputs(size int) map[string][]byte {
	in := map[string][]byte{}
	fill := func(unit string) []byte {
		return bytes.Repeat([]byte(unit), size/len(unit)+1)[:size]
	}
	for _, kw := range adversarialKeywords() {
		in[kw] = fill(kw)
		in[kw+"="] = fill(kw + "=")
	}
	in["mixed line"] = fill(strings.Join(adversarialKeywords(), " ") + " ")
	return in
}

// TestAdversarialThroughput asserts a loose bound on the worst case,
// relative to ordinary text scanned in the same run (so that a loaded
// machine slows both alike): 1 MiB of any keyword repeated must scan in
// under 500 times the time of 1 MiB of ordinary text, or under 0.5 s, and
// never over 5 s (measured: ordinary text ~1 ms per MiB, the worst keyword
// ~100 ms).
// Before per-hit work was bounded, 1 MiB of "nc=" took 14 s, 10,000 times
// ordinary text. BenchmarkAdversarial has the figures.
func TestAdversarialThroughput(t *testing.T) {
	if testing.Short() {
		t.Skip("scans ~250 MiB")
	}
	if raceEnabled {
		t.Skip("timing floor does not hold under the race detector")
	}
	g := newGate(t, DefaultPolicy())
	// fastest is the lesser of two scans of data: the one least
	// disturbed by the rest of the machine.
	fastest := func(data []byte) (time.Duration, int) {
		best, findings := time.Duration(1<<62), 0
		for range 2 {
			start := time.Now()
			_, rep := g.Scan("stdout", data)
			best, findings = min(best, time.Since(start)), len(rep.Findings)
		}
		return best, findings
	}
	ordinary := bytes.Repeat([]byte("The build finished in 3.2 s; 41 tests passed, see ./out/report.txt for details.\n"), 1<<20/80)
	base, _ := fastest(ordinary)
	// At most 5 s whatever the baseline: a regression that slows ordinary
	// text as well must not lift the bound past the blow-up it guards.
	limit := min(max(500*base, 500*time.Millisecond), 5*time.Second)
	worst, worstName := time.Duration(0), ""
	for name, data := range adversarialInputs(1 << 20) {
		d, findings := fastest(data)
		if d > worst {
			worst, worstName = d, name
		}
		if d > limit {
			t.Errorf("%q repeated: %v for 1 MiB (%d findings); ordinary text: %v", name, d, findings, base)
		}
	}
	t.Logf("ordinary text %v, slowest: %q, %v for 1 MiB", base, worstName, worst)
}

// BenchmarkAdversarial scans 4 MiB of the worst inputs: the slowest
// keywords and the line mixing every keyword.
func BenchmarkAdversarial(b *testing.B) {
	in := adversarialInputs(4 << 20)
	for _, name := range []string{"mixed line", "xoxe-", "sk-proj-", "ya29.", "T3BlbkFJ", "session_token=",
		"heroku", "eyJ", "discord", "nc=", "curl", "dup2=", ".bashrc", "/etc/cron", "-----BEGIN", "password="} {
		data, ok := in[name]
		if !ok {
			b.Fatalf("no input %q", name)
		}
		b.Run(name, func(b *testing.B) { benchScan(b, data) })
	}
}
