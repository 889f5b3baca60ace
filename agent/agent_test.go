package agent_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stillpoint-dev/stillpoint/agent"
	"github.com/stillpoint-dev/stillpoint/internal/clock"
	"github.com/stillpoint-dev/stillpoint/internal/gossip"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// TestAgentsSeeEachOther: four agents with differently skewed clocks, each
// beside its own simulated node, measure against real NTP servers and
// gossip; every agent sees every other agent's clock and node state, and a
// pause on one node reaches all of them.
func TestAgentsSeeEachOther(t *testing.T) {
	ntp := startNTP(t, 3)
	skews := []time.Duration{0, 40 * time.Millisecond, -25 * time.Millisecond, 90 * time.Millisecond}
	var agents []*agent.Agent
	var join []string
	for i, skew := range skews {
		name := fmt.Sprintf("ledger-%d", i)
		sim := startSim(t, name, nil)
		a := startAgent(t, testConfig(name, sim.Addr(), t.TempDir(), ntp, join), agent.WithClock(clock.NewSkewed(skew)))
		agents = append(agents, a)
		join = append(join, a.GossipAddr())
	}
	for i, obs := range agents {
		eventually(t, 20*time.Second, obs.Name()+" sees every clock and node", func() error {
			for j, other := range agents {
				m, ok := member(obs, other.Name())
				if !ok || m.Status != gossip.StatusAlive {
					return fmt.Errorf("%s does not see %s alive", obs.Name(), other.Name())
				}
				c := m.Meta.Clock
				if c.Status != clock.Synchronized {
					return fmt.Errorf("%s sees %s clock %v", obs.Name(), other.Name(), c.Status)
				}
				// The offset corrects the skew: -skew within the bound (+1 ms
				// scheduling slack on a loaded box).
				want := -skews[j]
				if d := time.Duration(c.OffsetNS) - want; d.Abs() > time.Duration(c.BoundNS)+time.Millisecond {
					return fmt.Errorf("%s sees %s offset %v, want %v ± %v", obs.Name(), other.Name(), time.Duration(c.OffsetNS), want, time.Duration(c.BoundNS))
				}
				if !m.Meta.Node.Reachable || m.Meta.Node.Paused != pb.PausedState_PAUSED_STATE_UNPAUSED {
					return fmt.Errorf("%s sees %s node %+v", obs.Name(), other.Name(), m.Meta.Node)
				}
				if m.Meta.GRPCAddr != other.GRPCAddr() || m.Meta.Cluster != "ledger-test" || m.Meta.Role != "ledger" {
					return fmt.Errorf("%s sees %s meta %+v", obs.Name(), other.Name(), m.Meta)
				}
			}
			return nil
		})
		_ = i
	}

	// A pause on ledger-1 is gossiped to everyone.
	resp, err := client(t, agents[1]).Pause(rpcCtx(t), &pb.PauseRequest{OpId: "op-gossip", Epoch: 1, LeaseMs: 20_000, WaitOutstanding: true})
	if err != nil || resp.GetOutcome() != pb.NodeOutcome_NODE_OUTCOME_PAUSED {
		t.Fatalf("pause = %v, %v", resp, err)
	}
	for _, obs := range agents {
		eventually(t, 10*time.Second, obs.Name()+" sees ledger-1 paused under op-gossip", func() error {
			m, _ := member(obs, "ledger-1")
			if m.Meta.OpID != "op-gossip" || m.Meta.Node.Paused != pb.PausedState_PAUSED_STATE_PAUSED || m.Meta.LeaseRemainingMS <= 0 {
				return fmt.Errorf("meta %+v", m.Meta)
			}
			return nil
		})
	}
}

