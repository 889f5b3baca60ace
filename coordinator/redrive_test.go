package coordinator_test

import (
	"testing"
	"time"

	"github.com/stillpoint-dev/stillpoint/coordinator/fsm"
	"github.com/stillpoint-dev/stillpoint/internal/testcluster"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// TestLeaderRedrivesOpWithoutRunner: an op committed while its leader
// leads but never handed to a runner (StartPause's client went away after
// the commit, or a runner stopped on an error) is driven to its end by the
// same leader, without waiting for a new term.
func TestLeaderRedrivesOpWithoutRunner(t *testing.T) {
	c := testcluster.New(t, 1)
	leader := c.WaitForLeader(t)
	epoch, _ := leader.LeaderEpoch()
	op := &pb.Operation{OpId: "op-orphan", Cluster: "ledger", State: pb.OperationState_OPERATION_STATE_PENDING,
		Epoch: epoch, LeaseMs: 3000, CreatedAt: leader.Stamp(), Leader: leader.ID()}
	if _, err := leader.Apply(ctxT(t, 5*time.Second), &pb.CreateOperationCommand{Operation: op, Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	testcluster.WaitFor(t, 10*time.Second, func() (bool, string) {
		got, ok := leader.FSM().Operation(op.GetOpId())
		return ok && fsm.IsTerminal(got.GetState()), got.GetState().String()
	})
	if holder, locked := leader.FSM().Lock("ledger"); locked {
		t.Fatalf("cluster still locked by %s", holder)
	}
}
