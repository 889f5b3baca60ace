package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/stillpoint-dev/stillpoint/internal/scalaradmin"
)

// nodeState is the node's gate as last seen through CheckPaused.
type nodeState struct {
	checked   bool
	reachable bool
	gate      scalaradmin.PauseState
	// v1: the server lacks CheckPaused, so the gate is unknown.
	v1     bool
	reason string
	// checkedMono is when the last check finished.
	checkedMono time.Time
}

// runWatch polls the node's gate every interval until ctx ends.
func (c *core) runWatch(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		c.checkNode(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// checkNode asks the node for its gate once and reports a node that came
// back unpaused while an op holds it.
func (c *core) checkNode(ctx context.Context) {
	if n, start, ok := c.probeNode(ctx, c.cfg.CallTimeout); ok {
		c.recordNode(n, start)
	}
}

// probeNode asks the node for its gate, waiting at most timeout; ok is
// false when ctx ended first. start is when the question was sent.
func (c *core) probeNode(ctx context.Context, timeout time.Duration) (n nodeState, start time.Time, ok bool) {
	start = c.clk.Now()
	cctx, cancel := context.WithTimeout(ctx, timeout)
	g, err := c.admin.CheckPaused(cctx)
	cancel()
	if ctx.Err() != nil {
		return nodeState{}, start, false
	}
	n = nodeState{checked: true, checkedMono: c.clk.Now()}
	switch {
	case err == nil:
		n.reachable, n.gate = true, g
	case errors.Is(err, scalaradmin.ErrUnimplemented):
		n.reachable, n.gate, n.v1 = true, scalaradmin.Unknown, true
		n.reason = "server is v1 (no CheckPaused): gate state unknown"
	default:
		n.reason = err.Error()
	}
	return n, start, true
}

// recordNode stores a probe's answer, raising the events it implies: the
// node came back unpaused (or, for v1, was lost) while an op holds it, or
// its admin port stopped or started answering.
func (c *core) recordNode(n nodeState, start time.Time) {
	c.mu.Lock()
	prev := c.node
	if start.Before(c.gateNoted) && prev.checked && n.reachable == prev.reachable {
		// The answer predates a gate change the agent made itself.
		n.gate = prev.gate
	}
	c.node = n
	if n.v1 {
		c.serverV1 = true
	}
	changed := !prev.checked || prev.reachable != n.reachable || prev.gate != n.gate
	var interrupted string
	if l := c.p.Lease; l != nil && l.Phase == phaseHeld && !c.unpausing && c.interruptedOp != l.OpID && !start.Before(c.ackMono) {
		switch {
		case n.reachable && n.gate == scalaradmin.Unpaused:
			interrupted = fmt.Sprintf("node %s reports its gate open while op %s holds it paused: it restarted (or was unpaused by someone else); the op's window is invalid",
				c.cfg.Node, l.OpID)
		case n.reachable && n.v1 && c.lostDuringOp == l.OpID:
			interrupted = fmt.Sprintf("node %s (v1 server, cannot report its gate) was unreachable during op %s: assuming it restarted unpaused; the op's window is invalid",
				c.cfg.Node, l.OpID)
		}
		if !n.reachable && c.serverV1 {
			c.lostDuringOp = l.OpID
		}
		if interrupted != "" {
			c.interruptedOp = l.OpID
			c.eventLocked(EventNodeInterrupted, l.OpID, interrupted)
			changed = true
		}
	}
	var opID string
	if l := c.p.Lease; l != nil {
		opID = l.OpID
	}
	if prev.checked && prev.reachable != n.reachable {
		if n.reachable {
			c.eventLocked(EventNodeReachable, opID, fmt.Sprintf("node %s admin port answers again", c.cfg.Node))
		} else {
			c.eventLocked(EventNodeUnreachable, opID, fmt.Sprintf("node %s admin port unreachable: %s", c.cfg.Node, n.reason))
		}
	}
	c.mu.Unlock()

	if interrupted != "" {
		c.log.Error(interrupted, zap.String("op_id", opID))
		if c.hooks.interrupted != nil {
			c.hooks.interrupted(opID)
		}
	}
	if prev.checked && prev.reachable != n.reachable {
		c.log.Warn("node reachability changed", zap.Bool("reachable", n.reachable), zap.String("reason", n.reason), zap.String("op_id", opID))
	}
	if changed {
		c.changed()
	}
}

// noteGateLocked records a gate state the agent just caused (an answered
// Pause or Unpause), so Status does not report the stale poll result until
// the next check.
func (c *core) noteGateLocked(g scalaradmin.PauseState) {
	if c.node.checked && c.node.reachable && !c.node.v1 {
		c.node.gate = g
		c.gateNoted = c.clk.Now()
	}
}
