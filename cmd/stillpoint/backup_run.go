package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stillpoint-dev/stillpoint/coordinator/fsm"
	"github.com/stillpoint-dev/stillpoint/internal/enumname"
	"github.com/stillpoint-dev/stillpoint/internal/timefmt"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// backupRunSubcommands are the backup group's run, list and show.
func backupRunSubcommands() []*cobra.Command {
	return []*cobra.Command{newBackupRunCmd(), newBackupListCmd(), newBackupShowCmd()}
}

func newBackupRunCmd() *cobra.Command {
	var plan, requestID, requestedBy string
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "run --plan NAME",
		Short: "Run a backup from a plan and print its restore point",
		Long: `Start a backup from a stored plan: the coordinator pauses the plan's clusters,
runs the hook groups in order while every node is held (the hold lasts until
the last hook ends, and at least the minimum hold), unpauses, records the
restore point, then runs the plan's 'after' hooks with it.

Progress goes to stderr: paused, each hook started and ended (state, exit
code, duration), unpaused, the restore point. Ctrl-C detaches: the backup
goes on on the coordinator (follow it with 'stillpoint ops watch ID').
--request-id makes a retry of the same run return the backup it started.

Exit status: 0 completed, 3 aborted or invalid (a hook with on_error abort
failed, the hold was invalidated), 130 detached, 1 refused or failed.`,
		Example: `  stillpoint backup run --plan nightly
  stillpoint backup run --plan nightly -o json | jq -r .window.restore_point
  stillpoint backup run --plan nightly --request-id nightly-2026-12-02`,
		Args: cobra.NoArgs,
	}
	cf := addClientFlags(cmd)
	zone := addZoneFlag(cmd)
	cmd.Flags().StringVar(&plan, "plan", "", "the plan's `NAME` (required; see 'stillpoint backup plan list')")
	cmd.Flags().StringVar(&requestID, "request-id", "", "names this run: a retry with the same id returns the backup it started (default: a new id)")
	cmd.Flags().DurationVar(&wait, "wait", 25*time.Hour, "give up waiting for the backup after this long (it goes on)")
	cmd.Flags().StringVar(&requestedBy, "requested-by", "", "who asks, for the audit log (default: your TLS identity or address)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		var errs []error
		if plan == "" {
			errs = append(errs, errors.New("--plan is required (see 'stillpoint backup plan list')"))
		}
		if len(requestID) > 128 {
			errs = append(errs, fmt.Errorf("--request-id is %d bytes; at most 128", len(requestID)))
		}
		errs = append(errs, checkWait(wait), checkZone(*zone))
		if err := asUsage(errors.Join(errs...)); err != nil {
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
		req := &pb.StartBackupRequest{Plan: plan, RequestId: requestID, RequestedBy: requestedBy}
		resp, err := c.StartBackup(ctx, req) // the client sets a request id when empty, and retries
		if err != nil {
			return c.rpcError("backup "+plan, err)
		}
		return followBackup(cmd, c, resp.GetOperation(), wait, *zone)
	}
	return cmd
}

// backupProgress prints, on every change of a backup op, what changed:
// the op's state and each hook's start and end.
type backupProgress struct {
	w     io.Writer
	start time.Time
	state pb.OperationState
	hooks map[string]pb.HookState
}

func (p *backupProgress) line(format string, a ...any) {
	fmt.Fprintf(p.w, "[%6s] %s\n", timefmt.Duration(time.Since(p.start).Round(time.Millisecond)), fmt.Sprintf(format, a...))
}

func (p *backupProgress) update(op *pb.Operation) {
	if op.GetState() != p.state {
		p.state = op.GetState()
		switch op.GetState() {
		case pb.OperationState_OPERATION_STATE_HOLDING:
			p.line("all %d targets paused and drained in %s; running the hooks while they are held", len(op.GetTargets()), timefmt.Duration(time.Duration(op.GetFanoutNs())))
		case pb.OperationState_OPERATION_STATE_COMPLETED:
			w := op.GetWindow()
			p.line("unpaused; restore point %s ±%s", timefmt.UTC(w.GetRestorePoint().AsTime()), timefmt.Duration(time.Duration(w.GetUncertaintyNs())))
		default:
			p.line("%s", progressLine(op))
		}
	}
	for _, h := range op.GetBackup().GetHooks() {
		if p.hooks[h.GetStepId()] == h.GetState() {
			continue
		}
		p.hooks[h.GetStepId()] = h.GetState()
		switch h.GetState() {
		case pb.HookState_HOOK_STATE_PENDING:
		case pb.HookState_HOOK_STATE_RUNNING:
			p.line("hook %s started on %s (step %s)", h.GetRef().GetHook(), h.GetRef().GetAgent(), h.GetStepId())
		default:
			p.line("hook %s on %s %s%s", h.GetRef().GetHook(), h.GetRef().GetAgent(), enumname.Of(h.GetState()), hookOutcome(h))
		}
	}
}

