package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/jonboulle/clockwork"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// recoverState loads the persisted state. A lease left by an earlier run
// is re-armed for its remainder on the wall clock, at most its lease_ms;
// one already run out fires at once, so the node is unpaused.
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
	// A deadline further ahead than the lease ever granted means the wall
	// clock was stepped back while the agent was down: re-arm for at most
	// the lease, and write that down so a crash loop cannot extend it.
	limit := time.Duration(l.LeaseMS) * time.Millisecond
	if limit <= 0 || limit > c.cfg.MaxLease {
		limit = c.cfg.MaxLease
	}
	var clamped string
	if remaining > limit {
		clamped = fmt.Sprintf("; its deadline was %d ms away, more than its lease of %d ms (wall clock stepped back?): clamped to the lease",
			remaining.Milliseconds(), limit.Milliseconds())
		remaining = limit
		next := p
		nl := *l
		nl.DeadlineUnixNS = now.Add(limit).UnixNano()
		next.Lease = &nl
		if err := c.saveLocked(next); err != nil {
			c.log.Error("cannot persist the clamped lease deadline", zap.String("op_id", l.OpID), zap.Error(err))
		} else {
			c.p, l = next, &nl
		}
	}
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
	msg += clamped
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
	timers := c.cfg.Timers
	if timers == nil {
		timers = clockwork.NewRealClock()
	}
	// The timer exists only while armed: a test on fake time then knows
	// the switch has re-armed (and is blocked) when the clock has a waiter.
	var t clockwork.Timer
	defer func() {
		if t != nil {
			t.Stop()
		}
	}()
	for {
		c.mu.Lock()
		wait, armed := c.nextFireLocked()
		c.mu.Unlock()
		var fire <-chan time.Time
		switch {
		case armed && t == nil:
			t = timers.NewTimer(max(wait, 0))
			fire = t.Chan()
		case armed:
			t.Reset(max(wait, 0))
			fire = t.Chan()
		case t != nil:
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
// tells the hooks. A failed unpause is retried every ExpiryRetry.
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
	lr := *l
	c.unpausing = true
	c.mu.Unlock()

	r := c.releaseLease(ctx, releaseExpired, lr)
	if r.unpauseErr == nil {
		return
	}
	c.mu.Lock()
	c.retryAt = c.clk.Now().Add(c.cfg.ExpiryRetry)
	first := c.expiryFailedOp != lr.OpID
	c.expiryFailedOp = lr.OpID
	if first {
		c.eventLocked(EventExpiryFailed, lr.OpID, fmt.Sprintf("lease of op %s ran out but unpausing node %s failed: %v; retrying every %s",
			lr.OpID, c.cfg.Node, r.unpauseErr, c.cfg.ExpiryRetry))
	}
	c.mu.Unlock()
	c.log.Error("lease ran out but the node could not be unpaused; retrying", zap.String("op_id", lr.OpID), zap.Uint64("epoch", lr.Epoch),
		zap.Error(r.unpauseErr), zap.Duration("retry_in", c.cfg.ExpiryRetry))
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
	lr := *l
	c.unpausing = true
	c.mu.Unlock()

	r := c.releaseLease(ctx, releaseStopping, lr)
	if r.unpauseErr != nil {
		return fmt.Errorf("agent %s stopping: could not unpause its node for op %s (the lease stays on disk; the next start unpauses it): %w",
			c.cfg.Node, lr.OpID, r.unpauseErr)
	}
	return r.persistErr
}

// kill stops persisting anything: the on-disk state stays as it was at
// the moment of the crash being simulated.
func (c *core) kill() {
	c.mu.Lock()
	c.dead = true
	c.mu.Unlock()
	c.signalRearm()
}
