package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/stillpoint-dev/stillpoint/internal/scalaradmin"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// Event kinds recorded in AgentState.events.
const (
	EventLeaseExpired     = "lease_expired"
	EventExpiryFailed     = "lease_expiry_unpause_failed"
	EventNodeInterrupted  = "node_interrupted"
	EventLeaseRecovered   = "lease_recovered"
	EventReleasedOnStop   = "lease_released_on_stop"
	EventNodeUnreachable  = "node_unreachable"
	EventNodeReachable    = "node_reachable"
	EventStillPausedByOld = "still_paused_by_earlier_pause"
)

// pauseOutcome classifies the node's answer to Pause. mayBeClosed says the
// gate could be closed by us, so the lease must stay armed.
func pauseOutcome(err error) (out pb.NodeOutcome, mayBeClosed bool) {
	switch {
	case err == nil:
		return pb.NodeOutcome_NODE_OUTCOME_PAUSED, true
	case errors.Is(err, scalaradmin.ErrDrainTimedOut):
		return pb.NodeOutcome_NODE_OUTCOME_DRAIN_TIMED_OUT, false
	case errors.Is(err, scalaradmin.ErrStillPaused):
		return pb.NodeOutcome_NODE_OUTCOME_STILL_PAUSED, false
	case errors.Is(err, scalaradmin.ErrInvalidArgument):
		return pb.NodeOutcome_NODE_OUTCOME_FAILED, false
	case errors.Is(err, scalaradmin.ErrUnreachable), errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return pb.NodeOutcome_NODE_OUTCOME_UNREACHABLE, true
	}
	return pb.NodeOutcome_NODE_OUTCOME_FAILED, true
}

func unpauseFailureOutcome(err error) pb.NodeOutcome {
	if errors.Is(err, scalaradmin.ErrUnreachable) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return pb.NodeOutcome_NODE_OUTCOME_UNREACHABLE
	}
	return pb.NodeOutcome_NODE_OUTCOME_FAILED
}

