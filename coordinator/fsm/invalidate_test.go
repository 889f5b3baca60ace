package fsm

import (
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

func TestInvalidateRestorePoint(t *testing.T) {
	a := newApplier(t)
	done := newOp("op-1", "ledger", 0)
	a.mustApply(&pb.CreateOperationCommand{Operation: done})
	a.mustApply(&pb.UpdateOperationCommand{Operation: completed(done)})
	a.mustApply(&pb.CreateOperationCommand{Operation: newOp("op-2", "auditor", 0)})
	inv := func(op, node string) *pb.InvalidateRestorePointCommand {
		return &pb.InvalidateRestorePointCommand{OpId: op, Node: node, Reason: node + " restarted during " + op, At: stamp(time.Minute), RecordedBy: "s1"}
	}
	before := a.f.Dump()
	for name, tc := range map[string]struct {
		cmd  *pb.InvalidateRestorePointCommand
		want error
	}{
		"unknown op":      {inv("op-9", "ledger-1"), ErrOperationNotFound},
		"op not complete": {inv("op-2", "ledger-1"), ErrInvalidCommand},
		"not a target":    {inv("op-1", "ledger-7"), ErrInvalidCommand},
		"no reason":       {&pb.InvalidateRestorePointCommand{OpId: "op-1", Node: "ledger-1"}, ErrInvalidCommand},
	} {
		if r := a.apply(tc.cmd); !errors.Is(r.Err, tc.want) {
			t.Errorf("%s: err = %v, want %v", name, r.Err, tc.want)
		}
	}
	if d := diffProto(before, a.f.Dump()); d != "" {
		t.Fatalf("rejected invalidations changed the state:\n%s", d)
	}

	r := a.mustApply(inv("op-1", "ledger-2"))
	rp := r.Value.(*pb.RestorePoint)
	if !rp.GetInvalid() || rp.GetInvalidReason() != "ledger-2 restarted during op-1" || rp.GetInvalidatedAt() == nil ||
		!strings.Contains(rp.GetInvalidatedBy(), "agent ledger-2") || !strings.Contains(rp.GetInvalidatedBy(), "s1") || rp.GetWindow().GetRestorePoint() == nil {
		t.Fatalf("flagged entry = %v", rp)
	}
	op, _ := a.f.Operation("op-1")
	if op.GetState() != pb.OperationState_OPERATION_STATE_COMPLETED || !op.GetInvalidatedAfterCompletion() || op.GetInvalidatedReason() != rp.GetInvalidReason() {
		t.Fatalf("op = %v", op)
	}
	if !op.GetTargets()[1].GetInterruptedReportedLate() || !op.GetTargets()[1].GetNodeInterrupted() || op.GetTargets()[0].GetInterruptedReportedLate() {
		t.Fatalf("targets = %v", op.GetTargets())
	}
	al, ok := a.f.Alarm(InvalidatedAlarmID("op-1", "ledger-2"))
	if !ok || !al.GetActive() || al.GetNode() != "ledger-2" || al.GetKind() != AlarmRestorePointInvalidated || !strings.Contains(al.GetMessage(), "op-1") {
		t.Fatalf("alarm = %v", al)
	}
	if rec := a.f.Audit(1); rec[0].GetAction() != AuditRestorePointInvalidated || rec[0].GetOpId() != "op-1" {
		t.Fatalf("audit = %v", rec)
	}

	// The same report again changes nothing.
	after := a.f.Dump()
	a.mustApply(inv("op-1", "ledger-2"))
	if d := diffProto(after, a.f.Dump()); d != "" {
		t.Fatalf("a repeated report changed the state:\n%s", d)
	}
	// A second node's report adds to the record; the first time stays.
	a.mustApply(&pb.InvalidateRestorePointCommand{OpId: "op-1", Node: "ledger-1", Reason: "ledger-1 too", At: stamp(2 * time.Minute), RecordedBy: "s2"})
	got, _ := a.f.RestorePoint("op-1")
	if got.GetInvalidReason() != "ledger-2 restarted during op-1; ledger-1 too" || !proto.Equal(got.GetInvalidatedAt(), stamp(time.Minute)) {
		t.Fatalf("after a second report: %v", got)
	}
	if rps := a.f.RestorePoints("", 0); len(rps) != 1 {
		t.Fatalf("catalog = %v; nothing is deleted", rps)
	}
}
