package coordinator_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stillpoint-dev/stillpoint/coordinator/fsm"
	"github.com/stillpoint-dev/stillpoint/internal/benchtab"
	"github.com/stillpoint-dev/stillpoint/internal/devcluster"
	"github.com/stillpoint-dev/stillpoint/internal/grpcx"
	"github.com/stillpoint-dev/stillpoint/internal/simnode"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

var (
	fanoutAgents   = flag.String("fanout.agents", "3,30,100", "agent counts BenchmarkPauseFanout measures, comma-separated")
	fanoutPerPause = flag.Bool("fanout.perpause", false, "BenchmarkPauseFanout also prints one row per coordinator pause")
	// Scheduling delay on a busy 2-core box lands in every NTP round trip:
	// with 100 agents in one process their bounds reach 10-40ms, beyond the
	// 10ms default ε_max, and admission (rightly) refuses the pause.
	fanoutMaxBound = flag.Duration("fanout.maxbound", 100*time.Millisecond, "max_error_bound (ε_max) BenchmarkPauseFanout and BenchmarkUnavailability admit pauses under")
	// The same scheduling delay spreads the agents' measured offsets: on a
	// box loaded far beyond its cores the 100ms default max_drift refuses
	// pauses too.
	fanoutMaxDrift = flag.Duration("fanout.maxdrift", 0, "max_drift (offset spread) BenchmarkPauseFanout and BenchmarkUnavailability admit pauses under (0: the runtime default)")
	// The "test" profile gossips every 20ms: with 100 agents in one
	// process, the compressed gossip packets alone saturate two cores and
	// probes time out.
	fanoutGossip = flag.String("fanout.gossip", "lan", "gossip profile of the agents in BenchmarkPauseFanout (lan, local or test)")
	// An NTP round that moves an agent's bound by more than 10% re-gossips
	// its metadata: a 500ms poll over 100 agents keeps gossip busy.
	fanoutNTPPoll = flag.Duration("fanout.ntppoll", 2*time.Second, "NTP poll interval of every clock in BenchmarkPauseFanout")
	// host: each agent's lease in its own /dev/shm directory, modelling one
	// disk per host; shared: every lease in one directory tree under
	// TMPDIR (a disk here), so 100 agents queue 100 fsyncs on one device.
	fanoutDisks = flag.String("fanout.disks", "host,shared", "where BenchmarkPauseFanout's agents keep their leases, comma-separated: host (one tmpfs directory per agent under /dev/shm) and/or shared (TMPDIR)")
)

// Lease placements of BenchmarkPauseFanout (-fanout.disks).
const (
	diskHost   = "host"
	diskShared = "shared"
)

const (
	// fanoutCluster is the cluster every bench agent belongs to.
	fanoutCluster = "ledger"
	// fanoutAdmitTimeout bounds the retries of one StartPause.
	fanoutAdmitTimeout = 30 * time.Second
	// fanoutOpTimeout bounds one pause from StartPause to its end.
	fanoutOpTimeout = 2 * time.Minute
)

