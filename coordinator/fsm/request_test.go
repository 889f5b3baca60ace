package fsm

import (
	"bytes"
	"io"
	"testing"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// A CreateOperation carrying a request id that already started an op
// returns that op and changes nothing: a retried StartPause whose first
// attempt was committed gets its own op back, not "cluster held".
func TestCreateOperationIsIdempotentOnRequestID(t *testing.T) {
	a := newApplier(t)
	first := newOp("op-1", "ledger", 0)
	first.RequestId = "req-7"
	a.mustApply(&pb.CreateOperationCommand{Operation: first, Actor: "alice"})
	audits := len(a.f.Audit(0))

	retry := newOp("op-2", "ledger", 0) // the retry minted a new op id
	retry.RequestId = "req-7"
	r := a.apply(&pb.CreateOperationCommand{Operation: retry, Actor: "alice"})
	if r.Err != nil {
		t.Fatalf("retry with the same request id: %v", r.Err)
	}
	if got := r.Value.(*pb.Operation).GetOpId(); got != "op-1" {
		t.Fatalf("retry returned %s, want op-1", got)
	}
	if _, ok := a.f.Operation("op-2"); ok {
		t.Error("the retry created a second op")
	}
	if n := len(a.f.Audit(0)); n != audits {
		t.Errorf("the retry added %d audit records", n-audits)
	}
	if op, ok := a.f.OperationByRequest("req-7"); !ok || op.GetOpId() != "op-1" {
		t.Errorf("OperationByRequest(req-7) = %v, %v", op, ok)
	}

	// Another request id still meets the lock.
	other := newOp("op-3", "ledger", 0)
	other.RequestId = "req-8"
	if r := a.apply(&pb.CreateOperationCommand{Operation: other}); r.Err == nil {
		t.Error("a different request id was not refused by the cluster lock")
	}
	// The index survives a snapshot.
	b := restoreCopy(t, a.f)
	if op, ok := b.OperationByRequest("req-7"); !ok || op.GetOpId() != "op-1" {
		t.Errorf("after restore: OperationByRequest(req-7) = %v, %v", op, ok)
	}
}

// restoreCopy snapshots f and restores it into a fresh FSM.
func restoreCopy(t *testing.T, f *FSM) *FSM {
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
	b := New(nil)
	if err := b.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	return b
}
