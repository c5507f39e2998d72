package gate

// Finding describes one match. It never contains the matched bytes: only
// where they are and which rule found them.
type Finding struct {
	Scanner  string   `json:"scanner"`
	Rule     string   `json:"rule"`
	Severity Severity `json:"severity"`
	Stream   string   `json:"stream"`
	Offset   int64    `json:"offset"`
	Length   int      `json:"length"`
}

// Report is the result of scanning one artifact (or, merged, one execution).
type Report struct {
	Verdict      Verdict   `json:"verdict"`
	Findings     []Finding `json:"findings"`
	QuarantineID string    `json:"quarantine_id"`
}

// SkippedReport is the report of an artifact that was not scanned because
// the gate is off.
func SkippedReport() Report {
	return Report{Verdict: VerdictSkipped, Findings: []Finding{}}
}

// Merge combines reports: the worst verdict wins (block > quarantine > warn >
// pass > skipped), findings are concatenated in order and the first non-empty
// quarantine id is kept. Merging nothing yields a passing report.
func Merge(reports ...Report) Report {
	out := Report{Verdict: VerdictPass, Findings: []Finding{}}
	if len(reports) > 0 {
		out.Verdict = reports[0].Verdict
	}
	for _, r := range reports {
		if r.Verdict.rank() > out.Verdict.rank() {
			out.Verdict = r.Verdict
		}
		out.Findings = append(out.Findings, r.Findings...)
		if out.QuarantineID == "" {
			out.QuarantineID = r.QuarantineID
		}
	}
	if out.Verdict == "" {
		out.Verdict = VerdictPass
	}
	return out
}
