// Command kavach runs commands in sandboxes and reports how strongly they
// were confined. See `kavach --help`.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/kavach-sandbox/kavach"
)

// Exit statuses of kavach itself (SPEC §7).
const (
	exitGate         = 123
	exitKavachError  = 125
	exitVerifyFailed = 1
)

// exitError carries an exit status out of a command.
type exitError struct {
	code int
	err  error // printed with the "kavach: " prefix when non-nil
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

func exitWith(code int, err error) error { return &exitError{code: code, err: err} }

func main() {
	if kavach.Init() {
		return // never reached: Init runs sandbox init code and exits
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

// run executes the command line and returns the process exit status.
func run(ctx context.Context, args []string) int {
	root := newRootCmd()
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintln(os.Stderr, "kavach:", ee.err)
		}
		return ee.code
	}
	fmt.Fprintln(os.Stderr, "kavach:", err)
	return exitKavachError
}
