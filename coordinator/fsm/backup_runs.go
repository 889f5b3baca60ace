package fsm

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// AfterGroup is the HookRun.group of a plan's `after` hooks, which run
// once the op has COMPLETED and its restore point is known.
const AfterGroup = "after"

// applyBackupAfterUpdate records the `after` hooks' runs of a backup op
// that already ended COMPLETED: the only change a terminal op accepts. The
// update must equal the stored op but for backup, whose during-hook runs
// must be unchanged (those are history the window was certified with);
// only `after` runs and the partial flag may change. The catalog entry
// gets the same backup and partial flag.
func (f *FSM) applyBackupAfterUpdate(cur, op *pb.Operation) (proto.Message, error) {
	if cur.GetState() != pb.OperationState_OPERATION_STATE_COMPLETED || cur.GetBackup() == nil {
		return nil, fmt.Errorf("%w: %s is %s", ErrOperationEnded, op.GetOpId(), cur.GetState())
	}
	if op.GetEpoch() != f.st.epoch {
		return nil, fmt.Errorf("%w: update of operation %s carries epoch %d, current epoch is %d", ErrStaleEpoch, op.GetOpId(), op.GetEpoch(), f.st.epoch)
	}
	a, b := clone(cur), clone(op)
	a.Backup, b.Backup, a.Epoch = nil, nil, b.GetEpoch()
	if !proto.Equal(a, b) {
		return nil, fmt.Errorf("%w: %s is COMPLETED; only its backup's after-hook runs may still change", ErrOperationEnded, op.GetOpId())
	}
	if err := onlyAfterRunsChanged(cur.GetBackup(), op.GetBackup()); err != nil {
		return nil, fmt.Errorf("%w: operation %s: %v", ErrInvalidCommand, op.GetOpId(), err)
	}
	stored := clone(cur)
	stored.Backup = clone(op.GetBackup())
	f.st.ops[op.GetOpId()] = stored
	if rp, ok := f.st.restorePoints[op.GetOpId()]; ok {
		rp.Backup = clone(stored.GetBackup())
		rp.Partial = stored.GetBackup().GetPartial()
	}
	return clone(stored), nil
}

// onlyAfterRunsChanged checks that next differs from cur only in its
// `after` runs and partial flag (set, never cleared).
func onlyAfterRunsChanged(cur, next *pb.BackupRun) error {
	if next == nil {
		return fmt.Errorf("backup removed from a completed op")
	}
	if cur.GetPartial() && !next.GetPartial() {
		return fmt.Errorf("partial cleared on a completed backup")
	}
	if !proto.Equal(cur.GetPlan(), next.GetPlan()) || !proto.Equal(cur.GetScheduledFor(), next.GetScheduledFor()) {
		return fmt.Errorf("plan changed on a completed backup")
	}
	if len(cur.GetHooks()) != len(next.GetHooks()) {
		return fmt.Errorf("%d hook runs, the completed backup has %d", len(next.GetHooks()), len(cur.GetHooks()))
	}
	for i, h := range cur.GetHooks() {
		n := next.GetHooks()[i]
		if h.GetStepId() != n.GetStepId() || h.GetGroup() != n.GetGroup() {
			return fmt.Errorf("hook run %d is step %s, the completed backup has %s", i, n.GetStepId(), h.GetStepId())
		}
		if h.GetGroup() != AfterGroup && !proto.Equal(h, n) {
			return fmt.Errorf("step %s ran while the nodes were held; its run cannot change after the op completed", h.GetStepId())
		}
	}
	return nil
}
