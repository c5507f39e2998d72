package gate

import (
	"bytes"
	"sort"
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
			e.refs = append(e.refs, anchorRef{scanner: si, anchor: ai, a: a})
		}
		e.reach = max(e.reach, s.Reach())
	}
	e.ac = newAutomaton(keywords, digitMutes)
	return e
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
		start := end - len(ref.a.Keyword)
		if !anchorOK(buf, ref.a, start, end) {
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
// drops matches that are a by-product of a stronger one: a match that
// overlaps a match of higher severity (a phone number inside a card number,
// the "password@host" e-mail look-alike in a URL with a password), and
// generic assignments overlapping a specific credential. Registered secrets
// are never dropped.
func normalize(ms []match) []match {
	if len(ms) < 2 {
		return ms
	}
	sort.Slice(ms, func(i, j int) bool {
		if ms[i].start != ms[j].start {
			return ms[i].start < ms[j].start
		}
		return ms[i].end > ms[j].end
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

// dominated reports whether match a should give way to the overlapping b.
func dominated(a, b match) bool {
	if a.rule == RuleRegisteredSecret {
		return false
	}
	if a.rule == "generic-secret-assignment" && b.scanner == "secrets" && b.rule != a.rule {
		return true
	}
	return a.severity < b.severity
}
