package coordinator_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stillpoint-dev/stillpoint/coordinator"
	"github.com/stillpoint-dev/stillpoint/internal/benchtab"
	"github.com/stillpoint-dev/stillpoint/internal/devcluster"
	"github.com/stillpoint-dev/stillpoint/internal/simnode"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

var (
	scaleAgents = flag.String("scale.agents", "3,30", "agent counts BenchmarkFSMBytesPerOp measures, comma-separated")
	scalePauses = flag.Int("scale.pauses", 5, "pauses BenchmarkFSMBytesPerOp runs per agent count")
)

// fsmBytes is one agent count's Raft and FSM cost per op.
type fsmBytes struct {
	agents, pauses        int
	entries               int
	logBytes              int64
	snapBefore, snapAfter int64
}

// BenchmarkFSMBytesPerOp measures what one pause costs the replicated
// state, for the scale projection: the Raft log entries committed while
// -scale.pauses pauses run one after another (every entry, including
// background ones such as roster and alarm updates) and their bytes, and
// how much the FSM snapshot grows per op (the op record and its catalog
// entry, kept until retention removes them). Two agent counts give the
// per-target slope.
//
//	go test -run '^$' -bench '^BenchmarkFSMBytesPerOp$' -benchtime 1x ./coordinator
func BenchmarkFSMBytesPerOp(b *testing.B) {
	sizes, err := parseAgentCounts(*scaleAgents)
	if err != nil {
		b.Fatal(err)
	}
	if *scalePauses < 1 {
		b.Fatalf("-scale.pauses %d: want at least 1", *scalePauses)
	}
	var rows []fsmBytes
	for _, n := range sizes {
		b.Run(fmt.Sprintf("agents=%d", n), func(b *testing.B) {
			r := measureFSMBytes(b, n, *scalePauses)
			b.ReportMetric(float64(r.logBytes)/float64(r.pauses), "raft-B/op")
			b.ReportMetric(float64(r.snapAfter-r.snapBefore)/float64(r.pauses), "snapshot-B/op")
			rows = append(rows, r)
		})
	}
	tab := benchtab.Table{
		Title:   "Scale inputs: Raft log and FSM bytes per pause",
		Columns: []string{"agents", "pauses", "Raft entries/op", "Raft bytes/op", "snapshot growth/op", "snapshot total"},
	}
	for _, r := range rows {
		p := float64(r.pauses)
		if err := tab.AddRow(fmt.Sprint(r.agents), fmt.Sprint(r.pauses), fmt.Sprintf("%.1f", float64(r.entries)/p),
			fmt.Sprintf("%.0f B", float64(r.logBytes)/p), fmt.Sprintf("%.0f B", float64(r.snapAfter-r.snapBefore)/p),
			fmt.Sprintf("%d B", r.snapAfter)); err != nil {
			b.Fatal(err)
		}
	}
	if len(rows) >= 2 {
		lo, hi := rows[0], rows[len(rows)-1]
		if d := hi.agents - lo.agents; d > 0 {
			perLog := (float64(hi.logBytes)/float64(hi.pauses) - float64(lo.logBytes)/float64(lo.pauses)) / float64(d)
			perSnap := (float64(hi.snapAfter-hi.snapBefore)/float64(hi.pauses) - float64(lo.snapAfter-lo.snapBefore)/float64(lo.pauses)) / float64(d)
			tab.Notes = append(tab.Notes, fmt.Sprintf("per target (slope %d→%d agents): Raft %.0f B/op, snapshot %.0f B/op", lo.agents, hi.agents, perLog, perSnap))
			b.ReportMetric(perLog, "raft-B/op/target")
			b.ReportMetric(perSnap, "snapshot-B/op/target")
		}
	}
	tab.Notes = append(tab.Notes,
		"1 server; agents lan gossip, workload off; entries = every Raft entry committed from the first pause's start to the last one's end",
		fmt.Sprintf("load average: %s", benchtab.LoadAvg()))
	if err := tab.Write(os.Stdout, *benchMarkdown); err != nil {
		b.Error(err)
	}
}

func measureFSMBytes(b *testing.B, n, pauses int) fsmBytes {
	cfg := devcluster.DefaultConfig()
	cfg.Servers = 1
	cfg.APIAddr = "127.0.0.1:0"
	cfg.Nodes = nil
	for i := range n {
		cfg.Nodes = append(cfg.Nodes, devcluster.NodeSpec{Name: fmt.Sprintf("ledger-%03d", i+1), Role: "ledger", Cluster: fanoutCluster})
	}
	cfg.Workload = simnode.DefaultWorkloadConfig()
	cfg.AgentGossipProfile = "lan"
	cfg.NTPPoll = 2 * time.Second
	cfg.DataDir = b.TempDir()
	quiet := new(atomic.Bool)
	cfg.Logger = benchLogger(quiet)
	cfg.Runtime = func(rc *pb.RuntimeConfig) { rc.MaxErrorBoundNs = int64(100 * time.Millisecond) }
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(60+3*n)*time.Second)
	defer cancel()
	c, err := devcluster.Start(ctx, cfg)
	if err != nil {
		b.Fatalf("starting 1 server and %d agents: %v", n, err)
	}
	b.Cleanup(func() { c.Stop(context.Background()) })
	b.Cleanup(func() { quiet.Store(true) })
	rc := fanoutRuntime(b, c)
	cl := fanoutClient(b, c)
	s := c.Servers()[0]
	coordinatorPause(b, cl, rc) // warm-up: the first op's one-off entries
	r := fsmBytes{agents: n, pauses: pauses, snapBefore: snapshotSize(b, s)}
	from := s.Raft().LastIndex() + 1
	for range pauses {
		coordinatorPause(b, cl, rc)
	}
	to := s.Raft().LastIndex()
	r.snapAfter = snapshotSize(b, s)
	if to >= from {
		if r.entries, r.logBytes, err = coordinator.RaftLogBytes(s, from, to); err != nil {
			b.Fatal(err)
		}
	}
	return r
}

// snapshotSize is the size of s's FSM snapshot as Raft would persist it.
func snapshotSize(b *testing.B, s *coordinator.Server) int64 {
	b.Helper()
	snap, err := s.FSM().Snapshot()
	if err != nil {
		b.Fatal(err)
	}
	var w countingWriter
	if err := snap.Persist(&w); err != nil {
		b.Fatal(err)
	}
	return int64(w)
}

type countingWriter int64

func (w *countingWriter) Write(p []byte) (int, error) {
	*w += countingWriter(len(p))
	return len(p), nil
}
