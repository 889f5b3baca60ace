package main

import "github.com/spf13/cobra"

func init() { subcommands = append(subcommands, newBackupCmd) }

// backupSubcommands are added under `stillpoint backup` by other files'
// init (backup plan), so files do not collide.
var backupSubcommands []func() *cobra.Command

// newBackupCmd is the backup group.
func newBackupCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "backup",
		Short: "Run backups from plans (pause, hooks in order, unpause) and list the catalog",
		Long: `A backup is a pause with hooks, in the Scalar DL guide's order: pause the
plan's clusters, run the Ledger database hooks, then the Auditor database
hooks while every node is held, unpause, then run the 'after' hooks with the
restore point. Each hook is defined in the config of the agent that runs it.

A backup plan (stored in the coordinator, replicated by Raft) says which
clusters to pause, which hooks to run in which order, and which databases the
backup covers, so that 'stillpoint restore plan BACKUP_ID' can say what to
restore, and to which time. Start from 'stillpoint backup plan example'.`,
		Example: `  stillpoint backup plan set -f nightly.yaml
  stillpoint backup run --plan nightly
  stillpoint backup list --plan nightly
  stillpoint backup show op-20261202T031500.123Z-3f9a1c2d --tz Asia/Tokyo`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(backupRunSubcommands()...)
	for _, f := range backupSubcommands {
		cmd.AddCommand(f())
	}
	return cmd
}
