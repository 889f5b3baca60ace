package coordinator

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// rtFake puts a runner and its fleet on one fake clock: timers, the
// coordinator's stamps and the agents' stamps.
func rtFake(r *pauseRunner, f rtFleet, fc *clockwork.FakeClock) {
	r.clock = fc
	r.stamp = func() *pb.StampedTime { return rtStamp(fc.Now()) }
	for _, a := range f {
		a.now = fc.Now
	}
}

func rtRenews(f rtFleet, node string) int {
	a := f[node]
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.renews)
}

// rtRunAsync runs r in the background; the channel yields its result.
func rtRunAsync(ctx context.Context, r *pauseRunner, op *pb.Operation) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := r.run(ctx, op)
		done <- err
	}()
	return done
}

func rtWaitRenews(t *testing.T, f rtFleet, want int) {
	t.Helper()
	rtWaitFor(t, func() (bool, string) {
		for n := range f {
			if got := rtRenews(f, n); got < want {
				return false, fmt.Sprintf("%s renewed %d times, want %d", n, got, want)
			}
		}
		return true, ""
	})
}

// Every target's lease is renewed the moment the op holds, before any
// time passes: a node that acked early must not run out while the last
// one drains.
func TestHoldRenewsEveryLeaseOnEnteringHold(t *testing.T) {
	fc := clockwork.NewFakeClock()
	f := rtNewFleet(fc.Now, "ledger-1", "ledger-2", "ledger-3")
	l := &rtLog{epoch: 1}
	r := rtRunner(t, l, f, 1, nil)
	rtFake(r, f, fc)
	done := rtRunAsync(context.Background(), r, rtOp(60_000, 15_000, "ledger-1", "ledger-2", "ledger-3"))
	rtWaitRenews(t, f, 1) // the fake clock never moved
	r.forceUnpause("test over")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	rtNonePaused(t, f)
}

