package coordinator

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/stillpoint-dev/stillpoint/coordinator/fsm"
	"github.com/stillpoint-dev/stillpoint/internal/enumname"
	"github.com/stillpoint-dev/stillpoint/internal/timefmt"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// Alarm kinds the leader's evaluator raises and clears. It leaves every
// other kind (restore_point_invalidated, ...) to whoever raised it.
const (
	AlarmErrorBoundWarning  = "error_bound_warning"
	AlarmErrorBoundCritical = "error_bound_critical"
	AlarmSpreadWarning      = "offset_spread_warning"
	AlarmSpreadCritical     = "offset_spread_critical"
	AlarmClockStatus        = "clock_status"
	AlarmFalseticker        = "falseticker"
	AlarmLeapPending        = "leap_pending"
	AlarmAgentAbsent        = "agent_absent"
	AlarmNodeUnreachable    = "node_unreachable"
	AlarmPausedWithoutOp    = "paused_without_op"
	AlarmPausedPastLease    = "paused_past_lease"
	SeverityWarning         = "warning"
	SeverityCritical        = "critical"
	unitNs                  = "ns"
	unitCount               = "count"
)

// evaluatorKinds are the kinds the evaluator owns.
var evaluatorKinds = map[string]bool{
	AlarmErrorBoundWarning: true, AlarmErrorBoundCritical: true, AlarmSpreadWarning: true, AlarmSpreadCritical: true,
	AlarmClockStatus: true, AlarmFalseticker: true, AlarmLeapPending: true, AlarmAgentAbsent: true,
	AlarmNodeUnreachable: true, AlarmPausedWithoutOp: true, AlarmPausedPastLease: true,
}

// AlarmID is the stable id of an alarm of kind about node of cluster
// (node empty for a cluster-wide alarm).
func AlarmID(kind, cluster, node string) string {
	return kind + "/" + cluster + "/" + node
}

// alarmMember is one roster member or agent as the leader sees it.
type alarmMember struct {
	cand candidate
	// cluster is the member's cluster; leaseRemaining comes from gossip
	// (grown old by the metadata's age), -1 when the agent holds no op.
	cluster        string
	leaseRemaining time.Duration
	// falsetickers names the NTP servers outvoted (asked of the agent);
	// empty when only their count is known.
	falsetickers []string
}

// alarmCond is a condition that holds now: the alarm it would raise.
type alarmCond struct {
	alarm *pb.Alarm
}

func newCond(kind, severity, cluster, node string, figure, limit float64, unit, msg string) alarmCond {
	return alarmCond{alarm: &pb.Alarm{
		Id: AlarmID(kind, cluster, node), Kind: kind, Severity: severity, Cluster: cluster, Node: node,
		Figure: figure, Limit: limit, Unit: unit, Message: msg,
	}}
}

