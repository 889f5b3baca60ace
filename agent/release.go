package agent

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/stillpoint-dev/stillpoint/internal/scalaradmin"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// releaseKind is who releases a lease.
type releaseKind int

const (
	// releaseRequested: the coordinator's Unpause.
	releaseRequested releaseKind = iota
	// releaseExpired: the dead-man switch, the lease ran out.
	releaseExpired
	// releaseStopping: the agent is shutting down.
	releaseStopping
	// releaseCancelled: an Unpause arrived while the op's Pause drained.
	releaseCancelled
)

// confirmTimeout bounds the CheckPaused that confirms the gate before an
// unpause.
const confirmTimeout = 2 * time.Second

// released is the outcome of releaseLease.
type released struct {
	// res is the result: UNPAUSED, or the failure when unpauseErr is set.
	res *pb.UnpauseResponse
	// unpauseErr: the node was not unpaused; the lease stays armed.
	unpauseErr error
	// persistErr: the node was unpaused but the retired lease could not be
	// written (a restarted agent unpauses the node once more).
	persistErr error
}

// releaseLease is the one path that unpauses the node and retires the
// lease, for every kind of release. The caller holds the node lock, has
// set c.unpausing and passes a copy of the lease. In order:
//
//  1. stamp the local time (with its estimate): the end of the window;
//  2. confirm the node still holds its gate closed (CheckPaused). A node
//     that answers unpaused restarted before the stamp; a v2 node that does
//     not answer cannot be confirmed. Either makes the result interrupted,
//     naming the node and why, so the op's window is never trusted;
//  3. send Unpause regardless: the node is released either way.
//
// A restart after the stamp does not touch the window (it ends before the
// gate opened).
func (c *core) releaseLease(ctx context.Context, kind releaseKind, l leaseRecord) released {
	log := c.log.With(zap.String("op_id", l.OpID), zap.Uint64("epoch", l.Epoch))
	sent := c.stampNow() // read before the gate is confirmed closed
	var doubt string
	if l.Phase == phaseHeld {
		doubt = c.confirmPaused(ctx, l.OpID)
	}
	uctx, cancel := context.WithTimeout(ctx, c.cfg.CallTimeout)
	err := retryRetryable(uctx, c.admin.Unpause)
	cancel()

	c.mu.Lock()
	if err != nil {
		c.unpausing = false
		remaining := c.remainingLocked()
		c.mu.Unlock()
		log.Warn("unpause failed; lease stays armed", zap.Error(err), zap.Duration("lease_remaining", remaining))
		return released{
			res: &pb.UnpauseResponse{
				Node: c.cfg.Node, Outcome: unpauseFailureOutcome(err), SentAt: sent,
				Message: fmt.Sprintf("unpause of node %s for op %s failed: %v; the lease stays armed and the agent unpauses by itself in %d ms",
					c.cfg.Node, l.OpID, err, remaining.Milliseconds()),
			},
			unpauseErr: err,
		}
	}
	res := &pb.UnpauseResponse{Node: c.cfg.Node, Outcome: pb.NodeOutcome_NODE_OUTCOME_UNPAUSED, SentAt: sent,
		Message: c.releaseMessage(kind, l), LeaseExpired: kind == releaseExpired}
	if doubt != "" {
		res.Interrupted = true
		res.Message += "; but " + doubt + ": the op's window is invalid"
	}
	c.noteGateLocked(scalaradmin.Unpaused)
	switch kind {
	case releaseExpired:
		c.p.LeasesExpired++
		c.p.LastLeaseExpiredOp = l.OpID
		c.eventLocked(EventLeaseExpired, l.OpID, res.Message)
	case releaseStopping:
		c.eventLocked(EventReleasedOnStop, l.OpID, res.Message)
	case releaseCancelled:
		c.eventLocked(EventPauseCancelled, l.OpID, res.Message)
	}
	serr := c.endLocked(l.OpID, l.Epoch, res)
	c.mu.Unlock()
	if serr != nil {
		log.Error("node unpaused but the retired lease could not be persisted", zap.Error(serr))
	}
	if kind == releaseRequested {
		log.Info("node unpaused", zap.Bool("interrupted", res.Interrupted))
	} else {
		log.Warn(res.Message)
	}
	c.changed()
	return released{res: res, persistErr: serr}
}

