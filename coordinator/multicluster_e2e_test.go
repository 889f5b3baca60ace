package coordinator_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stillpoint-dev/stillpoint/coordinator"
	"github.com/stillpoint-dev/stillpoint/internal/devcluster"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// One op pauses the ledger and the auditor clusters: one window over all
// five nodes, inside every node's true paused interval; both clusters are
// locked while it runs (a pause of either is refused, naming the op) and
// free once it ended. A cluster named twice is refused.
func TestPauseOfTwoClustersOneWindow(t *testing.T) {
	c := startDev(t, func(cfg *devcluster.Config) { cfg.Nodes = devcluster.DefaultConfig().Nodes })
	cl := client(t, c, 1) // forwarded to the leader
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := cl.StartPause(ctx, &pb.StartPauseRequest{Cluster: "ledger", Clusters: []string{"auditor", "ledger"}})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "cluster ledger is named twice") {
		t.Fatalf("ledger named twice: %v, want INVALID_ARGUMENT naming ledger", err)
	}

	_, err = cl.StartPause(ctx, &pb.StartPauseRequest{Clusters: []string{"ledger", "nope"}})
	if status.Code(err) != codes.NotFound || coordinator.ErrorInfoOf(err).GetMetadata()["cluster"] != "nope" || !strings.Contains(err.Error(), "cluster nope has no agents") {
		t.Fatalf("ledger with an unknown cluster: %v, want NOT_FOUND (UNKNOWN_CLUSTER) naming nope", err)
	}

	held := startPause(t, c, cl, &pb.StartPauseRequest{Cluster: "ledger", Clusters: []string{"auditor"}, HoldMs: 1500}, holding)
	if got := held.GetClusters(); !slices.Equal(got, []string{"ledger", "auditor"}) {
		t.Fatalf("op clusters %v, want [ledger auditor]", got)
	}
	for _, single := range []string{"ledger", "auditor"} {
		_, err := cl.StartPause(ctx, &pb.StartPauseRequest{Cluster: single})
		if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), held.GetOpId()) {
			t.Fatalf("pause of %s while %s holds it: %v, want FAILED_PRECONDITION naming the op", single, held.GetOpId(), err)
		}
	}
	op := watchEnd(t, c, held.GetOpId(), 30*time.Second)
	if op.GetState() != pb.OperationState_OPERATION_STATE_COMPLETED {
		t.Fatalf("op of two clusters ended %s: %s", op.GetState(), op.GetReason())
	}
	var nodes []string
	for _, tg := range op.GetTargets() {
		nodes = append(nodes, tg.GetNode())
	}
	if want := []string{"auditor-1", "auditor-2", "ledger-1", "ledger-2", "ledger-3"}; !slices.Equal(nodes, want) {
		t.Fatalf("targets %v, want every node of both clusters %v", nodes, want)
	}
	checkOracle(t, c, op)
	for _, name := range []string{"ledger", "auditor"} {
		resp, err := cl.ListOperations(ctx, &pb.ListOperationsRequest{Cluster: name})
		if err != nil || len(resp.GetOperations()) == 0 || resp.GetOperations()[0].GetOpId() != op.GetOpId() {
			t.Fatalf("operations of %s: %v %v, want %s", name, resp.GetOperations(), err, op.GetOpId())
		}
	}
	// Both locks were released: a pause of the auditor alone runs.
	if one := startPause(t, c, cl, &pb.StartPauseRequest{Cluster: "auditor"}, completed); len(one.GetTargets()) != 2 {
		t.Fatalf("auditor alone paused %d targets", len(one.GetTargets()))
	}
}
