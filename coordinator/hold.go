package coordinator

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// maxAckBound is the largest error bound among the targets' ack readings.
func maxAckBound(op *pb.Operation) time.Duration {
	var m int64
	for _, t := range op.GetTargets() {
		if b := t.GetAckedAt().GetEstimate().GetErrorBoundNs(); b > m {
			m = b
		}
	}
	return time.Duration(m)
}

// chooseHold sets op's hold from the requested hold and the acks' bounds.
func (r *pauseRunner) chooseHold(op *pb.Operation) time.Duration {
	maxBound := maxAckBound(op)
	hold := minHold(time.Duration(op.GetRequestedHoldMs())*time.Millisecond, maxBound, r.cfg)
	op.HoldNs = int64(hold)
	r.log.Info("holding", zap.Duration("hold", hold), zap.Duration("max_bound", maxBound))
	return hold
}

// holdAndFinish holds the targets paused for what is left of the hold,
// renewing leases (a third of the smallest lease left apart) and watching
// membership, then unpauses and records the window. A backup's during
// hooks run here; its hold ends when the last group has ended and the
// minimum hold has passed.
func (r *pauseRunner) holdAndFinish(ctx context.Context, op *pb.Operation, left time.Duration) (*pb.Operation, error) {
	lease := time.Duration(op.GetLeaseMs()) * time.Millisecond
	renew := r.clock.NewTimer(r.leases.renewIn(r.clock.Now(), lease))
	defer renew.Stop()
	poll := r.clock.NewTicker(holdPollInterval(time.Duration(op.GetHoldNs())))
	defer poll.Stop()
	deadline := r.clock.NewTimer(max(left, 0))
	defer deadline.Stop()
	var hooks *hookDriver
	var hookUpdates <-chan hookUpdate
	var hooksDone <-chan string
	var rec *runRecorder
	var recFailed <-chan error
	if op.GetBackup() != nil {
		hooks = r.startHooks(ctx, op)
		defer hooks.stop()
		hookUpdates, hooksDone = hooks.updates, hooks.done
		rec = r.startRecorder(ctx)
		recFailed = rec.failed
	}
	// end stops the hooks' recorder before the op's next record.
	end := func(f func(context.Context, *pb.Operation) (*pb.Operation, error)) (*pb.Operation, error) {
		if rec != nil {
			rec.close()
			rec = nil
		}
		return f(ctx, op)
	}
	defer func() {
		if rec != nil {
			rec.close()
		}
	}()
	// interrupt stops the hooks for an end of the hold that did not wait
	// for them; it reports the interrupted runs that abort the backup.
	interrupt := func(why string) string {
		if hooks == nil || hooksDone == nil {
			return ""
		}
		hooks.stop()
		hookUpdates, hooksDone = nil, nil
		var abort []string
		for _, h := range closeRuns(op, func(h *pb.HookRun) bool { return !isAfter(h) }, why) {
			op.Backup.Partial = true
			if abortsOnError(h.GetRef()) {
				abort = append(abort, describeRun(h))
			}
		}
		return strings.Join(abort, "; ")
	}
	var minHeld <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-r.force:
			if r.forceAbort {
				interrupt("the backup was aborted by the operator")
				return end(r.earlyEnd(pb.OperationState_OPERATION_STATE_ABORTED, forceAbortedPrefix+r.forceReason))
			}
			// The operator's end of the hold wins over the hooks: those
			// still running fail (their artefacts are not from inside the
			// pause) and the entry is partial; --abort discards it.
			interrupt("the operator ended the hold while it ran (" + r.forceReason + ")")
			if op.GetEndState() == pb.OperationState_OPERATION_STATE_UNSPECIFIED {
				markEnd(op, false, r.forceReason)
			}
			return end(r.finishHold)
		case u := <-hookUpdates:
			setRun(op, u.run)
			if hookFailed(u.run.GetState()) {
				op.Backup.Partial = true
			}
			rec.submit(op, u.committed)
		case err := <-recFailed:
			return nil, err
		case why := <-hooksDone:
			hooks.stop()
			hookUpdates, hooksDone = nil, nil
			if why != "" {
				return end(r.earlyEnd(pb.OperationState_OPERATION_STATE_ABORTED, why))
			}
			need := minHoldLeft(op, r.stamp())
			r.log.Info("every hook group ended", zap.Duration("minimum_hold_left", need))
			if need <= 0 {
				return end(r.finishHold)
			}
			t := r.clock.NewTimer(need)
			defer t.Stop()
			minHeld = t.Chan()
		case <-minHeld:
			return end(r.finishHold)
		case <-renew.Chan():
			if why := r.renewAll(ctx, op); why != "" {
				interrupt("the hold was invalidated: " + why)
				return end(r.earlyEnd(pb.OperationState_OPERATION_STATE_INVALID, why))
			}
			renew.Reset(r.leases.renewIn(r.clock.Now(), lease))
		case <-poll.Chan():
			if why := r.watch(op); why != "" {
				interrupt("the hold was invalidated: " + why)
				return end(r.earlyEnd(pb.OperationState_OPERATION_STATE_INVALID, why))
			}
		case <-deadline.Chan():
			if op.GetUntilUnpaused() && op.GetReason() == "" {
				op.Reason = fmt.Sprintf("no unpause came within the maximum hold %s: the hold ended there", holdSpan(op))
			}
			if abort := interrupt(fmt.Sprintf("still running when the maximum hold %s ran out", holdSpan(op))); abort != "" {
				return end(r.earlyEnd(pb.OperationState_OPERATION_STATE_ABORTED, "backup aborted: "+abort))
			}
			return end(r.finishHold)
		}
	}
}

