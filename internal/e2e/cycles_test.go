package e2e

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stillpoint-dev/stillpoint/coordinator/fsm"
	"github.com/stillpoint-dev/stillpoint/internal/devcluster"
	"github.com/stillpoint-dev/stillpoint/internal/simnode"
	"github.com/stillpoint-dev/stillpoint/internal/window"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// startCluster runs 3 coordinator servers and an agent beside each ledger
// node, whose simnode writes its debits to pair[node].a and its credits to
// pair[node].b, with target_clock_bound β set.
func startCluster(ctx context.Context, t *testing.T, pair map[string]storePair) *devcluster.Cluster {
	t.Helper()
	cfg := devcluster.DefaultConfig()
	cfg.APIAddr = "127.0.0.1:0"
	cfg.Nodes = nil
	for _, n := range ledgerNodes {
		cfg.Nodes = append(cfg.Nodes, devcluster.NodeSpec{Name: n, Role: "ledger", Cluster: "ledger"})
	}
	cfg.NTPPoll = 500 * time.Millisecond // stale after 4 polls: 800 ms went stale on a box at load 12
	cfg.DataDir = t.TempDir()
	cfg.Logger = testLogger(t, zap.ErrorLevel)
	// Each of 4 workers starts a transfer every 40 ms and spends the 25 ms
	// gap of it between the debit and the credit, so at a blind instant of
	// load each node is more likely than not mid-transfer.
	cfg.Workload.Workers = 4
	cfg.Workload.Rate = 100
	cfg.Workload.Gap = gap
	cfg.Stores = func(node string) (simnode.Store, simnode.Store, error) {
		p, ok := pair[node]
		if !ok {
			return nil, nil, fmt.Errorf("no PostgreSQL stores for node %s", node)
		}
		return p.a, p.b, nil
	}
	cfg.Runtime = func(rc *pb.RuntimeConfig) {
		rc.LeaseNs, rc.MaxPauseWaitNs = int64(5*time.Second), int64(3*time.Second)
		rc.TargetClockBoundNs = int64(beta)
		rc.MaxErrorBoundNs = int64(time.Second) // loopback bounds grow on a loaded box; not under test here
	}
	startCtx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	c, err := devcluster.Start(startCtx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Stop(context.Background()) })
	return c
}

// cycleRun is what the pause cycles produced.
type cycleRun struct {
	began time.Time
	cfg   *pb.RuntimeConfig
	// ops are the completed operations, in order.
	ops []*pb.Operation
	// missed lists the pause attempts that did not complete, with why.
	missed []string
	// loads are instants of active load between pauses.
	loads []time.Time
	// paused is each node's paused-and-drained intervals (real clock).
	paused map[string][]simnode.Interval
}

// maxMissed is how many pause attempts may end without a window (refused,
// aborted or invalid on a loaded box) before the test gives up: the test
// needs cycles completed restore points, and reports every miss.
const maxMissed = 3

