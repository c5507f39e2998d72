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

// Exit statuses of kavach itself (README, "Command line").
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

// interruptedError is the cause of the context of a command that SIGINT or
// SIGTERM interrupted.
type interruptedError struct{ sig syscall.Signal }

func (e *interruptedError) Error() string { return "interrupted" }

// interruptSignal is the signal that interrupted ctx, or 0.
func interruptSignal(ctx context.Context) syscall.Signal {
	var ie *interruptedError
	if errors.As(context.Cause(ctx), &ie) {
		return ie.sig
	}
	return 0
}

func main() {
	if kavach.Init() {
		return // never reached: Init runs sandbox init code and exits
	}
	// The first SIGINT or SIGTERM cancels the command, which then cleans up
	// (sandboxes are destroyed with a context that is not cancelled); later
	// ones are ignored so that a second ^C does not cut the cleanup short.
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		for s := range sigs {
			if sig, ok := s.(syscall.Signal); ok {
				cancel(&interruptedError{sig: sig})
			}
		}
	}()
	code := run(ctx, os.Args[1:])
	signal.Stop(sigs)
	os.Exit(code)
}

// run executes the command line and returns the process exit status.
func run(ctx context.Context, args []string) int {
	root := newRootCmd()
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if sig := interruptSignal(ctx); sig != 0 {
		// Whatever the command returned, it was cut short: its error is
		// most likely "context canceled", which says nothing useful.
		fmt.Fprintln(os.Stderr, "kavach: interrupted")
		return 128 + int(sig)
	}
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
