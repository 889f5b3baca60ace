package plan

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

var rpTime = time.Date(2026, 12, 2, 2, 22, 33, 123456789, time.UTC)

func backupEntry(opID string, rp time.Time) *pb.RestorePoint {
	p := goodPlan()
	return &pb.RestorePoint{
		OpId: opID, Cluster: "ledger",
		Window: &pb.RestoreWindow{RestorePoint: timestamppb.New(rp), UncertaintyNs: int64(5 * time.Millisecond)},
		Backup: &pb.BackupRun{Plan: p, Hooks: []*pb.HookRun{
			{StepId: "ledger-databases/0", Group: "ledger-databases", Ref: p.Groups[0].Hooks[0], State: pb.HookState_HOOK_STATE_SUCCEEDED,
				OutputTail: []byte("dumping ledger\n/backups/ledger-" + opID + ".dump\n")},
			{StepId: "auditor-databases/0", Group: "auditor-databases", Ref: p.Groups[1].Hooks[0], State: pb.HookState_HOOK_STATE_SUCCEEDED,
				OutputTail: []byte("/backups/auditor-" + opID + ".sql")},
			{StepId: "after/0", Group: "after", Ref: p.After[0], State: pb.HookState_HOOK_STATE_SUCCEEDED},
		}},
	}
}

func stepLine(s *pb.RestoreStep) string {
	return strings.TrimSpace(fmt.Sprintf("%s %s %s", s.GetAction(), s.GetService(), s.GetDatabase()))
}

func TestRestorePlanOrderAndTimes(t *testing.T) {
	e := backupEntry("op-1", rpTime)
	rp, err := Restore([]*pb.RestorePoint{e})
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, s := range rp.GetSteps() {
		order = append(order, stepLine(s))
	}
	want := "stop ledger | stop auditor | restore ledger ledger-pg | restore ledger events | restore auditor auditor-pg | start ledger | start auditor"
	if got := strings.Join(order, " | "); got != want {
		t.Fatalf("order:\n got %s\nwant %s", got, want)
	}
	if rp.GetPlan() != "nightly" || strings.Join(rp.GetBackupIds(), ",") != "op-1" {
		t.Fatalf("plan %q ids %v", rp.GetPlan(), rp.GetBackupIds())
	}
	pg := rp.GetSteps()[2]
	if pg.GetRestoreToLocal() != "2026-12-02T11:22:33.123+09:00" || pg.GetTimeZone() != "Asia/Tokyo" || !pg.GetRestoreTo().AsTime().Equal(rpTime) {
		t.Fatalf("ledger-pg restore to %s (%s) %v", pg.GetRestoreToLocal(), pg.GetTimeZone(), pg.GetRestoreTo().AsTime())
	}
	if pg.GetArtefact().GetStepId() != "ledger-databases/0" || !strings.Contains(pg.GetInstructions(), "pg_restore --clean --if-exists -d DBNAME /backups/ledger-op-1.dump") ||
		!strings.Contains(pg.GetInstructions(), "psql -d DBNAME -f /backups/ledger-op-1.dump") {
		t.Fatalf("ledger-pg step = %v", pg)
	}
	ev := rp.GetSteps()[3]
	if ev.GetRestoreToLocal() != "2026-12-02T02:22:33.123+00:00" || ev.GetTimeZone() != "UTC" || ev.GetArtefact() != nil ||
		!strings.Contains(ev.GetInstructions(), "aws dynamodb restore-table-to-point-in-time") || !strings.Contains(ev.GetInstructions(), "--restore-date-time 2026-12-02T02:22:33.123+00:00") {
		t.Fatalf("events step = %v", ev)
	}
	if a := rp.GetSteps()[4]; a.GetArtefact().GetStepId() != "auditor-databases/0" || !strings.Contains(a.GetInstructions(), "/backups/auditor-op-1.sql") {
		t.Fatalf("auditor step = %v", a)
	}
}

