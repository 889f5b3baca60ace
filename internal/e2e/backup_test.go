package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stillpoint-dev/stillpoint/internal/clock"
	"github.com/stillpoint-dev/stillpoint/internal/devcluster"
	"github.com/stillpoint-dev/stillpoint/internal/hook"
	"github.com/stillpoint-dev/stillpoint/internal/pgtest"
	"github.com/stillpoint-dev/stillpoint/internal/simnode"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// The backup acceptance of issue 12 on real PostgreSQL. The Ledger cluster
// (3 simulated nodes under the transfer workload) keeps every node's debits
// in database <node>_a and its credits in <node>_b: a transfer writes the
// two halves non-atomically, 25ms apart. An Auditor database keeps taking
// writes the whole time (the Auditor is not paused). A plan pauses the
// Ledger cluster; its Ledger group runs the pg_dump example hook
// (deploy/examples/agents/hooks/pg-dump.sh) on each Ledger node's agent for
// that node's two databases, then its Auditor group dumps the Auditor
// database on auditor-1's agent.

// auditorDB is the Auditor's database: an append-only log written every
// few milliseconds.
const auditorDB = "auditor"

// pgDumpScript is the example pg_dump hook, as shipped.
func pgDumpScript(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "..", "deploy", "examples", "agents", "hooks", "pg-dump.sh"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatal(err)
	}
	return p
}

// dumpHook is a pg-dump hook definition for db on pg, writing under dir.
func dumpHook(name, script, db string, pg *pgtest.Cluster, dir string) hook.Definition {
	return hook.Definition{
		Name: name, Command: script, Args: []string{db}, Dir: dir, Timeout: time.Minute,
		Env: map[string]string{
			"PATH": pg.BinDir() + ":/usr/bin:/bin", "BACKUP_DIR": dir,
			"PGHOST": "127.0.0.1", "PGPORT": strconv.Itoa(pg.Port()), "PGUSER": "postgres",
		},
	}
}

// auditorWriter appends a row every 5ms to the Auditor database until
// stopped, recording when each was committed.
type auditorWriter struct {
	n    atomic.Int64
	stop context.CancelFunc
	done chan error
}

