package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/stillpoint-dev/stillpoint/coordinator/fsm"
	"github.com/stillpoint-dev/stillpoint/internal/enumname"
	"github.com/stillpoint-dev/stillpoint/internal/timefmt"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

func init() { subcommands = append(subcommands, newOpsCmd, newRestorePointsCmd, newDriftCmd) }

func newOpsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ops",
		Short: "List, show and watch pause operations",
		Long: `Operations are pauses recorded in the coordinator's replicated log: who asked,
the targets and their clock readings, the hold, and how each ended (completed
with a restore window, aborted, or invalid with the reason).`,
		Example: `  stillpoint ops list --cluster ledger
  stillpoint ops show op-20261124T101500.123Z-3f9a1c2d --tz Europe/Berlin
  stillpoint ops watch op-20261124T101500.123Z-3f9a1c2d`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newOpsListCmd(), newOpsShowCmd(), newOpsWatchCmd())
	return cmd
}

func newOpsListCmd() *cobra.Command {
	var cluster string
	var limit int
	var stale bool
	cmd := &cobra.Command{
		Use:     "list",
		Short:   "List operations, newest first",
		Example: "  stillpoint ops list --cluster ledger --limit 10",
		Args:    cobra.NoArgs,
	}
	cf := addClientFlags(cmd)
	cmd.Flags().StringVar(&cluster, "cluster", "", "only this cluster")
	cmd.Flags().IntVar(&limit, "limit", 20, "at most this many (0: all)")
	cmd.Flags().BoolVar(&stale, "stale", false, "answer from the asked server's replica (no leader needed)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := checkLimit(limit); err != nil {
			return err
		}
		return unary(cmd, cf, "list operations", func(ctx context.Context, c *coordinatorClient) (*pb.ListOperationsResponse, error) {
			return c.ListOperations(ctx, &pb.ListOperationsRequest{Cluster: cluster, Limit: int32(limit), Stale: stale})
		}, func(resp *pb.ListOperationsResponse) error {
			var rows [][]string
			for _, op := range resp.GetOperations() {
				rp, unc := "-", "-"
				if w := op.GetWindow(); w.GetRestorePoint() != nil {
					rp, unc = timefmt.UTC(w.GetRestorePoint().AsTime()), timefmt.PlusMinus(time.Duration(w.GetUncertaintyNs()))
				}
				reason, state := op.GetReason(), enumname.Of(op.GetState())
				if op.GetInvalidatedAfterCompletion() {
					state += ",INVALIDATED"
					reason = op.GetInvalidatedReason()
				}
				if len(reason) > 80 {
					reason = reason[:77] + "..."
				}
				rows = append(rows, []string{op.GetOpId(), strings.Join(fsm.Clusters(op), ","), state, fmt.Sprint(len(op.GetTargets())),
					timefmt.Duration(time.Duration(op.GetHoldNs())), rp, unc, reason})
			}
			if len(rows) == 0 {
				_, err := fmt.Fprintln(cmd.OutOrStdout(), "(no operations)")
				return err
			}
			return table(cmd.OutOrStdout(), []string{"OP", "CLUSTER", "STATE", "TARGETS", "HOLD", "RESTORE POINT (UTC)", "±", "REASON"}, rows)
		})
	}
	return cmd
}

func newOpsShowCmd() *cobra.Command {
	var stale bool
	cmd := &cobra.Command{
		Use:     "show OP_ID",
		Short:   "Show one operation with every target's readings",
		Example: "  stillpoint ops show op-20261124T101500.123Z-3f9a1c2d --tz Asia/Tokyo -o json",
		Args:    cobra.ExactArgs(1),
	}
	cf := addClientFlags(cmd)
	zone := addZoneFlag(cmd)
	cmd.Flags().BoolVar(&stale, "stale", false, "answer from the asked server's replica")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := checkZone(*zone); err != nil {
			return err
		}
		c, err := cf.dial(cmd)
		if err != nil {
			return err
		}
		defer c.Close()
		ctx, cancel := c.call(cmd.Context())
		defer cancel()
		resp, err := c.GetOperation(ctx, &pb.GetOperationRequest{OpId: args[0], Stale: stale})
		if err != nil {
			return c.rpcError("show "+args[0], err)
		}
		if cf.output == outputJSON {
			return printJSON(cmd.OutOrStdout(), resp.GetOperation())
		}
		return printOperation(cmd.OutOrStdout(), resp.GetOperation(), *zone)
	}
	return cmd
}