// BenchmarkPauseFanout measures the pause fan-out of a single-server
// coordinator over 3, 30 and 100 in-process agents (workload off), next to
// a sequential baseline over the same agents, and prints a summary table.
// Run it with a fixed count, as `make bench` does:
//
//	go test -run '^$' -bench '^BenchmarkPauseFanout$' -benchtime 25x ./coordinator
func BenchmarkPauseFanout(b *testing.B) {
	sizes, err := parseAgentCounts(*fanoutAgents)
	if err != nil {
		b.Fatal(err)
	}
	disks, err := parseDisks(*fanoutDisks)
	if err != nil {
		b.Fatal(err)
	}
	var summary []fanoutSummaryRow
	for _, disk := range disks {
		where := leaseDiskLabel(disk)
		report := benchtab.FanoutReport{
			PerPause: *fanoutPerPause,
			Disk:     where,
			Markdown: *benchMarkdown,
			Notes: []string{
				"startup: NTP servers and the coordinator up, agents started one by one, until the leader sees every agent alive and synchronized",
				fmt.Sprintf("agents (gossip profile %q, NTP poll %v, ε_max %v) persist their lease with fsync before and after the node acks, on %s",
					*fanoutGossip, *fanoutNTPPoll, *fanoutMaxBound, where),
			},
		}
		for _, n := range sizes {
			run := benchtab.FanoutRun{Agents: n}
			row := fanoutSummaryRow{agents: n, disk: disk}
			ok := b.Run(fmt.Sprintf("disk=%s/agents=%d", disk, n), func(b *testing.B) {
				c, agents, startup := startFanoutCluster(b, n, disk)
				row.rss, row.heap = processMemory()
				run.Startup = startup
				cfg := fanoutRuntime(b, c)
				run.Margin, run.TargetClockBound, run.MinWindow = time.Duration(cfg.GetMarginNs()), time.Duration(cfg.GetTargetClockBoundNs()), time.Duration(cfg.GetMinWindowNs())
				b.Logf("%d agents (%s): cluster up and every clock synchronized in %v; process RSS %d MiB", n, disk, startup.Round(time.Millisecond), row.rss>>20)
				b.Run("coordinator", func(b *testing.B) { run.Coordinator = benchCoordinatorFanout(b, c, cfg) })
				b.Run("sequential", func(b *testing.B) { run.Sequential = benchSequentialFanout(b, c, agents, cfg) })
			})
			row.load = benchtab.LoadAvg()
			row.ran = ok
			for _, p := range run.Coordinator {
				row.parallel = append(row.parallel, p.Fanout)
			}
			row.sequential = run.Sequential
			summary = append(summary, row)
			if ok || len(run.Coordinator) > 0 || len(run.Sequential) > 0 {
				report.Runs = append(report.Runs, run)
			}
		}
		if err := report.Fprint(os.Stdout); err != nil {
			b.Error(err)
		}
	}
	figs, err := printFanoutSummary(summary)
	if err != nil {
		b.Error(err)
	}
	recordFigures(b, figs)
}

func parseDisks(s string) ([]string, error) {
	var out []string
	for _, f := range strings.Split(s, ",") {
		switch d := strings.TrimSpace(f); d {
		case diskHost, diskShared:
			out = append(out, d)
		default:
			return nil, fmt.Errorf("-fanout.disks %q: %q is neither %q nor %q", s, f, diskHost, diskShared)
		}
	}
	return out, nil
}

func parseAgentCounts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-fanout.agents %q: %q is not a positive agent count", s, f)
		}
		out = append(out, n)
	}
	return out, nil
}