// runCycles runs pause cycles under load until cycles of them completed.
// Before each pause and after the last, every node commits batches of
// transfers; after each batch, until it has loadTries, it notes an instant
// of active load for the negative control.
func runCycles(ctx context.Context, t *testing.T, c *devcluster.Cluster) cycleRun {
	t.Helper()
	cl, err := c.Client(0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := cl.GetConfig(ctx, &pb.GetConfigRequest{})
	if err != nil {
		t.Fatal(err)
	}
	run := cycleRun{began: time.Now(), cfg: got.GetConfig(), paused: map[string][]simnode.Interval{}}
	if b := time.Duration(run.cfg.GetTargetClockBoundNs()); b != beta {
		t.Fatalf("coordinator runtime target_clock_bound_ns is %v, want %v", b, beta)
	}
	const batch = 15 // transfers per node between events
	load(ctx, t, c, 2*batch)
	for attempt := 1; len(run.ops) < cycles; attempt++ {
		if len(run.missed) > maxMissed {
			t.Fatalf("%d of %d pause attempts did not complete: %s", len(run.missed), attempt-1, strings.Join(run.missed, "; "))
		}
		op, err := pauseOnce(ctx, t, c)
		if err != nil {
			t.Logf("pause attempt %d: %v", attempt, err)
			run.missed = append(run.missed, fmt.Sprintf("attempt %d: %v", attempt, err))
		} else {
			checkShrunk(t, op, run.cfg)
			run.ops = append(run.ops, op)
		}
		for range 2 {
			load(ctx, t, c, batch)
			if len(run.loads) < loadTries {
				run.loads = append(run.loads, time.Now())
			}
		}
	}
	if len(run.loads) < loadTries {
		t.Fatalf("noted %d instants of active load, want %d", len(run.loads), loadTries)
	}
	for _, n := range c.Nodes() {
		run.paused[n.Spec.Name] = n.Sim.PausedIntervals()
	}
	for _, op := range run.ops {
		checkOracle(t, op, run.paused)
	}
	for _, at := range run.loads {
		for node, ivs := range run.paused {
			for _, iv := range ivs {
				if !at.Before(iv.Start) && (iv.End.IsZero() || at.Before(iv.End)) {
					t.Fatalf("load instant %s is inside a paused interval of %s [%s, %s]", at, node, iv.Start, iv.End)
				}
			}
		}
	}
	return run
}

// load waits until every node committed n more transfers.
func load(ctx context.Context, t *testing.T, c *devcluster.Cluster, n int64) {
	t.Helper()
	want := map[string]int64{}
	for _, node := range c.Nodes() {
		want[node.Spec.Name] = node.Sim.Stats().Committed + n
	}
	waitFor(ctx, t, 60*time.Second, fmt.Sprintf("%d more transfers on every node", n), func() (bool, string) {
		for _, node := range c.Nodes() {
			st := node.Sim.Stats()
			if st.Committed < want[node.Spec.Name] {
				return false, fmt.Sprintf("%s committed %d of %d (failed %d)", node.Spec.Name, st.Committed, want[node.Spec.Name], st.Failed)
			}
		}
		return true, ""
	})
}

// errNotCompleted: a pause was refused or ended without a window.
var errNotCompleted = errors.New("pause did not complete")

// pauseOnce starts a pause of the ledger cluster and follows it to the
// end. A refusal or an operation that ends other than COMPLETED is an error
// wrapping errNotCompleted; anything else fails the test.
func pauseOnce(ctx context.Context, t *testing.T, c *devcluster.Cluster) (*pb.Operation, error) {
	t.Helper()
	cl, err := c.Client(c.Leader())
	if err != nil {
		t.Fatal(err)
	}
	callCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	resp, err := cl.StartPause(callCtx, &pb.StartPauseRequest{Cluster: "ledger", RequestedBy: "e2e-pitr"})
	if status.Code(err) == codes.FailedPrecondition {
		return nil, fmt.Errorf("%w: refused: %v", errNotCompleted, err)
	}
	if err != nil {
		t.Fatalf("start pause: %v", err)
	}
	op := watchEnd(callCtx, t, cl, resp.GetOperation().GetOpId())
	if op.GetState() != pb.OperationState_OPERATION_STATE_COMPLETED {
		return nil, fmt.Errorf("%w: op %s ended %s: %s", errNotCompleted, op.GetOpId(), op.GetState(), op.GetReason())
	}
	return op, nil
}

// watchEnd follows an operation until it reaches a terminal state.
func watchEnd(ctx context.Context, t *testing.T, cl pb.CoordinatorServiceClient, opID string) *pb.Operation {
	t.Helper()
	stream, err := cl.WatchOperation(ctx, &pb.WatchOperationRequest{OpId: opID})
	if err != nil {
		t.Fatalf("watch op %s: %v", opID, err)
	}
	var last *pb.Operation
	for {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("watch op %s: %v (last seen %v)", opID, err, last)
		}
		last = resp.GetOperation()
		if fsm.IsTerminal(last.GetState()) {
			return last
		}
	}
}