func newOpsWatchCmd() *cobra.Command {
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "watch OP_ID",
		Short: "Follow an operation until it ends, then show it",
		Long: `Follow an operation's progress until it ends and print it like 'stillpoint
pause' does. Ctrl-C detaches; the operation is not affected.`,
		Example: "  stillpoint ops watch op-20261124T101500.123Z-3f9a1c2d",
		Args:    cobra.ExactArgs(1),
	}
	cf := addClientFlags(cmd)
	zone := addZoneFlag(cmd)
	cmd.Flags().DurationVar(&wait, "wait", 10*time.Minute, "stop waiting after this long")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := errors.Join(checkZone(*zone), checkWait(wait)); err != nil {
			return asUsage(err)
		}
		c, err := cf.dial(cmd)
		if err != nil {
			return err
		}
		defer c.Close()
		return waitAndReport(cmd, c, &pb.Operation{OpId: args[0]}, wait, *zone)
	}
	return cmd
}

func checkZone(zone string) error {
	if zone == "" {
		return nil
	}
	if _, err := timefmt.LoadZone(zone); err != nil {
		return usagef("--tz: %w", err)
	}
	return nil
}

// maxLimit is the most entries a list asks for (the API takes an int32).
const maxLimit = math.MaxInt32

func checkLimit(limit int) error {
	if limit < 0 || limit > maxLimit {
		return usagef("--limit %d: want 0 (all) to %d", limit, maxLimit)
	}
	return nil
}

func newRestorePointsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "restore-points",
		Aliases: []string{"rp"},
		Short:   "List and show the catalog of certified restore points",
		Long: `Every completed pause leaves a restore point in the replicated catalog: the
mid-time of the window during which every node of the cluster was certainly
paused and drained, with its ± uncertainty. Restore each database of the
cluster to this instant (point-in-time restore) for a consistent state.`,
		Example: `  stillpoint restore-points list --cluster ledger --tz Asia/Tokyo
  stillpoint restore-points show op-20261124T101500.123Z-3f9a1c2d --tz America/New_York`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newRPListCmd(), newRPShowCmd())
	return cmd
}

func newRPListCmd() *cobra.Command {
	var cluster string
	var limit int
	var stale bool
	cmd := &cobra.Command{
		Use:     "list",
		Short:   "List restore points, newest first",
		Example: "  stillpoint restore-points list --cluster ledger --tz Local",
		Args:    cobra.NoArgs,
	}
	cf := addClientFlags(cmd)
	zone := addZoneFlag(cmd)
	cmd.Flags().StringVar(&cluster, "cluster", "", "only this cluster")
	cmd.Flags().IntVar(&limit, "limit", 20, "at most this many (0: all)")
	cmd.Flags().BoolVar(&stale, "stale", false, "answer from the asked server's replica")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := checkZone(*zone); err != nil {
			return err
		}
		if err := checkLimit(limit); err != nil {
			return err
		}
		return unary(cmd, cf, "list restore points", func(ctx context.Context, c *coordinatorClient) (*pb.ListRestorePointsResponse, error) {
			return c.ListRestorePoints(ctx, &pb.ListRestorePointsRequest{Cluster: cluster, Limit: int32(limit), Stale: stale})
		}, func(resp *pb.ListRestorePointsResponse) error {
			return restorePointsTable(cmd.OutOrStdout(), resp.GetRestorePoints(), *zone)
		})
	}
	return cmd
}

// zoneColumn is a table's last column when --tz is given: each row's time
// in that zone.
type zoneColumn struct {
	zone string
	loc  *time.Location
}

func newZoneColumn(zone string) zoneColumn {
	loc, _ := timefmt.LoadZone(zone)
	return zoneColumn{zone: zone, loc: loc}
}

// header appends the column's title ("IN ASIA/TOKYO") to h.
func (z zoneColumn) header(h []string) []string {
	if z.zone == "" {
		return h
	}
	return append(h, "IN "+strings.ToUpper(z.zone))
}

// row appends t in the zone to r.
func (z zoneColumn) row(r []string, t time.Time) []string {
	if z.zone == "" {
		return r
	}
	return append(r, timefmt.InZone(t, z.loc))
}

