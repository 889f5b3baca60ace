package coordinator_test

import (
	"context"
	"flag"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stillpoint-dev/stillpoint/coordinator"
	"github.com/stillpoint-dev/stillpoint/internal/benchtab"
	"github.com/stillpoint-dev/stillpoint/internal/clock"
	"github.com/stillpoint-dev/stillpoint/internal/devcluster"
	"github.com/stillpoint-dev/stillpoint/internal/simnode"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

var (
	alarmAgents  = flag.Int("alarm.agents", 100, "agents BenchmarkAlarmLatency runs")
	alarmGossip  = flag.String("alarm.gossip", "lan", "gossip profile of the agents in BenchmarkAlarmLatency (lan is production's)")
	alarmNTPPoll = flag.Duration("alarm.ntppoll", 2*time.Second, "NTP poll interval of every clock in BenchmarkAlarmLatency (a 1s poll over 100 in-process agents kept clocks from synchronizing on a loaded 2-core box)")
)

// BenchmarkAlarmLatency: a 1 s clock step is injected at one of N agents
// (a different one each iteration) of a single-server dev cluster; it
// measures the time until the leader has committed the offset-spread alarm
// naming that agent (inject -> committed), split into inject -> the
// leader's gossip view shows the new offset (the agent's NTP round and
// gossip) and gossip -> committed (evaluation and Raft). The step is then
// undone and the alarm cleared before the next iteration. Run it with a
// fixed count, as `make bench` does (-benchtime 20x).
func BenchmarkAlarmLatency(b *testing.B) {
	n := *alarmAgents
	cfg := devcluster.DefaultConfig()
	cfg.Servers = 1
	cfg.APIAddr = "127.0.0.1:0"
	cfg.Nodes = nil
	cfg.Skews = map[string]time.Duration{}
	for i := range n {
		name := fmt.Sprintf("ledger-%03d", i+1)
		cfg.Nodes = append(cfg.Nodes, devcluster.NodeSpec{Name: name, Role: "ledger", Cluster: "ledger"})
		cfg.Skews[name] = 0
	}
	cfg.Workload = simnode.DefaultWorkloadConfig()
	cfg.AgentGossipProfile = *alarmGossip
	cfg.NTPPoll = *alarmNTPPoll
	cfg.DataDir = b.TempDir()
	quiet := new(atomic.Bool)
	cfg.Logger = benchLogger(quiet)
	cfg.Runtime = func(rc *pb.RuntimeConfig) {
		rc.MaxErrorBoundNs, rc.MaxDriftNs = int64(time.Second), int64(500*time.Millisecond)
		// Raise and clear at once: the hysteresis is not what is measured.
		rc.AlarmForNs, rc.AlarmClearForNs, rc.AlarmEvalIntervalNs = 1, 1, int64(100*time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(60+3*n)*time.Second)
	c, err := devcluster.Start(ctx, cfg)
	cancel()
	if err != nil {
		b.Fatalf("starting 1 server and %d agents: %v", n, err)
	}
	b.Cleanup(func() { c.Stop(context.Background()) })
	b.Cleanup(func() { quiet.Store(true) })
	srv := c.Servers()[0]
	nodes := c.Nodes()

	var total, gossiped, committed []time.Duration
	i := 0
	for b.Loop() {
		node := nodes[i%len(nodes)]
		i++
		sk, ok := node.Clock().(*clock.Skewed)
		if !ok {
			b.Fatalf("%s has no steppable clock", node.Spec.Name)
		}
		id := coordinator.AlarmID(coordinator.AlarmSpreadCritical, "ledger", node.Spec.Name)
		start := time.Now()
		sk.Jump(time.Second)
		var seen time.Time
		deadline := time.Now().Add(60 * time.Second)
		for {
			if seen.IsZero() {
				if m, ok := srv.Member(node.Spec.Name); ok && m.Meta.Clock.OffsetNS < -int64(500*time.Millisecond) {
					seen = time.Now()
				}
			}
			if a, ok := srv.FSM().Alarm(id); ok && a.GetActive() {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("no %s alarm within 60s of stepping %s", id, node.Spec.Name)
			}
			time.Sleep(2 * time.Millisecond) // polling the leader's own state; not a wait for a condition in a test
		}
		done := time.Now()
		if seen.IsZero() {
			seen = done
		}
		total, gossiped, committed = append(total, done.Sub(start)), append(gossiped, seen.Sub(start)), append(committed, done.Sub(seen))
		sk.Jump(-time.Second)
		for deadline := time.Now().Add(60 * time.Second); ; {
			if a, ok := srv.FSM().Alarm(id); ok && !a.GetActive() {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("%s not cleared within 60s of undoing the step", id)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	reportPercentiles(b, "inject-committed", total)
	reportPercentiles(b, "inject-gossiped", gossiped)
	reportPercentiles(b, "gossiped-committed", committed)
	if s, err := benchtab.Summarize(total); err == nil {
		load := benchtab.LoadAvg()
		recordFigures(b, map[string]benchtab.Figure{
			fmt.Sprintf("p4.alarm.inject_committed.p50.agents=%d", n): nsFigure(float64(s.P50), load, "P4 clock step injected -> alarm committed p50"),
			fmt.Sprintf("p4.alarm.inject_committed.p99.agents=%d", n): nsFigure(float64(s.P99), load, "P4 clock step injected -> alarm committed p99"),
		})
		b.Logf("loadavg %s", load)
		b.Logf("%d agents, gossip %q, NTP poll %v: %d injections; inject->committed p50 %v p99 %v", n, *alarmGossip, *alarmNTPPoll, len(total), s.P50, s.P99)
	}
	if s, err := benchtab.Summarize(committed); err == nil {
		b.Logf("gossip view -> alarm committed p50 %v p99 %v", s.P50, s.P99)
	}
}
