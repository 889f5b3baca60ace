package plan

import (
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

func roster() []*pb.MemberRecord {
	return []*pb.MemberRecord{
		{Name: "s1", Role: "server"},
		{Name: "ledger-1", Role: "ledger", Cluster: "ledger"},
		{Name: "ledger-2", Role: "ledger", Cluster: "ledger"},
		{Name: "auditor-1", Role: "auditor", Cluster: "auditor"},
	}
}

func testEnv() *Env {
	return &Env{
		Members: roster(),
		Hooks: map[string][]string{
			"ledger-1":       {"pg-dump", "vacuum"},
			"ledger-2":       {"pg-dump", "vacuum"},
			"auditor-1":      {"pg-dump"},
			CoordinatorAgent: {"notify"},
		},
		MaxHold: time.Hour,
	}
}

func goodPlan() *pb.BackupPlan {
	return &pb.BackupPlan{
		Name: "nightly",
		Groups: []*pb.HookGroup{
			{Name: "ledger-databases", Hooks: []*pb.HookRef{{Agent: "ledger-1", Hook: "pg-dump"}}},
			{Name: "auditor-databases", Hooks: []*pb.HookRef{{Agent: "auditor-1", Hook: "pg-dump", OnError: pb.HookOnError_HOOK_ON_ERROR_CONTINUE}}},
		},
		After: []*pb.HookRef{{Agent: CoordinatorAgent, Hook: "notify"}},
		Databases: []*pb.PlanDatabase{
			{Name: "ledger-pg", Service: "ledger", Kind: pb.DatabaseKind_DATABASE_KIND_POSTGRES, Method: pb.RestoreMethod_RESTORE_METHOD_DUMP,
				TimeZone: "Asia/Tokyo", Hook: &pb.HookRef{Agent: "ledger-1", Hook: "pg-dump"}},
			{Name: "auditor-pg", Service: "auditor", Kind: pb.DatabaseKind_DATABASE_KIND_POSTGRES, Method: pb.RestoreMethod_RESTORE_METHOD_DUMP,
				Hook: &pb.HookRef{Agent: "auditor-1", Hook: "pg-dump"}},
			{Name: "events", Service: "ledger", Kind: pb.DatabaseKind_DATABASE_KIND_DYNAMODB, Method: pb.RestoreMethod_RESTORE_METHOD_PITR},
		},
		Schedule: "30 2 * * *", ScheduleTimeZone: "Europe/Paris",
		Retention:  &pb.Retention{KeepLast: 7, MaxAgeMs: (720 * time.Hour).Milliseconds()},
		DeleteHook: &pb.HookRef{Agent: "ledger-1", Hook: "vacuum"},
		MinHoldMs:  5000,
	}
}

func TestValidateGoodPlan(t *testing.T) {
	if err := Validate(goodPlan(), testEnv()); err != nil {
		t.Fatal(err)
	}
	if err := Validate(goodPlan(), nil); err != nil {
		t.Fatal(err)
	}
	pitr := &pb.BackupPlan{Name: "pitr", Databases: []*pb.PlanDatabase{
		{Name: "rds", Service: "ledger", Kind: pb.DatabaseKind_DATABASE_KIND_POSTGRES, Method: pb.RestoreMethod_RESTORE_METHOD_PITR},
	}}
	if err := Validate(pitr, testEnv()); err != nil {
		t.Fatalf("a PITR-only plan without groups: %v", err)
	}
	for _, s := range []string{"@daily", "@every 6h", "*/5 * * * *", "0 3 * * MON-FRI"} {
		p := goodPlan()
		p.Schedule = s
		if err := Validate(p, testEnv()); err != nil {
			t.Errorf("schedule %q: %v", s, err)
		}
	}
}

func TestValidateProblems(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(p *pb.BackupPlan, e *Env)
		want   []string // each a whole problem line
	}{
		{"unknown hook", func(p *pb.BackupPlan, e *Env) {
			p.Groups[0].Hooks = append(p.Groups[0].Hooks, &pb.HookRef{Agent: "ledger-2", Hook: "pgdump"})
		}, []string{`groups[0].hooks[1].hook: agent "ledger-2" has no hook named "pgdump" (it has: pg-dump, vacuum)`}},
		{"unknown agent", func(p *pb.BackupPlan, e *Env) { p.Groups[1].Hooks[0].Agent = "auditor-9" }, []string{
			`groups[1].hooks[0].agent: "auditor-9" is on no cluster's roster and is not "coordinator" (roster: ledger-1, ledger-2, auditor-1)`,
			`databases[1].hook: hook pg-dump on agent auditor-1 is in none of the plan's groups: the dump must be taken during the pause`,
		}},
		{"unknown coordinator hook", func(p *pb.BackupPlan, e *Env) { p.After[0].Hook = "page" }, []string{
			`after[0].hook: the coordinator servers' config has no hook named "page" (it has: notify)`,
		}},
		{"unreachable agent", func(p *pb.BackupPlan, e *Env) {
			delete(e.Hooks, "auditor-1")
			e.Unreachable = map[string]string{"auditor-1": "connection refused"}
		}, []string{
			`groups[1].hooks[0].hook: cannot check hook "pg-dump": agent auditor-1 is unreachable (connection refused)`,
			`databases[1].hook.hook: cannot check hook "pg-dump": agent auditor-1 is unreachable (connection refused)`,
		}},
		{"empty group", func(p *pb.BackupPlan, e *Env) { p.Groups = append(p.Groups, &pb.HookGroup{Name: "spare"}) }, []string{
			`groups[2].hooks: group "spare" is empty: a group runs at least one hook (remove the group if it has nothing to do)`,
		}},
		{"cycle", func(p *pb.BackupPlan, e *Env) {
			p.Groups[0].After = []string{"auditor-databases"}
		}, []string{`groups[0].after: cycle: ledger-databases → auditor-databases → ledger-databases (each runs only after the next has finished, so none can start)`}},
		{"self cycle", func(p *pb.BackupPlan, e *Env) { p.Groups[1].After = []string{"auditor-databases"} }, []string{
			`groups[1].after: cycle: auditor-databases → auditor-databases (each runs only after the next has finished, so none can start)`,
		}},
		{"unknown after", func(p *pb.BackupPlan, e *Env) { p.Groups[1].After = []string{"ledger-dbs"} }, []string{
			`groups[1].after[0]: no group is named "ledger-dbs" (groups: ledger-databases, auditor-databases)`,
		}},
		{"duplicate group and reserved name", func(p *pb.BackupPlan, e *Env) {
			p.Groups[1].Name = "ledger-databases"
			p.Groups = append(p.Groups, &pb.HookGroup{Name: "after", Hooks: []*pb.HookRef{{Agent: "ledger-2", Hook: "pg-dump"}}})
		}, []string{
			`groups[1].name: group "ledger-databases" is already groups[0]`,
			`groups[2].name: "after" is reserved for the plan's after hooks; choose another group name`,
		}},
		{"group named like retention's delete hooks", func(p *pb.BackupPlan, e *Env) {
			p.Groups[1].Name = "delete"
		}, []string{
			`groups[1].name: "delete" is reserved for retention's delete hooks (agents run it outside the hold); choose another group name`,
		}},
		{"same hook twice", func(p *pb.BackupPlan, e *Env) {
			p.Groups[1].Hooks = append(p.Groups[1].Hooks, &pb.HookRef{Agent: "ledger-1", Hook: "pg-dump"})
		}, []string{`groups[1].hooks[1]: hook pg-dump on agent ledger-1 is already groups[0].hooks[0] (a hook runs once per backup)`}},
		{"bad cron", func(p *pb.BackupPlan, e *Env) { p.Schedule = "61 * * * *" }, []string{
			`schedule: "61 * * * *" is not a cron schedule`,
		}},
		{"seconds field", func(p *pb.BackupPlan, e *Env) { p.Schedule = "0 30 2 * * *" }, []string{`schedule: "0 30 2 * * *" is not a cron schedule`}},
		{"zone in expression", func(p *pb.BackupPlan, e *Env) { p.Schedule = "TZ=Asia/Tokyo 0 3 * * *" }, []string{
			`schedule: "TZ=Asia/Tokyo 0 3 * * *" is not a cron schedule`, `put the zone in schedule_time_zone`,
		}},
		{"bad zone", func(p *pb.BackupPlan, e *Env) { p.ScheduleTimeZone = "Mars/Olympus" }, []string{
			`schedule_time_zone: "Mars/Olympus" is not an IANA time zone`,
		}},
		{"figures", func(p *pb.BackupPlan, e *Env) {
			p.Retention = &pb.Retention{KeepLast: -1, MaxAgeMs: -1000}
			p.MinHoldMs = (2 * time.Hour).Milliseconds()
			p.MissedRuns = 7
		}, []string{
			`retention.keep_last: -1 is negative (0: no limit)`,
			`retention.max_age: -1s is negative (0: no limit)`,
			`min_hold: 2h0m0s exceeds the maximum hold 1h0m0s (runtime config max_hold_ns)`,
			`missed_runs: unknown value 7 (run_once or skip)`,
		}},
		{"negative hold", func(p *pb.BackupPlan, e *Env) { p.MinHoldMs = -1 }, []string{`min_hold: -1ms is negative`}},
		{"databases", func(p *pb.BackupPlan, e *Env) {
			p.Databases = append(p.Databases,
				&pb.PlanDatabase{Name: "ledger-pg", Service: "Ledger", TimeZone: "Tokyo"},
				&pb.PlanDatabase{Name: "rds", Service: "ledger", Kind: pb.DatabaseKind_DATABASE_KIND_POSTGRES, Method: pb.RestoreMethod_RESTORE_METHOD_PITR,
					Hook: &pb.HookRef{Agent: "ledger-1", Hook: "pg-dump"}},
				&pb.PlanDatabase{Name: "cass", Service: "auditor", Kind: pb.DatabaseKind_DATABASE_KIND_CASSANDRA, Method: pb.RestoreMethod_RESTORE_METHOD_SNAPSHOT},
				&pb.PlanDatabase{Name: "my", Service: "auditor", Kind: pb.DatabaseKind_DATABASE_KIND_MYSQL, Method: pb.RestoreMethod_RESTORE_METHOD_DUMP,
					Hook: &pb.HookRef{Agent: "ledger-1", Hook: "vacuum"}},
			)
		}, []string{
			`databases[3].name: database "ledger-pg" is already databases[0]`,
			`databases[3].service: "Ledger" is neither ledger nor auditor (the restore order: Ledger databases first)`,
			`databases[3].kind: is required (postgres, mysql, cassandra, dynamodb, cosmos, other)`,
			`databases[3].method: is required (pitr, dump, snapshot)`,
			`databases[3].time_zone: "Tokyo" is not an IANA time zone`,
			`databases[4].hook: a point-in-time restore needs no hook (the restore point is the backup); remove it, or use method dump or snapshot`,
			`databases[5].hook: method snapshot needs the hook that takes the snapshot (one of the groups' hooks)`,
			`databases[6].hook: hook vacuum on agent ledger-1 is in none of the plan's groups: the dump must be taken during the pause`,
		}},
		{"names", func(p *pb.BackupPlan, e *Env) {
			p.Name = "night ly"
			p.Groups[0].Name = ""
			p.Groups[1].Hooks[0] = &pb.HookRef{}
		}, []string{
			`name: "night ly" is not a valid name`,
			`groups[0].name: is required`,
			`groups[1].hooks[0].agent: is required`,
			`groups[1].hooks[0].hook: is required`,
		}},
		{"clusters", func(p *pb.BackupPlan, e *Env) { p.Clusters = []string{"ledger", "ledgr", "ledger"} }, []string{
			`clusters[2]: cluster "ledger" is already clusters[0] (a cluster is paused once)`,
			`clusters[1]: no agent ever joined cluster "ledgr" (known clusters: auditor, ledger)`,
		}},
		{"no ledger cluster", func(p *pb.BackupPlan, e *Env) {
			e.Members = append(e.Members, &pb.MemberRecord{Name: "ledger-b1", Role: "ledger", Cluster: "ledger-b"})
		}, []string{`clusters: empty, meaning the Ledger cluster, but roster members with role ledger are in several clusters (ledger, ledger-b); name the clusters to pause`}},
		{"delete hook", func(p *pb.BackupPlan, e *Env) { p.DeleteHook = &pb.HookRef{Agent: "ledger-1", Hook: "rm"} }, []string{
			`delete_hook.hook: agent "ledger-1" has no hook named "rm" (it has: pg-dump, vacuum)`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, e := goodPlan(), testEnv()
			tc.mutate(p, e)
			before := proto.Clone(p)
			err := Validate(p, e)
			var pe *Error
			if !errors.As(err, &pe) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want *Error", err)
			}
			if !proto.Equal(before, p) {
				t.Fatal("Validate changed the plan")
			}
			msg := err.Error()
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("missing problem\n  %s\nin\n%s", w, msg)
				}
			}
			if !strings.Contains(msg, "backup plan ") {
				t.Errorf("message does not name the plan: %s", msg)
			}
		})
	}
}

