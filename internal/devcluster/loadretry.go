package devcluster

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/stillpoint-dev/stillpoint/internal/grpcx"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// What a loaded machine legitimately does to a pause on a dev cluster, for
// tests that drive one through a client and may run it again: anything
// else is a failure to report at once, never a retry.

// LoadRefusal reports whether a StartPause refused with ErrorInfo reason
// (its short name, e.g. "PAUSE_REFUSED_CLOCK") and message msg is one a
// loaded box causes: a clock out of bounds or drifting (admission),
// nothing done during a leader change (NOT_APPLIED), or PAUSE_REFUSED_AGENT
// when an agent's admission check timed out (the message names "did not
// answer Status" with a deadline exceeded; an agent that answered and
// refused is not load). CLUSTER_LOCKED, INVALID_PLAN and the rest are not.
func LoadRefusal(reason, msg string) bool {
	switch reason {
	case pb.ErrorReason_ERROR_REASON_PAUSE_REFUSED_CLOCK.Reason(),
		pb.ErrorReason_ERROR_REASON_PAUSE_REFUSED_DRIFT.Reason(),
		pb.ErrorReason_ERROR_REASON_NOT_APPLIED.Reason():
		return true
	case pb.ErrorReason_ERROR_REASON_PAUSE_REFUSED_AGENT.Reason():
		return strings.Contains(msg, "did not answer Status: context deadline exceeded")
	}
	return false
}

// WaitPausesAccepted waits until the leader takes pauses (a new leader
// answers NOT_APPLIED until its pause duty runs): a StartPause of a cluster
// that cannot exist is then refused UNKNOWN_CLUSTER. Nothing is paused.
func (c *Cluster) WaitPausesAccepted(ctx context.Context) error {
	ctx, cancel := withDefaultTimeout(ctx, 60*time.Second)
	defer cancel()
	return poll(ctx, "the leader to take pauses", func() (bool, string) {
		l := c.Leader()
		if l < 0 {
			return false, "no leader"
		}
		cl, err := c.Client(l)
		if err != nil {
			return false, err.Error()
		}
		_, err = cl.StartPause(ctx, &pb.StartPauseRequest{Cluster: "devcluster-probe-no-such-cluster", RequestedBy: "devcluster: wait for the leader to take pauses"})
		if pb.ParseErrorReason(grpcx.ReasonOf(err, pb.ErrorDomain)) == pb.ErrorReason_ERROR_REASON_UNKNOWN_CLUSTER {
			return true, ""
		}
		return false, fmt.Sprintf("StartPause of an unknown cluster: %v", err)
	})
}

// LeaseEnd says why op ended ABORTED or INVALID because an agent's lease
// ran out (a slow leader on a loaded box): targets released by their own
// lease, or whose agent reported lease_expired. "" when op did not end so,
// or ended for any other reason.
func LeaseEnd(op *pb.Operation) string {
	switch op.GetState() {
	case pb.OperationState_OPERATION_STATE_ABORTED, pb.OperationState_OPERATION_STATE_INVALID:
	default:
		return ""
	}
	var expired []string
	for _, t := range op.GetTargets() {
		if t.GetLeaseExpired() {
			expired = append(expired, t.GetNode())
		}
	}
	if len(expired) == 0 && len(op.GetLeaseReleased()) == 0 {
		return ""
	}
	return fmt.Sprintf("op %s ended %s with leases run out (lease_expired: %s; lease_released: %s)", op.GetOpId(), op.GetState(),
		strings.Join(expired, ","), strings.Join(op.GetLeaseReleased(), ","))
}
