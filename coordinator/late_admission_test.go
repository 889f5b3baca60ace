package coordinator_test

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stillpoint-dev/stillpoint/internal/testcluster"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// lateAgent answers Status with a node that came back unpaused during
// interrupted; every other call is unimplemented.
type lateAgent struct {
	pb.UnimplementedAgentServiceServer
	node, interrupted string
}

func (a *lateAgent) Status(context.Context, *pb.StatusRequest) (*pb.StatusResponse, error) {
	return &pb.StatusResponse{State: &pb.AgentState{Node: a.node, Cluster: "ledger", InterruptedOpId: a.interrupted,
		Clock:     &pb.ClockEstimate{Status: pb.ClockStatus_CLOCK_STATUS_SYNCHRONIZED, ErrorBoundNs: int64(time.Millisecond)},
		NodeState: &pb.NodeState{Reachable: true, Paused: pb.PausedState_PAUSED_STATE_UNPAUSED}}}, nil
}

// TestAdmissionFlagsLateInterrupt: an agent that reports (in its live
// Status) that its node came back unpaused during a COMPLETED op, before
// its gossip says so, gets the op's restore point flagged at the next
// admission of its cluster — the Pause that follows would make the agent
// forget the report.
func TestAdmissionFlagsLateInterrupt(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	pb.RegisterAgentServiceServer(srv, &lateAgent{node: "ledger-1", interrupted: "op-late"})
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	meta := ledgerMeta(0) // its gossip does not carry the report (yet)
	meta.GRPCAddr = lis.Addr().String()
	c := testcluster.New(t, 1, testcluster.WithExtra(func(t testing.TB, c *testcluster.Cluster) {
		c.AddStandIn(t, "ledger-1", meta)
	}))
	leader := c.WaitForLeader(t)
	testcluster.WaitFor(t, testcluster.DefaultTimeout, func() (bool, string) {
		_, ok := leader.LeaderEpoch()
		return ok && len(leader.FSM().Roster("ledger")) == 1, "ledger-1 not on the roster of a leading server"
	})

	ctx := ctxT(t, 10*time.Second)
	at := &pb.StampedTime{LocalTime: timestamppb.Now()}
	op := &pb.Operation{OpId: "op-late", Cluster: "ledger", State: pb.OperationState_OPERATION_STATE_PENDING, Epoch: leader.FSM().Epoch(),
		Targets: []*pb.TargetRecord{{Node: "ledger-1"}}, CreatedAt: at, LeaseMs: 3000}
	if _, err := leader.Apply(ctx, &pb.CreateOperationCommand{Operation: op, Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	op.State, op.EndedAt = pb.OperationState_OPERATION_STATE_COMPLETED, at
	op.Targets[0].UnpauseOutcome = pb.NodeOutcome_NODE_OUTCOME_UNPAUSED
	op.Window = &pb.RestoreWindow{Start: timestamppb.New(now), End: timestamppb.New(now.Add(time.Millisecond)), RestorePoint: timestamppb.New(now.Add(time.Millisecond / 2))}
	if _, err := leader.Apply(ctx, &pb.UpdateOperationCommand{Operation: op, Actor: "test"}); err != nil {
		t.Fatal(err)
	}

	// Admission asks the agent for its live state; whatever becomes of the
	// pause, the report is acted on before any Pause is sent.
	_, _ = c.Client(0).StartPause(ctx, &pb.StartPauseRequest{Cluster: "ledger", RequestedBy: "test"})
	rp, ok := leader.FSM().RestorePoint("op-late")
	if !ok || !rp.GetInvalid() {
		t.Fatalf("restore point of op-late after admission = %v; want it flagged invalid from ledger-1's live report", rp)
	}
}
