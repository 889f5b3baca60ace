package coordinator_test

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stillpoint-dev/stillpoint/coordinator"
	"github.com/stillpoint-dev/stillpoint/coordinator/fsm"
	"github.com/stillpoint-dev/stillpoint/internal/devcluster"
	"github.com/stillpoint-dev/stillpoint/internal/logging/logtest"
	"github.com/stillpoint-dev/stillpoint/internal/testcluster"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// startDev starts an in-process cluster of 3 servers and 3 ledger agents
// with simnodes running the transfer workload.
func startDev(t *testing.T, edit func(*devcluster.Config)) *devcluster.Cluster {
	t.Helper()
	cfg := devcluster.DefaultConfig()
	cfg.APIAddr = "127.0.0.1:0"
	cfg.Nodes = cfg.Nodes[:3]
	cfg.NTPPoll = 500 * time.Millisecond // stale after 4 polls: 800 ms went stale on a box at load 12
	cfg.DataDir = t.TempDir()
	cfg.Logger = logtest.New(t, zap.ErrorLevel)
	// A loaded 2-core box can push loopback NTP bounds past the
	// production ε_max of 10ms; these tests are not about that limit.
	cfg.Runtime = func(rc *pb.RuntimeConfig) {
		rc.LeaseNs, rc.MaxPauseWaitNs, rc.MaxErrorBoundNs = int64(3*time.Second), int64(2*time.Second), int64(time.Second)
	}
	if edit != nil {
		edit(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := devcluster.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Stop(context.Background()) })
	return c
}

