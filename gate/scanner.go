package gate

import (
	"bytes"
	"regexp"
	"sort"
	"sync"
)

// Scanner is one family of detectors. All scanners of a gate share a single
// keyword prefilter pass: a scanner declares anchors (keywords), and Check
// runs only around an anchor's occurrences, so clean text costs one DFA step
// per byte no matter how many scanners there are.
type Scanner interface {
	// Name is the family name reported in findings ("secrets", "data", "code").
	Name() string
	// Rules describes every rule the scanner can report.
	Rules() []Rule
	// Anchors lists the prefilter keywords. Hit.Anchor indexes this slice.
	Anchors() []Anchor
	// Reach is the largest distance before an anchor's start or after its
	// end that a match reported for it may extend to. Streaming keeps at
	// least this much context around chunk boundaries.
	Reach() int
	// Check examines the neighbourhood of one anchor occurrence in buf and
	// calls emit for each match. It must not retain buf.
	Check(buf []byte, h Hit, emit func(Match))
}

// Rule describes a detector with a stable id.
type Rule struct {
	ID          string   `json:"id"`
	Scanner     string   `json:"scanner"`
	Severity    Severity `json:"severity"`
	Description string   `json:"description"`
}

// Anchor is a prefilter keyword. It matches ASCII-case-insensitively unless
// CaseSensitive is set.
type Anchor struct {
	Keyword       string
	CaseSensitive bool
	WordStart     bool // the byte before the keyword must not be [A-Za-z0-9_]
	WordEnd       bool // the byte after the keyword must not be [A-Za-z0-9_]
}

// Hit is one occurrence of an anchor: buf[Start:End] is the keyword.
type Hit struct {
	Anchor     int
	Start, End int
}

// Match is one detection, in offsets of the scanned buffer.
type Match struct {
	Rule       string
	Start, End int
	// Label overrides the redaction label (default: the rule id).
	Label string
}

// Rule ids that the gate itself reports.
const (
	RuleRegisteredSecret = "registered-secret"
	RuleMaxArtifactSize  = "max-artifact-size"
	RuleTooManyFindings  = "too-many-findings"
)

