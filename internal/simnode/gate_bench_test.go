package simnode

import (
	"context"
	"testing"
	"time"
)

// BenchmarkTransact measures the gate's cost per transaction (empty body).
func BenchmarkTransact(b *testing.B) {
	n, err := New(func() Config { c := DefaultConfig(); c.Listen = "127.0.0.1:0"; return c }())
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	body := func(context.Context) error { return nil }
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := n.Transact(ctx, body); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkPauseUnpause measures a drain with nothing in flight and the
// reopening, without the network.
func BenchmarkPauseUnpause(b *testing.B) {
	g := newGate(Ledger, PauseWaitTurn, false, 0, nil)
	for b.Loop() {
		if err := g.pause(true, time.Second, nil); err != nil {
			b.Fatal(err)
		}
		g.unpause()
	}
}
