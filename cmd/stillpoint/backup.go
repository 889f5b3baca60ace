package main

import (
	"github.com/spf13/cobra"
)

func init() { subcommands = append(subcommands, newBackupCmd) }

// backupSubcommands are added under `stillpoint backup` by each backup
// file's init (plan, run, list, show), so files do not collide.
var backupSubcommands []func() *cobra.Command

func newBackupCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "backup",
		Short: "Back up Ledger and Auditor databases inside one certified pause",
		Long: `A backup is a pause with hooks, in the Scalar DL backup guide's order: pause
the Ledger cluster, run the Ledger databases' hooks, then the Auditor
databases' hooks, unpause, then run the after hooks with the restore point.

A backup plan (stored in the coordinator, replicated by Raft) says which
clusters to pause, which hooks to run in which order, and which databases
the backup covers — so that 'stillpoint restore plan BACKUP_ID' can say what
to restore, and to which time. Hooks are only NAMED in a plan; their
command lines live in the config file of the agent that runs them.`,
		Example: `  stillpoint backup plan example > plan.yaml
  stillpoint backup plan set -f plan.yaml
  stillpoint backup plan list`,
		Args: cobra.NoArgs,
	}
	for _, f := range backupSubcommands {
		cmd.AddCommand(f())
	}
	return cmd
}
