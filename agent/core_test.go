package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/stillpoint-dev/stillpoint/internal/scalaradmin"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

func pauseReq(op string, epoch uint64, leaseMS int64) *pb.PauseRequest {
	return &pb.PauseRequest{OpId: op, Epoch: epoch, LeaseMs: leaseMS, WaitOutstanding: true, MaxPauseWaitMs: leaseMS / 2}
}

func TestPauseIsIdempotentPerOp(t *testing.T) {
	fa := &fakeAdmin{}
	c := newTestCore(t, t.TempDir(), fa, nil)
	ctx := context.Background()
	first, err := c.Pause(ctx, pauseReq("op-1", 3, 10_000))
	if err != nil {
		t.Fatalf("pause: %v", err)
	}
	if first.GetOutcome() != pb.NodeOutcome_NODE_OUTCOME_PAUSED || first.GetAckedAt() == nil {
		t.Fatalf("first pause = %v, want PAUSED with acked_at", first)
	}
	again, err := c.Pause(ctx, pauseReq("op-1", 3, 10_000))
	if err != nil {
		t.Fatalf("repeated pause: %v", err)
	}
	if !proto.Equal(first.GetAckedAt(), again.GetAckedAt()) {
		t.Fatalf("repeated pause acked_at %v, want the original %v", again.GetAckedAt(), first.GetAckedAt())
	}
	if p, _ := fa.counts(); p != 1 {
		t.Fatalf("node Pause called %d times, want 1", p)
	}

	un1, err := c.Unpause(ctx, &pb.UnpauseRequest{OpId: "op-1", Epoch: 3})
	if err != nil || un1.GetOutcome() != pb.NodeOutcome_NODE_OUTCOME_UNPAUSED || un1.GetSentAt() == nil {
		t.Fatalf("unpause = %v, %v; want UNPAUSED with sent_at", un1, err)
	}
	un2, err := c.Unpause(ctx, &pb.UnpauseRequest{OpId: "op-1", Epoch: 3})
	if err != nil || !proto.Equal(un1, un2) {
		t.Fatalf("repeated unpause = %v, %v; want the original %v", un2, err, un1)
	}
	if _, u := fa.counts(); u != 1 {
		t.Fatalf("node Unpause called %d times, want 1", u)
	}
	if _, err := c.Pause(ctx, pauseReq("op-1", 3, 10_000)); !errors.Is(err, ErrOpEnded) {
		t.Fatalf("pause of an ended op: %v, want ErrOpEnded", err)
	}
}

