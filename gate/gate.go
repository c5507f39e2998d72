// Package gate is kavach's externalization gate: every byte that leaves a
// sandbox (stdout, stderr, exported files) is scanned for credentials,
// personal data and exfiltration or persistence code, and the policy turns
// the findings into a verdict: pass, warn (matches redacted), quarantine or
// block.
//
// Scanning is exact-byte (NUL bytes, invalid UTF-8 and arbitrarily long
// lines are ordinary input) and offsets are byte offsets in the original
// stream. One Aho-Corasick DFA over all scanners' keywords is the only work
// done on clean bytes; regular expressions and checksum validators run
// only in bounded windows around keyword hits.
package gate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"sync"
	"sync/atomic"
)

// Gate scans artifacts under one policy. It is safe for concurrent use.
type Gate struct {
	policy  Policy
	allow   map[string]bool
	mu      sync.Mutex // serialises AddSecret
	secrets *secretScanner
	eng     atomic.Pointer[engine]
	chunk   int  // ScanStream read size; 0 means streamChunk (tests shrink it)
	only    bool // registered secrets only (NewSecretsOnly)
}

// lazyRegexp compiles expr on first use, not when a program that imports
// the gate starts (every kavach process does, each sandbox's init included).
func lazyRegexp(expr string) func() *regexp.Regexp {
	return sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(expr) })
}

// builtinEngine is shared by every gate without registered secrets.
var builtinEngine = sync.OnceValue(func() *engine { return newEngine(builtinScanners()) })

// New returns a gate enforcing p. Severities missing from p.Actions take
// the default action; unknown allow-list rule ids are an error.
func New(p Policy) (*Gate, error) {
	np, err := p.normalize()
	if err != nil {
		return nil, err
	}
	g := &Gate{policy: np, allow: make(map[string]bool), secrets: &secretScanner{}}
	for _, id := range np.Allow {
		g.allow[id] = true
	}
	g.eng.Store(builtinEngine())
	return g, nil
}

// NewSecretsOnly returns a gate that looks for nothing but the secrets
// registered with AddSecret, and redacts them as every gate does. kavach
// scans output through it when the gate is turned off: registered secrets
// are redacted whatever the gate's setting.
func NewSecretsOnly() *Gate {
	g, _ := New(DefaultPolicy()) // the default policy is valid
	g.only = true
	g.eng.Store(newEngine(nil))
	return g
}

// Policy returns a copy of the gate's effective policy.
func (g *Gate) Policy() Policy { return g.policy.Clone() }

