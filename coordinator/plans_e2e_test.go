package coordinator_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/stillpoint-dev/stillpoint/coordinator"
	"github.com/stillpoint-dev/stillpoint/coordinator/fsm"
	"github.com/stillpoint-dev/stillpoint/internal/devcluster"
	"github.com/stillpoint-dev/stillpoint/internal/hook"
	"github.com/stillpoint-dev/stillpoint/internal/testcluster"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// startPlansDev is a dev cluster of two Ledger nodes and one Auditor node
// whose agents define backup hooks (the dev hooks snapshot and fail, and
// pg-dump), as do the servers ("coordinator").
func startPlansDev(t *testing.T) *devcluster.Cluster {
	def := func(name string) hook.Definition {
		return hook.Definition{Name: name, Command: "true", Timeout: time.Second}
	}
	c := startDev(t, func(cfg *devcluster.Config) {
		cfg.Nodes = []devcluster.NodeSpec{{Name: "ledger-1", Role: "ledger", Cluster: "ledger"}, {Name: "ledger-2", Role: "ledger", Cluster: "ledger"},
			{Name: "auditor-1", Role: "auditor", Cluster: "auditor"}}
		cfg.Workload.Enabled = false
		cfg.ExtraHooks = func(n devcluster.NodeSpec, _ string) []hook.Definition {
			if n.Role == "ledger" {
				return []hook.Definition{def("pg-dump"), def("vacuum")}
			}
			return []hook.Definition{def("pg-dump")}
		}
		cfg.ServerHooks = []hook.Definition{def("notify")}
	})
	testcluster.WaitFor(t, 30*time.Second, func() (bool, string) {
		l := c.Leader()
		if l < 0 {
			return false, "no leader"
		}
		n := len(c.Servers()[l].FSM().Roster(""))
		return n == 3, "roster incomplete"
	})
	return c
}

func plansE2EPlan() *pb.BackupPlan {
	return &pb.BackupPlan{
		Name: "nightly",
		Groups: []*pb.HookGroup{
			{Name: "ledger-databases", Hooks: []*pb.HookRef{{Agent: "ledger-1", Hook: "pg-dump"}, {Agent: "ledger-2", Hook: "pg-dump"}}},
			{Name: "auditor-databases", Hooks: []*pb.HookRef{{Agent: "auditor-1", Hook: "pg-dump", OnError: pb.HookOnError_HOOK_ON_ERROR_CONTINUE}}},
		},
		After: []*pb.HookRef{{Agent: "coordinator", Hook: "notify"}},
		Databases: []*pb.PlanDatabase{
			{Name: "ledger-pg", Service: "ledger", Kind: pb.DatabaseKind_DATABASE_KIND_POSTGRES, Method: pb.RestoreMethod_RESTORE_METHOD_DUMP,
				TimeZone: "Asia/Tokyo", Hook: &pb.HookRef{Agent: "ledger-1", Hook: "pg-dump"}},
		},
		Schedule: "0 3 * * *", ScheduleTimeZone: "Asia/Tokyo",
	}
}