// Pause writes the lease durably, then pauses the node. A repeated Pause
// for the held op returns the original ack.
func (c *core) Pause(ctx context.Context, req *pb.PauseRequest) (*pb.PauseResponse, error) {
	op := req.GetOpId()
	if err := validateOpID(c.cfg.Node, op); err != nil {
		return nil, err
	}
	lease, err := c.validateLease(req.GetLeaseMs())
	if err != nil {
		return nil, err
	}
	if req.GetMaxPauseWaitMs() < 0 {
		return nil, fmt.Errorf("%w: agent %s: max_pause_wait_ms %d must not be negative", ErrInvalidRequest, c.cfg.Node, req.GetMaxPauseWaitMs())
	}
	if req.GetMaxPauseWaitMs() >= req.GetLeaseMs() {
		return nil, fmt.Errorf("%w: agent %s: max_pause_wait_ms %d must be shorter than lease_ms %d (the lease would run out while the node drains)",
			ErrInvalidRequest, c.cfg.Node, req.GetMaxPauseWaitMs(), req.GetLeaseMs())
	}
	if err := c.acquire(ctx); err != nil {
		return nil, err
	}
	defer c.release()

	c.mu.Lock()
	if c.stopping || c.dead {
		c.mu.Unlock()
		return nil, fmt.Errorf("%w: agent %s refuses op %s", ErrStopping, c.cfg.Node, op)
	}
	if err := c.checkEpochLocked(op, req.GetEpoch()); err != nil {
		c.mu.Unlock()
		return nil, err
	}
	if l := c.p.Lease; l != nil {
		if l.OpID != op {
			c.mu.Unlock()
			return nil, fmt.Errorf("%w: agent %s is held by op %s (epoch %d); op %s must wait or abort",
				ErrOpHeld, c.cfg.Node, l.OpID, l.Epoch, op)
		}
		if l.Phase == phaseHeld && c.ack != nil {
			resp := proto.Clone(c.ack).(*pb.PauseResponse)
			resp.LeaseRemainingMs = c.remainingLocked().Milliseconds()
			c.mu.Unlock()
			return resp, nil
		}
		// Same op, earlier attempt's outcome unknown: try the node again
		// under the lease already armed.
	} else if res, ok := c.findEndedLocked(op); ok {
		c.mu.Unlock()
		return nil, fmt.Errorf("%w: agent %s: op %s already ended (%s: %s)", ErrOpEnded, c.cfg.Node, op, res.GetOutcome(), res.GetMessage())
	}
	if c.p.Lease == nil {
		now := c.clk.Now()
		next := c.p
		next.MaxEpoch = max(c.p.MaxEpoch, req.GetEpoch())
		next.Lease = &leaseRecord{
			OpID: op, Epoch: req.GetEpoch(), Phase: phasePausing,
			DeadlineUnixNS: now.Add(lease).UnixNano(), LeaseMS: req.GetLeaseMs(), StartedUnixNS: now.UnixNano(),
		}
		if err := c.saveLocked(next); err != nil {
			c.mu.Unlock()
			return nil, fmt.Errorf("agent %s did not pause its node for op %s: %w", c.cfg.Node, op, err)
		}
		c.p = next
		c.leaseMono = now.Add(lease)
		c.interruptedOp = ""
		c.lostDuringOp = ""
		c.signalRearm()
	}
	c.draining = true
	until := c.remainingLocked()
	c.mu.Unlock()
	c.changed()

	log := c.log.With(zap.String("op_id", op), zap.Uint64("epoch", req.GetEpoch()))
	log.Info("pausing node", zap.Int64("lease_ms", req.GetLeaseMs()), zap.Bool("wait_outstanding", req.GetWaitOutstanding()),
		zap.Int64("max_pause_wait_ms", req.GetMaxPauseWaitMs()))
	// The node call may not outlive the lease: past it, the dead-man
	// switch must be free to unpause.
	pctx, cancel := context.WithTimeout(ctx, until)
	maxWait := time.Duration(req.GetMaxPauseWaitMs()) * time.Millisecond
	err = retryRetryable(pctx, func(ctx context.Context) error { return c.admin.Pause(ctx, req.GetWaitOutstanding(), maxWait) })
	cancel()
	acked := c.stampNow() // read right after the ack

	c.mu.Lock()
	defer c.mu.Unlock()
	c.draining = false
	defer c.changed()
	out, mayBeClosed := pauseOutcome(err)
	resp := &pb.PauseResponse{Node: c.cfg.Node, Outcome: out}
	l := c.p.Lease
	switch {
	case err == nil:
		resp.Message = "paused and drained"
		resp.AckedAt = acked
		resp.LeaseRemainingMs = c.remainingLocked().Milliseconds()
		if l == nil || l.OpID != op { // cannot happen while sem is held
			return nil, fmt.Errorf("agent %s lost the lease of op %s while pausing", c.cfg.Node, op)
		}
		b, merr := proto.Marshal(resp)
		if merr != nil {
			return nil, fmt.Errorf("encode ack of op %s: %w", op, merr)
		}
		next := c.p
		nl := *l
		nl.Phase = phaseHeld
		nl.Ack = b
		next.Lease = &nl
		c.p = next
		c.ack = resp
		c.ackMono = c.clk.Now()
		if serr := c.saveLocked(next); serr != nil {
			// The lease on disk is still "pausing", which a restarted agent
			// treats the same way: it unpauses on expiry.
			log.Error("cannot persist the ack; lease stays on disk as pausing", zap.Error(serr))
		}
		log.Info("node paused", zap.Int64("lease_remaining_ms", resp.LeaseRemainingMs))
		return proto.Clone(resp).(*pb.PauseResponse), nil
	case !mayBeClosed:
		// The node did not close its gate for us: release the lease
		// without unpausing (TIMED_OUT_STILL_PAUSED: an earlier pause holds
		// the gate, and it is not ours to open).
		resp.Message = fmt.Sprintf("node of agent %s did not pause for op %s: %v", c.cfg.Node, op, err)
		res := &pb.UnpauseResponse{Node: c.cfg.Node, Outcome: out, Message: "nothing to unpause: " + resp.Message}
		if out == pb.NodeOutcome_NODE_OUTCOME_STILL_PAUSED {
			res.Message = fmt.Sprintf("not unpaused: an earlier pause still holds the gate of node %s; the agent does not open a gate it did not close", c.cfg.Node)
			c.eventLocked(EventStillPausedByOld, op, res.Message)
		}
		if l != nil && l.OpID == op {
			if serr := c.endLocked(op, l.Epoch, res); serr != nil {
				log.Error("cannot persist the released lease", zap.Error(serr))
			}
		}
		log.Warn("node did not pause", zap.String("outcome", out.String()), zap.Error(err))
		return resp, nil
	default:
		remaining := c.remainingLocked()
		resp.LeaseRemainingMs = remaining.Milliseconds()
		resp.Message = fmt.Sprintf("node of agent %s may or may not be paused for op %s (%v); the lease stays armed: Unpause, or the agent unpauses by itself in %d ms",
			c.cfg.Node, op, err, remaining.Milliseconds())
		log.Warn("pause outcome unknown; lease stays armed", zap.String("outcome", out.String()), zap.Error(err))
		return resp, nil
	}
}

