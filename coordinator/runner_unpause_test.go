package coordinator

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// rtFastForward moves the fake clock on by step until the test ends, so
// backoffs and leases pass in a blink of real time.
func rtFastForward(t *testing.T, fc *clockwork.FakeClock, step time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			fc.Advance(step)
			time.Sleep(200 * time.Microsecond)
		}
	}()
}

func rtUnpauses(a *rtAgent) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.unpauses
}

// failTimes fails the first n calls.
func failTimes(n int) func() bool {
	return func() bool {
		n--
		return n >= 0
	}
}

// An agent that is unreachable for a while when the hold ends (a
// partition, a crash and restart) gets its Unpause as soon as it answers,
// within its lease, instead of after three quick tries.
func TestUnpauseRetriedUntilAgentAnswers(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(a *rtAgent)
	}{
		{"agent unreachable", func(a *rtAgent) {
			fail := failTimes(6)
			a.unpauseErr = func() error {
				if fail() {
					return status.Error(codes.Unavailable, "connection refused")
				}
				return nil
			}
		}},
		{"node unpause failed, lease armed", func(a *rtAgent) { a.unpauseFails = failTimes(6) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fc := clockwork.NewFakeClock()
			f := rtNewFleet(fc.Now, "ledger-1", "ledger-2")
			tc.set(f["ledger-2"])
			l := &rtLog{epoch: 1}
			r := rtRunner(t, l, f, 1, nil)
			rtFake(r, f, fc)
			rtFastForward(t, fc, 20*time.Millisecond)
			final, err := r.run(context.Background(), rtOp(100, 15_000, "ledger-1", "ledger-2"))
			if err != nil {
				t.Fatal(err)
			}
			if final.GetState() != pb.OperationState_OPERATION_STATE_COMPLETED {
				t.Fatalf("op ended %s: %s", final.GetState(), final.GetReason())
			}
			if n := rtUnpauses(f["ledger-2"]); n != 7 {
				t.Errorf("ledger-2 got %d Unpause calls, want 7 (6 failed, then it answered)", n)
			}
			rtNonePaused(t, f)
		})
	}
}

// An agent that never answers is retried until its lease has surely run
// out; the op names it as released by its own lease.
func TestUnpauseGivesUpOnlyWhenLeaseSurelyRanOut(t *testing.T) {
	fc := clockwork.NewFakeClock()
	f := rtNewFleet(fc.Now, "ledger-1", "ledger-2")
	var renewedAt time.Time
	f["ledger-2"].renewErr = func() error { renewedAt = fc.Now(); return nil }
	f["ledger-2"].unpauseErr = func() error { return status.Error(codes.Unavailable, "connection refused") }
	l := &rtLog{epoch: 1}
	r := rtRunner(t, l, f, 1, nil)
	rtFake(r, f, fc)
	rtFastForward(t, fc, 20*time.Millisecond)
	const lease = 3 * time.Second
	final, err := r.run(context.Background(), rtOp(100, lease.Milliseconds(), "ledger-1", "ledger-2"))
	if err != nil {
		t.Fatal(err)
	}
	if final.GetState() != pb.OperationState_OPERATION_STATE_INVALID || !strings.Contains(final.GetReason(), "ledger-2") || !strings.Contains(final.GetReason(), "own lease") {
		t.Fatalf("op ended %s (%s), want INVALID naming ledger-2 as released by its own lease", final.GetState(), final.GetReason())
	}
	if got := final.GetLeaseReleased(); len(got) != 1 || got[0] != "ledger-2" {
		t.Errorf("lease_released = %v, want [ledger-2]", got)
	}
	if final.GetTargets()[1].GetUnpauseOutcome() != pb.NodeOutcome_NODE_OUTCOME_UNREACHABLE {
		t.Errorf("ledger-2 unpause outcome %s, want unreachable", final.GetTargets()[1].GetUnpauseOutcome())
	}
	// Gave up no sooner than the lease's end after the last renewal.
	if ended := final.GetEndedAt().GetLocalTime().AsTime(); ended.Sub(renewedAt) < lease {
		t.Errorf("gave up %v after the last renewal; the %v lease may still have held the node", ended.Sub(renewedAt), lease)
	}
	if n := rtUnpauses(f["ledger-2"]); n <= 3 {
		t.Errorf("ledger-2 got %d Unpause calls; want retries until its lease ran out", n)
	}
	if f["ledger-1"].isPaused() {
		t.Error("ledger-1 still paused")
	}
}
