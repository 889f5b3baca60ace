package coordinator

import (
	"context"
	"testing"
	"time"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// A write that fails while the runner still leads (an apply timeout, a
// lost quorum that heals) is retried: the op does not stop at PAUSING with
// its nodes left to their leases.
func TestRunnerRetriesFailedPersistWhileLeading(t *testing.T) {
	for _, tc := range []struct {
		name   string
		state  pb.OperationState
		stored bool // the failed write was committed after all
	}{
		{"holding write lost", pb.OperationState_OPERATION_STATE_HOLDING, false},
		{"unpausing write lost", pb.OperationState_OPERATION_STATE_UNPAUSING, false},
		{"final write committed but unconfirmed", pb.OperationState_OPERATION_STATE_COMPLETED, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := rtNewFleet(time.Now, "ledger-1", "ledger-2")
			l := &rtLog{epoch: 1}
			failures := 2
			l.hook = func(op *pb.Operation) (bool, error) {
				if op.GetState() == tc.state && failures > 0 {
					failures--
					return tc.stored, ErrApplyTimeout
				}
				return true, nil
			}
			r := rtRunner(t, l, f, 1, nil)
			final, err := r.run(context.Background(), rtOp(20, 15_000, "ledger-1", "ledger-2"))
			if err != nil {
				t.Fatalf("runner stopped: %v", err)
			}
			if final.GetState() != pb.OperationState_OPERATION_STATE_COMPLETED || l.latest().GetState() != pb.OperationState_OPERATION_STATE_COMPLETED {
				t.Fatalf("op ended %s (recorded %s): %s", final.GetState(), l.latest().GetState(), final.GetReason())
			}
			rtNonePaused(t, f)
		})
	}
}