// hookOutcome is ", exit 2 after 1.2s: why" for a line.
func hookOutcome(h *pb.HookRun) string {
	var s string
	if h.GetState() != pb.HookState_HOOK_STATE_SKIPPED {
		s = fmt.Sprintf(" (exit %d", h.GetExitCode())
		if d := h.GetDurationNs(); d > 0 {
			s += " after " + timefmt.Duration(time.Duration(d))
		}
		s += ")"
	}
	if h.GetMessage() != "" {
		s += ": " + h.GetMessage()
	}
	return s
}

// afterHooksOpen reports whether a completed backup's after hooks are
// still to end.
func afterHooksOpen(op *pb.Operation) bool {
	for _, h := range op.GetBackup().GetHooks() {
		if h.GetGroup() == fsm.AfterGroup && (h.GetState() == pb.HookState_HOOK_STATE_PENDING || h.GetState() == pb.HookState_HOOK_STATE_RUNNING) {
			return true
		}
	}
	return false
}

// followBackup follows a backup to its end (after hooks included) with
// progress on stderr, then prints it; Ctrl-C detaches.
func followBackup(cmd *cobra.Command, c *coordinatorClient, op *pb.Operation, wait time.Duration, zone string) error {
	ctx, cancel := followContext(cmd, wait)
	defer cancel()
	p := &backupProgress{w: cmd.ErrOrStderr(), start: time.Now(), hooks: map[string]pb.HookState{}, state: pb.OperationState_OPERATION_STATE_PENDING}
	p.line("recorded backup %s of plan %s; pausing %d targets", op.GetOpId(), op.GetBackup().GetPlan().GetName(), len(op.GetTargets()))
	final, err := watchOperation(ctx, c, op.GetOpId(), true, p.update)
	for err == nil && final.GetState() == pb.OperationState_OPERATION_STATE_COMPLETED && afterHooksOpen(final) {
		select {
		case <-ctx.Done():
			err = ctx.Err()
			continue
		case <-time.After(200 * time.Millisecond):
		}
		cctx, ccancel := c.call(ctx)
		resp, gerr := c.GetOperation(cctx, &pb.GetOperationRequest{OpId: op.GetOpId()})
		ccancel()
		if gerr == nil {
			final = resp.GetOperation()
			p.update(final)
		} else if ctx.Err() != nil {
			err = ctx.Err()
		}
	}
	return endFollow(ctx, cmd, final, err, followEnd{
		detached: fmt.Sprintf("detached from backup %s; it goes on on the coordinator: stillpoint ops watch %s (then stillpoint backup show %s)", op.GetOpId(), op.GetOpId(), op.GetOpId()),
		noun:     "backup",
		print:    func(w io.Writer, o *pb.Operation) error { return printBackupOp(w, o, zone) },
	})
}

// printBackupOp is the human view of a backup op: the op, then its hooks.
func printBackupOp(w io.Writer, op *pb.Operation, zone string) error {
	if err := printOperation(w, op, zone); err != nil {
		return err
	}
	return printHooks(w, op.GetBackup())
}

// printHooks lists a backup's hook runs with the tail of their output.
func printHooks(w io.Writer, b *pb.BackupRun) error {
	flags := ""
	if b.GetPartial() {
		flags = " (PARTIAL: a hook with on_error continue failed; some artefacts may be missing)"
	}
	fmt.Fprintf(w, "Plan           %s%s\n", b.GetPlan().GetName(), flags)
	header := []string{"  STEP", "AGENT", "HOOK", "ON ERROR", "STATE", "EXIT", "DURATION", "MESSAGE"}
	var rows [][]string
	for _, h := range b.GetHooks() {
		dur := "-"
		if d := h.GetDurationNs(); d > 0 {
			dur = timefmt.Duration(time.Duration(d))
		}
		exit := "-"
		if h.GetState() != pb.HookState_HOOK_STATE_PENDING && h.GetState() != pb.HookState_HOOK_STATE_SKIPPED && h.GetState() != pb.HookState_HOOK_STATE_RUNNING {
			exit = fmt.Sprint(h.GetExitCode())
		}
		onErr := "abort"
		if h.GetRef().GetOnError() == pb.HookOnError_HOOK_ON_ERROR_CONTINUE {
			onErr = "continue"
		}
		rows = append(rows, []string{"  " + h.GetStepId(), h.GetRef().GetAgent(), h.GetRef().GetHook(), onErr, enumname.Of(h.GetState()), exit, dur, h.GetMessage()})
	}
	if err := table(w, header, rows); err != nil {
		return err
	}
	for _, h := range b.GetHooks() {
		if len(h.GetOutputTail()) == 0 {
			continue
		}
		more := ""
		if h.GetOutputTruncated() {
			more = ", earlier output dropped"
		}
		fmt.Fprintf(w, "Output of %s (last lines%s):\n", h.GetStepId(), more)
		for _, l := range tailLines(string(h.GetOutputTail()), 5) {
			fmt.Fprintf(w, "  | %s\n", l)
		}
	}
	return nil
}

