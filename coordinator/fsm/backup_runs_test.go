package fsm

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// backupOp is a PENDING op of a plan with one during hook and one after
// hook.
func backupOp(id string) *pb.Operation {
	op := newOp(id, "ledger", 0)
	op.UntilUnpaused = true
	op.Backup = &pb.BackupRun{
		Plan: &pb.BackupPlan{Name: "nightly", Groups: []*pb.HookGroup{{Name: "ledger-databases", Hooks: []*pb.HookRef{{Agent: "ledger-1", Hook: "pg-dump"}}}},
			After: []*pb.HookRef{{Agent: "coordinator", Hook: "notify"}}},
		Hooks: []*pb.HookRun{
			{StepId: "ledger-databases/0", Group: "ledger-databases", Ref: &pb.HookRef{Agent: "ledger-1", Hook: "pg-dump"}, State: pb.HookState_HOOK_STATE_SUCCEEDED, ExitCode: 0, OutputTail: []byte("dumped\n")},
			{StepId: "after/0", Group: AfterGroup, Ref: &pb.HookRef{Agent: "coordinator", Hook: "notify"}, State: pb.HookState_HOOK_STATE_PENDING},
		},
	}
	return op
}

// The catalog entry of a completed backup carries its runs and partial
// flag; after it completed only the `after` runs (and partial, set) may
// still change, in the op and the entry alike; everything else is refused
// and changes nothing.
func TestCompletedBackupRecordsAfterRunsOnly(t *testing.T) {
	a := newApplier(t)
	op := backupOp("op-1")
	a.mustApply(&pb.CreateOperationCommand{Operation: op})
	done := completed(op)
	a.mustApply(&pb.UpdateOperationCommand{Operation: done})
	rp, ok := a.f.RestorePoint("op-1")
	if !ok || !proto.Equal(rp.GetBackup(), op.GetBackup()) || rp.GetPartial() {
		t.Fatalf("catalog entry = %v, want the op's backup copied, not partial", rp)
	}

	after := proto.Clone(done).(*pb.Operation)
	run := after.GetBackup().GetHooks()[1]
	run.State, run.ExitCode, run.Message = pb.HookState_HOOK_STATE_FAILED, 3, "coordinator hook notify exited 3"
	after.Backup.Partial = true

	before := a.f.Dump()
	for name, tc := range map[string]struct {
		mut  func(*pb.Operation)
		want error
	}{
		"during run changed": {func(o *pb.Operation) { o.Backup.Hooks[0].State = pb.HookState_HOOK_STATE_FAILED }, ErrInvalidCommand},
		"window changed":     {func(o *pb.Operation) { o.Window.UncertaintyNs++ }, ErrOperationEnded},
		"state changed":      {func(o *pb.Operation) { o.State = pb.OperationState_OPERATION_STATE_INVALID }, ErrOperationEnded},
		"run removed":        {func(o *pb.Operation) { o.Backup.Hooks = o.Backup.Hooks[:1] }, ErrInvalidCommand},
		"plan changed":       {func(o *pb.Operation) { o.Backup.Plan.Name = "other" }, ErrInvalidCommand},
		"backup removed":     {func(o *pb.Operation) { o.Backup = nil }, ErrInvalidCommand},
		"stale epoch":        {func(o *pb.Operation) { o.Epoch = 7 }, ErrStaleEpoch},
	} {
		bad := proto.Clone(after).(*pb.Operation)
		tc.mut(bad)
		if r := a.apply(&pb.UpdateOperationCommand{Operation: bad}); !errors.Is(r.Err, tc.want) {
			t.Errorf("%s: err = %v, want %v", name, r.Err, tc.want)
		}
	}
	if d := diffProto(before, a.f.Dump()); d != "" {
		t.Fatalf("refused updates changed the state:\n%s", d)
	}

	a.mustApply(&pb.UpdateOperationCommand{Operation: after})
	got, _ := a.f.Operation("op-1")
	if got.GetState() != pb.OperationState_OPERATION_STATE_COMPLETED || !proto.Equal(got.GetBackup(), after.GetBackup()) {
		t.Fatalf("op = %v", got)
	}
	rp, _ = a.f.RestorePoint("op-1")
	if !rp.GetPartial() || !proto.Equal(rp.GetBackup(), after.GetBackup()) {
		t.Fatalf("catalog entry = %v, want the after run and partial", rp)
	}
	// Partial is never cleared once set.
	cleared := proto.Clone(after).(*pb.Operation)
	cleared.Backup.Partial = false
	if r := a.apply(&pb.UpdateOperationCommand{Operation: cleared}); !errors.Is(r.Err, ErrInvalidCommand) {
		t.Fatalf("clearing partial: err = %v", r.Err)
	}
	// It survives a snapshot and restore.
	f2 := snapshotRestore(t, a.f)
	if rp2, _ := f2.RestorePoint("op-1"); !proto.Equal(rp2, rp) {
		t.Fatalf("after restore: %v, want %v", rp2, rp)
	}
}

// A terminal op without a backup still refuses every update, and an
// aborted backup takes no after runs.
func TestEndedOpRefusesUpdates(t *testing.T) {
	a := newApplier(t)
	plain := newOp("op-1", "ledger", 0)
	a.mustApply(&pb.CreateOperationCommand{Operation: plain})
	a.mustApply(&pb.UpdateOperationCommand{Operation: completed(plain)})
	if r := a.apply(&pb.UpdateOperationCommand{Operation: completed(plain)}); !errors.Is(r.Err, ErrOperationEnded) {
		t.Fatalf("update of a completed plain op: err = %v", r.Err)
	}
	b := backupOp("op-2")
	a.mustApply(&pb.CreateOperationCommand{Operation: b})
	aborted := withState(b, pb.OperationState_OPERATION_STATE_ABORTED)
	aborted.EndedAt = stamp(time.Second)
	a.mustApply(&pb.UpdateOperationCommand{Operation: aborted})
	again := proto.Clone(aborted).(*pb.Operation)
	again.Backup.Hooks[1].State = pb.HookState_HOOK_STATE_SUCCEEDED
	if r := a.apply(&pb.UpdateOperationCommand{Operation: again}); !errors.Is(r.Err, ErrOperationEnded) {
		t.Fatalf("after run on an aborted backup: err = %v", r.Err)
	}
	if _, ok := a.f.RestorePoint("op-2"); ok {
		t.Fatal("an aborted backup has a catalog entry")
	}
}

// snapshotRestore returns a fresh FSM restored from f's snapshot.
func snapshotRestore(t *testing.T, f *FSM) *FSM {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()
	g := New(nil)
	if err := g.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	return g
}