func TestRestorePlanInstructionsPerKind(t *testing.T) {
	e := backupEntry("op-1", rpTime)
	e.Backup.Plan.Databases = []*pb.PlanDatabase{
		{Name: "pg-pitr", Service: "ledger", Kind: pb.DatabaseKind_DATABASE_KIND_POSTGRES, Method: pb.RestoreMethod_RESTORE_METHOD_PITR, TimeZone: "America/New_York"},
		{Name: "my-pitr", Service: "ledger", Kind: pb.DatabaseKind_DATABASE_KIND_MYSQL, Method: pb.RestoreMethod_RESTORE_METHOD_PITR, TimeZone: "Asia/Kolkata"},
		{Name: "my-dump", Service: "ledger", Kind: pb.DatabaseKind_DATABASE_KIND_MYSQL, Method: pb.RestoreMethod_RESTORE_METHOD_DUMP, Hook: &pb.HookRef{Agent: "ledger-1", Hook: "pg-dump"}},
		{Name: "cass", Service: "auditor", Kind: pb.DatabaseKind_DATABASE_KIND_CASSANDRA, Method: pb.RestoreMethod_RESTORE_METHOD_SNAPSHOT, Hook: &pb.HookRef{Agent: "auditor-1", Hook: "pg-dump"}},
		{Name: "cosmos", Service: "auditor", Kind: pb.DatabaseKind_DATABASE_KIND_COSMOS, Method: pb.RestoreMethod_RESTORE_METHOD_PITR},
	}
	rp, err := Restore([]*pb.RestorePoint{e})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"pg-pitr": {"recovery_target_time = '2026-12-01 21:22:33.123-05:00' (America/New_York)", "--restore-time 2026-12-02T02:22:33.123+00:00"},
		"my-pitr": {"mysqlbinlog --stop-datetime='2026-12-02 07:52:33.123' (a wall time in the server's zone, Asia/Kolkata; offset +05:30)"},
		"my-dump": {"mysql DBNAME < /backups/ledger-op-1.dump"},
		"cass":    {"nodetool refresh KEYSPACE TABLE", "sstableloader", "/backups/auditor-op-1.sql"},
		"cosmos":  {"az cosmosdb restore", "--restore-timestamp 2026-12-02T02:22:33.123+00:00"},
	}
	n := 0
	for _, s := range rp.GetSteps() {
		for _, w := range want[s.GetDatabase()] {
			n++
			if !strings.Contains(s.GetInstructions(), w) {
				t.Errorf("%s: missing %q in %s", s.GetDatabase(), w, s.GetInstructions())
			}
		}
	}
	if n != 9 {
		t.Fatalf("checked %d instructions", n)
	}
	if l := rp.GetSteps()[3]; l.GetRestoreToLocal() != "2026-12-02T07:52:33.123+05:30" {
		t.Fatalf("my-pitr local = %s", l.GetRestoreToLocal())
	}
}

func TestRestorePlanRefusals(t *testing.T) {
	a, b := backupEntry("op-a", rpTime), backupEntry("op-b", rpTime.Add(time.Hour))
	_, err := Restore([]*pb.RestorePoint{a, b})
	if !errors.Is(err, ErrRestoreRefused) || !strings.Contains(err.Error(), "different pauses") ||
		!strings.Contains(err.Error(), "backup op-a: op op-a (plan nightly), restore point 2026-12-02T02:22:33.123456789Z") ||
		!strings.Contains(err.Error(), "backup op-b: op op-b (plan nightly), restore point 2026-12-02T03:22:33.123456789Z") {
		t.Fatalf("mix: %v", err)
	}
	inv := backupEntry("op-i", rpTime)
	inv.Invalid, inv.InvalidReason = true, "ledger-2 restarted during the pause"
	if _, err := Restore([]*pb.RestorePoint{inv}); !errors.Is(err, ErrRestoreRefused) || !strings.Contains(err.Error(), "backup op-i is invalid: ledger-2 restarted during the pause") {
		t.Fatalf("invalid: %v", err)
	}
	plain := &pb.RestorePoint{OpId: "op-p", Window: &pb.RestoreWindow{RestorePoint: timestamppb.New(rpTime)}}
	if _, err := Restore([]*pb.RestorePoint{plain}); !errors.Is(err, ErrRestoreRefused) || !strings.Contains(err.Error(), "op-p is a pause, not a backup") {
		t.Fatalf("plain pause: %v", err)
	}
	if _, err := Restore(nil); !errors.Is(err, ErrRestoreRefused) {
		t.Fatalf("none: %v", err)
	}
}

