package coordinator

import (
	"sort"
	"strconv"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/stillpoint-dev/stillpoint/coordinator/fsm"
	"github.com/stillpoint-dev/stillpoint/internal/enumname"
	"github.com/stillpoint-dev/stillpoint/internal/gossip"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// Coordinator metric names, also used by deploy/prometheus rules. Labels
// are bounded: cluster and node range over the roster, kind and severity
// over the evaluator's fixed set, state over the operation states.
const (
	MetricMemberUp         = "stillpoint_coordinator_member_up"
	MetricMemberOffset     = "stillpoint_coordinator_member_clock_offset_seconds"
	MetricMemberBound      = "stillpoint_coordinator_member_clock_error_bound_seconds"
	MetricMemberSynced     = "stillpoint_coordinator_member_clock_synchronized"
	MetricMemberPaused     = "stillpoint_coordinator_member_node_paused"
	MetricMemberHeld       = "stillpoint_coordinator_member_node_held"
	MetricSpread           = "stillpoint_coordinator_cluster_offset_spread_seconds"
	MetricMaxErrorBound    = "stillpoint_coordinator_config_max_error_bound_seconds"
	MetricMaxDrift         = "stillpoint_coordinator_config_max_drift_seconds"
	MetricWarningRatio     = "stillpoint_coordinator_config_alarm_warning_ratio"
	MetricAlarmsActive     = "stillpoint_coordinator_alarms_active"
	MetricOperations       = "stillpoint_coordinator_operations"
	MetricOpDuration       = "stillpoint_coordinator_operation_duration_seconds"
	MetricHold             = "stillpoint_coordinator_hold_seconds"
	MetricWindowWidth      = "stillpoint_coordinator_window_width_seconds"
	MetricDrain            = "stillpoint_coordinator_drain_seconds"
	MetricLastRestorePoint = "stillpoint_coordinator_last_restore_point_age_seconds"
	MetricRaftLeader       = "stillpoint_coordinator_raft_leader"
	MetricRaftHasLeader    = "stillpoint_coordinator_raft_has_leader"
	MetricRaftCommitIndex  = "stillpoint_coordinator_raft_commit_index"
	MetricRaftAppliedIndex = "stillpoint_coordinator_raft_applied_index"
	MetricRaftLastContact  = "stillpoint_coordinator_raft_last_contact_seconds"
	MetricGossipMembers    = "stillpoint_coordinator_gossip_members"
	MetricGossipDropped    = "stillpoint_coordinator_gossip_dropped_events_total"
)

var (
	descMemberUp = prometheus.NewDesc(MetricMemberUp,
		"1 when the agent is alive in gossip, 0 when it is on its cluster's roster but absent (a pause is refused).", []string{"cluster", "node"}, nil)
	descOffset = prometheus.NewDesc(MetricMemberOffset,
		"The agent's gossiped clock offset (add to its local clock for true time).", []string{"cluster", "node"}, nil)
	descBound = prometheus.NewDesc(MetricMemberBound,
		"The agent's certified error bound, grown to the scrape (admission refuses above max_error_bound).", []string{"cluster", "node"}, nil)
	descSynced = prometheus.NewDesc(MetricMemberSynced,
		"1 when the agent's clock is synchronized (only then may it take part in a pause).", []string{"cluster", "node"}, nil)
	descPaused = prometheus.NewDesc(MetricMemberPaused,
		"1 when the agent reports its node paused.", []string{"cluster", "node"}, nil)
	descHeld = prometheus.NewDesc(MetricMemberHeld,
		"1 when the agent holds its node for an operation (under a lease).", []string{"cluster", "node"}, nil)
	descSpread = prometheus.NewDesc(MetricSpread,
		"max - min clock offset over the cluster's synchronized agents (admission refuses above max_drift).", []string{"cluster"}, nil)
	descMaxBound = prometheus.NewDesc(MetricMaxErrorBound, "Runtime config max_error_bound (admission's limit).", nil, nil)
	descMaxDrift = prometheus.NewDesc(MetricMaxDrift, "Runtime config max_drift (admission's limit on the offset spread).", nil, nil)
	descRatio    = prometheus.NewDesc(MetricWarningRatio, "Runtime config alarm_warning_ratio (warnings fire at this fraction of the limits).", nil, nil)
	descAlarms   = prometheus.NewDesc(MetricAlarmsActive,
		"Active alarms in the replicated state, by kind, severity and cluster.", []string{"kind", "severity", "cluster"}, nil)
	descOps = prometheus.NewDesc(MetricOperations,
		"Operations kept in the replicated state, by cluster and state (completed, aborted, invalid, or in flight).", []string{"cluster", "state"}, nil)
	descOpDuration = prometheus.NewDesc(MetricOpDuration, "Ended operations: created to ended.", []string{"cluster"}, nil)
	descHold       = prometheus.NewDesc(MetricHold, "Ended operations: the hold chosen (max of requested and 2 x bound + margin).", []string{"cluster"}, nil)
	descWindow     = prometheus.NewDesc(MetricWindowWidth, "Completed operations: width of the restore window.", []string{"cluster"}, nil)
	descDrain      = prometheus.NewDesc(MetricDrain, "Operations that paused every target: first Pause sent to last target drained.", []string{"cluster"}, nil)
	descLastRP     = prometheus.NewDesc(MetricLastRestorePoint,
		"Seconds since the restore point of the cluster's newest valid catalog entry.", []string{"cluster"}, nil)
	descLeader      = prometheus.NewDesc(MetricRaftLeader, "1 on the Raft leader.", nil, nil)
	descHasLeader   = prometheus.NewDesc(MetricRaftHasLeader, "1 when this server knows a Raft leader.", nil, nil)
	descCommit      = prometheus.NewDesc(MetricRaftCommitIndex, "Raft commit index.", nil, nil)
	descApplied     = prometheus.NewDesc(MetricRaftAppliedIndex, "Raft index applied to the FSM here.", nil, nil)
	descLastContact = prometheus.NewDesc(MetricRaftLastContact, "Seconds since a follower last heard the leader (0 on the leader).", nil, nil)
	descGossip      = prometheus.NewDesc(MetricGossipMembers, "Members of this server's gossip view by status.", []string{"status"}, nil)
	descDropped     = prometheus.NewDesc(MetricGossipDropped, "Gossip events dropped because a consumer was behind (healed by full reconciles).", nil, nil)
)

// durationBuckets suit holds, windows and drains (milliseconds to a
// minute) and whole operations.
var durationBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300}

