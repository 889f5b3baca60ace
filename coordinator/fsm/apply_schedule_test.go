package fsm

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

func fire(plan string, instant time.Duration, opID, reason string) *pb.RecordScheduleFireCommand {
	return &pb.RecordScheduleFireCommand{Plan: plan, Instant: timestamppb.New(t0.Add(instant)), OpId: opID, Reason: reason, At: stamp(instant)}
}

// rejects applies cmd, wants err, and checks the state did not change.
func (a *applier) rejects(cmd *pb.RecordScheduleFireCommand, want error) {
	a.t.Helper()
	before := a.f.Dump()
	r := a.apply(cmd)
	if !errors.Is(r.Err, want) {
		a.t.Fatalf("apply %v: err %v, want %v", cmd, r.Err, want)
	}
	if diff := diffProto(before, a.f.Dump()); diff != "" {
		a.t.Fatalf("rejected fire changed the state:\n%s", diff)
	}
}

func planState(t *testing.T, a *applier, name string) (time.Time, string, string) {
	t.Helper()
	rec, ok := a.f.Plan(name)
	if !ok {
		t.Fatalf("plan %s missing", name)
	}
	var last time.Time
	if rec.GetLastFired() != nil {
		last = rec.GetLastFired().AsTime()
	}
	return last, rec.GetLastFiredOpId(), rec.GetLastFiredReason()
}

// A plan's schedule state only moves forward: a fire is recorded pending,
// then completed once with its op id (or a reason); an instant not after
// last_fired is refused, and so is an unknown plan, each changing nothing.
func TestRecordScheduleFire(t *testing.T) {
	a := newApplier(t)
	a.rejects(fire("nightly", 0, "", ""), ErrPlanNotFound)
	a.mustApply(&pb.SetBackupPlanCommand{Plan: testPlan("nightly"), Actor: "alice"})
	a.rejects(&pb.RecordScheduleFireCommand{Plan: "nightly"}, ErrInvalidCommand)
	a.rejects(fire("nightly", time.Hour, "op-1", "why"), ErrInvalidCommand)

	// Fire pending, then its op.
	a.mustApply(fire("nightly", time.Hour, "", ""))
	if last, op, why := planState(t, a, "nightly"); !last.Equal(t0.Add(time.Hour)) || op != "" || why != "" {
		t.Fatalf("pending fire: last %v op %q reason %q", last, op, why)
	}
	a.rejects(fire("nightly", time.Hour, "", ""), ErrAlreadyFired)
	a.rejects(fire("nightly", time.Minute, "", ""), ErrAlreadyFired)
	a.mustApply(fire("nightly", time.Hour, "op-1", ""))
	if _, op, _ := planState(t, a, "nightly"); op != "op-1" {
		t.Fatalf("completed fire: op %q", op)
	}
	// The same outcome again (a retried apply) is a no-op; another is
	// refused.
	n := len(a.f.Audit(0))
	a.mustApply(fire("nightly", time.Hour, "op-1", ""))
	if len(a.f.Audit(0)) != n {
		t.Fatal("repeated completion audited again")
	}
	a.rejects(fire("nightly", time.Hour, "op-2", ""), ErrAlreadyFired)
	a.rejects(fire("nightly", time.Hour, "", "locked"), ErrAlreadyFired)
	a.rejects(fire("nightly", time.Hour, "", ""), ErrAlreadyFired)

	// A later instant while the cluster was locked, after missed ones.
	cmd := fire("nightly", 4*time.Hour, "", "cluster ledger is held by operation op-9")
	cmd.MissedCount, cmd.FirstMissed = 2, timestamppb.New(t0.Add(2*time.Hour))
	a.mustApply(cmd)
	if last, op, why := planState(t, a, "nightly"); !last.Equal(t0.Add(4*time.Hour)) || op != "" || !strings.Contains(why, "op-9") {
		t.Fatalf("locked fire: last %v op %q reason %q", last, op, why)
	}
	a.rejects(fire("nightly", 4*time.Hour, "op-3", ""), ErrAlreadyFired)
	audit := a.f.Audit(0)
	if r := audit[0]; r.GetAction() != AuditScheduleFire ||
		r.GetDetail() != "plan nightly fired 2025-03-01T16:00:00.000000000Z: no op: cluster ledger is held by operation op-9; 2 earlier instants missed from 2025-03-01T14:00:00.000000000Z" {
		t.Fatalf("audit = %v", r)
	}
	if r := audit[1]; r.GetOpId() != "op-1" || !strings.Contains(r.GetDetail(), "plan nightly instant 2025-03-01T13:00:00.000000000Z: started op op-1") {
		t.Fatalf("audit = %v", r)
	}

	// Replacing the plan keeps its schedule state; deleting it forgets it.
	a.mustApply(&pb.SetBackupPlanCommand{Plan: testPlan("nightly"), Actor: "bob"})
	a.rejects(fire("nightly", 3*time.Hour, "", ""), ErrAlreadyFired)
	a.mustApply(&pb.DeleteBackupPlanCommand{Name: "nightly"})
	a.rejects(fire("nightly", 5*time.Hour, "", ""), ErrPlanNotFound)
}

