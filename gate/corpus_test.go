package gate

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func readCorpus(t *testing.T, name string) []sample {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []sample
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var s sample
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out = append(out, s)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// familyOf maps rule ids to their scanner family.
func familyOf() map[string]string {
	m := map[string]string{}
	for _, r := range Rules() {
		m[r.ID] = r.Scanner
	}
	return m
}

// TestCorpusPrecisionRecall asserts, per rule family, recall 1.0 on the
// positive samples and precision 1.0 over positives and negatives: every
// finding of the family is the expected rule (or an allowed companion).
func TestCorpusPrecisionRecall(t *testing.T) {
	g, err := New(DefaultPolicy())
	if err != nil {
		t.Fatal(err)
	}
	fam := familyOf()
	for _, family := range []string{"secrets", "data", "code"} {
		t.Run(family, func(t *testing.T) {
			var tp, fn, fp int
			covered := map[string]bool{}
			for _, s := range readCorpus(t, family+".positive.jsonl") {
				_, rep := g.Scan("stdout", []byte(s.Text))
				found := false
				for _, f := range rep.Findings {
					switch {
					case f.Rule == s.Rule:
						found = true
					case fam[f.Rule] == family && !slices.Contains(s.Also, f.Rule):
						fp++
						t.Errorf("unexpected %s on %s sample %q", f.Rule, s.Rule, s.Text)
					}
				}
				if found {
					tp++
					covered[s.Rule] = true
				} else {
					fn++
					t.Errorf("missed %s in %q", s.Rule, s.Text)
				}
			}
			for _, s := range readCorpus(t, family+".negative.jsonl") {
				_, rep := g.Scan("stdout", []byte(s.Text))
				for _, f := range rep.Findings {
					if fam[f.Rule] == family {
						fp++
						t.Errorf("false positive %s at %d in %q", f.Rule, f.Offset, s.Text)
					}
				}
			}
			recall := float64(tp) / float64(tp+fn)
			precision := float64(tp) / float64(max(1, tp+fp))
			t.Logf("%s: %d positives, recall %.3f, precision %.3f, %d rules covered", family, tp+fn, recall, precision, len(covered))
			for _, r := range Rules() {
				if r.Scanner == family && r.ID != RuleRegisteredSecret && !covered[r.ID] {
					t.Errorf("rule %s has no positive sample", r.ID)
				}
			}
		})
	}
}

// TestCorpusProse checks that ordinary program output yields no finding.
func TestCorpusProse(t *testing.T) {
	g, err := New(DefaultPolicy())
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join("testdata", "prose.txt"))
	if err != nil {
		t.Fatal(err)
	}
	out, rep := g.Scan("stdout", data)
	if rep.Verdict != VerdictPass || len(rep.Findings) != 0 {
		t.Errorf("prose: verdict %s, findings %+v", rep.Verdict, rep.Findings)
	}
	if string(out) != string(data) {
		t.Error("prose was modified")
	}
}

// TestSecretRuleCount holds the secrets family to at least 40 formats.
func TestSecretRuleCount(t *testing.T) {
	n := 0
	for _, r := range Rules() {
		if r.Scanner == "secrets" && r.ID != RuleRegisteredSecret {
			n++
		}
	}
	if n < 40 {
		t.Errorf("%d secret rules, want at least 40", n)
	}
}
