package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/stillpoint-dev/stillpoint/client"
	"github.com/stillpoint-dev/stillpoint/coordinator"
	"github.com/stillpoint-dev/stillpoint/internal/enumname"
	"github.com/stillpoint-dev/stillpoint/internal/timefmt"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

func init() { subcommands = append(subcommands, newPauseCmd, newUnpauseCmd) }

func newPauseCmd() *cobra.Command {
	var clusters []string
	var requestedBy string
	var hold, wait time.Duration
	var untilUnpaused bool
	cmd := &cobra.Command{
		Use:   "pause --cluster NAME [--cluster NAME...]",
		Short: "Pause a cluster and print a certified restore point",
		Long: `Pause every node of a cluster through its agent, hold exactly as long as the
measured clock uncertainty requires (or --hold), unpause, and print the restore
point: the mid-time of the window during which every node was certainly paused
and drained, with its ± uncertainty, in UTC (RFC 3339, ns), epoch ms and --tz.

The coordinator refuses the pause when any node's clock is not synchronized,
its error bound is over the limit, the offsets spread too far, or a node is
missing; the refusal names each node and figure, and nothing is paused.

Repeat --cluster to pause several clusters in one operation (e.g. the Ledger
and the Auditor clusters): every cluster is admitted together, all are paused
and held together and the restore point is one window over all their nodes.
A cluster named twice is refused.

With --until-unpaused the hold lasts until 'stillpoint unpause --op ID' ends
it (at least the minimum hold; at most the coordinator's max_hold_ns, 1h by
default, after which the hold ends by itself), while the coordinator keeps
renewing the nodes' leases: pause, take your snapshots, unpause. The op then
completes with its restore point. The progress line says when the hold ends.

The command waits for the operation to end and shows its progress. Ctrl-C
detaches: the operation goes on on the coordinator (follow it with
'stillpoint ops watch ID'). Exit status: 0 completed, 3 aborted or invalid,
130 detached, 1 refused or failed.`,
		Example: `  stillpoint pause --cluster ledger
  stillpoint pause --cluster ledger --hold 30s --tz Asia/Tokyo   # hold for a snapshot
  stillpoint pause --cluster ledger -o json | jq -r .window.restore_point
  stillpoint pause --cluster ledger --cluster auditor  # one restore point for both
  stillpoint pause --cluster ledger --until-unpaused   # then, once snapshots are taken:
  stillpoint unpause --op ID                           # (from another terminal)`,
		Args: cobra.NoArgs,
	}
	cf := addClientFlags(cmd)
	zone := addZoneFlag(cmd)
	cmd.Flags().StringArrayVar(&clusters, "cluster", nil, "cluster to pause (required), e.g. ledger; repeat it to pause several clusters in one operation")
	cmd.Flags().DurationVar(&hold, "hold", 0, fmt.Sprintf("hold at least this long, in whole milliseconds up to %s (default: the minimum the measured uncertainty requires)", flagDuration(coordinator.MaxHold)))
	cmd.Flags().BoolVar(&untilUnpaused, "until-unpaused", false, "hold until 'stillpoint unpause --op ID' ends the hold (at most the coordinator's max hold, default 1h); the op then completes with its restore point")
	cmd.Flags().DurationVar(&wait, "wait", 10*time.Minute, "give up waiting for the operation after this long (it goes on)")
	cmd.Flags().StringVar(&requestedBy, "requested-by", "", "who asks, for the audit log (default: your TLS identity or address)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := checkPauseFlags(clusters, hold, wait, *zone); err != nil {
			return err
		}
		if requestedBy == "" {
			requestedBy = os.Getenv("USER")
		}
		c, err := cf.dial(cmd)
		if err != nil {
			return err
		}
		defer c.Close()
		ctx, cancel := c.call(cmd.Context())
		defer cancel()
		if untilUnpaused && !cmd.Flags().Changed("wait") {
			wait = 25 * time.Hour // longer than any max hold: follow the op to its end
		}
		// The client sets a request id and retries by its rules.
		resp, err := c.StartPause(ctx, &pb.StartPauseRequest{Cluster: clusters[0], Clusters: clusters[1:], HoldMs: hold.Milliseconds(), RequestedBy: requestedBy,
			UntilUnpaused: untilUnpaused})
		if client.ReasonOf(err) == pb.ErrorReason_ERROR_REASON_UNKNOWN_CLUSTER && len(clusters) == 1 {
			return fmt.Errorf("pause %s: %w", clusters[0], unknownClusterError(ctx, c, clusters[0], false))
		}
		if err != nil {
			return c.rpcError("pause "+strings.Join(clusters, ", "), err)
		}
		return waitAndReport(cmd, c, resp.GetOperation(), wait, *zone)
	}
	return cmd
}