// RenewLease extends the held op's lease to lease_ms from now.
func (c *core) RenewLease(_ context.Context, req *pb.RenewLeaseRequest) (*pb.RenewLeaseResponse, error) {
	op := req.GetOpId()
	if err := validateOpID(c.cfg.Node, op); err != nil {
		return nil, err
	}
	lease, err := c.validateLease(req.GetLeaseMs())
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopping || c.dead {
		return nil, fmt.Errorf("%w: agent %s cannot renew op %s", ErrStopping, c.cfg.Node, op)
	}
	if err := c.checkEpochLocked(op, req.GetEpoch()); err != nil {
		return nil, err
	}
	l := c.p.Lease
	if l == nil || l.OpID != op {
		if res, ok := c.findEndedLocked(op); ok {
			if res.GetLeaseExpired() {
				return nil, fmt.Errorf("%w: agent %s: lease of op %s ran out and the agent unpaused its node", ErrLeaseExpired, c.cfg.Node, op)
			}
			return nil, fmt.Errorf("%w: agent %s: op %s already ended (%s)", ErrOpEnded, c.cfg.Node, op, res.GetOutcome())
		}
		if l != nil {
			return nil, fmt.Errorf("%w: agent %s holds op %s, not %s", ErrNoSuchOp, c.cfg.Node, l.OpID, op)
		}
		return nil, fmt.Errorf("%w: agent %s holds no op (asked to renew %s)", ErrNoSuchOp, c.cfg.Node, op)
	}
	if c.remainingLocked() <= 0 || c.unpausing {
		return nil, fmt.Errorf("%w: agent %s: lease of op %s ran out; the agent is unpausing its node", ErrLeaseExpired, c.cfg.Node, op)
	}
	now := c.clk.Now()
	next := c.p
	nl := *l
	nl.Epoch = req.GetEpoch()
	nl.DeadlineUnixNS = now.Add(lease).UnixNano()
	nl.LeaseMS = req.GetLeaseMs()
	next.Lease = &nl
	next.MaxEpoch = max(c.p.MaxEpoch, req.GetEpoch())
	if err := c.saveLocked(next); err != nil {
		return nil, fmt.Errorf("agent %s did not renew op %s: %w", c.cfg.Node, op, err)
	}
	c.p = next
	c.leaseMono = now.Add(lease)
	c.signalRearm()
	return &pb.RenewLeaseResponse{LeaseRemainingMs: c.remainingLocked().Milliseconds()}, nil
}

// Unpause opens the node's gate for the held op and releases the lease. A
// repeated Unpause returns the original result.
func (c *core) Unpause(ctx context.Context, req *pb.UnpauseRequest) (*pb.UnpauseResponse, error) {
	op := req.GetOpId()
	if err := validateOpID(c.cfg.Node, op); err != nil {
		return nil, err
	}
	if err := c.acquire(ctx); err != nil {
		return nil, err
	}
	defer c.release()
	// Look at the gate once more before releasing it: a node that restarted
	// since the last poll comes back unpaused, and the op must hear of it.
	c.checkNode(ctx)

	c.mu.Lock()
	if err := c.checkEpochLocked(op, req.GetEpoch()); err != nil {
		c.mu.Unlock()
		return nil, err
	}
	if res, ok := c.findEndedLocked(op); ok {
		c.mu.Unlock()
		return res, nil
	}
	l := c.p.Lease
	if l == nil || l.OpID != op {
		c.mu.Unlock()
		if l != nil {
			return nil, fmt.Errorf("%w: agent %s holds op %s, not %s; nothing unpaused", ErrNoSuchOp, c.cfg.Node, l.OpID, op)
		}
		return nil, fmt.Errorf("%w: agent %s holds no op (asked to unpause %s); nothing unpaused", ErrNoSuchOp, c.cfg.Node, op)
	}
	if c.dead {
		c.mu.Unlock()
		return nil, fmt.Errorf("%w: agent %s was killed", ErrStopping, c.cfg.Node)
	}
	if req.GetEpoch() > c.p.MaxEpoch {
		next := c.p
		next.MaxEpoch = req.GetEpoch()
		if err := c.saveLocked(next); err != nil {
			c.mu.Unlock()
			return nil, fmt.Errorf("agent %s did not unpause op %s: %w", c.cfg.Node, op, err)
		}
		c.p = next
	}
	c.unpausing = true
	c.mu.Unlock()

	sent := c.stampNow() // read just before Unpause is sent
	uctx, cancel := context.WithTimeout(ctx, c.cfg.CallTimeout)
	err := retryRetryable(uctx, c.admin.Unpause)
	cancel()

	c.mu.Lock()
	defer c.mu.Unlock()
	defer c.changed()
	log := c.log.With(zap.String("op_id", op), zap.Uint64("epoch", req.GetEpoch()))
	if err != nil {
		c.unpausing = false
		remaining := c.remainingLocked()
		log.Warn("unpause failed; lease stays armed", zap.Error(err), zap.Duration("lease_remaining", remaining))
		return &pb.UnpauseResponse{
			Node: c.cfg.Node, Outcome: unpauseFailureOutcome(err), SentAt: sent,
			Message: fmt.Sprintf("unpause of node %s for op %s failed: %v; the lease stays armed and the agent unpauses by itself in %d ms",
				c.cfg.Node, op, err, remaining.Milliseconds()),
		}, nil
	}
	res := &pb.UnpauseResponse{Node: c.cfg.Node, Outcome: pb.NodeOutcome_NODE_OUTCOME_UNPAUSED, SentAt: sent, Message: "unpaused"}
	c.noteGateLocked(gateUnpaused)
	if c.interruptedOp == op {
		res.Interrupted = true
		res.Message = fmt.Sprintf("unpaused; but node %s was seen unpaused during op %s (it restarted): the window is invalid", c.cfg.Node, op)
	}
	if serr := c.endLocked(op, l.Epoch, res); serr != nil {
		log.Error("cannot persist the released lease", zap.Error(serr))
	}
	log.Info("node unpaused")
	return proto.Clone(res).(*pb.UnpauseResponse), nil
}
