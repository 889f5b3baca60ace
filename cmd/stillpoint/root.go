package main

import (
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
a simulated node and a whole dev cluster.`,
		Example: `  stillpoint dev                       # a whole cluster in one process
  stillpoint pause --cluster ledger    # (in another terminal) print a restore point`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newVersionCmd())
	for _, f := range subcommands {
		root.AddCommand(f())
	}
	return root
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print the stillpoint version",
		Example: "  stillpoint version",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "stillpoint %s\n", version.Version)
			return err
		},
	}
}