// restorePointsTable lists catalog entries; an entry invalidated after the
// fact says so in its row and, with its reason, under the table.
func restorePointsTable(w io.Writer, rps []*pb.RestorePoint, zone string) error {
	if len(rps) == 0 {
		_, err := fmt.Fprintln(w, "(no restore points)")
		return err
	}
	header := []string{"OP", "CLUSTER", "RESTORE POINT (UTC)", "±", "EPOCH MS", "VALID"}
	zc := newZoneColumn(zone)
	header = zc.header(header)
	var rows [][]string
	var notes []string
	for _, rp := range rps {
		t := rp.GetWindow().GetRestorePoint().AsTime()
		valid := "yes"
		if rp.GetInvalid() {
			valid = "NO"
			notes = append(notes, fmt.Sprintf("%s is INVALID: %s", rp.GetOpId(), rp.GetInvalidReason()))
		}
		row := []string{rp.GetOpId(), rp.GetCluster(), timefmt.UTC(t), timefmt.PlusMinus(time.Duration(rp.GetWindow().GetUncertaintyNs())), fmt.Sprint(timefmt.EpochMillis(t)), valid}
		rows = append(rows, zc.row(row, t))
	}
	if err := table(w, header, rows); err != nil {
		return err
	}
	for _, n := range notes {
		if _, err := fmt.Fprintln(w, n); err != nil {
			return err
		}
	}
	return nil
}

func newRPShowCmd() *cobra.Command {
	var stale bool
	cmd := &cobra.Command{
		Use:     "show OP_ID",
		Short:   "Show one restore point in UTC, epoch ms and --tz",
		Example: "  stillpoint restore-points show op-20261124T101500.123Z-3f9a1c2d --tz Asia/Tokyo",
		Args:    cobra.ExactArgs(1),
	}
	cf := addClientFlags(cmd)
	zone := addZoneFlag(cmd)
	cmd.Flags().BoolVar(&stale, "stale", false, "answer from the asked server's replica")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := checkZone(*zone); err != nil {
			return err
		}
		c, err := cf.dial(cmd)
		if err != nil {
			return err
		}
		defer c.Close()
		ctx, cancel := c.call(cmd.Context())
		defer cancel()
		resp, err := c.GetRestorePoint(ctx, &pb.GetRestorePointRequest{OpId: args[0], Stale: stale})
		if err != nil {
			return c.rpcError("show restore point "+args[0], err)
		}
		rp := resp.GetRestorePoint()
		if cf.output == outputJSON {
			return printJSON(cmd.OutOrStdout(), rp)
		}
		return printRestorePoint(cmd.OutOrStdout(), rp, *zone)
	}
	return cmd
}

// printRestorePoint is the human view of one catalog entry.
func printRestorePoint(w io.Writer, rp *pb.RestorePoint, zone string) error {
	fmt.Fprintf(w, "Operation      %s\nCluster        %s (%s)\n", rp.GetOpId(), rp.GetCluster(), strings.Join(rp.GetTargets(), ", "))
	if rp.GetInvalid() {
		fmt.Fprintf(w, "Status         INVALID: do not restore to this point\n")
		fmt.Fprintf(w, "%-14s %s\n", "  why", rp.GetInvalidReason())
		if at := rp.GetInvalidatedAt().GetLocalTime(); at != nil {
			fmt.Fprintf(w, "%-14s %s\n", "  learned", timefmt.UTC(at.AsTime()))
		}
		fmt.Fprintf(w, "%-14s %s\n", "  reported by", rp.GetInvalidatedBy())
	} else {
		fmt.Fprintf(w, "Status         valid\n")
	}
	if err := instantLines(w, "Restore point", rp.GetWindow().GetRestorePoint(), zone); err != nil {
		return err
	}
	fmt.Fprintf(w, "%-14s %s\n", "  uncertainty", timefmt.PlusMinus(time.Duration(rp.GetWindow().GetUncertaintyNs())))
	if err := instantLines(w, "Window start", rp.GetWindow().GetStart(), zone); err != nil {
		return err
	}
	if err := instantLines(w, "Window end", rp.GetWindow().GetEnd(), zone); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "Hold           %s\n", timefmt.Duration(time.Duration(rp.GetHoldNs())))
	return err
}

