package coordinator

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stillpoint-dev/stillpoint/coordinator/fsm"
	"github.com/stillpoint-dev/stillpoint/internal/gossip"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// alarmDuty is the leader's drift-alarm evaluator (Nomad serf.go/leader.go
// style): it evaluates right after the term starts, on every gossip update
// (a non-blocking kick from pumpEvents), whenever a pending raise or clear
// falls due, and at least every alarm_eval_interval. Raises and clears go
// through Raft; the hysteresis stays in memory.
func (s *Server) alarmDuty(ctx context.Context, epoch uint64) {
	h := newAlarmHysteresis()
	probe := &falsetickerCache{m: map[string]falsetickerEntry{}}
	log := s.log.With(zap.Uint64("epoch", epoch), zap.String("duty", "alarms"))
	timer := time.NewTimer(0)
	defer timer.Stop()
	reset := func(d time.Duration) {
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(d)
	}
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.alarmKick:
			// A burst of gossip updates costs one evaluation per gap.
			if wait := alarmMinGap - time.Since(last); wait > 0 {
				reset(wait)
				continue
			}
		case <-timer.C:
		}
		last = time.Now()
		reset(s.evaluateAlarms(ctx, h, probe, log))
	}
}

// alarmMinGap spaces evaluations triggered by gossip updates.
const alarmMinGap = 100 * time.Millisecond

// evaluateAlarms runs one evaluation and commits its decisions. It returns
// how long until the next periodic evaluation is needed.
func (s *Server) evaluateAlarms(ctx context.Context, h *alarmHysteresis, probe *falsetickerCache, log *zap.Logger) time.Duration {
	cfg := s.fsm.Config()
	set := fsm.AlarmSettingsOf(cfg)
	stamp := s.Stamp()
	now := stamp.GetLocalTime().AsTime()
	members := s.alarmMembers(now)
	for i := range members {
		if members[i].cand.state.GetClock().GetFalsetickers() > 0 {
			members[i].falsetickers = probe.names(ctx, s, members[i].cand, now, set.EvalInterval)
		}
	}
	active := map[string]*pb.Operation{}
	for _, op := range s.fsm.ActiveOperations() {
		active[op.GetOpId()] = op
	}
	conds := alarmConditions(members, cfg, active)
	d := h.step(now, conds, evaluatorAlarms(s.fsm.Alarms(false)), set)
	for _, a := range d.raise {
		a.RaisedAt = stamp
		a.UpdatedAt = stamp
		if fs, ok := d.firstSeen[a.GetId()]; ok {
			a.FirstSeen = &pb.StampedTime{LocalTime: timestamppb.New(fs), Estimate: stamp.GetEstimate()}
		}
		actx, cancel := context.WithTimeout(ctx, s.cfg.ApplyTimeout)
		_, err := s.Apply(actx, &pb.RaiseAlarmCommand{Alarm: a})
		cancel()
		fields := []zap.Field{zap.String("alarm", a.GetId()), zap.String("kind", a.GetKind()), zap.String("severity", a.GetSeverity()),
			zap.String("cluster", a.GetCluster()), zap.String("member", a.GetNode()), zap.Float64("figure", a.GetFigure()), zap.Float64("limit", a.GetLimit()),
			zap.String("message", a.GetMessage())}
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("raising alarm failed; the next evaluation retries", append(fields, zap.Error(err))...)
			}
			continue
		}
		if _, isNew := d.firstSeen[a.GetId()]; isNew {
			log.Warn("alarm raised", fields...)
		} else {
			log.Info("alarm updated", fields...)
		}
	}
	for _, id := range d.clear {
		actx, cancel := context.WithTimeout(ctx, s.cfg.ApplyTimeout)
		_, err := s.Apply(actx, &pb.ClearAlarmCommand{Id: id, ClearedAt: stamp})
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("clearing alarm failed; the next evaluation retries", zap.String("alarm", id), zap.Error(err))
			}
			continue
		}
		log.Info("alarm cleared", zap.String("alarm", id), zap.Duration("clear_for", set.ClearFor))
	}
	next := set.EvalInterval
	if d.next > 0 && d.next < next {
		next = d.next
	}
	return next
}

