package policy_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/kavach-sandbox/kavach/policy"
)

// maxErrorLen bounds an error message: what a policy file supplies is
// echoed clipped, so a hostile file cannot make the message large.
const maxErrorLen = 400

// checkPrintable fails when msg holds a control character (terminal escapes
// from a hostile file must not reach an operator's screen) or is longer
// than maxErrorLen.
func checkPrintable(t *testing.T, msg string) {
	t.Helper()
	checkErrorText(t, msg, maxErrorLen)
}

// checkErrorText fails when msg holds a control character or is longer
// than max bytes.
func checkErrorText(t *testing.T, msg string, max int) {
	t.Helper()
	for i := 0; i < len(msg); i++ {
		if c := msg[i]; c < 0x20 || c == 0x7f {
			t.Errorf("error %q contains control character %#02x", msg, c)
			return
		}
	}
	if len(msg) > max {
		t.Errorf("error is %d bytes long (at most %d): %.200q", len(msg), max, msg)
	}
}

// TestValidateQuotesInput feeds a terminal escape through every string that
// Validate can echo and requires it to come out quoted.
func TestValidateQuotesInput(t *testing.T) {
	const esc = "\x1b]0;pwned\x07\x1b[2J"
	mount := func(src, dst, mode string) func(*policy.Policy) {
		return func(p *policy.Policy) {
			p.Filesystem.Mounts = []policy.Mount{{Source: src, Dest: dst, Mode: policy.Access(mode)}}
		}
	}
	tests := []struct {
		name string
		mod  func(*policy.Policy)
	}{
		{"seccomp", func(p *policy.Policy) { p.Seccomp = 200 }},
		{"syscall", func(p *policy.Policy) { p.Seccomp, p.SeccompAllow = policy.SeccompCustom, []string{"a b" + esc} }},
		{"syscall control", func(p *policy.Policy) { p.Seccomp, p.SeccompAllow = policy.SeccompCustom, []string{esc} }},
		{"network mode", func(p *policy.Policy) { p.Network.Mode = 200 }},
		{"host", func(p *policy.Policy) {
			p.Network = policy.Network{Mode: policy.NetworkAllowlist, Allow: []string{"a@" + esc}}
		}},
		{"host control", func(p *policy.Policy) {
			p.Network = policy.Network{Mode: policy.NetworkAllowlist, Allow: []string{esc}}
		}},
		{"duplicate host", func(p *policy.Policy) {
			p.Network = policy.Network{Mode: policy.NetworkAllowlist, Allow: []string{"a" + esc, "A" + esc}}
		}},
		{"mount source", mount("rel"+esc, "/d", "ro")},
		{"mount dest", mount("/s", "rel"+esc, "ro")},
		{"mount mode", mount("/s", "/d", esc)},
		{"duplicate mount", func(p *policy.Policy) {
			p.Filesystem.Mounts = []policy.Mount{{Source: "/a", Dest: "/d" + esc, Mode: "ro"}, {Source: "/b", Dest: "/d" + esc + "/", Mode: "ro"}}
		}},
		{"workdir", func(p *policy.Policy) { p.Workdir = "rel" + esc }},
		{"hostname", func(p *policy.Policy) { p.Hostname = "a b" + esc }},
		{"env name", func(p *policy.Policy) { p.Env = map[string]string{"A=" + esc: "v"} }},
		{"env value", func(p *policy.Policy) { p.Env = map[string]string{esc: "v\x00"} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := policy.Strict()
			tt.mod(&p)
			err := p.Validate()
			if err == nil {
				t.Fatal("no error")
			}
			checkPrintable(t, err.Error())
		})
	}
	if _, err := policy.Preset(esc); err == nil {
		t.Error("Preset: no error")
	} else {
		checkPrintable(t, err.Error())
	}
	if _, err := policy.ParseSeccomp(esc); err == nil {
		t.Error("ParseSeccomp: no error")
	} else {
		checkPrintable(t, err.Error())
	}
	if _, err := policy.ParseNetworkMode(esc); err == nil {
		t.Error("ParseNetworkMode: no error")
	} else {
		checkPrintable(t, err.Error())
	}
}

