package agent

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// recoverState loads the persisted state. A lease left by an earlier run
// is re-armed for its remainder on the wall clock; one already run out
// fires at once, so the node is unpaused.
func (c *core) recoverState() error {
	p, err := c.store.load()
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.p = p
	l := p.Lease
	if l == nil {
		return nil
	}
	now := c.clk.Now()
	remaining := l.deadline().Sub(now)
	c.leaseMono = now.Add(remaining)
	if len(l.Ack) > 0 {
		var ack pb.PauseResponse
		if err := proto.Unmarshal(l.Ack, &ack); err == nil {
			c.ack = &ack
		}
	}
	msg := fmt.Sprintf("agent restarted holding the lease of op %s (epoch %d, phase %s); ", l.OpID, l.Epoch, l.Phase)
	if remaining <= 0 {
		msg += fmt.Sprintf("it ran out %d ms ago: unpausing the node", (-remaining).Milliseconds())
	} else {
		msg += fmt.Sprintf("re-armed for the remaining %d ms", remaining.Milliseconds())
	}
	c.eventLocked(EventLeaseRecovered, l.OpID, msg)
	c.log.Warn(msg, zap.String("op_id", l.OpID), zap.Uint64("epoch", l.Epoch))
	c.signalRearm()
	return nil
}

// nextFireLocked is how long until the lease timer should act.
func (c *core) nextFireLocked() (time.Duration, bool) {
	if c.p.Lease == nil || c.stopping || c.dead {
		return 0, false
	}
	at := c.leaseMono
	if c.retryAt.After(at) {
		at = c.retryAt
	}
	return at.Sub(c.clk.Now()), true
}

// runLeaseTimer is the dead-man switch: when the lease runs out it
// unpauses the node. It returns when ctx ends.
func (c *core) runLeaseTimer(ctx context.Context) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		c.mu.Lock()
		wait, armed := c.nextFireLocked()
		c.mu.Unlock()
		var fire <-chan time.Time
		if armed {
			t.Reset(max(wait, 0))
			fire = t.C
		} else {
			t.Stop()
		}
		select {
		case <-ctx.Done():
			return
		case <-c.rearm:
		case <-fire:
			c.expire(ctx)
		}
	}
}

// expire unpauses the node when the lease has run out, records it and
// tells the hooks.
func (c *core) expire(ctx context.Context) {
	if err := c.acquire(ctx); err != nil {
		return
	}
	defer c.release()
	c.mu.Lock()
	l := c.p.Lease
	if l == nil || c.stopping || c.dead || c.remainingLocked() > 0 || c.clk.Now().Before(c.retryAt) {
		c.mu.Unlock()
		return
	}
	op, epoch, leaseMS := l.OpID, l.Epoch, l.LeaseMS
	c.unpausing = true
	c.mu.Unlock()

	log := c.log.With(zap.String("op_id", op), zap.Uint64("epoch", epoch))
	sent := c.stampNow()
	uctx, cancel := context.WithTimeout(ctx, c.cfg.CallTimeout)
	err := retryRetryable(uctx, c.admin.Unpause)
	cancel()

	c.mu.Lock()
	if err != nil {
		c.unpausing = false
		c.retryAt = c.clk.Now().Add(c.cfg.ExpiryRetry)
		first := c.expiryFailedOp != op
		c.expiryFailedOp = op
		if first {
			c.eventLocked(EventExpiryFailed, op, fmt.Sprintf("lease of op %s ran out but unpausing node %s failed: %v; retrying every %s",
				op, c.cfg.Node, err, c.cfg.ExpiryRetry))
		}
		c.mu.Unlock()
		log.Error("lease ran out but the node could not be unpaused; retrying", zap.Error(err), zap.Duration("retry_in", c.cfg.ExpiryRetry))
		c.changed()
		return
	}
	msg := fmt.Sprintf("lease expired for op %s (epoch %d, lease %d ms, neither renewed nor released): agent unpaused node %s by itself",
		op, epoch, leaseMS, c.cfg.Node)
	res := &pb.UnpauseResponse{Node: c.cfg.Node, Outcome: pb.NodeOutcome_NODE_OUTCOME_UNPAUSED, SentAt: sent, LeaseExpired: true, Message: msg}
	c.noteGateLocked(gateUnpaused)
	if c.interruptedOp == op {
		res.Interrupted = true
	}
	c.p.LeasesExpired++
	c.p.LastLeaseExpiredOp = op
	serr := c.endLocked(op, epoch, res)
	c.eventLocked(EventLeaseExpired, op, msg)
	c.mu.Unlock()
	if serr != nil {
		log.Error("cannot persist the expired lease", zap.Error(serr))
	}
	log.Warn(msg)
	c.changed()
}

// shutdown refuses new operations and releases a held lease by unpausing
// the node, so a stopped agent never leaves its node paused. When the
// unpause fails the lease stays on disk for the next start.
func (c *core) shutdown(ctx context.Context) error {
	c.mu.Lock()
	c.stopping = true
	c.mu.Unlock()
	c.signalRearm()
	if err := c.acquire(ctx); err != nil {
		return err
	}
	defer c.release()
	c.mu.Lock()
	l := c.p.Lease
	if l == nil || c.dead {
		c.mu.Unlock()
		return nil
	}
	op, epoch := l.OpID, l.Epoch
	c.unpausing = true
	c.mu.Unlock()

	sent := c.stampNow()
	uctx, cancel := context.WithTimeout(ctx, c.cfg.CallTimeout)
	err := retryRetryable(uctx, c.admin.Unpause)
	cancel()

	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.unpausing = false
		return fmt.Errorf("agent %s stopping: could not unpause its node for op %s (the lease stays on disk; the next start unpauses it): %w",
			c.cfg.Node, op, err)
	}
	msg := fmt.Sprintf("agent %s stopped while holding op %s: it unpaused its node", c.cfg.Node, op)
	res := &pb.UnpauseResponse{Node: c.cfg.Node, Outcome: pb.NodeOutcome_NODE_OUTCOME_UNPAUSED, SentAt: sent, Message: msg,
		Interrupted: c.interruptedOp == op}
	c.eventLocked(EventReleasedOnStop, op, msg)
	c.log.Warn(msg, zap.String("op_id", op), zap.Uint64("epoch", epoch))
	return c.endLocked(op, epoch, res)
}

// kill stops persisting anything: the on-disk state stays as it was at
// the moment of the crash being simulated.
func (c *core) kill() {
	c.mu.Lock()
	c.dead = true
	c.mu.Unlock()
	c.signalRearm()
}