// rawWindow is the window the agents' readings certify before the target
// clock bound: [max(ack+θ+ε), min(unpause+θ−ε)].
func rawWindow(op *pb.Operation) (start, end time.Time) {
	for i, tg := range op.GetTargets() {
		s := reading(tg.GetAckedAt()).Latest()
		e := reading(tg.GetUnpauseSentAt()).Earliest()
		if i == 0 || s.After(start) {
			start = s
		}
		if i == 0 || e.Before(end) {
			end = e
		}
	}
	return start, end
}

func reading(st *pb.StampedTime) window.Reading {
	return window.Reading{
		Local:  st.GetLocalTime().AsTime(),
		Offset: time.Duration(st.GetEstimate().GetOffsetNs()),
		Bound:  time.Duration(st.GetEstimate().GetErrorBoundNs()),
	}
}

// checkShrunk asserts the target clock bound β took effect: the window lies
// β inside the raw window on both sides, and the hold grew by 2β.
func checkShrunk(t *testing.T, op *pb.Operation, cfg *pb.RuntimeConfig) {
	t.Helper()
	w := op.GetWindow()
	start, end := w.GetStart().AsTime(), w.GetEnd().AsTime()
	rawStart, rawEnd := rawWindow(op)
	if len(op.GetTargets()) != len(ledgerNodes) {
		t.Errorf("op %s paused %d targets, want %d", op.GetOpId(), len(op.GetTargets()), len(ledgerNodes))
	}
	if start.Before(rawStart.Add(beta)) {
		t.Errorf("op %s: window start %s < max(ack+θ+ε) %s + β %v", op.GetOpId(), start, rawStart, beta)
	}
	if end.After(rawEnd.Add(-beta)) {
		t.Errorf("op %s: window end %s > min(unpause+θ−ε) %s − β %v", op.GetOpId(), end, rawEnd, beta)
	}
	if got, max := time.Duration(w.GetWidthNs()), rawEnd.Sub(rawStart)-2*beta; got > max || got != end.Sub(start) {
		t.Errorf("op %s: window width %v, want end−start %v and at most raw width − 2β = %v", op.GetOpId(), got, end.Sub(start), max)
	}
	var maxAck int64
	for _, tg := range op.GetTargets() {
		maxAck = max(maxAck, tg.GetAckedAt().GetEstimate().GetErrorBoundNs())
	}
	minHold := time.Duration(2*maxAck+cfg.GetMarginNs()+cfg.GetMinWindowNs()) + 2*beta
	if h := time.Duration(op.GetHoldNs()); h < minHold {
		t.Errorf("op %s: hold %v < 2·max ε %v + margin %v + min window %v + 2β %v",
			op.GetOpId(), h, time.Duration(2*maxAck), time.Duration(cfg.GetMarginNs()), time.Duration(cfg.GetMinWindowNs()), 2*beta)
	}
}

// checkOracle asserts the window lies inside every target's true
// paused-and-drained interval, as its simnode recorded on the real clock.
func checkOracle(t *testing.T, op *pb.Operation, paused map[string][]simnode.Interval) {
	t.Helper()
	w := op.GetWindow()
	start, end := w.GetStart().AsTime(), w.GetEnd().AsTime()
	for _, tg := range op.GetTargets() {
		inside := false
		for _, iv := range paused[tg.GetNode()] {
			if !iv.Start.After(start) && !iv.End.IsZero() && !iv.End.Before(end) {
				inside = true
			}
		}
		if !inside {
			t.Errorf("op %s: window [%s, %s] is not inside any paused-and-drained interval of %s: %v",
				op.GetOpId(), start, end, tg.GetNode(), paused[tg.GetNode()])
		}
	}
}
