package coordinator_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/stillpoint-dev/stillpoint/internal/benchtab"
	"github.com/stillpoint-dev/stillpoint/internal/devcluster"
	"github.com/stillpoint-dev/stillpoint/internal/grpcx"
	"github.com/stillpoint-dev/stillpoint/internal/simnode"
	"github.com/stillpoint-dev/stillpoint/proto/rpc"
)

var (
	unavailNodes = flag.String("unavail.nodes", "3,30", "node counts BenchmarkUnavailability measures, comma-separated")
	// Every baseline pause holds the nodes for -unavail.sleep: two runs of
	// 5s give its spread (which is the sleep plus two parallel RPCs).
	unavailBaseline = flag.Int("unavail.baseline", 2, "pauses per node count done the scalar-admin-for-kubernetes way (each holds -unavail.sleep)")
	unavailSleep    = flag.Duration("unavail.sleep", 5*time.Second, "the scalar-admin-for-kubernetes way's pause (its default pauseDuration is 5000 ms)")
	// Deployed agents write their lease on their own host's disk: by
	// default P1 models that (see BenchmarkPauseFanout for the difference).
	unavailDisk = flag.String("unavail.disk", diskHost, "where BenchmarkUnavailability's agents keep their leases: host (one tmpfs directory per agent) or shared (TMPDIR)")
)

// BenchmarkUnavailability (P1) measures what one consistent backup point
// costs the nodes: from the first node's gate closing to the last node's
// gate reopening, read from the simnodes' own interval records (the
// oracle's), for 3 and 30 nodes. Each iteration is one coordinator pause
// with no requested hold (hold_ms 0: the coordinator holds what the
// measured clock uncertainty requires); then -unavail.baseline pauses of
// the same nodes the scalar-admin-for-kubernetes way: rpc.Admin/Pause to
// every node in parallel, sleep -unavail.sleep, rpc.Admin/Unpause to every
// node in parallel. The ratio of the p50s is the headline.
//
//	go test -run '^$' -bench '^BenchmarkUnavailability$' -benchtime 20x ./coordinator
func BenchmarkUnavailability(b *testing.B) {
	sizes, err := parseAgentCounts(*unavailNodes)
	if err != nil {
		b.Fatalf("-unavail.nodes: %v", err)
	}
	if *unavailBaseline < 1 {
		b.Fatalf("-unavail.baseline %d: want at least 1 pause", *unavailBaseline)
	}
	tab := &benchtab.Table{
		Title: "P1 unavailability per consistent backup point: first gate closed → last gate reopened (simnodes' own records), workload off",
		Columns: []string{"nodes", "Stillpoint pauses", "p50", "p99", "hold p50",
			fmt.Sprintf("%v-way pauses", *unavailSleep), "p50", "p99", "Stillpoint/" + unavailSleep.String() + " p50", "loadavg"},
		Notes: []string{
			"Stillpoint: one coordinator pause with no requested hold (hold_ms 0): the hold is what the targets' measured clock error requires (2·max ε + margin + window)",
			fmt.Sprintf("%v-way: scalar-admin-for-kubernetes' procedure against the same simnodes' rpc.Admin: Pause (wait_outstanding) to every node in parallel, sleep %v, Unpause to every node in parallel", *unavailSleep, *unavailSleep),
			"p99 is nearest-rank: over fewer than 100 pauses it is the slowest one; loadavg is /proc/loadavg when the row was measured",
		},
	}
	disks, err := parseDisks(*unavailDisk)
	if err != nil || len(disks) != 1 {
		b.Fatalf("-unavail.disk %q: want one of %q, %q", *unavailDisk, diskHost, diskShared)
	}
	drift := "the runtime default"
	if *fanoutMaxDrift > 0 {
		drift = fanoutMaxDrift.String()
	}
	tab.Notes = append(tab.Notes, "agents' leases on "+leaseDiskLabel(disks[0]),
		fmt.Sprintf("admission: ε_max %v (-fanout.maxbound), max_drift %s (-fanout.maxdrift); gossip profile %q, NTP poll %v", *fanoutMaxBound, drift, *fanoutGossip, *fanoutNTPPoll))
	figs := map[string]benchtab.Figure{}
	for _, n := range sizes {
		var still, base, holds []time.Duration
		ok := b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			c, nodes, _ := startFanoutCluster(b, n, disks[0])
			cfg := fanoutRuntime(b, c)
			cl := fanoutClient(b, c)
			b.Run("stillpoint", func(b *testing.B) {
				unavailStillpoint(b, nodes, func() { coordinatorPause(b, cl, cfg) }) // warm-up
				for b.Loop() {
					var s benchtab.PauseSample
					still = append(still, unavailStillpoint(b, nodes, func() { s = coordinatorPause(b, cl, cfg) }))
					holds = append(holds, s.Hold)
				}
				reportPercentiles(b, "unavailable", still)
			})
			admins := adminClients(b, nodes)
			for range *unavailBaseline {
				base = append(base, unavailStillpoint(b, nodes, func() { scalarAdminPause(b, nodes, admins, *unavailSleep) }))
			}
		})
		load := benchtab.LoadAvg()
		ss, serr := benchtab.Summarize(still)
		bs, berr := benchtab.Summarize(base)
		hs, _ := benchtab.Summarize(holds)
		if serr != nil && berr != nil {
			continue
		}
		sp50, sp99 := spreadCells(still)
		bp50, bp99 := spreadCells(base)
		ratio := "-"
		// A failed run's partial samples are printed, never recorded as
		// figures: bench-check then reports them missing.
		if ok && serr == nil && berr == nil && bs.P50 > 0 {
			r := float64(ss.P50) / float64(bs.P50)
			ratio = fmt.Sprintf("%.4f (1/%.0f)", r, 1/r)
			figs[fmt.Sprintf("p1.unavail.ratio.nodes=%d", n)] = ratioFigure(r, load,
				fmt.Sprintf("P1 %d nodes: Stillpoint minimum-hold unavailability p50 / %v-way p50", n, *unavailSleep))
			figs[fmt.Sprintf("p1.unavail.stillpoint.p50.nodes=%d", n)] = nsFigure(float64(ss.P50), load, "P1 Stillpoint unavailability p50")
			figs[fmt.Sprintf("p1.unavail.stillpoint.p99.nodes=%d", n)] = nsFigure(float64(ss.P99), load, "P1 Stillpoint unavailability p99")
			figs[fmt.Sprintf("p1.unavail.sleepway.p50.nodes=%d", n)] = nsFigure(float64(bs.P50), load, fmt.Sprintf("P1 %v-way unavailability p50", *unavailSleep))
		}
		label := strconv.Itoa(n)
		if !ok {
			label += " (failed: see above)"
		}
		_ = tab.AddRow(label, strconv.Itoa(len(still)), sp50, sp99, benchtab.Dur(hs.P50),
			strconv.Itoa(len(base)), bp50, bp99, ratio, load)
	}
	if tab.Rows() > 0 {
		fmt.Println()
		if err := tab.Write(os.Stdout, *benchMarkdown); err != nil {
			b.Error(err)
		}
	}
	recordFigures(b, figs)
}

