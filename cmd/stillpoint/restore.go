package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/stillpoint-dev/stillpoint/internal/plan"
	"github.com/stillpoint-dev/stillpoint/internal/timefmt"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

func init() { subcommands = append(subcommands, newRestoreCmd) }

func newRestoreCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "restore",
		Short: "Plan a restore of Ledger and Auditor databases from one backup",
		Long: `Stillpoint does not restore databases itself: it tells you what to restore,
from which artefact, and to which time, in the order the Scalar DL backup
guide prescribes — stop Ledger and Auditor, restore the Ledger databases,
then the Auditor databases, start both — and it checks that every artefact
comes from the same pause.`,
		Example: `  stillpoint restore plan op-20261202T031500.123Z-3f9a1c2d --tz Asia/Tokyo`,
		Args:    cobra.NoArgs,
	}
	cmd.AddCommand(newRestorePlanCmd())
	return cmd
}

func newRestorePlanCmd() *cobra.Command {
	var stale bool
	cmd := &cobra.Command{
		Use:   "plan BACKUP_ID [BACKUP_ID...]",
		Short: "List what to restore, to which time, in the guide's order",
		Long: `Print the restore plan of a backup (its id is its op id, see 'stillpoint
backup list'): one step per line in the Scalar DL backup guide's order —
stop Ledger, stop Auditor, restore each Ledger database, then each Auditor
database, start Ledger, start Auditor — and, below the table, what to run
for each step.

Every database the backup's plan declares gets the restore point in that
database's own time zone WITH its offset (e.g. 2026-12-02T11:22:33.123+09:00),
which is what point-in-time restore tools take; a dump or snapshot gets the
artefact its hook printed as its last output line. --tz adds a column with
the same instant in another zone.

Naming several backups checks that they all come from the same pause: a mix
is refused, naming each backup and its restore point (Ledger and Auditor must
be restored from backups of one pause). An invalid backup is refused with why;
a partial one (a hook with on_error continue failed) gets warning steps.`,
		Example: `  stillpoint restore plan op-20261202T031500.123Z-3f9a1c2d
  stillpoint restore plan op-20261202T031500.123Z-3f9a1c2d --tz Europe/Paris
  stillpoint restore plan op-20261202T031500.123Z-3f9a1c2d -o json | jq '.plan.steps[] | select(.action=="restore")'`,
		Args: cobra.MinimumNArgs(1),
	}
	cf := addClientFlags(cmd)
	zone := addZoneFlag(cmd)
	cmd.Flags().BoolVar(&stale, "stale", false, "answer from the asked server's own view (no leader needed)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := checkZone(*zone); err != nil {
			return err
		}
		return unary(cmd, cf, "restore plan of "+strings.Join(args, ", "), func(ctx context.Context, c *coordinatorClient) (*pb.GetRestorePlanResponse, error) {
			return c.GetRestorePlan(ctx, &pb.GetRestorePlanRequest{BackupIds: args, Stale: stale})
		}, func(resp *pb.GetRestorePlanResponse) error {
			return printRestorePlan(cmd.OutOrStdout(), resp.GetPlan(), *zone)
		})
	}
	return cmd
}

func printRestorePlan(w io.Writer, rp *pb.RestorePlan, zone string) error {
	fmt.Fprintf(w, "Restore plan of backup %s (plan %s)\n", strings.Join(rp.GetBackupIds(), ", "), rp.GetPlan())
	for _, s := range rp.GetSteps() {
		if s.GetRestoreTo() != nil {
			fmt.Fprintf(w, "Restore point: %s\n", timefmt.UTC(s.GetRestoreTo().AsTime()))
			break
		}
	}
	fmt.Fprintln(w)
	header := []string{"#", "ACTION", "SERVICE", "DATABASE", "KIND", "METHOD", "RESTORE TO (DATABASE ZONE)", "ZONE"}
	if zone != "" {
		header = append(header, "IN "+zone)
	}
	header = append(header, "ARTEFACT")
	var rows [][]string
	for i, s := range rp.GetSteps() {
		to, tz, kind, method, art := "-", "-", "-", "-", "-"
		if s.GetAction() == plan.ActionRestore {
			to, tz = s.GetRestoreToLocal(), s.GetTimeZone()
			kind, method = plan.KindName(s.GetKind()), plan.MethodName(s.GetMethod())
		}
		if a := s.GetArtefact(); a != nil {
			art = plan.LastLine(a.GetOutputTail())
			if art == "" {
				art = "(none printed)"
			}
		}
		row := []string{fmt.Sprint(i + 1), strings.ToUpper(s.GetAction()), orDash(s.GetService()), orDash(s.GetDatabase()), kind, method, to, tz}
		if zone != "" {
			in := "-"
			if s.GetRestoreTo() != nil {
				loc, err := timefmt.LoadZone(zone)
				if err != nil {
					return err
				}
				in = timefmt.InZone(s.GetRestoreTo().AsTime(), loc)
			}
			row = append(row, in)
		}
		rows = append(rows, append(row, art))
	}
	if err := table(w, header, rows); err != nil {
		return err
	}
	fmt.Fprintln(w)
	for i, s := range rp.GetSteps() {
		fmt.Fprintf(w, "%d. %s\n", i+1, s.GetInstructions())
	}
	return nil
}
