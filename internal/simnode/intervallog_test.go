package simnode

import (
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/stillpoint-dev/stillpoint/proto/rpc"
)

// TestIntervalLog: every oracle interval is logged when it starts and when
// it ends (an Unpause or a restart), with the same Unix ns instants as
// PausedIntervals, so a fault suite outside the process can rebuild them
// from the logs.
func TestIntervalLog(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	drained := make(chan time.Time, 4)
	n := startNode(t, func(c *Config) {
		c.Logger = zap.New(core)
		c.OnPausedDrained = func(at time.Time) { drained <- at }
	})
	c := dial(t, n)
	for i, end := range []func() error{
		func() error { _, err := c.Unpause(callCtx(t), &emptypb.Empty{}); return err },
		func() error { return n.Restart(callCtx(t)) },
	} {
		if _, err := c.Pause(callCtx(t), &rpc.PauseRequest{WaitOutstanding: true, MaxPauseWaitTime: ms(5000)}); err != nil {
			t.Fatalf("pause %d: %v", i, err)
		}
		select {
		case <-drained: // the caller's hook still runs
		case <-time.After(10 * time.Second):
			t.Fatalf("pause %d: OnPausedDrained not called", i)
		}
		if err := end(); err != nil {
			t.Fatalf("end %d: %v", i, err)
		}
	}
	ivs := n.PausedIntervals()
	if len(ivs) != 2 {
		t.Fatalf("PausedIntervals: %d intervals, want 2", len(ivs))
	}
	starts := logs.FilterMessage("paused and drained").All()
	ends := logs.FilterMessage("paused interval ended").All()
	if len(starts) != 2 || len(ends) != 2 {
		t.Fatalf("logged %d starts and %d ends, want 2 and 2", len(starts), len(ends))
	}
	for i, iv := range ivs {
		if got := starts[i].ContextMap()["drained_unix_ns"]; got != iv.Start.UnixNano() {
			t.Errorf("interval %d: drained_unix_ns %v, want %d", i, got, iv.Start.UnixNano())
		}
		m := ends[i].ContextMap()
		if m["start_unix_ns"] != iv.Start.UnixNano() || m["end_unix_ns"] != iv.End.UnixNano() {
			t.Errorf("interval %d: logged %v..%v, want %d..%d", i, m["start_unix_ns"], m["end_unix_ns"],
				iv.Start.UnixNano(), iv.End.UnixNano())
		}
		if m["node_id"] != "sim-test" {
			t.Errorf("interval %d: node_id %v, want sim-test", i, m["node_id"])
		}
	}
}