// spreadCells formats p50 and p99 of samples, or dashes without any.
func spreadCells(samples []time.Duration) (p50, p99 string) {
	s, err := benchtab.Summarize(samples)
	if err != nil {
		return "-", "-"
	}
	return benchtab.Dur(s.P50), benchtab.Dur(s.P99)
}

// unavailStillpoint runs pause (which returns once the pause has ended)
// and returns the unavailability it caused, from the nodes' own records:
// the earliest start to the latest end of the intervals they recorded
// since. It waits until every node has recorded a closed interval and
// reopened its gate; a node that recorded none fails the benchmark.
func unavailStillpoint(b *testing.B, nodes []*devcluster.Node, pause func()) time.Duration {
	b.Helper()
	before := make([]int, len(nodes))
	for i, n := range nodes {
		before[i] = len(n.Sim.PausedIntervals())
	}
	pause()
	var first, last time.Time
	deadline := time.Now().Add(30 * time.Second)
	for i, n := range nodes {
		var ivs []simnode.Interval
		for {
			ivs = n.Sim.PausedIntervals()[before[i]:]
			if len(ivs) > 0 && !ivs[len(ivs)-1].End.IsZero() && !n.Sim.Paused() {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("node %s: %d new gate intervals, still paused %v, 30s after the pause ended", n.Spec.Name, len(ivs), n.Sim.Paused())
			}
			time.Sleep(time.Millisecond) // polling the node's own record for a condition
		}
		for _, iv := range ivs {
			if first.IsZero() || iv.Start.Before(first) {
				first = iv.Start
			}
			if iv.End.After(last) {
				last = iv.End
			}
		}
	}
	return last.Sub(first)
}

// adminClients dials every node's rpc.Admin endpoint, as
// scalar-admin-for-kubernetes does (plaintext: the simnodes' admin ports).
func adminClients(b *testing.B, nodes []*devcluster.Node) []rpc.AdminClient {
	b.Helper()
	var out []rpc.AdminClient
	for _, n := range nodes {
		cc, err := grpcx.NewClient(n.Sim.Addr(), grpcx.TLS{})
		if err != nil {
			b.Fatalf("node %s: admin client for %s: %v", n.Spec.Name, n.Sim.Addr(), err)
		}
		b.Cleanup(func() { _ = cc.Close() })
		out = append(out, rpc.NewAdminClient(cc))
	}
	return out
}

// scalarAdminPause is scalar-admin-for-kubernetes' pause: Pause
// (wait_outstanding) to every node in parallel, sleep, Unpause to every
// node in parallel. Any error fails the benchmark.
func scalarAdminPause(b *testing.B, nodes []*devcluster.Node, admins []rpc.AdminClient, sleep time.Duration) {
	b.Helper()
	each := func(op string, call func(ctx context.Context, a rpc.AdminClient) error) {
		var wg sync.WaitGroup
		errs := make([]error, len(admins))
		for i, a := range admins {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				errs[i] = call(ctx, a)
			})
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				b.Fatalf("node %s: rpc.Admin/%s: %v", nodes[i].Spec.Name, op, err)
			}
		}
	}
	maxWait := int64(5000)
	each("Pause", func(ctx context.Context, a rpc.AdminClient) error {
		_, err := a.Pause(ctx, &rpc.PauseRequest{WaitOutstanding: true, MaxPauseWaitTime: &maxWait})
		return err
	})
	time.Sleep(sleep) // the procedure under measurement: a fixed sleep "to absorb clock skew"
	each("Unpause", func(ctx context.Context, a rpc.AdminClient) error {
		_, err := a.Unpause(ctx, &emptypb.Empty{})
		return err
	})
}
