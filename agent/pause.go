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
	EventPauseCancelled   = "pause_cancelled_while_draining"
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
	lease, err := c.validatePause(req)
	if err != nil {
		return nil, err
	}
	if err := c.acquire(ctx); err != nil {
		return nil, err
	}
	defer c.release()

	repeat, until, err := c.armPauseLease(req, lease)
	if err != nil || repeat != nil {
		return repeat, err
	}

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
	return c.settlePause(ctx, op, err, acked, log)
}

// validatePause checks a PauseRequest's fields and returns its lease.
func (c *core) validatePause(req *pb.PauseRequest) (time.Duration, error) {
	if err := validateOpID(c.cfg.Node, req.GetOpId()); err != nil {
		return 0, err
	}
	lease, err := c.validateLease(req.GetLeaseMs())
	if err != nil {
		return 0, err
	}
	if req.GetMaxPauseWaitMs() < 0 {
		return 0, fmt.Errorf("%w: agent %s: max_pause_wait_ms %d must not be negative", ErrInvalidRequest, c.cfg.Node, req.GetMaxPauseWaitMs())
	}
	if req.GetMaxPauseWaitMs() >= req.GetLeaseMs() {
		return 0, fmt.Errorf("%w: agent %s: max_pause_wait_ms %d must be shorter than lease_ms %d (the lease would run out while the node drains)",
			ErrInvalidRequest, c.cfg.Node, req.GetMaxPauseWaitMs(), req.GetLeaseMs())
	}
	return lease, nil
}

// armPauseLease admits req under c.mu (fencing, a held or ended op) and
// durably arms its lease unless this op already holds it; it marks the
// node draining and returns how long the node call may take. A repeat of
// an acked op returns the original ack instead (repeat).
func (c *core) armPauseLease(req *pb.PauseRequest, lease time.Duration) (repeat *pb.PauseResponse, until time.Duration, err error) {
	op := req.GetOpId()
	c.mu.Lock()
	if c.stopping || c.dead {
		c.mu.Unlock()
		return nil, 0, fmt.Errorf("%w: agent %s refuses op %s", ErrStopping, c.cfg.Node, op)
	}
	if err := c.fenceLocked(op, req.GetEpoch()); err != nil {
		c.mu.Unlock()
		return nil, 0, err
	}
	l := c.p.Lease
	if res, ok := c.findEndedLocked(op); ok && (l == nil || l.OpID != op) {
		c.mu.Unlock()
		return nil, 0, fmt.Errorf("%w: agent %s: op %s already ended (%s: %s)", ErrOpEnded, c.cfg.Node, op, res.GetOutcome(), res.GetMessage())
	}
	if l != nil {
		if l.OpID != op {
			c.mu.Unlock()
			return nil, 0, fmt.Errorf("%w: agent %s is held by op %s (epoch %d); op %s must wait or abort",
				ErrOpHeld, c.cfg.Node, l.OpID, l.Epoch, op)
		}
		if l.Phase == phaseHeld && c.ack != nil {
			resp := proto.Clone(c.ack).(*pb.PauseResponse)
			resp.LeaseRemainingMs = c.remainingLocked().Milliseconds()
			c.mu.Unlock()
			return resp, 0, nil
		}
		// Same op, earlier attempt's outcome unknown: try the node again
		// under the lease already armed.
	}
	if l == nil {
		now := c.clk.Now()
		next := c.p
		next.MaxEpoch = max(c.p.MaxEpoch, req.GetEpoch())
		next.Lease = &leaseRecord{
			OpID: op, Epoch: req.GetEpoch(), Phase: phasePausing,
			DeadlineUnixNS: now.Add(lease).UnixNano(), LeaseMS: req.GetLeaseMs(), StartedUnixNS: now.UnixNano(),
		}
		if err := c.saveLocked(next); err != nil {
			c.mu.Unlock()
			return nil, 0, fmt.Errorf("agent %s did not pause its node for op %s: %w", c.cfg.Node, op, err)
		}
		c.p = next
		c.leaseMono = now.Add(lease)
		c.interruptedOp = ""
		c.lostDuringOp = ""
		c.signalRearm()
	}
	c.draining = true
	until = c.remainingLocked()
	c.mu.Unlock()
	c.changed()
	return nil, until, nil
}