// TestPauseUnpauseOnRealNode: the acked time and the unpause time travel
// with a synchronized estimate; repeated calls return the original results.
func TestPauseUnpauseOnRealNode(t *testing.T) {
	ntp := startNTP(t, 3)
	sim := startSim(t, "n1", nil)
	a := startAgent(t, testConfig("n1", sim.Addr(), t.TempDir(), ntp, nil))
	waitSynchronized(t, a)
	c := client(t, a)
	req := &pb.PauseRequest{OpId: "op-1", Epoch: 2, LeaseMs: 10_000, WaitOutstanding: true, MaxPauseWaitMs: 2000}
	p1, err := c.Pause(rpcCtx(t), req)
	if err != nil || p1.GetOutcome() != pb.NodeOutcome_NODE_OUTCOME_PAUSED {
		t.Fatalf("pause = %v, %v", p1, err)
	}
	if !sim.Paused() {
		t.Fatal("agent acked PAUSED but the node's gate is open")
	}
	if p1.GetAckedAt().GetEstimate().GetStatus() != pb.ClockStatus_CLOCK_STATUS_SYNCHRONIZED || p1.GetNode() != "n1" {
		t.Fatalf("ack %v: want node n1 and a synchronized estimate", p1)
	}
	p2, err := c.Pause(rpcCtx(t), req)
	if err != nil || !p2.GetAckedAt().GetLocalTime().AsTime().Equal(p1.GetAckedAt().GetLocalTime().AsTime()) {
		t.Fatalf("repeated pause = %v, %v; want the original ack time %v", p2, err, p1.GetAckedAt().GetLocalTime().AsTime())
	}
	st, err := c.Status(rpcCtx(t), &pb.StatusRequest{})
	if err != nil || st.GetState().GetOpId() != "op-1" || st.GetState().GetOpEpoch() != 2 || st.GetState().GetMaxEpoch() != 2 {
		t.Fatalf("status = %v, %v", st, err)
	}
	u1, err := c.Unpause(rpcCtx(t), &pb.UnpauseRequest{OpId: "op-1", Epoch: 2})
	if err != nil || u1.GetOutcome() != pb.NodeOutcome_NODE_OUTCOME_UNPAUSED || u1.GetLeaseExpired() {
		t.Fatalf("unpause = %v, %v", u1, err)
	}
	if sim.Paused() {
		t.Fatal("agent reported UNPAUSED but the node's gate is closed")
	}
	sent, acked := u1.GetSentAt().GetLocalTime().AsTime(), p1.GetAckedAt().GetLocalTime().AsTime()
	if !sent.After(acked) {
		t.Fatalf("unpause sent at %v, not after the ack %v", sent, acked)
	}
	u2, err := c.Unpause(rpcCtx(t), &pb.UnpauseRequest{OpId: "op-1", Epoch: 2})
	if err != nil || !u2.GetSentAt().GetLocalTime().AsTime().Equal(sent) {
		t.Fatalf("repeated unpause = %v, %v; want the original result", u2, err)
	}
}

