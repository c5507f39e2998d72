package main

import (
	"context"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/kavach-sandbox/kavach/audit"
	"github.com/kavach-sandbox/kavach/quarantine"
)

// openQuarantine opens the store in dir, or the default one.
func openQuarantine(dir string) (*quarantine.Store, error) {
	if dir == "" {
		d, err := quarantine.DefaultDir()
		if err != nil {
			return nil, err
		}
		dir = d
	}
	return quarantine.Open(dir)
}

func newQuarantineCmd() *cobra.Command {
	var dir, auditFile string
	cmd := &cobra.Command{
		Use:   "quarantine",
		Short: "Review output the gate quarantined: list, show, approve, reject, release",
		Args:  cobra.ArbitraryArgs,
		RunE:  groupRun,
	}
	cmd.PersistentFlags().StringVar(&dir, "dir", "", "quarantine store (default $KAVACH_STATE_DIR/quarantine, else $XDG_STATE_HOME/kavach/quarantine, else ~/.local/state/kavach/quarantine)")
	cmd.PersistentFlags().StringVar(&auditFile, "audit", "", "record decisions in this audit chain (key: KAVACH_AUDIT_KEY or the file KAVACH_AUDIT_KEY_FILE names)")
	store := func() (*quarantine.Store, error) {
		s, err := openQuarantine(dir)
		if err != nil {
			return nil, exitWith(exitKavachError, err)
		}
		return s, nil
	}
	cmd.AddCommand(&cobra.Command{
		Use: "list", Short: "List quarantined items", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := store()
			if err != nil {
				return err
			}
			items, err := s.List(cmd.Context())
			if err != nil {
				return exitWith(exitKavachError, err)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSTATUS\tSANDBOX\tCREATED\tFINDINGS\tSIZE")
			for _, it := range items {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\n", it.ID, it.Status, it.SandboxID,
					it.Created.Format("2006-01-02T15:04:05Z07:00"), len(it.Findings), it.Size)
			}
			return tw.Flush()
		},
	})
	decide := func(use, short string, do func(*quarantine.Store, *cobra.Command, string) (quarantine.Item, error)) *cobra.Command {
		return &cobra.Command{
			Use: use + " ID", Short: short, Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				s, err := store()
				if err != nil {
					return err
				}
				it, err := do(s, cmd, args[0])
				if err != nil {
					return exitWith(exitKavachError, err)
				}
				if use != "show" {
					if err := auditDecision(cmd.Context(), auditFile, "quarantine."+use, it); err != nil {
						return exitWith(exitKavachError, err)
					}
				}
				return writeJSON(cmd.OutOrStdout(), it)
			},
		}
	}
	cmd.AddCommand(
		decide("show", "Show an item's metadata (never its content)", func(s *quarantine.Store, c *cobra.Command, id string) (quarantine.Item, error) {
			return s.Show(c.Context(), id)
		}),
		decide("approve", "Approve an item so that it can be released", func(s *quarantine.Store, c *cobra.Command, id string) (quarantine.Item, error) {
			return s.Approve(c.Context(), id)
		}),
		decide("reject", "Reject an item and delete its content", func(s *quarantine.Store, c *cobra.Command, id string) (quarantine.Item, error) {
			return s.Reject(c.Context(), id)
		}),
		newReleaseCmd(store),
	)
	return cmd
}

func newReleaseCmd(store func() (*quarantine.Store, error)) *cobra.Command {
	var to, stream string
	cmd := &cobra.Command{
		Use: "release ID --to PATH", Short: "Write an approved item's stream to PATH (- for stdout)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := store()
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if to != "-" {
				f, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
				if err != nil {
					return exitWith(exitKavachError, err)
				}
				defer f.Close()
				w = f
			}
			if err := s.Release(cmd.Context(), args[0], stream, w); err != nil {
				if to != "-" {
					os.Remove(to)
				}
				return exitWith(exitKavachError, err)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "destination file (created, mode 0600), or - for stdout")
	cmd.Flags().StringVar(&stream, "stream", "stdout", "which stream: stdout, stderr, or file:PATH for a quarantined export")
	_ = cmd.MarkFlagRequired("to")
	return cmd
}

// auditDecision records a quarantine decision (never the content).
func auditDecision(ctx context.Context, file, typ string, it quarantine.Item) error {
	if file == "" {
		return nil
	}
	key, err := audit.LoadKey(os.Getenv("KAVACH_AUDIT_KEY_FILE"))
	if err != nil {
		return fmt.Errorf("--audit: %w", err)
	}
	defer clear(key)
	log, err := audit.Open(file, key)
	if err != nil {
		return fmt.Errorf("--audit: %w", err)
	}
	defer log.Close()
	_, err = log.Append(ctx, typ, it.SandboxID, map[string]any{
		"quarantine_id": it.ID, "status": it.Status, "sha256": it.SHA256, "findings": it.Findings})
	return err
}
