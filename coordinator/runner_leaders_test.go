package coordinator

import (
	"context"
	"slices"
	"testing"
	"time"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// TestOpRecordsEveryLeader: the op records the leader that admitted it and
// each leader that took it over, in order, from the new leader's first
// record on; a runner of the same leader driving it again adds nothing.
func TestOpRecordsEveryLeader(t *testing.T) {
	f := rtNewFleet(time.Now, "ledger-1", "ledger-2")
	op := rtOp(60_000, 15_000, "ledger-1", "ledger-2")
	op.Leader, op.Leaders = "server-1", []string{"server-1"}
	l := &rtLog{epoch: 1}
	ctx1, cancel1 := context.WithCancel(context.Background())
	defer cancel1()
	r1 := rtRunner(t, l, f, 1, nil)
	r1.leader = "server-1"
	l.hook = func(op *pb.Operation) (bool, error) {
		if op.GetEpoch() == 1 && op.GetState() == pb.OperationState_OPERATION_STATE_HOLDING {
			cancel1() // server-1 loses its term mid-hold
		}
		return true, nil
	}
	if _, err := r1.run(ctx1, op); err == nil {
		t.Fatal("first runner finished the op; the cut did not happen")
	}
	if got := l.latest().GetLeaders(); !slices.Equal(got, []string{"server-1"}) {
		t.Fatalf("leaders after server-1's term %q, want [server-1]", got)
	}
	r2 := rtRunner(t, l, f, l.newTerm(), nil)
	term1Records := len(l.history)
	r2.leader = "server-2"
	r2.forceUnpause("by alice: end the hold")
	final, err := r2.run(context.Background(), l.latest())
	if err != nil {
		t.Fatalf("second runner: %v", err)
	}
	want := []string{"server-1", "server-2"}
	if len(l.history) == term1Records {
		t.Fatal("server-2 recorded nothing")
	}
	if got := l.history[term1Records].GetLeaders(); !slices.Equal(got, want) {
		t.Fatalf("server-2's first record has leaders %q, want %q", got, want)
	}
	if got := final.GetLeaders(); !slices.Equal(got, want) {
		t.Fatalf("final leaders %q, want %q", got, want)
	}
	rtNonePaused(t, f)
}

// TestOpLeadersSeededFromLeader: an op recorded before leaders existed
// (only leader set) keeps its first leader when another takes it over.
func TestOpLeadersSeededFromLeader(t *testing.T) {
	op := &pb.Operation{Leader: "server-1"}
	noteLeader(op, "server-1")
	if got := op.GetLeaders(); !slices.Equal(got, []string{"server-1"}) {
		t.Fatalf("same leader: %q", got)
	}
	op = &pb.Operation{Leader: "server-1"}
	noteLeader(op, "server-3")
	if got := op.GetLeaders(); !slices.Equal(got, []string{"server-1", "server-3"}) {
		t.Fatalf("taken over: %q", got)
	}
	noteLeader(op, "server-3")
	noteLeader(op, "")
	if got := op.GetLeaders(); !slices.Equal(got, []string{"server-1", "server-3"}) {
		t.Fatalf("same leader again: %q", got)
	}
}