// TestFencingAndConflicts: a stale epoch is rejected with both epochs
// named; a second op on a held node is rejected naming the holder; a lease
// above the maximum is refused. None touches the node.
func TestFencingAndConflicts(t *testing.T) {
	ntp := startNTP(t, 3)
	sim := startSim(t, "n1", nil)
	a := startAgent(t, testConfig("n1", sim.Addr(), t.TempDir(), ntp, nil))
	c := client(t, a)
	if _, err := c.Pause(rpcCtx(t), &pb.PauseRequest{OpId: "op-new", Epoch: 5, LeaseMs: 10_000, WaitOutstanding: true}); err != nil {
		t.Fatalf("pause: %v", err)
	}
	tests := []struct {
		name     string
		call     func() error
		code     codes.Code
		reason   string
		mentions []string
	}{
		{"deposed leader unpauses", func() error {
			_, err := c.Unpause(rpcCtx(t), &pb.UnpauseRequest{OpId: "op-new", Epoch: 4})
			return err
		}, codes.FailedPrecondition, agent.ReasonStaleEpoch, []string{"epoch 4", "highest epoch seen 5"}},
		{"deposed leader pauses", func() error {
			_, err := c.Pause(rpcCtx(t), &pb.PauseRequest{OpId: "op-old", Epoch: 3, LeaseMs: 1000})
			return err
		}, codes.FailedPrecondition, agent.ReasonStaleEpoch, []string{"epoch 3", "5"}},
		{"deposed leader renews", func() error {
			_, err := c.RenewLease(rpcCtx(t), &pb.RenewLeaseRequest{OpId: "op-new", Epoch: 1, LeaseMs: 1000})
			return err
		}, codes.FailedPrecondition, agent.ReasonStaleEpoch, []string{"epoch 1", "5"}},
		{"second op", func() error {
			_, err := c.Pause(rpcCtx(t), &pb.PauseRequest{OpId: "op-two", Epoch: 6, LeaseMs: 1000})
			return err
		}, codes.Aborted, agent.ReasonOpHeld, []string{"held by op op-new", "op-two"}},
		{"lease above max", func() error {
			_, err := c.Pause(rpcCtx(t), &pb.PauseRequest{OpId: "op-long", Epoch: 6, LeaseMs: 31_000})
			return err
		}, codes.InvalidArgument, agent.ReasonInvalid, []string{"31000", "max lease 30000"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			st := status.Convert(err)
			if st.Code() != tt.code || agent.ReasonOf(err) != tt.reason {
				t.Fatalf("got %v (reason %q), want %v %s", err, agent.ReasonOf(err), tt.code, tt.reason)
			}
			for _, m := range tt.mentions {
				if !strings.Contains(st.Message(), m) {
					t.Errorf("message %q does not mention %q", st.Message(), m)
				}
			}
		})
	}
	if !sim.Paused() {
		t.Fatal("a rejected request unpaused the node")
	}
}

// TestLeaseNotRenewedUnpausesNode: the dead-man switch unpauses the node
// within lease + 1 s, records and gossips it, and counts it.
func TestLeaseNotRenewedUnpausesNode(t *testing.T) {
	ntp := startNTP(t, 3)
	sim := startSim(t, "n1", nil)
	a := startAgent(t, testConfig("n1", sim.Addr(), t.TempDir(), ntp, nil))
	peer := startAgent(t, testConfig("peer", startSim(t, "peer", nil).Addr(), t.TempDir(), ntp, []string{a.GossipAddr()}))
	const lease = 1200 * time.Millisecond
	resp, err := client(t, a).Pause(rpcCtx(t), &pb.PauseRequest{OpId: "op-dead", Epoch: 1, LeaseMs: lease.Milliseconds(), WaitOutstanding: true})
	if err != nil || resp.GetOutcome() != pb.NodeOutcome_NODE_OUTCOME_PAUSED {
		t.Fatalf("pause = %v, %v", resp, err)
	}
	acked := time.Now()
	if !sim.Paused() {
		t.Fatal("node not paused after the ack")
	}
	eventually(t, 10*time.Second, "the node to be unpaused by the agent", func() error {
		if sim.Paused() {
			return fmt.Errorf("node still paused %s after the ack", time.Since(acked))
		}
		return nil
	})
	if took := time.Since(acked); took > lease+time.Second {
		t.Fatalf("node unpaused %s after the ack, want within lease %s + 1s", took, lease)
	}
	eventually(t, 5*time.Second, "a lease_expired event for op-dead", func() error {
		state := a.State()
		for _, e := range state.GetEvents() {
			if e.GetKind() == agent.EventLeaseExpired && e.GetOpId() == "op-dead" && strings.Contains(e.GetMessage(), "lease expired for op op-dead") {
				if state.GetOpId() != "" {
					return fmt.Errorf("op %q still held", state.GetOpId())
				}
				return nil
			}
		}
		return fmt.Errorf("events %v", state.GetEvents())
	})
	eventually(t, 10*time.Second, "the peer to hear of the expired lease", func() error {
		m, _ := member(peer, "n1")
		if m.Meta.LeasesExpired != 1 || m.Meta.LastLeaseExpiredOp != "op-dead" || m.Meta.OpID != "" {
			return fmt.Errorf("peer sees %+v", m.Meta)
		}
		return nil
	})
	_, body := scrape(t, "http://"+a.MetricsAddr()+"/metrics")
	if !strings.Contains(body, `stillpoint_agent_leases_expired_total{cluster="ledger-test",node="n1",role="ledger"} 1`) {
		t.Fatalf("metrics do not count the expired lease:\n%s", grepLines(body, "leases_expired"))
	}
	un, err := client(t, a).Unpause(rpcCtx(t), &pb.UnpauseRequest{OpId: "op-dead", Epoch: 1})
	if err != nil || !un.GetLeaseExpired() {
		t.Fatalf("late unpause = %v, %v; want lease_expired", un, err)
	}
}

