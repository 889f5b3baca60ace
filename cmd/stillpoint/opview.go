package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stillpoint-dev/stillpoint/coordinator/fsm"
	"github.com/stillpoint-dev/stillpoint/internal/enumname"
	"github.com/stillpoint-dev/stillpoint/internal/timefmt"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

func outcomeLabel(o pb.NodeOutcome) string {
	if o == pb.NodeOutcome_NODE_OUTCOME_UNSPECIFIED {
		return "-"
	}
	return enumname.Of(o)
}

// zoneFlag is the --tz flag of commands that print instants.
func addZoneFlag(cmd *cobra.Command) *string {
	return cmd.Flags().String("tz", "", `also print instants in this time zone, with its offset ("Asia/Tokyo", "Local", "+09:00")`)
}

// instantLines prints an instant in UTC (RFC 3339, ns), epoch ms, and in
// the requested zone with its offset.
func instantLines(w io.Writer, label string, ts *timestamppb.Timestamp, zone string) error {
	t := ts.AsTime()
	fmt.Fprintf(w, "%-14s %s\n", label, timefmt.UTC(t))
	fmt.Fprintf(w, "%-14s %d\n", "  epoch ms", timefmt.EpochMillis(t))
	if zone != "" {
		loc, err := timefmt.LoadZone(zone)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "%-14s %s\n", "  "+zone, timefmt.InZone(t, loc))
	}
	return nil
}

// printOperation is the human view of one operation.
func printOperation(w io.Writer, op *pb.Operation, zone string) error {
	fmt.Fprintf(w, "Operation      %s\n", op.GetOpId())
	fmt.Fprintf(w, "Cluster        %s (%d targets), requested by %s, epoch %d, leader %s\n",
		fsm.ClusterNames(op), len(op.GetTargets()), op.GetRequestedBy(), op.GetEpoch(), op.GetLeader())
	if ls := op.GetLeaders(); len(ls) > 0 {
		took := ""
		if len(ls) > 1 {
			took = fmt.Sprintf(" (taken over %d times)", len(ls)-1)
			if len(ls) == 2 {
				took = " (taken over once)"
			}
		}
		fmt.Fprintf(w, "Leaders        %s%s\n", strings.Join(ls, " -> "), took)
	}
	fmt.Fprintf(w, "State          %s\n", enumname.Of(op.GetState()))
	if op.GetReason() != "" {
		fmt.Fprintf(w, "Reason         %s\n", op.GetReason())
	}
	if op.GetInvalidatedAfterCompletion() {
		learned := ""
		if at := op.GetInvalidatedAt().GetLocalTime(); at != nil {
			learned = " (learned " + timefmt.UTC(at.AsTime()) + ")"
		}
		fmt.Fprintf(w, "INVALIDATED    after completion%s: %s\n", learned, op.GetInvalidatedReason())
	}
	if wdw := op.GetWindow(); wdw.GetRestorePoint() != nil {
		if err := instantLines(w, "Restore point", wdw.GetRestorePoint(), zone); err != nil {
			return err
		}
		fmt.Fprintf(w, "%-14s %s\n", "  uncertainty", timefmt.PlusMinus(time.Duration(wdw.GetUncertaintyNs())))
		fmt.Fprintf(w, "Window         %s .. %s (width %s)\n", timefmt.UTC(wdw.GetStart().AsTime()), timefmt.UTC(wdw.GetEnd().AsTime()),
			timefmt.Duration(time.Duration(wdw.GetWidthNs())))
	}
	if op.GetHoldNs() > 0 || op.GetFanoutNs() > 0 {
		requested := "the minimum the clock bounds allow"
		if op.GetRequestedHoldMs() > 0 {
			requested = "requested " + timefmt.Duration(time.Duration(op.GetRequestedHoldMs())*time.Millisecond)
		}
		if op.GetUntilUnpaused() {
			requested = "until unpaused, at most " + timefmt.Duration(time.Duration(op.GetMaxHoldNs())) + "; minimum " + timefmt.Duration(time.Duration(op.GetHoldNs()))
		}
		fmt.Fprintf(w, "Hold           %s (%s); pause fan-out %s\n", timefmt.Duration(time.Duration(op.GetHoldNs())),
			requested, timefmt.Duration(time.Duration(op.GetFanoutNs())))
	}
	if d := op.GetHoldDeadline().GetLocalTime(); d != nil && !fsm.IsTerminal(op.GetState()) {
		fmt.Fprintf(w, "Hold ends      %s%s\n", timefmt.UTC(d.AsTime()), holdEndsNote(op))
	}
	if c, e := op.GetCreatedAt(), op.GetEndedAt(); c != nil && e != nil {
		fmt.Fprintf(w, "Took           %s (created %s)\n", timefmt.Duration(e.GetLocalTime().AsTime().Sub(c.GetLocalTime().AsTime())), timefmt.UTC(c.GetLocalTime().AsTime()))
	}
	header := []string{"  TARGET", "PAUSE", "ACKED (LOCAL)", "OFFSET", "±BOUND", "UNPAUSE", "SENT (LOCAL)", "NOTE"}
	var rows [][]string
	for _, t := range op.GetTargets() {
		ack, sent, off, bound := "-", "-", "-", "-"
		if a := t.GetAckedAt(); a != nil {
			ack = a.GetLocalTime().AsTime().UTC().Format("15:04:05.000000")
			off = timefmt.Signed(time.Duration(a.GetEstimate().GetOffsetNs()))
			bound = timefmt.PlusMinus(time.Duration(a.GetEstimate().GetErrorBoundNs()))
		}
		if s := t.GetUnpauseSentAt(); s != nil {
			sent = s.GetLocalTime().AsTime().UTC().Format("15:04:05.000000")
		}
		var note []string
		if t.GetNodeInterrupted() {
			note = append(note, "node restarted")
		}
		if t.GetInterruptedReportedLate() {
			note = append(note, "reported after completion")
		}
		if t.GetLeaseExpired() {
			note = append(note, "lease expired")
		}
		if m := t.GetPauseMessage(); m != "" && t.GetPauseOutcome() != pb.NodeOutcome_NODE_OUTCOME_PAUSED {
			note = append(note, m)
		}
		rows = append(rows, []string{"  " + t.GetNode(), outcomeLabel(t.GetPauseOutcome()), ack, off, bound, outcomeLabel(t.GetUnpauseOutcome()), sent, strings.Join(note, "; ")})
	}
	return table(w, header, rows)
}

