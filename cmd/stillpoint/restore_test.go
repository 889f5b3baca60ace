package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stillpoint-dev/stillpoint/internal/plan"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

func TestRestorePlanTable(t *testing.T) {
	rpAt := time.Date(2026, 12, 2, 2, 22, 33, 123456789, time.UTC)
	ref := &pb.HookRef{Agent: "ledger-1", Hook: "pg-dump"}
	e := &pb.RestorePoint{
		OpId:   "op-1",
		Window: &pb.RestoreWindow{RestorePoint: timestamppb.New(rpAt), UncertaintyNs: int64(2 * time.Millisecond)},
		Backup: &pb.BackupRun{
			Plan: &pb.BackupPlan{Name: "nightly", Databases: []*pb.PlanDatabase{
				{Name: "ledger-pg", Service: "ledger", Kind: pb.DatabaseKind_DATABASE_KIND_POSTGRES, Method: pb.RestoreMethod_RESTORE_METHOD_DUMP, TimeZone: "Asia/Tokyo", Hook: ref},
				{Name: "auditor-dynamo", Service: "auditor", Kind: pb.DatabaseKind_DATABASE_KIND_DYNAMODB, Method: pb.RestoreMethod_RESTORE_METHOD_PITR},
			}},
			Hooks: []*pb.HookRun{{StepId: "ledger-databases/0", Group: "ledger-databases", Ref: ref, State: pb.HookState_HOOK_STATE_SUCCEEDED, OutputTail: []byte("ok\n/backups/ledger.dump\n")}},
		},
	}
	rp, err := plan.Restore([]*pb.RestorePoint{e})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := printRestorePlan(&out, rp, "Europe/Paris"); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{
		"Restore plan of backup op-1 (plan nightly)",
		"Restore point: 2026-12-02T02:22:33.123456789Z",
		"IN Europe/Paris",
		"3  RESTORE  ledger   ledger-pg       postgres  dump    2026-12-02T11:22:33.123+09:00",
		"Asia/Tokyo  2026-12-02T03:22:33.123456789+01:00 (Europe/Paris)  /backups/ledger.dump",
		"4  RESTORE  auditor  auditor-dynamo  dynamodb  pitr    2026-12-02T02:22:33.123+00:00",
		"1  STOP     ledger",
		"6  START    auditor",
		"3. restore the dump at /backups/ledger.dump: pg_restore",
		"4. point-in-time restore of every table to 2026-12-02T02:22:33.123+00:00: aws dynamodb restore-table-to-point-in-time",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("missing %q in:\n%s", want, text)
		}
	}
}

func TestRestorePlanCommandUsage(t *testing.T) {
	if _, err := runCoordCLI(t, "restore", "plan"); err == nil || exitCode(err) != exitUsage {
		t.Fatalf("no backup id: %v", err)
	}
	if _, err := runCoordCLI(t, "restore", "plan", "op-1", "--tz", "Mars/Base"); err == nil || exitCode(err) != exitUsage {
		t.Fatalf("bad --tz: %v", err)
	}
}