func isWordByte(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// pattern is one way a rule is detected: anchors, then a regular expression
// run on a bounded window around the anchor, or a hand-written matcher.
type pattern struct {
	anchors []Anchor
	// re is applied to buf[start-before : end+after]; group (if > 0)
	// selects the sensitive span to report and redact. It is compiled on
	// first use (lazyRegexp): most processes never need most of them.
	re            func() *regexp.Regexp
	group         int
	before, after int
	// anchored applies re (which starts with ^) once to buf[from:end+after],
	// where from is the anchor's start, or its end when fromEnd is set: a
	// hit then costs at most the length of one match attempt, never a
	// search of the whole window.
	anchored, fromEnd bool
	// untilNext ends the window before the next occurrence of one of the
	// pattern's anchors after the hit (see command).
	untilNext bool
	// line narrows the window to the line containing the anchor.
	line bool
	// guard, if set, is a cheap test of the hit's surroundings that must
	// pass before the regular expression runs.
	guard func(buf []byte, h Hit) bool
	// valid, if set, must accept the reported span.
	valid func(span []byte) bool
	// match, if set, replaces re: it returns the span of the match that
	// the hit belongs to, or end <= start when there is none.
	match func(buf []byte, h Hit) (start, end int)
}

// ruleDef is a rule with its patterns.
type ruleDef struct {
	Rule
	patterns []pattern
}

// patternScanner implements Scanner over a table of rule definitions.
type patternScanner struct {
	name    string
	rules   []Rule
	anchors []Anchor
	owner   []anchorOwner // per anchor
	reach   int
}

type anchorOwner struct {
	rule string
	pat  *pattern
}

func newPatternScanner(name string, defs []ruleDef) *patternScanner {
	s := &patternScanner{name: name}
	for i := range defs {
		d := &defs[i]
		d.Scanner = name
		s.rules = append(s.rules, d.Rule)
		for j := range d.patterns {
			p := &d.patterns[j]
			for _, a := range p.anchors {
				s.anchors = append(s.anchors, a)
				s.owner = append(s.owner, anchorOwner{rule: d.ID, pat: p})
				s.reach = max(s.reach, p.before+len(a.Keyword), p.after+len(a.Keyword))
			}
		}
	}
	return s
}

func (s *patternScanner) Name() string      { return s.name }
func (s *patternScanner) Rules() []Rule     { return s.rules }
func (s *patternScanner) Anchors() []Anchor { return s.anchors }
func (s *patternScanner) Reach() int        { return s.reach }

// Check runs the pattern that owns the hit's anchor.
func (s *patternScanner) Check(buf []byte, h Hit, emit func(Match)) {
	o := s.owner[h.Anchor]
	p := o.pat
	if p.guard != nil && !p.guard(buf, h) {
		return
	}
	if p.match != nil {
		if start, end := p.match(buf, h); end > start {
			s.report(buf, o, start, end, emit)
		}
		return
	}
	lo, hi := max(0, h.Start-p.before), min(len(buf), h.End+p.after)
	if p.line {
		lo, hi = lineBounds(buf, lo, h.Start, h.End, hi)
	}
	if p.untilNext {
		hi = nextAnchor(buf, h.End, hi, p.anchors)
	}
	if p.anchored {
		lo = h.Start
		if p.fromEnd {
			lo = h.End
		}
		if m := p.re().FindSubmatchIndex(buf[lo:hi]); m != nil {
			s.reportGroup(buf, o, lo, m, emit)
		}
		return
	}
	for _, m := range p.re().FindAllSubmatchIndex(buf[lo:hi], -1) {
		s.reportGroup(buf, o, lo, m, emit)
	}
}

// reportGroup reports the pattern's group of a match found at offset lo.
func (s *patternScanner) reportGroup(buf []byte, o anchorOwner, lo int, m []int, emit func(Match)) {
	if g := 2 * o.pat.group; m[g] >= 0 {
		s.report(buf, o, lo+m[g], lo+m[g+1], emit)
	}
}

// nextAnchor returns the offset of the first occurrence of one of the
// anchors in buf[from:hi] (respecting their case and boundary conditions),
// or hi.
func nextAnchor(buf []byte, from, hi int, anchors []Anchor) int {
	for j := from; j < hi; j++ {
		c := foldByte(buf[j])
		for _, a := range anchors {
			end := j + len(a.Keyword)
			if c == foldByte(a.Keyword[0]) && end <= len(buf) && equalFold(buf[j:end], a.Keyword) && anchorOK(buf, a, j, end) {
				return j
			}
		}
	}
	return hi
}

// lineBounds narrows [lo, hi) to the line containing [start, end).
func lineBounds(buf []byte, lo, start, end, hi int) (int, int) {
	if i := bytes.LastIndexByte(buf[lo:start], '\n'); i >= 0 {
		lo += i + 1
	}
	if i := bytes.IndexByte(buf[end:hi], '\n'); i >= 0 {
		hi = end + i
	}
	return lo, hi
}

// report validates a span and emits it.
func (s *patternScanner) report(buf []byte, o anchorOwner, start, end int, emit func(Match)) {
	if end > start && (o.pat.valid == nil || o.pat.valid(buf[start:end])) {
		emit(Match{Rule: o.rule, Start: start, End: end})
	}
}

// builtinScanners are the three families shipped with kavach.
var builtinScanners = sync.OnceValue(func() []Scanner {
	return []Scanner{
		newPatternScanner("secrets", secretRules()),
		newDataScanner(),
		newPatternScanner("code", codeRules()),
	}
})

// Rules lists every built-in rule, sorted by id, plus the gate's own rules.
func Rules() []Rule {
	var out []Rule
	for _, s := range builtinScanners() {
		out = append(out, s.Rules()...)
	}
	out = append(out,
		Rule{ID: RuleRegisteredSecret, Scanner: "secrets", Severity: SeverityMedium,
			Description: "a secret registered with the credential proxy (always redacted)"},
		Rule{ID: RuleMaxArtifactSize, Scanner: "gate", Severity: SeverityCritical,
			Description: "the artifact exceeds the policy's maximum size (always blocked)"},
		Rule{ID: RuleTooManyFindings, Scanner: "gate", Severity: SeverityCritical,
			Description: "the artifact has more than MaxFindings findings; the rest is withheld (always blocked)"})
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

var ruleIndex = sync.OnceValue(func() map[string]Rule {
	m := make(map[string]Rule)
	for _, r := range Rules() {
		m[r.ID] = r
	}
	return m
})