func TestRestorePlanPartial(t *testing.T) {
	e := backupEntry("op-1", rpTime)
	e.Partial = true
	e.Backup.Partial = true
	e.Backup.Hooks[1].State = pb.HookState_HOOK_STATE_FAILED
	e.Backup.Hooks[1].ExitCode = 2
	rp, err := Restore([]*pb.RestorePoint{e})
	if err != nil {
		t.Fatal(err)
	}
	first := rp.GetSteps()[0]
	if first.GetAction() != ActionWarning || !strings.Contains(first.GetInstructions(), "backup op-1 is partial") ||
		!strings.Contains(first.GetInstructions(), "auditor-databases/0 (pg-dump on auditor-1: failed)") {
		t.Fatalf("first step = %v", first)
	}
	var warned bool
	for _, s := range rp.GetSteps() {
		if s.GetAction() == ActionWarning && s.GetDatabase() == "auditor-pg" && strings.Contains(s.GetInstructions(), "has no usable dump in this backup (exit code 2)") {
			warned = true
		}
	}
	if !warned {
		t.Fatalf("no warning for the auditor database: %v", rp.GetSteps())
	}
}

func TestLocalTimeStaysInTheWindow(t *testing.T) {
	tokyo, _ := time.LoadLocation("Asia/Tokyo")
	t0 := time.Date(2026, 12, 2, 2, 22, 33, 123600000, time.UTC)
	for _, tc := range []struct {
		unc  time.Duration
		want string
	}{
		{5 * time.Millisecond, "2026-12-02T11:22:33.124+09:00"},
		{500 * time.Microsecond, "2026-12-02T11:22:33.124+09:00"},
		{300 * time.Microsecond, "2026-12-02T11:22:33.123600+09:00"},
	} {
		if got := LocalTime(t0, tc.unc, tokyo); got != tc.want {
			t.Errorf("±%v: %s, want %s", tc.unc, got, tc.want)
		}
	}
	if got := LocalTime(t0.Add(7), 0, time.UTC); got != "2026-12-02T02:22:33.123600007+00:00" {
		t.Errorf("no uncertainty: %s", got)
	}
}

func TestLastLine(t *testing.T) {
	for in, want := range map[string]string{"a\nb\n\n": "b", "only": "only", "": "", "x\r\n/p q\r\n": "/p q"} {
		if got := LastLine([]byte(in)); got != want {
			t.Errorf("LastLine(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRestorePlanWithoutDatabases(t *testing.T) {
	e := backupEntry("op-1", rpTime)
	e.Backup.Plan.Databases = nil
	rp, err := Restore([]*pb.RestorePoint{e})
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, s := range rp.GetSteps() {
		order = append(order, stepLine(s))
	}
	if got := strings.Join(order, " | "); got != "warning | stop ledger | start ledger" {
		t.Fatalf("order = %s", got)
	}
	if w := rp.GetSteps()[0].GetInstructions(); !strings.Contains(w, "plan nightly declares no databases") || !strings.Contains(w, "2026-12-02T02:22:33.123+00:00 (±5ms)") {
		t.Fatalf("warning = %s", w)
	}
}
