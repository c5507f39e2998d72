package gate

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalid reports a malformed severity, action or policy value.
var ErrInvalid = errors.New("gate: invalid value")

// Severity ranks how harmful a finding is if it leaves the sandbox.
type Severity int

// Severities from least to most harmful. The names are part of the public
// contract of kavach's results.
const (
	SeverityInfo Severity = iota
	SeverityLow
	SeverityMedium
	SeverityHigh
	SeverityCritical
)

var severityNames = [...]string{"info", "low", "medium", "high", "critical"}

// Severities lists every severity from least to most harmful.
func Severities() []Severity {
	return []Severity{SeverityInfo, SeverityLow, SeverityMedium, SeverityHigh, SeverityCritical}
}

// Valid reports whether s is one of the defined severities.
func (s Severity) Valid() bool { return s >= SeverityInfo && s <= SeverityCritical }

// String returns the lower-case name of s ("info" … "critical").
func (s Severity) String() string {
	if !s.Valid() {
		return fmt.Sprintf("severity(%d)", int(s))
	}
	return severityNames[s]
}

// MarshalText encodes s as its name.
func (s Severity) MarshalText() ([]byte, error) {
	if !s.Valid() {
		return nil, fmt.Errorf("%w: severity %d", ErrInvalid, int(s))
	}
	return []byte(severityNames[s]), nil
}

// UnmarshalText decodes a severity name (case-insensitive).
func (s *Severity) UnmarshalText(b []byte) error {
	v, err := ParseSeverity(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// ParseSeverity parses a severity name such as "high" (case-insensitive).
func ParseSeverity(name string) (Severity, error) {
	n := strings.ToLower(strings.TrimSpace(name))
	for i, s := range severityNames {
		if s == n {
			return Severity(i), nil
		}
	}
	return 0, fmt.Errorf("%w: unknown severity %q (want info, low, medium, high or critical)", ErrInvalid, name)
}

// Verdict is the outcome of scanning one artifact or one execution.
type Verdict string

// Verdicts, as they appear in results and JSON.
const (
	VerdictPass       Verdict = "pass"
	VerdictWarn       Verdict = "warn"
	VerdictQuarantine Verdict = "quarantine"
	VerdictBlock      Verdict = "block"
	VerdictSkipped    Verdict = "skipped"
)

// rank orders verdicts so that the worst one wins when merging.
func (v Verdict) rank() int {
	switch v {
	case VerdictPass:
		return 1
	case VerdictWarn:
		return 2
	case VerdictQuarantine:
		return 3
	case VerdictBlock:
		return 4
	default: // skipped or empty
		return 0
	}
}

// Action is what the policy does with a finding of a given severity.
type Action int

// Actions from most to least permissive.
const (
	ActionPass       Action = iota // report only
	ActionWarn                     // report and redact the match
	ActionQuarantine               // withhold the output in the quarantine store
	ActionBlock                    // withhold the output
)

var actionNames = [...]string{"pass", "warn", "quarantine", "block"}

// Valid reports whether a is one of the defined actions.
func (a Action) Valid() bool { return a >= ActionPass && a <= ActionBlock }

// String returns the action's name ("pass", "warn", "quarantine", "block").
func (a Action) String() string {
	if !a.Valid() {
		return fmt.Sprintf("action(%d)", int(a))
	}
	return actionNames[a]
}

// MarshalText encodes a as its name.
func (a Action) MarshalText() ([]byte, error) {
	if !a.Valid() {
		return nil, fmt.Errorf("%w: action %d", ErrInvalid, int(a))
	}
	return []byte(actionNames[a]), nil
}

// UnmarshalText decodes an action name (case-insensitive; "redact" is an
// alias of "warn").
func (a *Action) UnmarshalText(b []byte) error {
	v, err := ParseAction(string(b))
	if err != nil {
		return err
	}
	*a = v
	return nil
}

// ParseAction parses an action name: pass, warn (alias redact), quarantine or block.
func ParseAction(name string) (Action, error) {
	n := strings.ToLower(strings.TrimSpace(name))
	if n == "redact" {
		return ActionWarn, nil
	}
	for i, s := range actionNames {
		if s == n {
			return Action(i), nil
		}
	}
	return 0, fmt.Errorf("%w: unknown action %q (want pass, warn, quarantine or block)", ErrInvalid, name)
}

// verdict maps the worst action taken to the verdict it produces.
func (a Action) verdict() Verdict {
	switch a {
	case ActionWarn:
		return VerdictWarn
	case ActionQuarantine:
		return VerdictQuarantine
	case ActionBlock:
		return VerdictBlock
	default:
		return VerdictPass
	}
}
