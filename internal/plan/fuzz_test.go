package plan

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// FuzzValidateProto feeds SetBackupPlanRequest.plan as it arrives on the
// wire (any bytes that unmarshal) to the leader's validator with a roster
// and agents' hooks: it must never panic, and a refusal must name at least
// one field.
func FuzzValidateProto(f *testing.F) {
	for _, p := range []*pb.BackupPlan{
		{Name: "nightly", Clusters: []string{"ledger"}, Groups: []*pb.HookGroup{
			{Name: "ledger-databases", Hooks: []*pb.HookRef{{Agent: "ledger-1", Hook: "pg-dump"}}},
			{Name: "auditor-databases", After: []string{"ledger-databases"}, Hooks: []*pb.HookRef{{Agent: CoordinatorAgent, Hook: "snap", OnError: pb.HookOnError_HOOK_ON_ERROR_CONTINUE}}},
		}, Schedule: "0 3 * * *", ScheduleTimeZone: "Asia/Tokyo", Retention: &pb.Retention{KeepLast: 7}},
		{Name: "cycle", Groups: []*pb.HookGroup{{Name: "a", After: []string{"b"}}, {Name: "b", After: []string{"a"}}}},
		{Name: "", Schedule: "61 * * *", ScheduleTimeZone: "Mars/Olympus", MinHoldMs: -1,
			Databases: []*pb.PlanDatabase{{Name: "d", Service: "x", Method: pb.RestoreMethod_RESTORE_METHOD_DUMP}}},
	} {
		b, err := proto.Marshal(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	env := &Env{
		Members: []*pb.MemberRecord{
			{Name: "ledger-1", Role: "ledger", Cluster: "ledger"},
			{Name: "auditor-1", Role: "auditor", Cluster: "auditor"},
		},
		Hooks:       map[string][]string{"ledger-1": {"pg-dump"}, CoordinatorAgent: {"snap"}},
		Unreachable: map[string]string{"auditor-1": "connection refused"},
		MaxHold:     time.Hour,
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p := &pb.BackupPlan{}
		if proto.Unmarshal(b, p) != nil {
			return
		}
		err := Validate(p, env)
		if err == nil {
			return
		}
		perr, ok := err.(*Error)
		if !ok || len(perr.Problems) == 0 {
			t.Fatalf("Validate answered %T %v; want *Error naming fields", err, err)
		}
	})
}