func TestRequestsRejected(t *testing.T) {
	fa := &fakeAdmin{}
	dir := t.TempDir()
	c := newTestCore(t, dir, fa, nil)
	ctx := context.Background()
	if _, err := c.Pause(ctx, pauseReq("held", 7, 10_000)); err != nil {
		t.Fatalf("pause: %v", err)
	}
	tests := []struct {
		name     string
		call     func() error
		want     error
		code     codes.Code
		mentions []string
	}{
		{"stale epoch pause", func() error { _, err := c.Pause(ctx, pauseReq("other", 6, 1000)); return err },
			ErrStaleEpoch, codes.FailedPrecondition, []string{"epoch 6", "highest epoch seen 7"}},
		{"stale epoch renew", func() error {
			_, err := c.RenewLease(ctx, &pb.RenewLeaseRequest{OpId: "held", Epoch: 2, LeaseMs: 1000})
			return err
		}, ErrStaleEpoch, codes.FailedPrecondition, []string{"epoch 2", "7"}},
		{"stale epoch unpause", func() error { _, err := c.Unpause(ctx, &pb.UnpauseRequest{OpId: "held", Epoch: 1}); return err },
			ErrStaleEpoch, codes.FailedPrecondition, []string{"epoch 1", "7"}},
		{"second op", func() error { _, err := c.Pause(ctx, pauseReq("other", 7, 1000)); return err },
			ErrOpHeld, codes.Aborted, []string{"held by op held", "other"}},
		{"lease above max", func() error { _, err := c.Pause(ctx, pauseReq("x", 9, 120_000)); return err },
			ErrInvalidRequest, codes.InvalidArgument, []string{"120000", "max lease 60000"}},
		{"zero lease", func() error { _, err := c.Pause(ctx, pauseReq("x", 9, 0)); return err },
			ErrInvalidRequest, codes.InvalidArgument, []string{"lease_ms 0"}},
		{"drain wait outlasts lease", func() error {
			_, err := c.Pause(ctx, &pb.PauseRequest{OpId: "x", Epoch: 9, LeaseMs: 1000, WaitOutstanding: true, MaxPauseWaitMs: 1000})
			return err
		}, ErrInvalidRequest, codes.InvalidArgument, []string{"max_pause_wait_ms 1000 must be shorter than lease_ms 1000"}},
		{"empty op", func() error { _, err := c.Pause(ctx, pauseReq("", 9, 10)); return err },
			ErrInvalidRequest, codes.InvalidArgument, []string{"op_id is required"}},
		{"long op", func() error { _, err := c.Pause(ctx, pauseReq(strings.Repeat("o", 41), 9, 10)); return err },
			ErrInvalidRequest, codes.InvalidArgument, []string{"41 bytes"}},
		{"renew unknown op", func() error {
			_, err := c.RenewLease(ctx, &pb.RenewLeaseRequest{OpId: "nope", Epoch: 7, LeaseMs: 1000})
			return err
		}, ErrNoSuchOp, codes.NotFound, []string{"holds op held", "nope"}},
		{"unpause unknown op", func() error { _, err := c.Unpause(ctx, &pb.UnpauseRequest{OpId: "nope", Epoch: 7}); return err },
			ErrNoSuchOp, codes.NotFound, []string{"nothing unpaused"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			st := status.Convert(toStatus("n1", err))
			if st.Code() != tt.code {
				t.Fatalf("code = %v, want %v", st.Code(), tt.code)
			}
			for _, m := range tt.mentions {
				if !strings.Contains(st.Message(), m) {
					t.Errorf("message %q does not mention %q", st.Message(), m)
				}
			}
			if ReasonOf(toStatus("n1", err)) == "" {
				t.Errorf("no ErrorInfo reason on %v", err)
			}
		})
	}
	if p, u := fa.counts(); p != 1 || u != 0 {
		t.Fatalf("rejected requests touched the node: pauses %d unpauses %d", p, u)
	}
	// The highest epoch survives a restart.
	c2 := newTestCore(t, dir, &fakeAdmin{}, nil)
	if _, err := c2.Unpause(ctx, &pb.UnpauseRequest{OpId: "held", Epoch: 6}); !errors.Is(err, ErrStaleEpoch) {
		t.Fatalf("after restart, epoch 6: %v, want ErrStaleEpoch", err)
	}
}

