package agent

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stillpoint-dev/stillpoint/internal/scalaradmin"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// endedResult is the remembered result of op, read without touching the node.
func endedResult(t *testing.T, c *core, op string) *pb.UnpauseResponse {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	res, ok := c.findEndedLocked(op)
	if !ok {
		t.Fatalf("op %s has no remembered result", op)
	}
	return res
}

// releasePaths are the three ways a held lease is released: the
// coordinator's Unpause, the dead-man switch, and a stopping agent.
var releasePaths = []struct {
	name    string
	release func(t *testing.T, c *core, op string) *pb.UnpauseResponse
}{
	{"unpause request", func(t *testing.T, c *core, op string) *pb.UnpauseResponse {
		res, err := c.Unpause(context.Background(), &pb.UnpauseRequest{OpId: op, Epoch: 1})
		if err != nil {
			t.Fatalf("unpause: %v", err)
		}
		return res
	}},
	{"lease expiry", func(t *testing.T, c *core, op string) *pb.UnpauseResponse {
		if _, err := c.RenewLease(context.Background(), &pb.RenewLeaseRequest{OpId: op, Epoch: 1, LeaseMs: 1}); err != nil {
			t.Fatalf("shorten the lease: %v", err)
		}
		runTimer(t, c)
		waitFor(t, 5*time.Second, "the dead-man switch to release the lease", func() bool { return c.snapshot(false).opID == "" })
		res := endedResult(t, c, op)
		if !res.GetLeaseExpired() {
			t.Errorf("expiry result %v without lease_expired", res)
		}
		return res
	}},
	{"shutdown", func(t *testing.T, c *core, op string) *pb.UnpauseResponse {
		if err := c.shutdown(context.Background()); err != nil {
			t.Fatalf("shutdown: %v", err)
		}
		return endedResult(t, c, op)
	}},
}

// TestReleaseConfirmsNodePausedAfterStamp: whichever path releases the
// lease, the agent stamps the unpause time, then requires the node to
// report its gate closed, then unpauses. A node that restarted before the
// stamp (or cannot be asked) makes the result interrupted, naming the node
// and why; the node is unpaused either way. A result that is not
// interrupted never carries a stamp later than a restart.
func TestReleaseConfirmsNodePausedAfterStamp(t *testing.T) {
	unreachable := fmt.Errorf("node 127.0.0.1:1: %w", scalaradmin.ErrUnreachable)
	scenarios := []struct {
		name        string
		setup       func(fa *fakeAdmin)
		interrupted bool
		why         string
	}{
		{"node stays paused", func(*fakeAdmin) {}, false, ""},
		{"node restarts just after answering paused", func(fa *fakeAdmin) {
			var once sync.Once
			fa.onCheck = func() { once.Do(fa.restart) }
		}, false, ""},
		{"node restarted before the unpause", func(fa *fakeAdmin) { fa.restart() }, true, "restarted"},
		{"node does not answer CheckPaused", func(fa *fakeAdmin) { fa.setCheckErr(unreachable) }, true, "could not confirm"},
	}
	for _, p := range releasePaths {
		for _, sc := range scenarios {
			t.Run(p.name+"/"+sc.name, func(t *testing.T) {
				fa := &fakeAdmin{}
				c := newTestCore(t, t.TempDir(), fa, nil)
				ack, err := c.Pause(context.Background(), pauseReq("op-u", 1, 10_000))
				if err != nil || ack.GetOutcome() != pb.NodeOutcome_NODE_OUTCOME_PAUSED {
					t.Fatalf("pause = %v, %v", ack, err)
				}
				sc.setup(fa)
				res := p.release(t, c, "op-u")
				if _, u := fa.counts(); u != 1 {
					t.Errorf("node Unpause calls %d, want 1 (the node is released either way)", u)
				}
				if res.GetOutcome() != pb.NodeOutcome_NODE_OUTCOME_UNPAUSED || res.GetSentAt() == nil {
					t.Fatalf("result %v, want UNPAUSED with sent_at", res)
				}
				if res.GetInterrupted() != sc.interrupted {
					t.Fatalf("interrupted = %v, want %v (%s)", res.GetInterrupted(), sc.interrupted, res.GetMessage())
				}
				if sc.interrupted {
					for _, m := range []string{"n1", "op-u", sc.why} {
						if !strings.Contains(res.GetMessage(), m) {
							t.Errorf("message %q does not mention %q", res.GetMessage(), m)
						}
					}
				}
				sent := res.GetSentAt().GetLocalTime().AsTime()
				if r := fa.restarted(); !res.GetInterrupted() && !r.IsZero() && sent.After(r) {
					t.Fatalf("not interrupted, yet the unpause stamp %s is %v after the node restarted at %s: the window would end after the gate opened",
						sent.Format(time.RFC3339Nano), sent.Sub(r), r.Format(time.RFC3339Nano))
				}
			})
		}
	}
}

// TestReleaseOfV1NodeKeepsLostDuringOpRule: a v1 node cannot report its
// gate, so the release neither waits for nor blames CheckPaused; a v1 node
// that was unreachable during the op is reported interrupted.
func TestReleaseOfV1NodeKeepsLostDuringOpRule(t *testing.T) {
	v1 := fmt.Errorf("node: %w", scalaradmin.ErrUnimplemented)
	for _, lost := range []bool{false, true} {
		t.Run(fmt.Sprintf("lost=%v", lost), func(t *testing.T) {
			fa := &fakeAdmin{checkErr: v1}
			c := newTestCore(t, t.TempDir(), fa, nil)
			ctx := context.Background()
			c.checkNode(ctx)
			if _, err := c.Pause(ctx, pauseReq("op-v1", 1, 10_000)); err != nil {
				t.Fatalf("pause: %v", err)
			}
			if lost {
				fa.setCheckErr(fmt.Errorf("node: %w", scalaradmin.ErrUnreachable))
				c.checkNode(ctx)
				fa.setCheckErr(v1)
			}
			res, err := c.Unpause(ctx, &pb.UnpauseRequest{OpId: "op-v1", Epoch: 1})
			if err != nil || res.GetOutcome() != pb.NodeOutcome_NODE_OUTCOME_UNPAUSED {
				t.Fatalf("unpause = %v, %v", res, err)
			}
			if res.GetInterrupted() != lost {
				t.Fatalf("interrupted = %v, want %v (%s)", res.GetInterrupted(), lost, res.GetMessage())
			}
		})
	}
}