// TestDecodeErrorsClipInput checks that an error echoes at most a short,
// quoted prefix of the offending text, however long the text is.
func TestDecodeErrorsClipInput(t *testing.T) {
	long := strings.Repeat("9", 100_000)
	huge := strings.Repeat("7", 8<<20)
	tests := []struct {
		name string
		in   string
	}{
		{"long integer", `{"limits":{"pids":` + long + `}}`},
		{"long negative integer", `{"limits":{"memory":-` + long + `}}`},
		{"long fraction as integer", `{"limits":{"pids":1.` + long + `}}`},
		{"long float", `{"limits":{"cpus":` + long + `e` + long + `}}`},
		{"huge size string", `{"limits":{"memory":"` + huge + `"}}`},
		{"long size string", `{"limits":{"memory":"` + long + `X"}}`},
		{"long duration", `{"limits":{"timeout":"` + long + `x"}}`},
		{"long duration with escape", `{"limits":{"timeout":"\u001b` + long + `"}}`},
		{"long unknown key", `{"` + long + `":1}`},
		{"long nested unknown key", `{"limits":{"a.` + long + `":1}}`},
		{"long duplicate env", `{"env":{"` + long + `":"1","` + long + `":"2"}}`},
		{"long env value type", `{"env":{"` + long + `":[1]}}`},
		{"long extends", `{"extends":"` + long + `"}`},
		{"long seccomp", `{"seccomp":"` + long + `"}`},
		{"long host", `{"network":{"allow":["@` + long + `"]}}`},
		{"long hostname", `{"hostname":"` + long + `"}`},
		{"long workdir", `{"workdir":"` + long + `"}`},
		{"long mount", `{"filesystem":{"mounts":[{"source":"/a","dest":"/a","mode":"` + long + `"}]}}`},
		{"escape in env name", `{"env":{"\u001b[2J":"1","\u001b[2J":"2"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := policy.ParseJSON([]byte(tt.in))
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, policy.ErrInvalid) {
				t.Errorf("error does not wrap ErrInvalid: %.200q", err)
			}
			checkPrintable(t, err.Error())
		})
	}
	for _, in := range []string{long + "X", huge, "\x1b[2J" + long} {
		if _, err := policy.ParseSize(in); err == nil {
			t.Error("ParseSize: no error")
		} else {
			checkPrintable(t, err.Error())
		}
	}
	var s policy.Size
	if err := s.UnmarshalJSON([]byte(`{"a":"` + long + `"}`)); err == nil {
		t.Error("Size.UnmarshalJSON: no error")
	} else {
		checkPrintable(t, err.Error())
	}
	var d policy.Duration
	if err := d.UnmarshalJSON([]byte(`"` + long + `x"`)); err == nil {
		t.Error("Duration.UnmarshalJSON: no error")
	} else {
		checkPrintable(t, err.Error())
	}
}

// TestYAMLErrorsClipInput is TestDecodeErrorsClipInput for what only YAML
// can spell: long keys and tags, and long text in the YAML parser's errors.
func TestYAMLErrorsClipInput(t *testing.T) {
	long := strings.Repeat("k", 100_000)
	for _, in := range []string{
		"env: {" + long + ": !!binary AA==}\n",
		"env: {\"\\e" + long + "\": !!binary AA==}\n",
		"name: !" + long + " x\n",
		"name: *" + long + "\n",
		long + ": 1\n",
		"limits: {memory: 0x" + long + "}\n",
		"limits: {pids: " + strings.Repeat("1", 100_000) + ".5}\n",
	} {
		_, err := policy.ParseYAML([]byte(in))
		if err == nil {
			t.Errorf("%.40q: no error", in)
			continue
		}
		checkPrintable(t, err.Error())
	}
}

// TestErrorOrder: a file's problems are reported in the order Validate
// checks the fields (seccomp, filesystem, network, limits, ...), whether a
// value is unknown (an unknown network mode) or impossible.
func TestErrorOrder(t *testing.T) {
	for _, tc := range []struct{ in, field string }{
		{`{"network":{"mode":"bogus"},"filesystem":{"tmp_size":-1}}`, "filesystem.tmp_size"},
		{`{"network":{"mode":"bogus"},"seccomp":"custom"}`, "seccomp_allow"},
		{`{"network":{"mode":"bogus"},"filesystem":{"mounts":[{"source":"rel","dest":"/d","mode":"ro"}]}}`, "filesystem.mounts[0].source"},
		{`{"network":{"mode":"bogus"},"workdir":"rel"}`, "network.mode"},
		{`{"seccomp":"bogus","filesystem":{"tmp_size":-1}}`, "seccomp"},
	} {
		_, err := policy.ParseJSON([]byte(tc.in))
		var fe *policy.FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("%s: %v, want an error naming %s", tc.in, err, tc.field)
		}
	}
}