func client(t *testing.T, c *devcluster.Cluster, i int) pb.CoordinatorServiceClient {
	t.Helper()
	cl, err := c.Client(i)
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// watchEnd follows an operation until it ends, from any live server.
func watchEnd(t *testing.T, c *devcluster.Cluster, opID string, timeout time.Duration) *pb.Operation {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var last *pb.Operation
	for ctx.Err() == nil {
		cl, err := c.Client(c.Leader())
		if err != nil {
			t.Fatal(err)
		}
		stream, err := cl.WatchOperation(ctx, &pb.WatchOperationRequest{OpId: opID})
		if err == nil {
			for {
				resp, err := stream.Recv()
				if err != nil {
					break
				}
				last = resp.GetOperation()
				if fsm.IsTerminal(last.GetState()) {
					return last
				}
			}
		}
		time.Sleep(20 * time.Millisecond) // a server went away; ask another
	}
	t.Fatalf("operation %s did not end within %v; last seen %v", opID, timeout, last)
	return nil
}

// checkOracle asserts the restore window lies inside every target's true
// paused-and-drained interval, as its simnode recorded on the real clock.
func checkOracle(t *testing.T, c *devcluster.Cluster, op *pb.Operation) {
	t.Helper()
	w := op.GetWindow()
	start, end, rp := w.GetStart().AsTime(), w.GetEnd().AsTime(), w.GetRestorePoint().AsTime()
	for _, tg := range op.GetTargets() {
		n := c.Node(tg.GetNode())
		inside := false
		for _, iv := range n.Sim.PausedIntervals() {
			if !iv.Start.After(start) && !iv.End.IsZero() && !iv.End.Before(end) {
				inside = true
			}
		}
		if !inside {
			t.Errorf("op %s: window [%s, %s] (restore point %s) is not inside any paused-and-drained interval of %s: %v",
				op.GetOpId(), start, end, rp, tg.GetNode(), n.Sim.PausedIntervals())
		}
	}
}

func TestPauseCompletesWithSkewedClocksAndOracleHolds(t *testing.T) {
	c := startDev(t, func(cfg *devcluster.Config) {
		cfg.Skews = map[string]time.Duration{"ledger-1": 40 * time.Millisecond, "ledger-2": -40 * time.Millisecond}
	})
	cl := client(t, c, 1) // a follower or the leader: writes are forwarded
	cfgResp, err := cl.GetConfig(context.Background(), &pb.GetConfigRequest{})
	if err != nil {
		t.Fatal(err)
	}
	rc := cfgResp.GetConfig()
	for range 5 {
		// ±40ms skews leave 20ms of max_drift for this box's wobble: a
		// refusal or an op that does not complete under load is retried.
		op := startPause(t, c, cl, &pb.StartPauseRequest{Cluster: "ledger"}, completed)
		var maxBound int64
		for _, tg := range op.GetTargets() {
			maxBound = max(maxBound, tg.GetAckedAt().GetEstimate().GetErrorBoundNs(), tg.GetUnpauseSentAt().GetEstimate().GetErrorBoundNs())
		}
		w := op.GetWindow()
		if w.GetWidthNs() < 2*maxBound {
			t.Errorf("window width %v < 2·max ε %v", time.Duration(w.GetWidthNs()), time.Duration(2*maxBound))
		}
		mid := w.GetStart().AsTime().Add(time.Duration(w.GetWidthNs() / 2))
		if !w.GetRestorePoint().AsTime().Equal(mid) {
			t.Errorf("restore point %v is not the mid-time %v", w.GetRestorePoint().AsTime(), mid)
		}
		// The hold is exactly what the runner's formula requires for the
		// recorded ack bounds and the config (not a timed figure: under
		// load ε grows, and so does the hold).
		var maxAck int64
		for _, tg := range op.GetTargets() {
			maxAck = max(maxAck, tg.GetAckedAt().GetEstimate().GetErrorBoundNs())
		}
		if want := coordinator.MinHold(0, time.Duration(maxAck), rc); time.Duration(op.GetHoldNs()) != want {
			t.Errorf("hold %v, want %v: 2·max ack ε %v + margin %v + 2·β %v + window max(%v, 2·ε)",
				time.Duration(op.GetHoldNs()), want, time.Duration(2*maxAck), time.Duration(rc.GetMarginNs()),
				time.Duration(2*rc.GetTargetClockBoundNs()), time.Duration(rc.GetMinWindowNs()))
		}
		checkOracle(t, c, op)
		rp, err := cl.GetRestorePoint(context.Background(), &pb.GetRestorePointRequest{OpId: op.GetOpId()})
		if err != nil || !rp.GetRestorePoint().GetWindow().GetRestorePoint().AsTime().Equal(w.GetRestorePoint().AsTime()) {
			t.Fatalf("catalog entry for %s: %v %v", op.GetOpId(), rp, err)
		}
	}
	for _, n := range c.Nodes() {
		if n.Sim.Paused() {
			t.Errorf("%s still paused after the ops", n.Spec.Name)
		}
	}
}

func TestPauseRefusedWhenClockSkewExceedsMaxDrift(t *testing.T) {
	c := startDev(t, func(cfg *devcluster.Config) {
		cfg.Skews = map[string]time.Duration{"ledger-1": 500 * time.Millisecond}
	})
	// An honest node is named too when its measured offset is more than
	// max_drift/2 from the median, which on a loaded 2-core box a loopback
	// NTP reading can be (seen: +75ms, under load average ~10): then the
	// refusal is asked for again (it pauses nothing), at most 3 times.
	var msg string
	for attempt := 1; ; attempt++ {
		_, err := client(t, c, 0).StartPause(context.Background(), &pb.StartPauseRequest{Cluster: "ledger"})
		if status.Code(err) != codes.FailedPrecondition {
			t.Fatalf("err = %v, want FailedPrecondition", err)
		}
		msg = status.Convert(err).Message()
		if !strings.Contains(msg, "ledger-1: clock offset -") || !strings.Contains(msg, "> max_drift 100ms") {
			t.Fatalf("refusal %q does not name ledger-1 and its offset", msg)
		}
		if !strings.Contains(msg, "ledger-2:") && !strings.Contains(msg, "ledger-3:") {
			break
		}
		if attempt == 3 {
			t.Fatalf("refusal %q blames an honest node in 3 attempts", msg)
		}
		t.Logf("attempt %d: refusal %q names an honest node's loaded reading; asking again after the next NTP poll", attempt, msg)
		<-time.After(500 * time.Millisecond) // startDev's NTPPoll: a fresh sample, not a timing guess
	}
	for _, n := range c.Nodes() {
		if len(n.Sim.PausedIntervals()) != 0 {
			t.Errorf("%s was paused by a refused op", n.Spec.Name)
		}
	}
}

func TestSecondConcurrentPauseIsRefused(t *testing.T) {
	c := startDev(t, nil)
	cl := client(t, c, 0)
	first := startPause(t, c, cl, &pb.StartPauseRequest{Cluster: "ledger", HoldMs: 1500}, admitted)
	_, err := cl.StartPause(context.Background(), &pb.StartPauseRequest{Cluster: "ledger"})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), first.GetOpId()) {
		t.Fatalf("second pause: %v, want FailedPrecondition naming %s", err, first.GetOpId())
	}
	if op := watchEnd(t, c, first.GetOpId(), 30*time.Second); op.GetState() != pb.OperationState_OPERATION_STATE_COMPLETED {
		t.Fatalf("first op ended %s: %s", op.GetState(), op.GetReason())
	}
}