// holdEndsNote qualifies a hold's end: an op held until unpaused ends
// there only if nobody unpauses it first.
func holdEndsNote(op *pb.Operation) string {
	if op.GetUntilUnpaused() {
		return fmt.Sprintf(" at the latest (the maximum hold; end it now: stillpoint unpause --op %s)", op.GetOpId())
	}
	return ""
}

// progressLine is one line of progress while an operation runs.
func progressLine(op *pb.Operation) string {
	switch op.GetState() {
	case pb.OperationState_OPERATION_STATE_PENDING:
		return fmt.Sprintf("recorded %s; pausing %d targets", op.GetOpId(), len(op.GetTargets()))
	case pb.OperationState_OPERATION_STATE_PAUSING:
		return "pausing (wait for in-flight transactions to drain)"
	case pb.OperationState_OPERATION_STATE_HOLDING:
		line := fmt.Sprintf("all %d targets paused and drained in %s; holding", len(op.GetTargets()), timefmt.Duration(time.Duration(op.GetFanoutNs())))
		if d := op.GetHoldDeadline().GetLocalTime(); d != nil {
			line += " until " + timefmt.UTC(d.AsTime()) + holdEndsNote(op)
		}
		return line
	case pb.OperationState_OPERATION_STATE_UNPAUSING:
		return "unpausing"
	}
	return enumname.Of(op.GetState())
}

// followOperation streams an operation until it ends, reconnecting across
// leader changes. progress is called on every change. It returns the final
// record, or ctx's error when the caller detached.
func followOperation(ctx context.Context, c *coordinatorClient, opID string, progress func(*pb.Operation)) (*pb.Operation, error) {
	return watchOperation(ctx, c, opID, false, progress)
}

// watchOperation is followOperation calling progress on every change of
// the op (every) or on every change of its state.
// The client resumes the watch across disconnects and leader changes.
func watchOperation(ctx context.Context, c *coordinatorClient, opID string, every bool, progress func(*pb.Operation)) (*pb.Operation, error) {
	var shown *pb.Operation
	final, err := c.WatchOperation(ctx, opID, func(op *pb.Operation) error {
		if every || shown == nil || op.GetState() != shown.GetState() {
			progress(op)
		}
		shown = op
		return nil
	})
	if err != nil && ctx.Err() == nil {
		return final, c.rpcError("watch "+opID, err)
	}
	return final, err
}
