package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/stillpoint-dev/stillpoint/coordinator"
	"github.com/stillpoint-dev/stillpoint/internal/timefmt"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

func init() { subcommands = append(subcommands, newPauseCmd, newUnpauseCmd) }

func newPauseCmd() *cobra.Command {
	var cluster, requestedBy string
	var hold, wait time.Duration
	cmd := &cobra.Command{
		Use:   "pause --cluster NAME",
		Short: "Pause a cluster and print a certified restore point",
		Long: `Pause every node of a cluster through its agent, hold exactly as long as the
measured clock uncertainty requires (or --hold), unpause, and print the restore
point: the mid-time of the window during which every node was certainly paused
and drained, with its ± uncertainty, in UTC (RFC 3339, ns), epoch ms and --tz.

The coordinator refuses the pause when any node's clock is not synchronized,
its error bound is over the limit, the offsets spread too far, or a node is
missing; the refusal names each node and figure, and nothing is paused.

The command waits for the operation to end and shows its progress. Ctrl-C
detaches: the operation goes on on the coordinator (follow it with
'stillpoint ops watch ID'). Exit status: 0 completed, 3 aborted or invalid,
130 detached, 1 refused or failed.`,
		Example: `  stillpoint pause --cluster ledger
  stillpoint pause --cluster ledger --hold 30s --tz Asia/Tokyo   # hold for a snapshot
  stillpoint pause --cluster ledger -o json | jq -r .window.restore_point`,
		Args: cobra.NoArgs,
	}
	cf := addClientFlags(cmd)
	zone := addZoneFlag(cmd)
	cmd.Flags().StringVar(&cluster, "cluster", "", "cluster to pause (required), e.g. ledger")
	cmd.Flags().DurationVar(&hold, "hold", 0, fmt.Sprintf("hold at least this long, in whole milliseconds up to %s (default: the minimum the measured uncertainty requires)", flagDuration(coordinator.MaxHold)))
	cmd.Flags().DurationVar(&wait, "wait", 10*time.Minute, "give up waiting for the operation after this long (it goes on)")
	cmd.Flags().StringVar(&requestedBy, "requested-by", "", "who asks, for the audit log (default: your TLS identity or address)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := checkPauseFlags(cluster, hold, wait, *zone); err != nil {
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
		resp, err := startPause(ctx, c, &pb.StartPauseRequest{Cluster: cluster, HoldMs: hold.Milliseconds(), RequestedBy: requestedBy, RequestId: newRequestID()})
		cancel()
		if err != nil {
			return c.rpcError("pause "+cluster, err)
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

func checkPauseFlags(cluster string, hold, wait time.Duration, zone string) error {
	var errs []error
	if cluster == "" {
		errs = append(errs, errors.New("--cluster is required (e.g. --cluster ledger; see `stillpoint members`)"))
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
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	start := time.Now()
	final, err := followOperation(ctx, c, op.GetOpId(), func(o *pb.Operation) {
		fmt.Fprintf(errw, "[%6s] %s\n", timefmt.Duration(time.Since(start).Round(time.Millisecond)), progressLine(o))
	})
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintf(errw, "detached from %s; it goes on on the coordinator: stillpoint ops watch %s\n", op.GetOpId(), op.GetOpId())
			return exitError{exitDetached}
		}
		return err
	}
	out := cmd.OutOrStdout()
	if outputOf(cmd) == outputJSON {
		if err := printJSON(out, final); err != nil {
			return err
		}
	} else if err := printOperation(out, final, zone); err != nil {
		return err
	}
	if final.GetState() != pb.OperationState_OPERATION_STATE_COMPLETED {
		fmt.Fprintf(errw, "operation %s ended %s: %s\n", final.GetOpId(), stateName(final.GetState()), final.GetReason())
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
	cmd := &cobra.Command{
		Use:   "unpause --op ID",
		Short: "Force an operation's hold to end now (every target is unpaused)",
		Long: `Release the nodes of a running operation now, before its hold ends: the
leader unpauses every target and records the operation aborted (no restore
point). Use it when a backup hook hangs or the hold was too long. The action
is audited. On an operation that already ended it changes nothing.`,
		Example: `  stillpoint unpause --op op-20261124T101500.123Z-3f9a1c2d --reason "snapshot hook hung"`,
		Args:    cobra.NoArgs,
	}
	cf := addClientFlags(cmd)
	cmd.Flags().StringVar(&opID, "op", "", "operation `ID` (required; see 'stillpoint ops list')")
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the audit log")
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
		resp, err := c.ForceUnpause(ctx, &pb.ForceUnpauseRequest{OpId: opID, Reason: reason})
		if err != nil {
			return c.rpcError("unpause "+opID, err)
		}
		if cf.output == outputJSON {
			return printJSON(cmd.OutOrStdout(), resp.GetOperation())
		}
		return printOperation(cmd.OutOrStdout(), resp.GetOperation(), "")
	}
	return cmd
}