// TestKilledAgentRestartUnpausesNode: an agent that crashes (Kill) while
// holding a lease leaves its node paused; a new agent on the same data
// directory unpauses it when the lease runs out, or at once when it already
// ran out while no agent was running.
func TestKilledAgentRestartUnpausesNode(t *testing.T) {
	tests := []struct {
		name string
		// down is how long no agent runs.
		down func(lease time.Duration) time.Duration
	}{
		{"restarted mid-lease", func(time.Duration) time.Duration { return 0 }},
		{"restarted after the lease ran out", func(lease time.Duration) time.Duration { return lease + 300*time.Millisecond }},
	}
	ntp := startNTP(t, 3)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim := startSim(t, "n1", nil)
			dir := t.TempDir()
			first := startAgent(t, testConfig("n1", sim.Addr(), dir, ntp, nil))
			const lease = 1500 * time.Millisecond
			resp, err := client(t, first).Pause(rpcCtx(t), &pb.PauseRequest{OpId: "op-crash", Epoch: 9, LeaseMs: lease.Milliseconds(), WaitOutstanding: true})
			if err != nil || resp.GetOutcome() != pb.NodeOutcome_NODE_OUTCOME_PAUSED {
				t.Fatalf("pause = %v, %v", resp, err)
			}
			acked := time.Now()
			first.Kill()
			if d := tt.down(lease); d > 0 {
				time.Sleep(d) // no agent runs: nothing may unpause the node
				if !sim.Paused() {
					t.Fatal("node unpaused while no agent was running")
				}
			}
			second := startAgent(t, testConfig("n1", sim.Addr(), dir, ntp, nil))
			eventually(t, 10*time.Second, "the restarted agent to unpause the node", func() error {
				if sim.Paused() {
					return fmt.Errorf("node still paused %s after the ack", time.Since(acked))
				}
				return nil
			})
			if took, limit := time.Since(acked), max(lease, tt.down(lease))+time.Second; took > limit {
				t.Fatalf("node unpaused %s after the ack, want within %s", took, limit)
			}
			if got := second.State().GetMaxEpoch(); got != 9 {
				t.Fatalf("restarted agent max epoch %d, want 9 (persisted)", got)
			}
			eventually(t, 5*time.Second, "lease_recovered then lease_expired events", func() error {
				var kinds []string
				for _, e := range second.State().GetEvents() {
					kinds = append(kinds, e.GetKind())
				}
				if !strings.Contains(strings.Join(kinds, ","), agent.EventLeaseRecovered+","+agent.EventLeaseExpired) {
					return fmt.Errorf("events %v", kinds)
				}
				return nil
			})
		})
	}
}

