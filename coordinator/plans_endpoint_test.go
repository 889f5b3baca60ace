package coordinator

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

func TestPlanInUse(t *testing.T) {
	active := []*pb.Operation{
		{OpId: "op-1", State: pb.OperationState_OPERATION_STATE_HOLDING},
		{OpId: "op-2", State: pb.OperationState_OPERATION_STATE_HOLDING, Backup: &pb.BackupRun{Plan: &pb.BackupPlan{Name: "weekly"}}},
		{OpId: "op-3", State: pb.OperationState_OPERATION_STATE_PAUSING, Backup: &pb.BackupRun{Plan: &pb.BackupPlan{Name: "nightly"}}},
	}
	err := planInUse(active, "nightly")
	if status.Code(err) != codes.FailedPrecondition || ReasonOf(err) != ReasonPlanInUse ||
		!strings.Contains(status.Convert(err).Message(), "backup plan nightly is running in op op-3 (pausing)") {
		t.Fatalf("planInUse = %v", err)
	}
	if err := planInUse(active, "hourly"); err != nil {
		t.Fatalf("a plan with no running op: %v", err)
	}
}