// settlePause records what the node call for op answered (err, acked read
// right after it): the ack, a release of a lease whose node did not pause,
// or an armed lease when the outcome is unknown. An Unpause that gave up
// while the node drained cancels the pause instead.
func (c *core) settlePause(ctx context.Context, op string, err error, acked *pb.StampedTime, log *zap.Logger) (*pb.PauseResponse, error) {
	out, mayBeClosed := pauseOutcome(err)
	c.mu.Lock()
	c.draining = false
	l := c.p.Lease
	if mayBeClosed && c.cancelOp == op && l != nil && l.OpID == op {
		// An Unpause of this op gave up waiting while the node drained:
		// the op is over, so the gate it may have closed opens now.
		lr := *l
		c.unpausing = true
		c.mu.Unlock()
		return nil, c.cancelPause(ctx, lr, err)
	}
	defer c.mu.Unlock()
	defer c.changed()
	resp := &pb.PauseResponse{Node: c.cfg.Node, Outcome: out}
	switch {
	case err == nil:
		return c.recordAckLocked(op, l, resp, acked, log)
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

// recordAckLocked (c.mu held) turns op's lease l to held with resp as its
// durable ack.
func (c *core) recordAckLocked(op string, l *leaseRecord, resp *pb.PauseResponse, acked *pb.StampedTime, log *zap.Logger) (*pb.PauseResponse, error) {
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
	if err := c.fenceLocked(op, req.GetEpoch()); err != nil {
		return nil, err
	}
	l := c.p.Lease
	if l == nil || l.OpID != op {
		if res, ok := c.findEndedLocked(op); ok && !c.unseenLocked(op) {
			if res.GetLeaseExpired() {
				return nil, fmt.Errorf("%w: agent %s: lease of op %s ran out and the agent unpaused its node", ErrLeaseExpired, c.cfg.Node, op)
			}
			return nil, fmt.Errorf("%w: agent %s: op %s already ended (%s)", ErrOpEnded, c.cfg.Node, op, res.GetOutcome())
		}
		return nil, c.noSuchOpLocked("renew", "renewed", op, req.GetEpoch())
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
// repeated Unpause returns the original result. Before waiting for the
// node lock it fences the epoch, remembers an op it never saw (so a late
// Pause of it is refused) and leaves a cancellation for a Pause of the op
// still draining (so that Pause unpauses as soon as its node call returns,
// even when this Unpause gives up waiting).
func (c *core) Unpause(ctx context.Context, req *pb.UnpauseRequest) (*pb.UnpauseResponse, error) {
	op := req.GetOpId()
	if err := validateOpID(c.cfg.Node, op); err != nil {
		return nil, err
	}
	c.mu.Lock()
	done, res, err := c.unpauseAnsweredLocked(op, req.GetEpoch())
	if !done {
		c.cancelOp = op
	}
	c.mu.Unlock()
	if done {
		return res, err
	}
	if err := c.acquire(ctx); err != nil {
		return nil, fmt.Errorf("%w; the op stays cancelled: a Pause of it still in flight unpauses the node as soon as it returns", err)
	}
	defer c.release()

	c.mu.Lock()
	if c.cancelOp == op {
		c.cancelOp = "" // no Pause of op is in flight while we hold the lock
	}
	if done, res, err := c.unpauseAnsweredLocked(op, req.GetEpoch()); done {
		c.mu.Unlock()
		return res, err
	}
	if c.dead {
		c.mu.Unlock()
		return nil, fmt.Errorf("%w: agent %s was killed", ErrStopping, c.cfg.Node)
	}
	lr := *c.p.Lease
	c.unpausing = true
	c.mu.Unlock()
	return proto.Clone(c.releaseLease(ctx, releaseRequested, lr).res).(*pb.UnpauseResponse), nil
}

// unpauseAnsweredLocked answers an Unpause that needs no node call: a
// stale epoch, an op already ended, an op not held. done is false when op
// holds the lease.
func (c *core) unpauseAnsweredLocked(op string, epoch uint64) (done bool, res *pb.UnpauseResponse, err error) {
	if err := c.fenceLocked(op, epoch); err != nil {
		return true, nil, err
	}
	l := c.p.Lease
	if l != nil && l.OpID == op {
		return false, nil, nil
	}
	if res, ok := c.findEndedLocked(op); ok && !c.unseenLocked(op) {
		return true, proto.Clone(res).(*pb.UnpauseResponse), nil
	}
	return true, nil, c.noSuchOpLocked("unpause", "unpaused", op, epoch)
}

// cancelPause unpauses the node for an op whose Pause call just returned
// after an Unpause of the op gave up waiting for it; pauseErr is the node's
// answer to that Pause. The caller holds the node lock and has set
// c.unpausing.
func (c *core) cancelPause(ctx context.Context, l leaseRecord, pauseErr error) error {
	r := c.releaseLease(context.WithoutCancel(ctx), releaseCancelled, l)
	if r.unpauseErr != nil {
		return fmt.Errorf("%w: agent %s: op %s was cancelled while its node drained (pause: %v), but unpausing the node failed: %v; the lease stays armed",
			ErrOpEnded, c.cfg.Node, l.OpID, pauseErr, r.unpauseErr)
	}
	return fmt.Errorf("%w: agent %s: op %s was cancelled by an Unpause while its node drained; the node was unpaused as soon as the drain returned",
		ErrOpEnded, c.cfg.Node, l.OpID)
}