// coordinatorCollector reads the server's gossip view, FSM and Raft state
// at scrape time: every server reports what it sees, with no state of its
// own to drift.
type coordinatorCollector struct{ s *Server }

var _ prometheus.Collector = coordinatorCollector{}

func (c coordinatorCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descMemberUp, descOffset, descBound, descSynced, descPaused, descHeld, descSpread, descMaxBound, descMaxDrift,
		descRatio, descAlarms, descOps, descOpDuration, descHold, descWindow, descDrain, descLastRP, descLeader, descHasLeader, descCommit, descApplied,
		descLastContact, descGossip, descDropped, descRefusals} {
		ch <- d
	}
}

func (c coordinatorCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	now := s.cfg.Now()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	cfg := s.fsm.Config()
	set := fsm.AlarmSettingsOf(cfg)
	gauge(descMaxBound, set.MaxErrorBound.Seconds())
	gauge(descMaxDrift, set.MaxDrift.Seconds())
	gauge(descRatio, set.WarningRatio)

	byCluster := map[string][]candidate{}
	for _, m := range s.alarmMembers(now) {
		cl, name := m.cluster, m.cand.name
		up := m.cand.absent == "" && m.cand.status == pb.MemberStatus_MEMBER_STATUS_ALIVE
		gauge(descMemberUp, b2f(up), cl, name)
		if !up || m.cand.state == nil {
			continue
		}
		byCluster[cl] = append(byCluster[cl], m.cand)
		ck := m.cand.state.GetClock()
		synced := ck.GetStatus() == pb.ClockStatus_CLOCK_STATUS_SYNCHRONIZED
		gauge(descSynced, b2f(synced), cl, name)
		if ck != nil && ck.GetStatus() != pb.ClockStatus_CLOCK_STATUS_UNSPECIFIED {
			gauge(descOffset, time.Duration(ck.GetOffsetNs()).Seconds(), cl, name)
			gauge(descBound, time.Duration(ck.GetErrorBoundNs()).Seconds(), cl, name)
		}
		gauge(descPaused, b2f(m.cand.state.GetNodeState().GetPaused() == pb.PausedState_PAUSED_STATE_PAUSED), cl, name)
		gauge(descHeld, b2f(m.cand.state.GetOpId() != ""), cl, name)
	}
	for cl, cands := range byCluster {
		if f, ok := offsetSpread(cands); ok {
			gauge(descSpread, f.spread.Seconds(), cl)
		}
	}

	alarms := map[[3]string]int{}
	for _, a := range s.fsm.Alarms(false) {
		alarms[[3]string{a.GetKind(), a.GetSeverity(), a.GetCluster()}]++
	}
	for k, n := range alarms {
		gauge(descAlarms, float64(n), k[0], k[1], k[2])
	}

	c.collectOperations(ch, now)
	c.collectRefusals(ch)

	leaderID := ""
	if _, id := s.raft.LeaderWithID(); id != "" {
		leaderID = string(id)
	}
	gauge(descLeader, b2f(s.raft.State() == raft.Leader))
	gauge(descHasLeader, b2f(leaderID != ""))
	stats := s.raft.Stats()
	if v, err := strconv.ParseUint(stats["commit_index"], 10, 64); err == nil {
		gauge(descCommit, float64(v))
	}
	gauge(descApplied, float64(s.raft.AppliedIndex()))
	if s.raft.State() == raft.Leader {
		gauge(descLastContact, 0)
	} else if lc := s.raft.LastContact(); !lc.IsZero() {
		gauge(descLastContact, now.Sub(lc).Seconds())
	}
	statuses := map[string]int{"alive": 0, "dead": 0, "left": 0}
	for _, m := range s.pool.Members() {
		switch m.Status {
		case gossip.StatusAlive:
			statuses["alive"]++
		case gossip.StatusLeft:
			statuses["left"]++
		default:
			statuses["dead"]++
		}
	}
	for st, n := range statuses {
		gauge(descGossip, float64(n), st)
	}
	ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(s.pool.DroppedEvents()))
}

