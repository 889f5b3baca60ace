package coordinator

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"

	"github.com/stillpoint-dev/stillpoint/coordinator/fsm"
	"github.com/stillpoint-dev/stillpoint/internal/enumname"
	"github.com/stillpoint-dev/stillpoint/internal/gossip"
	"github.com/stillpoint-dev/stillpoint/internal/timefmt"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// AlarmAgentDead is the kind of the alarm raised when a target's agent is
// gone while its node may still be paused past the op's lease: only the
// agent unpauses its node.
const AlarmAgentDead = "agent_dead_node_paused"

// DeadAgentAlarmID is the id of the dead-agent alarm of node for op opID.
func DeadAgentAlarmID(node, opID string) string { return "agent-dead/" + node + "/" + opID }

// watchOpsScanned bounds how many of the newest operations the dead-agent
// check looks at to find each node's latest op.
const watchOpsScanned = 256

// watchState is the leader's memory between watch passes.
type watchState struct {
	mu sync.Mutex
	// absentSince: when this leader first saw a node's agent gone while its
	// latest op may have left the node paused.
	absentSince map[string]time.Time
}

// watchDuty is a leader duty: on an interval it acts on what the gossip
// view reveals after the fact, through the FSM (so it survives failover):
// a late report that a node came back unpaused during a completed op, and
// a dead agent whose node may be left paused past its lease.
func (s *Server) watchDuty(ctx context.Context, _ uint64) {
	s.watch.mu.Lock()
	s.watch.absentSince = map[string]time.Time{}
	s.watch.mu.Unlock()
	every := s.cfg.WatchInterval
	if every <= 0 {
		every = time.Second
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		if err := s.watchPass(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("watch pass incomplete; the next one retries", zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// WatchNow runs one watch pass if this server leads.
func (s *Server) WatchNow(ctx context.Context) error {
	if _, ok := s.LeaderEpoch(); !ok {
		return raft.ErrNotLeader
	}
	return s.watchPass(ctx)
}

func (s *Server) watchPass(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, s.cfg.ApplyTimeout)
	defer cancel()
	return errors.Join(s.watchLateInterrupts(cctx), s.watchDeadAgents(cctx))
}

// watchLateInterrupts flags the catalog entry of a COMPLETED op when a
// target's agent gossips that its node came back unpaused during that op
// (SPEC step 5: learned after the op completed, never silently kept). An
// op still running is the runner's hold watch's business; an aborted or
// invalid op has no restore point.
func (s *Server) watchLateInterrupts(ctx context.Context) error {
	var errs []error
	for _, m := range s.pool.Members() {
		if m.MetaErr != nil || m.Meta.Role == RoleServer || m.Meta.InterruptedOpID == "" {
			continue
		}
		if err := s.flagLateInterrupt(ctx, m.Name, m.Meta.InterruptedOpID, "gossip"); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// flagReportedInterrupts acts on the interruption reports in the agents'
// live Status at admission: the Pause that follows makes an agent forget
// its report, and its gossip may not have carried it yet.
func (s *Server) flagReportedInterrupts(ctx context.Context, cands []candidate) error {
	var errs []error
	for _, c := range cands {
		if op := c.state.GetInterruptedOpId(); op != "" {
			if err := s.flagLateInterrupt(ctx, c.name, op, "Status"); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// flagLateInterrupt records node's report that it came back unpaused during
// opID, if opID completed with node as a target and the report is new.
func (s *Server) flagLateInterrupt(ctx context.Context, node, opID, via string) error {
	op, ok := s.fsm.Operation(opID)
	if !ok || op.GetState() != pb.OperationState_OPERATION_STATE_COMPLETED {
		return nil
	}
	t := targetOf(op, node)
	if t == nil || t.GetInterruptedReportedLate() {
		return nil
	}
	reason := fmt.Sprintf("%s: node came back unpaused during op %s (its agent reported it in its %s after the op had completed): restore point %s is not inside its paused interval",
		node, opID, via, timefmt.UTC(op.GetWindow().GetRestorePoint().AsTime()))
	cctx, cancel := context.WithTimeout(ctx, s.cfg.ApplyTimeout)
	defer cancel()
	if _, err := s.Apply(cctx, &pb.InvalidateRestorePointCommand{OpId: opID, Node: node, Reason: reason, At: s.Stamp(), RecordedBy: s.cfg.NodeID}); err != nil {
		return fmt.Errorf("record %s's report that its node came back unpaused during completed op %s: %w", node, opID, err)
	}
	s.log.Error("completed restore point invalidated after the fact", zap.String("op_id", opID), zap.String("node", node),
		zap.String("cluster", op.GetCluster()), zap.String("reason", reason))
	return nil
}

// watchDeadAgents raises an alarm for every node whose agent died while
// its latest op may have left it paused, once that op's lease has surely
// run out (only the agent unpauses its node), and clears it when the
// agent is back (or left cleanly) or the node has left the roster.
func (s *Server) watchDeadAgents(ctx context.Context) error {
	now := s.Stamp()
	nowT := now.GetLocalTime().AsTime()
	grace := s.cfg.DeadAgentGrace
	if grace <= 0 {
		grace = 2 * time.Second
	}
	alarms := map[string]*pb.Alarm{}
	for _, a := range s.fsm.Alarms(true) {
		alarms[a.GetId()] = a
	}
	var errs []error
	// Clear the alarms whose agent is back (it handles its expired lease
	// itself) or whose node is off the roster.
	for _, a := range alarms {
		if a.GetKind() != AlarmAgentDead || !a.GetActive() {
			continue
		}
		_, onRoster := s.fsm.Member(a.GetNode())
		if s.agentDead(a.GetNode()) && onRoster {
			continue
		}
		if _, err := s.Apply(ctx, &pb.ClearAlarmCommand{Id: a.GetId(), ClearedAt: now}); err != nil {
			errs = append(errs, fmt.Errorf("clear alarm %s: %w", a.GetId(), err))
			continue
		}
		s.log.Info("dead-agent alarm cleared", zap.String("node", a.GetNode()), zap.String("alarm", a.GetId()))
	}

	latest := latestTargets(s.fsm.Operations("", watchOpsScanned))
	s.watch.mu.Lock()
	defer s.watch.mu.Unlock()
	if s.watch.absentSince == nil {
		s.watch.absentSince = map[string]time.Time{}
	}
	for node, lt := range latest {
		op, t := lt.op, lt.target
		if !s.agentDead(node) || !mayBeLeftPaused(t) {
			delete(s.watch.absentSince, node)
			continue
		}
		since, ok := s.watch.absentSince[node]
		if !ok {
			since = nowT
			s.watch.absentSince[node] = since
		}
		id := DeadAgentAlarmID(node, op.GetOpId())
		if _, ok := alarms[id]; ok {
			continue // raised already (a cleared one is not raised again for the same op)
		}
		lease := time.Duration(op.GetLeaseMs()) * time.Millisecond
		if lease <= 0 {
			lease = time.Duration(s.fsm.Config().GetLeaseNs())
		}
		// No renewal reached the agent after it went away, nor after the
		// op ended: the lease ran out by the earlier of the two plus lease.
		expiry := since.Add(lease)
		if fsm.IsTerminal(op.GetState()) && op.GetEndedAt() != nil {
			if e := op.GetEndedAt().GetLocalTime().AsTime().Add(lease); e.Before(expiry) {
				expiry = e
			}
		}
		if nowT.Before(expiry.Add(grace)) {
			continue
		}
		msg := fmt.Sprintf("%s: agent is %s and op %s (cluster %s, %s) may have left its node paused: pause %s, unpause %s; the %s lease ran out by %s with no live agent to unpause it. Start the agent (it releases the expired lease), or unpause the node with rpc.Admin/Unpause on its admin port",
			node, s.agentGone(node), op.GetOpId(), op.GetCluster(), enumname.Of(op.GetState()), targetOutcome(t.GetPauseOutcome()), targetOutcome(t.GetUnpauseOutcome()),
			timefmt.Duration(lease), timefmt.UTC(expiry))
		_, err := s.Apply(ctx, &pb.RaiseAlarmCommand{Alarm: &pb.Alarm{Id: id, Node: node, Kind: AlarmAgentDead, Severity: SeverityCritical, Cluster: op.GetCluster(), Message: msg, RaisedAt: now, UpdatedAt: now}})
		if err != nil {
			errs = append(errs, fmt.Errorf("raise alarm %s: %w", id, err))
			continue
		}
		s.log.Error("node may be left paused by a dead agent", zap.String("node", node), zap.String("op_id", op.GetOpId()), zap.String("alarm", id))
	}
	return errors.Join(errs...)
}

type latestTarget struct {
	op     *pb.Operation
	target *pb.TargetRecord
}

// latestTargets maps each node to its newest op (ops newest first).
func latestTargets(ops []*pb.Operation) map[string]latestTarget {
	out := map[string]latestTarget{}
	for _, op := range ops {
		for _, t := range op.GetTargets() {
			if _, ok := out[t.GetNode()]; !ok {
				out[t.GetNode()] = latestTarget{op, t}
			}
		}
	}
	return out
}

// mayBeLeftPaused: the node may have been paused by the op (acked, or a
// Pause whose answer was lost) and nothing confirmed it unpaused since.
func mayBeLeftPaused(t *pb.TargetRecord) bool {
	paused := t.GetAckedAt() != nil || t.GetPauseOutcome() == pb.NodeOutcome_NODE_OUTCOME_PAUSED || t.GetPauseOutcome() == pb.NodeOutcome_NODE_OUTCOME_UNREACHABLE
	released := t.GetUnpauseOutcome() == pb.NodeOutcome_NODE_OUTCOME_UNPAUSED || t.GetLeaseExpired()
	return paused && !released
}

func targetOf(op *pb.Operation, node string) *pb.TargetRecord {
	for _, t := range op.GetTargets() {
		if t.GetNode() == node {
			return t
		}
	}
	return nil
}

// agentDead: the node's agent is neither alive in this server's gossip
// view nor left it gracefully. An agent that stops cleanly releases its
// lease first (it unpauses its node, or keeps the lease on disk for its
// next start); the roster's agent_absent alarm covers its absence.
func (s *Server) agentDead(node string) bool {
	m, ok := s.pool.Member(node)
	return !ok || (m.Status != gossip.StatusAlive && m.Status != gossip.StatusLeft)
}

func (s *Server) agentGone(node string) string {
	if _, ok := s.pool.Member(node); !ok {
		return "not in the gossip view"
	}
	return "dead (failed in gossip)"
}

// targetOutcome names an outcome, "unanswered" when none was recorded.
func targetOutcome(o pb.NodeOutcome) string {
	if o == pb.NodeOutcome_NODE_OUTCOME_UNSPECIFIED {
		return "unanswered"
	}
	return enumname.Of(o)
}