// flagDuration writes d as a duration flag takes it, without Go's zero
// units: "99999h", "1h30m", "1.5ms".
func flagDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// checkWait checks a --wait flag.
func checkWait(wait time.Duration) error {
	if wait <= 0 {
		return fmt.Errorf("--wait %s: must be positive", flagDuration(wait))
	}
	return nil
}

func checkPauseFlags(clusters []string, hold, wait time.Duration, zone string) error {
	var errs []error
	if len(clusters) == 0 {
		errs = append(errs, errors.New("--cluster is required (e.g. --cluster ledger; see `stillpoint members`)"))
	}
	seen := map[string]bool{}
	for _, c := range clusters {
		switch {
		case c == "":
			errs = append(errs, errors.New("--cluster '': a cluster name is required (e.g. --cluster ledger)"))
		case seen[c]:
			errs = append(errs, fmt.Errorf("--cluster %s is given twice: name each cluster once", c))
		}
		seen[c] = true
	}
	switch {
	case hold < 0:
		errs = append(errs, fmt.Errorf("--hold %s: must not be negative (0: the minimum the clock bounds require)", flagDuration(hold)))
	case hold > coordinator.MaxHold:
		errs = append(errs, fmt.Errorf("--hold %s: at most %s (a pause stops the cluster's writes; run a long backup in a hook)", flagDuration(hold), flagDuration(coordinator.MaxHold)))
	case hold%time.Millisecond != 0:
		errs = append(errs, fmt.Errorf("--hold %s: the hold is set in whole milliseconds (e.g. %s)", flagDuration(hold), flagDuration(hold.Round(time.Millisecond))))
	}
	errs = append(errs, checkWait(wait))
	return asUsage(errors.Join(append(errs, checkZone(zone))...))
}

// waitAndReport follows op to its end with progress on stderr, then prints
// it; Ctrl-C detaches.
func waitAndReport(cmd *cobra.Command, c *coordinatorClient, op *pb.Operation, wait time.Duration, zone string) error {
	errw := cmd.ErrOrStderr()
	ctx, cancel := followContext(cmd, wait)
	defer cancel()
	start := time.Now()
	final, err := followOperation(ctx, c, op.GetOpId(), func(o *pb.Operation) {
		fmt.Fprintf(errw, "[%6s] %s\n", timefmt.Duration(time.Since(start).Round(time.Millisecond)), progressLine(o))
	})
	return endFollow(ctx, cmd, final, err, followEnd{
		detached: fmt.Sprintf("detached from %s; it goes on on the coordinator: stillpoint ops watch %s", op.GetOpId(), op.GetOpId()),
		noun:     "operation",
		print:    func(w io.Writer, o *pb.Operation) error { return printOperation(w, o, zone) },
	})
}

// followContext is the context a foreground follow runs under: it ends at
// Ctrl-C, SIGTERM or after wait.
func followContext(cmd *cobra.Command, wait time.Duration) (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(ctx, wait)
	return ctx, func() { cancel(); stop() }
}

// followEnd is what endFollow says of one kind of op.
type followEnd struct {
	detached string                                    // the line printed on a detach
	noun     string                                    // names the op in "<noun> <id> ended <state>"
	print    func(w io.Writer, op *pb.Operation) error // the human view
}