// alarmMembers gathers every agent the evaluator watches: each agent in
// the gossip view and each roster member (absent when its agent is not
// alive in gossip), with the clock and node state as last gossiped.
func (s *Server) alarmMembers(now time.Time) []alarmMember {
	var out []alarmMember
	seen := map[string]bool{}
	onRoster := map[string]bool{}
	for _, rec := range s.fsm.Roster("") {
		onRoster[rec.GetName()] = true
	}
	for _, m := range s.pool.Members() {
		if m.MetaErr != nil || m.Meta.Role == RoleServer || m.Name == s.cfg.NodeID {
			continue
		}
		if m.Status != gossip.StatusAlive && !onRoster[m.Name] {
			continue // gone and not on a roster: removed by an operator
		}
		seen[m.Name] = true
		pm := MemberProto(m, now)
		am := alarmMember{cluster: m.Meta.Cluster, leaseRemaining: -1}
		am.cand = candidate{name: m.Name, grpcAddr: m.Meta.GRPCAddr, status: pm.GetStatus()}
		switch m.Status {
		case gossip.StatusAlive:
			am.cand.state = &pb.AgentState{Node: m.Name, Cluster: m.Meta.Cluster, Clock: pm.GetClock(), NodeState: pm.GetNodeState(), OpId: m.Meta.OpID}
			if m.Meta.OpID != "" {
				am.leaseRemaining = time.Duration(pm.GetLeaseRemainingMs()) * time.Millisecond
			}
		case gossip.StatusLeft:
			am.cand.absent = "its agent left gossip (it was stopped); its node may be serving unpaused"
		default:
			am.cand.absent = "its agent failed (gossip declared it dead)"
		}
		out = append(out, am)
	}
	for _, rec := range s.fsm.Roster("") {
		if seen[rec.GetName()] {
			continue
		}
		out = append(out, alarmMember{cluster: rec.GetCluster(), leaseRemaining: -1, cand: candidate{
			name: rec.GetName(), grpcAddr: rec.GetGrpcAddress(), status: pb.MemberStatus_MEMBER_STATUS_DEAD,
			absent: "on the roster but its agent is not in the gossip view",
		}})
	}
	return out
}

// falsetickerCache remembers which NTP servers an agent reported as
// falsetickers (gossip carries only their count), asked at most once per
// interval per agent.
type falsetickerCache struct {
	mu sync.Mutex
	m  map[string]falsetickerEntry
}

type falsetickerEntry struct {
	at    time.Time
	names []string
}

func (c *falsetickerCache) names(ctx context.Context, s *Server, cand candidate, now time.Time, every time.Duration) []string {
	c.mu.Lock()
	e, ok := c.m[cand.name]
	c.mu.Unlock()
	if ok && now.Sub(e.at) < every {
		return e.names
	}
	names, err := s.askFalsetickers(ctx, cand.grpcAddr)
	if err != nil {
		s.log.Debug("cannot ask agent for its falsetickers", zap.String("member", cand.name), zap.Error(err))
	}
	c.mu.Lock()
	c.m[cand.name] = falsetickerEntry{at: now, names: names}
	c.mu.Unlock()
	return names
}

func (s *Server) askFalsetickers(ctx context.Context, addr string) ([]string, error) {
	cl, err := agentConns{s}.agent(addr)
	if err != nil {
		return nil, err
	}
	timeout := s.cfg.StatusTimeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := cl.Status(cctx, &pb.StatusRequest{})
	if err != nil {
		return nil, fmt.Errorf("agent at %s: %w", addr, err)
	}
	var names []string
	for _, src := range resp.GetState().GetClock().GetSources() {
		if src.GetVerdict() == pb.SourceVerdict_SOURCE_VERDICT_FALSETICKER {
			names = append(names, src.GetAddress())
		}
	}
	return names, nil
}
