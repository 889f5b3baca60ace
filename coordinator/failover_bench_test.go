package coordinator_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stillpoint-dev/stillpoint/coordinator/fsm"
	"github.com/stillpoint-dev/stillpoint/internal/benchtab"
	"github.com/stillpoint-dev/stillpoint/internal/devcluster"
	"github.com/stillpoint-dev/stillpoint/internal/simnode"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

var (
	failoverKills = flag.Int("failover.kills", 10, "leader kills BenchmarkFailover measures")
	failoverHold  = flag.Duration("failover.hold", 2*time.Second, "requested hold of the op in flight when the leader is killed")
)

// failoverSample is one leader kill.
type failoverSample struct {
	// accepted: kill → a new pause (of the other cluster) accepted.
	accepted time.Duration
	// resolved: kill → the op in flight at the kill terminal (any state).
	resolved time.Duration
	// afterDeadline: kill → resolved, less what was left of the op's
	// recorded hold at the kill (what the failover added to the hold).
	afterDeadline time.Duration
	// state the in-flight op ended in.
	state pb.OperationState
}

// BenchmarkFailover (P5) kills the Raft leader of a 3-server coordinator
// (in-process servers, Raft over loopback TCP with its log and snapshots on
// disk; Raft heartbeat and election timeouts 1s, the production defaults)
// while an op of cluster "ledger" holds its nodes, and measures from the
// kill (a) until a surviving server accepts a new pause of cluster
// "auditor" (retrying as a client would while there is no leader), and
// (b) until the op in flight reaches a terminal state on a survivor. The
// killed server is restarted and caught up before the next kill.
//
//	go test -run '^$' -bench '^BenchmarkFailover$' -benchtime 1x ./coordinator -args -failover.kills=10
func BenchmarkFailover(b *testing.B) {
	if *failoverKills < 1 {
		b.Fatalf("-failover.kills %d: want at least 1", *failoverKills)
	}
	load := benchtab.LoadAvg()
	c := startFailoverCluster(b)
	var samples []failoverSample
	b.ResetTimer()
	for i := range *failoverKills {
		samples = append(samples, failoverOnce(b, c, i))
	}
	b.StopTimer()
	var acc, res, extra []time.Duration
	states := map[pb.OperationState]int{}
	for _, s := range samples {
		acc, res, extra = append(acc, s.accepted), append(res, s.resolved), append(extra, s.afterDeadline)
		states[s.state]++
	}
	reportPercentiles(b, "accepted", acc)
	reportPercentiles(b, "resolved", res)
	reportPercentiles(b, "past-deadline", extra)
	tab := benchtab.Table{
		Title:   "P5 failover: leader killed (SIGKILL-equivalent) during a hold",
		Columns: []string{"from the kill until", "kills", "p50", "p99", "max"},
		Notes: []string{
			fmt.Sprintf("3 servers in one process, Raft heartbeat/election timeout 1s (production defaults), WAL on disk (%s); in-flight op: cluster ledger (3 agents), hold %v, lease 6s", os.TempDir(), *failoverHold),
			fmt.Sprintf("in-flight ops ended: %v", states),
			fmt.Sprintf("load average at start: %s (the machine was shared with other work)", load),
		},
	}
	for _, row := range []struct {
		name string
		d    []time.Duration
	}{{"a new pause is accepted", acc}, {"the in-flight op is resolved", res}, {"  of which past its hold deadline", extra}} {
		s, err := benchtab.Summarize(row.d)
		if err != nil {
			b.Fatal(err)
		}
		if err := tab.AddRow(row.name, fmt.Sprint(s.N), benchtab.Dur(s.P50), benchtab.Dur(s.P99), benchtab.Dur(s.Max)); err != nil {
			b.Fatal(err)
		}
	}
	if err := tab.Write(os.Stdout, *benchMarkdown); err != nil {
		b.Error(err)
	}
	figs := map[string]benchtab.Figure{}
	for name, d := range map[string][]time.Duration{"accepted": acc, "resolved": res, "past-deadline": extra} {
		s, _ := benchtab.Summarize(d)
		figs["p5.failover."+name+".p50"] = nsFigure(float64(s.P50), load, "P5 kill → "+name+" p50")
		figs["p5.failover."+name+".p99"] = nsFigure(float64(s.P99), load, "P5 kill → "+name+" p99")
	}
	recordFigures(b, figs)
}

