package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/stillpoint-dev/stillpoint/internal/version"
)

// subcommands is filled by each subcommand file's init, so files do not
// collide in one list.
var subcommands []func() *cobra.Command

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "stillpoint",
		Short: "Transactionally consistent backup points for Scalar DL clusters",
		Long: `Stillpoint pauses a Scalar DL (or any scalar-admin) cluster only when every
node's clock is measured to be within bounds, holds exactly as long as the
measured uncertainty requires, unpauses, and records a restore point with its
± bound.

One binary runs the coordinator servers, the sidecar agents, the operator CLI,
a simulated node and a whole dev cluster.

Commands that talk to the coordinator take --addr (or STILLPOINT_ADDR) and
-o json, which prints the API's message (protojson, .proto field names).

` + exitCodesHelp,
		Example: `  stillpoint dev                       # a whole cluster in one process (mTLS, ACLs on)
  export STILLPOINT_ADDR=... STILLPOINT_CA=... STILLPOINT_CERT=... STILLPOINT_KEY=... STILLPOINT_TOKEN=...
                                       # (in another terminal: the line dev prints, or source DIR/env)
  stillpoint pause --cluster ledger    # print a restore point`,
		Version:       version.Get().String(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetVersionTemplate("stillpoint {{.Version}}\n")
	root.AddCommand(newVersionCmd())
	for _, f := range subcommands {
		root.AddCommand(f())
	}
	finishTree(root)
	return root
}

func newVersionCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the stillpoint version, commit and Go version",
		Long: `Print the version this binary was built as (make build stamps it from git
describe), the commit and the Go toolchain; the same line as --version.`,
		Example: `  stillpoint version
  stillpoint version -o json | jq -r .commit`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			info := version.Get()
			switch output {
			case outputJSON:
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(info)
			case "", outputTable, "text":
				_, err := fmt.Fprintf(cmd.OutOrStdout(), "stillpoint %s\n", info)
				return err
			}
			return usagef("--output %q: want text or json", output)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}