// startFanoutCluster starts the NTP servers and one coordinator server
// (devcluster), then n simnodes (workload off) with an agent each, and
// returns how long it took until every agent's clock was synchronized in
// the leader's view. The agents are started here rather than by devcluster
// to choose their gossip profile: devcluster's "test" profile gossips every
// 20ms, and with 100 agents in one process those (LZW-compressed) packets
// alone saturate two cores; "lan" is what production agents run.
//
// disk places the agents' leases (diskHost, diskShared; "" is shared).
func startFanoutCluster(b *testing.B, n int, disk string) (*devcluster.Cluster, []*devcluster.Node, time.Duration) {
	b.Helper()
	cfg := devcluster.DefaultConfig()
	cfg.Servers = 1
	cfg.APIAddr = "127.0.0.1:0"
	cfg.Nodes = nil
	for i := range n {
		cfg.Nodes = append(cfg.Nodes, devcluster.NodeSpec{Name: fmt.Sprintf("ledger-%03d", i+1), Role: "ledger", Cluster: fanoutCluster})
	}
	cfg.Workload = simnode.DefaultWorkloadConfig() // Enabled is false: nothing to drain
	cfg.AgentGossipProfile = *fanoutGossip
	cfg.NTPPoll = *fanoutNTPPoll
	// Production agents poll their node's gate every second; devcluster's
	// 50ms default is 2,000 CheckPaused calls a second at 100 agents in one
	// process, which starved the pause's own admin calls (a 100-agent pause
	// ended INVALID on CheckPaused deadlines at loadavg ~6).
	cfg.AgentCheckPausedInterval = time.Second
	cfg.DataDir = b.TempDir()
	if disk == diskHost {
		cfg.AgentDataDir = hostLeaseDirs(b)
	}
	quiet := new(atomic.Bool)
	cfg.Logger = benchLogger(quiet)
	cfg.Runtime = func(rc *pb.RuntimeConfig) {
		rc.MaxErrorBoundNs = int64(*fanoutMaxBound)
		if *fanoutMaxDrift > 0 {
			rc.MaxDriftNs = int64(*fanoutMaxDrift)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(60+3*n)*time.Second)
	defer cancel()
	start := time.Now()
	c, err := devcluster.Start(ctx, cfg)
	if err != nil {
		b.Fatalf("starting 1 server and %d agents: %v", n, err)
	}
	startup := time.Since(start)
	b.Cleanup(func() { c.Stop(context.Background()) })
	b.Cleanup(func() { quiet.Store(true) }) // runs first
	return c, c.Nodes(), startup
}

// benchLogger reports errors only, on stderr, until quiet is set: a
// benchmark's components may log after it returns (which testing's loggers
// do not allow), and a teardown's "connection closed" errors are noise.
func benchLogger(quiet *atomic.Bool) *zap.Logger {
	enc := zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig())
	return zap.New(zapcore.NewCore(enc, zapcore.AddSync(gatedWriter{quiet}), zap.ErrorLevel))
}

// gatedWriter writes to stderr while its gate is open.
type gatedWriter struct{ quiet *atomic.Bool }

func (w gatedWriter) Write(p []byte) (int, error) {
	if w.quiet.Load() {
		return len(p), nil
	}
	return os.Stderr.Write(p)
}

func fanoutClient(b *testing.B, c *devcluster.Cluster) pb.CoordinatorServiceClient {
	b.Helper()
	cl, err := c.Client(0)
	if err != nil {
		b.Fatal(err)
	}
	return cl
}

// fanoutRuntime reads the runtime config the pauses run under.
func fanoutRuntime(b *testing.B, c *devcluster.Cluster) *pb.RuntimeConfig {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := fanoutClient(b, c).GetConfig(ctx, &pb.GetConfigRequest{})
	if err != nil {
		b.Fatalf("server-1: get runtime config: %v", err)
	}
	return resp.GetConfig()
}

// benchCoordinatorFanout runs one coordinator pause (no requested hold)
// per iteration and reports the fan-out percentiles.
func benchCoordinatorFanout(b *testing.B, c *devcluster.Cluster, cfg *pb.RuntimeConfig) []benchtab.PauseSample {
	cl := fanoutClient(b, c)
	coordinatorPause(b, cl, cfg) // warm-up: connections, Raft log, agent state files
	var samples []benchtab.PauseSample
	for b.Loop() {
		samples = append(samples, coordinatorPause(b, cl, cfg))
	}
	var fanout, accepted, hold, bound []time.Duration
	for _, s := range samples {
		fanout, accepted = append(fanout, s.Fanout), append(accepted, s.AcceptedToAcked)
		hold, bound = append(hold, s.Hold), append(bound, s.MaxBound)
	}
	reportPercentiles(b, "fanout", fanout)
	reportPercentiles(b, "accepted-acked", accepted)
	if s, err := benchtab.Summarize(hold); err == nil {
		b.ReportMetric(float64(s.Max), "hold-max-ns")
	}
	if s, err := benchtab.Summarize(bound); err == nil {
		b.ReportMetric(float64(s.Max), "eps-max-ns")
	}
	return samples
}