func startFailoverCluster(b *testing.B) *devcluster.Cluster {
	b.Helper()
	cfg := devcluster.DefaultConfig()
	cfg.APIAddr = "127.0.0.1:0"
	cfg.Nodes = []devcluster.NodeSpec{
		{Name: "ledger-1", Role: "ledger", Cluster: "ledger"}, {Name: "ledger-2", Role: "ledger", Cluster: "ledger"}, {Name: "ledger-3", Role: "ledger", Cluster: "ledger"},
		{Name: "auditor-1", Role: "auditor", Cluster: "auditor"}, {Name: "auditor-2", Role: "auditor", Cluster: "auditor"},
	}
	cfg.Workload = simnode.DefaultWorkloadConfig()
	cfg.Workload.Enabled = true
	cfg.AgentGossipProfile = "local"
	cfg.DataDir = b.TempDir()
	quiet := new(atomic.Bool)
	cfg.Logger = benchLogger(quiet)
	cfg.Runtime = func(rc *pb.RuntimeConfig) {
		rc.MaxErrorBoundNs = int64(100 * time.Millisecond)
		// The lease outlives an election on a loaded box, so the held
		// nodes stay paused for the new leader to resume the op.
		rc.LeaseNs = int64(6 * time.Second)
		rc.MaxPauseWaitNs = int64(5 * time.Second)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := devcluster.Start(ctx, cfg)
	if err != nil {
		b.Fatalf("starting 3 servers and 5 agents: %v", err)
	}
	b.Cleanup(func() { c.Stop(context.Background()) })
	// Killed servers make the survivors log errors (broken Raft and
	// gRPC connections): expected here, so not printed.
	quiet.Store(true)
	return c
}

// failoverOnce starts a held pause of ledger, kills the leader once the op
// holds, times the failover, then restarts the killed server and waits
// until all three servers agree on a leader again.
func failoverOnce(b *testing.B, c *devcluster.Cluster, i int) failoverSample {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	leader, err := c.WaitLeader(ctx)
	if err != nil {
		b.Fatalf("kill %d: %v", i, err)
	}
	survivor := (leader + 1) % 3
	lcl, err := c.Client(leader)
	if err != nil {
		b.Fatal(err)
	}
	resp, err := lcl.StartPause(ctx, &pb.StartPauseRequest{Cluster: "ledger", HoldMs: failoverHold.Milliseconds(), RequestedBy: "bench-failover"})
	if err != nil {
		b.Fatalf("kill %d: start the in-flight pause: %v", i, err)
	}
	opID := resp.GetOperation().GetOpId()
	holding := waitOpState(ctx, b, lcl, opID, pb.OperationState_OPERATION_STATE_HOLDING)
	deadline := holding.GetHoldDeadline().GetLocalTime().AsTime() // one process, one clock

	killed := time.Now()
	c.KillServer(leader)
	scl, err := c.Client(survivor)
	if err != nil {
		b.Fatal(err)
	}
	var s failoverSample
	var wg sync.WaitGroup
	wg.Add(2)
	var acceptedOp string
	go func() {
		defer wg.Done()
		acceptedOp = startPauseRetrying(ctx, b, scl, "auditor")
		s.accepted = time.Since(killed)
	}()
	go func() {
		defer wg.Done()
		op := watchResolved(ctx, b, scl, opID)
		s.resolved = time.Since(killed)
		s.afterDeadline = s.resolved - max(deadline.Sub(killed), 0)
		s.state = op.GetState()
	}()
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	if op := watchResolved(ctx, b, scl, acceptedOp); op.GetState() != pb.OperationState_OPERATION_STATE_COMPLETED {
		b.Fatalf("kill %d: the pause accepted after the kill (%s) ended %s: %s", i, acceptedOp, op.GetState(), op.GetReason())
	}
	if err := c.RestartServer(leader); err != nil {
		b.Fatalf("kill %d: %v", i, err)
	}
	waitAllAgree(ctx, b, c)
	return s
}

// startPauseRetrying calls StartPause until it is accepted, retrying while
// there is no leader (Unavailable, a forward that timed out) or admission
// refuses (FailedPrecondition); anything else fails the benchmark.
func startPauseRetrying(ctx context.Context, b *testing.B, cl pb.CoordinatorServiceClient, cluster string) string {
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		resp, err := cl.StartPause(cctx, &pb.StartPauseRequest{Cluster: cluster, RequestedBy: "bench-failover"})
		cancel()
		if err == nil {
			return resp.GetOperation().GetOpId()
		}
		switch status.Code(err) {
		case codes.Unavailable, codes.FailedPrecondition, codes.DeadlineExceeded, codes.Aborted:
		default:
			b.Errorf("start pause of %s after the kill: %v", cluster, err)
			return ""
		}
		select {
		case <-ctx.Done():
			b.Errorf("start pause of %s after the kill: %v; last: %v", cluster, ctx.Err(), err)
			return ""
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// watchResolved polls GetOperation on cl until the op is terminal (a
// watch stream would break with the server it was opened on).
func watchResolved(ctx context.Context, b *testing.B, cl pb.CoordinatorServiceClient, opID string) *pb.Operation {
	return pollOp(ctx, b, cl, opID, func(op *pb.Operation) bool { return fsm.IsTerminal(op.GetState()) })
}

func waitOpState(ctx context.Context, b *testing.B, cl pb.CoordinatorServiceClient, opID string, want pb.OperationState) *pb.Operation {
	op := pollOp(ctx, b, cl, opID, func(op *pb.Operation) bool { return op.GetState() == want || fsm.IsTerminal(op.GetState()) })
	if op != nil && op.GetState() != want {
		b.Fatalf("op %s ended %s before reaching %s: %s", opID, op.GetState(), want, op.GetReason())
	}
	if op == nil {
		b.FailNow()
	}
	return op
}

func pollOp(ctx context.Context, b *testing.B, cl pb.CoordinatorServiceClient, opID string, done func(*pb.Operation) bool) *pb.Operation {
	var last error
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		resp, err := cl.GetOperation(cctx, &pb.GetOperationRequest{OpId: opID})
		cancel()
		if err == nil && done(resp.GetOperation()) {
			return resp.GetOperation()
		}
		last = err
		select {
		case <-ctx.Done():
			b.Errorf("op %s: %v; last error: %v", opID, ctx.Err(), last)
			return nil
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// waitAllAgree waits until every server is up, one leads, and every
// server's Raft applied index has reached the leader's.
func waitAllAgree(ctx context.Context, b *testing.B, c *devcluster.Cluster) {
	b.Helper()
	for {
		if l := c.Leader(); l >= 0 {
			servers := c.Servers()
			commit := servers[l].Raft().CommitIndex()
			ok := true
			for _, s := range servers {
				if s == nil || s.Raft().AppliedIndex() < commit {
					ok = false
					continue
				}
				if id, _ := s.Leader(); id == "" {
					ok = false
				}
			}
			if ok {
				return
			}
		}
		select {
		case <-ctx.Done():
			b.Fatalf("servers did not agree on a leader after the restart: %v", ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}
