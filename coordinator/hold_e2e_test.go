package coordinator_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stillpoint-dev/stillpoint/internal/devcluster"
	"github.com/stillpoint-dev/stillpoint/internal/testcluster"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// endHold ends opID's hold through a follower (forwarded to the leader),
// aborting it or not.
func endHold(t *testing.T, c *devcluster.Cluster, opID string, abort bool) *pb.Operation {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var op *pb.Operation
	testcluster.WaitFor(t, 30*time.Second, func() (bool, string) {
		resp, err := client(t, c, 1).ForceUnpause(ctx, &pb.ForceUnpauseRequest{OpId: opID, Reason: "snapshots taken", Abort: abort})
		if err != nil {
			// A leader still taking the op over answers NOT_APPLIED
			// (UNAVAILABLE): nothing changed, retry.
			if status.Code(err) == codes.Unavailable {
				return false, err.Error()
			}
			t.Fatalf("unpause %s (abort %v): %v", opID, abort, err)
		}
		op = resp.GetOperation()
		return true, ""
	})
	return op
}

// pause --until-unpaused holds past any fixed hold, leases renewed, and
// shows when its hold ends at the latest; unpause then completes it with a
// window inside every node's true paused interval.
func TestUntilUnpausedThenUnpauseCompletes(t *testing.T) {
	c := startDev(t, nil) // leases of 3 s
	opID := startPause(t, c, client(t, c, 0), &pb.StartPauseRequest{Cluster: "ledger", RequestedBy: "test", UntilUnpaused: true}, holding).GetOpId()
	resp, err := client(t, c, 0).GetOperation(context.Background(), &pb.GetOperationRequest{OpId: opID})
	if err != nil {
		t.Fatal(err)
	}
	held := resp.GetOperation()
	if !held.GetUntilUnpaused() || time.Duration(held.GetMaxHoldNs()) != time.Hour {
		t.Fatalf("op until_unpaused %v max_hold %s, want true and the default 1h", held.GetUntilUnpaused(), time.Duration(held.GetMaxHoldNs()))
	}
	deadline := held.GetHoldDeadline().GetLocalTime().AsTime()
	if left := time.Until(deadline); left < 50*time.Minute {
		t.Fatalf("hold ends at %s, in %s: want about the 1h maximum hold", deadline, left)
	}
	// Hold past two leases: the renewals keep every node paused.
	var at time.Time
	testcluster.WaitFor(t, 30*time.Second, func() (bool, string) {
		if at.IsZero() {
			at = time.Now()
		}
		return time.Since(at) > 7*time.Second, "holding"
	})
	for _, n := range c.Nodes() {
		if !n.Sim.Paused() {
			t.Fatalf("%s unpaused during a hold until unpaused (lease not renewed?): %v", n.Spec.Name, n.Sim.PausedIntervals())
		}
	}
	op := endHold(t, c, opID, false)
	if op.GetState() != pb.OperationState_OPERATION_STATE_COMPLETED || op.GetWindow() == nil {
		t.Fatalf("unpause: op ended %s (%s), want COMPLETED with its window", op.GetState(), op.GetReason())
	}
	if w := time.Duration(op.GetWindow().GetWidthNs()); w < 6*time.Second {
		t.Errorf("window %s wide after a hold of over 7s", w)
	}
	checkOracle(t, c, op)
	if _, err := client(t, c, 0).GetRestorePoint(context.Background(), &pb.GetRestorePointRequest{OpId: opID}); err != nil {
		t.Errorf("restore point of a completed op: %v", err)
	}
	for _, n := range c.Nodes() {
		if n.Sim.Paused() {
			t.Errorf("%s still paused after unpause", n.Spec.Name)
		}
	}
}

// unpause --abort keeps its meaning: ABORTED, no window, no catalog entry.
func TestUntilUnpausedThenAbortAborts(t *testing.T) {
	c := startDev(t, nil)
	opID := startPause(t, c, client(t, c, 0), &pb.StartPauseRequest{Cluster: "ledger", RequestedBy: "test", UntilUnpaused: true}, holding).GetOpId()
	op := endHold(t, c, opID, true)
	if op.GetState() != pb.OperationState_OPERATION_STATE_ABORTED || op.GetWindow() != nil || !strings.Contains(op.GetReason(), "snapshots taken") {
		t.Fatalf("unpause --abort: op ended %s (%s, window %v), want ABORTED without a window", op.GetState(), op.GetReason(), op.GetWindow())
	}
	if _, err := client(t, c, 0).GetRestorePoint(context.Background(), &pb.GetRestorePointRequest{OpId: opID}); status.Code(err) != codes.NotFound {
		t.Errorf("restore point of an aborted op: %v, want NotFound", err)
	}
	for _, n := range c.Nodes() {
		if n.Sim.Paused() {
			t.Errorf("%s still paused after unpause --abort", n.Spec.Name)
		}
	}
}