// endFollow ends a foreground follow under ctx that returned final and err:
// a detach (ctx ended) prints how to go on and exits exitDetached; otherwise
// the op is printed (JSON with -o json) and an op that did not complete
// exits exitNotCompleted.
func endFollow(ctx context.Context, cmd *cobra.Command, final *pb.Operation, err error, how followEnd) error {
	errw := cmd.ErrOrStderr()
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(errw, how.detached)
			return exitError{exitDetached}
		}
		return err
	}
	out := cmd.OutOrStdout()
	if outputOf(cmd) == outputJSON {
		if err := printJSON(out, final); err != nil {
			return err
		}
	} else if err := how.print(out, final); err != nil {
		return err
	}
	if final.GetState() != pb.OperationState_OPERATION_STATE_COMPLETED {
		fmt.Fprintf(errw, "%s %s ended %s: %s\n", how.noun, final.GetOpId(), enumname.Of(final.GetState()), final.GetReason())
		return exitError{exitNotCompleted}
	}
	return nil
}

// outputOf reads the -o flag of cmd.
func outputOf(cmd *cobra.Command) string {
	v, _ := cmd.Flags().GetString("output")
	return v
}

func newUnpauseCmd() *cobra.Command {
	var opID, reason string
	var abort bool
	cmd := &cobra.Command{
		Use:   "unpause --op ID [--abort]",
		Short: "End an operation's hold now (it completes with its restore point), or abort it",
		Long: `End a running operation's hold now: the leader unpauses every target and the
operation completes with its restore point when the window is valid — the
normal end of 'stillpoint pause --until-unpaused' once your snapshots are
taken. A hold ended before the minimum the clocks' uncertainty requires, or
whose window is otherwise not valid, ends INVALID with why.

--abort releases the nodes and records the operation ABORTED: no restore
point, no catalog entry. Use it when a backup hook hangs or the pause was a
mistake.

On a backup ('stillpoint backup run') whose hooks are still running, ending
the hold completes the backup with its restore point but marks it partial:
the hooks still running are recorded failed (interrupted: their artefacts
are not from inside the pause; an agent whose node was held kills them once
it is unpaused) and the hooks not started are skipped.

Either intent is recorded with the operation, so a leader change ends it the
same way. The action is audited. On an operation that already ended it
changes nothing and prints it. Exit status: 0 completed, 3 aborted or
invalid, 1 failed.`,
		Example: `  stillpoint unpause --op op-20261124T101500.123Z-3f9a1c2d --reason "snapshots taken"
  stillpoint unpause --op op-20261124T101500.123Z-3f9a1c2d --abort --reason "snapshot hook hung"`,
		Args: cobra.NoArgs,
	}
	cf := addClientFlags(cmd)
	cmd.Flags().StringVar(&opID, "op", "", "operation `ID` (required; see 'stillpoint ops list')")
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the audit log")
	cmd.Flags().BoolVar(&abort, "abort", false, "abort instead: the operation ends ABORTED with no restore point")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if opID == "" {
			return usagef("--op is required (see 'stillpoint ops list')")
		}
		c, err := cf.dial(cmd)
		if err != nil {
			return err
		}
		defer c.Close()
		ctx, cancel := c.call(cmd.Context())
		defer cancel()
		resp, err := c.ForceUnpause(ctx, &pb.ForceUnpauseRequest{OpId: opID, Reason: reason, Abort: abort})
		if err != nil {
			return c.rpcError("unpause "+opID, err)
		}
		op := resp.GetOperation()
		if cf.output == outputJSON {
			err = printJSON(cmd.OutOrStdout(), op)
		} else {
			err = printOperation(cmd.OutOrStdout(), op, "")
		}
		if err != nil {
			return err
		}
		if op.GetState() != pb.OperationState_OPERATION_STATE_COMPLETED {
			fmt.Fprintf(cmd.ErrOrStderr(), "operation %s ended %s: %s\n", op.GetOpId(), enumname.Of(op.GetState()), op.GetReason())
			return exitError{exitNotCompleted}
		}
		return nil
	}
	return cmd
}
