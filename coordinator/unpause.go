package coordinator

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stillpoint-dev/stillpoint/internal/enumname"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// allTargets selects every target of an op.
func allTargets(*pb.TargetRecord) bool { return true }

// release records UNPAUSING, then unpauses the chosen targets.
func (r *pauseRunner) release(ctx context.Context, op *pb.Operation, which func(*pb.TargetRecord) bool) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	op.State = pb.OperationState_OPERATION_STATE_UNPAUSING
	if err := r.persist(ctx, op); err != nil {
		return err
	}
	r.unpauseTargets(ctx, op, which)
	return ctx.Err()
}

// endEarly ends an op without a window: the chosen targets are unpaused
// and the op ends in state (ABORTED, or INVALID when the hold was
// invalidated) with why. The end state is recorded with UNPAUSING, so a
// new leader that takes over ends the op the same way.
func (r *pauseRunner) endEarly(ctx context.Context, op *pb.Operation, state pb.OperationState, why string, which func(*pb.TargetRecord) bool) (*pb.Operation, error) {
	r.log.Warn("operation ending without a window; unpausing", zap.String("state", state.String()), zap.String("reason", why))
	op.Reason = why
	op.EndState = state
	if err := r.release(ctx, op, which); err != nil {
		return nil, err
	}
	op.State = state
	op.Reason += leaseReleasedNote(op)
	op.EndedAt = r.stamp()
	return op, r.persist(ctx, op)
}

// leaseReleasedNote names the targets left to their own lease, for the
// op's reason ("" when none).
func leaseReleasedNote(op *pb.Operation) string {
	if len(op.GetLeaseReleased()) == 0 {
		return ""
	}
	return "; released by their own lease: " + strings.Join(op.GetLeaseReleased(), ", ")
}

// unpauseAndFinish unpauses every target after a full hold, then records
// COMPLETED with the window, or INVALID with why.
func (r *pauseRunner) unpauseAndFinish(ctx context.Context, op *pb.Operation) (*pb.Operation, error) {
	if err := r.release(ctx, op, allTargets); err != nil {
		return nil, err
	}
	op.EndedAt = r.stamp()
	var unconfirmed []string
	for _, t := range op.GetTargets() {
		if t.GetUnpauseOutcome() != pb.NodeOutcome_NODE_OUTCOME_UNPAUSED || t.GetUnpauseSentAt() == nil {
			unconfirmed = append(unconfirmed, fmt.Sprintf("%s: %s (%s)", t.GetNode(), enumname.Of(t.GetUnpauseOutcome()), t.GetUnpauseMessage()))
		}
		if t.GetLeaseExpired() {
			unconfirmed = append(unconfirmed, t.GetNode()+": lease had expired, the agent unpaused on its own")
		}
		if t.GetNodeInterrupted() {
			unconfirmed = append(unconfirmed, fmt.Sprintf("%s: not confirmed paused up to its unpause stamp (%s)", t.GetNode(), t.GetUnpauseMessage()))
		}
	}
	if len(unconfirmed) > 0 {
		op.State = pb.OperationState_OPERATION_STATE_INVALID
		op.Reason = "unpause not confirmed: " + strings.Join(unconfirmed, "; ") + leaseReleasedNote(op) + endedNote(op)
		return op, r.persist(ctx, op)
	}
	if why := r.endedBeforeMinimum(op); why != "" {
		op.State = pb.OperationState_OPERATION_STATE_INVALID
		op.Reason = why + endedNote(op)
		r.log.Warn("hold ended before its minimum", zap.String("reason", op.Reason))
		return op, r.persist(ctx, op)
	}
	w, err := computeWindow(op, r.cfg)
	if err != nil {
		op.State = pb.OperationState_OPERATION_STATE_INVALID
		op.Reason = err.Error() + endedNote(op)
		r.log.Warn("window invalid", zap.Error(err))
		return op, r.persist(ctx, op)
	}
	op.Window = w
	op.State = pb.OperationState_OPERATION_STATE_COMPLETED
	r.log.Info("operation completed",
		zap.Time("restore_point", w.GetRestorePoint().AsTime()),
		zap.Duration("uncertainty", time.Duration(w.GetUncertaintyNs())),
		zap.Duration("width", time.Duration(w.GetWidthNs())))
	return op, r.persist(ctx, op)
}

// endedNote says, for an op whose hold an operator ended (end_state
// COMPLETED) and that ends INVALID, who ended it ("" otherwise).
func endedNote(op *pb.Operation) string {
	if op.GetEndState() != pb.OperationState_OPERATION_STATE_COMPLETED {
		return ""
	}
	if strings.HasPrefix(op.GetReason(), holdEndedPrefix) {
		return "; " + op.GetReason()
	}
	return "; " + holdEndedPrefix + op.GetReason()
}

// endedBeforeMinimum reports, for an op whose hold an operator ended,
// why it ended before the minimum hold the clocks' uncertainty requires
// ("" when it did not, or nobody ended it). The minimum still applies: such
// an op ends INVALID.
func (r *pauseRunner) endedBeforeMinimum(op *pb.Operation) string {
	d := op.GetHoldDeadline()
	if op.GetEndState() != pb.OperationState_OPERATION_STATE_COMPLETED || d == nil {
		return ""
	}
	start := d.GetLocalTime().AsTime().Add(-holdSpan(op))
	held := r.stamp().GetLocalTime().AsTime().Sub(start)
	need := minHold(0, maxAckBound(op), r.cfg)
	if held >= need {
		return ""
	}
	return fmt.Sprintf("the hold ended after %s, before the minimum hold %s the clocks' uncertainty requires (max error bound %s)",
		held, need, maxAckBound(op))
}

