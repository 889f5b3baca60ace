package coordinator_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stillpoint-dev/stillpoint/coordinator/fsm"
	"github.com/stillpoint-dev/stillpoint/internal/gossip"
	"github.com/stillpoint-dev/stillpoint/internal/testcluster"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// TestLateInterruptReportFlagsCompletedRestorePoint: an agent that reports,
// after its op COMPLETED, that its node came back unpaused during the op
// gets the catalog entry flagged invalid (kept, with why, when and who), the
// op record flagged and an alarm raised naming the node and the op.
func TestLateInterruptReportFlagsCompletedRestorePoint(t *testing.T) {
	c := startDev(t, nil)
	op := startPause(t, c, client(t, c, 0), &pb.StartPauseRequest{Cluster: "ledger"}, completed)
	if op.GetState() != pb.OperationState_OPERATION_STATE_COMPLETED {
		t.Fatalf("pause ended %s: %s", op.GetState(), op.GetReason())
	}
	checkOracle(t, c, op)
	opID := op.GetOpId()
	m, ok := c.Servers()[c.Leader()].Member("ledger-2")
	if !ok {
		t.Fatal("ledger-2 not in the leader's gossip view")
	}
	meta := m.Meta

	// The real agent sets InterruptedOpID only while it still holds the op
	// (it sees its node's gate open under a held lease); a report that
	// arrives after the op completed has no deterministic natural path in
	// a test. So ledger-2's agent is replaced by a test member of the same
	// name gossiping the agent's metadata with InterruptedOpID set, as an
	// agent would after noticing the restart late.
	c.KillAgent("ledger-2")
	waitNotAlive(t, c, "ledger-2")
	meta.InterruptedOpID = opID
	late, err := gossip.New(gossip.Config{Name: "ledger-2", BindAddr: "127.0.0.1", Profile: gossip.ProfileTest, Join: c.GossipSeeds()},
		func() gossip.Meta { return meta })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = late.Shutdown() })

	cl := client(t, c, 1)
	var rp *pb.RestorePoint
	testcluster.WaitFor(t, 20*time.Second, func() (bool, string) {
		resp, err := cl.GetRestorePoint(context.Background(), &pb.GetRestorePointRequest{OpId: opID})
		if err != nil {
			return false, err.Error()
		}
		rp = resp.GetRestorePoint()
		return rp.GetInvalid(), fmt.Sprintf("catalog entry of %s not flagged: %v", opID, rp)
	})
	if !strings.Contains(rp.GetInvalidReason(), "ledger-2") || !strings.Contains(rp.GetInvalidReason(), opID) ||
		rp.GetInvalidatedAt().GetLocalTime() == nil || !strings.Contains(rp.GetInvalidatedBy(), "ledger-2") {
		t.Errorf("flagged entry lacks why/when/who: %v", rp)
	}
	if rp.GetWindow().GetRestorePoint() == nil {
		t.Errorf("flagged entry lost its window: %v", rp)
	}
	list, err := cl.ListRestorePoints(context.Background(), &pb.ListRestorePointsRequest{Cluster: "ledger"})
	if err != nil || len(list.GetRestorePoints()) != 1 || !list.GetRestorePoints()[0].GetInvalid() {
		t.Fatalf("catalog list = %v, %v; want the entry kept, flagged", list, err)
	}
	got, err := cl.GetOperation(context.Background(), &pb.GetOperationRequest{OpId: opID})
	if err != nil {
		t.Fatal(err)
	}
	g := got.GetOperation()
	if g.GetState() != pb.OperationState_OPERATION_STATE_COMPLETED || !g.GetInvalidatedAfterCompletion() || !strings.Contains(g.GetInvalidatedReason(), "ledger-2") {
		t.Errorf("op record = %s, invalidated_after_completion %v (%q); want COMPLETED kept and flagged", g.GetState(), g.GetInvalidatedAfterCompletion(), g.GetInvalidatedReason())
	}
	for _, tg := range g.GetTargets() {
		if late := tg.GetInterruptedReportedLate(); late != (tg.GetNode() == "ledger-2") {
			t.Errorf("target %s interrupted_reported_late = %v", tg.GetNode(), late)
		}
	}
	alarms, err := cl.ListAlarms(context.Background(), &pb.ListAlarmsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var alarm *pb.Alarm
	for _, a := range alarms.GetAlarms() {
		if a.GetId() == fsm.InvalidatedAlarmID(opID, "ledger-2") {
			alarm = a
		}
	}
	if alarm == nil || !alarm.GetActive() || alarm.GetNode() != "ledger-2" || !strings.Contains(alarm.GetMessage(), opID) {
		t.Fatalf("alarm = %v in %v", alarm, alarms.GetAlarms())
	}
	// Idempotent: the report stays in gossip; more passes record nothing.
	leader := c.Servers()[c.Leader()]
	for range 2 {
		if err := leader.WatchNow(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	for _, r := range leader.FSM().Audit(0) {
		if r.GetAction() == fsm.AuditRestorePointInvalidated && r.GetOpId() == opID {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d invalidation audit records for %s, want 1", n, opID)
	}
}

// TestDeadAgentLeavesNodePausedRaisesAlarm: a target's agent dies mid-hold
// and stays down, so its node stays paused. Once the lease has passed the
// leader raises an alarm naming the node and the op; it survives a
// failover and clears when the agent returns.
func TestDeadAgentLeavesNodePausedRaisesAlarm(t *testing.T) {
	c := startDev(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // bounds every step
	defer cancel()
	opID := startPause(t, c, client(t, c, 0), &pb.StartPauseRequest{Cluster: "ledger", HoldMs: 1500}, holding).GetOpId()
	c.KillAgent("ledger-2")
	if op := watchEnd(t, c, opID, 30*time.Second); op.GetState() == pb.OperationState_OPERATION_STATE_COMPLETED {
		t.Fatalf("op completed with ledger-2's agent dead mid-hold")
	}
	if !c.Node("ledger-2").Sim.Paused() {
		t.Fatal("ledger-2 is not paused: nothing to alarm about (the test lost its premise)")
	}
	alarmID := "agent-dead/ledger-2/" + opID
	findAlarm := func() (*pb.Alarm, string) {
		cl, err := c.Client(c.Leader())
		if err != nil {
			return nil, err.Error()
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second) // a call never outlives the test's wait
		defer cancel()
		resp, err := cl.ListAlarms(cctx, &pb.ListAlarmsRequest{IncludeCleared: true, Stale: true})
		if err != nil {
			return nil, err.Error()
		}
		for _, a := range resp.GetAlarms() {
			if a.GetId() == alarmID {
				return a, ""
			}
		}
		return nil, fmt.Sprintf("no alarm %s in %v", alarmID, resp.GetAlarms())
	}
	lease := 3 * time.Second
	testcluster.WaitFor(t, lease+15*time.Second, func() (bool, string) {
		a, why := findAlarm()
		return a.GetActive(), why
	})
	a, _ := findAlarm()
	if a.GetNode() != "ledger-2" || !strings.Contains(a.GetMessage(), opID) || !strings.Contains(a.GetMessage(), "paused") {
		t.Errorf("alarm = %v; want it to name ledger-2, the op and the paused node", a)
	}
	// In the FSM: a new leader has it.
	c.KillServer(c.Leader())
	if _, err := c.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	if a, why := findAlarm(); !a.GetActive() {
		t.Fatalf("after failover: %s %v", why, a)
	}
	// The agent returns, finds its lease run out and unpauses its node;
	// the alarm clears.
	if err := c.RestartAgent(ctx, "ledger-2"); err != nil {
		t.Fatal(err)
	}
	testcluster.WaitFor(t, 20*time.Second, func() (bool, string) {
		a, why := findAlarm()
		return a != nil && !a.GetActive() && a.GetClearedAt() != nil, why + fmt.Sprintf(" %v", a)
	})
	n := c.Node("ledger-2")
	testcluster.WaitFor(t, 10*time.Second, func() (bool, string) { return !n.Sim.Paused(), "ledger-2 still paused" })
}
