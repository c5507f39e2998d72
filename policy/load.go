package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"
)

// file is the on-disk form of a policy. Pointers tell "absent" from "zero",
// so that an explicit `"cpus": 0` is an error while a missing field keeps
// the value of the preset named by Extends.
type file struct {
	Extends      string            `json:"extends"`
	Name         *string           `json:"name"`
	Seccomp      *string           `json:"seccomp"`
	SeccompAllow []string          `json:"seccomp_allow"`
	Filesystem   *fileFilesystem   `json:"filesystem"`
	Network      *Network          `json:"network"`
	Limits       *fileLimits       `json:"limits"`
	Env          map[string]string `json:"env"`
	InheritEnv   *bool             `json:"inherit_env"`
	Workdir      *string           `json:"workdir"`
	Hostname     *string           `json:"hostname"`
	UserNS       *bool             `json:"user_namespace"`
	BestEffort   *bool             `json:"best_effort"`
}

type fileFilesystem struct {
	ReadOnlyRoot *bool           `json:"read_only_root"`
	Mounts       []Mount         `json:"mounts"`
	TmpSize      jsonValue[Size] `json:"tmp_size"`
}

type fileLimits struct {
	Memory    jsonValue[Size]     `json:"memory"`
	CPUs      *float64            `json:"cpus"`
	Pids      *int64              `json:"pids"`
	Timeout   jsonValue[Duration] `json:"timeout"`
	CPUTime   jsonValue[Duration] `json:"cpu_time"`
	MaxOutput jsonValue[Size]     `json:"max_output"`
}

// jsonValue keeps a field's raw JSON so that its parse error can name the
// field (encoding/json does not add the field to errors from UnmarshalJSON).
type jsonValue[T any] struct{ raw json.RawMessage }

func (v *jsonValue[T]) UnmarshalJSON(b []byte) error {
	v.raw = append(json.RawMessage(nil), b...)
	return nil
}

// get decodes the field; ok is false when it was absent.
func (v jsonValue[T]) get(field string) (val T, ok bool, err error) {
	if v.raw == nil {
		return val, false, nil
	}
	if err := json.Unmarshal(v.raw, &val); err != nil {
		return val, false, invalid(field, "%v", err)
	}
	return val, true, nil
}

// Load reads a policy from a JSON or YAML file. YAML is chosen by the
// extension .yaml or .yml, JSON otherwise.
func Load(path string) (Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Policy{}, fmt.Errorf("read policy: %w", err)
	}
	ext := strings.ToLower(filepath.Ext(path))
	var p Policy
	if ext == ".yaml" || ext == ".yml" {
		p, err = ParseYAML(data)
	} else {
		p, err = ParseJSON(data)
	}
	if err != nil {
		return Policy{}, fmt.Errorf("policy file %s: %w", path, err)
	}
	if p.Name == "" {
		p.Name = strings.TrimSuffix(filepath.Base(path), ext)
	}
	return p, nil
}

// Resolve returns the preset called nameOrPath, or loads the file at that
// path when it is not a preset name.
func Resolve(nameOrPath string) (Policy, error) {
	p, err := Preset(nameOrPath)
	if err == nil {
		return p, nil
	}
	if _, statErr := os.Stat(nameOrPath); statErr != nil {
		return Policy{}, fmt.Errorf("%w, and no policy file %q", err, nameOrPath)
	}
	return Load(nameOrPath)
}