// TestBackupPlanBadInputStoresNothing: every acceptance case of bad input
// is refused by the API with INVALID_ARGUMENT naming the field — asked of
// the agents themselves for hook names — and nothing reaches the FSM.
func TestBackupPlanBadInputStoresNothing(t *testing.T) {
	c := startPlansDev(t)
	leader := c.Leader()
	follower := (leader + 1) % len(c.Servers())
	cl := client(t, c, follower) // writes are forwarded to the leader
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	for _, tc := range []struct {
		name   string
		mutate func(p *pb.BackupPlan)
		want   []string
	}{
		{"unknown hook", func(p *pb.BackupPlan) { p.Groups[0].Hooks[1].Hook = "pgdump" },
			[]string{`groups[0].hooks[1].hook: agent "ledger-2" has no hook named "pgdump" (it has: snapshot, fail, pg-dump, vacuum)`}},
		{"unknown agent", func(p *pb.BackupPlan) { p.Groups[1].Hooks[0].Agent = "auditor-9" },
			[]string{`groups[1].hooks[0].agent: "auditor-9" is on no cluster's roster and is not "coordinator" (roster: auditor-1, ledger-1, ledger-2)`}},
		{"unknown coordinator hook", func(p *pb.BackupPlan) { p.After[0].Hook = "page" },
			[]string{`after[0].hook: the coordinator servers' config has no hook named "page" (it has: notify)`}},
		{"cycle", func(p *pb.BackupPlan) { p.Groups[0].After = []string{"auditor-databases"} },
			[]string{`groups[0].after: cycle: ledger-databases → auditor-databases → ledger-databases`}},
		{"empty group", func(p *pb.BackupPlan) { p.Groups = append(p.Groups, &pb.HookGroup{Name: "spare"}) },
			[]string{`groups[2].hooks: group "spare" is empty`}},
		{"bad cron", func(p *pb.BackupPlan) { p.Schedule = "0 3 * *" },
			[]string{`schedule: "0 3 * *" is not a cron schedule`}},
		{"bad zone", func(p *pb.BackupPlan) { p.ScheduleTimeZone = "Asia/Tokio" },
			[]string{`schedule_time_zone: "Asia/Tokio" is not an IANA time zone`}},
		{"unknown cluster", func(p *pb.BackupPlan) { p.Clusters = []string{"ledger", "audit"} },
			[]string{`clusters[1]: no agent ever joined cluster "audit" (known clusters: auditor, ledger)`}},
		{"min hold over max hold", func(p *pb.BackupPlan) { p.MinHoldMs = (2 * time.Hour).Milliseconds() },
			[]string{`min_hold: 2h0m0s exceeds the maximum hold 1h0m0s`}},
		{"everything at once", func(p *pb.BackupPlan) {
			p.Groups[0].Hooks[1].Hook = "pgdump"
			p.Groups[1].Hooks[0].Agent = "auditor-9"
			p.Schedule = "0 3 * *"
			p.Databases[0].TimeZone = "Tokyo"
		}, []string{`groups[0].hooks[1].hook`, `groups[1].hooks[0].agent`, `schedule:`, `databases[0].time_zone`, "has 4 problems"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := plansE2EPlan()
			tc.mutate(p)
			_, err := cl.SetBackupPlan(ctx, &pb.SetBackupPlanRequest{Plan: p, RequestedBy: "alice"})
			if status.Code(err) != codes.InvalidArgument || coordinator.ReasonOf(err) != coordinator.ReasonInvalidPlan {
				t.Fatalf("err = %v, want InvalidArgument with reason %s", err, coordinator.ReasonInvalidPlan)
			}
			msg := status.Convert(err).Message()
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("missing %q in:\n%s", w, msg)
				}
			}
			if !strings.Contains(msg, "nothing was stored") {
				t.Errorf("message does not say nothing was stored: %s", msg)
			}
			var fields []string
			for _, d := range status.Convert(err).Details() {
				if br, ok := d.(*errdetails.BadRequest); ok {
					for _, v := range br.GetFieldViolations() {
						fields = append(fields, v.GetField())
					}
				}
			}
			if len(fields) == 0 || !strings.HasPrefix(tc.want[0], fields[0]) {
				t.Errorf("BadRequest fields = %v, want first %q", fields, tc.want[0])
			}
		})
	}

	// Nothing stored, nothing audited, on any server.
	for i, s := range c.Servers() {
		if ps := s.FSM().Plans(); len(ps) != 0 {
			t.Fatalf("server %d stored plans: %v", i, ps)
		}
		for _, r := range s.FSM().Audit(0) {
			if strings.HasPrefix(r.GetAction(), "backup-plan") {
				t.Fatalf("server %d audited a refused plan: %v", i, r)
			}
		}
	}
	if resp, err := cl.ListBackupPlans(ctx, &pb.ListBackupPlansRequest{}); err != nil || len(resp.GetPlans()) != 0 {
		t.Fatalf("ListBackupPlans = %v, %v", resp, err)
	}
}

