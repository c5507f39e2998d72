package gate

import (
	"fmt"
	"maps"
)

// Policy decides what the gate does with findings.
type Policy struct {
	// Actions maps each severity to an action. Severities missing from the
	// map take the action of DefaultPolicy.
	Actions map[Severity]Action `json:"actions,omitempty" yaml:"actions,omitempty"`
	// Allow lists rule ids whose findings are ignored. Registered secrets
	// and the artifact size limit cannot be allowed away.
	Allow []string `json:"allow,omitempty" yaml:"allow,omitempty"`
	// MaxArtifactSize is the largest artifact in bytes that may leave the
	// sandbox; a larger one is blocked. Zero means unlimited.
	MaxArtifactSize int64 `json:"max_artifact_size,omitempty" yaml:"max_artifact_size,omitempty"`
}

// DefaultPolicy is kavach's default: critical → block, high → quarantine,
// medium and low → warn (redact), info → pass.
func DefaultPolicy() Policy {
	return Policy{Actions: map[Severity]Action{
		SeverityCritical: ActionBlock,
		SeverityHigh:     ActionQuarantine,
		SeverityMedium:   ActionWarn,
		SeverityLow:      ActionWarn,
		SeverityInfo:     ActionPass,
	}}
}

// Validate checks that every severity and action of p is known, that
// MaxArtifactSize is not negative and that Allow names only rules that may
// be allowed. Errors wrap ErrInvalid and name the field. New accepts
// exactly the policies Validate accepts.
func (p Policy) Validate() error {
	_, err := p.normalize()
	return err
}

// normalize validates p and returns a copy with every severity mapped.
func (p Policy) normalize() (Policy, error) {
	out := DefaultPolicy()
	for s, a := range p.Actions {
		if !s.Valid() {
			return Policy{}, fmt.Errorf("%w: policy actions: severity %d", ErrInvalid, int(s))
		}
		if !a.Valid() {
			return Policy{}, fmt.Errorf("%w: policy actions[%s]: action %d", ErrInvalid, s, int(a))
		}
		out.Actions[s] = a
	}
	if p.MaxArtifactSize < 0 {
		return Policy{}, fmt.Errorf("%w: policy max_artifact_size: %d is negative", ErrInvalid, p.MaxArtifactSize)
	}
	known := ruleIndex()
	for _, id := range p.Allow {
		if _, ok := known[id]; !ok || id == RuleRegisteredSecret || id == RuleMaxArtifactSize || id == RuleTooManyFindings {
			return Policy{}, fmt.Errorf("%w: policy allow: rule %q cannot be allowed (unknown or mandatory)", ErrInvalid, id)
		}
	}
	out.Allow = append([]string(nil), p.Allow...)
	out.MaxArtifactSize = p.MaxArtifactSize
	return out, nil
}

// Clone returns a deep copy of p.
func (p Policy) Clone() Policy {
	p.Actions = maps.Clone(p.Actions)
	p.Allow = append([]string(nil), p.Allow...)
	return p
}
