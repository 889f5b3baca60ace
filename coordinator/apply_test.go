package coordinator_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/stillpoint-dev/stillpoint/coordinator"
	"github.com/stillpoint-dev/stillpoint/coordinator/fsm"
	"github.com/stillpoint-dev/stillpoint/internal/testcluster"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// Apply must return by its deadline even when the leader has lost its
// quorum (raft's future alone can block forever).
func TestApplyWithoutQuorumRespectsDeadline(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.WithServerConfig(func(i int, cfg *coordinator.Config) {
		// Keep the leader believing it leads for a while after its
		// followers vanish.
		cfg.Raft.HeartbeatTimeout = 2 * time.Second
		cfg.Raft.ElectionTimeout = 2 * time.Second
		cfg.Raft.LeaderLeaseTimeout = 2 * time.Second
	}))
	leader := c.WaitForLeader(t)
	for _, f := range c.Followers() {
		c.Kill(c.Index(f))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := leader.Apply(ctx, &pb.SetConfigCommand{Config: fsm.DefaultRuntimeConfig()})
	took := time.Since(start)
	if err == nil {
		t.Fatal("apply without quorum succeeded")
	}
	if !errors.Is(err, coordinator.ErrApplyTimeout) && !errors.Is(err, raft.ErrNotLeader) && !errors.Is(err, raft.ErrLeadershipLost) {
		t.Fatalf("err = %v", err)
	}
	if took > 2*time.Second {
		t.Fatalf("apply took %v with a 300ms deadline", took)
	}
}

func TestApplyReturnsFSMRejection(t *testing.T) {
	c := testcluster.New(t, 1)
	leader := c.WaitForLeader(t)
	epoch, _ := leader.LeaderEpoch()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	op := &pb.Operation{OpId: "op-1", Cluster: "ledger", Epoch: epoch, State: pb.OperationState_OPERATION_STATE_PENDING}
	got, err := leader.Apply(ctx, &pb.CreateOperationCommand{Operation: op, Actor: "t"})
	if err != nil {
		t.Fatal(err)
	}
	if got.(*pb.Operation).GetOpId() != "op-1" {
		t.Fatalf("apply result = %v", got)
	}
	op2 := &pb.Operation{OpId: "op-2", Cluster: "ledger", Epoch: epoch, State: pb.OperationState_OPERATION_STATE_PENDING}
	if _, err := leader.Apply(ctx, &pb.CreateOperationCommand{Operation: op2}); !errors.Is(err, fsm.ErrClusterLocked) {
		t.Fatalf("second op on locked cluster: %v", err)
	}
	// The API serves what was applied.
	resp, err := c.Client(0).ListOperations(ctx, &pb.ListOperationsRequest{})
	if err != nil || len(resp.GetOperations()) != 1 {
		t.Fatalf("ListOperations = %v, %v", resp, err)
	}
}

func TestRaftMetricsReachPrometheus(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := coordinator.SetupMetrics(reg); err != nil {
		t.Fatal(err)
	}
	c := testcluster.New(t, 1)
	c.WaitForLeader(t)
	testcluster.WaitFor(t, testcluster.DefaultTimeout, func() (bool, string) {
		mfs, err := reg.Gather()
		if err != nil {
			return false, err.Error()
		}
		var names []string
		for _, mf := range mfs {
			names = append(names, mf.GetName())
			if strings.HasPrefix(mf.GetName(), "stillpoint_raft_") {
				return true, ""
			}
		}
		return false, "no stillpoint_raft_* metric among " + strings.Join(names, ", ")
	})
}