// Renewals follow the smallest lease_remaining_ms an agent reports, not
// the nominal lease: an agent whose lease has 3s left of 15s is renewed
// after a third of those 3s.
func TestHoldRenewsFromSmallestRemainingLease(t *testing.T) {
	fc := clockwork.NewFakeClock()
	f := rtNewFleet(fc.Now, "ledger-1", "ledger-2")
	f["ledger-2"].remaining = func() int64 { return 3000 }
	l := &rtLog{epoch: 1}
	r := rtRunner(t, l, f, 1, nil)
	rtFake(r, f, fc)
	done := rtRunAsync(context.Background(), r, rtOp(60_000, 15_000, "ledger-1", "ledger-2"))
	ctx := ctxTimeout(t, 10*time.Second)
	// Held: the renew timer, the watch poll and the hold deadline wait.
	if err := fc.BlockUntilContext(ctx, 3); err != nil {
		t.Fatal(err)
	}
	before := rtRenews(f, "ledger-1")
	fc.Advance(1100 * time.Millisecond)
	rtWaitRenews(t, f, before+1)
	r.forceUnpause("test over")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A new leader holds until the recorded deadline, not for a fresh hold:
// a 10s hold whose leader died 4s in ends 6s (plus the clocks' bounds)
// after the takeover.
func TestFailoverHoldEndsAtRecordedDeadline(t *testing.T) {
	fc := clockwork.NewFakeClock()
	f := rtNewFleet(fc.Now, "ledger-1", "ledger-2")
	l := &rtLog{epoch: 1}
	r1 := rtRunner(t, l, f, 1, nil)
	rtFake(r1, f, fc)
	ctx1, cancel1 := context.WithCancel(context.Background())
	done1 := rtRunAsync(ctx1, r1, rtOp(10_000, 15_000, "ledger-1", "ledger-2"))
	ctx := ctxTimeout(t, 10*time.Second)
	if err := fc.BlockUntilContext(ctx, 3); err != nil {
		t.Fatal(err)
	}
	fc.Advance(4 * time.Second)
	cancel1() // the leader dies 4s into the hold
	if err := <-done1; err == nil {
		t.Fatal("first runner finished the op")
	}
	if s := l.latest().GetState(); s != pb.OperationState_OPERATION_STATE_HOLDING {
		t.Fatalf("op is %s at the failover, want HOLDING", s)
	}
	epoch := l.newTerm()
	r2 := rtRunner(t, l, f, epoch, nil)
	rtFake(r2, f, fc)
	done2 := rtRunAsync(context.Background(), r2, l.latest())
	if err := fc.BlockUntilContext(ctx, 3); err != nil {
		t.Fatal(err)
	}
	// 6s left, plus 1ms of bound on each side.
	fc.Advance(6*time.Second + 3*time.Millisecond)
	select {
	case err := <-done2:
		if err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatalf("hold did not end at its recorded deadline; op %s", l.latest().GetState())
	}
	final := l.latest()
	if final.GetState() != pb.OperationState_OPERATION_STATE_COMPLETED {
		t.Fatalf("op ended %s: %s", final.GetState(), final.GetReason())
	}
	rtNonePaused(t, f)
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// rtWaitFor polls cond (real time) for up to 10s.
func rtWaitFor(t *testing.T, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within 10s: %s", why)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestHoldLeftIsConservativeAcrossClocks(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	st := func(local time.Time, offset, bound time.Duration, ppm float64, status pb.ClockStatus) *pb.StampedTime {
		s := rtStamp(local)
		s.Estimate.OffsetNs, s.Estimate.ErrorBoundNs, s.Estimate.MaxDriftPpm, s.Estimate.Status = int64(offset), int64(bound), ppm, status
		return s
	}
	sync := pb.ClockStatus_CLOCK_STATUS_SYNCHRONIZED
	hold := 10 * time.Second
	// The first leader entered the hold at t0 (true time t0 + 0 ± 2ms).
	deadline := holdDeadline(st(t0, 0, 2*time.Millisecond, 0, sync), hold)
	for _, tc := range []struct {
		name string
		now  *pb.StampedTime
		want time.Duration
	}{
		{"same clock, 4s in", st(t0.Add(4*time.Second), 0, 3*time.Millisecond, 0, sync), 6*time.Second + 5*time.Millisecond},
		// This server's wall clock reads 300ms behind and knows it.
		{"clock behind, offset known", st(t0.Add(4*time.Second-300*time.Millisecond), 300*time.Millisecond, 3*time.Millisecond, 0, sync), 6*time.Second + 5*time.Millisecond},
		{"deadline passed", st(t0.Add(11*time.Second), 0, 3*time.Millisecond, 0, sync), 0},
		// A clock far behind cannot stretch the hold past a fresh one.
		{"never more than the hold", st(t0.Add(-time.Hour), 0, 3*time.Millisecond, 0, sync), hold},
		{"unsynchronized: whole hold again", st(t0.Add(4*time.Second), 0, 3*time.Millisecond, 0, pb.ClockStatus_CLOCK_STATUS_STALE), hold},
		{"no estimate: whole hold again", &pb.StampedTime{LocalTime: rtStamp(t0.Add(4 * time.Second)).GetLocalTime()}, hold},
	} {
		t.Run(tc.name, func(t *testing.T) {
			op := &pb.Operation{HoldNs: int64(hold), HoldDeadline: deadline}
			if got := holdLeft(op, tc.now); got != tc.want {
				t.Errorf("holdLeft = %v, want %v", got, tc.want)
			}
		})
	}
	// The deadline's bound grows with the drift over the hold: 50ppm of 10s.
	op := &pb.Operation{HoldNs: int64(hold), HoldDeadline: holdDeadline(st(t0, 0, 2*time.Millisecond, 50, sync), hold)}
	if got, want := holdLeft(op, st(t0.Add(4*time.Second), 0, 3*time.Millisecond, 0, sync)), 6*time.Second+5*time.Millisecond+500*time.Microsecond; got != want {
		t.Errorf("with drift: holdLeft = %v, want %v", got, want)
	}
}