// TestNodeRestartMidOpIsReported: a node that restarts during an op comes
// back unpaused; the agent reports it in Status, gossip and Unpause.
func TestNodeRestartMidOpIsReported(t *testing.T) {
	ntp := startNTP(t, 3)
	sim := startSim(t, "n1", nil)
	a := startAgent(t, testConfig("n1", sim.Addr(), t.TempDir(), ntp, nil))
	peer := startAgent(t, testConfig("peer", startSim(t, "peer", nil).Addr(), t.TempDir(), ntp, []string{a.GossipAddr()}))
	c := client(t, a)
	if _, err := c.Pause(rpcCtx(t), &pb.PauseRequest{OpId: "op-int", Epoch: 1, LeaseMs: 20_000, WaitOutstanding: true}); err != nil {
		t.Fatalf("pause: %v", err)
	}
	// Let a few checks see the node paused: no false report.
	eventually(t, 5*time.Second, "the watch to see the node paused", func() error {
		if a.State().GetNodeState().GetPaused() != pb.PausedState_PAUSED_STATE_PAUSED {
			return fmt.Errorf("node state %v", a.State().GetNodeState())
		}
		return nil
	})
	if got := a.State().GetInterruptedOpId(); got != "" {
		t.Fatalf("interrupted %q before the node restarted", got)
	}
	if err := sim.Restart(rpcCtx(t)); err != nil {
		t.Fatalf("restart node: %v", err)
	}
	eventually(t, 10*time.Second, "the agent to report the interrupted op", func() error {
		if got := a.State().GetInterruptedOpId(); got != "op-int" {
			return fmt.Errorf("interrupted_op_id %q", got)
		}
		return nil
	})
	eventually(t, 10*time.Second, "the peer to hear of it", func() error {
		if m, _ := member(peer, "n1"); m.Meta.InterruptedOpID != "op-int" {
			return fmt.Errorf("peer sees %+v", m.Meta)
		}
		return nil
	})
	un, err := c.Unpause(rpcCtx(t), &pb.UnpauseRequest{OpId: "op-int", Epoch: 1})
	if err != nil || !un.GetInterrupted() || un.GetOutcome() != pb.NodeOutcome_NODE_OUTCOME_UNPAUSED {
		t.Fatalf("unpause = %v, %v; want UNPAUSED and interrupted", un, err)
	}
}

// TestNodeRestartJustBeforeUnpauseIsReported: with the production poll
// (1 s) the watch has not seen the restart when the Unpause arrives; the
// Unpause itself (stamp, CheckPaused, Unpause) reports it, naming the node.
func TestNodeRestartJustBeforeUnpauseIsReported(t *testing.T) {
	ntp := startNTP(t, 3)
	sim := startSim(t, "n1", nil)
	cfg := testConfig("n1", sim.Addr(), t.TempDir(), ntp, nil)
	cfg.CheckPausedInterval = time.Hour // only the first check runs: the watch never sees the restart
	a := startAgent(t, cfg)
	c := client(t, a)
	if _, err := c.Pause(rpcCtx(t), &pb.PauseRequest{OpId: "op-late", Epoch: 1, LeaseMs: 20_000, WaitOutstanding: true}); err != nil {
		t.Fatalf("pause: %v", err)
	}
	if err := sim.Restart(rpcCtx(t)); err != nil {
		t.Fatalf("restart node: %v", err)
	}
	un, err := c.Unpause(rpcCtx(t), &pb.UnpauseRequest{OpId: "op-late", Epoch: 1})
	if err != nil || un.GetOutcome() != pb.NodeOutcome_NODE_OUTCOME_UNPAUSED {
		t.Fatalf("unpause = %v, %v; want UNPAUSED", un, err)
	}
	if !un.GetInterrupted() || !strings.Contains(un.GetMessage(), "node n1") || !strings.Contains(un.GetMessage(), "restarted") {
		t.Fatalf("unpause %v: want interrupted, naming node n1 and that it restarted", un)
	}
	if got := a.State().GetInterruptedOpId(); got != "op-late" {
		t.Errorf("interrupted_op_id %q, want op-late (gossiped)", got)
	}
	if sim.Paused() {
		t.Error("node still paused")
	}
}