func (c *core) releaseMessage(kind releaseKind, l leaseRecord) string {
	switch kind {
	case releaseExpired:
		return fmt.Sprintf("lease expired for op %s (epoch %d, lease %d ms, neither renewed nor released): agent unpaused node %s by itself",
			l.OpID, l.Epoch, l.LeaseMS, c.cfg.Node)
	case releaseStopping:
		return fmt.Sprintf("agent %s stopped while holding op %s: it unpaused its node", c.cfg.Node, l.OpID)
	case releaseCancelled:
		return fmt.Sprintf("op %s was cancelled by an Unpause while node %s drained: the agent unpaused the node as soon as the drain returned",
			l.OpID, c.cfg.Node)
	}
	return "unpaused"
}

// confirmPaused asks the node for its gate after the unpause stamp and
// returns why the node cannot be trusted to have stayed paused for op up
// to that stamp, or "" when it did.
func (c *core) confirmPaused(ctx context.Context, op string) string {
	// Bounded below the call timeout: the Unpause that follows must still
	// fit in the coordinator's wait, and a node that cannot answer quickly
	// is not confirmed anyway.
	budget := min(c.cfg.CallTimeout, confirmTimeout)
	begun := c.clk.Now()
	n, start, asked := c.probeNode(ctx, budget)
	if asked {
		c.recordNode(n, start)
	}
	if asked && !n.reachable && !n.v1 && !c.serverV1 {
		// A node that restarted resets the admin connection: the first call
		// after it fails on the dead transport. Ask once more on a fresh one
		// (within the same budget) so the verdict says what the node reports
		// (its gate open: it restarted) rather than only "could not confirm".
		if left := budget - c.clk.Now().Sub(begun); left > 0 {
			if n2, start2, asked2 := c.probeNode(ctx, left); asked2 {
				c.recordNode(n2, start2)
				n = n2
			}
		}
	}
	c.mu.Lock()
	var doubt string
	switch {
	case c.interruptedOp == op:
		doubt = fmt.Sprintf("node %s was seen unpaused during op %s (it restarted)", c.cfg.Node, op)
	case !asked:
		doubt = fmt.Sprintf("could not confirm node %s stayed paused for op %s up to the unpause stamp: %v", c.cfg.Node, op, ctx.Err())
	case n.v1 || (!n.reachable && c.serverV1):
		// A v1 server cannot report its gate: only having lost it during
		// the op (or now) says it may have restarted.
		if c.lostDuringOp == op || !n.reachable {
			doubt = fmt.Sprintf("node %s (v1 server, cannot report its gate) was unreachable during op %s: assuming it restarted unpaused", c.cfg.Node, op)
		}
	case !n.reachable:
		doubt = fmt.Sprintf("could not confirm node %s stayed paused for op %s up to the unpause stamp: CheckPaused failed: %s", c.cfg.Node, op, n.reason)
	case n.gate != scalaradmin.Paused:
		doubt = fmt.Sprintf("node %s reports its gate %s at the unpause stamp of op %s: it restarted (or was unpaused by someone else)", c.cfg.Node, n.gate, op)
	}
	first := doubt != "" && c.interruptedOp != op
	if first {
		c.interruptedOp = op
		c.eventLocked(EventNodeInterrupted, op, doubt)
	}
	c.mu.Unlock()
	if first {
		c.log.Error(doubt, zap.String("op_id", op))
		if c.hooks.interrupted != nil {
			c.hooks.interrupted(op)
		}
	}
	return doubt
}
