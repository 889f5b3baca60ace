package agent

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stillpoint-dev/stillpoint/internal/scalaradmin"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// TestRequestForUnseenOpFencesLatePause: an Unpause or RenewLease for an
// op the agent never saw (its Pause is late: a deposed leader, a rollback
// that overtook it) persists the higher epoch and remembers the op as
// ended, so the late Pause is refused instead of holding the node for a
// whole lease — also after the agent restarts.
func TestRequestForUnseenOpFencesLatePause(t *testing.T) {
	requests := []struct {
		name string
		send func(c *core, op string, epoch uint64) error
	}{
		{"unpause", func(c *core, op string, epoch uint64) error {
			_, err := c.Unpause(context.Background(), &pb.UnpauseRequest{OpId: op, Epoch: epoch})
			return err
		}},
		{"renew", func(c *core, op string, epoch uint64) error {
			_, err := c.RenewLease(context.Background(), &pb.RenewLeaseRequest{OpId: op, Epoch: epoch, LeaseMs: 1000})
			return err
		}},
	}
	for _, rq := range requests {
		for _, held := range []bool{false, true} {
			name := rq.name + "/idle"
			if held {
				name = rq.name + "/another op holds the node"
			}
			t.Run(name, func(t *testing.T) {
				dir := t.TempDir()
				fa := &fakeAdmin{}
				c := newTestCore(t, dir, fa, nil)
				ctx := context.Background()
				if held {
					if _, err := c.Pause(ctx, pauseReq("held", 3, 10_000)); err != nil {
						t.Fatalf("pause: %v", err)
					}
				}
				if err := rq.send(c, "late", 5); !errors.Is(err, ErrNoSuchOp) {
					t.Fatalf("%s of an unseen op: %v, want ErrNoSuchOp", rq.name, err)
				}
				if err := rq.send(c, "late", 5); !errors.Is(err, ErrNoSuchOp) {
					t.Fatalf("repeated %s of an unseen op: %v, want ErrNoSuchOp", rq.name, err)
				}
				check := func(c *core) {
					t.Helper()
					if _, err := c.Pause(ctx, pauseReq("late", 5, 10_000)); !errors.Is(err, ErrOpEnded) {
						t.Errorf("late pause of the op: %v, want ErrOpEnded", err)
					}
					if _, err := c.Pause(ctx, pauseReq("older", 4, 10_000)); !errors.Is(err, ErrStaleEpoch) {
						t.Errorf("pause at the older epoch 4: %v, want ErrStaleEpoch", err)
					}
				}
				check(c)
				c.kill()
				c2 := newTestCore(t, dir, &fakeAdmin{}, nil)
				check(c2)
				if p, _ := fa.counts(); held && p != 1 || !held && p != 0 {
					t.Fatalf("node Pause calls %d: a fenced request reached the node", p)
				}
			})
		}
	}
}

// TestUnpauseDuringDrainCancelsPause: a rollback Unpause that gives up
// waiting for the agent's node lock while that op's Pause still drains
// leaves a cancellation behind: when the drain returns, the Pause unpauses
// the node at once and answers that the op was cancelled, instead of
// holding the node for a whole lease.
func TestUnpauseDuringDrainCancelsPause(t *testing.T) {
	fa := &fakeAdmin{pauseBlock: make(chan struct{})}
	c := newTestCore(t, t.TempDir(), fa, nil)
	type result struct {
		resp *pb.PauseResponse
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := c.Pause(context.Background(), pauseReq("op-c", 1, 30_000))
		done <- result{resp, err}
	}()
	waitFor(t, 5*time.Second, "the node to drain", func() bool { return c.snapshot(false).draining })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	_, err := c.Unpause(ctx, &pb.UnpauseRequest{OpId: "op-c", Epoch: 1})
	cancel()
	if err == nil {
		t.Fatal("unpause returned while the pause held the node lock")
	}
	close(fa.pauseBlock) // the drain completes: the node is paused now
	r := <-done
	if !errors.Is(r.err, ErrOpEnded) {
		t.Fatalf("pause after a cancelling unpause = %v, %v; want ErrOpEnded", r.resp, r.err)
	}
	if _, u := fa.counts(); u != 1 {
		t.Fatalf("node Unpause calls %d, want 1 (at once, not at lease expiry)", u)
	}
	if s := c.snapshot(false); s.opID != "" {
		t.Fatalf("lease of %s still held after the cancelled pause", s.opID)
	}
	res, err := c.Unpause(context.Background(), &pb.UnpauseRequest{OpId: "op-c", Epoch: 1})
	if err != nil || res.GetOutcome() != pb.NodeOutcome_NODE_OUTCOME_UNPAUSED || res.GetSentAt() == nil {
		t.Fatalf("retried unpause = %v, %v; want the remembered UNPAUSED with sent_at", res, err)
	}
}

// TestRecoveredLeaseClampedToLeaseMS: a lease file whose deadline lies
// further ahead than its lease_ms (the wall clock was stepped back while
// the agent was down) re-arms for at most lease_ms.
func TestRecoveredLeaseClampedToLeaseMS(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	p := persisted{Version: stateVersion, MaxEpoch: 2, Lease: &leaseRecord{
		OpID: "op-w", Epoch: 2, Phase: phaseHeld, LeaseMS: 300,
		DeadlineUnixNS: now.Add(2 * time.Hour).UnixNano(), StartedUnixNS: now.Add(2*time.Hour - time.Second).UnixNano(),
	}}
	if err := (store{dir: dir}).save(p); err != nil {
		t.Fatal(err)
	}
	fa := &fakeAdmin{gate: scalaradmin.Paused}
	c := newTestCore(t, dir, fa, nil)
	if s := c.snapshot(true); s.remaining > 300*time.Millisecond {
		t.Fatalf("recovered lease re-armed for %v, want at most its lease_ms 300ms", s.remaining)
	}
	runTimer(t, c)
	waitFor(t, 5*time.Second, "the recovered lease to run out", func() bool { _, u := fa.counts(); return u == 1 })
}
