package simnode

import (
	"context"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/stillpoint-dev/stillpoint/internal/pgtest"
	"github.com/stillpoint-dev/stillpoint/proto/rpc"
)

// TestPointInTimeRestoreOfStores: with the workload writing to two
// PostgreSQL databases, a restore of both to the middle of the node's
// paused-and-drained interval satisfies the invariant with exactly the
// transfers committed before the pause; a restore to an instant inside one
// transfer's gap breaks it.
func TestPointInTimeRestoreOfStores(t *testing.T) {
	src := pgtest.Start(t, pgtest.Options{WALArchive: true})
	dsnA, dsnB := src.CreateDatabase("sim_a"), src.CreateDatabase("sim_b")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	a, err := OpenPostgresStore(ctx, "A", dsnA)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = a.Close() }()
	b, err := OpenPostgresStore(ctx, "B", dsnB)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = b.Close() }()
	backup := src.BaseBackup()

	n := startNode(t, func(c *Config) {
		c.StoreA, c.StoreB = a, b
		c.Workload.Enabled = true
		c.Workload.Workers = 3
		c.Workload.Rate = 200
		c.Workload.Gap = 3 * time.Millisecond
	})
	c := dial(t, n)
	waitFor(t, 60*time.Second, "30 transfers", func() bool { return n.Stats().Committed >= 30 })
	if _, err := c.Pause(ctx, &rpc.PauseRequest{WaitOutstanding: true, MaxPauseWaitTime: ms(10000)}); err != nil {
		t.Fatal(err)
	}
	atPause, err := VerifyPostgres(ctx, dsnA, dsnB)
	if err != nil || atPause.Err() != nil {
		t.Fatalf("while paused: %v %v", err, atPause.Err())
	}
	held := time.Now()
	waitFor(t, 10*time.Second, "a 200 ms hold", func() bool { return time.Since(held) > 200*time.Millisecond })
	if _, err := c.Unpause(ctx, &emptypb.Empty{}); err != nil {
		t.Fatal(err)
	}
	after := n.Stats().Committed
	waitFor(t, 60*time.Second, "30 more transfers", func() bool { return n.Stats().Committed >= after+30 })
	n.Stop()
	src.ArchiveNow(ctx)

	ivs := n.PausedIntervals()
	if len(ivs) != 1 || ivs[0].End.IsZero() {
		t.Fatalf("oracle intervals %+v, want one closed", ivs)
	}
	mid := ivs[0].Start.Add(ivs[0].End.Sub(ivs[0].Start) / 2)

	// An instant inside one transfer's gap, after the pause: its debit is
	// committed, its credit not yet (the credit's timestamp is taken after
	// the debit's commit returned and before the credit's commit).
	stB, err := b.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var cut Half
	for _, h := range stB.Halves {
		if h.At.After(ivs[0].End) && (cut.TxnID == "" || h.At.Before(cut.At)) {
			cut = h
		}
	}
	if cut.TxnID == "" {
		t.Fatal("no transfer after the pause")
	}

	cases := []struct {
		name       string
		target     time.Time
		consistent bool
	}{
		{name: "mid of the paused-and-drained interval", target: mid, consistent: true},
		{name: "inside a transfer's gap", target: cut.At, consistent: false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dst := pgtest.Restore(t, pgtest.RestoreOptions{BaseBackup: backup, ArchiveDir: src.ArchiveDir(), TargetTime: tc.target})
			r, err := VerifyPostgres(ctx, dst.DSN("sim_a"), dst.DSN("sim_b"))
			if err != nil {
				t.Fatal(err)
			}
			if tc.consistent {
				if err := r.Err(); err != nil {
					t.Fatalf("restored to %v: %v", tc.target, err)
				}
				if r.Paired != atPause.Paired {
					t.Fatalf("restored %d transfers, %d were committed at the pause", r.Paired, atPause.Paired)
				}
				return
			}
			if r.Consistent() || r.MissingCredit == 0 {
				t.Fatalf("restored to %v inside txn %s's gap: report %+v, want a debit without credit", tc.target, cut.TxnID, r)
			}
		})
	}
}
