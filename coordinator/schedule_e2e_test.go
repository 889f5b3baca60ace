package coordinator_test

import (
	"context"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/stillpoint-dev/stillpoint/coordinator"
	"github.com/stillpoint-dev/stillpoint/coordinator/fsm"
	"github.com/stillpoint-dev/stillpoint/internal/devcluster"
	"github.com/stillpoint-dev/stillpoint/internal/testcluster"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// schedFire is one fired instant as the FSM audit recorded it.
type schedFire struct {
	instant time.Time
	missed  int
	outcome string // "op X", "no op: …", or "" while pending
}

var (
	fireRE     = regexp.MustCompile(`^plan (\S+) fired (\S+): (.*?)(?:; (\d+) earlier instants missed from \S+)?$`)
	completeRE = regexp.MustCompile(`^plan (\S+) instant (\S+): (.*)$`)
)

// scheduleFires reads a plan's fires from the audit, oldest first; a fire
// recorded twice for one instant fails the test.
func scheduleFires(t *testing.T, f *fsm.FSM, plan string) []schedFire {
	t.Helper()
	audit := f.Audit(0)
	var out []schedFire
	byInstant := map[time.Time]int{}
	for i := len(audit) - 1; i >= 0; i-- {
		a := audit[i]
		if a.GetAction() != fsm.AuditScheduleFire {
			continue
		}
		if m := fireRE.FindStringSubmatch(a.GetDetail()); m != nil && m[1] == plan {
			at, err := time.Parse(time.RFC3339Nano, m[2])
			if err != nil {
				t.Fatal(err)
			}
			if _, dup := byInstant[at]; dup {
				t.Fatalf("instant %s fired twice: %v", m[2], audit)
			}
			missed, _ := strconv.Atoi(m[4])
			fire := schedFire{instant: at, missed: missed}
			if m[3] != "op starting" {
				fire.outcome = m[3]
			}
			byInstant[at] = len(out)
			out = append(out, fire)
			continue
		}
		if m := completeRE.FindStringSubmatch(a.GetDetail()); m != nil && m[1] == plan {
			at, err := time.Parse(time.RFC3339Nano, m[2])
			if err != nil {
				t.Fatal(err)
			}
			i, ok := byInstant[at]
			if !ok || out[i].outcome != "" {
				t.Fatalf("outcome %q of an instant not pending: %v", a.GetDetail(), out)
			}
			out[i].outcome = m[3]
		}
	}
	return out
}

// A plan scheduled every 3 s fires on a 3-server cluster; its leader is
// killed after the second fire; across the kill every instant of the
// schedule from the first fire to the last is accounted for exactly once:
// fired once (one op, or a recorded reason), or counted as missed by the
// next fire (run_once: instants that passed while no leader could fire
// them run once, for the latest). No instant has two ops. Retention
// (keep_last 2) prunes the older entries, running the delete hook once per
// pruned entry.
func TestScheduledBackupsAcrossLeaderKill(t *testing.T) {
	c := startDev(t, func(cfg *devcluster.Config) {
		// Not about admission: a loaded box swings loopback offsets past
		// the production max_drift.
		base := cfg.Runtime
		cfg.Runtime = func(rc *pb.RuntimeConfig) {
			base(rc)
			rc.MaxDriftNs = int64(time.Second)
		}
	})
	const period = 3 * time.Second
	plan := &pb.BackupPlan{
		Name:       "every3s",
		Groups:     []*pb.HookGroup{{Name: "ledger-databases", Hooks: []*pb.HookRef{{Agent: "ledger-1", Hook: devcluster.HookSnapshot}}}},
		Schedule:   "@every 3s",
		Retention:  &pb.Retention{KeepLast: 2},
		DeleteHook: &pb.HookRef{Agent: "ledger-2", Hook: devcluster.HookSnapshot},
	}
	leader := func() (int, *coordinator.Server) {
		var i int
		testcluster.WaitFor(t, 30*time.Second, func() (bool, string) {
			i = c.Leader()
			return i >= 0, "no leader"
		})
		return i, c.Servers()[i]
	}
	apply := func(cmd proto.Message) {
		t.Helper()
		testcluster.WaitFor(t, 30*time.Second, func() (bool, string) {
			_, s := leader()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if _, err := s.Apply(ctx, cmd); err != nil {
				return false, err.Error()
			}
			return true, ""
		})
	}
	apply(&pb.SetBackupPlanCommand{Plan: plan, Actor: "test"})

	// completedSince waits until n backups fired for instants after since
	// have COMPLETED, and returns every fire.
	completedSince := func(since time.Time, n int) []schedFire {
		t.Helper()
		var fires []schedFire
		testcluster.WaitFor(t, 120*time.Second, func() (bool, string) {
			_, s := leader()
			fires = scheduleFires(t, s.FSM(), plan.GetName())
			done := 0
			for _, f := range fires {
				if id, ok := strings.CutPrefix(f.outcome, "started op "); ok && f.instant.After(since) {
					if op, found := s.FSM().Operation(id); found && op.GetState() == pb.OperationState_OPERATION_STATE_COMPLETED {
						done++
					}
				}
			}
			last := "no fire yet"
			if len(fires) > 0 {
				f := fires[len(fires)-1]
				last = "last fire " + f.instant.Format(time.RFC3339) + ": " + f.outcome
				if id, ok := strings.CutPrefix(f.outcome, "started op "); ok {
					op, _ := s.FSM().Operation(id)
					last += " " + op.GetState().String() + " " + op.GetReason()
				}
			}
			return done >= n, strconv.Itoa(done) + " scheduled backups completed since " + since.Format(time.RFC3339Nano) + "; " + last
		})
		return fires
	}
	before := completedSince(time.Time{}, 2)
	// Kill the leader and a follower: no quorum, no leader, while at least
	// two instants pass; then the follower comes back and, with the third
	// server, elects a new leader.
	killed, _ := leader()
	other := (killed + 1) % 3
	t.Logf("killing leader server-%d and server-%d after %d fires", killed+1, other+1, len(before))
	c.KillServer(killed)
	c.KillServer(other)
	killedAt := time.Now()
	testcluster.WaitFor(t, 10*time.Second, func() (bool, string) {
		left := time.Until(killedAt.Add(2*period + period/2))
		return left <= 0, "instants still to pass while leaderless: " + left.String()
	})
	if err := c.RestartServer(other); err != nil {
		t.Fatal(err)
	}
	// Two more backups under the new leader.
	completedSince(killedAt, 2)
	idx, s := leader()
	if idx == killed || c.Servers()[killed] != nil {
		t.Fatalf("server-%d leads again", killed+1)
	}
	// Stop the schedule (retention goes on) and let the last ops end.
	unscheduled := proto.Clone(plan).(*pb.BackupPlan)
	unscheduled.Schedule = ""
	apply(&pb.SetBackupPlanCommand{Plan: unscheduled, Actor: "test"})
	testcluster.WaitFor(t, 60*time.Second, func() (bool, string) {
		if active := s.FSM().ActiveOperations(); len(active) > 0 {
			return false, "op " + active[0].GetOpId() + " still running"
		}
		if n := len(s.FSM().PlanBackups(plan.GetName())); n != 2 {
			return false, strconv.Itoa(n) + " catalog entries of the plan"
		}
		return true, ""
	})

	fires := scheduleFires(t, s.FSM(), plan.GetName())
	first := fires[0].instant
	missedTotal, refused := 0, 0
	for i, f := range fires {
		if off := f.instant.Sub(first); off%period != 0 {
			t.Fatalf("instant %v is not on the schedule from %v", f.instant, first)
		}
		if i > 0 {
			gap := int(f.instant.Sub(fires[i-1].instant)/period) - 1
			if gap != f.missed {
				t.Fatalf("between %v and %v: %d instants not fired, %d recorded missed (fires %v)", fires[i-1].instant, f.instant, gap, f.missed, fires)
			}
			missedTotal += gap
		}
		switch {
		case strings.HasPrefix(f.outcome, "started op "):
		case strings.HasPrefix(f.outcome, "no op: "):
			refused++
		default:
			t.Fatalf("instant %v has outcome %q", f.instant, f.outcome)
		}
	}
	// The leaderless gap: its instants are counted missed by the new
	// leader's first fire, which runs the latest of them once (its outcome
	// is an op, or why admission refused it).
	gapFire := -1
	for i, f := range fires {
		if f.instant.After(killedAt) {
			gapFire = i
			break
		}
	}
	if gapFire < 0 || fires[gapFire].missed < 1 || fires[gapFire].outcome == "" {
		t.Fatalf("first fire after the kill at %v: %+v; want the latest missed instant run once, earlier ones counted missed (fires %+v)", killedAt, fires[max(gapFire, 0)], fires)
	}
	// One op per fired instant that started one, none for another.
	ops := map[time.Time][]string{}
	for _, op := range s.FSM().Operations("", 0) {
		if op.GetBackup().GetPlan().GetName() != plan.GetName() {
			continue
		}
		if op.GetBackup().GetScheduledFor() == nil {
			t.Fatalf("op %s of the scheduled plan has no scheduled_for", op.GetOpId())
		}
		at := op.GetBackup().GetScheduledFor().AsTime()
		ops[at] = append(ops[at], op.GetOpId())
	}
	var completedIDs []string
	for _, f := range fires {
		ids := ops[f.instant]
		delete(ops, f.instant)
		if id, ok := strings.CutPrefix(f.outcome, "started op "); ok {
			if len(ids) != 1 || ids[0] != id {
				t.Fatalf("instant %v: ops %v, want exactly %s", f.instant, ids, id)
			}
			if op, _ := s.FSM().Operation(id); op.GetState() == pb.OperationState_OPERATION_STATE_COMPLETED {
				completedIDs = append(completedIDs, id)
			}
		} else if len(ids) != 0 {
			t.Fatalf("instant %v (%s) has ops %v", f.instant, f.outcome, ids)
		}
	}
	if len(ops) != 0 {
		t.Fatalf("ops for instants never fired: %v", ops)
	}
	t.Logf("%d instants fired from %v to %v (%d refused: cluster held), %d missed across the kill of server-%d; %d backups completed",
		len(fires), first.Format(time.RFC3339), fires[len(fires)-1].instant.Format(time.RFC3339), refused, missedTotal, killed+1, len(completedIDs))

	// Retention: the two newest completed backups stay; every other was
	// pruned after its delete hook ran exactly once.
	kept := map[string]bool{}
	for _, rp := range s.FSM().PlanBackups(plan.GetName()) {
		kept[rp.GetOpId()] = true
	}
	if len(kept) != 2 {
		t.Fatalf("catalog keeps %d entries of the plan, want keep_last 2: %v", len(kept), kept)
	}
	var pruned []string
	for _, id := range completedIDs {
		if !kept[id] {
			pruned = append(pruned, id)
		}
	}
	if len(pruned) < 1 {
		t.Fatalf("nothing pruned among %v", completedIDs)
	}
	dir := c.Node("ledger-2").SnapshotDir()
	testcluster.WaitFor(t, 30*time.Second, func() (bool, string) {
		ents, _ := os.ReadDir(dir)
		runs := map[string]int{}
		for _, e := range ents {
			if id, _, ok := strings.Cut(e.Name(), "-retention-delete."); ok {
				runs[id]++
			}
		}
		for _, id := range pruned {
			if runs[id] != 1 {
				return false, "delete hook of " + id + " ran " + strconv.Itoa(runs[id]) + " times"
			}
			delete(runs, id)
		}
		if len(runs) != 0 {
			ids := make([]string, 0, len(runs))
			for id := range runs {
				ids = append(ids, id)
			}
			sort.Strings(ids)
			return false, "delete hook ran for entries not pruned: " + strings.Join(ids, ", ")
		}
		return true, ""
	})
	gctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := client(t, c, idx).GetBackup(gctx, &pb.GetBackupRequest{BackupId: pruned[0]}); status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), "pruned by plan every3s's retention") {
		t.Fatalf("GetBackup of pruned %s: %v", pruned[0], err)
	}
	rp := s.FSM().Audit(0)
	var prunes int
	for _, a := range rp {
		if a.GetAction() == fsm.AuditBackupsPrune {
			prunes++
		}
	}
	t.Logf("pruned %d entries in %d commands; kept %v", len(pruned), prunes, kept)
}
