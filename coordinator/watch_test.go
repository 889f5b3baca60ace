package coordinator

import (
	"testing"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

func TestMayBeLeftPaused(t *testing.T) {
	acked := &pb.StampedTime{}
	tests := []struct {
		name string
		t    *pb.TargetRecord
		want bool
	}{
		{"acked, unpause unreachable", &pb.TargetRecord{AckedAt: acked, PauseOutcome: pb.NodeOutcome_NODE_OUTCOME_PAUSED, UnpauseOutcome: pb.NodeOutcome_NODE_OUTCOME_UNREACHABLE}, true},
		{"acked, no unpause answer yet", &pb.TargetRecord{AckedAt: acked, PauseOutcome: pb.NodeOutcome_NODE_OUTCOME_PAUSED}, true},
		{"pause answer lost", &pb.TargetRecord{PauseOutcome: pb.NodeOutcome_NODE_OUTCOME_UNREACHABLE}, true},
		{"unpaused", &pb.TargetRecord{AckedAt: acked, PauseOutcome: pb.NodeOutcome_NODE_OUTCOME_PAUSED, UnpauseOutcome: pb.NodeOutcome_NODE_OUTCOME_UNPAUSED}, false},
		{"released by its lease", &pb.TargetRecord{AckedAt: acked, PauseOutcome: pb.NodeOutcome_NODE_OUTCOME_PAUSED, LeaseExpired: true}, false},
		{"drain timed out (gate reopened)", &pb.TargetRecord{PauseOutcome: pb.NodeOutcome_NODE_OUTCOME_DRAIN_TIMED_OUT}, false},
		{"never sent", &pb.TargetRecord{}, false},
	}
	for _, tc := range tests {
		if got := mayBeLeftPaused(tc.t); got != tc.want {
			t.Errorf("%s: mayBeLeftPaused = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestLatestTargets(t *testing.T) {
	newer := &pb.Operation{OpId: "op-2", Targets: []*pb.TargetRecord{{Node: "l1"}}}
	older := &pb.Operation{OpId: "op-1", Targets: []*pb.TargetRecord{{Node: "l1"}, {Node: "l2"}}}
	got := latestTargets([]*pb.Operation{newer, older})
	if len(got) != 2 || got["l1"].op.GetOpId() != "op-2" || got["l2"].op.GetOpId() != "op-1" {
		t.Fatalf("latest = %v", got)
	}
}
