package coordinator

import (
	"math/rand"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stillpoint-dev/stillpoint/coordinator/fsm"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// alarmRig runs the evaluator's pure parts (conditions, hysteresis) over
// members it is given, on an injected clock, committing decisions to a
// real FSM as the leader would.
type alarmRig struct {
	t      *testing.T
	f      *fsm.FSM
	h      *alarmHysteresis
	cfg    *pb.RuntimeConfig
	now    time.Time
	index  uint64
	raised int // new alarms raised (not updates)
	clears int
}

func newAlarmRig(t *testing.T) *alarmRig {
	cfg := fsm.DefaultRuntimeConfig()
	cfg.AlarmForNs = int64(10 * time.Second)
	cfg.AlarmClearForNs = int64(20 * time.Second)
	r := &alarmRig{t: t, f: fsm.New(nil), h: newAlarmHysteresis(), cfg: cfg, now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	r.apply(&pb.SetConfigCommand{Config: cfg, At: r.stamp()})
	return r
}

func (r *alarmRig) stamp() *pb.StampedTime { return &pb.StampedTime{LocalTime: timestamppb.New(r.now)} }

func (r *alarmRig) apply(cmd proto.Message) {
	r.t.Helper()
	b, err := fsm.Encode(cmd)
	if err != nil {
		r.t.Fatal(err)
	}
	r.index++
	if resp := r.f.ApplyCommand(r.index, b); resp.Err != nil {
		r.t.Fatalf("apply %T: %v", cmd, resp.Err)
	}
}

// eval runs one evaluation at the rig's time and commits its decisions.
func (r *alarmRig) eval(members []alarmMember, active map[string]*pb.Operation) {
	r.t.Helper()
	conds := alarmConditions(members, r.cfg, active)
	d := r.h.step(r.now, conds, evaluatorAlarms(r.f.Alarms(false)), fsm.AlarmSettingsOf(r.cfg))
	for _, a := range d.raise {
		a.RaisedAt, a.UpdatedAt = r.stamp(), r.stamp()
		if fs, ok := d.firstSeen[a.GetId()]; ok {
			a.FirstSeen = &pb.StampedTime{LocalTime: timestamppb.New(fs)}
			r.raised++
		}
		r.apply(&pb.RaiseAlarmCommand{Alarm: a})
	}
	for _, id := range d.clear {
		r.apply(&pb.ClearAlarmCommand{Id: id, ClearedAt: r.stamp()})
		r.clears++
	}
}

// run evaluates every second for d.
func (r *alarmRig) run(d time.Duration, members func() []alarmMember, active map[string]*pb.Operation) {
	r.t.Helper()
	for end := r.now.Add(d); r.now.Before(end); r.now = r.now.Add(time.Second) {
		r.eval(members(), active)
	}
}

func (r *alarmRig) active(id string) (*pb.Alarm, bool) {
	a, ok := r.f.Alarm(id)
	return a, ok && a.GetActive()
}

// agentMember is a healthy agent: synchronized, reachable, unpaused.
func agentMember(name, cluster string, offset, bound time.Duration) alarmMember {
	return alarmMember{cluster: cluster, leaseRemaining: -1, cand: candidate{
		name: name, status: pb.MemberStatus_MEMBER_STATUS_ALIVE,
		state: &pb.AgentState{
			Node: name, Cluster: cluster,
			Clock:     &pb.ClockEstimate{OffsetNs: int64(offset), ErrorBoundNs: int64(bound), Status: pb.ClockStatus_CLOCK_STATUS_SYNCHRONIZED},
			NodeState: &pb.NodeState{Reachable: true, Paused: pb.PausedState_PAUSED_STATE_UNPAUSED},
		},
	}}
}

func healthyCluster() []alarmMember {
	return []alarmMember{
		agentMember("l1", "c1", 0, 2*time.Millisecond),
		agentMember("l2", "c1", time.Millisecond, 2*time.Millisecond),
		agentMember("l3", "c1", -time.Millisecond, 2*time.Millisecond),
	}
}

// TestAlarmKinds: each kind is raised after alarm_for with its node and
// figure, not before, and cleared after alarm_clear_for once the condition
// is gone.
func TestAlarmKinds(t *testing.T) {
	activeOp := &pb.Operation{OpId: "op-1", Cluster: "c1", State: pb.OperationState_OPERATION_STATE_HOLDING}
	tests := []struct {
		name       string
		mod        func(ms []alarmMember)
		wantID     string
		wantSev    string
		wantFigure float64
		wantLimit  float64
		wantText   []string
		wantNodes  []string
	}{
		{name: "error bound warning", mod: func(ms []alarmMember) { ms[1].cand.state.Clock.ErrorBoundNs = int64(9 * time.Millisecond) },
			wantID: AlarmID(AlarmErrorBoundWarning, "c1", "l2"), wantSev: SeverityWarning, wantFigure: 9e6, wantLimit: 8e6, wantText: []string{"l2", "9ms", "8ms"}},
		{name: "error bound critical", mod: func(ms []alarmMember) { ms[1].cand.state.Clock.ErrorBoundNs = int64(12 * time.Millisecond) },
			wantID: AlarmID(AlarmErrorBoundCritical, "c1", "l2"), wantSev: SeverityCritical, wantFigure: 12e6, wantLimit: 10e6, wantText: []string{"l2", "12ms", "10ms", "refused"}},
		{name: "spread warning", mod: func(ms []alarmMember) { ms[2].cand.state.Clock.OffsetNs = int64(-85 * time.Millisecond) },
			wantID: AlarmID(AlarmSpreadWarning, "c1", "l3"), wantSev: SeverityWarning, wantFigure: 86e6, wantLimit: 80e6, wantText: []string{"l3", "l2", "86ms"}, wantNodes: []string{"l3"}},
		{name: "spread critical", mod: func(ms []alarmMember) { ms[0].cand.state.Clock.OffsetNs = int64(150 * time.Millisecond) },
			wantID: AlarmID(AlarmSpreadCritical, "c1", "l1"), wantSev: SeverityCritical, wantFigure: 151e6, wantLimit: 100e6, wantText: []string{"l3", "l1", "151ms", "100ms"}, wantNodes: []string{"l1"}},
		{name: "clock stale", mod: func(ms []alarmMember) {
			ms[0].cand.state.Clock.Status = pb.ClockStatus_CLOCK_STATUS_STALE
			ms[0].cand.state.Clock.Reason = "no fresh sample for 3 polls"
		}, wantID: AlarmID(AlarmClockStatus, "c1", "l1"), wantSev: SeverityCritical, wantText: []string{"l1", "stale", "no fresh sample"}},
		{name: "clock unsynchronized", mod: func(ms []alarmMember) { ms[0].cand.state.Clock.Status = pb.ClockStatus_CLOCK_STATUS_UNSYNCHRONIZED },
			wantID: AlarmID(AlarmClockStatus, "c1", "l1"), wantSev: SeverityCritical, wantText: []string{"unsynchronized"}},
		{name: "clock disrupted", mod: func(ms []alarmMember) { ms[2].cand.state.Clock.Status = pb.ClockStatus_CLOCK_STATUS_DISRUPTED },
			wantID: AlarmID(AlarmClockStatus, "c1", "l3"), wantSev: SeverityCritical, wantText: []string{"l3", "disrupted"}},
		{name: "falsetickers", mod: func(ms []alarmMember) {
			ms[0].cand.state.Clock.Falsetickers = 1
			ms[0].falsetickers = []string{"ntp-b.example:123"}
		}, wantID: AlarmID(AlarmFalseticker, "c1", "l1"), wantSev: SeverityWarning, wantFigure: 1, wantText: []string{"l1", "ntp-b.example:123"}},
		{name: "leap pending", mod: func(ms []alarmMember) { ms[1].cand.state.Clock.LeapPending = true },
			wantID: AlarmID(AlarmLeapPending, "c1", "l2"), wantSev: SeverityWarning, wantText: []string{"l2", "leap second"}},
		{name: "agent absent", mod: func(ms []alarmMember) {
			ms[1].cand.state = nil
			ms[1].cand.status = pb.MemberStatus_MEMBER_STATUS_DEAD
			ms[1].cand.absent = "its agent failed (gossip declared it dead)"
		}, wantID: AlarmID(AlarmAgentAbsent, "c1", "l2"), wantSev: SeverityCritical, wantText: []string{"l2", "failed"}},
		{name: "node unreachable", mod: func(ms []alarmMember) {
			ms[1].cand.state.NodeState = &pb.NodeState{Reachable: false, Reason: "connection refused"}
		}, wantID: AlarmID(AlarmNodeUnreachable, "c1", "l2"), wantSev: SeverityCritical, wantText: []string{"l2", "connection refused"}},
		{name: "paused by hand", mod: func(ms []alarmMember) { ms[0].cand.state.NodeState.Paused = pb.PausedState_PAUSED_STATE_PAUSED },
			wantID: AlarmID(AlarmPausedWithoutOp, "c1", "l1"), wantSev: SeverityCritical, wantText: []string{"l1", "no operation holds it"}},
		{name: "paused for an ended op", mod: func(ms []alarmMember) {
			ms[0].cand.state.NodeState.Paused = pb.PausedState_PAUSED_STATE_PAUSED
			ms[0].cand.state.OpId = "op-ended"
			ms[0].leaseRemaining = 5 * time.Second
		}, wantID: AlarmID(AlarmPausedWithoutOp, "c1", "l1"), wantSev: SeverityCritical, wantText: []string{"l1", "op-ended", "has ended"}},
		{name: "paused past lease", mod: func(ms []alarmMember) {
			ms[0].cand.state.NodeState.Paused = pb.PausedState_PAUSED_STATE_PAUSED
			ms[0].cand.state.OpId = "op-1"
			ms[0].leaseRemaining = 0
		}, wantID: AlarmID(AlarmPausedPastLease, "c1", "l1"), wantSev: SeverityCritical, wantText: []string{"l1", "op-1", "lease ran out"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newAlarmRig(t)
			active := map[string]*pb.Operation{"op-1": activeOp}
			bad := func() []alarmMember { ms := healthyCluster(); tc.mod(ms); return ms }
			r.run(9*time.Second, bad, active)
			if _, ok := r.active(tc.wantID); ok {
				t.Fatalf("%s raised before alarm_for (10s) passed", tc.wantID)
			}
			r.run(2*time.Second, bad, active)
			a, ok := r.active(tc.wantID)
			if !ok {
				t.Fatalf("%s not raised after alarm_for; alarms: %v", tc.wantID, r.f.Alarms(true))
			}
			if a.GetSeverity() != tc.wantSev || a.GetCluster() != "c1" || a.GetFigure() != tc.wantFigure || a.GetLimit() != tc.wantLimit {
				t.Fatalf("alarm = %v; want severity %s, figure %v, limit %v", a, tc.wantSev, tc.wantFigure, tc.wantLimit)
			}
			if wantNode := strings.Split(tc.wantID, "/")[2]; a.GetNode() != wantNode {
				t.Fatalf("alarm node %q, want %q", a.GetNode(), wantNode)
			}
			for _, w := range tc.wantText {
				if !strings.Contains(a.GetMessage(), w) {
					t.Errorf("message %q does not name %q", a.GetMessage(), w)
				}
			}
			if tc.wantNodes != nil && strings.Join(a.GetNodes(), ",") != strings.Join(tc.wantNodes, ",") {
				t.Errorf("nodes = %v, want %v", a.GetNodes(), tc.wantNodes)
			}
			if fs := a.GetFirstSeen().GetLocalTime().AsTime(); a.GetRaisedAt().GetLocalTime().AsTime().Sub(fs) < 10*time.Second {
				t.Errorf("first_seen %v is less than alarm_for before raised_at %v", fs, a.GetRaisedAt().GetLocalTime().AsTime())
			}
			// Healthy again: cleared only after alarm_clear_for (20s).
			r.run(19*time.Second, healthyCluster, active)
			if _, ok := r.active(tc.wantID); !ok {
				t.Fatalf("%s cleared before alarm_clear_for", tc.wantID)
			}
			r.run(2*time.Second, healthyCluster, active)
			if _, ok := r.active(tc.wantID); ok {
				t.Fatalf("%s still active after alarm_clear_for", tc.wantID)
			}
			if got, _ := r.f.Alarm(tc.wantID); got.GetClearedAt() == nil {
				t.Fatalf("cleared alarm without cleared_at: %v", got)
			}
			if n := len(r.f.Alarms(false)); n != 0 {
				t.Fatalf("healthy cluster left alarms: %v", r.f.Alarms(false))
			}
		})
	}
}

// TestAlarmHealthyClusterRaisesNothing: a healthy cluster with an active
// op holding a paused node raises nothing.
func TestAlarmHealthyClusterRaisesNothing(t *testing.T) {
	r := newAlarmRig(t)
	active := map[string]*pb.Operation{"op-1": {OpId: "op-1"}}
	ms := func() []alarmMember {
		m := healthyCluster()
		m[0].cand.state.NodeState.Paused = pb.PausedState_PAUSED_STATE_PAUSED
		m[0].cand.state.OpId = "op-1"
		m[0].leaseRemaining = 10 * time.Second
		return m
	}
	r.run(time.Minute, ms, active)
	if a := r.f.Alarms(true); len(a) != 0 {
		t.Fatalf("alarms on a healthy cluster: %v", a)
	}
}

// TestAlarmNoFlappingUnderNoise: an error bound hovering at the warning
// threshold (noise ±1.5ms around 8ms, above more often than not) raises
// the warning once and never clears it while it hovers; a short spike
// never raises; well below for clear_for clears it once.
func TestAlarmNoFlappingUnderNoise(t *testing.T) {
	r := newAlarmRig(t)
	rng := rand.New(rand.NewSource(7))
	id := AlarmID(AlarmErrorBoundWarning, "c1", "l1")
	bound := func(center time.Duration) func() []alarmMember {
		return func() []alarmMember {
			ms := healthyCluster()
			noise := time.Duration(rng.Int63n(int64(3*time.Millisecond))) - 1500*time.Microsecond
			ms[0].cand.state.Clock.ErrorBoundNs = int64(center + noise)
			return ms
		}
	}
	// One spike above the threshold, then quiet: nothing raised.
	spike := healthyCluster()
	spike[0].cand.state.Clock.ErrorBoundNs = int64(9 * time.Millisecond)
	r.eval(spike, nil)
	r.now = r.now.Add(time.Second)
	r.run(time.Minute, healthyCluster, nil)
	if r.raised != 0 {
		t.Fatalf("a 1s spike raised %d alarms", r.raised)
	}
	r.run(5*time.Minute, bound(8500*time.Microsecond), nil)
	if r.raised != 1 || r.clears != 0 {
		t.Fatalf("hovering bound: %d raises, %d clears; want 1 and 0", r.raised, r.clears)
	}
	if _, ok := r.active(id); !ok {
		t.Fatal("hovering bound: warning not active")
	}
	r.run(time.Minute, bound(4*time.Millisecond), nil)
	if r.raised != 1 || r.clears != 1 {
		t.Fatalf("after recovery: %d raises, %d clears; want 1 and 1", r.raised, r.clears)
	}
	// Updates of the figure while hovering were throttled to one per
	// alarm_for at most.
	if r.index > 2+uint64(5*60/10)+2+2 {
		t.Fatalf("%d FSM entries: the noisy figure was rewritten too often", r.index)
	}
}

// TestAlarmCriticalAgreesWithAdmission: for random clusters, the critical
// error-bound and spread alarms hold exactly where admission's evaluate
// refuses for that figure.
func TestAlarmCriticalAgreesWithAdmission(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	cfg := fsm.DefaultRuntimeConfig()
	for i := 0; i < 500; i++ {
		var ms []alarmMember
		var cands []candidate
		for j := 0; j < 1+rng.Intn(5); j++ {
			m := agentMember(string(rune('a'+j)), "c", time.Duration(rng.Int63n(int64(240*time.Millisecond)))-120*time.Millisecond,
				time.Duration(rng.Int63n(int64(14*time.Millisecond))))
			if rng.Intn(4) == 0 {
				m.cand.state.Clock.ErrorBoundNs = cfg.GetMaxErrorBoundNs() // exactly at the limit: admitted
			}
			ms = append(ms, m)
			cands = append(cands, m.cand)
		}
		ev := evaluate("c", cands, cfg)
		conds := alarmConditions(ms, cfg, nil)
		for _, c := range cands {
			refusedBound := false
			for _, why := range ev.perNode[c.name] {
				refusedBound = refusedBound || strings.HasPrefix(why, "error bound")
			}
			_, alarmed := conds[AlarmID(AlarmErrorBoundCritical, "c", c.name)]
			if refusedBound != alarmed {
				t.Fatalf("case %d %s bound %d: admission refuses=%v, critical alarm=%v", i, c.name, c.state.GetClock().GetErrorBoundNs(), refusedBound, alarmed)
			}
			blamed := false
			for _, why := range ev.perNode[c.name] {
				blamed = blamed || strings.HasPrefix(why, "clock offset")
			}
			if _, named := conds[AlarmID(AlarmSpreadCritical, "c", c.name)]; blamed != named {
				t.Fatalf("case %d %s offset %d: admission blames it for the spread=%v, spread alarm names it=%v", i, c.name, c.state.GetClock().GetOffsetNs(), blamed, named)
			}
		}
		alarmed := false
		for id := range conds {
			alarmed = alarmed || strings.HasPrefix(id, AlarmSpreadCritical+"/")
		}
		if refused := ev.spread > cfg.GetMaxDriftNs(); refused != alarmed {
			t.Fatalf("case %d spread %d: admission refuses=%v, critical alarm=%v", i, ev.spread, refused, alarmed)
		}
	}
}

// TestAlarmLeavesOtherKindsAlone: an alarm of a kind the evaluator does
// not own (a restore point invalidated) is never cleared by it.
func TestAlarmLeavesOtherKindsAlone(t *testing.T) {
	r := newAlarmRig(t)
	r.apply(&pb.RaiseAlarmCommand{Alarm: &pb.Alarm{Id: "restore-point-invalid/op-9/l1", Kind: fsm.AlarmRestorePointInvalidated, Node: "l1", RaisedAt: r.stamp()}})
	r.run(2*time.Minute, healthyCluster, nil)
	if _, ok := r.active("restore-point-invalid/op-9/l1"); !ok {
		t.Fatal("the evaluator cleared an alarm it does not own")
	}
}

// TestAlarmNewLeaderNeitherDuplicatesNorDrops: a fresh hysteresis (a new
// leader) over an FSM that already holds the raised alarm updates it in
// place (same id, same raised_at) while the condition holds, and clears it
// after clear_for once it is gone.
func TestAlarmNewLeaderNeitherDuplicatesNorDrops(t *testing.T) {
	r := newAlarmRig(t)
	bad := func() []alarmMember {
		ms := healthyCluster()
		ms[1].cand.state.Clock.ErrorBoundNs = int64(12 * time.Millisecond)
		return ms
	}
	r.run(15*time.Second, bad, nil)
	id := AlarmID(AlarmErrorBoundCritical, "c1", "l2")
	before, ok := r.active(id)
	if !ok {
		t.Fatal("not raised")
	}
	n := len(r.f.Alarms(true))
	r.h = newAlarmHysteresis() // leadership moved
	r.run(time.Minute, bad, nil)
	after, ok := r.active(id)
	if !ok || len(r.f.Alarms(true)) != n || r.raised != 2 /* warning + critical */ {
		t.Fatalf("after a new leader: active=%v, %d alarms (want %d), %d raises", ok, len(r.f.Alarms(true)), n, r.raised)
	}
	if !after.GetRaisedAt().GetLocalTime().AsTime().Equal(before.GetRaisedAt().GetLocalTime().AsTime()) {
		t.Fatalf("raised_at moved from %v to %v", before.GetRaisedAt(), after.GetRaisedAt())
	}
	r.h = newAlarmHysteresis()
	r.run(21*time.Second, healthyCluster, nil)
	if _, ok := r.active(id); ok {
		t.Fatal("a new leader never cleared the alarm")
	}
}

// TestRefusalReasons sorts admission's refusal messages into the bounded
// reason set of the refusal metric.
func TestRefusalReasons(t *testing.T) {
	detail := `pause refused for cluster ledger: ledger-1: error bound 12ms > max 10ms; ledger-2: clock offset -505ms is -503ms from the cluster median -1.8ms (offset spread 506ms > max_drift 100ms); ledger-3: node admin port unreachable (dial refused); ledger-4: on the ledger roster but its agent failed (gossip declared it dead): its node may be serving unpaused; ledger-5: clock stale`
	got := strings.Join(refusalReasons(detail), ",")
	if got != "error_bound,offset_spread,node_unreachable,absent,clock_status" {
		t.Fatalf("reasons = %s", got)
	}
	if m := refusedCluster.FindStringSubmatch(detail); m == nil || m[1] != "ledger" {
		t.Fatalf("cluster = %v", m)
	}
}
