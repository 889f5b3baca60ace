package coordinator

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// rtFailover runs op under a first runner until its hook cuts the term
// (the hook returns true), then lets a runner of the next term take over
// from the last record, as a new leader does. It returns the final record.
func rtFailover(t *testing.T, f rtFleet, op *pb.Operation, watch1, watch2 holdWatch, cut func(r *pauseRunner, op *pb.Operation) bool) *pb.Operation {
	t.Helper()
	l := &rtLog{epoch: 1}
	ctx1, cancel1 := context.WithCancel(context.Background())
	defer cancel1()
	r1 := rtRunner(t, l, f, 1, watch1)
	l.hook = func(op *pb.Operation) (bool, error) {
		if cut(r1, op) {
			cancel1() // the leader lost its term right after this commit
		}
		return true, nil
	}
	if final, err := r1.run(ctx1, op); err == nil {
		t.Fatalf("first runner finished the op (%s: %s); the cut did not happen", final.GetState(), final.GetReason())
	}
	epoch := l.newTerm()
	r2 := rtRunner(t, l, f, epoch, watch2)
	final, err := r2.run(context.Background(), l.latest())
	if err != nil {
		t.Fatalf("second runner: %v", err)
	}
	if got := l.latest(); got.GetState() != final.GetState() {
		t.Fatalf("runner returned %s but recorded %s", final.GetState(), got.GetState())
	}
	rtNonePaused(t, f)
	return final
}

func cutAtUnpausing(_ *pauseRunner, op *pb.Operation) bool {
	return op.GetState() == pb.OperationState_OPERATION_STATE_UNPAUSING
}

func TestFailoverKeepsInvalidatedHoldInvalid(t *testing.T) {
	f := rtNewFleet(time.Now, "ledger-1", "ledger-2", "ledger-3")
	restarted := func(*pb.Operation) string { return "ledger-2: node came back unpaused during the hold (it restarted)" }
	quiet := func(*pb.Operation) string { return "" }
	final := rtFailover(t, f, rtOp(10_000, 15_000, "ledger-1", "ledger-2", "ledger-3"), restarted, quiet, cutAtUnpausing)
	if final.GetState() != pb.OperationState_OPERATION_STATE_INVALID || !strings.Contains(final.GetReason(), "ledger-2") {
		t.Fatalf("op ended %s (%s), want INVALID naming ledger-2", final.GetState(), final.GetReason())
	}
	if final.GetWindow() != nil {
		t.Errorf("an invalidated op has a window: %v", final.GetWindow())
	}
}

func TestFailoverKeepsRollbackAborted(t *testing.T) {
	f := rtNewFleet(time.Now, "ledger-1", "ledger-2", "ledger-3")
	f["ledger-3"].pauseErr = func() error { return status.Error(codes.FailedPrecondition, "TIMED_OUT: drain took too long") }
	final := rtFailover(t, f, rtOp(0, 15_000, "ledger-1", "ledger-2", "ledger-3"), nil, nil, cutAtUnpausing)
	if final.GetState() != pb.OperationState_OPERATION_STATE_ABORTED || !strings.Contains(final.GetReason(), "ledger-3") {
		t.Fatalf("op ended %s (%s), want ABORTED naming ledger-3", final.GetState(), final.GetReason())
	}
}

func TestFailoverKeepsForceUnpauseAborted(t *testing.T) {
	f := rtNewFleet(time.Now, "ledger-1", "ledger-2")
	cut := func(r *pauseRunner, op *pb.Operation) bool {
		if op.GetState() == pb.OperationState_OPERATION_STATE_HOLDING {
			r.forceUnpause("by alice: hook hung")
		}
		return op.GetState() == pb.OperationState_OPERATION_STATE_UNPAUSING
	}
	final := rtFailover(t, f, rtOp(60_000, 15_000, "ledger-1", "ledger-2"), nil, nil, cut)
	if final.GetState() != pb.OperationState_OPERATION_STATE_ABORTED || !strings.Contains(final.GetReason(), "hook hung") {
		t.Fatalf("op ended %s (%s), want ABORTED with the force reason", final.GetState(), final.GetReason())
	}
}

// A new leader that finds an op UNPAUSING after a full hold runs the hold
// watch before it computes a window: a restart the old leader never saw
// must not become a COMPLETED restore point.
func TestFailoverUnpausingRunsHoldWatch(t *testing.T) {
	f := rtNewFleet(time.Now, "ledger-1", "ledger-2")
	quiet := func(*pb.Operation) string { return "" }
	restarted := func(*pb.Operation) string { return "ledger-1: agent restarted during the hold" }
	final := rtFailover(t, f, rtOp(20, 15_000, "ledger-1", "ledger-2"), quiet, restarted, cutAtUnpausing)
	if final.GetState() != pb.OperationState_OPERATION_STATE_INVALID || !strings.Contains(final.GetReason(), "ledger-1") {
		t.Fatalf("op ended %s (%s), want INVALID naming ledger-1", final.GetState(), final.GetReason())
	}
}
