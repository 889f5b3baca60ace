package coordinator

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// rtUntilUnpaused is an op held until unpaused, at most maxHold.
func rtUntilUnpaused(holdMs int64, maxHold time.Duration, nodes ...string) *pb.Operation {
	op := rtOp(holdMs, 15_000, nodes...)
	op.UntilUnpaused, op.MaxHoldNs = true, int64(maxHold)
	return op
}

// rtHeld starts op on a fake clock and waits until it holds (the renew
// timer, the watch poll and the hold deadline wait).
func rtHeld(t *testing.T, op *pb.Operation, nodes ...string) (*pauseRunner, *rtLog, rtFleet, *clockwork.FakeClock, <-chan error) {
	t.Helper()
	fc := clockwork.NewFakeClock()
	f := rtNewFleet(fc.Now, nodes...)
	l := &rtLog{epoch: 1}
	r := rtRunner(t, l, f, 1, nil)
	rtFake(r, f, fc)
	done := rtRunAsync(context.Background(), r, op)
	if err := fc.BlockUntilContext(ctxTimeout(t, 10*time.Second), 3); err != nil {
		t.Fatal(err)
	}
	return r, l, f, fc, done
}

// A pause held until unpaused holds past its minimum and records when its
// maximum hold runs out; ending the hold completes it with its window.
func TestEndHoldNowCompletesWithWindow(t *testing.T) {
	op := rtUntilUnpaused(0, time.Hour, "ledger-1", "ledger-2")
	r, l, f, fc, done := rtHeld(t, op, "ledger-1", "ledger-2")
	held := l.latest()
	if got, want := held.GetHoldDeadline().GetLocalTime().AsTime(), fc.Now().Add(time.Hour); !got.Equal(want) {
		t.Fatalf("hold deadline %s, want the maximum hold from now %s", got, want)
	}
	fc.Advance(2 * time.Second)
	r.endHoldNow("by alice: snapshots taken")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	final := l.latest()
	if final.GetState() != pb.OperationState_OPERATION_STATE_COMPLETED || final.GetWindow() == nil {
		t.Fatalf("op ended %s (%s), want COMPLETED with a window", final.GetState(), final.GetReason())
	}
	if w := time.Duration(final.GetWindow().GetWidthNs()); w < time.Second {
		t.Fatalf("window %s wide, want about the 2s held", w)
	}
	if final.GetEndState() != pb.OperationState_OPERATION_STATE_COMPLETED || !strings.Contains(final.GetReason(), "snapshots taken") {
		t.Fatalf("end_state %s reason %q, want COMPLETED naming who ended the hold", final.GetEndState(), final.GetReason())
	}
	rtNonePaused(t, f)
}

// Ending the hold before the minimum the clocks' uncertainty requires
// ends the op INVALID, saying so; it is never a COMPLETED window.
func TestEndHoldNowBeforeMinimumIsInvalid(t *testing.T) {
	op := rtUntilUnpaused(0, time.Hour, "ledger-1", "ledger-2")
	r, l, f, _, done := rtHeld(t, op, "ledger-1", "ledger-2")
	r.endHoldNow("by alice: too soon") // the fake clock never moved
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	final := l.latest()
	if final.GetState() != pb.OperationState_OPERATION_STATE_INVALID || !strings.Contains(final.GetReason(), "before the minimum hold") ||
		!strings.Contains(final.GetReason(), "too soon") {
		t.Fatalf("op ended %s (%s), want INVALID: ended before the minimum hold, naming who ended it", final.GetState(), final.GetReason())
	}
	rtNonePaused(t, f)
}

// Abort keeps its meaning: ABORTED, no window, whatever the hold.
func TestAbortHoldEndsAborted(t *testing.T) {
	op := rtUntilUnpaused(0, time.Hour, "ledger-1", "ledger-2")
	r, l, f, fc, done := rtHeld(t, op, "ledger-1", "ledger-2")
	fc.Advance(2 * time.Second)
	r.forceUnpause("by bob: wrong cluster")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	final := l.latest()
	if final.GetState() != pb.OperationState_OPERATION_STATE_ABORTED || final.GetWindow() != nil || !strings.Contains(final.GetReason(), "wrong cluster") {
		t.Fatalf("op ended %s (%s, window %v), want ABORTED without a window", final.GetState(), final.GetReason(), final.GetWindow())
	}
	rtNonePaused(t, f)
}

// Nobody unpauses: the hold ends at the maximum hold, leases renewed all
// along, and the op completes saying why.
func TestUntilUnpausedEndsAtMaxHold(t *testing.T) {
	op := rtUntilUnpaused(0, 20*time.Second, "ledger-1", "ledger-2")
	_, l, f, fc, done := rtHeld(t, op, "ledger-1", "ledger-2")
	var err error
	for step := 0; ; step++ {
		if step > 30 {
			t.Fatalf("op still %s after 30s of a 20s maximum hold", l.latest().GetState())
		}
		fc.Advance(time.Second)
		// Wait until the runner waits on its three timers again, or ended.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		held := make(chan error, 1)
		go func() { held <- fc.BlockUntilContext(ctx, 3) }()
		finished := false
		select {
		case err = <-done:
			finished = true
		case e := <-held:
			if e != nil {
				cancel()
				t.Fatal(e)
			}
		}
		cancel()
		if finished {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	final := l.latest()
	if final.GetState() != pb.OperationState_OPERATION_STATE_COMPLETED || !strings.Contains(final.GetReason(), "maximum hold 20s") {
		t.Fatalf("op ended %s (%s), want COMPLETED at the maximum hold", final.GetState(), final.GetReason())
	}
	if n := rtRenews(f, "ledger-1"); n < 4 {
		t.Fatalf("ledger-1 renewed %d times over a 20s hold of 15s leases, want at least 4", n)
	}
	rtNonePaused(t, f)
}

// The intended end survives a failover: a hold ended before HOLDING was
// recorded, or while UNPAUSING was, is ended the same way by the next
// leader — completed with its window, never aborted, never held on.
func TestFailoverKeepsEndHoldCompleted(t *testing.T) {
	for _, at := range []pb.OperationState{pb.OperationState_OPERATION_STATE_HOLDING, pb.OperationState_OPERATION_STATE_UNPAUSING} {
		f := rtNewFleet(time.Now, "ledger-1", "ledger-2")
		cut := func(r *pauseRunner, op *pb.Operation) bool {
			if op.GetState() == pb.OperationState_OPERATION_STATE_PAUSING {
				r.endHoldNow("by alice: snapshots taken")
			}
			if op.GetState() != at {
				return false
			}
			if op.GetEndState() != pb.OperationState_OPERATION_STATE_COMPLETED {
				t.Errorf("%s recorded with end_state %s, want COMPLETED", at, op.GetEndState())
			}
			// The next leader unpauses a second later (agent stamps), well
			// past the minimum hold.
			for _, a := range f {
				a.mu.Lock()
				a.now = func() time.Time { return time.Now().Add(time.Second) }
				a.mu.Unlock()
			}
			return true
		}
		op := rtUntilUnpaused(0, time.Hour, "ledger-1", "ledger-2")
		final := rtFailover(t, f, op, nil, nil, cut)
		if final.GetState() == pb.OperationState_OPERATION_STATE_ABORTED || final.GetEndState() != pb.OperationState_OPERATION_STATE_COMPLETED ||
			!strings.Contains(final.GetReason(), "snapshots taken") {
			t.Fatalf("cut at %s: op ended %s (end_state %s, %q), want the operator's end of the hold kept", at, final.GetState(), final.GetEndState(), final.GetReason())
		}
		rtNonePaused(t, f)
	}
}
