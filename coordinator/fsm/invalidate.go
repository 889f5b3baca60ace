package fsm

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// Audit action and alarm kind of a restore point invalidated after the
// fact.
const (
	AuditRestorePointInvalidated = "restore-point-invalidated"
	AlarmRestorePointInvalidated = "restore_point_invalidated"
)

// InvalidatedAlarmID is the id of the alarm raised when node's agent
// reported after the fact that its node came back unpaused during opID.
func InvalidatedAlarmID(opID, node string) string {
	return "restore-point-invalid/" + opID + "/" + node
}

// applyInvalidateRestorePoint flags a COMPLETED operation's record and
// catalog entry as unsound and raises an alarm, in one entry. Nothing is
// deleted and the state stays COMPLETED: history is kept, flagged. A
// second report for the same (op, node) changes nothing.
func (f *FSM) applyInvalidateRestorePoint(index uint64, cmd *pb.InvalidateRestorePointCommand) (proto.Message, error) {
	opID, node := cmd.GetOpId(), cmd.GetNode()
	if opID == "" || node == "" || cmd.GetReason() == "" {
		return nil, fmt.Errorf("%w: invalidate restore point needs op_id, node and reason (got %q, %q, %q)", ErrInvalidCommand, opID, node, cmd.GetReason())
	}
	op, ok := f.st.ops[opID]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrOperationNotFound, opID)
	}
	if op.GetState() != pb.OperationState_OPERATION_STATE_COMPLETED {
		return nil, fmt.Errorf("%w: operation %s is %s; only a completed operation's restore point can be invalidated after the fact", ErrInvalidCommand, opID, shortState(op.GetState()))
	}
	rp, ok := f.st.restorePoints[opID]
	if !ok {
		return nil, fmt.Errorf("%w: completed operation %s has no catalog entry", ErrInvalidCommand, opID)
	}
	var target *pb.TargetRecord
	for _, t := range op.GetTargets() {
		if t.GetNode() == node {
			target = t
		}
	}
	if target == nil {
		return nil, fmt.Errorf("%w: %s was not a target of operation %s", ErrInvalidCommand, node, opID)
	}
	if target.GetInterruptedReportedLate() {
		return clone(rp), nil
	}
	target.InterruptedReportedLate = true
	target.NodeInterrupted = true
	op.InvalidatedAfterCompletion = true
	op.InvalidatedReason = joinReason(op.GetInvalidatedReason(), cmd.GetReason())
	if op.GetInvalidatedAt() == nil {
		op.InvalidatedAt = clone(cmd.GetAt())
	}
	rp.Invalid = true
	rp.InvalidReason = joinReason(rp.GetInvalidReason(), cmd.GetReason())
	if rp.GetInvalidatedAt() == nil {
		rp.InvalidatedAt = clone(cmd.GetAt())
	}
	by := fmt.Sprintf("agent %s (recorded by %s)", node, cmd.GetRecordedBy())
	rp.InvalidatedBy = joinReason(rp.GetInvalidatedBy(), by)

	id := InvalidatedAlarmID(opID, node)
	if _, ok := f.st.alarms[id]; !ok {
		f.st.alarmOrder = append(f.st.alarmOrder, id)
	}
	f.st.alarms[id] = &pb.Alarm{
		Id: id, Node: node, Kind: AlarmRestorePointInvalidated, Active: true, RaisedAt: clone(cmd.GetAt()), UpdatedAt: clone(cmd.GetAt()),
		Severity: "critical", Cluster: op.GetCluster(),
		Message: fmt.Sprintf("restore point of %s (cluster %s) is invalid: %s", opID, op.GetCluster(), cmd.GetReason()),
	}
	f.audit(index, AuditRestorePointInvalidated, by, opID, cmd.GetReason(), cmd.GetAt())
	return clone(rp), nil
}

func joinReason(prev, add string) string {
	if prev == "" {
		return add
	}
	return prev + "; " + add
}