func TestPauseOutcomes(t *testing.T) {
	wrap := func(class error) error { return fmt.Errorf("node 127.0.0.1:1: %w", class) }
	tests := []struct {
		name      string
		err       error
		want      pb.NodeOutcome
		leaseKept bool
		unpause   pb.NodeOutcome // result of a later Unpause
		nodeCalls int            // node Unpause calls made by that Unpause
	}{
		{"drain timed out", wrap(scalaradmin.ErrDrainTimedOut), pb.NodeOutcome_NODE_OUTCOME_DRAIN_TIMED_OUT, false, pb.NodeOutcome_NODE_OUTCOME_DRAIN_TIMED_OUT, 0},
		{"still paused", wrap(scalaradmin.ErrStillPaused), pb.NodeOutcome_NODE_OUTCOME_STILL_PAUSED, false, pb.NodeOutcome_NODE_OUTCOME_STILL_PAUSED, 0},
		{"invalid", wrap(scalaradmin.ErrInvalidArgument), pb.NodeOutcome_NODE_OUTCOME_FAILED, false, pb.NodeOutcome_NODE_OUTCOME_FAILED, 0},
		{"unreachable", wrap(scalaradmin.ErrUnreachable), pb.NodeOutcome_NODE_OUTCOME_UNREACHABLE, true, pb.NodeOutcome_NODE_OUTCOME_UNPAUSED, 1},
		{"unknown failure", wrap(scalaradmin.ErrFailed), pb.NodeOutcome_NODE_OUTCOME_FAILED, true, pb.NodeOutcome_NODE_OUTCOME_UNPAUSED, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fa := &fakeAdmin{pauseErrs: []error{tt.err}}
			c := newTestCore(t, t.TempDir(), fa, nil)
			ctx := context.Background()
			resp, err := c.Pause(ctx, pauseReq("op", 1, 10_000))
			if err != nil {
				t.Fatalf("pause: %v", err)
			}
			if resp.GetOutcome() != tt.want {
				t.Fatalf("outcome %v, want %v (%s)", resp.GetOutcome(), tt.want, resp.GetMessage())
			}
			if held := c.snapshot(false).opID != ""; held != tt.leaseKept {
				t.Fatalf("lease held after pause = %v, want %v", held, tt.leaseKept)
			}
			un, err := c.Unpause(ctx, &pb.UnpauseRequest{OpId: "op", Epoch: 1})
			if err != nil {
				t.Fatalf("unpause: %v", err)
			}
			if un.GetOutcome() != tt.unpause {
				t.Fatalf("unpause outcome %v, want %v (%s)", un.GetOutcome(), tt.unpause, un.GetMessage())
			}
			if _, u := fa.counts(); u != tt.nodeCalls {
				t.Fatalf("node Unpause calls %d, want %d", u, tt.nodeCalls)
			}
		})
	}
}

func TestPauseRetriesRetryable(t *testing.T) {
	busy := fmt.Errorf("node: %w", scalaradmin.ErrRetryable)
	fa := &fakeAdmin{pauseErrs: []error{busy, busy, nil}}
	c := newTestCore(t, t.TempDir(), fa, nil)
	resp, err := c.Pause(context.Background(), pauseReq("op", 1, 10_000))
	if err != nil || resp.GetOutcome() != pb.NodeOutcome_NODE_OUTCOME_PAUSED {
		t.Fatalf("pause = %v, %v; want PAUSED after retries", resp, err)
	}
	if p, _ := fa.counts(); p != 3 {
		t.Fatalf("node Pause calls %d, want 3", p)
	}
}

func TestLeaseWrittenBeforeNodePause(t *testing.T) {
	dir := t.TempDir()
	fa := &fakeAdmin{}
	var onDisk *leaseRecord
	fa.onPause = func() {
		p, err := store{dir: dir}.load()
		if err != nil {
			t.Errorf("load during pause: %v", err)
			return
		}
		onDisk = p.Lease
	}
	c := newTestCore(t, dir, fa, nil)
	if _, err := c.Pause(context.Background(), pauseReq("op-d", 4, 5000)); err != nil {
		t.Fatalf("pause: %v", err)
	}
	if onDisk == nil || onDisk.OpID != "op-d" || onDisk.Epoch != 4 || onDisk.Phase != phasePausing {
		t.Fatalf("lease on disk when the node was paused = %+v, want op-d epoch 4 pausing", onDisk)
	}
	left := time.Until(onDisk.deadline())
	if left <= 0 || left > 5*time.Second {
		t.Fatalf("persisted deadline is %s away, want within (0, 5s]", left)
	}
}

