package coordinator_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stillpoint-dev/stillpoint/coordinator/fsm"
	"github.com/stillpoint-dev/stillpoint/internal/devcluster"
	"github.com/stillpoint-dev/stillpoint/internal/testcluster"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// pauseGoal is how far startPause follows an op before returning it.
type pauseGoal int

const (
	admitted  pauseGoal = iota // StartPause answered with the op
	holding                    // the op is HOLDING
	completed                  // the op ended COMPLETED
)

func (g pauseGoal) String() string {
	return [...]string{"admitted", "holding", "completed"}[g]
}

// pauseAttempts bounds the retries of startPause's load hiccups.
const pauseAttempts = 5

// startPause starts the pause req through cl and follows it to goal. The
// dev-cluster tests that use it are about what happens once a pause is
// admitted, holding or completed, so it retries the hiccups of a loaded
// 2-core box that are not their subject (at most pauseAttempts times):
//   - UNAVAILABLE or UNKNOWN (a leader still taking over its term, or one
//     lost while committing): with the same request id, so a retry returns
//     the op a first attempt may have started;
//   - FAILED_PRECONDITION (this box's clock readings wobble by tens of ms
//     under load, and a spread over max_drift refuses): once every agent is
//     admissible again, with the same request id (a refusal starts nothing);
//   - an op that ended before goal (a node slow to drain, a lease run out on
//     a starved box, a leadership change "taken over while pausing"): once
//     every agent is admissible again, with a new request id.
//
// Tests about refusals, aborts or leader changes while pausing call
// StartPause themselves.
func startPause(t *testing.T, c *devcluster.Cluster, cl pb.CoordinatorServiceClient, req *pb.StartPauseRequest, goal pauseGoal) *pb.Operation {
	t.Helper()
	if req.GetRequestedBy() == "" {
		req.RequestedBy = "test"
	}
	id := req.GetRequestId() // a caller's own id is kept while nothing is started with it
	if id == "" {
		id = fmt.Sprintf("test-%d", time.Now().UnixNano())
	}
	for attempt := 1; ; attempt++ {
		req.RequestId = id
		op, err := admitPause(t, cl, req)
		if err != nil { // refused: nothing started, the id is free
			if attempt >= pauseAttempts {
				t.Fatalf("pause refused %d times, the last: %v", attempt, err)
			}
			t.Logf("pause refused (%v); again once every agent is admissible", err)
			waitAdmissible(t, c)
			continue
		}
		switch goal {
		case holding:
			op = waitHoldingOrEnd(t, c, op.GetOpId())
		case completed:
			op = watchEnd(t, c, op.GetOpId(), 30*time.Second)
		}
		if reached(op, goal) {
			return op
		}
		if attempt >= pauseAttempts {
			t.Fatalf("%d pauses did not reach %s, the last ended %s: %s", attempt, goal, op.GetState(), op.GetReason())
		}
		t.Logf("pause %s ended %s before %s (%s); again", op.GetOpId(), op.GetState(), goal, op.GetReason())
		id = fmt.Sprintf("%s-%d", id, attempt) // the id now names the ended op
		waitAdmissible(t, c)
	}
}

func reached(op *pb.Operation, goal pauseGoal) bool {
	switch goal {
	case holding:
		return op.GetState() == pb.OperationState_OPERATION_STATE_HOLDING
	case completed:
		return op.GetState() == pb.OperationState_OPERATION_STATE_COMPLETED
	}
	return true
}

// admitPause sends req until it is answered, retrying (same request id)
// while the outcome is unknown or nothing was applied; it returns a
// FAILED_PRECONDITION refusal and fails the test on any other error.
func admitPause(t *testing.T, cl pb.CoordinatorServiceClient, req *pb.StartPauseRequest) (*pb.Operation, error) {
	t.Helper()
	var op *pb.Operation
	var refused error
	testcluster.WaitFor(t, 30*time.Second, func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		resp, err := cl.StartPause(ctx, req)
		switch code := status.Code(err); {
		case err == nil:
			op = resp.GetOperation()
		case code == codes.FailedPrecondition:
			refused = err
		case code == codes.Unavailable, code == codes.Unknown:
			return false, err.Error()
		default:
			t.Fatalf("StartPause: %v", err)
		}
		return true, ""
	})
	return op, refused
}

// waitHoldingOrEnd waits until the op is HOLDING or ended, on the leader's
// replica, and returns it.
func waitHoldingOrEnd(t *testing.T, c *devcluster.Cluster, opID string) *pb.Operation {
	t.Helper()
	return waitOp(t, c, opID, func(op *pb.Operation) bool {
		s := op.GetState()
		return s == pb.OperationState_OPERATION_STATE_HOLDING || fsm.IsTerminal(s)
	})
}

// waitOp waits until the leader's replica of the op satisfies done, and
// returns that record. Every read is bounded; a wait that runs out names
// the op's last state, reason, epoch and leader.
func waitOp(t *testing.T, c *devcluster.Cluster, opID string, done func(*pb.Operation) bool) *pb.Operation {
	t.Helper()
	var last *pb.Operation
	testcluster.WaitFor(t, 20*time.Second, func() (bool, string) {
		cl, err := c.Client(c.Leader())
		if err != nil {
			return false, err.Error()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r, err := cl.GetOperation(ctx, &pb.GetOperationRequest{OpId: opID, Stale: true})
		if err != nil {
			return false, err.Error()
		}
		last = r.GetOperation()
		return done(last), fmt.Sprintf("%s (%s; epoch %d, leader %s)", last.GetState(), last.GetReason(), last.GetEpoch(), last.GetLeader())
	})
	return last
}
