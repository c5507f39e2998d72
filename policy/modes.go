package policy

import (
	"fmt"
	"strconv"
)

// SeccompProfile names a seccomp profile. Its zero value is unset, which
// Validate refuses; in JSON and YAML it is the profile's name.
type SeccompProfile uint8

// Seccomp profiles.
const (
	SeccompOff    SeccompProfile = iota + 1 // no filter
	SeccompBasic                            // deny-list of dangerous system calls
	SeccompStrict                           // allow-list of ordinary system calls
	SeccompCustom                           // allow-list given in Policy.SeccompAllow
)

var seccompEnum = enumNames{kind: "SeccompProfile", field: "seccomp", what: "profile",
	names: []string{SeccompOff: "off", SeccompBasic: "basic", SeccompStrict: "strict", SeccompCustom: "custom"},
	want:  "off, basic, strict or custom"}

// ParseSeccomp returns the profile named s: off, basic, strict or custom.
// An unknown name is an error wrapping ErrInvalid that names the field
// "seccomp".
func ParseSeccomp(s string) (SeccompProfile, error) {
	v, err := seccompEnum.parse(s)
	return SeccompProfile(v), err
}

// String is the profile's name: "" when unset, SeccompProfile(n) when n is
// not a profile.
func (p SeccompProfile) String() string { return seccompEnum.text(uint8(p)) }

// MarshalText encodes the profile's name ("" when unset).
func (p SeccompProfile) MarshalText() ([]byte, error) { return seccompEnum.marshal(uint8(p)) }

// UnmarshalText decodes a profile's name; "" is unset.
func (p *SeccompProfile) UnmarshalText(b []byte) error {
	return seccompEnum.unmarshal(b, (*uint8)(p))
}

// NetworkMode says how a sandbox may reach the network. Its zero value is
// unset, which Validate refuses; in JSON and YAML it is the mode's name.
type NetworkMode uint8

// Network modes.
const (
	NetworkOff       NetworkMode = iota + 1 // loopback only
	NetworkOn                               // the host's network, unrestricted
	NetworkAllowlist                        // only the hosts in Network.Allow, through the egress proxy
)

var networkEnum = enumNames{kind: "NetworkMode", field: "network.mode", what: "mode",
	names: []string{NetworkOff: "off", NetworkOn: "on", NetworkAllowlist: "allowlist"},
	want:  "off, on or allowlist"}

// ParseNetworkMode returns the mode named s: off, on or allowlist. An
// unknown name is an error wrapping ErrInvalid that names the field
// "network.mode".
func ParseNetworkMode(s string) (NetworkMode, error) {
	v, err := networkEnum.parse(s)
	return NetworkMode(v), err
}

// String is the mode's name: "" when unset, NetworkMode(n) when n is not a
// mode.
func (m NetworkMode) String() string { return networkEnum.text(uint8(m)) }

// MarshalText encodes the mode's name ("" when unset).
func (m NetworkMode) MarshalText() ([]byte, error) { return networkEnum.marshal(uint8(m)) }

// UnmarshalText decodes a mode's name; "" is unset.
func (m *NetworkMode) UnmarshalText(b []byte) error {
	return networkEnum.unmarshal(b, (*uint8)(m))
}

// enumNames are the names of an enum's values, indexed by value; value 0
// is unset and named "".
type enumNames struct {
	kind, field, what, want string
	names                   []string
}

func (e *enumNames) parse(s string) (uint8, error) {
	for v := 1; v < len(e.names); v++ { // 0 is unset
		if e.names[v] == s {
			return uint8(v), nil
		}
	}
	return 0, invalid(e.field, "unknown %s %s (want %s)", e.what, quote(s), e.want)
}

func (e *enumNames) text(v uint8) string {
	if int(v) < len(e.names) {
		return e.names[v]
	}
	return e.kind + "(" + strconv.Itoa(int(v)) + ")"
}

func (e *enumNames) marshal(v uint8) ([]byte, error) {
	if int(v) >= len(e.names) {
		return nil, fmt.Errorf("%w: %s: %s", ErrInvalid, e.field, e.text(v))
	}
	return []byte(e.names[v]), nil
}

func (e *enumNames) unmarshal(b []byte, v *uint8) error {
	if len(b) == 0 {
		*v = 0
		return nil
	}
	p, err := e.parse(string(b))
	if err != nil {
		return err
	}
	*v = p
	return nil
}