func TestLeaseExpiryUnpauses(t *testing.T) {
	fa := &fakeAdmin{}
	c, ft := newFakeTimeCore(t, fa, nil)
	ctx := context.Background()
	if _, err := c.Pause(ctx, pauseReq("op-e", 1, 200)); err != nil {
		t.Fatalf("pause: %v", err)
	}
	settle(t, ft, "the pause", nil) // armed for op-e's lease
	ft.Advance(199 * time.Millisecond)
	// Strict: a timer that fired early has left the clock, so this waits
	// until the switch has run expire and re-armed before looking.
	settle(t, ft, "+199ms", nil)
	if _, u := fa.counts(); u != 0 || c.snapshot(false).opID != "op-e" {
		t.Fatalf("1 ms before the lease runs out: %d unpauses, op %q", u, c.snapshot(false).opID)
	}
	advanceUntil(t, ft, time.Millisecond, 50*time.Millisecond, "the dead-man switch to unpause and retire the lease", func() bool {
		_, u := fa.counts()
		return u == 1 && c.snapshot(false).opID == ""
	})
	s := c.snapshot(true)
	if s.leasesExpired != 1 || s.lastExpiredOp != "op-e" {
		t.Fatalf("leases expired %d last %q, want 1 op-e", s.leasesExpired, s.lastExpiredOp)
	}
	if len(s.events) == 0 || s.events[len(s.events)-1].GetKind() != EventLeaseExpired ||
		!strings.Contains(s.events[len(s.events)-1].GetMessage(), "lease expired for op op-e") {
		t.Fatalf("events %v, want a lease_expired event for op-e", s.events)
	}
	if _, err := c.RenewLease(ctx, &pb.RenewLeaseRequest{OpId: "op-e", Epoch: 1, LeaseMs: 1000}); !errors.Is(err, ErrLeaseExpired) {
		t.Fatalf("renew after expiry: %v, want ErrLeaseExpired", err)
	}
	un, err := c.Unpause(ctx, &pb.UnpauseRequest{OpId: "op-e", Epoch: 1})
	if err != nil || !un.GetLeaseExpired() || un.GetOutcome() != pb.NodeOutcome_NODE_OUTCOME_UNPAUSED {
		t.Fatalf("unpause after expiry = %v, %v; want UNPAUSED with lease_expired", un, err)
	}
}

func TestRenewKeepsLeaseAlive(t *testing.T) {
	fa := &fakeAdmin{}
	c, ft := newFakeTimeCore(t, fa, nil)
	ctx := context.Background()
	if _, err := c.Pause(ctx, pauseReq("op-r", 1, 300)); err != nil {
		t.Fatalf("pause: %v", err)
	}
	// Renew every 250 ms of fake time, well past the first deadline: the
	// node stays paused however slowly this machine runs the switch.
	for i := 0; i < 8; i++ {
		ft.Advance(250 * time.Millisecond)
		at := time.Duration(i+1) * 250 * time.Millisecond
		settle(t, ft, fmt.Sprintf("+%v", at), nil)
		if _, u := fa.counts(); u != 0 {
			t.Fatalf("at +%v, before renew %d: the lease expired (node Unpause called %d times)", at, i, u)
		}
		if _, err := c.RenewLease(ctx, &pb.RenewLeaseRequest{OpId: "op-r", Epoch: 2, LeaseMs: 300}); err != nil {
			t.Fatalf("renew %d at +%v: %v", i, at, err)
		}
	}
	if _, u := fa.counts(); u != 0 {
		t.Fatalf("a renewed lease expired: node Unpause called %d times", u)
	}
	if got := c.snapshot(false); got.opEpoch != 2 || got.maxEpoch != 2 {
		t.Fatalf("op epoch %d max epoch %d after renew at epoch 2", got.opEpoch, got.maxEpoch)
	}
	advanceUntil(t, ft, 10*time.Millisecond, 400*time.Millisecond, "the lease to expire once renewals stop", func() bool { _, u := fa.counts(); return u == 1 })
}

