package devcluster

import (
	"strings"
	"testing"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

func TestLoadRefusal(t *testing.T) {
	timedOut := "pause refused for cluster ledger: ledger-2: agent at 127.0.0.1:1 did not answer Status: context deadline exceeded"
	for _, tt := range []struct {
		reason, msg string
		want        bool
	}{
		{"PAUSE_REFUSED_CLOCK", "", true}, {"PAUSE_REFUSED_DRIFT", "", true}, {"NOT_APPLIED", "", true},
		{"PAUSE_REFUSED_AGENT", timedOut, true},
		{"PAUSE_REFUSED_AGENT", "pause refused for cluster ledger: ledger-2: agent holds op op-1", false},
		{"CLUSTER_LOCKED", timedOut, false}, {"INVALID_PLAN", "", false}, {"", "", false}, {"ERROR_REASON_PAUSE_REFUSED_CLOCK", "", false},
	} {
		if got := LoadRefusal(tt.reason, tt.msg); got != tt.want {
			t.Errorf("LoadRefusal(%q, %q) = %v, want %v", tt.reason, tt.msg, got, tt.want)
		}
	}
}

func TestLeaseEnd(t *testing.T) {
	expired := []*pb.TargetRecord{{Node: "l1"}, {Node: "l2", LeaseExpired: true}}
	tests := []struct {
		name string
		op   *pb.Operation
		want string // "" or a substring
	}{
		{"aborted, an agent's lease ran out", &pb.Operation{OpId: "op-1", State: pb.OperationState_OPERATION_STATE_ABORTED, Targets: expired}, "lease_expired: l2"},
		{"invalid, left to the lease", &pb.Operation{OpId: "op-2", State: pb.OperationState_OPERATION_STATE_INVALID, LeaseReleased: []string{"l1"}}, "lease_released: l1"},
		{"aborted for another reason", &pb.Operation{OpId: "op-3", State: pb.OperationState_OPERATION_STATE_ABORTED, Targets: []*pb.TargetRecord{{Node: "l1"}}, Reason: "not every target paused"}, ""},
		{"completed, a lease ran out", &pb.Operation{OpId: "op-4", State: pb.OperationState_OPERATION_STATE_COMPLETED, Targets: expired}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := LeaseEnd(tt.op)
			if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
				t.Fatalf("LeaseEnd = %q, want %q", got, tt.want)
			}
		})
	}
}
