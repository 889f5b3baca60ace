package fsm

import (
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/stillpoint-dev/stillpoint/internal/enumname"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// Audit actions recorded automatically.
const (
	AuditPause        = "pause"
	AuditUnpause      = "unpause"
	AuditForceUnpause = "force-unpause"
	AuditConfigChange = "config-change"
)

func (f *FSM) applyCreateOperation(index uint64, cmd *pb.CreateOperationCommand) (proto.Message, error) {
	op := cmd.GetOperation()
	switch {
	case op.GetOpId() == "":
		return nil, fmt.Errorf("%w: create operation without op_id", ErrInvalidCommand)
	case checkClusters(op) != nil:
		return nil, fmt.Errorf("create: %w", checkClusters(op))
	case IsTerminal(op.GetState()):
		return nil, fmt.Errorf("%w: create operation %s in terminal state %s", ErrInvalidCommand, op.GetOpId(), op.GetState())
	}
	// A retried StartPause whose first attempt was committed: the op it
	// started, unchanged.
	if prev := f.byRequestLocked(op.GetRequestId()); prev != nil {
		if !slices.Equal(Clusters(prev), Clusters(op)) {
			return nil, fmt.Errorf("%w: request id %q already started operation %s on cluster %s, not %s", ErrInvalidCommand, op.GetRequestId(), prev.GetOpId(), ClusterNames(prev), ClusterNames(op))
		}
		return clone(prev), nil
	}
	if op.GetEpoch() != f.st.epoch {
		return nil, fmt.Errorf("%w: operation %s carries epoch %d, current epoch is %d", ErrStaleEpoch, op.GetOpId(), op.GetEpoch(), f.st.epoch)
	}
	if _, ok := f.st.ops[op.GetOpId()]; ok {
		return nil, fmt.Errorf("%w: %s", ErrOperationExists, op.GetOpId())
	}
	// Every cluster's lock, or none: one held cluster refuses the op.
	var held []string
	for _, c := range Clusters(op) {
		if holder, ok := f.st.locks[c]; ok {
			held = append(held, fmt.Sprintf("cluster %q is held by operation %s", c, holder))
		}
	}
	if len(held) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrClusterLocked, strings.Join(held, "; "))
	}
	stored := clone(op)
	f.st.ops[op.GetOpId()] = stored
	f.st.opsOrder = append(f.st.opsOrder, op.GetOpId())
	for _, c := range Clusters(op) {
		f.st.locks[c] = op.GetOpId()
	}
	targets := make([]string, 0, len(op.GetTargets()))
	for _, t := range op.GetTargets() {
		targets = append(targets, t.GetNode())
	}
	f.audit(index, AuditPause, cmd.GetActor(), op.GetOpId(),
		fmt.Sprintf("cluster %s, targets [%s], requested hold %dms, epoch %d", ClusterNames(op), strings.Join(targets, ", "), op.GetRequestedHoldMs(), op.GetEpoch()),
		op.GetCreatedAt())
	f.attachCaller(cmd.GetCaller())
	return clone(stored), nil
}

func (f *FSM) applyUpdateOperation(index uint64, cmd *pb.UpdateOperationCommand) (proto.Message, error) {
	op := cmd.GetOperation()
	if op.GetOpId() == "" {
		return nil, fmt.Errorf("%w: update operation without op_id", ErrInvalidCommand)
	}
	cur, ok := f.st.ops[op.GetOpId()]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrOperationNotFound, op.GetOpId())
	}
	if IsTerminal(cur.GetState()) {
		return f.applyBackupAfterUpdate(cur, op)
	}
	if !slices.Equal(Clusters(op), Clusters(cur)) {
		return nil, fmt.Errorf("%w: operation %s belongs to cluster %s, update names %s", ErrInvalidCommand, op.GetOpId(), ClusterNames(cur), ClusterNames(op))
	}
	if op.GetEpoch() != f.st.epoch {
		return nil, fmt.Errorf("%w: update of operation %s carries epoch %d, current epoch is %d", ErrStaleEpoch, op.GetOpId(), op.GetEpoch(), f.st.epoch)
	}
	completed := op.GetState() == pb.OperationState_OPERATION_STATE_COMPLETED
	if completed && op.GetWindow().GetRestorePoint() == nil {
		return nil, fmt.Errorf("%w: operation %s is COMPLETED without a restore window", ErrInvalidCommand, op.GetOpId())
	}
	stored := clone(op)
	f.st.ops[op.GetOpId()] = stored

	ended := IsTerminal(op.GetState())
	if ended {
		for _, c := range Clusters(op) {
			if f.st.locks[c] == op.GetOpId() {
				delete(f.st.locks, c)
			}
		}
		if completed {
			f.catalogLocked(stored)
		}
	}
	at := cmd.GetAt()
	if at == nil {
		at = op.GetEndedAt()
	}
	switch {
	case cmd.GetForceUnpause():
		f.audit(index, AuditForceUnpause, cmd.GetActor(), op.GetOpId(),
			fmt.Sprintf("cluster %s, state %s: %s", ClusterNames(op), shortState(op.GetState()), op.GetReason()), at)
		f.attachCaller(cmd.GetCaller())
	case ended:
		detail := fmt.Sprintf("cluster %s ended %s", ClusterNames(op), shortState(op.GetState()))
		if op.GetReason() != "" {
			detail += ": " + op.GetReason()
		}
		if completed {
			detail += fmt.Sprintf(", restore point %s ±%dns", op.GetWindow().GetRestorePoint().AsTime().UTC().Format("2006-01-02T15:04:05.000000000Z07:00"), op.GetWindow().GetUncertaintyNs())
		}
		f.audit(index, AuditUnpause, cmd.GetActor(), op.GetOpId(), detail, at)
	}
	return clone(stored), nil
}

// catalogLocked records the restore point of a completed operation.
func (f *FSM) catalogLocked(op *pb.Operation) {
	targets := make([]string, 0, len(op.GetTargets()))
	for _, t := range op.GetTargets() {
		targets = append(targets, t.GetNode())
	}
	rp := &pb.RestorePoint{
		OpId:      op.GetOpId(),
		Cluster:   op.GetCluster(),
		Window:    clone(op.GetWindow()),
		HoldNs:    op.GetHoldNs(),
		Targets:   targets,
		CreatedAt: clone(op.GetEndedAt()),
		Backup:    clone(op.GetBackup()),
		Partial:   op.GetBackup().GetPartial(),
	}
	if _, ok := f.st.restorePoints[op.GetOpId()]; !ok {
		f.st.rpOrder = append(f.st.rpOrder, op.GetOpId())
	}
	f.st.restorePoints[op.GetOpId()] = rp
}

func shortState(s pb.OperationState) string {
	return strings.ToUpper(enumname.Of(s))
}
