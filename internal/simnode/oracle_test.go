package simnode

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/stillpoint-dev/stillpoint/proto/rpc"
)

// TestPausedIntervals: the oracle opens an interval at the exact drained
// instant (after the last in-flight transaction finished) and closes it at
// the unpause; a pause that never drains records nothing.
func TestPausedIntervals(t *testing.T) {
	n := startNode(t, nil)
	c := dial(t, n)
	unpause := func() (before, after time.Time) {
		before = time.Now()
		if _, err := c.Unpause(callCtx(t), &emptypb.Empty{}); err != nil {
			t.Fatal(err)
		}
		return before, time.Now()
	}

	// 1. Nothing in flight: the interval starts inside the Pause call.
	p0 := time.Now()
	if _, err := c.Pause(callCtx(t), &rpc.PauseRequest{WaitOutstanding: true, MaxPauseWaitTime: ms(5000)}); err != nil {
		t.Fatal(err)
	}
	p1 := time.Now()
	ivs := n.PausedIntervals()
	if len(ivs) != 1 || !ivs[0].End.IsZero() {
		t.Fatalf("after first pause: intervals %+v, want one open", ivs)
	}
	if ivs[0].Start.Before(p0) || ivs[0].Start.After(p1) {
		t.Fatalf("interval start %v outside the Pause call [%v, %v]", ivs[0].Start, p0, p1)
	}
	if since, ok := n.DrainedSince(); !ok || !since.Equal(ivs[0].Start) {
		t.Fatalf("DrainedSince = %v, %v; want %v, true", since, ok, ivs[0].Start)
	}
	u0, u1 := unpause()
	if _, ok := n.DrainedSince(); ok {
		t.Fatal("DrainedSince reports an interval after unpause")
	}
	ivs = n.PausedIntervals()
	if ivs[0].End.Before(u0) || ivs[0].End.After(u1) {
		t.Fatalf("interval end %v outside the Unpause call [%v, %v]", ivs[0].End, u0, u1)
	}

	// 2. A no-wait pause with work in flight: the interval starts when the
	// last transaction finishes, not at the pause.
	release, err := n.Hold(callCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Pause(callCtx(t), &rpc.PauseRequest{}); err != nil {
		t.Fatal(err)
	}
	if got := len(n.PausedIntervals()); got != 1 {
		t.Fatalf("paused with work in flight: %d intervals, want still 1", got)
	}
	released := time.Now()
	release()
	ivs = n.PausedIntervals()
	if len(ivs) != 2 || ivs[1].Start.Before(released) || !ivs[1].End.IsZero() {
		t.Fatalf("after release at %v: intervals %+v, want a second open one starting after it", released, ivs)
	}
	unpause()

	// 3. A drain that times out never was paused-and-drained.
	release, err = n.Hold(callCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Pause(callCtx(t), &rpc.PauseRequest{WaitOutstanding: true, MaxPauseWaitTime: ms(20)}); err == nil {
		t.Fatal("pause with a held transaction succeeded")
	}
	release()
	if got := len(n.PausedIntervals()); got != 2 {
		t.Fatalf("after a timed-out drain: %d intervals, want 2", got)
	}
	for i, iv := range n.PausedIntervals() {
		if iv.End.IsZero() || !iv.End.After(iv.Start) {
			t.Fatalf("interval %d = %+v, want closed and positive", i, iv)
		}
	}
}