// Unpause retry backoff: unpauseBackoffMin doubling to unpauseBackoffMax.
const (
	unpauseBackoffMin = 100 * time.Millisecond
	unpauseBackoffMax = 2 * time.Second
)

// unpauseTargets sends Unpause to the chosen targets in parallel,
// recording each outcome and the agent's stamped send time. An agent that
// does not answer (a partition, a crash and restart), or whose node's
// unpause failed while the op's lease stays armed, is retried with backoff
// until it answers or its lease has surely run out; a target given up on
// is recorded in op.lease_released: its node is left to its agent's lease.
func (r *pauseRunner) unpauseTargets(ctx context.Context, op *pb.Operation, which func(*pb.TargetRecord) bool) {
	var mu sync.Mutex
	var released []string
	r.fanOut(op, func(t *pb.TargetRecord) {
		if !which(t) {
			return
		}
		if r.unpauseTarget(ctx, op, t) || t.GetLeaseExpired() {
			mu.Lock()
			released = append(released, t.GetNode())
			mu.Unlock()
		}
	})
	sort.Strings(released)
	for _, n := range released {
		if !slices.Contains(op.LeaseReleased, n) {
			op.LeaseReleased = append(op.LeaseReleased, n)
		}
	}
}

// unpauseTarget unpauses one target, retrying as unpauseTargets says. It
// reports whether it gave up because the target's lease had surely run
// out.
func (r *pauseRunner) unpauseTarget(ctx context.Context, op *pb.Operation, t *pb.TargetRecord) (leftToLease bool) {
	lease := time.Duration(op.GetLeaseMs()) * time.Millisecond
	giveUp, ok := r.leases.runsOutBy(t.GetNode())
	if !ok {
		giveUp = r.clock.Now().Add(lease + leaseSlack)
	}
	log := r.log.With(zap.String("target", t.GetNode()))
	backoff := unpauseBackoffMin
	for attempt := 1; ; attempt++ {
		cctx, cancel := context.WithTimeout(ctx, rpcSlack)
		c, err := r.agents.agent(t.GetGrpcAddress())
		var resp *pb.UnpauseResponse
		if err == nil {
			resp, err = c.Unpause(cctx, &pb.UnpauseRequest{OpId: op.GetOpId(), Epoch: r.epoch})
		}
		cancel()
		retry := false
		switch {
		case err == nil:
			t.UnpauseOutcome, t.UnpauseMessage, t.UnpauseSentAt = resp.GetOutcome(), resp.GetMessage(), resp.GetSentAt()
			t.LeaseExpired = resp.GetLeaseExpired()
			// The agent could not confirm the node stayed paused up to its
			// stamp (it restarted, or did not answer): the message says
			// which.
			t.NodeInterrupted = t.GetNodeInterrupted() || resp.GetInterrupted()
			// A node this op paused whose unpause failed: the lease stays
			// armed, ask again.
			retry = resp.GetOutcome() != pb.NodeOutcome_NODE_OUTCOME_UNPAUSED && !resp.GetLeaseExpired() &&
				t.GetPauseOutcome() == pb.NodeOutcome_NODE_OUTCOME_PAUSED
		default:
			t.UnpauseOutcome = rpcOutcome(err)
			t.UnpauseMessage = fmt.Sprintf("agent %s: %s", t.GetGrpcAddress(), status.Convert(err).Message())
			retry = unpauseRetryable(err)
		}
		if !retry || ctx.Err() != nil {
			return false
		}
		now := r.clock.Now()
		if !now.Before(giveUp) {
			t.UnpauseMessage = fmt.Sprintf("%s; after %d attempts the lease had surely run out: node %s was released by its own lease (if its agent lives)",
				t.GetUnpauseMessage(), attempt, t.GetNode())
			log.Warn("unpause not confirmed before the lease ran out; the node is left to its own lease", zap.Int("attempts", attempt), zap.String("message", t.GetUnpauseMessage()))
			return true
		}
		wait := min(backoff, giveUp.Sub(now))
		log.Info("unpause not confirmed; retrying", zap.Int("attempt", attempt), zap.Duration("backoff", wait), zap.String("message", t.GetUnpauseMessage()))
		select {
		case <-ctx.Done():
			return false
		case <-r.clock.After(wait):
		}
		backoff = min(2*backoff, unpauseBackoffMax)
	}
}

// unpauseRetryable: no answer, or the agent failed (an internal error, a
// busy lock) and may succeed later. A refusal is final: the agent holds no
// lease for this op, the epoch is stale, the op or its lease already ended,
// the request is malformed.
func unpauseRetryable(err error) bool {
	switch status.Code(err) {
	case codes.NotFound, codes.FailedPrecondition, codes.InvalidArgument, codes.PermissionDenied, codes.Unauthenticated, codes.Unimplemented:
		return false
	}
	return true
}