// TestStopReleasesNode: a graceful stop unpauses a node it holds and
// leaves the gossip pool.
func TestStopReleasesNode(t *testing.T) {
	ntp := startNTP(t, 3)
	sim := startSim(t, "n1", nil)
	a := startAgent(t, testConfig("n1", sim.Addr(), t.TempDir(), ntp, nil))
	peer := startAgent(t, testConfig("peer", startSim(t, "peer", nil).Addr(), t.TempDir(), ntp, []string{a.GossipAddr()}))
	eventually(t, 10*time.Second, "the peer to see n1", func() error {
		if m, ok := member(peer, "n1"); !ok || m.Status != gossip.StatusAlive {
			return fmt.Errorf("not alive")
		}
		return nil
	})
	if _, err := client(t, a).Pause(rpcCtx(t), &pb.PauseRequest{OpId: "op-stop", Epoch: 1, LeaseMs: 20_000, WaitOutstanding: true}); err != nil {
		t.Fatalf("pause: %v", err)
	}
	if err := a.Stop(rpcCtx(t)); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if sim.Paused() {
		t.Fatal("a stopped agent left its node paused")
	}
	eventually(t, 10*time.Second, "the peer to see n1 leave", func() error {
		if m, _ := member(peer, "n1"); m.Status != gossip.StatusLeft {
			return fmt.Errorf("n1 status %v", m.Status)
		}
		return nil
	})
}

