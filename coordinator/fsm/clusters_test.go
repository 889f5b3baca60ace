package fsm

import (
	"errors"
	"strings"
	"testing"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

func multiOp(id string, clusters ...string) *pb.Operation {
	op := newOp(id, clusters[0], 0)
	op.Clusters = clusters
	return op
}

// One op of several clusters takes every cluster's lock in one command,
// or none: a conflict on one refuses the whole op; its end frees them all.
func TestMultiClusterLocksAtomic(t *testing.T) {
	a := newApplier(t)
	a.mustApply(&pb.CreateOperationCommand{Operation: newOp("op-a", "auditor", 0)})

	r := a.apply(&pb.CreateOperationCommand{Operation: multiOp("op-1", "ledger", "auditor")})
	if !errors.Is(r.Err, ErrClusterLocked) || !strings.Contains(r.Err.Error(), `"auditor" is held by operation op-a`) {
		t.Fatalf("create over a held auditor: %v, want ErrClusterLocked naming auditor and op-a", r.Err)
	}
	if holder, locked := a.f.Lock("ledger"); locked {
		t.Fatalf("a refused op left ledger locked by %s", holder)
	}
	if _, ok := a.f.Operation("op-1"); ok {
		t.Fatal("a refused op was stored")
	}

	a.mustApply(&pb.UpdateOperationCommand{Operation: withState(newOp("op-a", "auditor", 0), pb.OperationState_OPERATION_STATE_ABORTED)})
	a.mustApply(&pb.CreateOperationCommand{Operation: multiOp("op-1", "ledger", "auditor")})
	for _, c := range []string{"ledger", "auditor"} {
		if holder, _ := a.f.Lock(c); holder != "op-1" {
			t.Fatalf("%s lock = %q, want op-1", c, holder)
		}
		if ops := a.f.Operations(c, 0); len(ops) == 0 || ops[0].GetOpId() != "op-1" {
			t.Fatalf("operations of %s: %v, want op-1 first", c, ops)
		}
	}
	for _, op := range []*pb.Operation{newOp("op-2", "ledger", 0), newOp("op-3", "auditor", 0)} {
		if r := a.apply(&pb.CreateOperationCommand{Operation: op}); !errors.Is(r.Err, ErrClusterLocked) {
			t.Fatalf("create %s on %s while op-1 holds it: %v", op.GetOpId(), op.GetCluster(), r.Err)
		}
	}
	// An update may not change the op's clusters.
	if r := a.apply(&pb.UpdateOperationCommand{Operation: withState(newOp("op-1", "ledger", 0), pb.OperationState_OPERATION_STATE_PAUSING)}); !errors.Is(r.Err, ErrInvalidCommand) {
		t.Fatalf("update dropping auditor: %v, want ErrInvalidCommand", r.Err)
	}
	a.mustApply(&pb.UpdateOperationCommand{Operation: withState(multiOp("op-1", "ledger", "auditor"), pb.OperationState_OPERATION_STATE_ABORTED)})
	for _, c := range []string{"ledger", "auditor"} {
		if holder, locked := a.f.Lock(c); locked {
			t.Fatalf("%s still locked by %s after op-1 ended", c, holder)
		}
	}
}

// A cluster named twice, an empty one, or clusters not led by cluster are
// refused: never silently collapsed.
func TestMultiClusterRefusesBadLists(t *testing.T) {
	for _, cs := range [][]string{{"ledger", "ledger"}, {"ledger", ""}, {"ledger", "auditor", "ledger"}} {
		a := newApplier(t)
		r := a.apply(&pb.CreateOperationCommand{Operation: multiOp("op-1", cs...)})
		if !errors.Is(r.Err, ErrInvalidCommand) {
			t.Errorf("clusters %q: %v, want ErrInvalidCommand", cs, r.Err)
		}
		if _, locked := a.f.Lock("ledger"); locked {
			t.Errorf("clusters %q: refused but ledger locked", cs)
		}
	}
	op := multiOp("op-1", "ledger", "auditor")
	op.Cluster = "auditor"
	if r := newApplier(t).apply(&pb.CreateOperationCommand{Operation: op}); !errors.Is(r.Err, ErrInvalidCommand) {
		t.Errorf("clusters not led by cluster: %v, want ErrInvalidCommand", r.Err)
	}
}
