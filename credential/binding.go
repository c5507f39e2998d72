package credential

import (
	"fmt"
	"strconv"
	"strings"
)

// MaxFD is the highest file descriptor number a secret can be injected on.
const MaxFD = 255

// Method is how a secret reaches the sandboxed process.
type Method int

const (
	// MethodEnv sets an environment variable of the payload.
	MethodEnv Method = iota + 1
	// MethodStdin writes the value to the payload's standard input.
	MethodStdin
	// MethodFD hands the payload the read end of a pipe, at a chosen file
	// descriptor (3 or higher), into which kavach writes the value.
	MethodFD
	// MethodProxy leaves the value outside the sandbox; the egress proxy
	// substitutes it into requests to the listed hosts.
	MethodProxy
)

// String returns the CLI spelling of m: "env", "stdin", "fd" or "proxy".
func (m Method) String() string {
	switch m {
	case MethodEnv:
		return "env"
	case MethodStdin:
		return "stdin"
	case MethodFD:
		return "fd"
	case MethodProxy:
		return "proxy"
	}
	return "Method(" + strconv.Itoa(int(m)) + ")"
}

// Binding asks for one secret to be injected by one method.
type Binding struct {
	// Name is the secret's name in the Store.
	Name string
	// Method is the injection channel.
	Method Method
	// EnvVar is the variable to set (MethodEnv).
	EnvVar string
	// FD is the payload's file descriptor number, >= 3 (MethodFD).
	FD int
	// Hosts are the hosts the proxy substitutes the value for (MethodProxy).
	Hosts []string
}

// String returns the CLI form of b, for example "TOKEN=fd:3".
func (b Binding) String() string {
	switch b.Method {
	case MethodEnv:
		return b.Name + "=env:" + b.EnvVar
	case MethodFD:
		return b.Name + "=fd:" + strconv.Itoa(b.FD)
	case MethodProxy:
		return b.Name + "=proxy:" + strings.Join(b.Hosts, ",")
	}
	return b.Name + "=" + b.Method.String()
}

// Validate checks that b is complete and consistent.
func (b Binding) Validate() error {
	if err := checkName(b.Name); err != nil {
		return err
	}
	switch b.Method {
	case MethodEnv:
		return checkEnvVar(b.EnvVar)
	case MethodStdin:
		return nil
	case MethodFD:
		if b.FD < 3 || b.FD > MaxFD {
			return fmt.Errorf("%w: fd %d out of range 3..%d", ErrSyntax, b.FD, MaxFD)
		}
		return nil
	case MethodProxy:
		return checkHosts(b.Hosts)
	}
	return fmt.Errorf("%w: unknown injection method %d", ErrSyntax, int(b.Method))
}

// ParseBinding parses the CLI form of --secret:
//
//	NAME=env:VAR     environment variable VAR ("NAME=env" means VAR=NAME)
//	NAME=stdin       standard input
//	NAME=fd:N        pipe on file descriptor N (3..MaxFD)
//	NAME=proxy:HOST[,HOST...]  egress proxy substitution for these hosts
func ParseBinding(s string) (Binding, error) {
	name, spec, ok := strings.Cut(s, "=")
	if !ok {
		return Binding{}, fmt.Errorf("%w: --secret: missing '=' (want NAME=env:VAR|stdin|fd:N|proxy:HOSTS)", ErrSyntax)
	}
	if err := checkName(name); err != nil {
		return Binding{}, fmt.Errorf("--secret: %w", err)
	}
	method, arg, hasArg := strings.Cut(spec, ":")
	b := Binding{Name: name}
	switch method {
	case "env":
		b.Method, b.EnvVar = MethodEnv, arg
		if !hasArg {
			b.EnvVar = name
		}
	case "stdin":
		if hasArg {
			return Binding{}, fmt.Errorf("%w: --secret %s: stdin takes no argument", ErrSyntax, name)
		}
		b.Method = MethodStdin
	case "fd":
		fd, err := parseFD(arg)
		if err != nil {
			return Binding{}, fmt.Errorf("--secret %s: %w", name, err)
		}
		b.Method, b.FD = MethodFD, fd
	case "proxy":
		b.Method, b.Hosts = MethodProxy, strings.Split(arg, ",")
	default:
		return Binding{}, fmt.Errorf("%w: --secret %s: unknown method (want env, stdin, fd or proxy)", ErrSyntax, name)
	}
	if err := b.Validate(); err != nil {
		return Binding{}, fmt.Errorf("--secret %s: %w", name, err)
	}
	return b, nil
}

