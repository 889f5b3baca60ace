package coordinator_test

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/stillpoint-dev/stillpoint/coordinator/fsm"
	"github.com/stillpoint-dev/stillpoint/internal/devcluster"
	"github.com/stillpoint-dev/stillpoint/internal/testcluster"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

var (
	restartSeed = flag.Uint64("restart.seed", 0, "seed of TestSimnodeRestartAnywhereInHoldNeverCompletesUnsound (0: from the clock)")
	// 8 runs (4 anywhere in the hold, 4 in its last 300 ms) keep make test
	// on 2 cores in budget (20 runs took 80 s of the package's 225 s); each
	// run draws a new seed, so CI sweeps the hold over time. A sweep:
	// -restart.runs=200.
	restartRuns = flag.Int("restart.runs", 20, "runs of TestSimnodeRestartAnywhereInHoldNeverCompletesUnsound (issue 10 asks for 20: about 40 s on 2 cores)")
)

// TestSimnodeRestartAnywhereInHoldNeverCompletesUnsound restarts one
// simnode at a random point of a 2 s hold (every other run inside its last
// 300 ms), with the agents' production CheckPaused poll of 1 s, so the
// hold's membership watch often cannot see the restart: the agent's
// Unpause (stamp, confirm paused, unpause) must report it, and the op must
// never end COMPLETED with a window the simnode oracle rejects.
func TestSimnodeRestartAnywhereInHoldNeverCompletesUnsound(t *testing.T) {
	seed := *restartSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (replay: -restart.seed=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	c := startDev(t, func(cfg *devcluster.Config) {
		cfg.AgentCheckPausedInterval = time.Second
	})
	const hold = 2 * time.Second
	var completed, invalid, retried int
	for run := 0; run < *restartRuns; run++ {
		victim := c.Nodes()[rng.IntN(len(c.Nodes()))].Spec.Name
		at := time.Duration(rng.Int64N(int64(hold)))
		if run%2 == 1 { // the last 300 ms, where no poll can see it in time
			at = hold - 300*time.Millisecond + time.Duration(rng.Int64N(int64(300*time.Millisecond)))
		}
		op := restartDuringHold(t, c, victim, hold, at)
		if op == nil { // refused or aborted before the hold (clock wobble, a leader change on a loaded box): not this test's subject
			if retried++; retried > 10 {
				t.Fatalf("%d pauses refused or aborted before holding", retried)
			}
			run--
			continue
		}
		switch op.GetState() {
		case pb.OperationState_OPERATION_STATE_COMPLETED:
			completed++
			checkOracle(t, c, op)
		case pb.OperationState_OPERATION_STATE_INVALID:
			invalid++
			if !strings.Contains(op.GetReason(), victim) {
				t.Errorf("run %d: op %s invalid (%s) without naming the restarted %s", run, op.GetOpId(), op.GetReason(), victim)
			}
		default:
			t.Errorf("run %d: op %s ended %s (%s), want completed (oracle holding) or invalid", run, op.GetOpId(), op.GetState(), op.GetReason())
		}
		if t.Failed() {
			t.Fatalf("run %d: %s restarted %v into the hold; seed %d", run, victim, at, seed)
		}
		// Every node released and every lease retired (an Unpause lost to
		// the restart leaves its lease to run out) before the next op.
		for _, n := range c.Nodes() {
			testcluster.WaitFor(t, 10*time.Second, func() (bool, string) {
				if n.Sim.Paused() {
					return false, n.Spec.Name + " still paused after the op"
				}
				if held := n.Agent.State().GetOpId(); held != "" {
					return false, n.Spec.Name + "'s agent still holds op " + held
				}
				return true, ""
			})
		}
	}
	t.Logf("%d runs: %d completed (oracle held), %d invalid; %d pauses refused or aborted before holding and re-run", *restartRuns, completed, invalid, retried)
}

// restartDuringHold starts a pause holding for hold, restarts victim's
// simnode at (about) at into the hold, and returns the ended op, or nil
// when the pause was refused (clock wobble) or the op ended before it held.
func restartDuringHold(t *testing.T, c *devcluster.Cluster, victim string, hold, at time.Duration) *pb.Operation {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := client(t, c, c.Leader())
	op, refused := admitPause(t, cl, &pb.StartPauseRequest{Cluster: "ledger", HoldMs: hold.Milliseconds(), RequestedBy: "test",
		RequestId: fmt.Sprintf("test-%d", time.Now().UnixNano())})
	if refused != nil {
		t.Logf("pause refused (%v); again once every agent is admissible", refused)
		waitAdmissible(t, c)
		return nil
	}
	opID := op.GetOpId()
	stream, err := cl.WatchOperation(ctx, &pb.WatchOperationRequest{OpId: opID})
	if err != nil {
		t.Fatal(err)
	}
	for {
		u, err := stream.Recv()
		if err != nil {
			t.Fatalf("watch %s: %v", opID, err)
		}
		if s := u.GetOperation().GetState(); s == pb.OperationState_OPERATION_STATE_HOLDING {
			break
		} else if fsm.IsTerminal(s) {
			t.Logf("op %s ended %s (%s) before holding", opID, s, u.GetOperation().GetReason())
			return nil
		}
	}
	restart := time.NewTimer(at)
	select {
	case <-restart.C:
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	if err := c.Node(victim).Sim.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("op %s: restarted %s %v into the hold", opID, victim, at)
	return watchEnd(t, c, opID, 30*time.Second)
}