// waitState waits until the op reaches state on the leader's replica.
func waitState(t *testing.T, c *devcluster.Cluster, opID string, want pb.OperationState) {
	t.Helper()
	waitOp(t, c, opID, func(op *pb.Operation) bool { return op.GetState() == want })
}

func TestLeaderKilledMidHoldNeverLeavesNodesPaused(t *testing.T) {
	c := startDev(t, nil)
	leader := c.Leader()
	opID := startPause(t, c, client(t, c, leader), &pb.StartPauseRequest{Cluster: "ledger", HoldMs: 2000}, holding).GetOpId()
	killedAt := time.Now()
	c.KillServer(leader)
	op := watchEnd(t, c, opID, 30*time.Second)
	switch op.GetState() {
	case pb.OperationState_OPERATION_STATE_COMPLETED:
		checkOracle(t, c, op)
	case pb.OperationState_OPERATION_STATE_ABORTED, pb.OperationState_OPERATION_STATE_INVALID:
	default:
		t.Fatalf("op ended %s", op.GetState())
	}
	lease := 3 * time.Second
	for _, n := range c.Nodes() {
		testcluster.WaitFor(t, lease+5*time.Second, func() (bool, string) { return !n.Sim.Paused(), n.Spec.Name + " still paused" })
		ivs := n.Sim.PausedIntervals()
		if last := ivs[len(ivs)-1]; last.End.Sub(killedAt) > lease+time.Second {
			t.Errorf("%s stayed paused %v after the leader died (lease %v)", n.Spec.Name, last.End.Sub(killedAt), lease)
		}
	}
}

func TestAgentKilledMidHoldInvalidatesAndOthersUnpause(t *testing.T) {
	c := startDev(t, nil)
	opID := startPause(t, c, client(t, c, 0), &pb.StartPauseRequest{Cluster: "ledger", HoldMs: 1500}, holding).GetOpId()
	c.KillAgent("ledger-2")
	op := watchEnd(t, c, opID, 30*time.Second)
	if s := op.GetState(); s != pb.OperationState_OPERATION_STATE_INVALID && s != pb.OperationState_OPERATION_STATE_ABORTED {
		t.Fatalf("op ended %s (%s), want invalid or aborted", s, op.GetReason())
	}
	if !strings.Contains(op.GetReason(), "ledger-2") {
		t.Errorf("reason %q does not name ledger-2", op.GetReason())
	}
	for _, name := range []string{"ledger-1", "ledger-3"} {
		if c.Node(name).Sim.Paused() {
			t.Errorf("%s still paused", name)
		}
	}
	// The killed agent's node stays paused until its agent comes back and
	// finds the lease run out.
	if err := c.RestartAgent(context.Background(), "ledger-2"); err != nil {
		t.Fatal(err)
	}
	n := c.Node("ledger-2")
	testcluster.WaitFor(t, 10*time.Second, func() (bool, string) { return !n.Sim.Paused(), "ledger-2 still paused" })
}

func TestSimnodeRestartedMidHoldInvalidates(t *testing.T) {
	c := startDev(t, nil)
	opID := startPause(t, c, client(t, c, 0), &pb.StartPauseRequest{Cluster: "ledger", HoldMs: 1500}, holding).GetOpId()
	if err := c.Node("ledger-3").Sim.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	op := watchEnd(t, c, opID, 30*time.Second)
	if op.GetState() != pb.OperationState_OPERATION_STATE_INVALID || !strings.Contains(op.GetReason(), "ledger-3") {
		t.Fatalf("op ended %s (%s), want invalid naming ledger-3", op.GetState(), op.GetReason())
	}
}

func TestClientGoneMidOpDoesNotAffectIt(t *testing.T) {
	c := startDev(t, nil)
	cl := client(t, c, 0)
	opID := startPause(t, c, cl, &pb.StartPauseRequest{Cluster: "ledger", HoldMs: 300}, admitted).GetOpId()
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := cl.WatchOperation(ctx, &pb.WatchOperationRequest{OpId: opID})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	cancel() // the CLI is killed
	for {    // updates already buffered may still arrive; then the stream ends
		_, err := stream.Recv()
		if err == nil {
			continue
		}
		// EOF: the op ended before the cancel landed (a very slow box).
		if !errors.Is(err, io.EOF) && status.Code(err) != codes.Canceled {
			t.Fatalf("stream after cancel: %v, want Canceled", err)
		}
		break
	}
	if op := watchEnd(t, c, opID, 30*time.Second); op.GetState() != pb.OperationState_OPERATION_STATE_COMPLETED {
		t.Fatalf("op ended %s: %s", op.GetState(), op.GetReason())
	}
}

