package main

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime/debug"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/kavach-sandbox/kavach"
	"github.com/kavach-sandbox/kavach/backend"
	"github.com/kavach-sandbox/kavach/policy"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "kavach",
		Short: "Run untrusted code in a sandbox and score how strongly it is confined",
		Long: `kavach runs a command inside an isolation backend (process namespaces with
seccomp and Landlock, OCI runtimes, gVisor, WebAssembly, ...), passes its output
through the externalization gate, and reports a strength score from 0 to 100.

Exit status of "kavach run": the command's own code; 124 on timeout; 123 when
the gate blocked or quarantined the output; 125 for a kavach error; 126 when the
command is not executable; 127 when it is not found; 128+N when killed by
signal N (137 for an out-of-memory kill). When kavach itself gets SIGINT or
SIGTERM, it destroys the sandbox and exits 130 or 143.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newRunCmd(), newScoreCmd(), newBackendsCmd(), newPolicyCmd(), newVersionCmd(), newBenchCmd(), newScanCmd(), newAuditCmd(), newQuarantineCmd())
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return exitWith(exitKavachError, err) })
	return root
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newScoreCmd() *cobra.Command {
	var backendName, policyName string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "score",
		Short: "Print the declared strength score of a backend and policy, e.g. 63 (standard)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			name, err := backend.ParseName(backendName)
			if err != nil {
				return exitWith(exitKavachError, err)
			}
			p, err := policy.Resolve(policyName)
			if err != nil {
				return exitWith(exitKavachError, err)
			}
			sc, err := kavach.Score(name, p)
			if err != nil {
				return exitWith(exitKavachError, err)
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), sc)
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), sc)
			return err
		},
	}
	cmd.Flags().StringVarP(&backendName, "backend", "b", string(kavach.DefaultBackend), "backend name")
	cmd.Flags().StringVarP(&policyName, "policy", "p", "strict", "preset name (minimal, basic, strict) or policy file")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the score with its modifier breakdown as JSON")
	return cmd
}

func newBackendsCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "backends",
		Short: "List every backend with its availability on this host, base score and reason",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			list := kavach.Backends(cmd.Context())
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), list)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "BACKEND\tAVAILABLE\tBASE\tREASON")
			for _, b := range list {
				avail := "no"
				if b.Available {
					avail = "yes"
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", b.Name, avail, b.BaseScore, b.Reason)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array")
	return cmd
}

func newPolicyCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "policy", Short: "Inspect policies", Args: cobra.ArbitraryArgs, RunE: groupRun}
	cmd.AddCommand(&cobra.Command{
		Use:   "show NAME|FILE",
		Short: "Print a preset or a policy file, fully resolved, as a JSON policy file that loads back unchanged",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := policy.Resolve(args[0])
			if err != nil {
				return exitWith(exitKavachError, err)
			}
			return writeJSON(cmd.OutOrStdout(), policy.ToFile(p))
		},
	})
	return cmd
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the kavach version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), "kavach", versionString())
			return err
		},
	}
}

func versionString() string {
	bi, _ := debug.ReadBuildInfo()
	return formatVersion(version, bi)
}

// formatVersion is "VERSION" or "VERSION (REV)" or "VERSION (REV, dirty)":
// VERSION is the one set with -ldflags, else the module's, with "(devel)"
// (a build outside a module version) shown as "dev". REV (12 hex digits)
// and "dirty" come from the VCS stamp when the version does not already
// carry them, as a pseudo-version such as
// v0.0.0-20261127145604-5cce2c6a4142+dirty does.
func formatVersion(ldVersion string, bi *debug.BuildInfo) string {
	v := ldVersion
	if v == "" && bi != nil {
		v = bi.Main.Version
	}
	if v == "" || v == "(devel)" {
		v = "dev"
	}
	if bi == nil {
		return v
	}
	var rev string
	var dirty bool
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev == "" || strings.Contains(v, rev) {
		return v
	}
	if dirty && !strings.Contains(v, "+dirty") {
		return v + " (" + rev + ", dirty)"
	}
	return v + " (" + rev + ")"
}

// groupRun runs a command that only groups subcommands: without arguments
// it prints its help; an argument that names no subcommand is an error
// (exit 125), as an unknown command of kavach itself is.
func groupRun(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return cmd.Help()
	}
	return fmt.Errorf("unknown command %q for %q", args[0], cmd.CommandPath())
}
