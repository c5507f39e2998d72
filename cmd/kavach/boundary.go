package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/kavach-sandbox/kavach"
	"github.com/kavach-sandbox/kavach/audit"
	"github.com/kavach-sandbox/kavach/credential"
	"github.com/kavach-sandbox/kavach/gate"
)

// addBoundary applies --gate, --audit, --secret and --secret-from. The
// returned function closes what it opened.
func addBoundary(ctx context.Context, b *kavach.Builder, f *runFlags) (func(), error) {
	closers := []func(){}
	done := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	switch f.gate {
	case "on", "":
		// Without a usable store, quarantined output is blocked for good;
		// only an explicitly named store that cannot be opened is an error.
		q, err := openQuarantine(f.quarantineDir)
		if err != nil && f.quarantineDir != "" {
			return done, fmt.Errorf("--quarantine-dir: %w", err)
		}
		if err == nil {
			b.Quarantine(q)
		}
	case "off":
		b.GateOff()
	default:
		return done, fmt.Errorf("--gate %q: want on or off", f.gate)
	}
	if f.audit != "" {
		key, err := audit.LoadKey(os.Getenv("KAVACH_AUDIT_KEY_FILE"))
		if err != nil {
			return done, fmt.Errorf("--audit: %w", err)
		}
		log, err := audit.Open(f.audit, key)
		clear(key)
		if err != nil {
			return done, fmt.Errorf("--audit: %w", err)
		}
		closers = append(closers, func() { log.Close() })
		b.Audit(log)
	}
	if len(f.secrets) == 0 {
		if len(f.secretFrom) > 0 {
			return done, fmt.Errorf("--secret-from given without --secret")
		}
		return done, nil
	}
	store := credential.NewStore()
	closers = append(closers, store.Close)
	for _, spec := range f.secretFrom {
		name, src, err := credential.ParseSourceSpec(spec)
		if err != nil {
			return done, fmt.Errorf("--secret-from: %w", err)
		}
		if err := store.Add(ctx, name, src); err != nil {
			return done, fmt.Errorf("--secret-from %s: %w", name, err)
		}
	}
	bound := map[string]bool{}
	for _, spec := range f.secrets {
		bind, err := credential.ParseBinding(spec)
		if err != nil {
			return done, fmt.Errorf("--secret: %w", err)
		}
		if bound[bind.Name] {
			return done, fmt.Errorf("--secret %s: given twice", bind.Name)
		}
		bound[bind.Name] = true
		if _, err := store.Get(bind.Name); err != nil {
			if err := addDefaultSource(ctx, store, bind.Name); err != nil {
				return done, err
			}
		}
		b.Secret(store, bind)
	}
	return done, nil
}

// addDefaultSource gives a --secret without a --secret-from its value from
// the host environment variable of the same name, as --secret-from
// NAME=env:NAME would.
func addDefaultSource(ctx context.Context, store *credential.Store, name string) error {
	hint := fmt.Sprintf("give one with --secret-from %s=env:VAR|file:PATH", name)
	_, src, err := credential.ParseSourceSpec(name + "=env:" + name)
	if err != nil {
		return fmt.Errorf("--secret %s: no value: %s is not an environment variable name (%s)", name, name, hint)
	}
	if _, ok := os.LookupEnv(name); !ok {
		return fmt.Errorf("--secret %s: no value: the host environment variable %s is not set (set it, or %s)", name, name, hint)
	}
	if err := store.Add(ctx, name, src); err != nil {
		return fmt.Errorf("--secret %s: %w", name, err)
	}
	return nil
}

func newScanCmd() *cobra.Command {
	var asJSON, redact bool
	cmd := &cobra.Command{
		Use:   "scan [FILE|-]",
		Short: "Run the externalization gate over text; exit 123 when it would quarantine or block",
		Long: `Run the externalization gate over a file or standard input and print its
findings and verdict. Exit status: 0 for pass or warn, 123 when the gate would
quarantine or block the text, 125 for an error.

With --redact, the gate's redacted copy of the text (every finding of warn or
worse replaced by [REDACTED:<rule>]) goes to standard output and the findings and verdict to
standard error, so that "kavach scan --redact" works as a filter.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var in io.Reader = cmd.InOrStdin()
			name := "stdin"
			if len(args) == 1 && args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return exitWith(exitKavachError, err)
				}
				defer f.Close()
				in, name = f, args[0]
			}
			g, err := gate.New(gate.DefaultPolicy())
			if err != nil {
				return exitWith(exitKavachError, err)
			}
			var text io.Writer = io.Discard
			out := cmd.OutOrStdout()
			if redact {
				text, out = out, cmd.ErrOrStderr()
			}
			rep, err := g.ScanStream(cmd.Context(), name, in, text)
			if err != nil {
				return exitWith(exitKavachError, err)
			}
			if asJSON {
				_ = writeJSON(out, rep)
			} else {
				for _, f := range rep.Findings {
					fmt.Fprintf(out, "%s\t%s\t%s\toffset %d\tlength %d\n", f.Severity, f.Rule, f.Stream, f.Offset, f.Length)
				}
				fmt.Fprintf(out, "verdict: %s\n", rep.Verdict)
			}
			if rep.Verdict == gate.VerdictBlock || rep.Verdict == gate.VerdictQuarantine {
				return exitWith(exitGate, nil)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the gate's report (verdict and findings) as JSON")
	cmd.Flags().BoolVar(&redact, "redact", false, "write the redacted text to stdout, and the findings and verdict to stderr")
	return cmd
}

func newAuditCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Work with audit chains", Args: cobra.ArbitraryArgs, RunE: groupRun}
	var keyFile string
	verify := &cobra.Command{
		Use:   "verify FILE",
		Short: "Verify an audit chain; names the first bad serial (key: KAVACH_AUDIT_KEY or --key-file)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			key, err := audit.LoadKey(keyFile)
			if err != nil {
				return exitWith(exitKavachError, err)
			}
			res, err := audit.VerifyFile(args[0], key)
			if err != nil {
				return exitWith(exitKavachError, err)
			}
			if !res.OK {
				fmt.Fprintf(cmd.OutOrStdout(), "FAIL: first bad serial %d: %s\n", res.FirstBadSerial, res.Reason)
				return exitWith(exitVerifyFailed, nil)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "OK: %d entries\n", res.Entries)
			return nil
		},
	}
	verify.Flags().StringVar(&keyFile, "key-file", os.Getenv("KAVACH_AUDIT_KEY_FILE"), "key file (mode 0600)")
	cmd.AddCommand(verify)
	return cmd
}