func startAuditorWriter(ctx context.Context, t *testing.T, pg *pgtest.Cluster) *auditorWriter {
	t.Helper()
	conn := pg.Connect(ctx, auditorDB)
	if _, err := conn.Exec(ctx, `CREATE TABLE audit_log (seq bigint PRIMARY KEY, at timestamptz NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	wctx, stop := context.WithCancel(ctx)
	w := &auditorWriter{stop: stop, done: make(chan error, 1)}
	go func() {
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-wctx.Done():
				w.done <- nil
				return
			case <-tick.C:
			}
			seq := w.n.Load() + 1
			if _, err := conn.Exec(wctx, `INSERT INTO audit_log VALUES ($1, clock_timestamp())`, seq); err != nil {
				if wctx.Err() != nil {
					w.done <- nil
				} else {
					w.done <- err
				}
				return
			}
			w.n.Store(seq)
		}
	}()
	return w
}

// startBackupCluster runs the dev cluster: ledger-1..3 on their PostgreSQL
// stores, auditor-1 (in-memory stores), each with its pg-dump hooks.
func startBackupCluster(ctx context.Context, t *testing.T, pg *pgtest.Cluster, pair map[string]storePair, dumps string) *devcluster.Cluster {
	t.Helper()
	script := pgDumpScript(t)
	cfg := devcluster.DefaultConfig()
	cfg.APIAddr = "127.0.0.1:0"
	cfg.Nodes = nil
	for _, n := range ledgerNodes {
		cfg.Nodes = append(cfg.Nodes, devcluster.NodeSpec{Name: n, Role: "ledger", Cluster: "ledger"})
	}
	cfg.Nodes = append(cfg.Nodes, devcluster.NodeSpec{Name: "auditor-1", Role: "auditor", Cluster: "auditor"})
	cfg.NTPPoll = 500 * time.Millisecond
	cfg.DataDir = t.TempDir()
	cfg.Logger = testLogger(t, zap.ErrorLevel)
	cfg.Workload.Workers = 4
	cfg.Workload.Rate = 100
	cfg.Workload.Gap = gap
	cfg.Stores = func(node string) (simnode.Store, simnode.Store, error) {
		if p, ok := pair[node]; ok {
			return p.a, p.b, nil
		}
		a, b := simnode.NewMemoryStores()
		return a, b, nil
	}
	cfg.ExtraHooks = func(node devcluster.NodeSpec, _ string) []hook.Definition {
		if node.Role == "auditor" {
			return []hook.Definition{dumpHook("pg-dump-auditor", script, auditorDB, pg, dumps)}
		}
		return []hook.Definition{
			dumpHook("pg-dump-a", script, dbName(node.Name)+"_a", pg, dumps),
			dumpHook("pg-dump-b", script, dbName(node.Name)+"_b", pg, dumps),
		}
	}
	cfg.Runtime = func(rc *pb.RuntimeConfig) {
		rc.LeaseNs, rc.MaxPauseWaitNs = int64(5*time.Second), int64(3*time.Second)
		rc.TargetClockBoundNs = int64(beta)
		rc.MaxErrorBoundNs = int64(time.Second)
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

// runBackup stores plan and runs a backup of it until it ends as the test
// means (done), at most 3 times: on a loaded box a leader change or a lost
// lease can end one for reasons that are not the plan's.
func runBackup(ctx context.Context, t *testing.T, c *devcluster.Cluster, plan *pb.BackupPlan, done func(*pb.Operation) bool) *pb.Operation {
	t.Helper()
	for attempt := 1; ; attempt++ {
		op := runBackupOnce(ctx, t, c, plan)
		if done(op) || attempt == 3 {
			return op
		}
		t.Logf("backup of %s ended %s (%s); again", plan.GetName(), op.GetState(), op.GetReason())
	}
}

// runBackupOnce stores plan, starts a backup of it (retrying a refused
// admission on a loaded box) and follows it to its end.
func runBackupOnce(ctx context.Context, t *testing.T, c *devcluster.Cluster, plan *pb.BackupPlan) *pb.Operation {
	t.Helper()
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := c.Servers()[c.Leader()].Apply(actx, &pb.SetBackupPlanCommand{Plan: plan, Actor: "test"}); err != nil {
		t.Fatalf("store plan %s: %v", plan.GetName(), err)
	}
	cl, err := c.Client(c.Leader())
	if err != nil {
		t.Fatal(err)
	}
	id := fmt.Sprintf("e2e-%s-%d", plan.GetName(), time.Now().UnixNano())
	var op *pb.Operation
	for attempt := 1; op == nil; attempt++ {
		sctx, scancel := context.WithTimeout(ctx, 20*time.Second)
		resp, err := cl.StartBackup(sctx, &pb.StartBackupRequest{Plan: plan.GetName(), RequestId: id, RequestedBy: "e2e"})
		scancel()
		switch {
		case err == nil:
			op = resp.GetOperation()
		case status.Code(err) == codes.FailedPrecondition && attempt < 5:
			t.Logf("backup of %s refused (attempt %d): %v", plan.GetName(), attempt, err)
			time.Sleep(time.Second)
		default:
			t.Fatalf("start backup of %s: %v", plan.GetName(), err)
		}
	}
	var final *pb.Operation
	waitFor(ctx, t, 2*time.Minute, "backup "+op.GetOpId()+" to end", func() (bool, string) {
		gctx, gcancel := context.WithTimeout(ctx, 10*time.Second)
		defer gcancel()
		resp, err := cl.GetOperation(gctx, &pb.GetOperationRequest{OpId: op.GetOpId(), Stale: true})
		if err != nil {
			return false, err.Error()
		}
		final = resp.GetOperation()
		return isTerminal(final.GetState()), final.GetState().String()
	})
	return final
}

func isTerminal(s pb.OperationState) bool {
	switch s {
	case pb.OperationState_OPERATION_STATE_COMPLETED, pb.OperationState_OPERATION_STATE_ABORTED, pb.OperationState_OPERATION_STATE_INVALID:
		return true
	}
	return false
}

// hookSpan is when a hook ran, from its agent's start and end stamps. The
// agents here read the host clock (no skew), the clock the simnodes record
// their paused intervals on, so a stamp's local time is its true time;
// provable reports whether the wider interval the stamps' estimates allow
// ([start + θ − ε, end + θ + ε]) is inside [from, to] too (under load an
// ε of tens of ms can reach past the pause's edges, while causality keeps
// the hook inside: it starts after every ack reached the leader and ends
// before any Unpause is sent).
func hookSpan(t *testing.T, h *pb.HookRun) (lo, hi time.Time, provable func(from, to time.Time) bool) {
	t.Helper()
	for _, st := range []*pb.StampedTime{h.GetStartedAt(), h.GetEndedAt()} {
		if err := clock.ValidateStamp(st); err != nil {
			t.Fatalf("%s: %v", h.GetStepId(), err)
		}
	}
	elo, _ := clock.TrueInterval(h.GetStartedAt())
	_, ehi := clock.TrueInterval(h.GetEndedAt())
	return h.GetStartedAt().GetLocalTime().AsTime(), h.GetEndedAt().GetLocalTime().AsTime(),
		func(from, to time.Time) bool { return !elo.Before(from) && !ehi.After(to) }
}

// lastLine is the last line of a hook's output: the pg-dump hook prints
// its dump's path there.
func lastLine(h *pb.HookRun) string {
	lines := strings.Split(strings.TrimSpace(string(h.GetOutputTail())), "\n")
	return lines[len(lines)-1]
}

// pgRestore restores dump into a fresh database named db.
func pgRestore(ctx context.Context, t *testing.T, pg *pgtest.Cluster, dump, db string) string {
	t.Helper()
	dsn := pg.CreateDatabase(db)
	cmd := exec.CommandContext(ctx, filepath.Join(pg.BinDir(), "pg_restore"), "--no-owner", "--exit-on-error",
		"--host=127.0.0.1", "--port="+strconv.Itoa(pg.Port()), "--username=postgres", "--dbname="+db, dump)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pg_restore %s into %s: %v\n%s", dump, db, err, out)
	}
	return dsn
}

// restoredCheck restores a node's two dumps into fresh databases and
// checks the transfer invariant on them.
func restoredCheck(ctx context.Context, t *testing.T, pg *pgtest.Cluster, node, dumpA, dumpB, prefix string) simnode.Report {
	t.Helper()
	open := func(name, dump, db string) simnode.StoreState {
		s, err := simnode.OpenPostgresStore(ctx, name, pgRestore(ctx, t, pg, dump, db))
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = s.Close() }()
		st, err := s.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	a := open("A", dumpA, prefix+dbName(node)+"_a")
	b := open("B", dumpB, prefix+dbName(node)+"_b")
	return simnode.Check(a, b)
}

func TestBackupPlanOnPostgreSQL(t *testing.T) {
	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	pg := pgtest.Start(t, pgtest.Options{})
	pair := map[string]storePair{}
	for _, n := range ledgerNodes {
		a, err := simnode.OpenPostgresStore(ctx, "A", pg.CreateDatabase(dbName(n)+"_a"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = a.Close() })
		b, err := simnode.OpenPostgresStore(ctx, "B", pg.CreateDatabase(dbName(n)+"_b"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close() })
		pair[n] = storePair{a: a, b: b}
	}
	pg.CreateDatabase(auditorDB)
	aw := startAuditorWriter(ctx, t, pg)
	defer aw.stop()
	dumps := t.TempDir()
	c := startBackupCluster(ctx, t, pg, pair, dumps)
	t.Logf("cluster up after %v", time.Since(began).Round(time.Millisecond))
	// Let the workload write before the backup, so the dumps have
	// transfers to keep whole.
	waitFor(ctx, t, time.Minute, "transfers on every node", func() (bool, string) {
		for _, n := range ledgerNodes {
			st, err := pair[n].a.Read(ctx)
			if err != nil {
				return false, err.Error()
			}
			if len(st.Halves) < 50 {
				return false, fmt.Sprintf("%s has %d debits", n, len(st.Halves))
			}
		}
		return true, ""
	})

	var ledgerHooks []*pb.HookRef
	for _, n := range ledgerNodes {
		ledgerHooks = append(ledgerHooks, &pb.HookRef{Agent: n, Hook: "pg-dump-a"}, &pb.HookRef{Agent: n, Hook: "pg-dump-b"})
	}
	op := runBackup(ctx, t, c, &pb.BackupPlan{
		Name: "guide",
		Groups: []*pb.HookGroup{
			{Name: "ledger-databases", Hooks: ledgerHooks},
			{Name: "auditor-databases", Hooks: []*pb.HookRef{{Agent: "auditor-1", Hook: "pg-dump-auditor"}}},
		},
	}, func(o *pb.Operation) bool { return o.GetState() == pb.OperationState_OPERATION_STATE_COMPLETED })
	if op.GetState() != pb.OperationState_OPERATION_STATE_COMPLETED {
		t.Fatalf("backup ended %s: %s", op.GetState(), op.GetReason())
	}
	t.Logf("backup %s completed: restore point %s ±%v, hold %v", op.GetOpId(), op.GetWindow().GetRestorePoint().AsTime().UTC().Format(time.RFC3339Nano),
		time.Duration(op.GetWindow().GetUncertaintyNs()), time.Duration(op.GetHoldNs()))

	// The oracle: every during hook ran inside every target's paused
	// interval (true time, from its agent's stamps and their estimates),
	// every Ledger hook strictly before the Auditor hook.
	var ledgerEnd, auditorStart, auditorEnd time.Time
	var checked, proved int
	var mu sync.Mutex
	for _, h := range op.GetBackup().GetHooks() {
		if h.GetState() != pb.HookState_HOOK_STATE_SUCCEEDED {
			t.Fatalf("%s: %s exit %d: %s\n%s", h.GetStepId(), h.GetState(), h.GetExitCode(), h.GetMessage(), h.GetOutputTail())
		}
		lo, hi, provable := hookSpan(t, h)
		mu.Lock()
		switch h.GetGroup() {
		case "ledger-databases":
			if hi.After(ledgerEnd) {
				ledgerEnd = hi
			}
		case "auditor-databases":
			auditorStart, auditorEnd = lo, hi
		}
		mu.Unlock()
		for _, tg := range op.GetTargets() {
			inside := false
			for _, iv := range c.Node(tg.GetNode()).Sim.PausedIntervals() {
				if !iv.Start.After(lo) && !iv.End.IsZero() && !iv.End.Before(hi) {
					inside = true
					if provable(iv.Start, iv.End) {
						proved++
					}
				}
			}
			checked++
			if !inside {
				t.Errorf("hook %s ran within [%s, %s]: not inside a paused interval of %s (%v)", h.GetStepId(), lo, hi, tg.GetNode(), c.Node(tg.GetNode()).Sim.PausedIntervals())
			}
		}
	}
	t.Logf("hooks inside every target's paused interval: %d of %d (hook, target) pairs, %d of them provable from the stamps' estimates alone", checked, checked, proved)
	if !ledgerEnd.Before(auditorStart) {
		t.Errorf("the last Ledger hook ended by %s, not strictly before the Auditor hook started at %s", ledgerEnd, auditorStart)
	}

	// Restoring the dumps (pg_restore into fresh databases) gives a
	// consistent state: the transfer invariant holds on every node.
	for _, n := range ledgerNodes {
		var dumpA, dumpB string
		for _, h := range op.GetBackup().GetHooks() {
			if h.GetRef().GetAgent() == n {
				if h.GetRef().GetHook() == "pg-dump-a" {
					dumpA = lastLine(h)
				} else {
					dumpB = lastLine(h)
				}
			}
		}
		r := restoredCheck(ctx, t, pg, n, dumpA, dumpB, "restored_")
		if err := r.Err(); err != nil {
			t.Errorf("node %s: restored dumps break the transfer invariant: %v", n, err)
		}
		if r.DebitsA == 0 {
			t.Errorf("node %s: restored dumps hold no transfers: the workload did not run", n)
		}
		t.Logf("node %s: restored dumps hold %d debits, %d credits, total %d of %d", n, r.DebitsA, r.CreditsB, r.ActualTotal, r.ExpectedTotal)
	}

	// The Auditor kept taking writes while the Ledger was paused, and its
	// restored dump is the log up to some point no earlier than the
	// Ledger dumps' end.
	var auditorDump string
	for _, h := range op.GetBackup().GetHooks() {
		if h.GetGroup() == "auditor-databases" {
			auditorDump = lastLine(h)
		}
	}
	src := pg.Connect(ctx, auditorDB)
	var during int64
	if err := src.QueryRow(ctx, `SELECT count(*) FROM audit_log WHERE at > $1 AND at < $2`, ledgerEnd, auditorStart).Scan(&during); err != nil {
		t.Fatal(err)
	}
	var duringHold int64
	if err := src.QueryRow(ctx, `SELECT count(*) FROM audit_log WHERE at > $1 AND at < $2`, op.GetWindow().GetStart().AsTime(), op.GetWindow().GetEnd().AsTime()).Scan(&duringHold); err != nil {
		t.Fatal(err)
	}
	if duringHold == 0 {
		t.Errorf("the Auditor database took no writes while the Ledger cluster was paused")
	}
	pgRestore(ctx, t, pg, auditorDump, "restored_auditor")
	rc := pg.Connect(ctx, "restored_auditor")
	var n, maxSeq int64
	var last time.Time
	if err := rc.QueryRow(ctx, `SELECT count(*), max(seq), max(at) FROM audit_log`).Scan(&n, &maxSeq, &last); err != nil {
		t.Fatal(err)
	}
	if n != maxSeq || last.Before(ledgerEnd) || last.After(auditorEnd) {
		t.Errorf("restored Auditor log: %d rows up to seq %d, last at %s; want a gapless log whose last write is between the Ledger dumps' end %s and the Auditor dump's end %s",
			n, maxSeq, last, ledgerEnd, auditorEnd)
	}
	t.Logf("Auditor: %d writes while paused, %d between the Ledger dumps and its own; restored log of %d rows", duringHold, during, n)

	// Negative control: the same dumps taken one after the other without a
	// pause break the invariant (a transfer lands between them).
	broken := 0
	for try := 0; try < 3 && broken == 0; try++ {
		node := ledgerNodes[try%len(ledgerNodes)]
		env := map[string]string{hook.EnvOpID: fmt.Sprintf("unpaused-%d", try), hook.EnvStepID: "control/0"}
		ex := &hook.Executor{Label: "control"}
		ra := ex.Run(ctx, dumpHook("a", pgDumpScript(t), dbName(node)+"_a", pg, dumps), env)
		time.Sleep(2 * gap) // the gap a pause would have covered
		rb := ex.Run(ctx, dumpHook("b", pgDumpScript(t), dbName(node)+"_b", pg, dumps), env)
		if ra.GetState() != pb.HookState_HOOK_STATE_SUCCEEDED || rb.GetState() != pb.HookState_HOOK_STATE_SUCCEEDED {
			t.Fatalf("control dumps: %s %s / %s %s", ra.GetState(), ra.GetMessage(), rb.GetState(), rb.GetMessage())
		}
		if restoredCheck(ctx, t, pg, node, lastLine(ra), lastLine(rb), fmt.Sprintf("control%d_", try)).Err() != nil {
			broken++
		}
	}
	if broken == 0 {
		t.Errorf("negative control: 3 pairs of dumps taken without a pause under load all kept the invariant: the check cannot fail")
	}

	// A failing Ledger hook with on_error abort: every node is unpaused,
	// the op ends ABORTED naming the agent and hook, no completed entry,
	// and the Auditor hook never runs.
	failed := runBackup(ctx, t, c, &pb.BackupPlan{
		Name: "failing",
		Groups: []*pb.HookGroup{
			{Name: "ledger-databases", Hooks: []*pb.HookRef{{Agent: "ledger-1", Hook: "pg-dump-a"}, {Agent: "ledger-2", Hook: devcluster.HookFail, OnError: pb.HookOnError_HOOK_ON_ERROR_ABORT}}},
			{Name: "auditor-databases", Hooks: []*pb.HookRef{{Agent: "auditor-1", Hook: "pg-dump-auditor"}}},
		},
	}, func(o *pb.Operation) bool { return strings.Contains(o.GetReason(), "backup aborted") })
	if failed.GetState() != pb.OperationState_OPERATION_STATE_ABORTED || !strings.Contains(failed.GetReason(), "ledger-2") ||
		!strings.Contains(failed.GetReason(), devcluster.HookFail) || !strings.Contains(failed.GetReason(), "exit code 1") {
		t.Fatalf("failing backup ended %s: %s", failed.GetState(), failed.GetReason())
	}
	for _, h := range failed.GetBackup().GetHooks() {
		if h.GetGroup() == "auditor-databases" && h.GetState() != pb.HookState_HOOK_STATE_SKIPPED {
			t.Errorf("Auditor hook after the abort: %s", h.GetState())
		}
	}
	if _, err := os.Stat(filepath.Join(dumps, failed.GetOpId(), auditorDB+".dump")); !os.IsNotExist(err) {
		t.Errorf("the Auditor database was dumped for the aborted backup (%v)", err)
	}
	for _, n := range append(append([]string(nil), ledgerNodes...), "auditor-1") {
		if ivs := c.Node(n).Sim.PausedIntervals(); len(ivs) > 0 && ivs[len(ivs)-1].End.IsZero() {
			t.Errorf("%s is still paused after the aborted backup", n)
		}
	}
	cl, err := c.Client(c.Leader())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.GetBackup(ctx, &pb.GetBackupRequest{BackupId: failed.GetOpId()}); status.Code(err) != codes.NotFound {
		t.Errorf("aborted backup's catalog entry: %v, want NOT_FOUND", err)
	}
	list, err := cl.ListBackups(ctx, &pb.ListBackupsRequest{})
	if err != nil || len(list.GetBackups()) != 1 || list.GetBackups()[0].GetOpId() != op.GetOpId() {
		t.Errorf("catalog of backups: %v %v, want only %s", list.GetBackups(), err, op.GetOpId())
	}
	aw.stop()
	if err := <-aw.done; err != nil {
		t.Errorf("Auditor writer: %v", err)
	}
	t.Logf("total run time %v", time.Since(began).Round(time.Millisecond))
}
