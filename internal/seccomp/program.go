//go:build linux

package seccomp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Profile names a seccomp profile.
type Profile string

// The profiles kavach knows.
const (
	ProfileOff    Profile = "off"    // no filter
	ProfileBasic  Profile = "basic"  // default allow, deny-list
	ProfileStrict Profile = "strict" // default deny, allow-list
	ProfileCustom Profile = "custom" // default deny, caller's allow-list
)

// Errors returned by this package; test them with errors.Is.
var (
	// ErrUnknownProfile reports a profile name this package does not know,
	// or a custom syscall list given with a profile other than custom.
	ErrUnknownProfile = errors.New("unknown seccomp profile")
	// ErrUnknownSyscall reports a syscall name unknown on the target
	// architecture; the error text names it.
	ErrUnknownSyscall = errors.New("unknown syscall")
	// ErrEmptyCustom reports a custom profile without syscalls.
	ErrEmptyCustom = errors.New("empty syscall list")
	// ErrUnsupportedArch reports an architecture without filter support.
	ErrUnsupportedArch = errors.New("unsupported architecture")
	// ErrBadProgram reports bytes that are not a marshaled Program.
	ErrBadProgram = errors.New("malformed seccomp program")
)

// Program is an assembled seccomp filter, ready to load. A Program is
// immutable and safe for concurrent use. The Program of ProfileOff has no
// instructions and loading it does nothing.
type Program struct {
	filter []unix.SockFilter
}

// programCache holds compiled programs: the sandbox start path compiles the
// same few profiles over and over.
var programCache sync.Map // cacheKey → *Program

// Compile returns the filter for profile p. custom is the allow-list of
// ProfileCustom and must be empty for the other profiles. Results are
// cached per (profile, set of custom names) for the life of the process.
func Compile(p Profile, custom []string) (*Program, error) {
	key := cacheKey(p, custom)
	if prog, ok := programCache.Load(key); ok {
		return prog.(*Program), nil
	}
	prog, err := compile(p, custom)
	if err != nil {
		return nil, err
	}
	actual, _ := programCache.LoadOrStore(key, prog)
	return actual.(*Program), nil
}

// cacheKey identifies a compilation: the order of custom names is irrelevant.
func cacheKey(p Profile, custom []string) string {
	names := slices.Clone(custom)
	slices.Sort(names)
	return string(p) + "\x00" + strings.Join(slices.Compact(names), ",")
}

// compile builds the program without the cache.
func compile(p Profile, custom []string) (*Program, error) {
	t, err := hostTarget()
	if err != nil {
		return nil, err
	}
	def, err := definitionFor(p, custom, t)
	if err != nil {
		return nil, err
	}
	if def == nil {
		return &Program{}, nil
	}
	filter, err := assemble(def, t)
	if err != nil {
		return nil, fmt.Errorf("seccomp: assemble %s profile: %w", p, err)
	}
	return &Program{filter: filter}, nil
}

// definitionFor returns the validated definition of a profile, or nil for
// ProfileOff.
func definitionFor(p Profile, custom []string, t *target) (*definition, error) {
	if p != ProfileCustom && len(custom) > 0 {
		return nil, fmt.Errorf("seccomp: %w: syscall list given with profile %q", ErrUnknownProfile, p)
	}
	var def *definition
	switch p {
	case ProfileOff:
		return nil, nil
	case ProfileBasic:
		def = basicDefinition()
	case ProfileStrict:
		def = strictDefinition()
	case ProfileCustom:
		var err error
		if def, err = customDefinition(custom, t); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("seccomp: %w: %q", ErrUnknownProfile, p)
	}
	if err := def.validate(); err != nil {
		return nil, fmt.Errorf("seccomp: %s profile: %w", p, err)
	}
	return def, nil
}

// Empty reports whether the program has no filter (ProfileOff).
func (p *Program) Empty() bool { return len(p.filter) == 0 }

// Instructions returns a copy of the BPF instructions.
func (p *Program) Instructions() []unix.SockFilter { return slices.Clone(p.filter) }

// Wire format: magic, instruction count (uint32), then per instruction
// code (uint16), jt, jf (uint8), k (uint32), all little-endian.
const (
	wireMagic    = "KSB1"
	wireHeader   = len(wireMagic) + 4
	wireInsnSize = 8
)

// MarshalBinary encodes the program so a parent can compile once and pass
// the bytes to a sandbox init (through a pipe, for example).
func (p *Program) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, wireHeader+wireInsnSize*len(p.filter))
	b = append(b, wireMagic...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(p.filter)))
	for _, ins := range p.filter {
		b = binary.LittleEndian.AppendUint16(b, ins.Code)
		b = append(b, ins.Jt, ins.Jf)
		b = binary.LittleEndian.AppendUint32(b, ins.K)
	}
	return b, nil
}

// UnmarshalProgram decodes bytes made by MarshalBinary. It checks the
// framing and that a non-empty program ends in a return; the kernel
// verifies the rest when the program is loaded.
func UnmarshalProgram(b []byte) (*Program, error) {
	if len(b) < wireHeader || string(b[:len(wireMagic)]) != wireMagic {
		return nil, fmt.Errorf("seccomp: %w: bad header", ErrBadProgram)
	}
	n := binary.LittleEndian.Uint32(b[len(wireMagic):])
	if n > unix.BPF_MAXINSNS || len(b) != wireHeader+wireInsnSize*int(n) {
		return nil, fmt.Errorf("seccomp: %w: %d instructions in %d bytes", ErrBadProgram, n, len(b))
	}
	filter := make([]unix.SockFilter, n)
	for i := range filter {
		w := b[wireHeader+wireInsnSize*i:]
		filter[i] = unix.SockFilter{
			Code: binary.LittleEndian.Uint16(w),
			Jt:   w[2],
			Jf:   w[3],
			K:    binary.LittleEndian.Uint32(w[4:]),
		}
	}
	if n > 0 && filter[n-1].Code != unix.BPF_RET|unix.BPF_K {
		return nil, fmt.Errorf("seccomp: %w: last instruction is not a return", ErrBadProgram)
	}
	return &Program{filter: filter}, nil
}