// TestMetricsAndHealth: /metrics carries every agent metric with the
// agent's labels and /healthz answers.
func TestMetricsAndHealth(t *testing.T) {
	ntp := startNTP(t, 3)
	sim := startSim(t, "n1", nil)
	a := startAgent(t, testConfig("n1", sim.Addr(), t.TempDir(), ntp, nil))
	waitSynchronized(t, a)
	eventually(t, 5*time.Second, "the node check", func() error {
		if !a.State().GetNodeState().GetReachable() {
			return fmt.Errorf("node state %v", a.State().GetNodeState())
		}
		return nil
	})
	code, body := scrape(t, "http://"+a.MetricsAddr()+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics status %d", code)
	}
	labels := `{cluster="ledger-test",node="n1",role="ledger"}`
	for _, want := range []string{
		agent.MetricClockBound + labels,
		agent.MetricClockOffset + labels,
		agent.MetricClockSlew + labels,
		agent.MetricClockFailedRounds + labels + " 0",
		agent.MetricClockStatus + `{cluster="ledger-test",node="n1",role="ledger",status="synchronized"} 1`,
		agent.MetricNodeReachable + labels + " 1",
		agent.MetricNodePaused + labels + " 0",
		agent.MetricLeaseHeld + labels + " 0",
		agent.MetricLeaseRemaining + labels + " 0",
		agent.MetricLeasesExpired + labels + " 0",
		agent.MetricOpsInterrupted + labels + " 0",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	code, body = scrape(t, "http://"+a.MetricsAddr()+"/healthz")
	if code != 200 || !strings.Contains(body, `"status":"ok"`) || !strings.Contains(body, `"clock_status":"synchronized"`) {
		t.Fatalf("/healthz = %d %s", code, body)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestStartFailsCleanly: a port in use fails Start with a clear error,
// and the agent can still be stopped.
func TestStartFailsCleanly(t *testing.T) {
	ntp := startNTP(t, 3)
	sim := startSim(t, "n1", nil)
	first := startAgent(t, testConfig("n1", sim.Addr(), t.TempDir(), ntp, nil))
	cfg := testConfig("n2", sim.Addr(), t.TempDir(), ntp, nil)
	cfg.GRPC.Listen = first.GRPCAddr() // taken
	a, err := agent.New(cfg)
	if err != nil {
		t.Fatalf("new: %v", err)
	}
	err = a.Start(rpcCtx(t))
	if err == nil || !strings.Contains(err.Error(), "gRPC listen "+first.GRPCAddr()) {
		t.Fatalf("start on a taken port: %v", err)
	}
	if err := a.Stop(rpcCtx(t)); err != nil {
		t.Fatalf("stop after a failed start: %v", err)
	}
}

// TestStampsCertifyTrueTime: with a local clock 40 ms ahead, the ack and
// unpause stamps still turn into true-time intervals that contain the host
// (true) time of the call.
func TestStampsCertifyTrueTime(t *testing.T) {
	ntp := startNTP(t, 3)
	sim := startSim(t, "n1", nil)
	a := startAgent(t, testConfig("n1", sim.Addr(), t.TempDir(), ntp, nil), agent.WithClock(clock.NewSkewed(40*time.Millisecond)))
	waitSynchronized(t, a)
	c := client(t, a)
	before := time.Now()
	p, err := c.Pause(rpcCtx(t), &pb.PauseRequest{OpId: "op-t", Epoch: 1, LeaseMs: 10_000, WaitOutstanding: true})
	after := time.Now()
	if err != nil || p.GetOutcome() != pb.NodeOutcome_NODE_OUTCOME_PAUSED {
		t.Fatalf("pause = %v, %v", p, err)
	}
	checkStamp(t, "ack", p.GetAckedAt(), before, after)
	before = time.Now()
	u, err := c.Unpause(rpcCtx(t), &pb.UnpauseRequest{OpId: "op-t", Epoch: 1})
	after = time.Now()
	if err != nil {
		t.Fatalf("unpause: %v", err)
	}
	checkStamp(t, "unpause", u.GetSentAt(), before, after)
}

func checkStamp(t *testing.T, what string, st *pb.StampedTime, before, after time.Time) {
	t.Helper()
	local := st.GetLocalTime().AsTime()
	if d := local.Sub(before); d < 30*time.Millisecond {
		t.Errorf("%s local time is only %v ahead of the host: the skewed clock was not used", what, d)
	}
	lo, hi := clock.TrueInterval(st)
	if lo.After(after) || hi.Before(before) {
		t.Fatalf("%s true interval [%v, %v] misses the call's true time [%v, %v]", what, lo, hi, before, after)
	}
}

// TestGossipCarriesGRPCAdvertise: with grpc.advertise set, the gossiped
// gRPC address (what the coordinator dials) and the served state are the
// advertised address, not the bound one; the bound one still serves.
func TestGossipCarriesGRPCAdvertise(t *testing.T) {
	ntp := startNTP(t, 3)
	sim1, sim2 := startSim(t, "ledger-1", nil), startSim(t, "ledger-2", nil)
	cfg1 := testConfig("ledger-1", sim1.Addr(), t.TempDir(), ntp, nil)
	cfg1.GRPC.Advertise = "agent-ledger-1:7947"
	a1 := startAgent(t, cfg1)
	a2 := startAgent(t, testConfig("ledger-2", sim2.Addr(), t.TempDir(), ntp, []string{a1.GossipAddr()}))
	for _, obs := range []*agent.Agent{a1, a2} {
		eventually(t, 20*time.Second, obs.Name()+" sees ledger-1's advertised gRPC address", func() error {
			m, ok := member(obs, "ledger-1")
			if !ok || m.Meta.GRPCAddr != "agent-ledger-1:7947" {
				return fmt.Errorf("%s sees ledger-1 meta %+v (found %v)", obs.Name(), m.Meta, ok)
			}
			return nil
		})
	}
	st, err := client(t, a1).Status(rpcCtx(t), &pb.StatusRequest{})
	if err != nil {
		t.Fatalf("status over the bound address %s: %v", a1.GRPCAddr(), err)
	}
	if got := st.GetState().GetGrpcAddress(); got != "agent-ledger-1:7947" {
		t.Fatalf("state grpc_address %q, want the advertised agent-ledger-1:7947", got)
	}
}