// completeBackup records a completed backup op of plan with its catalog
// entry.
func completeBackup(a *applier, id, plan string) {
	op := backupOp(id)
	op.Backup.Plan.Name = plan
	a.mustApply(&pb.CreateOperationCommand{Operation: op, Actor: "scheduler"})
	a.mustApply(&pb.UpdateOperationCommand{Operation: completed(op)})
}

// Pruning removes a plan's catalog entries and keeps their ops; a retried
// prune is a no-op; an id of another plan, a plain pause or an unknown op
// refuses the whole command and changes nothing. Schedule state and the
// pruned catalog survive a snapshot.
func TestPruneBackups(t *testing.T) {
	a := newApplier(t)
	a.mustApply(&pb.SetBackupPlanCommand{Plan: testPlan("nightly"), Actor: "alice"})
	for _, id := range []string{"b-1", "b-2", "b-3"} {
		completeBackup(a, id, "nightly")
	}
	completeBackup(a, "w-1", "weekly")
	pause := newOp("p-1", "ledger", 0)
	a.mustApply(&pb.CreateOperationCommand{Operation: pause})
	a.mustApply(&pb.UpdateOperationCommand{Operation: completed(pause)})
	v0 := a.f.CatalogVersion()
	if got := len(a.f.PlanBackups("nightly")); got != 3 {
		t.Fatalf("PlanBackups(nightly) = %d entries", got)
	}

	for name, cmd := range map[string]*pb.PruneBackupsCommand{
		"no ids":          {Plan: "nightly"},
		"no plan":         {BackupIds: []string{"b-1"}},
		"other plan":      {Plan: "nightly", BackupIds: []string{"b-1", "w-1"}},
		"plain pause":     {Plan: "nightly", BackupIds: []string{"p-1"}},
		"unknown op":      {Plan: "nightly", BackupIds: []string{"b-1", "nope"}},
		"named twice":     {Plan: "nightly", BackupIds: []string{"b-1", "b-1"}},
		"wrong plan name": {Plan: "weekly", BackupIds: []string{"b-2"}},
	} {
		before := a.f.Dump()
		r := a.apply(cmd)
		if r.Err == nil {
			t.Fatalf("%s: prune accepted", name)
		}
		if diff := diffProto(before, a.f.Dump()); diff != "" {
			t.Fatalf("%s: rejected prune changed the state:\n%s", name, diff)
		}
	}

	r := a.mustApply(&pb.PruneBackupsCommand{Plan: "nightly", BackupIds: []string{"b-1", "b-2"}, Reason: "keep_last 1", At: stamp(time.Hour)})
	if got := r.Value.(*pb.PruneBackupsCommand).GetBackupIds(); len(got) != 2 {
		t.Fatalf("pruned = %v", got)
	}
	if left := a.f.PlanBackups("nightly"); len(left) != 1 || left[0].GetOpId() != "b-3" {
		t.Fatalf("left = %v", left)
	}
	if _, ok := a.f.RestorePoint("b-1"); ok {
		t.Fatal("b-1 still in the catalog")
	}
	if op, ok := a.f.Operation("b-1"); !ok || op.GetState() != pb.OperationState_OPERATION_STATE_COMPLETED {
		t.Fatalf("pruned backup's op = %v, %v; want it kept in the history", op, ok)
	}
	if rps := a.f.RestorePoints("", 0); len(rps) != 3 || rps[0].GetOpId() != "p-1" || rps[2].GetOpId() != "b-3" {
		t.Fatalf("catalog = %v", rps)
	}
	if a.f.CatalogVersion() == v0 {
		t.Fatal("catalog version unchanged by a prune")
	}
	rec := a.f.Audit(1)[0]
	if rec.GetAction() != AuditBackupsPrune || rec.GetDetail() != "plan nightly: pruned 2 catalog entries (b-1, b-2): keep_last 1" {
		t.Fatalf("audit = %v", rec)
	}
	n := len(a.f.Audit(0))
	r = a.mustApply(&pb.PruneBackupsCommand{Plan: "nightly", BackupIds: []string{"b-1"}})
	if got := r.Value.(*pb.PruneBackupsCommand).GetBackupIds(); len(got) != 0 || len(a.f.Audit(0)) != n {
		t.Fatalf("retried prune removed %v, audit %d -> %d", got, n, len(a.f.Audit(0)))
	}

	a.mustApply(fire("nightly", time.Hour, "b-3", ""))
	snap, err := a.f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	want := a.f.Dump()
	b := newApplier(t)
	if err := b.f.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	if diff := diffProto(want, b.f.Dump()); diff != "" {
		t.Fatalf("restored state differs:\n%s", diff)
	}
	b.index = a.index
	if last, op, _ := planState(t, b, "nightly"); !last.Equal(t0.Add(time.Hour)) || op != "b-3" {
		t.Fatalf("restored schedule state: %v %q", last, op)
	}
	b.rejects(fire("nightly", time.Hour, "", ""), ErrAlreadyFired)
	if len(b.f.PlanBackups("nightly")) != 1 || b.f.CatalogVersion() != a.f.CatalogVersion() {
		t.Fatal("restored catalog differs")
	}
}