func reportPercentiles(b *testing.B, name string, samples []time.Duration) {
	s, err := benchtab.Summarize(samples)
	if err != nil {
		return
	}
	b.ReportMetric(float64(s.P50), name+"-p50-ns")
	b.ReportMetric(float64(s.P99), name+"-p99-ns")
}

// watchToEnd follows op opID until it is terminal.
func watchToEnd(ctx context.Context, b *testing.B, cl pb.CoordinatorServiceClient, opID string) *pb.Operation {
	b.Helper()
	stream, err := cl.WatchOperation(ctx, &pb.WatchOperationRequest{OpId: opID})
	if err != nil {
		b.Fatalf("watch %s: %v", opID, err)
	}
	var op *pb.Operation
	for op == nil || !fsm.IsTerminal(op.GetState()) {
		resp, err := stream.Recv()
		if err != nil {
			b.Fatalf("watch %s: %v (last seen %s)", opID, err, op.GetState())
		}
		op = resp.GetOperation()
	}
	return op
}

// coordinatorPause starts a pause of the bench cluster, follows it to its
// end and returns its figures; anything but COMPLETED fails the benchmark.
func coordinatorPause(b *testing.B, cl pb.CoordinatorServiceClient, cfg *pb.RuntimeConfig) benchtab.PauseSample {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), fanoutOpTimeout)
	defer cancel()
	opID := startFanoutPause(ctx, b, cl)
	op := watchToEnd(ctx, b, cl, opID)
	if op.GetState() != pb.OperationState_OPERATION_STATE_COMPLETED {
		b.Fatalf("op %s over %d targets ended %s: %s", opID, len(op.GetTargets()), op.GetState(), op.GetReason())
	}
	// Every clock in the process is the same wall clock, so the leader's
	// created_at and the agents' ack stamps can be subtracted.
	s := benchtab.PauseSample{OpID: opID, Fanout: time.Duration(op.GetFanoutNs()), Hold: time.Duration(op.GetHoldNs())}
	created := op.GetCreatedAt().GetLocalTime().AsTime()
	for _, t := range op.GetTargets() {
		s.MaxBound = max(s.MaxBound, time.Duration(t.GetAckedAt().GetEstimate().GetErrorBoundNs()))
		s.AcceptedToAcked = max(s.AcceptedToAcked, t.GetAckedAt().GetLocalTime().AsTime().Sub(created))
	}
	s.Need = 2*s.MaxBound + time.Duration(cfg.GetMarginNs())
	if s.Fanout <= 0 {
		b.Fatalf("op %s completed without a fan-out figure (fanout_ns %d)", opID, op.GetFanoutNs())
	}
	return s
}

