package agent

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/stillpoint-dev/stillpoint/internal/clock"
	"github.com/stillpoint-dev/stillpoint/internal/gossip"
	"github.com/stillpoint-dev/stillpoint/internal/scalaradmin"
)

// gossipCheckInterval is how often the agent looks for a meaningful change
// besides the changes it is told about.
const gossipCheckInterval = 200 * time.Millisecond

// localMeta is this agent's gossip metadata now. Called by the pool; it
// takes only short locks and never calls back into the pool.
func (a *Agent) localMeta() gossip.Meta {
	now := a.clockSrc().Now()
	e := a.clockSrc().Current()
	s := a.core.snapshot(false)
	m := gossip.Meta{
		Role:     a.cfg.Role,
		Cluster:  a.cfg.Cluster,
		GRPCAddr: a.grpcAdvertise,
		Clock:    gossip.ClockMetaFrom(e, now),
		Node: gossip.NodeState{
			Reachable: s.node.reachable,
			Paused:    s.node.gate.Proto(),
			Draining:  s.draining,
		},
		OpID:               s.opID,
		LeaseRemainingMS:   s.remaining.Milliseconds(),
		InterruptedOpID:    s.interruptedOp,
		Incarnation:        a.incarnation,
		LeasesExpired:      s.leasesExpired,
		LastLeaseExpiredOp: s.lastExpiredOp,
	}
	return m
}

// metaDigest is the part of the metadata whose change is worth gossiping.
type metaDigest struct {
	status        clock.Status
	boundNS       int64
	offsetNS      int64
	reachable     bool
	gate          scalaradmin.PauseState
	draining      bool
	opID          string
	leaseDeadline int64
	interrupted   string
	leasesExpired uint64
}

func (a *Agent) digest() metaDigest {
	now := a.clockSrc().Now()
	e := a.clockSrc().Current()
	s := a.core.snapshot(false)
	return metaDigest{
		status: e.Status, boundNS: int64(e.BoundAt(now)), offsetNS: int64(e.Offset),
		reachable: s.node.reachable, gate: s.node.gate, draining: s.draining,
		opID: s.opID, leaseDeadline: s.leaseDeadlineNS, interrupted: s.interruptedOp, leasesExpired: s.leasesExpired,
	}
}

// meaningful says whether next differs from last enough to gossip: a
// status change, a bound change over 10% or over 1 ms, an offset change
// over 1 ms, a node state change,
// a new or renewed lease, an interrupted op, an expired lease.
func meaningful(last, next metaDigest) bool {
	if last.status != next.status || last.reachable != next.reachable || last.gate != next.gate ||
		last.draining != next.draining || last.opID != next.opID || last.leaseDeadline != next.leaseDeadline ||
		last.interrupted != next.interrupted || last.leasesExpired != next.leasesExpired {
		return true
	}
	d := next.boundNS - last.boundNS
	if d < 0 {
		d = -d
	}
	if d > int64(time.Millisecond) || 10*d > last.boundNS {
		return true
	}
	// The offset too: the leader's drift alarms and metrics read it from
	// gossip, and a clock can drift with its bound unchanged.
	o := next.offsetNS - last.offsetNS
	if o < 0 {
		o = -o
	}
	return o > int64(time.Millisecond)
}

// kickGossip asks the gossip loop to look for a change now.
func (a *Agent) kickGossip() {
	select {
	case a.gossipKick <- struct{}{}:
	default:
	}
}

// runGossip pushes the metadata whenever it changed meaningfully; the pool
// rate-limits the pushes.
func (a *Agent) runGossip(ctx context.Context) {
	t := time.NewTicker(gossipCheckInterval)
	defer t.Stop()
	last := a.digest()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-a.gossipKick:
		}
		next := a.digest()
		if !meaningful(last, next) {
			continue
		}
		if err := a.poolRef().UpdateMeta(); err != nil {
			a.metrics.metaErrors.Inc()
			a.log.Error("cannot gossip metadata", zap.Error(err))
			continue
		}
		last = next
	}
}

// aliveMembers counts alive members in the gossip view (0 before Start).
func (a *Agent) aliveMembers() int {
	p := a.poolRef()
	if p == nil {
		return 0
	}
	n := 0
	for _, m := range p.Members() {
		if m.Status == gossip.StatusAlive {
			n++
		}
	}
	return n
}
