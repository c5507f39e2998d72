package kavach

import (
	"github.com/kavach-sandbox/kavach/backend"
	"github.com/kavach-sandbox/kavach/gate"
	"github.com/kavach-sandbox/kavach/score"
)

// Status is how an exec ended: exited, signaled, timeout, oom, blocked or error.
type Status = backend.Status

// Statuses an exec can end with.
const (
	StatusExited   = backend.StatusExited
	StatusSignaled = backend.StatusSignaled
	StatusTimeout  = backend.StatusTimeout
	StatusOOM      = backend.StatusOOM
	StatusBlocked  = backend.StatusBlocked
	StatusError    = backend.StatusError
)

// Result is the structured outcome of one exec; its JSON keys are part of
// kavach's contract.
type Result struct {
	ID      string `json:"id"`
	Backend string `json:"backend"`
	Status  Status `json:"status"`
	// ExitCode is the command's exit code; for a timeout it is 124 and for
	// an OOM kill 137, on every backend.
	ExitCode        int         `json:"exit_code"`
	Signal          int         `json:"signal"`
	TimedOut        bool        `json:"timed_out"`
	OOMKilled       bool        `json:"oom_killed"`
	Stdout          string      `json:"stdout"`
	Stderr          string      `json:"stderr"`
	StdoutTruncated bool        `json:"stdout_truncated"`
	StderrTruncated bool        `json:"stderr_truncated"`
	DurationMS      float64     `json:"duration_ms"`
	CPUMS           float64     `json:"cpu_ms"`
	MaxRSSKB        int64       `json:"max_rss_kb"`
	Score           score.Score `json:"score"`
	Gate            gate.Report `json:"gate"`
	// Error explains StatusError, e.g. "command not found".
	Error string `json:"error,omitempty"`
}

// ExitStatus maps a result to the exit status of `kavach run`:
// the command's own code, 124 on timeout, 123 when the gate withheld the
// output, 128+N when killed by signal N (OOM: 137).
func (r *Result) ExitStatus() int {
	switch {
	case r.Gate.Verdict == gate.VerdictBlock || r.Gate.Verdict == gate.VerdictQuarantine:
		return 123
	case r.TimedOut:
		return 124
	case r.Status == StatusOOM:
		return 137
	case r.Signal > 0:
		return 128 + r.Signal
	}
	return r.ExitCode
}