// alarmConditions lists every condition that holds now over members (all
// clusters), against the runtime config — the same figures and limits
// admission uses: a critical error-bound or spread alarm holds exactly
// where admission would refuse for that figure. active is the set of
// operations not yet ended, by id.
func alarmConditions(members []alarmMember, cfg *pb.RuntimeConfig, active map[string]*pb.Operation) map[string]alarmCond {
	set := fsm.AlarmSettingsOf(cfg)
	out := map[string]alarmCond{}
	add := func(c alarmCond) { out[c.alarm.GetId()] = c }
	byCluster := map[string][]candidate{}
	for _, m := range members {
		c, cl := m.cand, m.cluster
		if c.absent != "" || c.status != pb.MemberStatus_MEMBER_STATUS_ALIVE {
			why := c.absent
			if why == "" {
				why = "gossip status " + enumname.Of(c.status)
			}
			add(newCond(AlarmAgentAbsent, SeverityCritical, cl, c.name, 0, 0, "", fmt.Sprintf("%s (cluster %s): agent absent: %s", c.name, cl, why)))
			continue
		}
		if c.state == nil {
			continue
		}
		byCluster[cl] = append(byCluster[cl], c)
		ck := c.state.GetClock()
		if st := ck.GetStatus(); st != pb.ClockStatus_CLOCK_STATUS_SYNCHRONIZED {
			msg := fmt.Sprintf("%s (cluster %s): clock %s", c.name, cl, enumname.Of(st))
			if ck == nil || st == pb.ClockStatus_CLOCK_STATUS_UNSPECIFIED {
				msg = fmt.Sprintf("%s (cluster %s): no clock estimate gossiped yet", c.name, cl)
			} else if ck.GetReason() != "" {
				msg += " (" + ck.GetReason() + ")"
			}
			add(newCond(AlarmClockStatus, SeverityCritical, cl, c.name, 0, 0, "", msg+": it cannot take part in a pause"))
		}
		if ck != nil {
			bound := time.Duration(ck.GetErrorBoundNs())
			if boundExceeds(bound, set.MaxErrorBound) {
				add(newCond(AlarmErrorBoundCritical, SeverityCritical, cl, c.name, float64(bound), float64(set.MaxErrorBound), unitNs,
					fmt.Sprintf("%s (cluster %s): error bound %s > max_error_bound %s: a pause would be refused", c.name, cl, timefmt.Duration(bound), timefmt.Duration(set.MaxErrorBound))))
			}
			if boundExceeds(bound, set.WarnErrorBound) {
				add(newCond(AlarmErrorBoundWarning, SeverityWarning, cl, c.name, float64(bound), float64(set.WarnErrorBound), unitNs,
					fmt.Sprintf("%s (cluster %s): error bound %s > warning %s (%.0f%% of max_error_bound %s)", c.name, cl, timefmt.Duration(bound),
						timefmt.Duration(set.WarnErrorBound), set.WarningRatio*100, timefmt.Duration(set.MaxErrorBound))))
			}
			if n := ck.GetFalsetickers(); n > 0 {
				msg := fmt.Sprintf("%s (cluster %s): %d NTP source(s) outvoted as falsetickers", c.name, cl, n)
				if len(m.falsetickers) > 0 {
					msg += ": " + strings.Join(m.falsetickers, ", ")
				}
				add(newCond(AlarmFalseticker, SeverityWarning, cl, c.name, float64(n), 0, unitCount, msg))
			}
			if ck.GetLeapPending() {
				add(newCond(AlarmLeapPending, SeverityWarning, cl, c.name, 0, 0, "", fmt.Sprintf("%s (cluster %s): a leap second is pending: its clock may step at the end of the day (UTC)", c.name, cl)))
			}
		}
		ns := c.state.GetNodeState()
		if !ns.GetReachable() {
			msg := fmt.Sprintf("%s (cluster %s): node admin port unreachable", c.name, cl)
			if ns.GetReason() != "" {
				msg += " (" + ns.GetReason() + ")"
			}
			add(newCond(AlarmNodeUnreachable, SeverityCritical, cl, c.name, 0, 0, "", msg))
		}
		if ns.GetPaused() == pb.PausedState_PAUSED_STATE_PAUSED {
			op := c.state.GetOpId()
			if op == "" || active[op] == nil {
				why := "no operation holds it (scalar-admin run by hand, or its agent lost the op)"
				if op != "" {
					why = fmt.Sprintf("its agent still holds op %s, which has ended", op)
				}
				add(newCond(AlarmPausedWithoutOp, SeverityCritical, cl, c.name, 0, 0, "", fmt.Sprintf("%s (cluster %s): node is paused but %s: it serves no requests", c.name, cl, why)))
			}
			if op != "" && m.leaseRemaining == 0 {
				add(newCond(AlarmPausedPastLease, SeverityCritical, cl, c.name, 0, 0, "", fmt.Sprintf("%s (cluster %s): node is still paused for op %s after its lease ran out: its agent should have unpaused it", c.name, cl, op)))
			}
		}
	}
	clusters := make([]string, 0, len(byCluster))
	for cl := range byCluster {
		clusters = append(clusters, cl)
	}
	sort.Strings(clusters)
	for _, cl := range clusters {
		f, ok := offsetSpread(byCluster[cl])
		if !ok {
			continue
		}
		extremes := fmt.Sprintf("%s %s .. %s %s", f.lo.name, timefmt.Signed(f.lo.d), f.hi.name, timefmt.Signed(f.hi.d))
		if spreadExceeds(f.spread, set.MaxDrift) {
			for _, c := range spreadConds(AlarmSpreadCritical, SeverityCritical, cl, f, set.MaxDrift,
				fmt.Sprintf("offset spread %s > max_drift %s (%s): a pause would be refused", timefmt.Duration(f.spread), timefmt.Duration(set.MaxDrift), extremes)) {
				add(c)
			}
		}
		if spreadExceeds(f.spread, set.WarnSpread) {
			for _, c := range spreadConds(AlarmSpreadWarning, SeverityWarning, cl, f, set.WarnSpread,
				fmt.Sprintf("offset spread %s > warning %s (%.0f%% of max_drift %s) (%s)", timefmt.Duration(f.spread), timefmt.Duration(set.WarnSpread),
					set.WarningRatio*100, timefmt.Duration(set.MaxDrift), extremes)) {
				add(c)
			}
		}
	}
	return out
}

// spreadConds are the spread alarms of one cluster over limit: one per
// node more than limit/2 from the median (the node admission blames,
// named in the alarm's node), else one for the cluster naming the
// extremes.
func spreadConds(kind, severity, cluster string, f spreadFigures, limit time.Duration, what string) []alarmCond {
	var out []alarmCond
	for _, o := range f.offs {
		dev := o.d - f.median
		if dev <= limit/2 && -dev <= limit/2 {
			continue
		}
		c := newCond(kind, severity, cluster, o.name, float64(f.spread), float64(limit), unitNs,
			fmt.Sprintf("%s (cluster %s): clock offset %s is %s from the cluster median %s; %s", o.name, cluster, timefmt.Signed(o.d), timefmt.Signed(dev), timefmt.Signed(f.median), what))
		c.alarm.Nodes = []string{o.name}
		out = append(out, c)
	}
	if len(out) == 0 {
		c := newCond(kind, severity, cluster, "", float64(f.spread), float64(limit), unitNs, fmt.Sprintf("cluster %s: %s", cluster, what))
		c.alarm.Nodes = []string{f.lo.name, f.hi.name}
		out = append(out, c)
	}
	return out
}