// earlyEnd is endEarly of every target as a step for holdAndFinish's end.
func (r *pauseRunner) earlyEnd(state pb.OperationState, why string) func(context.Context, *pb.Operation) (*pb.Operation, error) {
	return func(ctx context.Context, op *pb.Operation) (*pb.Operation, error) {
		return r.endEarly(ctx, op, state, why, allTargets)
	}
}

// finishHold ends the hold: a problem the watch sees ends the op INVALID
// without a window; otherwise every target is unpaused and the window
// decides.
func (r *pauseRunner) finishHold(ctx context.Context, op *pb.Operation) (*pb.Operation, error) {
	if why := r.watch(op); why != "" {
		return r.endEarly(ctx, op, pb.OperationState_OPERATION_STATE_INVALID, why, allTargets)
	}
	return r.unpauseAndFinish(ctx, op)
}

// holdSpan is how long op holds unless an operator ends it: its hold, or
// for a pause held until unpaused its maximum hold (never below the
// minimum).
func holdSpan(op *pb.Operation) time.Duration {
	if op.GetUntilUnpaused() {
		return max(time.Duration(op.GetMaxHoldNs()), time.Duration(op.GetHoldNs()))
	}
	return time.Duration(op.GetHoldNs())
}

// holdPollInterval is how often the hold checks membership: often enough
// to notice within a short hold, at most every 50ms.
func holdPollInterval(hold time.Duration) time.Duration {
	p := hold / 4
	if p > 50*time.Millisecond || p <= 0 {
		p = 50 * time.Millisecond
	}
	if p < time.Millisecond {
		p = time.Millisecond
	}
	return p
}

// renewAll renews every target's lease; it returns why the window is lost
// when a lease could not be renewed.
func (r *pauseRunner) renewAll(ctx context.Context, op *pb.Operation) string {
	var mu sync.Mutex
	var lost []string
	r.fanOut(op, func(t *pb.TargetRecord) {
		cctx, cancel := context.WithTimeout(ctx, rpcSlack)
		defer cancel()
		sent := r.clock.Now()
		c, err := r.agents.agent(t.GetGrpcAddress())
		if err == nil {
			var resp *pb.RenewLeaseResponse
			resp, err = c.RenewLease(cctx, &pb.RenewLeaseRequest{OpId: op.GetOpId(), Epoch: r.epoch, LeaseMs: op.GetLeaseMs()})
			if err == nil {
				r.leases.answered(t.GetNode(), sent, r.clock.Now(), time.Duration(resp.GetLeaseRemainingMs())*time.Millisecond)
			}
		}
		if err != nil {
			r.leases.unknown(t.GetNode(), r.clock.Now(), time.Duration(op.GetLeaseMs())*time.Millisecond)
			mu.Lock()
			lost = append(lost, fmt.Sprintf("%s: lease renewal failed: %v", t.GetNode(), err))
			mu.Unlock()
		}
	})
	if ctx.Err() != nil {
		return ""
	}
	sort.Strings(lost)
	return strings.Join(lost, "; ")
}