// ParseJSON decodes a policy strictly: unknown fields, trailing data and
// impossible values are errors that name the field.
func ParseJSON(data []byte) (Policy, error) {
	var f file
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return Policy{}, fmt.Errorf("%w: %w", ErrInvalid, describeJSONError(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Policy{}, fmt.Errorf("%w: trailing data after the policy object", ErrInvalid)
	}
	return f.toPolicy()
}

// ParseYAML decodes a YAML policy with the same rules as ParseJSON.
func ParseYAML(data []byte) (Policy, error) {
	var doc any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return Policy{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if doc == nil {
		doc = map[string]any{}
	}
	if _, ok := doc.(map[string]any); !ok {
		return Policy{}, fmt.Errorf("%w: a policy must be a mapping", ErrInvalid)
	}
	js, err := json.Marshal(doc)
	if err != nil {
		return Policy{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return ParseJSON(js)
}

func describeJSONError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return &FieldError{Field: te.Field, Msg: fmt.Sprintf("wrong type %s (want %s)", te.Value, te.Type)}
	}
	return err
}

func (f *file) toPolicy() (Policy, error) {
	p, err := basePolicy(f.Extends)
	if err != nil {
		return Policy{}, err
	}
	set(&p.Name, f.Name)
	if f.Seccomp != nil {
		p.Seccomp = *f.Seccomp
		p.SeccompAllow = nil
	}
	if f.SeccompAllow != nil {
		p.SeccompAllow = f.SeccompAllow
		if f.Seccomp == nil {
			p.Seccomp = SeccompCustom
		}
	}
	if f.Filesystem != nil {
		set(&p.Filesystem.ReadOnlyRoot, f.Filesystem.ReadOnlyRoot)
		ts, ok, err := f.Filesystem.TmpSize.get("filesystem.tmp_size")
		if err != nil {
			return Policy{}, err
		}
		if ok {
			p.Filesystem.TmpSize = ts
		}
		if f.Filesystem.Mounts != nil {
			p.Filesystem.Mounts = f.Filesystem.Mounts
		}
	}
	if f.Network != nil {
		p.Network = *f.Network
		if p.Network.Mode == "" && len(p.Network.Allow) > 0 {
			p.Network.Mode = NetworkAllowlist
		}
	}
	if err := f.Limits.apply(&p.Limits); err != nil {
		return Policy{}, err
	}
	if f.Env != nil {
		p.Env = f.Env
	}
	set(&p.InheritEnv, f.InheritEnv)
	set(&p.Workdir, f.Workdir)
	set(&p.Hostname, f.Hostname)
	set(&p.UserNamespace, f.UserNS)
	set(&p.BestEffort, f.BestEffort)
	if err := p.Validate(); err != nil {
		return Policy{}, err
	}
	return p, nil
}

// ExtendsNone names the empty base: a file that extends "none" must spell
// out everything, and what it omits is off or unlimited. `kavach policy
// show` prints policies this way, so that its output loads back unchanged.
const ExtendsNone = "none"

// basePolicy is the policy a file starts from: the preset named by extends,
// strict when extends is absent (a short file is never weaker than the
// default by accident), or nothing at all for "none".
func basePolicy(extends string) (Policy, error) {
	switch extends {
	case "":
		return Strict(), nil
	case ExtendsNone:
		return Policy{}, nil
	}
	p, err := Preset(extends)
	if err != nil {
		return Policy{}, fmt.Errorf("%w: %w", ErrInvalid, &FieldError{Field: "extends", Msg: err.Error()})
	}
	return p, nil
}

// File is a policy in its file form, complete and self-contained.
type File struct {
	Extends string `json:"extends"`
	Policy
}

// ToFile returns p in the form that loads back to exactly p.
func ToFile(p Policy) File { return File{Extends: ExtendsNone, Policy: p} }

func (l *fileLimits) apply(dst *Limits) error {
	if l == nil {
		return nil
	}
	if l.CPUs != nil && *l.CPUs <= 0 {
		return invalid("limits.cpus", "must be positive (omit the field for no limit)")
	}
	if l.Pids != nil && *l.Pids <= 0 {
		return invalid("limits.pids", "must be positive (omit the field for no limit)")
	}
	set(&dst.CPUs, l.CPUs)
	set(&dst.Pids, l.Pids)
	for _, s := range []struct {
		field string
		v     jsonValue[Size]
		dst   *Size
	}{{"limits.memory", l.Memory, &dst.Memory}, {"limits.max_output", l.MaxOutput, &dst.MaxOutput}} {
		if err := positive(s.field, s.v, s.dst); err != nil {
			return err
		}
	}
	for _, d := range []struct {
		field string
		v     jsonValue[Duration]
		dst   *Duration
	}{{"limits.timeout", l.Timeout, &dst.Timeout}, {"limits.cpu_time", l.CPUTime, &dst.CPUTime}} {
		if err := positive(d.field, d.v, d.dst); err != nil {
			return err
		}
	}
	return nil
}

// positive decodes a present field into dst, requiring a value above zero.
func positive[T Size | Duration](field string, v jsonValue[T], dst *T) error {
	val, ok, err := v.get(field)
	if err != nil || !ok {
		return err
	}
	if val <= 0 {
		return invalid(field, "must be positive (omit the field for no limit)")
	}
	*dst = val
	return nil
}

func set[T any](dst *T, src *T) {
	if src != nil {
		*dst = *src
	}
}