// TestBackupPlanLifecycle: set (through a follower), get, list, replace,
// delete; the stored plan is stamped and audited with the actor; an
// agent whose node is gone fails validation naming it.
func TestBackupPlanLifecycle(t *testing.T) {
	c := startPlansDev(t)
	leader := c.Leader()
	cl := client(t, c, (leader+1)%len(c.Servers()))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	if _, err := cl.GetBackupPlan(ctx, &pb.GetBackupPlanRequest{Name: "nightly"}); status.Code(err) != codes.NotFound || coordinator.ReasonOf(err) != coordinator.ReasonPlanNotFound {
		t.Fatalf("get before set: %v", err)
	}
	set, err := cl.SetBackupPlan(ctx, &pb.SetBackupPlanRequest{Plan: plansE2EPlan(), RequestedBy: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	// The actor is who called (resolved by the server), never requested_by.
	if !strings.HasPrefix(set.GetPlan().GetPlan().GetUpdatedBy(), "anonymous@127.0.0.1:") || set.GetPlan().GetPlan().GetUpdatedAt().GetLocalTime() == nil {
		t.Fatalf("stored plan not stamped: %v", set.GetPlan())
	}
	got, err := cl.GetBackupPlan(ctx, &pb.GetBackupPlanRequest{Name: "nightly"})
	if err != nil {
		t.Fatal(err)
	}
	want := plansE2EPlan()
	stored := proto.Clone(got.GetPlan().GetPlan()).(*pb.BackupPlan)
	stored.UpdatedAt, stored.UpdatedBy = nil, ""
	if !proto.Equal(want, stored) {
		t.Fatalf("stored plan differs:\nwant %v\ngot  %v", want, stored)
	}
	p := plansE2EPlan()
	p.Name = "weekly"
	p.Schedule = "@weekly"
	if _, err := cl.SetBackupPlan(ctx, &pb.SetBackupPlanRequest{Plan: p, RequestedBy: "bob"}); err != nil {
		t.Fatal(err)
	}
	list, err := cl.ListBackupPlans(ctx, &pb.ListBackupPlansRequest{})
	if err != nil || len(list.GetPlans()) != 2 || list.GetPlans()[0].GetPlan().GetName() != "nightly" || list.GetPlans()[1].GetPlan().GetName() != "weekly" {
		t.Fatalf("list = %v, %v", list, err)
	}
	if _, err := cl.DeleteBackupPlan(ctx, &pb.DeleteBackupPlanRequest{Name: "weekly", RequestedBy: "carol"}); err != nil {
		t.Fatal(err)
	}
	_, err = cl.DeleteBackupPlan(ctx, &pb.DeleteBackupPlanRequest{Name: "weekly"})
	if status.Code(err) != codes.NotFound || !strings.Contains(status.Convert(err).Message(), `no backup plan is named "weekly" (plans: nightly)`) {
		t.Fatalf("second delete: %v", err)
	}
	audit := c.Servers()[c.Leader()].FSM().Audit(0)
	var actions []string
	for _, r := range audit {
		if strings.HasPrefix(r.GetAction(), "backup-plan") {
			who := r.GetActor()
			if strings.HasPrefix(who, "anonymous@127.0.0.1:") {
				who = "anonymous"
			}
			actions = append(actions, r.GetAction()+" by "+who)
		}
	}
	if got := strings.Join(actions, ", "); got != fsm.AuditPlanDelete+" by anonymous, "+fsm.AuditPlanSet+" by anonymous, "+fsm.AuditPlanSet+" by anonymous" {
		t.Fatalf("audit = %s", got)
	}

	// An agent whose node is gone cannot vouch for its hooks.
	if err := c.StopAgent(context.Background(), "ledger-2"); err != nil {
		t.Fatal(err)
	}
	waitNotAlive(t, c, "ledger-2")
	_, err = cl.SetBackupPlan(ctx, &pb.SetBackupPlanRequest{Plan: plansE2EPlan()})
	if status.Code(err) != codes.InvalidArgument ||
		!strings.Contains(status.Convert(err).Message(), `groups[0].hooks[1].hook: cannot check hook "pg-dump": agent ledger-2 is unreachable (its agent `) {
		t.Fatalf("plan naming a stopped agent: %v", err)
	}
}

// TestRestorePlanOfRealBackups: two backups of a plan, each a real pause
// whose Ledger then Auditor hooks wrote an artefact; the restore plan of
// one lists both databases in the guide's order with the restore point in
// each database's zone with its offset and the artefact each hook
// printed; naming both backups is refused, naming each.
func TestRestorePlanOfRealBackups(t *testing.T) {
	c := startPlansDev(t)
	cl := client(t, c, (c.Leader()+1)%len(c.Servers()))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	p := &pb.BackupPlan{
		Name: "snap",
		Groups: []*pb.HookGroup{
			{Name: "ledger-databases", Hooks: []*pb.HookRef{{Agent: "ledger-1", Hook: "snapshot"}}},
			{Name: "auditor-databases", Hooks: []*pb.HookRef{{Agent: "auditor-1", Hook: "snapshot"}}},
		},
		Databases: []*pb.PlanDatabase{
			{Name: "auditor-pg", Service: "auditor", Kind: pb.DatabaseKind_DATABASE_KIND_POSTGRES, Method: pb.RestoreMethod_RESTORE_METHOD_DUMP,
				TimeZone: "America/New_York", Hook: &pb.HookRef{Agent: "auditor-1", Hook: "snapshot"}},
			{Name: "ledger-pg", Service: "ledger", Kind: pb.DatabaseKind_DATABASE_KIND_POSTGRES, Method: pb.RestoreMethod_RESTORE_METHOD_DUMP,
				TimeZone: "Asia/Tokyo", Hook: &pb.HookRef{Agent: "ledger-1", Hook: "snapshot"}},
		},
	}
	if _, err := cl.SetBackupPlan(ctx, &pb.SetBackupPlanRequest{Plan: p}); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitSynchronized(ctx); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for range 2 {
		resp, err := cl.StartBackup(ctx, &pb.StartBackupRequest{Plan: "snap", RequestedBy: "test"})
		if err != nil {
			t.Fatal(err)
		}
		op := watchEnd(t, c, resp.GetOperation().GetOpId(), 60*time.Second)
		if op.GetState() != pb.OperationState_OPERATION_STATE_COMPLETED {
			t.Fatalf("backup %s ended %s: %s", op.GetOpId(), op.GetState(), op.GetReason())
		}
		ids = append(ids, op.GetOpId())
	}
	resp, err := cl.GetRestorePlan(ctx, &pb.GetRestorePlanRequest{BackupIds: []string{ids[0], ids[0]}})
	if err != nil {
		t.Fatal(err)
	}
	rp := resp.GetPlan()
	got, err := cl.GetBackup(ctx, &pb.GetBackupRequest{BackupId: ids[0]})
	if err != nil {
		t.Fatal(err)
	}
	entry := got.GetBackup()
	point := entry.GetWindow().GetRestorePoint().AsTime()
	var order []string
	for _, s := range rp.GetSteps() {
		order = append(order, strings.TrimSpace(s.GetAction()+" "+s.GetService()+" "+s.GetDatabase()))
		if s.GetAction() != "restore" {
			continue
		}
		if !s.GetRestoreTo().AsTime().Equal(point) {
			t.Errorf("%s restores to %v, the restore point is %v", s.GetDatabase(), s.GetRestoreTo().AsTime(), point)
		}
		loc, _ := time.LoadLocation(s.GetTimeZone())
		local, err := time.Parse(time.RFC3339Nano, s.GetRestoreToLocal())
		if err != nil {
			t.Fatalf("%s: restore_to_local %q: %v", s.GetDatabase(), s.GetRestoreToLocal(), err)
		}
		if _, off := point.In(loc).Zone(); !strings.HasSuffix(s.GetRestoreToLocal(), time.Unix(0, 0).In(time.FixedZone("", off)).Format("-07:00")) {
			t.Errorf("%s: %s lacks the %s offset", s.GetDatabase(), s.GetRestoreToLocal(), s.GetTimeZone())
		}
		if d := local.Sub(point); d > time.Duration(entry.GetWindow().GetUncertaintyNs()) || -d > time.Duration(entry.GetWindow().GetUncertaintyNs()) {
			t.Errorf("%s: %s is %v from the restore point, outside ±%v", s.GetDatabase(), s.GetRestoreToLocal(), d, time.Duration(entry.GetWindow().GetUncertaintyNs()))
		}
		art := string(s.GetArtefact().GetOutputTail())
		if !strings.Contains(art, ids[0]) || !strings.Contains(s.GetInstructions(), "pg_restore") {
			t.Errorf("%s: artefact %q, instructions %s", s.GetDatabase(), art, s.GetInstructions())
		}
	}
	if got := strings.Join(order, " | "); got != "stop ledger | stop auditor | restore ledger ledger-pg | restore auditor auditor-pg | start ledger | start auditor" {
		t.Fatalf("order = %s", got)
	}
	if strings.Join(rp.GetBackupIds(), ",") != ids[0] || rp.GetPlan() != "snap" {
		t.Fatalf("ids %v plan %s", rp.GetBackupIds(), rp.GetPlan())
	}

	_, err = cl.GetRestorePlan(ctx, &pb.GetRestorePlanRequest{BackupIds: ids})
	msg := status.Convert(err).Message()
	if status.Code(err) != codes.FailedPrecondition || coordinator.ReasonOf(err) != coordinator.ReasonRestoreRefused ||
		!strings.Contains(msg, "different pauses") || !strings.Contains(msg, "backup "+ids[0]+": op "+ids[0]+" (plan snap), restore point ") ||
		!strings.Contains(msg, "backup "+ids[1]+": op "+ids[1]+" (plan snap), restore point ") {
		t.Fatalf("a mix of pauses: %v", err)
	}
	_, err = cl.GetRestorePlan(ctx, &pb.GetRestorePlanRequest{BackupIds: []string{"op-nope"}})
	if status.Code(err) != codes.NotFound || !strings.Contains(status.Convert(err).Message(), "no backup op-nope (no catalog entry)") {
		t.Fatalf("unknown backup: %v", err)
	}
}

// TestBackupOfDefaultLedgerCluster: a plan that names no clusters pauses
// the Ledger cluster — the cluster whose agents have role ledger, whatever
// it is called — both when the plan is validated and when it runs.
func TestBackupOfDefaultLedgerCluster(t *testing.T) {
	c := startDev(t, func(cfg *devcluster.Config) {
		cfg.Nodes = []devcluster.NodeSpec{{Name: "ledger-1", Role: "ledger", Cluster: "prod-ledger"}, {Name: "auditor-1", Role: "auditor", Cluster: "prod-auditor"}}
		cfg.Workload.Enabled = false
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := c.WaitSynchronized(ctx); err != nil {
		t.Fatal(err)
	}
	cl := client(t, c, 0)
	p := &pb.BackupPlan{Name: "default-cluster", Groups: []*pb.HookGroup{{Name: "ledger-databases", Hooks: []*pb.HookRef{{Agent: "ledger-1", Hook: "snapshot"}}}}}
	testcluster.WaitFor(t, 30*time.Second, func() (bool, string) {
		_, err := cl.SetBackupPlan(ctx, &pb.SetBackupPlanRequest{Plan: p})
		return err == nil, fmt.Sprint(err)
	})
	resp, err := cl.StartBackup(ctx, &pb.StartBackupRequest{Plan: p.GetName()})
	if err != nil {
		t.Fatalf("backup of a plan naming no clusters: %v", err)
	}
	op := watchEnd(t, c, resp.GetOperation().GetOpId(), 60*time.Second)
	if op.GetCluster() != "prod-ledger" || op.GetState() != pb.OperationState_OPERATION_STATE_COMPLETED {
		t.Fatalf("backup paused %q and ended %s: %s", op.GetCluster(), op.GetState(), op.GetReason())
	}
}
