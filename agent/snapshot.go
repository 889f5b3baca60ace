package agent

import (
	"time"

	"google.golang.org/protobuf/proto"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// snapshot is a consistent copy of the core's state for Status, gossip
// and metrics.
type snapshot struct {
	opID      string
	opEpoch   uint64
	remaining time.Duration
	// leaseDeadlineNS is the held lease's wall deadline (changes only on a
	// new lease or a renewal).
	leaseDeadlineNS int64
	held            bool
	maxEpoch        uint64
	interruptedOp   string
	leasesExpired   uint64
	lastExpiredOp   string
	draining        bool
	node            nodeState
	events          []*pb.AgentEvent
}

func (c *core) snapshot(withEvents bool) snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := snapshot{
		maxEpoch:      c.p.MaxEpoch,
		interruptedOp: c.interruptedOp,
		leasesExpired: c.p.LeasesExpired,
		draining:      c.draining,
		node:          c.node,
		remaining:     c.remainingLocked(),
	}
	if l := c.p.Lease; l != nil {
		s.opID, s.opEpoch, s.leaseDeadlineNS = l.OpID, l.Epoch, l.DeadlineUnixNS
		s.held = l.Phase == phaseHeld
	}
	s.lastExpiredOp = c.p.LastLeaseExpiredOp
	if withEvents {
		s.events = make([]*pb.AgentEvent, len(c.events))
		for i, e := range c.events {
			s.events[i] = proto.Clone(e).(*pb.AgentEvent)
		}
	}
	return s
}

// nodeProto renders the node state at local time now.
func (n nodeState) proto(draining bool, now time.Time) *pb.NodeState {
	out := &pb.NodeState{Reachable: n.reachable, Draining: draining, Reason: n.reason}
	switch {
	case !n.checked:
		out.Paused = pb.PausedState_PAUSED_STATE_UNSPECIFIED
		out.Reason = "not checked yet"
	default:
		out.Paused = n.gate.Proto()
	}
	if n.checked {
		out.CheckedAgeMs = max(now.Sub(n.checkedMono), 0).Milliseconds()
	}
	return out
}