// startFanoutPause calls StartPause, retrying while admission refuses
// (an agent still releasing the previous op, a clock briefly above ε_max);
// it gives up after fanoutAdmitTimeout with the last refusal.
func startFanoutPause(ctx context.Context, b *testing.B, cl pb.CoordinatorServiceClient) string {
	b.Helper()
	deadline := time.Now().Add(fanoutAdmitTimeout)
	refusals := 0
	for {
		cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		resp, err := cl.StartPause(cctx, &pb.StartPauseRequest{Cluster: fanoutCluster, RequestedBy: "bench"})
		cancel()
		if err == nil {
			return resp.GetOperation().GetOpId()
		}
		if c := status.Code(err); c != codes.FailedPrecondition && c != codes.Unavailable {
			b.Fatalf("start pause of cluster %s (after %d refusals): %v", fanoutCluster, refusals, err)
		}
		refusals++
		if time.Now().After(deadline) {
			b.Fatalf("start pause of cluster %s: refused %d times for %v; last: %v", fanoutCluster, refusals, fanoutAdmitTimeout, err)
		}
		select {
		case <-ctx.Done():
			b.Fatalf("start pause of cluster %s: %v; last refusal: %v", fanoutCluster, ctx.Err(), err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// seqAgent is one agent the sequential baseline calls directly.
type seqAgent struct {
	name string
	sim  *simnode.Node
	cl   pb.AgentServiceClient
}

// benchSequentialFanout is the baseline: the same Pause calls the
// coordinator makes (op id, leader epoch, lease, drain wait), sent to one
// agent after another; the time from the first Pause sent to the last ack
// is the sample. Every agent is then unpaused, one after another, untimed.
func benchSequentialFanout(b *testing.B, c *devcluster.Cluster, nodes []*devcluster.Node, cfg *pb.RuntimeConfig) []time.Duration {
	epoch, ok := c.Servers()[0].LeaderEpoch()
	if !ok {
		b.Fatal("server-1 does not lead: no epoch for the sequential baseline")
	}
	var agents []seqAgent
	for _, n := range nodes {
		cc, err := grpcx.NewClient(n.Agent.GRPCAddr(), grpcx.TLS{})
		if err != nil {
			b.Fatalf("agent %s at %s: %v", n.Spec.Name, n.Agent.GRPCAddr(), err)
		}
		b.Cleanup(func() { _ = cc.Close() })
		agents = append(agents, seqAgent{name: n.Spec.Name, sim: n.Sim, cl: pb.NewAgentServiceClient(cc)})
	}
	run := fmt.Sprintf("%x", time.Now().UnixNano()&0xffffffff)
	seqPause(b, agents, fmt.Sprintf("bench-seq-%s-warm", run), epoch, cfg) // warm-up: dial every agent
	var samples []time.Duration
	i := 0
	for b.Loop() {
		samples = append(samples, seqPause(b, agents, fmt.Sprintf("bench-seq-%s-%d", run, i), epoch, cfg))
		i++
	}
	reportPercentiles(b, "fanout", samples)
	return samples
}

// seqPause pauses every agent in turn under opID, times it, checks every
// node's gate is closed, then unpauses every agent it paused. Any refusal
// fails the benchmark.
func seqPause(b *testing.B, agents []seqAgent, opID string, epoch uint64, cfg *pb.RuntimeConfig) time.Duration {
	b.Helper()
	wait := time.Duration(cfg.GetMaxPauseWaitNs())
	req := &pb.PauseRequest{
		OpId: opID, Epoch: epoch, LeaseMs: cfg.GetLeaseNs() / int64(time.Millisecond),
		WaitOutstanding: true, MaxPauseWaitMs: wait.Milliseconds(),
	}
	var paused []seqAgent
	defer func() {
		for _, a := range paused {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			resp, err := a.cl.Unpause(ctx, &pb.UnpauseRequest{OpId: opID, Epoch: epoch})
			cancel()
			if err != nil || resp.GetOutcome() != pb.NodeOutcome_NODE_OUTCOME_UNPAUSED {
				b.Errorf("agent %s: unpause of %s: %v %s %s", a.name, opID, err, resp.GetOutcome(), resp.GetMessage())
			}
		}
	}()
	start := time.Now()
	for _, a := range agents {
		ctx, cancel := context.WithTimeout(context.Background(), wait+5*time.Second)
		resp, err := a.cl.Pause(ctx, req)
		cancel()
		if err != nil {
			b.Fatalf("agent %s: pause %s: %v", a.name, opID, err)
		}
		paused = append(paused, a)
		if resp.GetOutcome() != pb.NodeOutcome_NODE_OUTCOME_PAUSED || resp.GetAckedAt() == nil {
			b.Fatalf("agent %s: pause %s: %s: %s", a.name, opID, resp.GetOutcome(), resp.GetMessage())
		}
	}
	d := time.Since(start)
	for _, a := range agents {
		if !a.sim.Paused() {
			b.Fatalf("agent %s acked pause %s but its node's gate is open", a.name, opID)
		}
	}
	return d
}