func TestValidateStructureOnlySkipsTheWorld(t *testing.T) {
	p := goodPlan()
	p.Groups[0].Hooks[0].Agent = "nobody"
	p.Databases[0].Hook.Agent = "nobody"
	if err := Validate(p, nil); err != nil {
		t.Fatalf("structure-only validation looked at agents: %v", err)
	}
}

func TestLedgerCluster(t *testing.T) {
	if cl, err := LedgerCluster(roster()); err != nil || cl != "ledger" {
		t.Fatalf("LedgerCluster = %q, %v", cl, err)
	}
	if _, err := LedgerCluster(roster()[3:]); err == nil || !strings.Contains(err.Error(), "no roster member has role ledger") {
		t.Fatalf("no ledger: %v", err)
	}
	if cl, err := Clusters(&pb.BackupPlan{Clusters: []string{"a", "b"}}, nil); err != nil || strings.Join(cl, ",") != "a,b" {
		t.Fatalf("Clusters = %v, %v", cl, err)
	}
	if cl, err := Clusters(&pb.BackupPlan{}, roster()); err != nil || strings.Join(cl, ",") != "ledger" {
		t.Fatalf("Clusters default = %v, %v", cl, err)
	}
}

func TestAgents(t *testing.T) {
	if got := strings.Join(Agents(goodPlan()), ","); got != "auditor-1,ledger-1" {
		t.Fatalf("Agents = %s", got)
	}
}
