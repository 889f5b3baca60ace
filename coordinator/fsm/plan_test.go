package fsm

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

func testPlan(name string) *pb.BackupPlan {
	return &pb.BackupPlan{
		Name:     name,
		Clusters: []string{"ledger"},
		Groups: []*pb.HookGroup{
			{Name: "ledger-databases", Hooks: []*pb.HookRef{{Agent: "ledger-1", Hook: "pg-dump"}}},
			{Name: "auditor-databases", Hooks: []*pb.HookRef{{Agent: "auditor-1", Hook: "pg-dump"}}},
		},
		Schedule: "@daily", ScheduleTimeZone: "Asia/Tokyo",
	}
}

func TestSetBackupPlan(t *testing.T) {
	a := newApplier(t)
	if r := a.apply(&pb.SetBackupPlanCommand{Plan: &pb.BackupPlan{}, Actor: "alice"}); !errors.Is(r.Err, ErrInvalidCommand) {
		t.Fatalf("plan without name: %v", r.Err)
	}
	if n := len(a.f.Plans()); n != 0 {
		t.Fatalf("rejected plan stored: %d plans", n)
	}

	r := a.mustApply(&pb.SetBackupPlanCommand{Plan: testPlan("nightly"), Actor: "alice", At: stamp(time.Second)})
	rec := r.Value.(*pb.PlanRecord)
	if rec.GetPlan().GetUpdatedBy() != "alice" || !rec.GetPlan().GetUpdatedAt().GetLocalTime().AsTime().Equal(t0.Add(time.Second)) {
		t.Fatalf("stored plan not stamped: %v", rec)
	}
	got, ok := a.f.Plan("nightly")
	if !ok || got.GetPlan().GetGroups()[1].GetName() != "auditor-databases" || got.GetPlan().GetUpdatedBy() != "alice" {
		t.Fatalf("Plan(nightly) = %v, %v", got, ok)
	}
	if _, ok := a.f.Plan("weekly"); ok {
		t.Fatal("Plan(weekly) found")
	}

	// Replacing a plan keeps its schedule state.
	a.f.mu.Lock()
	a.f.st.plans["nightly"].LastFired = timestamppb.New(t0)
	a.f.st.plans["nightly"].LastFiredOpId = "op-7"
	a.f.st.plans["nightly"].LastFiredReason = "why not"
	a.f.mu.Unlock()
	p := testPlan("nightly")
	p.Schedule = "@hourly"
	a.mustApply(&pb.SetBackupPlanCommand{Plan: p, Actor: "bob", At: stamp(2 * time.Second)})
	got, _ = a.f.Plan("nightly")
	if got.GetPlan().GetSchedule() != "@hourly" || got.GetPlan().GetUpdatedBy() != "bob" ||
		!got.GetLastFired().AsTime().Equal(t0) || got.GetLastFiredOpId() != "op-7" || got.GetLastFiredReason() != "why not" {
		t.Fatalf("replaced plan = %v", got)
	}
	a.mustApply(&pb.SetBackupPlanCommand{Plan: testPlan("adhoc"), Actor: "carol"})
	if ps := a.f.Plans(); len(ps) != 2 || ps[0].GetPlan().GetName() != "adhoc" || ps[1].GetPlan().GetName() != "nightly" {
		t.Fatalf("Plans() = %v", ps)
	}

	audit := a.f.Audit(0)
	if len(audit) != 3 {
		t.Fatalf("audit = %v", audit)
	}
	if r := audit[1]; r.GetAction() != AuditPlanSet || r.GetActor() != "bob" ||
		!strings.Contains(r.GetDetail(), `backup plan nightly replaced (pauses clusters ledger; groups ledger-databases:1 auditor-databases:1; 0 after hooks; 0 databases; schedule "@hourly" Asia/Tokyo)`) {
		t.Fatalf("replace audit = %v", r)
	}
	if r := audit[2]; !strings.Contains(r.GetDetail(), "backup plan nightly created") || r.GetActor() != "alice" {
		t.Fatalf("create audit = %v", r)
	}
}

func TestDeleteBackupPlan(t *testing.T) {
	a := newApplier(t)
	a.mustApply(&pb.SetBackupPlanCommand{Plan: testPlan("nightly"), Actor: "alice"})
	before := a.f.Dump()
	r := a.apply(&pb.DeleteBackupPlanCommand{Name: "weekly", Actor: "bob"})
	if !errors.Is(r.Err, ErrPlanNotFound) || !strings.Contains(r.Err.Error(), `"weekly"`) {
		t.Fatalf("deleting an unknown plan: %v", r.Err)
	}
	if diff := diffProto(before, a.f.Dump()); diff != "" {
		t.Fatalf("rejected delete changed the state:\n%s", diff)
	}
	r = a.mustApply(&pb.DeleteBackupPlanCommand{Name: "nightly", Actor: "bob", At: stamp(time.Minute)})
	if r.Value.(*pb.PlanRecord).GetPlan().GetName() != "nightly" {
		t.Fatalf("deleted = %v", r.Value)
	}
	if _, ok := a.f.Plan("nightly"); ok || len(a.f.Plans()) != 0 {
		t.Fatal("plan survived delete")
	}
	rec := a.f.Audit(1)[0]
	if rec.GetAction() != AuditPlanDelete || rec.GetActor() != "bob" || !strings.Contains(rec.GetDetail(), "backup plan nightly deleted") {
		t.Fatalf("audit = %v", rec)
	}
}

func TestPlansSnapshotRoundTripAndCopies(t *testing.T) {
	a := populate(t)
	a.mustApply(&pb.SetBackupPlanCommand{Plan: testPlan("nightly"), Actor: "alice", At: stamp(time.Second)})
	a.mustApply(&pb.SetBackupPlanCommand{Plan: testPlan("adhoc"), Actor: "alice"})
	snap, err := a.f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	want := a.f.Dump()
	if len(want.GetPlans()) != 2 {
		t.Fatalf("snapshot plans = %v", want.GetPlans())
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	b := newApplier(t)
	b.mustApply(&pb.SetBackupPlanCommand{Plan: testPlan("stray")})
	if err := b.f.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	if diff := diffProto(want, b.f.Dump()); diff != "" {
		t.Fatalf("restored state differs:\n%s", diff)
	}
	if _, ok := b.f.Plan("stray"); ok {
		t.Fatal("old plan survived restore")
	}
	got, ok := b.f.Plan("nightly")
	if !ok || got.GetPlan().GetUpdatedBy() != "alice" {
		t.Fatalf("restored Plan(nightly) = %v", got)
	}
	got.Plan.Groups = nil
	b.f.Plans()[0].Plan.Name = "mutated"
	if again, _ := b.f.Plan("nightly"); len(again.GetPlan().GetGroups()) != 2 {
		t.Fatal("Plan returned shared memory")
	}
	if _, ok := b.f.Plan("adhoc"); !ok {
		t.Fatal("Plans returned shared memory")
	}
}
