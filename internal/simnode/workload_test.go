package simnode

import (
	"context"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/stillpoint-dev/stillpoint/proto/rpc"
)

// TestInvariantAtPausedAndDrained runs the transfer workload and pauses the
// node repeatedly. At the exact instant the node reports paused-and-drained
// (and again after the Pause ack) a snapshot of both stores conserves the
// total with every transfer whole. The negative control: snapshots taken
// mid-load without a pause catch a transfer cut in half.
func TestInvariantAtPausedAndDrained(t *testing.T) {
	for _, mode := range []Mode{Ledger, ScalarDB} {
		t.Run(mode.String(), func(t *testing.T) {
			a, b := NewMemoryStores()
			var mu sync.Mutex
			var atDrained []Report
			n := startNode(t, func(c *Config) {
				c.Mode = mode
				c.StoreA, c.StoreB = a, b
				c.Workload.Enabled = true
				c.Workload.Workers = 4
				c.Workload.Rate = 400
				c.Workload.Gap = 8 * time.Millisecond // workers are mid-transfer most of the time
				c.OnPausedDrained = func(time.Time) {
					sa, sb, err := SnapshotMemory(a, b)
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					atDrained = append(atDrained, Check(sa, sb))
					mu.Unlock()
				}
			})
			c := dial(t, n)

			// Negative control first, while nothing is paused.
			broken := false
			deadline := time.Now().Add(15 * time.Second)
			for !broken && time.Now().Before(deadline) {
				sa, sb, err := SnapshotMemory(a, b)
				if err != nil {
					t.Fatal(err)
				}
				r := Check(sa, sb)
				if !r.Consistent() {
					broken = true
					if r.MissingCredit == 0 || r.ExpectedTotal == r.ActualTotal {
						t.Fatalf("mid-load snapshot broken in an unexpected way: %+v", r)
					}
				}
				time.Sleep(time.Millisecond)
			}
			if !broken {
				t.Fatal("negative control: no mid-load snapshot in 15s caught a transfer in its gap")
			}

			const rounds = 8
			for i := range rounds {
				before := n.Stats().Committed
				waitFor(t, 15*time.Second, "workload progress", func() bool { return n.Stats().Committed >= before+10 })
				if _, err := c.Pause(callCtx(t), &rpc.PauseRequest{WaitOutstanding: true, MaxPauseWaitTime: ms(10000)}); err != nil {
					t.Fatalf("round %d: pause: %v", i, err)
				}
				if r, err := n.Verify(callCtx(t)); err != nil || !r.Consistent() {
					t.Fatalf("round %d: after the pause ack: %v %v", i, err, r.Err())
				}
				if mode == ScalarDB {
					rejected := n.Stats().Rejected
					waitFor(t, 15*time.Second, "a transaction rejected by the paused gate", func() bool { return n.Stats().Rejected > rejected })
				}
				if _, err := c.Unpause(callCtx(t), &emptypb.Empty{}); err != nil {
					t.Fatal(err)
				}
			}
			mu.Lock()
			reports := append([]Report(nil), atDrained...)
			mu.Unlock()
			if len(reports) != rounds {
				t.Fatalf("%d paused-and-drained instants observed, want %d", len(reports), rounds)
			}
			for i, r := range reports {
				if err := r.Err(); err != nil {
					t.Errorf("paused-and-drained instant %d: %v", i, err)
				}
				if r.Paired == 0 {
					t.Errorf("paused-and-drained instant %d: no transfers yet (%+v)", i, r)
				}
			}
			if got := len(n.PausedIntervals()); got != rounds {
				t.Errorf("%d oracle intervals, want %d", got, rounds)
			}
			n.Stop()
			r, err := n.Verify(context.Background())
			if err != nil || !r.Consistent() {
				t.Fatalf("after stop: %v %v", err, r.Err())
			}
			if st := n.Stats(); st.Failed != 0 || int64(r.Paired) != st.Committed {
				t.Fatalf("stats %+v vs %d paired transfers", st, r.Paired)
			}
		})
	}
}
