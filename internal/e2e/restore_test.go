package e2e

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stillpoint-dev/stillpoint/internal/pgtest"
	"github.com/stillpoint-dev/stillpoint/internal/simnode"
	"github.com/stillpoint-dev/stillpoint/internal/timefmt"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// target is one instant both clusters are restored to.
type target struct {
	label string
	at    time.Time
	// op is the completed operation whose restore point at is; nil for an
	// instant of active load (negative control).
	op *pb.Operation
	// litA and litB are recovery_target_time for each server, in its zone
	// with the offset.
	litA, litB string
	// want is, per node, how many transfers were committed before at
	// (restore points only: nothing is in flight there).
	want map[string]int
	// inGap counts transfers whose debit was written before at and whose
	// credit after it, by the workload's own stamps (each taken just before
	// its commit): roughly how many a restore to at cuts in half.
	inGap int
}

// pgLiteral renders t for recovery_target_time in zone loc with its
// offset. PostgreSQL keeps microseconds, so t is truncated to the
// microsecond first: the literal then names exactly the instant the server
// will use. timefmt.InZone appends " (zone name)" after the RFC 3339 form;
// the server takes the RFC 3339 part.
func pgLiteral(t time.Time, loc *time.Location) string {
	lit, _, _ := strings.Cut(timefmt.InZone(t.Truncate(time.Microsecond), loc), " ")
	return lit
}

// buildTargets makes one target per completed restore point, then one per
// instant of active load.
func buildTargets(run cycleRun, final finalState, locA, locB *time.Location) []target {
	var out []target
	add := func(label string, at time.Time, op *pb.Operation) {
		tg := target{label: label, at: at, op: op, litA: pgLiteral(at, locA), litB: pgLiteral(at, locB), want: map[string]int{}}
		at = at.Truncate(time.Microsecond)
		for node, st := range final {
			for id, debit := range st[0].Halves {
				if debit.At.Before(at) {
					tg.want[node]++
					if credit, ok := st[1].Halves[id]; ok && !credit.At.Before(at) {
						tg.inGap++
					}
				}
			}
		}
		out = append(out, tg)
	}
	for i, op := range run.ops {
		add(fmt.Sprintf("pause-%d", i+1), op.GetWindow().GetRestorePoint().AsTime(), op)
	}
	for i, at := range run.loads {
		add(fmt.Sprintf("load-%d", i+1), at, nil)
	}
	return out
}

// checkLiteral asserts the source server reads lit as exactly the instant
// at (to the microsecond) and that lit carries its zone's offset.
func checkLiteral(ctx context.Context, t *testing.T, src *pgtest.Cluster, zone, lit string, at time.Time) {
	t.Helper()
	conn := src.Connect(ctx, "postgres")
	defer func() { _ = conn.Close(ctx) }()
	var tz string
	var got time.Time
	if err := conn.QueryRow(ctx, "SELECT current_setting('TimeZone'), $1::text::timestamptz", lit).Scan(&tz, &got); err != nil {
		t.Fatalf("server on port %d: parse %q: %v", src.Port(), lit, err)
	}
	if tz != zone {
		t.Fatalf("server on port %d runs in zone %q, want %q", src.Port(), tz, zone)
	}
	loc, _ := time.LoadLocation(zone)
	if off := at.In(loc).Format("-07:00"); !strings.HasSuffix(lit, off) {
		t.Errorf("recovery_target_time %q lacks the %s offset %s", lit, zone, off)
	}
	if want := at.Truncate(time.Microsecond); !got.Equal(want) {
		t.Errorf("server in %s reads %q as %s, want %s", zone, lit, timefmt.UTC(got), timefmt.UTC(want))
	}
}

// restoreSource is where restores come from: one base backup per cluster
// (reused by every restore) and its WAL archive.
type restoreSource struct {
	backupA, backupB   string
	archiveA, archiveB string
}

// restoreResult is what one restore of both clusters showed.
type restoreResult struct {
	// lastA and lastB are the last commits replayed (zero: none).
	lastA, lastB time.Time
	// reports is each node's invariant report on the restored pair.
	reports map[string]simnode.Report
	// ok: restored, promoted and verified without error.
	ok bool
}

// broken reports whether the invariant failed on some node.
func (r restoreResult) broken() bool {
	for _, rep := range r.reports {
		if !rep.Consistent() {
			return true
		}
	}
	return false
}

