package policy

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Load reads a policy from a JSON or YAML file. YAML is chosen by the
// extension .yaml or .yml, JSON otherwise.
func Load(path string) (Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Policy{}, fmt.Errorf("read policy: %w", err)
	}
	ext := strings.ToLower(filepath.Ext(path))
	if ext == ".yaml" || ext == ".yml" {
		if data, err = yamlToJSON(data); err != nil {
			return Policy{}, fmt.Errorf("policy file %s: %w", path, err)
		}
	}
	var f file
	if err := decodeFile(data, &f); err != nil {
		return Policy{}, fmt.Errorf("policy file %s: %w", path, err)
	}
	if !has(f.present, topName) {
		// Named after the file, not after the preset it extends: a policy
		// called "basic" that is not the basic preset would mislead events
		// and audit entries.
		f.name = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
		f.present |= 1 << topName
	}
	p, err := f.toPolicy()
	if err != nil {
		return Policy{}, fmt.Errorf("policy file %s: %w", path, err)
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

// ParseJSON decodes a policy strictly (RFC 8259 JSON, exact-case keys):
// unknown fields, duplicate keys, trailing data and impossible values are
// errors that name the field. Every error wraps ErrInvalid.
// A policy without a name takes the name of the preset it extends.
func ParseJSON(data []byte) (Policy, error) {
	var f file
	if err := decodeFile(data, &f); err != nil {
		return Policy{}, err
	}
	return f.toPolicy()
}

// decodeFile decodes a policy file into f without applying it to its base.
func decodeFile(data []byte, f *file) error {
	d := decoder{data: data}
	if err := d.document(f); err != nil {
		return err.toError()
	}
	return nil
}

// ParseYAML decodes a YAML policy with the same rules as ParseJSON. The
// file must hold one YAML document, a mapping; its nodes are converted to
// JSON one by one (see yamlToJSON) and decoded by the JSON decoder.
func ParseYAML(data []byte) (Policy, error) {
	js, err := yamlToJSON(data)
	if err != nil {
		return Policy{}, err
	}
	return ParseJSON(js)
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
	case "", "strict":
		return Strict(), nil
	case "basic":
		return Basic(), nil
	case "minimal":
		return Minimal(), nil
	case ExtendsNone:
		return Policy{}, nil
	}
	p, err := Preset(extends) // any case, surrounding space
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

// file is a decoded policy file before it is applied over its base. Each
// object keeps a bit set of the keys it was given with a non-null value,
// so that "absent" differs from zero: an explicit `"cpus": 0` is an error,
// while a missing field keeps the value of the preset named by extends.
type file struct {
	present      uint32 // bit k: topKeys[k] was given
	extends      string
	name         string
	seccomp      string
	seccompAllow []string
	fs           fileFilesystem
	network      Network
	networkMode  string // network.mode, parsed by toPolicy
	limits       fileLimits
	env          map[string]string
	inheritEnv   bool
	workdir      string
	hostname     string
	userNS       bool
	bestEffort   bool
}

type fileFilesystem struct {
	present      uint32 // bit k: fsKeys[k] was given
	readOnlyRoot bool
	mounts       []Mount
	tmpSize      Size
	workSize     Size
}

type fileLimits struct {
	present   uint32 // bit k: limitsKeys[k] was given
	memory    Size
	cpus      float64
	pids      int64
	timeout   Duration
	cpuTime   Duration
	maxOutput Size
}

// Keys of the top-level object, most common first (lookup is linear).
const (
	topExtends = iota
	topSeccomp
	topFilesystem
	topNetwork
	topLimits
	topName
	topSeccompAllow
	topEnv
	topInheritEnv
	topWorkdir
	topHostname
	topUserNS
	topBestEffort
)

var topKeys = []string{
	topExtends: "extends", topSeccomp: "seccomp", topFilesystem: "filesystem", topNetwork: "network",
	topLimits: "limits", topName: "name", topSeccompAllow: "seccomp_allow", topEnv: "env",
	topInheritEnv: "inherit_env", topWorkdir: "workdir", topHostname: "hostname",
	topUserNS: "user_namespace", topBestEffort: "best_effort",
}

// Keys of the filesystem object.
const (
	fsReadOnlyRoot = iota
	fsMounts
	fsTmpSize
	fsWorkSize
)

var fsKeys = []string{fsReadOnlyRoot: "read_only_root", fsMounts: "mounts", fsTmpSize: "tmp_size", fsWorkSize: "work_size"}

// Keys of the limits object.
const (
	limMemory = iota
	limCPUs
	limPids
	limTimeout
	limCPUTime
	limMaxOutput
)

var limitsKeys = []string{
	limMemory: "memory", limCPUs: "cpus", limPids: "pids",
	limTimeout: "timeout", limCPUTime: "cpu_time", limMaxOutput: "max_output",
}

// Sizes and durations reject null, as they did when encoding/json handed
// null to their UnmarshalJSON: `memory:` left empty in YAML is a mistake,
// not a request for the preset's value.
const (
	fsNotNull     = 1<<fsTmpSize | 1<<fsWorkSize
	limitsNotNull = 1<<limMemory | 1<<limTimeout | 1<<limCPUTime | 1<<limMaxOutput
)

// Keys of a network object and of a mount entry.
const (
	netMode = iota
	netAllow
)

var networkKeys = []string{netMode: "mode", netAllow: "allow"}

const (
	mountSource = iota
	mountDest
	mountMode
)

var mountKeys = []string{mountSource: "source", mountDest: "dest", mountMode: "mode"}

// Well-known values that decoded strings share instead of allocating.
var (
	extendsNames = []string{"strict", "basic", "minimal", ExtendsNone}
	seccompNames = seccompEnum.names
	networkModes = networkEnum.names
	accessNames  = []string{string(ReadOnly), string(ReadWrite)}
)

// document decodes a whole policy file: one object and nothing after it.
func (d *decoder) document(f *file) *fileError {
	if err := d.file(f); err != nil {
		return err
	}
	if d.skipSpace(); d.pos < len(d.data) {
		return d.syntax(d.pos, "trailing data after the policy object")
	}
	return nil
}

func (d *decoder) file(f *file) *fileError {
	return d.object(topKeys, 0, &f.present, func(k int) *fileError {
		var err *fileError
		switch k {
		case topExtends:
			f.extends, err = d.stringValue(extendsNames)
		case topSeccomp:
			f.seccomp, err = d.stringValue(seccompNames)
		case topFilesystem:
			err = d.filesystem(&f.fs)
		case topNetwork:
			err = d.network(&f.network, &f.networkMode)
		case topLimits:
			err = d.limits(&f.limits)
		case topName:
			f.name, err = d.stringValue(extendsNames)
		case topSeccompAllow:
			f.seccompAllow, err = d.stringList()
		case topEnv:
			f.env, err = d.env()
		case topInheritEnv:
			f.inheritEnv, err = d.boolean()
		case topWorkdir:
			f.workdir, err = d.stringValue(nil)
		case topHostname:
			f.hostname, err = d.stringValue(nil)
		case topUserNS:
			f.userNS, err = d.boolean()
		case topBestEffort:
			f.bestEffort, err = d.boolean()
		}
		return err
	})
}

func (d *decoder) filesystem(fs *fileFilesystem) *fileError {
	return d.object(fsKeys, fsNotNull, &fs.present, func(k int) *fileError {
		var err *fileError
		switch k {
		case fsReadOnlyRoot:
			fs.readOnlyRoot, err = d.boolean()
		case fsMounts:
			fs.mounts, err = d.mounts()
		case fsTmpSize:
			fs.tmpSize, err = d.size()
		case fsWorkSize:
			fs.workSize, err = d.size()
		}
		return err
	})
}

// mounts decodes the mount list; an empty array gives an empty, non-nil
// slice, as encoding/json did.
func (d *decoder) mounts() ([]Mount, *fileError) {
	list := []Mount{}
	err := d.array(func(int) *fileError {
		var m Mount
		var present uint32
		err := d.object(mountKeys, 0, &present, func(k int) *fileError {
			var s string
			var err *fileError
			switch k {
			case mountSource:
				m.Source, err = d.stringValue(nil)
			case mountDest:
				m.Dest, err = d.stringValue(nil)
			case mountMode:
				s, err = d.stringValue(accessNames)
				m.Mode = Access(s)
			}
			return err
		})
		list = append(list, m)
		return err
	})
	return list, err
}

func (d *decoder) network(n *Network, mode *string) *fileError {
	var present uint32
	return d.object(networkKeys, 0, &present, func(k int) *fileError {
		var err *fileError
		switch k {
		case netMode:
			*mode, err = d.stringValue(networkModes)
		case netAllow:
			n.Allow, err = d.stringList()
		}
		return err
	})
}

func (d *decoder) limits(l *fileLimits) *fileError {
	return d.object(limitsKeys, limitsNotNull, &l.present, func(k int) *fileError {
		var err *fileError
		switch k {
		case limMemory:
			l.memory, err = d.size()
			err = positive(l.memory, err)
		case limCPUs:
			l.cpus, err = d.float()
			err = positive(l.cpus, err)
		case limPids:
			l.pids, err = d.integer("an integer")
			err = positive(l.pids, err)
		case limTimeout:
			l.timeout, err = d.duration()
			err = positive(l.timeout, err)
		case limCPUTime:
			l.cpuTime, err = d.duration()
			err = positive(l.cpuTime, err)
		case limMaxOutput:
			l.maxOutput, err = d.size()
			err = positive(l.maxOutput, err)
		}
		return err
	})
}

// positive passes err on, or reports a limit that is zero or negative.
func positive[T Size | Duration | int64 | float64](v T, err *fileError) *fileError {
	if err == nil && v <= 0 {
		return wrongValue("must be positive (omit the field for no limit)")
	}
	return err
}

// env decodes the environment: an object of strings with free-form keys.
func (d *decoder) env() (map[string]string, *fileError) {
	if err := d.want('{', "an object of strings"); err != nil {
		return nil, err
	}
	d.pos++
	env := map[string]string{}
	for first := true; ; first = false {
		key, more, err := d.nextKey(first)
		if err != nil || !more {
			return env, err
		}
		name := string(key)
		if _, dup := env[name]; dup {
			return nil, &fileError{class: ErrDuplicateField, msg: "variable " + quote(name) + " given more than once"}
		}
		v, err := d.envValue()
		if err != nil {
			err.msg = "variable " + quote(name) + ": " + err.msg
			return nil, err
		}
		env[name] = v
	}
}

// envValue reads an environment value: a string, or a number or boolean
// taken as the text written (`PORT: 8080` in YAML is "8080"; `1e3` stays
// "1e3"). null is an error: an unset value is not an empty one.
func (d *decoder) envValue() (string, *fileError) {
	switch c := d.skipSpace(); {
	case c == 't' || c == 'f':
		b, err := d.boolean()
		return strconv.FormatBool(b), err
	case c == '-' || c >= '0' && c <= '9':
		text, err := d.number("a string")
		return string(text), err
	}
	return d.stringValue(nil)
}

// toPolicy applies f over the preset named by extends and validates the
// result.
func (f *file) toPolicy() (Policy, error) {
	p, err := basePolicy(f.extends)
	if err != nil {
		return Policy{}, err
	}
	var modeErr error // reported where Validate checks the network mode
	if has(f.present, topName) {
		p.Name = f.name
	}
	if has(f.present, topSeccomp) {
		if p.Seccomp, err = ParseSeccomp(f.seccomp); err != nil {
			return Policy{}, err
		}
		p.SeccompAllow = nil
	}
	if has(f.present, topSeccompAllow) {
		p.SeccompAllow = f.seccompAllow
		if !has(f.present, topSeccomp) {
			p.Seccomp = SeccompCustom
		}
	}
	if has(f.present, topFilesystem) {
		f.fs.apply(&p.Filesystem)
	}
	if has(f.present, topNetwork) {
		p.Network = f.network
		switch {
		case f.networkMode != "":
			p.Network.Mode, modeErr = ParseNetworkMode(f.networkMode)
		case len(p.Network.Allow) > 0:
			p.Network.Mode = NetworkAllowlist
		}
	}
	if has(f.present, topLimits) {
		f.limits.apply(&p.Limits)
	}
	if has(f.present, topEnv) {
		p.Env = f.env
	}
	setIf(&p.InheritEnv, f.inheritEnv, f.present, topInheritEnv)
	setIf(&p.Workdir, f.workdir, f.present, topWorkdir)
	setIf(&p.Hostname, f.hostname, f.present, topHostname)
	setIf(&p.UserNamespace, f.userNS, f.present, topUserNS)
	setIf(&p.BestEffort, f.bestEffort, f.present, topBestEffort)
	if err := p.validate(modeErr); err != nil {
		return Policy{}, err
	}
	return p, nil
}

func (fs *fileFilesystem) apply(dst *Filesystem) {
	setIf(&dst.ReadOnlyRoot, fs.readOnlyRoot, fs.present, fsReadOnlyRoot)
	setIf(&dst.Mounts, fs.mounts, fs.present, fsMounts)
	setIf(&dst.TmpSize, fs.tmpSize, fs.present, fsTmpSize)
	setIf(&dst.WorkSize, fs.workSize, fs.present, fsWorkSize)
}

func (l *fileLimits) apply(dst *Limits) {
	setIf(&dst.Memory, l.memory, l.present, limMemory)
	setIf(&dst.CPUs, l.cpus, l.present, limCPUs)
	setIf(&dst.Pids, l.pids, l.present, limPids)
	setIf(&dst.Timeout, l.timeout, l.present, limTimeout)
	setIf(&dst.CPUTime, l.cpuTime, l.present, limCPUTime)
	setIf(&dst.MaxOutput, l.maxOutput, l.present, limMaxOutput)
}

// has reports whether bit k is set in present.
func has(present uint32, k int) bool { return present&(1<<k) != 0 }

// setIf stores v in dst when key k is in present.
func setIf[T any](dst *T, v T, present uint32, k int) {
	if has(present, k) {
		*dst = v
	}
}