func TestForceUnpauseEndsHoldAborted(t *testing.T) {
	c := startDev(t, nil)
	cl := client(t, c, 1)
	opID := startPause(t, c, cl, &pb.StartPauseRequest{Cluster: "ledger", HoldMs: 20000}, holding).GetOpId()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	fu, err := cl.ForceUnpause(ctx, &pb.ForceUnpauseRequest{OpId: opID, Reason: "hook hung", Abort: true})
	if err != nil {
		t.Fatal(err)
	}
	op := fu.GetOperation()
	if op.GetState() != pb.OperationState_OPERATION_STATE_ABORTED || !strings.Contains(op.GetReason(), "force-unpaused") || !strings.Contains(op.GetReason(), "hook hung") {
		t.Fatalf("force-unpaused op ended %s (%s), want aborted with the reason", op.GetState(), op.GetReason())
	}
	if op.GetWindow() != nil {
		t.Errorf("a force-unpaused op has a window: %v", op.GetWindow())
	}
	for _, n := range c.Nodes() {
		if n.Sim.Paused() {
			t.Errorf("%s still paused after force-unpause", n.Spec.Name)
		}
	}
	if _, err := cl.GetRestorePoint(context.Background(), &pb.GetRestorePointRequest{OpId: opID}); status.Code(err) != codes.NotFound {
		t.Errorf("restore point of a force-unpaused op: %v, want NotFound", err)
	}
}

// TestLeaderKilledMidHoldEndsAtRecordedDeadline: the leader dies 4s into
// a 5s hold; the next leader holds to the recorded deadline, not for a
// fresh 5s. Every node's paused interval lasts at least the hold and at
// most the hold plus holdSlack (drain, fan-out, an election that takes ~3s
// on a loaded 2-core box, both servers' clock bounds, unpause); a hold
// restarted from zero would last 9s or more.
func TestLeaderKilledMidHoldEndsAtRecordedDeadline(t *testing.T) {
	const hold, intoHold, holdSlack = 5 * time.Second, 4 * time.Second, 3500 * time.Millisecond
	c := startDev(t, func(cfg *devcluster.Config) {
		base := cfg.Runtime
		cfg.Runtime = func(rc *pb.RuntimeConfig) {
			base(rc)
			// Leases outlive the failover: the dev cluster's Raft (1s
			// heartbeat and election timeouts) can take 3s to elect on a
			// loaded box, which ran a 3s lease out (INVALID: "lease of op
			// ran out"). The subject is the recorded deadline.
			rc.LeaseNs = int64(6 * time.Second)
		}
	})
	leader := c.Leader()
	opID := startPause(t, c, client(t, c, leader), &pb.StartPauseRequest{Cluster: "ledger", HoldMs: hold.Milliseconds()}, holding).GetOpId()
	<-time.After(intoHold) // the scenario: a crash part-way into the hold
	c.KillServer(leader)
	op := watchEnd(t, c, opID, 30*time.Second)
	if op.GetState() != pb.OperationState_OPERATION_STATE_COMPLETED {
		t.Fatalf("op ended %s: %s", op.GetState(), op.GetReason())
	}
	checkOracle(t, c, op)
	for _, n := range c.Nodes() {
		ivs := n.Sim.PausedIntervals()
		if len(ivs) == 0 || ivs[len(ivs)-1].End.IsZero() {
			t.Fatalf("%s: paused intervals %v", n.Spec.Name, ivs)
		}
		last := ivs[len(ivs)-1]
		paused := last.End.Sub(last.Start)
		t.Logf("%s paused %v for a %v hold whose leader died %v in", n.Spec.Name, paused.Round(time.Millisecond), hold, intoHold)
		if paused < hold || paused > hold+holdSlack {
			t.Errorf("%s paused %v; want the %v hold, at most %v more (a hold restarted by the new leader lasts ≥ %v)",
				n.Spec.Name, paused.Round(time.Millisecond), hold, holdSlack, hold+intoHold)
		}
	}
}

