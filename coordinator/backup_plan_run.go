package coordinator

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/stillpoint-dev/stillpoint/coordinator/fsm"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// newBackupRun is the backup part of an op started from plan: a copy of
// the plan and every step PENDING, "<group>/<index>" for a group's hooks
// and "after/<index>" for the after hooks, in the plan's order.
func newBackupRun(plan *pb.BackupPlan) *pb.BackupRun {
	run := &pb.BackupRun{Plan: proto.Clone(plan).(*pb.BackupPlan)}
	add := func(group string, i int, ref *pb.HookRef) {
		run.Hooks = append(run.Hooks, &pb.HookRun{
			StepId: fmt.Sprintf("%s/%d", group, i), Group: group,
			Ref: proto.Clone(ref).(*pb.HookRef), State: pb.HookState_HOOK_STATE_PENDING,
		})
	}
	for _, g := range plan.GetGroups() {
		for i, h := range g.GetHooks() {
			add(g.GetName(), i, h)
		}
	}
	for i, h := range plan.GetAfter() {
		add(fsm.AfterGroup, i, h)
	}
	return run
}
