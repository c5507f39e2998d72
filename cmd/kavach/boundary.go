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
			return done, fmt.Errorf("--secret %s: no value (give one with --secret-from %s=env:VAR|file:PATH): %w", bind.Name, bind.Name, err)
		}
		b.Secret(store, bind)
	}
	return done, nil
}

func newScanCmd() *cobra.Command {
	var asJSON bool
	return &cobra.Command{
		Use:   "scan [FILE|-]",
		Short: "Run the externalization gate over text; exit 123 when it would quarantine or block",
		Args:  cobra.MaximumNArgs(1),
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
			rep, err := g.ScanStream(cmd.Context(), name, in, io.Discard)
			if err != nil {
				return exitWith(exitKavachError, err)
			}
			out := cmd.OutOrStdout()
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
}

func newAuditCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Work with audit chains"}
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
