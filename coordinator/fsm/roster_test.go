package fsm

import (
	"errors"
	"strings"
	"testing"
	"time"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

func TestRosterRemove(t *testing.T) {
	a := newApplier(t)
	a.mustApply(&pb.UpsertMemberCommand{Member: &pb.MemberRecord{Name: "s1", Role: "server"}})
	a.mustApply(&pb.UpsertMemberCommand{Member: &pb.MemberRecord{Name: "ledger-1", Role: "ledger", Cluster: "ledger", Status: pb.MemberRecordStatus_MEMBER_RECORD_STATUS_ALIVE}})
	a.mustApply(&pb.UpsertMemberCommand{Member: &pb.MemberRecord{Name: "ledger-2", Role: "ledger", Cluster: "ledger", Status: pb.MemberRecordStatus_MEMBER_RECORD_STATUS_LEFT}})
	a.mustApply(&pb.UpsertMemberCommand{Member: &pb.MemberRecord{Name: "auditor-1", Role: "auditor", Cluster: "auditor"}})
	if r := a.f.Roster("ledger"); len(r) != 2 || r[0].GetName() != "ledger-1" || r[1].GetName() != "ledger-2" {
		t.Fatalf("ledger roster = %v", r)
	}
	if r := a.f.Roster(""); len(r) != 3 {
		t.Fatalf("whole roster = %v (servers are not on it)", r)
	}
	if r := a.apply(&pb.RemoveRosterMemberCommand{Name: "s1", Actor: "alice"}); !errors.Is(r.Err, ErrInvalidCommand) {
		t.Fatalf("removing a server from the roster: %v", r.Err)
	}
	if r := a.apply(&pb.RemoveRosterMemberCommand{Name: "nobody", Actor: "alice"}); !errors.Is(r.Err, ErrMemberNotFound) {
		t.Fatalf("removing an unknown member: %v", r.Err)
	}
	if n := len(a.f.Audit(0)); n != 0 {
		t.Fatalf("rejected removals were audited: %d records", n)
	}
	r := a.mustApply(&pb.RemoveRosterMemberCommand{Name: "ledger-2", Actor: "alice", Reason: "decommissioned", At: stamp(time.Second)})
	if got := r.Value.(*pb.MemberRecord); got.GetName() != "ledger-2" || got.GetCluster() != "ledger" {
		t.Fatalf("removed = %v", got)
	}
	if r := a.f.Roster("ledger"); len(r) != 1 || r[0].GetName() != "ledger-1" {
		t.Fatalf("ledger roster after remove = %v", r)
	}
	rec := a.f.Audit(0)
	if len(rec) != 1 || rec[0].GetAction() != AuditRosterRemove || rec[0].GetActor() != "alice" ||
		!strings.Contains(rec[0].GetDetail(), "ledger-2 removed from the roster of cluster ledger (last status left): decommissioned") {
		t.Fatalf("audit = %v", rec)
	}
}

func TestRetiredExpectedMembers(t *testing.T) {
	cfg := DefaultRuntimeConfig()
	//lint:ignore SA1019 the retired field under test
	cfg.ExpectedMembers = map[string]*pb.ExpectedMembers{"ledger": {Names: []string{"l1"}}}
	if err := CheckRetiredFields(cfg); !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "stillpoint members remove") {
		t.Fatalf("CheckRetiredFields = %v", err)
	}
	if err := CheckRetiredFields(DefaultRuntimeConfig()); err != nil {
		t.Fatal(err)
	}
	// An old log entry that set it replays the same everywhere: applied,
	// with the retired field dropped.
	a := newApplier(t)
	a.mustApply(&pb.SetConfigCommand{Config: cfg})
	//lint:ignore SA1019 the retired field under test
	if got := a.f.Config().GetExpectedMembers(); len(got) != 0 {
		t.Fatalf("stored expected_members = %v", got)
	}
}
