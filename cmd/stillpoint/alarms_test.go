package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/stillpoint-dev/stillpoint/coordinator"
	"github.com/stillpoint-dev/stillpoint/coordinator/fsm"
	"github.com/stillpoint-dev/stillpoint/internal/clock"
	"github.com/stillpoint-dev/stillpoint/internal/gossip"
	"github.com/stillpoint-dev/stillpoint/internal/testcluster"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// syncBuffer is a bytes.Buffer safe to read while a command writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestAlarmsCommands: `alarms watch -o json` streams the initial set, the
// raise and the clear of an error-bound alarm; `alarms list` shows it with
// its node and figure against the limit, in a table and as JSON.
func TestAlarmsCommands(t *testing.T) {
	var l1 *testcluster.StandIn
	c := testcluster.New(t, 3, testcluster.WithExtra(func(t testing.TB, c *testcluster.Cluster) {
		l1 = c.AddStandIn(t, "ledger-1", agentMeta("ledger", 0, 2*time.Millisecond, clock.Synchronized, pb.PausedState_PAUSED_STATE_UNPAUSED, true))
		c.AddStandIn(t, "ledger-2", agentMeta("ledger", time.Millisecond, 2*time.Millisecond, clock.Synchronized, pb.PausedState_PAUSED_STATE_UNPAUSED, true))
	}))
	c.WaitForLeader(t)
	cfg := fsm.DefaultRuntimeConfig()
	cfg.AlarmForNs, cfg.AlarmClearForNs, cfg.AlarmEvalIntervalNs = int64(200*time.Millisecond), int64(300*time.Millisecond), int64(100*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.Client(0).UpdateConfig(ctx, &pb.UpdateConfigRequest{Config: cfg}); err != nil {
		t.Fatal(err)
	}
	addr := "--addr=" + c.Server(1).GRPCAddr()

	watchOut := &syncBuffer{}
	wctx, stopWatch := context.WithCancel(ctx)
	watchDone := make(chan error, 1)
	go func() {
		root := newRootCmd()
		root.SetOut(watchOut)
		root.SetErr(io.Discard)
		root.SetArgs([]string{"alarms", "watch", "-o", "json", addr})
		watchDone <- root.ExecuteContext(wctx)
	}()
	testcluster.WaitFor(t, testcluster.DefaultTimeout, func() (bool, string) {
		return strings.Contains(watchOut.String(), `"initial":true`), "no initial message: " + watchOut.String()
	})

	if err := l1.Set(func(m *gossip.Meta) { m.Clock.BoundNS = int64(25 * time.Millisecond) }); err != nil {
		t.Fatal(err)
	}
	id := coordinator.AlarmID(coordinator.AlarmErrorBoundCritical, "ledger", "ledger-1")
	testcluster.WaitFor(t, testcluster.DefaultTimeout, func() (bool, string) {
		return strings.Contains(watchOut.String(), id), "watch did not show the raise:\n" + watchOut.String()
	})

	out, err := runCoordCLI(t, "alarms", "list", addr)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"critical", "error_bound_critical", "ledger-1", "> 10ms", "error bound 25"} {
		if !strings.Contains(out, want) {
			t.Errorf("alarms list lacks %q:\n%s", want, out)
		}
	}
	out, err = runCoordCLI(t, "alarms", "list", "-o", "json", addr)
	if err != nil {
		t.Fatal(err)
	}
	var list pb.ListAlarmsResponse
	if err := protojson.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("alarms list -o json: %v\n%s", err, out)
	}
	found := false
	for _, a := range list.GetAlarms() {
		if a.GetId() == id {
			found = a.GetNode() == "ledger-1" && a.GetFigure() >= 25e6 && a.GetLimit() == 10e6 && a.GetActive()
		}
	}
	if !found {
		t.Fatalf("alarms list -o json has no active %s with node and figure:\n%s", id, out)
	}

	if err := l1.Set(func(m *gossip.Meta) { m.Clock.BoundNS = int64(2 * time.Millisecond) }); err != nil {
		t.Fatal(err)
	}
	testcluster.WaitFor(t, testcluster.DefaultTimeout, func() (bool, string) {
		for _, line := range strings.Split(watchOut.String(), "\n") {
			if strings.Contains(line, id) && strings.Contains(line, `"cleared_at"`) {
				return true, ""
			}
		}
		return false, "watch did not show the clear:\n" + watchOut.String()
	})
	stopWatch()
	if err := <-watchDone; err != nil {
		t.Fatalf("alarms watch: %v", err)
	}
	// The warning raised beside the critical alarm clears on its own
	// hysteresis, possibly a little after the critical one.
	testcluster.WaitFor(t, testcluster.DefaultTimeout, func() (bool, string) {
		out, err := runCoordCLI(t, "alarms", "list", addr)
		return err == nil && strings.Contains(out, "(no alarms)"), fmt.Sprintf("alarms list after the clear: %v\n%s", err, out)
	})
	out, err = runCoordCLI(t, "alarms", "list", "--all", addr)
	if err != nil || !strings.Contains(out, "cleared 20") {
		t.Fatalf("alarms list --all: %v\n%s", err, out)
	}
}