// collectOperations reports the operations kept in the FSM: counts by
// state, histograms of their figures, the age of the newest restore point.
func (c coordinatorCollector) collectOperations(ch chan<- prometheus.Metric, now time.Time) {
	type hist struct {
		count   uint64
		sum     float64
		buckets map[float64]uint64
	}
	observe := func(m map[string]*hist, cl string, v float64) {
		h := m[cl]
		if h == nil {
			h = &hist{buckets: map[float64]uint64{}}
			m[cl] = h
		}
		h.count++
		h.sum += v
		for _, b := range durationBuckets {
			if v <= b {
				h.buckets[b]++
			}
		}
	}
	counts := map[[2]string]int{}
	durations, holds, windows, drains := map[string]*hist{}, map[string]*hist{}, map[string]*hist{}, map[string]*hist{}
	for _, op := range c.s.fsm.Operations("", 0) {
		cl := op.GetCluster()
		counts[[2]string{cl, enumname.Of(op.GetState())}]++
		if !fsm.IsTerminal(op.GetState()) {
			continue
		}
		if a, b := op.GetCreatedAt().GetLocalTime(), op.GetEndedAt().GetLocalTime(); a != nil && b != nil {
			observe(durations, cl, b.AsTime().Sub(a.AsTime()).Seconds())
		}
		if op.GetHoldNs() > 0 {
			observe(holds, cl, time.Duration(op.GetHoldNs()).Seconds())
		}
		if w := op.GetWindow(); w != nil && op.GetState() == pb.OperationState_OPERATION_STATE_COMPLETED {
			observe(windows, cl, time.Duration(w.GetWidthNs()).Seconds())
		}
		if op.GetFanoutNs() > 0 {
			observe(drains, cl, time.Duration(op.GetFanoutNs()).Seconds())
		}
	}
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(descOps, prometheus.GaugeValue, float64(n), k[0], k[1])
	}
	for d, m := range map[*prometheus.Desc]map[string]*hist{descOpDuration: durations, descHold: holds, descWindow: windows, descDrain: drains} {
		for cl, h := range m {
			ch <- prometheus.MustNewConstHistogram(d, h.count, h.sum, h.buckets, cl)
		}
	}
	newest := map[string]time.Time{}
	for _, rp := range c.s.fsm.RestorePoints("", 0) {
		if rp.GetInvalid() || rp.GetWindow().GetRestorePoint() == nil {
			continue
		}
		t := rp.GetWindow().GetRestorePoint().AsTime()
		if t.After(newest[rp.GetCluster()]) {
			newest[rp.GetCluster()] = t
		}
	}
	clusters := make([]string, 0, len(newest))
	for cl := range newest {
		clusters = append(clusters, cl)
	}
	sort.Strings(clusters)
	for _, cl := range clusters {
		ch <- prometheus.MustNewConstMetric(descLastRP, prometheus.GaugeValue, now.Sub(newest[cl]).Seconds(), cl)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
