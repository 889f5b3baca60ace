package coordinator_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stillpoint-dev/stillpoint/coordinator"
	"github.com/stillpoint-dev/stillpoint/internal/testcluster"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// TestRosterKeepsAgentGoneFromGossip: an agent that left stays on its
// cluster's roster (status left) even after gossip has forgotten it and a
// full reconcile ran.
func TestRosterKeepsAgentGoneFromGossip(t *testing.T) {
	var l2 *testcluster.StandIn
	c := testcluster.New(t, 1, testcluster.WithServerConfig(func(_ int, cfg *coordinator.Config) {
		cfg.Gossip.DeadRetention = 200 * time.Millisecond // forget gone members fast
	}), testcluster.WithExtra(func(t testing.TB, c *testcluster.Cluster) {
		c.AddStandIn(t, "ledger-1", ledgerMeta(0))
		l2 = c.AddStandIn(t, "ledger-2", ledgerMeta(0))
	}))
	leader := c.WaitForLeader(t)
	testcluster.WaitFor(t, testcluster.DefaultTimeout, func() (bool, string) {
		r := leader.FSM().Roster("ledger")
		return len(r) == 2, fmt.Sprintf("ledger roster = %v", r)
	})
	if err := l2.Pool.Leave(2 * time.Second); err != nil {
		t.Fatal(err)
	}
	_ = l2.Pool.Shutdown()
	testcluster.WaitFor(t, testcluster.DefaultTimeout, func() (bool, string) {
		_, inPool := leader.Member("ledger-2")
		return !inPool, "ledger-2 still in the leader's gossip view"
	})
	if err := leader.ReconcileNow(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	r, ok := leader.FSM().Member("ledger-2")
	if !ok {
		t.Fatal("ledger-2 dropped from the roster when gossip forgot it: the next pause of ledger would leave its node out")
	}
	if r.GetStatus() == pb.MemberRecordStatus_MEMBER_RECORD_STATUS_ALIVE {
		t.Errorf("ledger-2 record = %v, want left or failed", r)
	}
	resp, err := c.Client(0).ListMembers(ctxT(t, 10*time.Second), &pb.ListMembersRequest{Cluster: "ledger"})
	if err != nil {
		t.Fatal(err)
	}
	if ms := resp.GetMembers(); len(ms) != 2 || ms[1].GetName() != "ledger-2" || ms[1].GetStatus() == pb.MemberStatus_MEMBER_STATUS_ALIVE {
		t.Fatalf("members = %v, want ledger-2 listed as gone", ms)
	}
}
