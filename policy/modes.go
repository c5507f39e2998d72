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

var seccompText = [...]string{SeccompOff: "off", SeccompBasic: "basic", SeccompStrict: "strict", SeccompCustom: "custom"}

// ParseSeccomp returns the profile named s: off, basic, strict or custom.
// An unknown name is an error wrapping ErrInvalid that names the field
// "seccomp".
func ParseSeccomp(s string) (SeccompProfile, error) {
	for p, name := range seccompText {
		if name == s && p != 0 {
			return SeccompProfile(p), nil
		}
	}
	return 0, invalid("seccomp", "unknown profile %s (want off, basic, strict or custom)", quote(s))
}

// String is the profile's name: "" when unset, SeccompProfile(n) when n is
// not a profile.
func (p SeccompProfile) String() string {
	if int(p) < len(seccompText) {
		return seccompText[p]
	}
	return "SeccompProfile(" + strconv.Itoa(int(p)) + ")"
}

// MarshalText encodes the profile's name ("" when unset).
func (p SeccompProfile) MarshalText() ([]byte, error) {
	if int(p) >= len(seccompText) {
		return nil, fmt.Errorf("%w: seccomp: %s", ErrInvalid, p)
	}
	return []byte(seccompText[p]), nil
}

// UnmarshalText decodes a profile's name; "" is unset.
func (p *SeccompProfile) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*p = 0
		return nil
	}
	v, err := ParseSeccomp(string(b))
	if err != nil {
		return err
	}
	*p = v
	return nil
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

var networkText = [...]string{NetworkOff: "off", NetworkOn: "on", NetworkAllowlist: "allowlist"}

// ParseNetworkMode returns the mode named s: off, on or allowlist. An
// unknown name is an error wrapping ErrInvalid that names the field
// "network.mode".
func ParseNetworkMode(s string) (NetworkMode, error) {
	for m, name := range networkText {
		if name == s && m != 0 {
			return NetworkMode(m), nil
		}
	}
	return 0, invalid("network.mode", "unknown mode %s (want off, on or allowlist)", quote(s))
}

// String is the mode's name: "" when unset, NetworkMode(n) when n is not a
// mode.
func (m NetworkMode) String() string {
	if int(m) < len(networkText) {
		return networkText[m]
	}
	return "NetworkMode(" + strconv.Itoa(int(m)) + ")"
}

// MarshalText encodes the mode's name ("" when unset).
func (m NetworkMode) MarshalText() ([]byte, error) {
	if int(m) >= len(networkText) {
		return nil, fmt.Errorf("%w: network.mode: %s", ErrInvalid, m)
	}
	return []byte(networkText[m]), nil
}

// UnmarshalText decodes a mode's name; "" is unset.
func (m *NetworkMode) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*m = 0
		return nil
	}
	v, err := ParseNetworkMode(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}