func TestExpiryRetriesUntilNodeAnswers(t *testing.T) {
	down := fmt.Errorf("node: %w", scalaradmin.ErrUnreachable)
	fa := &fakeAdmin{unpauseErrs: []error{down, down}}
	c, ft := newFakeTimeCore(t, fa, nil)
	if _, err := c.Pause(context.Background(), pauseReq("op-x", 1, 100)); err != nil {
		t.Fatalf("pause: %v", err)
	}
	// Expiry at 100 ms, then a retry every ExpiryRetry (50 ms).
	advanceUntil(t, ft, 10*time.Millisecond, time.Second, "the third unpause attempt to succeed", func() bool { return c.snapshot(false).opID == "" })
	if _, u := fa.counts(); u != 3 {
		t.Fatalf("node Unpause calls %d, want 3", u)
	}
	var kinds []string
	for _, e := range c.snapshot(true).events {
		kinds = append(kinds, e.GetKind())
	}
	if strings.Join(kinds, ",") != EventExpiryFailed+","+EventLeaseExpired {
		t.Fatalf("events %v, want one expiry failure then the expiry", kinds)
	}
}

func TestRestartRecoversLease(t *testing.T) {
	tests := []struct {
		name      string
		leaseMS   int64
		wantFires bool // within the test's short wait
	}{
		{"expired while down", 100, true},
		{"still running", 60_000, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			first := newTestCore(t, dir, &fakeAdmin{}, nil)
			ack, err := first.Pause(context.Background(), pauseReq("op-k", 5, tt.leaseMS))
			if err != nil {
				t.Fatalf("pause: %v", err)
			}
			first.kill()
			fa := &fakeAdmin{gate: scalaradmin.Paused}
			second := newTestCore(t, dir, fa, nil)
			runTimer(t, second)
			if tt.wantFires {
				waitFor(t, 5*time.Second, "the restarted agent to unpause", func() bool { _, u := fa.counts(); return u == 1 })
				return
			}
			s := second.snapshot(true)
			if s.opID != "op-k" || s.remaining < 50*time.Second {
				t.Fatalf("recovered op %q remaining %s, want op-k with ~60s", s.opID, s.remaining)
			}
			again, err := second.Pause(context.Background(), pauseReq("op-k", 5, tt.leaseMS))
			if err != nil || !proto.Equal(again.GetAckedAt(), ack.GetAckedAt()) {
				t.Fatalf("repeated pause after restart = %v, %v; want the original ack", again, err)
			}
			if p, u := fa.counts(); p != 0 || u != 0 {
				t.Fatalf("restart touched the node: pauses %d unpauses %d", p, u)
			}
		})
	}
}

func TestNodeRestartDuringOpIsReported(t *testing.T) {
	fa := &fakeAdmin{}
	c := newTestCore(t, t.TempDir(), fa, nil)
	ctx := context.Background()
	if _, err := c.Pause(ctx, pauseReq("op-i", 1, 10_000)); err != nil {
		t.Fatalf("pause: %v", err)
	}
	c.checkNode(ctx)
	if got := c.snapshot(false).interruptedOp; got != "" {
		t.Fatalf("interrupted %q while the node is paused", got)
	}
	fa.setGate(scalaradmin.Unpaused) // the node restarted
	c.checkNode(ctx)
	if got := c.snapshot(false).interruptedOp; got != "op-i" {
		t.Fatalf("interrupted op %q, want op-i", got)
	}
	un, err := c.Unpause(ctx, &pb.UnpauseRequest{OpId: "op-i", Epoch: 1})
	if err != nil || !un.GetInterrupted() {
		t.Fatalf("unpause = %v, %v; want interrupted", un, err)
	}
}

