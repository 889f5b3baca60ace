package simnode

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/stillpoint-dev/stillpoint/internal/pgtest"
	"github.com/stillpoint-dev/stillpoint/proto/rpc"
)

// TestPostgresStores runs the workload on two PostgreSQL databases: the
// invariant holds while paused-and-drained and after stop, VerifyPostgres
// catches a transfer cut in half, and re-initializing keeps the totals.
func TestPostgresStores(t *testing.T) {
	pg := pgtest.Start(t, pgtest.Options{})
	dsnA, dsnB := pg.CreateDatabase("sim_a"), pg.CreateDatabase("sim_b")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	open := func() (*PostgresStore, *PostgresStore) {
		a, err := OpenPostgresStore(ctx, "A", dsnA)
		if err != nil {
			t.Fatal(err)
		}
		b, err := OpenPostgresStore(ctx, "B", dsnB)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = a.Close(); _ = b.Close() })
		return a, b
	}
	a, b := open()
	n := startNode(t, func(c *Config) {
		c.StoreA, c.StoreB = a, b
		c.Workload.Enabled = true
		c.Workload.Workers = 3
		c.Workload.Rate = 300
		c.Workload.Gap = 2 * time.Millisecond
	})
	c := dial(t, n)
	waitFor(t, 60*time.Second, "40 transfers committed", func() bool { return n.Stats().Committed >= 40 })
	if _, err := c.Pause(ctx, &rpc.PauseRequest{WaitOutstanding: true, MaxPauseWaitTime: ms(10000)}); err != nil {
		t.Fatal(err)
	}
	r, err := VerifyPostgres(ctx, dsnA, dsnB)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Err(); err != nil {
		t.Fatalf("paused and drained: %v", err)
	}
	if r.Paired < 40 || r.ExpectedTotal != 2*16*InitialBalance {
		t.Fatalf("paused and drained: report %+v, want ≥40 paired and total %d", r, 2*16*InitialBalance)
	}
	if _, err := c.Unpause(ctx, &emptypb.Empty{}); err != nil {
		t.Fatal(err)
	}
	before := n.Stats().Committed
	waitFor(t, 60*time.Second, "more transfers after unpause", func() bool { return n.Stats().Committed > before+10 })
	n.Stop()
	r, err = VerifyPostgres(ctx, dsnA, dsnB)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Err(); err != nil || int64(r.Paired) != n.Stats().Committed {
		t.Fatalf("after stop: %v; paired %d, committed %d", err, r.Paired, n.Stats().Committed)
	}

	// Init again (a second run on the same databases) changes no total.
	a2, b2 := open()
	if err := a2.Init(ctx, accountNames("a", 16), InitialBalance); err != nil {
		t.Fatal(err)
	}
	if err := b2.Init(ctx, accountNames("b", 20), InitialBalance); err != nil { // 4 new accounts
		t.Fatal(err)
	}
	r2, err := VerifyPostgres(ctx, dsnA, dsnB)
	if err != nil || r2.Err() != nil || r2.ExpectedTotal != r.ExpectedTotal+4*InitialBalance {
		t.Fatalf("after re-init: %v %v, expected total %d want %d", err, r2.Err(), r2.ExpectedTotal, r.ExpectedTotal+4*InitialBalance)
	}

	// Negative control: a debit whose credit never came.
	if err := a2.Apply(ctx, Half{TxnID: "cut-1", Account: "a-0001", Amount: -7, At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	r3, err := VerifyPostgres(ctx, dsnA, dsnB)
	if err != nil {
		t.Fatal(err)
	}
	if r3.MissingCredit != 1 || r3.ActualTotal != r3.ExpectedTotal-7 || !strings.Contains(r3.Err().Error(), "cut-1") {
		t.Fatalf("cut transfer: report %+v err %v", r3, r3.Err())
	}
}

func TestPostgresDSNErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cases := []struct {
		name       string
		call       func() error
		wantSubstr []string
	}{
		{
			name:       "open malformed",
			call:       func() error { _, err := OpenPostgresStore(ctx, "A", "postgres://u@127.0.0.1:notaport/db"); return err },
			wantSubstr: []string{"store A", "malformed PostgreSQL DSN"},
		},
		{
			name:       "open empty",
			call:       func() error { _, err := OpenPostgresStore(ctx, "B", ""); return err },
			wantSubstr: []string{"store B", "empty PostgreSQL DSN"},
		},
		{
			name: "verify second malformed",
			call: func() error {
				_, err := VerifyPostgres(ctx, "postgres://127.0.0.1:1/a", "host=127.0.0.1 port=x")
				return err
			},
			wantSubstr: []string{"dsnB", "malformed"},
		},
		{
			name: "verify unreachable",
			call: func() error {
				_, err := VerifyPostgres(ctx, "postgres://postgres@127.0.0.1:1/a?connect_timeout=2", "postgres://127.0.0.1:1/b")
				return err
			},
			wantSubstr: []string{"dsnA", "127.0.0.1:1/a"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.wantSubstr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}
