package coordinator_test

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/stillpoint-dev/stillpoint/coordinator"
	"github.com/stillpoint-dev/stillpoint/coordinator/fsm"
	"github.com/stillpoint-dev/stillpoint/internal/gossip"
	"github.com/stillpoint-dev/stillpoint/internal/testcluster"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// fastAlarms is a runtime config whose alarms react within a second.
func fastAlarms() *pb.RuntimeConfig {
	cfg := fsm.DefaultRuntimeConfig()
	cfg.AlarmForNs = int64(300 * time.Millisecond)
	cfg.AlarmClearForNs = int64(500 * time.Millisecond)
	cfg.AlarmEvalIntervalNs = int64(200 * time.Millisecond)
	return cfg
}

func activeAlarm(s *coordinator.Server, id string) (*pb.Alarm, bool) {
	a, ok := s.FSM().Alarm(id)
	return a, ok && a.GetActive()
}

// TestAlarmSurvivesLeaderKill: an error-bound alarm raised by one leader
// is found by the next (same id, same raised_at, no second alarm), which
// goes on evaluating (it raises a new one) and clears it when the
// condition is gone.
func TestAlarmSurvivesLeaderKill(t *testing.T) {
	var l1, l2 *testcluster.StandIn
	c := testcluster.New(t, 3, testcluster.WithExtra(func(t testing.TB, c *testcluster.Cluster) {
		m := ledgerMeta(0)
		m.Clock.BoundNS = int64(25 * time.Millisecond)
		l1 = c.AddStandIn(t, "ledger-1", m)
		l2 = c.AddStandIn(t, "ledger-2", ledgerMeta(time.Millisecond))
	}))
	c.WaitForLeader(t)
	if _, err := c.Client(0).UpdateConfig(ctxT(t, 10*time.Second), &pb.UpdateConfigRequest{Config: fastAlarms()}); err != nil {
		t.Fatal(err)
	}
	critical := coordinator.AlarmID(coordinator.AlarmErrorBoundCritical, "ledger", "ledger-1")
	var before *pb.Alarm
	testcluster.WaitFor(t, testcluster.DefaultTimeout, func() (bool, string) {
		l := c.Leader()
		if l == nil {
			return false, "no leader"
		}
		a, ok := activeAlarm(l, critical)
		before = a
		return ok, fmt.Sprintf("alarms on %s: %v", l.ID(), l.FSM().Alarms(true))
	})
	if before.GetNode() != "ledger-1" || before.GetFigure() < 25e6 || before.GetLimit() != 10e6 || before.GetSeverity() != coordinator.SeverityCritical {
		t.Fatalf("alarm = %v", before)
	}
	old := c.Leader()
	c.Kill(c.Index(old))
	newLeader := c.WaitForLeader(t)

	// The new leader evaluates: a warning on ledger-2 appears.
	if err := l2.Set(func(m *gossip.Meta) { m.Clock.BoundNS = int64(9 * time.Millisecond) }); err != nil {
		t.Fatal(err)
	}
	warn2 := coordinator.AlarmID(coordinator.AlarmErrorBoundWarning, "ledger", "ledger-2")
	testcluster.WaitFor(t, testcluster.DefaultTimeout, func() (bool, string) {
		_, ok := activeAlarm(newLeader, warn2)
		return ok, fmt.Sprintf("alarms on new leader %s: %v", newLeader.ID(), newLeader.FSM().Alarms(true))
	})
	after, ok := activeAlarm(newLeader, critical)
	if !ok || !proto.Equal(after.GetRaisedAt(), before.GetRaisedAt()) || !proto.Equal(after.GetFirstSeen(), before.GetFirstSeen()) {
		t.Fatalf("alarm across the leader kill:\nbefore %v\nafter  %v", before, after)
	}
	n := 0
	for _, a := range newLeader.FSM().Alarms(true) {
		if a.GetKind() == coordinator.AlarmErrorBoundCritical && a.GetNode() == "ledger-1" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d critical error-bound alarms for ledger-1 after the leader kill, want 1", n)
	}

	// Fixed: the new leader clears it.
	if err := l1.Set(func(m *gossip.Meta) { m.Clock.BoundNS = int64(2 * time.Millisecond) }); err != nil {
		t.Fatal(err)
	}
	testcluster.WaitFor(t, testcluster.DefaultTimeout, func() (bool, string) {
		a, _ := newLeader.FSM().Alarm(critical)
		return !a.GetActive() && a.GetClearedAt() != nil, fmt.Sprintf("alarm = %v", a)
	})
}
