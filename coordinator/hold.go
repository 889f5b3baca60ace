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
// membership, then unpauses and records the window.
func (r *pauseRunner) holdAndFinish(ctx context.Context, op *pb.Operation, left time.Duration) (*pb.Operation, error) {
	lease := time.Duration(op.GetLeaseMs()) * time.Millisecond
	renew := r.clock.NewTimer(r.leases.renewIn(r.clock.Now(), lease))
	defer renew.Stop()
	poll := r.clock.NewTicker(holdPollInterval(time.Duration(op.GetHoldNs())))
	defer poll.Stop()
	deadline := r.clock.NewTimer(max(left, 0))
	defer deadline.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-r.force:
			if r.forceAbort {
				return r.endEarly(ctx, op, pb.OperationState_OPERATION_STATE_ABORTED, forceAbortedPrefix+r.forceReason, allTargets)
			}
			if op.GetEndState() == pb.OperationState_OPERATION_STATE_UNSPECIFIED {
				markEnd(op, false, r.forceReason)
			}
			return r.finishHold(ctx, op)
		case <-renew.Chan():
			if why := r.renewAll(ctx, op); why != "" {
				return r.endEarly(ctx, op, pb.OperationState_OPERATION_STATE_INVALID, why, allTargets)
			}
			renew.Reset(r.leases.renewIn(r.clock.Now(), lease))
		case <-poll.Chan():
			if why := r.watch(op); why != "" {
				return r.endEarly(ctx, op, pb.OperationState_OPERATION_STATE_INVALID, why, allTargets)
			}
		case <-deadline.Chan():
			if op.GetUntilUnpaused() && op.GetReason() == "" {
				op.Reason = fmt.Sprintf("no unpause came within the maximum hold %s: the hold ended there", holdSpan(op))
			}
			return r.finishHold(ctx, op)
		}
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