// parseFD accepts a plain decimal file descriptor number in 3..MaxFD.
func parseFD(s string) (int, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" || len(s) > 4 {
		return 0, fmt.Errorf("%w: fd is not a decimal number", ErrSyntax)
	}
	fd, _ := strconv.Atoi(s)
	if fd < 3 || fd > MaxFD {
		return 0, fmt.Errorf("%w: fd %d out of range 3..%d (0-2 are the standard streams)", ErrSyntax, fd, MaxFD)
	}
	return fd, nil
}

// ParseSourceSpec parses the CLI form of --secret-from, NAME=env:HOSTVAR or
// NAME=file:PATH. Values cannot be given literally on the command line,
// where they would be visible in the process list.
func ParseSourceSpec(s string) (string, Source, error) {
	name, spec, ok := strings.Cut(s, "=")
	if !ok {
		return "", Source{}, fmt.Errorf("%w: --secret-from: missing '=' (want NAME=env:VAR|file:PATH)", ErrSyntax)
	}
	if err := checkName(name); err != nil {
		return "", Source{}, fmt.Errorf("--secret-from: %w", err)
	}
	kind, arg, _ := strings.Cut(spec, ":")
	switch {
	case kind == "env" && checkEnvVar(arg) == nil:
		return name, FromEnv(arg), nil
	case kind == "file" && arg != "":
		return name, FromFile(arg), nil
	case kind == "env" || kind == "file":
		return "", Source{}, fmt.Errorf("%w: --secret-from %s: %s needs a valid argument", ErrSyntax, name, kind)
	}
	return "", Source{}, fmt.Errorf("%w: --secret-from %s: unknown source (want env:VAR or file:PATH)", ErrSyntax, name)
}

// checkName accepts secret names of letters, digits, '_', '-' and '.'.
func checkName(name string) error {
	if name == "" || len(name) > 128 {
		return fmt.Errorf("%w: secret name must be 1 to 128 characters", ErrSyntax)
	}
	for _, c := range []byte(name) {
		if !isAlnum(c) && c != '_' && c != '-' && c != '.' {
			return fmt.Errorf("%w: secret names may only contain letters, digits, '_', '-' and '.'", ErrSyntax)
		}
	}
	return nil
}

// checkEnvVar accepts POSIX-style variable names: [A-Za-z_][A-Za-z0-9_]*.
func checkEnvVar(v string) error {
	errBad := fmt.Errorf("%w: environment variable names must match [A-Za-z_][A-Za-z0-9_]*", ErrSyntax)
	if v == "" || (v[0] >= '0' && v[0] <= '9') {
		return errBad
	}
	for _, c := range []byte(v) {
		if !isAlnum(c) && c != '_' {
			return errBad
		}
	}
	return nil
}

// checkHosts accepts a non-empty list of host or host:port entries.
func checkHosts(hosts []string) error {
	if len(hosts) == 0 {
		return fmt.Errorf("%w: proxy needs at least one host", ErrSyntax)
	}
	for _, h := range hosts {
		if h == "" {
			return fmt.Errorf("%w: empty host in proxy host list", ErrSyntax)
		}
		for _, c := range []byte(h) {
			if !isAlnum(c) && !strings.ContainsRune(".-:[]*_", rune(c)) {
				return fmt.Errorf("%w: invalid character in proxy host", ErrSyntax)
			}
		}
	}
	return nil
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