// TestAgentBackDuringUnpauseIsUnpausedByRetry: an agent crashes mid-hold
// and comes back while the op unpauses; the coordinator keeps asking
// until it answers, so its node is unpaused by the op (not left to its
// lease) before the op ends.
func TestAgentBackDuringUnpauseIsUnpausedByRetry(t *testing.T) {
	c := startDev(t, func(cfg *devcluster.Config) {
		base := cfg.Runtime
		cfg.Runtime = func(rc *pb.RuntimeConfig) {
			base(rc)
			rc.LeaseNs = int64(6 * time.Second) // room for the agent to come back
		}
	})
	opID := startPause(t, c, client(t, c, 0), &pb.StartPauseRequest{Cluster: "ledger", HoldMs: 1500}, holding).GetOpId()
	c.KillAgent("ledger-2")
	waitState(t, c, opID, pb.OperationState_OPERATION_STATE_UNPAUSING)
	// The scenario: the agent stays down a while into the unpause (past
	// gRPC's first reconnect backoff and a few quick tries), then returns.
	<-time.After(1500 * time.Millisecond)
	if err := c.RestartAgent(context.Background(), "ledger-2"); err != nil {
		t.Fatal(err)
	}
	op := watchEnd(t, c, opID, 30*time.Second)
	if c.Node("ledger-2").Sim.Paused() {
		t.Errorf("ledger-2 still paused when op %s ended %s (%s): left to its lease", opID, op.GetState(), op.GetReason())
	}
	// The agent answered the retry: either it unpaused its node for the
	// op, or (a slow restart) it found its lease run out and says so, and
	// the op names it as released by its own lease.
	for _, tg := range op.GetTargets() {
		if tg.GetUnpauseOutcome() != pb.NodeOutcome_NODE_OUTCOME_UNPAUSED {
			t.Errorf("%s: unpause outcome %s (%s), want unpaused", tg.GetNode(), tg.GetUnpauseOutcome(), tg.GetUnpauseMessage())
		}
		if released := slices.Contains(op.GetLeaseReleased(), tg.GetNode()); released != tg.GetLeaseExpired() {
			t.Errorf("%s: in lease_released %v, but the agent reported lease_expired=%v", tg.GetNode(), op.GetLeaseReleased(), tg.GetLeaseExpired())
		}
	}
	t.Logf("op %s ended %s; lease_released %v", opID, op.GetState(), op.GetLeaseReleased())
	// The hold may have ended before anything noticed the crash: the
	// node stayed paused throughout, and the agent back from its crash
	// confirms it before unpausing, so a window may be certified.
	switch op.GetState() {
	case pb.OperationState_OPERATION_STATE_COMPLETED:
		checkOracle(t, c, op)
	case pb.OperationState_OPERATION_STATE_INVALID:
		if !strings.Contains(op.GetReason(), "ledger-2") {
			t.Errorf("op invalid (%s) without naming ledger-2", op.GetReason())
		}
	default:
		t.Errorf("op ended %s (%s), want completed (oracle holding) or invalid", op.GetState(), op.GetReason())
	}
}

// TestStartPauseIsIdempotentOnRequestID: a StartPause retried with the
// same request id (its first reply lost) returns the op it started, not
// "cluster held by" that very op.
func TestStartPauseIsIdempotentOnRequestID(t *testing.T) {
	c := startDev(t, nil)
	cl := client(t, c, 1) // through a follower or the leader
	req := &pb.StartPauseRequest{Cluster: "ledger", HoldMs: 1500, RequestId: "cli-3f2a9c"}
	first := startPause(t, c, cl, req, admitted)
	again, err := cl.StartPause(context.Background(), req)
	if err != nil {
		t.Fatalf("retry with the same request id: %v", err)
	}
	if a, b := first.GetOpId(), again.GetOperation().GetOpId(); a != b {
		t.Fatalf("retry started %s, the first attempt %s", b, a)
	}
	op := watchEnd(t, c, first.GetOpId(), 30*time.Second)
	if op.GetState() == pb.OperationState_OPERATION_STATE_COMPLETED {
		checkOracle(t, c, op)
	} else { // a leader change on a loaded box: not this test's subject
		t.Logf("op ended %s: %s", op.GetState(), op.GetReason())
	}
	// Even after the op ended, the same request id is the same op.
	late, err := cl.StartPause(context.Background(), req)
	if err != nil || late.GetOperation().GetOpId() != op.GetOpId() {
		t.Fatalf("late retry: %v, %v; want %s", late.GetOperation().GetOpId(), err, op.GetOpId())
	}
}
