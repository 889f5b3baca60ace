package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stillpoint-dev/stillpoint/internal/pgtest"
	"github.com/stillpoint-dev/stillpoint/internal/simnode"
	"github.com/stillpoint-dev/stillpoint/internal/timefmt"
)

// The two PostgreSQL servers run in different zones, so every
// recovery_target_time must carry the right offset for its server.
const (
	zoneA = "Asia/Tokyo"
	zoneB = "America/New_York"
	// beta is target_clock_bound: the databases share this host's clock.
	beta = time.Millisecond
	// cycles is how many pauses run under load; loadTries how many
	// instants of active load the negative control restores to.
	cycles    = 5
	loadTries = 6
	// gap is the workload's non-atomic gap between the debit in A and the
	// credit in B: wide, so an instant of active load is likely to cut a
	// transfer in half.
	gap = 25 * time.Millisecond
)

var ledgerNodes = []string{"ledger-1", "ledger-2", "ledger-3"}

// TestRestorePointsOnPostgreSQL is issue 7: pause a 3-node Ledger cluster
// under load several times, restore two independent PostgreSQL clusters
// (one holding every node's debits, the other every node's credits) to each
// completed restore point from a base backup plus archived WAL, and check
// the transfer invariant per node; then restore to instants of active load
// and show the check catches the transfers cut in half there.
func TestRestorePointsOnPostgreSQL(t *testing.T) {
	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	locA, err := timefmt.LoadZone(zoneA)
	if err != nil {
		t.Fatal(err)
	}
	locB, err := timefmt.LoadZone(zoneB)
	if err != nil {
		t.Fatal(err)
	}
	srcA := startSource(t, zoneA)
	srcB := startSource(t, zoneB)
	pair := openStores(ctx, t, srcA, srcB, ledgerNodes)
	backupA, backupB := srcA.BaseBackup(), srcB.BaseBackup()
	t.Logf("PostgreSQL A (timezone %s) on port %d, B (timezone %s) on port %d; base backups taken after %v",
		zoneA, srcA.Port(), zoneB, srcB.Port(), time.Since(began).Round(time.Millisecond))

	c := startCluster(ctx, t, pair)
	run := runCycles(ctx, t, c)
	stopAt := time.Now()
	c.Stop(ctx)
	srcA.ArchiveNow(ctx)
	srcB.ArchiveNow(ctx)
	t.Logf("%d completed pauses (%d missed%s) and %d load instants in %v; workload stopped, WAL archived",
		len(run.ops), len(run.missed), strings.Join(append([]string{""}, run.missed...), "; "), len(run.loads), stopAt.Sub(run.began).Round(time.Millisecond))

	final := readFinal(ctx, t, pair)
	targets := buildTargets(run, final, locA, locB)
	for _, tg := range targets {
		checkLiteral(ctx, t, srcA, zoneA, tg.litA, tg.at)
		checkLiteral(ctx, t, srcB, zoneB, tg.litB, tg.at)
	}

	results := make([]restoreResult, len(targets))
	src := restoreSource{backupA: backupA, backupB: backupB, archiveA: srcA.ArchiveDir(), archiveB: srcB.ArchiveDir()}
	t.Run("restore", func(t *testing.T) {
		for i, tg := range targets {
			t.Run(tg.label, func(t *testing.T) {
				t.Parallel()
				results[i] = restoreAndVerify(ctx, t, src, tg)
			})
		}
	})
	t.Log("\n" + renderTable(targets, results))

	// Negative control: the check must be able to fail.
	detected := 0
	var tries []string
	for i, tg := range targets {
		if tg.op != nil {
			continue
		}
		tries = append(tries, tg.label+" at "+timefmt.UTC(tg.at))
		if results[i].broken() {
			detected++
		}
	}
	if detected == 0 {
		t.Errorf("negative control: none of %d restores to instants of active load (gap %v) broke the invariant: %s",
			len(tries), gap, strings.Join(tries, "; "))
	}
	t.Logf("negative control: %d of %d restores inside active load broke the invariant; total run time %v",
		detected, len(tries), time.Since(began).Round(time.Millisecond))
}

// startSource starts one source PostgreSQL cluster with WAL archiving in
// zone. archive_timeout is off: the test switches WAL itself (ArchiveNow),
// so the archive holds a few segments instead of one per second.
func startSource(t *testing.T, zone string) *pgtest.Cluster {
	t.Helper()
	return pgtest.Start(t, pgtest.Options{WALArchive: true, Settings: map[string]string{
		"timezone":        "'" + zone + "'",
		"archive_timeout": "0",
	}})
}

// storePair is a node's two stores: debits in cluster A, credits in B, each
// in a database named after the node.
type storePair struct {
	a, b *simnode.PostgresStore
}

// dbName is the database that holds a node's store in each cluster.
func dbName(node string) string { return strings.ReplaceAll(node, "-", "_") }

// openStores creates each node's database in both clusters and opens its
// stores (tables created); they are closed at cleanup, after the cluster
// that writes to them has stopped.
func openStores(ctx context.Context, t *testing.T, srcA, srcB *pgtest.Cluster, nodes []string) map[string]storePair {
	t.Helper()
	out := map[string]storePair{}
	for _, n := range nodes {
		a, err := simnode.OpenPostgresStore(ctx, "A", srcA.CreateDatabase(dbName(n)))
		if err != nil {
			t.Fatalf("node %s: %v", n, err)
		}
		t.Cleanup(func() { _ = a.Close() })
		b, err := simnode.OpenPostgresStore(ctx, "B", srcB.CreateDatabase(dbName(n)))
		if err != nil {
			t.Fatalf("node %s: %v", n, err)
		}
		t.Cleanup(func() { _ = b.Close() })
		out[n] = storePair{a: a, b: b}
	}
	return out
}

// finalState is what each node's source databases hold once the workload
// stopped: every half with its write stamp.
type finalState map[string][2]simnode.StoreState

// readFinal reads every node's source stores after the workload stopped and
// checks they hold the invariant (every admitted transfer writes both
// halves before the node stops).
func readFinal(ctx context.Context, t *testing.T, pair map[string]storePair) finalState {
	t.Helper()
	out := finalState{}
	for _, n := range ledgerNodes {
		a, err := pair[n].a.Read(ctx)
		if err != nil {
			t.Fatalf("node %s: %v", n, err)
		}
		b, err := pair[n].b.Read(ctx)
		if err != nil {
			t.Fatalf("node %s: %v", n, err)
		}
		if err := simnode.Check(a, b).Err(); err != nil {
			t.Fatalf("node %s: source databases after the workload stopped: %v", n, err)
		}
		out[n] = [2]simnode.StoreState{a, b}
	}
	return out
}