// AddSecret registers a secret value. Whenever it appears in scanned
// output, raw, base64 or URL-encoded, it is redacted as
// [REDACTED:secret:<name>] under rule "registered-secret", whatever the
// policy's allow list says. Empty values are ignored.
func (g *Gate) AddSecret(name string, value []byte) {
	if len(value) == 0 {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.secrets = g.secrets.with(name, value)
	var scanners []Scanner
	if !g.only {
		scanners = builtinScanners()
	}
	g.eng.Store(newEngine(append(slices.Clip(scanners), g.secrets)))
}

// Scan scans one whole artifact and returns its redacted form and report.
// When nothing is redacted the returned slice is data itself (capacity
// clipped), not a copy. Bytes beyond the policy's MaxArtifactSize are
// neither scanned nor returned, and the report is a block.
func (g *Gate) Scan(stream string, data []byte) ([]byte, Report) {
	eng := g.eng.Load()
	st := g.newState(stream)
	limit := len(data)
	if max := g.policy.MaxArtifactSize; max > 0 && int64(len(data)) > max {
		limit = int(max)
	}
	spans := st.apply(0, eng.find(data[:limit]))
	end := limit
	if st.cut >= 0 {
		end = int(st.cut)
		st.withhold(int64(limit))
	}
	out := data[:end:end]
	if len(spans) > 0 {
		out = appendRedacted(make([]byte, 0, end+32*len(spans)), data, 0, end, spans)
	}
	if limit < len(data) {
		st.oversize(int64(limit), int64(len(data)))
	}
	return out, st.report()
}

// streamChunk is how much new input ScanStream reads before scanning.
const streamChunk = 1 << 20

// ScanStream scans r with bounded memory and writes the redacted bytes to
// w. Every chunk is scanned together with enough context before and after
// (the engine's reach) that matches spanning chunk boundaries are found
// exactly as Scan finds them. Input beyond MaxArtifactSize is drained and
// discarded. Output is written as chunks complete, not byte by byte.
func (g *Gate) ScanStream(ctx context.Context, stream string, r io.Reader, w io.Writer) (Report, error) {
	s := g.newStreamer(stream, r, w)
	for eof := false; !eof; {
		if err := ctx.Err(); err != nil {
			return s.st.report(), fmt.Errorf("gate: scan %s: %w", stream, err)
		}
		var err error
		if eof, err = s.read(ctx); err != nil {
			return s.st.report(), fmt.Errorf("gate: read %s: %w", stream, err)
		}
		if err := s.flush(eof); err != nil {
			return s.st.report(), fmt.Errorf("gate: write %s: %w", stream, err)
		}
		if s.st.cut >= 0 && !eof {
			if err := s.discardRest(ctx); err != nil {
				return s.st.report(), fmt.Errorf("gate: read %s: %w", stream, err)
			}
			eof = true
		}
	}
	if s.st.cut >= 0 {
		s.st.withhold(s.total)
	}
	if s.excess > 0 {
		s.st.oversize(s.total, s.total+s.excess)
	}
	return s.st.report(), nil
}

// discardRest drains the input after the findings cap was reached: the
// rest of the artifact is neither scanned nor written.
func (s *streamer) discardRest(ctx context.Context) error {
	extra, err := drain(ctx, s.r)
	if err != nil {
		return err
	}
	if s.maxSize > 0 && s.total+extra > s.maxSize {
		s.excess = s.total + extra - s.maxSize
		extra = s.maxSize - s.total
	}
	s.total += extra
	return nil
}

// streamer is the state of one ScanStream call. buf holds unwritten bytes
// after up to ov bytes of already written context.
type streamer struct {
	eng     *engine
	st      *scanState
	r       io.Reader
	w       io.Writer
	maxSize int64
	ov      int    // context kept on each side of a cut
	buf     []byte // buf[:done] was already written
	done    int
	out     []byte // redacted bytes of one round
	base    int64  // stream offset of buf[0]
	total   int64  // bytes read within the size limit
	excess  int64  // bytes drained past the size limit
}

func (g *Gate) newStreamer(stream string, r io.Reader, w io.Writer) *streamer {
	eng := g.eng.Load()
	chunk := streamChunk
	if g.chunk > 0 {
		chunk = g.chunk
	}
	ov := eng.reach + 64
	return &streamer{eng: eng, st: g.newState(stream), r: r, w: w, maxSize: g.policy.MaxArtifactSize,
		ov: ov, buf: make([]byte, 0, chunk+2*ov)}
}

// read fills the buffer; past the size limit it drains the reader and
// records the excess. It reports whether the input is exhausted.
func (s *streamer) read(ctx context.Context) (bool, error) {
	room := cap(s.buf) - len(s.buf)
	if s.maxSize > 0 {
		room = int(min(int64(room), s.maxSize-s.total))
	}
	n, eof, err := fill(s.r, s.buf[len(s.buf):len(s.buf)+room])
	if err != nil {
		return false, err
	}
	s.buf, s.total = s.buf[:len(s.buf)+n], s.total+int64(n)
	if eof || s.maxSize == 0 || s.total < s.maxSize {
		return eof, nil
	}
	extra, err := drain(ctx, s.r)
	if err != nil {
		return false, err
	}
	s.excess = extra
	return true, nil
}

// flush scans the buffer, writes what can no longer change and keeps the
// rest, plus ov bytes of context, for the next round.
func (s *streamer) flush(eof bool) error {
	cut, ms := acceptable(s.eng.find(s.buf), s.done, len(s.buf), s.ov, eof)
	spans := s.st.apply(s.base, ms)
	if s.st.cut >= 0 {
		cut = int(s.st.cut - s.base)
	}
	emitted := s.buf[s.done:cut]
	if len(spans) > 0 {
		s.out = appendRedacted(s.out[:0], s.buf, s.done, cut, spans)
		emitted = s.out
	}
	if _, err := s.w.Write(emitted); err != nil {
		return err
	}
	keep := max(0, cut-s.ov)
	s.buf = s.buf[:copy(s.buf, s.buf[keep:])]
	s.base += int64(keep)
	s.done = cut - keep
	return nil
}

// acceptable decides how far the current buffer can be emitted: everything
// but the last ov bytes (all of it at EOF), extended to the end of any
// match that starts before that point. It returns the matches that start in
// [done, cut).
func acceptable(ms []match, done, n, ov int, eof bool) (int, []match) {
	cut := max(done, n-ov)
	if eof {
		cut = n
	}
	var out []match
	for _, m := range ms {
		if m.start < done {
			continue
		}
		if m.start >= cut {
			break
		}
		cut = max(cut, m.end)
		out = append(out, m)
	}
	return cut, out
}

// fill reads into p until it is full or r reaches EOF.
func fill(r io.Reader, p []byte) (n int, eof bool, err error) {
	for n < len(p) {
		k, err := r.Read(p[n:])
		n += k
		if errors.Is(err, io.EOF) {
			return n, true, nil
		}
		if err != nil {
			return n, false, err
		}
	}
	return n, false, nil
}

// drain discards the rest of r, honouring ctx, and returns the byte count.
func drain(ctx context.Context, r io.Reader) (int64, error) {
	var total int64
	scratch := make([]byte, 64<<10)
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		n, err := r.Read(scratch)
		total += int64(n)
		if errors.Is(err, io.EOF) {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// MaxFindings is the most findings one artifact may have. The match that
// would be one more is replaced by a RuleTooManyFindings finding: the
// artifact is blocked, and its bytes from that match on are neither
// scanned further nor returned. Output with that many findings is a bulk
// leak or an attempt to exhaust the gate, and a report of that size is
// useless to a reviewer.
const MaxFindings = 10000

// scanState accumulates the findings and worst action of one artifact.
type scanState struct {
	g        *Gate
	stream   string
	findings []Finding
	worst    Action
	matches  int   // findings recorded for matches (the cap counts these)
	cut      int64 // stream offset where the findings cap stopped the scan, or -1
	capAt    int   // index of the too-many-findings finding
}

func (g *Gate) newState(stream string) *scanState {
	return &scanState{g: g, stream: stream, findings: []Finding{}, cut: -1}
}

// action is what the policy does with m; ok is false for allowed rules.
func (st *scanState) action(m match) (a Action, ok bool) {
	if m.rule == RuleRegisteredSecret {
		return max(st.g.policy.Actions[m.severity], ActionWarn), true
	}
	if st.g.allow[m.rule] {
		return 0, false
	}
	return st.g.policy.Actions[m.severity], true
}

// apply records the findings among ms (offsets in a buffer that starts at
// stream offset base) and returns the ranges to redact: the matches whose
// action is warn or worse.
func (st *scanState) apply(base int64, ms []match) []redaction {
	var spans []redaction
	for _, m := range ms {
		a, ok := st.action(m)
		if !ok || st.cut >= 0 {
			continue
		}
		if st.matches >= MaxFindings {
			st.tooMany(base + int64(m.start))
			continue
		}
		st.worst = max(st.worst, a)
		st.matches++
		st.findings = append(st.findings, Finding{Scanner: m.scanner, Rule: m.rule, Severity: m.severity,
			Stream: st.stream, Offset: base + int64(m.start), Length: m.end - m.start})
		if a >= ActionWarn {
			spans = addRedaction(spans, m)
		}
	}
	return spans
}

// tooMany records that the findings cap was reached at offset.
func (st *scanState) tooMany(offset int64) {
	st.worst, st.cut, st.capAt = ActionBlock, offset, len(st.findings)
	st.findings = append(st.findings, Finding{Scanner: "gate", Rule: RuleTooManyFindings,
		Severity: SeverityCritical, Stream: st.stream, Offset: offset})
}

// withhold sets the length of the too-many-findings finding: the bytes
// from the cut to end, the end of the scanned part of the artifact.
func (st *scanState) withhold(end int64) {
	st.findings[st.capAt].Length = int(end - st.cut)
}

// oversize records that the artifact exceeded the size limit.
func (st *scanState) oversize(limit, total int64) {
	st.worst = ActionBlock
	st.findings = append(st.findings, Finding{Scanner: "gate", Rule: RuleMaxArtifactSize,
		Severity: SeverityCritical, Stream: st.stream, Offset: limit, Length: int(total - limit)})
}

func (st *scanState) report() Report {
	return Report{Verdict: st.worst.verdict(), Findings: st.findings}
}

// redaction is a byte range to replace and the label to put there.
type redaction struct {
	start, end int
	label      string
	prio       int
}

// addRedaction adds m to spans (sorted by start), merging overlaps. The
// merged range keeps the label of its most important match: a registered
// secret, else the highest severity.
func addRedaction(spans []redaction, m match) []redaction {
	r := redaction{start: m.start, end: m.end, label: m.label, prio: int(m.severity)}
	if m.rule == RuleRegisteredSecret {
		r.prio = int(SeverityCritical) + 1
	}
	if n := len(spans); n > 0 && r.start < spans[n-1].end {
		last := &spans[n-1]
		last.end = max(last.end, r.end)
		if r.prio > last.prio {
			last.label, last.prio = r.label, r.prio
		}
		return spans
	}
	return append(spans, r)
}

// appendRedacted appends buf[from:to] to dst with spans replaced by labels.
func appendRedacted(dst, buf []byte, from, to int, spans []redaction) []byte {
	pos := from
	for _, sp := range spans {
		if sp.start > pos {
			dst = append(dst, buf[pos:sp.start]...)
		}
		dst = append(dst, "[REDACTED:"...)
		dst = append(dst, sp.label...)
		dst = append(dst, ']')
		pos = max(pos, sp.end)
	}
	if pos < to {
		dst = append(dst, buf[pos:to]...)
	}
	return dst
}