func TestV1NodeLostDuringOpIsReported(t *testing.T) {
	fa := &fakeAdmin{checkErr: fmt.Errorf("node: %w", scalaradmin.ErrUnimplemented)}
	c := newTestCore(t, t.TempDir(), fa, nil)
	ctx := context.Background()
	c.checkNode(ctx)
	if _, err := c.Pause(ctx, pauseReq("op-v1", 1, 10_000)); err != nil {
		t.Fatalf("pause: %v", err)
	}
	c.checkNode(ctx)
	if s := c.snapshot(false); s.interruptedOp != "" || !s.node.reachable || s.node.gate != scalaradmin.Unknown {
		t.Fatalf("v1 node state %+v interrupted %q", s.node, s.interruptedOp)
	}
	fa.mu.Lock()
	fa.checkErr = fmt.Errorf("node: %w", scalaradmin.ErrUnreachable)
	fa.mu.Unlock()
	c.checkNode(ctx)
	fa.mu.Lock()
	fa.checkErr = fmt.Errorf("node: %w", scalaradmin.ErrUnimplemented)
	fa.mu.Unlock()
	c.checkNode(ctx)
	if got := c.snapshot(false).interruptedOp; got != "op-v1" {
		t.Fatalf("interrupted %q, want op-v1 after the v1 node was lost and came back", got)
	}
}

func TestShutdownReleasesLease(t *testing.T) {
	dir := t.TempDir()
	fa := &fakeAdmin{}
	c := newTestCore(t, dir, fa, nil)
	ctx := context.Background()
	if _, err := c.Pause(ctx, pauseReq("op-s", 1, 10_000)); err != nil {
		t.Fatalf("pause: %v", err)
	}
	if err := c.shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if _, u := fa.counts(); u != 1 {
		t.Fatalf("node Unpause calls %d, want 1", u)
	}
	p, err := store{dir: dir}.load()
	if err != nil || p.Lease != nil {
		t.Fatalf("state after shutdown: lease %+v err %v, want none", p.Lease, err)
	}
	if _, err := c.Pause(ctx, pauseReq("op-t", 1, 10_000)); !errors.Is(err, ErrStopping) {
		t.Fatalf("pause while stopping: %v, want ErrStopping", err)
	}
}

func TestLeaseRunsOutDuringSlowPause(t *testing.T) {
	fa := &fakeAdmin{pauseBlock: make(chan struct{})} // never drains
	c := newTestCore(t, t.TempDir(), fa, nil)
	runTimer(t, c)
	resp, err := c.Pause(context.Background(), pauseReq("op-slow", 1, 200))
	if err != nil {
		t.Fatalf("pause: %v", err)
	}
	if resp.GetOutcome() != pb.NodeOutcome_NODE_OUTCOME_UNREACHABLE {
		t.Fatalf("outcome %v, want UNREACHABLE when the lease runs out mid-drain", resp.GetOutcome())
	}
	waitFor(t, 5*time.Second, "the dead-man switch to unpause", func() bool { _, u := fa.counts(); return u == 1 })
}

func TestCorruptStateRefusesToStart(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, stateFile), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := newCore(coreConfig{Node: "n1", MaxLease: time.Minute, CallTimeout: time.Second}, &fakeAdmin{}, fixedClock{}, store{dir: dir}, zap.NewNop(), coreHooks{})
	if err := c.recoverState(); !errors.Is(err, ErrStateCorrupt) {
		t.Fatalf("recover from a corrupt file: %v, want ErrStateCorrupt", err)
	}
}

// BenchmarkPauseUnpause is the agent's own cost of one op (two durable
// state writes with fsync, plus the per-op bookkeeping), with an instant node.
func BenchmarkPauseUnpause(b *testing.B) {
	c := newCore(coreConfig{Node: "n1", MaxLease: time.Minute, CallTimeout: time.Second}, &fakeAdmin{}, fixedClock{},
		store{dir: b.TempDir()}, zap.NewNop(), coreHooks{})
	ctx := context.Background()
	for i := 0; b.Loop(); i++ {
		op := fmt.Sprintf("op-%d", i)
		if _, err := c.Pause(ctx, pauseReq(op, 1, 10_000)); err != nil {
			b.Fatal(err)
		}
		if _, err := c.Unpause(ctx, &pb.UnpauseRequest{OpId: op, Epoch: 1}); err != nil {
			b.Fatal(err)
		}
	}
}
