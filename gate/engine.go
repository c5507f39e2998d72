package gate

import (
	"bytes"
	"cmp"
	"slices"
	"strings"
)

// engine runs a set of scanners over a buffer with one shared prefilter.
// It is immutable once built and safe for concurrent use.
type engine struct {
	scanners []Scanner
	refs     []anchorRef // per automaton keyword
	ac       *automaton
	reach    int
	rules    map[string]ruleMeta
}

type anchorRef struct {
	scanner int
	anchor  int
	a       Anchor
	n       int  // len(a.Keyword)
	checked bool // the anchor has case or boundary conditions
}

type ruleMeta struct {
	scanner  string
	severity Severity
}

// match is a normalised detection inside one buffer.
type match struct {
	rule, scanner, label string
	severity             Severity
	start, end           int
}

func newEngine(scanners []Scanner) *engine {
	e := &engine{scanners: scanners, rules: make(map[string]ruleMeta)}
	var keywords []string
	for si, s := range scanners {
		for _, r := range s.Rules() {
			e.rules[r.ID] = ruleMeta{scanner: s.Name(), severity: r.Severity}
		}
		for ai, a := range s.Anchors() {
			if a.Keyword == "" {
				continue
			}
			keywords = append(keywords, a.Keyword)
			e.refs = append(e.refs, anchorRef{scanner: si, anchor: ai, a: a, n: len(a.Keyword),
				checked: a.CaseSensitive || a.WordStart || a.WordEnd})
		}
		e.reach = max(e.reach, s.Reach())
	}
	e.ac = newAutomaton(keywords, mutes(e.refs))
	return e
}

// mutes lists contexts in which anchors are certain to be rejected, so that
// the DFA does not report them at all: short anchors that must start a word
// preceded by a word byte ("nc" in "once"), digits inside numbers, and ':'
// after a letter that is not a hex digit ("Note:").
func mutes(refs []anchorRef) []string {
	const word = "abcdefghijklmnopqrstuvwxyz0123456789_"
	m := append([]string(nil), digitMutes...)
	seen := map[string]bool{}
	for _, r := range refs {
		kw := strings.ToLower(r.a.Keyword)
		if !r.a.WordStart || len(kw) > 2 || seen[kw] {
			continue
		}
		seen[kw] = true
		for i := 0; i < len(word); i++ {
			m = append(m, word[i:i+1]+kw)
		}
	}
	for _, c := range "ghijklmnopqrstuvwxyz_" {
		m = append(m, string(c)+":")
	}
	return m
}

// digitMutes silence digit anchors inside numbers: a digit that follows a
// digit or a dot never starts a card, SSN, phone number or IP address, and
// clean output is full of such digits (timestamps, sizes, versions).
var digitMutes = func() []string {
	var m []string
	for _, p := range "0123456789." {
		for _, d := range "0123456789" {
			m = append(m, string(p)+string(d))
		}
	}
	return m
}()

// find returns the matches in buf, deduplicated and sorted by offset.
func (e *engine) find(buf []byte) []match {
	var ms []match
	emit := func(m Match) {
		meta, ok := e.rules[m.Rule]
		if !ok || m.Start < 0 || m.End > len(buf) || m.End <= m.Start {
			return
		}
		label := m.Label
		if label == "" {
			label = m.Rule
		}
		ms = append(ms, match{rule: m.Rule, scanner: meta.scanner, label: label,
			severity: meta.severity, start: m.Start, end: m.End})
	}
	e.ac.scan(buf, func(kw int32, end int) {
		ref := &e.refs[kw]
		start := end - ref.n
		if ref.checked && !anchorOK(buf, ref.a, start, end) {
			return
		}
		e.scanners[ref.scanner].Check(buf, Hit{Anchor: ref.anchor, Start: start, End: end}, emit)
	})
	return normalize(ms)
}

// anchorOK applies an anchor's case and word-boundary requirements.
func anchorOK(buf []byte, a Anchor, start, end int) bool {
	if a.CaseSensitive && !bytes.Equal(buf[start:end], []byte(a.Keyword)) {
		return false
	}
	if a.WordStart && start > 0 && isWordByte(buf[start-1]) {
		return false
	}
	if a.WordEnd && end < len(buf) && isWordByte(buf[end]) {
		return false
	}
	return true
}

// normalize sorts matches, merges overlapping matches of the same rule and
// drops matches that are a by-product of a stronger one (see dominated).
func normalize(ms []match) []match {
	if len(ms) < 2 {
		return ms
	}
	slices.SortFunc(ms, func(a, b match) int {
		if a.start != b.start {
			return cmp.Compare(a.start, b.start)
		}
		return cmp.Compare(b.end, a.end)
	})
	ms = mergeSameRule(ms)
	drop := make([]bool, len(ms))
	for i := range ms {
		for j := i + 1; j < len(ms) && ms[j].start < ms[i].end; j++ {
			if dominated(ms[j], ms[i]) {
				drop[j] = true
			}
			if dominated(ms[i], ms[j]) {
				drop[i] = true
			}
		}
	}
	out := ms[:0]
	for i, m := range ms {
		if !drop[i] {
			out = append(out, m)
		}
	}
	return out
}

// mergeSameRule unions overlapping matches of one rule (sorted input).
func mergeSameRule(ms []match) []match {
	out := ms[:0]
	last := make(map[string]int) // rule+label -> index in out
	for _, m := range ms {
		key := m.rule + "\x00" + m.label
		if k, ok := last[key]; ok && m.start < out[k].end {
			out[k].end = max(out[k].end, m.end)
			continue
		}
		last[key] = len(out)
		out = append(out, m)
	}
	return out
}

// dominated reports whether match a should give way to the overlapping b:
// a lower-severity match of the same family, a low-severity data match
// inside a credential (the "pass@host" of a URL, digits of a token), or a
// generic assignment overlapping a specific credential. Matches of other
// families are kept, so that allowing one rule never hides another.
func dominated(a, b match) bool {
	switch {
	case a.rule == RuleRegisteredSecret:
		return false
	case a.rule == "generic-secret-assignment" && b.scanner == "secrets" && b.rule != a.rule:
		return true
	case a.severity >= b.severity:
		return false
	case a.scanner == b.scanner:
		return true
	default:
		return a.scanner == "data" && a.severity <= SeverityLow && b.scanner == "secrets"
	}
}