// tailLines is the last n lines of s.
func tailLines(s string, n int) []string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines
}

func newBackupListCmd() *cobra.Command {
	var plan string
	var limit int
	var stale bool
	cmd := &cobra.Command{
		Use:     "list",
		Short:   "List completed backups (catalog entries), newest first",
		Example: "  stillpoint backup list --plan nightly --tz Asia/Tokyo",
		Args:    cobra.NoArgs,
	}
	cf := addClientFlags(cmd)
	zone := addZoneFlag(cmd)
	cmd.Flags().StringVar(&plan, "plan", "", "only this plan's backups")
	cmd.Flags().IntVar(&limit, "limit", 20, "at most this many (0: all)")
	cmd.Flags().BoolVar(&stale, "stale", false, "answer from the asked server's replica")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := asUsage(errors.Join(checkZone(*zone), checkLimit(limit))); err != nil {
			return err
		}
		return unary(cmd, cf, "list backups", func(ctx context.Context, c *coordinatorClient) (*pb.ListBackupsResponse, error) {
			return c.ListBackups(ctx, &pb.ListBackupsRequest{Plan: plan, Limit: int32(limit), Stale: stale})
		}, func(resp *pb.ListBackupsResponse) error {
			return backupsTable(cmd.OutOrStdout(), resp.GetBackups(), *zone)
		})
	}
	return cmd
}

// backupsTable lists backups with their hooks' tally and flags.
func backupsTable(w io.Writer, bs []*pb.RestorePoint, zone string) error {
	if len(bs) == 0 {
		_, err := fmt.Fprintln(w, "(no backups)")
		return err
	}
	header := []string{"BACKUP", "PLAN", "RESTORE POINT (UTC)", "±", "HOOKS OK", "FLAGS"}
	zc := newZoneColumn(zone)
	header = zc.header(header)
	var rows [][]string
	for _, b := range bs {
		t := b.GetWindow().GetRestorePoint().AsTime()
		ok := 0
		for _, h := range b.GetBackup().GetHooks() {
			if h.GetState() == pb.HookState_HOOK_STATE_SUCCEEDED {
				ok++
			}
		}
		var flags []string
		if b.GetInvalid() {
			flags = append(flags, "INVALID")
		}
		if b.GetPartial() {
			flags = append(flags, "partial")
		}
		if len(flags) == 0 {
			flags = append(flags, "-")
		}
		row := []string{b.GetOpId(), b.GetBackup().GetPlan().GetName(), timefmt.UTC(t), timefmt.PlusMinus(time.Duration(b.GetWindow().GetUncertaintyNs())),
			fmt.Sprintf("%d/%d", ok, len(b.GetBackup().GetHooks())), strings.Join(flags, ",")}
		rows = append(rows, zc.row(row, t))
	}
	return table(w, header, rows)
}

func newBackupShowCmd() *cobra.Command {
	var stale bool
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "Show one backup: plan, restore point, every hook's run and output",
		Long: `Show one backup by its id (its op id). A completed backup is shown from the
catalog: its restore point in UTC, epoch ms and --tz with the offset, the
partial and invalid flags, and every hook's state, exit code, duration and the
last lines of its output. A backup that did not complete (aborted, invalid, or
still running) is shown from its operation, with why.`,
		Example: "  stillpoint backup show op-20261202T031500.123Z-3f9a1c2d --tz Asia/Tokyo",
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
		out := cmd.OutOrStdout()
		resp, err := c.GetBackup(ctx, &pb.GetBackupRequest{BackupId: args[0], Stale: stale})
		if status.Code(err) == codes.NotFound {
			// No catalog entry: show the op, if it is a backup.
			if oresp, oerr := c.GetOperation(ctx, &pb.GetOperationRequest{OpId: args[0], Stale: stale}); oerr == nil && oresp.GetOperation().GetBackup() != nil {
				if cf.output == outputJSON {
					return printJSON(out, oresp.GetOperation())
				}
				return printBackupOp(out, oresp.GetOperation(), *zone)
			}
		}
		if err != nil {
			return c.rpcError("show backup "+args[0], err)
		}
		b := resp.GetBackup()
		if cf.output == outputJSON {
			return printJSON(out, b)
		}
		if err := printRestorePoint(out, b, *zone); err != nil {
			return err
		}
		return printHooks(out, b.GetBackup())
	}
	return cmd
}