// recoveryTarget is the restored server's recovery target: lit verbatim
// (pgtest.Restore would write the target in UTC).
func recoveryTarget(lit string) map[string]string {
	return map[string]string{
		"recovery_target_time":      "'" + lit + "'",
		"recovery_target_inclusive": "on",
	}
}

// restoreAndVerify restores cluster A and B to tg into fresh data dirs from
// the base backups and archived WAL (recovery_target_action = promote) and
// checks the invariant of every node's pair of databases. At a restore
// point the invariant must hold with exactly the transfers committed before
// the pause; at a load instant the result is returned for the caller.
func restoreAndVerify(ctx context.Context, t *testing.T, src restoreSource, tg target) restoreResult {
	dstA := pgtest.Restore(t, pgtest.RestoreOptions{BaseBackup: src.backupA, ArchiveDir: src.archiveA, Settings: recoveryTarget(tg.litA)})
	dstB := pgtest.Restore(t, pgtest.RestoreOptions{BaseBackup: src.backupB, ArchiveDir: src.archiveB, Settings: recoveryTarget(tg.litB)})
	res := restoreResult{reports: map[string]simnode.Report{}}
	res.lastA = lastReplayed(ctx, t, dstA, zoneA)
	res.lastB = lastReplayed(ctx, t, dstB, zoneB)
	at := tg.at.Truncate(time.Microsecond)
	for _, last := range []time.Time{res.lastA, res.lastB} {
		if last.After(at) {
			t.Errorf("%s: replayed a commit at %s, after the target %s", tg.label, timefmt.UTC(last), timefmt.UTC(at))
		}
	}
	for _, node := range ledgerNodes {
		db := dbName(node)
		rep, err := simnode.VerifyPostgres(ctx, dstA.DSN(db), dstB.DSN(db))
		if err != nil {
			t.Fatalf("%s: node %s: %v", tg.label, node, err)
		}
		res.reports[node] = rep
		if tg.op == nil {
			continue
		}
		if err := rep.Err(); err != nil {
			t.Errorf("%s (op %s, restore point %s): node %s: %v", tg.label, tg.op.GetOpId(), timefmt.UTC(tg.at), node, err)
		}
		if w := tg.want[node]; rep.Paired != w || rep.DebitsA != w || rep.CreditsB != w {
			t.Errorf("%s: node %s restored %d debits, %d credits, %d paired; %d transfers were committed before the restore point",
				tg.label, node, rep.DebitsA, rep.CreditsB, rep.Paired, w)
		}
	}
	res.ok = !t.Failed()
	return res
}

// lastReplayed checks the restored server kept its zone and returns the
// timestamp of the last commit it replayed.
func lastReplayed(ctx context.Context, t *testing.T, dst *pgtest.Cluster, zone string) time.Time {
	t.Helper()
	conn := dst.Connect(ctx, "postgres")
	defer func() { _ = conn.Close(ctx) }()
	var tz string
	var last *time.Time
	if err := conn.QueryRow(ctx, "SELECT current_setting('TimeZone'), pg_last_xact_replay_timestamp()").Scan(&tz, &last); err != nil {
		t.Fatalf("restored server on port %d: %v", dst.Port(), err)
	}
	if tz != zone {
		t.Errorf("restored server on port %d runs in zone %q, want %q (from the base backup)", dst.Port(), tz, zone)
	}
	if last == nil {
		return time.Time{}
	}
	return *last
}

// summary is the invariant column: per node, consistent or what broke.
func (r restoreResult) summary(tg target) string {
	nodes := make([]string, 0, len(r.reports))
	for n := range r.reports {
		nodes = append(nodes, n)
	}
	sort.Strings(nodes)
	if len(nodes) == 0 {
		return "not checked"
	}
	if !r.broken() {
		total := 0
		for _, n := range nodes {
			total += r.reports[n].Paired
		}
		s := fmt.Sprintf("consistent on %d nodes, %d transfers", len(nodes), total)
		if tg.op != nil {
			s += " (= committed before the pause)"
			if !r.ok {
				s = "WRONG: " + s
			}
		}
		return s
	}
	var parts []string
	for _, n := range nodes {
		rep := r.reports[n]
		if rep.Consistent() {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s: %d debits without credit, total off by %d", n, rep.MissingCredit, rep.ActualTotal-rep.ExpectedTotal))
	}
	return "BROKEN: " + strings.Join(parts, "; ")
}