func newDriftCmd() *cobra.Command {
	var cluster string
	var stale bool
	cmd := &cobra.Command{
		Use:   "drift",
		Short: "Every agent's clock and whether it would be admitted to a pause now",
		Long: `Show each agent's clock offset, error bound, status and sample age (asked live
from the agent, as admission does), the offset spread per cluster, and why each
node would or would not be admitted to a pause with the current limits.

Exit status: 0 when every node would be admitted, 3 when any would not (so a
cron line or a monitoring check can use it), 1 when the cluster is unknown or
on any other error, 2 on a usage error.`,
		Example: `  stillpoint drift
  stillpoint drift --cluster ledger -o json
  */5 * * * * stillpoint drift --cluster ledger >/dev/null || echo "ledger would not pause" | mail -s drift ops`,
		Args: cobra.NoArgs,
	}
	cf := addClientFlags(cmd)
	cmd.Flags().StringVar(&cluster, "cluster", "", "only this cluster")
	cmd.Flags().BoolVar(&stale, "stale", false, "answer from the asked server's view")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		var got *pb.GetDriftResponse
		err := unary(cmd, cf, "drift", func(ctx context.Context, c *coordinatorClient) (*pb.GetDriftResponse, error) {
			resp, err := c.GetDrift(ctx, &pb.GetDriftRequest{Cluster: cluster, Stale: stale})
			if err == nil && len(resp.GetEntries()) == 0 {
				return nil, noDriftEntries(ctx, c, cluster, stale)
			}
			got = resp
			return resp, err
		}, func(resp *pb.GetDriftResponse) error {
			w := cmd.OutOrStdout()
			var rows [][]string
			for _, e := range resp.GetEntries() {
				m := e.GetMember()
				ck := m.GetClock()
				verdict := "yes"
				if !e.GetAdmissible() {
					verdict = "no: " + strings.Join(e.GetReasons(), "; ")
				}
				offset, bound := "-", "-" // no estimate: never shown as 0 ± 0
				if st := ck.GetStatus(); st == pb.ClockStatus_CLOCK_STATUS_SYNCHRONIZED || st == pb.ClockStatus_CLOCK_STATUS_STALE {
					offset, bound = timefmt.Signed(time.Duration(ck.GetOffsetNs())), timefmt.PlusMinus(time.Duration(ck.GetErrorBoundNs()))
				}
				rows = append(rows, []string{m.GetName(), m.GetCluster(), offset, bound,
					enumname.Of(ck.GetStatus()), timefmt.Duration(time.Duration(ck.GetAgeNs()).Round(time.Millisecond)),
					falsetickerCell(ck), verdict})
			}
			if err := table(w, []string{"NODE", "CLUSTER", "OFFSET", "±BOUND", "STATUS", "AGE", "FALSETICKERS", "ADMITTED"}, rows); err != nil {
				return err
			}
			cfg := resp.GetConfig()
			clusters := make([]string, 0, len(resp.GetSpreadNs()))
			for c := range resp.GetSpreadNs() {
				clusters = append(clusters, c)
			}
			sort.Strings(clusters)
			fmt.Fprintln(w)
			for _, c := range clusters {
				fmt.Fprintf(w, "cluster %s: offset spread %s (max_drift %s)\n", c, timefmt.Duration(time.Duration(resp.GetSpreadNs()[c])), timefmt.Duration(time.Duration(cfg.GetMaxDriftNs())))
			}
			_, err := fmt.Fprintf(w, "limits: error bound ≤ %s, lease %s, margin %s, min window %s\n", timefmt.Duration(time.Duration(cfg.GetMaxErrorBoundNs())),
				timefmt.Duration(time.Duration(cfg.GetLeaseNs())), timefmt.Duration(time.Duration(cfg.GetMarginNs())), timefmt.Duration(time.Duration(cfg.GetMinWindowNs())))
			return err
		})
		if err != nil {
			return err
		}
		return driftExit(cmd, got)
	}
	return cmd
}

// noDriftEntries says why drift has nothing to show: the cluster asked for
// is unknown (naming the known ones), or no agent joined at all.
func noDriftEntries(ctx context.Context, c *coordinatorClient, cluster string, stale bool) error {
	if cluster == "" {
		return fmt.Errorf("%w in the gossip pool of %s (start agents, then try again)", errNoAgents, c.cf.addr)
	}
	return unknownClusterError(ctx, c, cluster, stale)
}

// exitNotAdmitted is drift's exit status when any node would not be
// admitted to a pause now.
const exitNotAdmitted = exitNotCompleted

// driftExit fails with exitNotAdmitted, naming the nodes on stderr, when
// any entry is not admissible.
func driftExit(cmd *cobra.Command, resp *pb.GetDriftResponse) error {
	var refused []string
	for _, e := range resp.GetEntries() {
		if !e.GetAdmissible() {
			refused = append(refused, e.GetMember().GetName())
		}
	}
	if len(refused) == 0 {
		return nil
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "not admitted now: %s\n", strings.Join(refused, ", "))
	return exitError{code: exitNotAdmitted}
}

// falsetickerCell names the NTP servers an agent's intersection voted out
// (or counts them, when only gossip was heard), "-" for none.
func falsetickerCell(ck *pb.ClockEstimate) string {
	var names []string
	for _, s := range ck.GetSources() {
		if s.GetVerdict() == pb.SourceVerdict_SOURCE_VERDICT_FALSETICKER {
			names = append(names, s.GetAddress())
		}
	}
	switch {
	case len(names) > 0:
		return strings.Join(names, ",")
	case ck.GetFalsetickers() > 0:
		return fmt.Sprintf("%d", ck.GetFalsetickers())
	}
	return "-"
}
