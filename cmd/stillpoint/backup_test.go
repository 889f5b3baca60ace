package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/stillpoint-dev/stillpoint/internal/devcluster"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// storeTestPlan stores plan through the dev cluster leader's Raft log.
func storeTestPlan(t *testing.T, c *devcluster.Cluster, plan *pb.BackupPlan) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Servers()[c.Leader()].Apply(ctx, &pb.SetBackupPlanCommand{Plan: plan, Actor: "test"}); err != nil {
		t.Fatal(err)
	}
}

// backupCLI runs `backup run`, again (at most 3 times) when it ended
// exit 3 for a reason other than the plan's (a refused admission or an
// invalidated hold on a loaded box).
func backupCLI(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		stdout, stderr, err = runCLI3(t, args...)
		if exitCode(err) != exitNotCompleted || strings.Contains(stderr, "backup aborted") || attempt == 3 {
			return stdout, stderr, err
		}
		t.Logf("backup did not complete (%v); again:\n%s\n%s", err, stdout, stderr)
	}
}

func TestBackupCommandsAgainstDevCluster(t *testing.T) {
	c := startDevCluster(t, nil)
	addr := "--addr=" + c.APIAddr()
	// The plan `stillpoint dev` stores, through the API's validation.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := storeDevPlan(ctx, c); err != nil {
		t.Fatalf("dev plan: %v", err)
	}
	storeTestPlan(t, c, &pb.BackupPlan{Name: "broken",
		Groups: []*pb.HookGroup{{Name: "ledger-databases", Hooks: []*pb.HookRef{{Agent: "ledger-1", Hook: devcluster.HookFail}}}},
	})

	if _, _, err := runCLI3(t, "backup", "run", addr); exitCode(err) != exitUsage {
		t.Fatalf("backup run without --plan: %v, want exit %d", err, exitUsage)
	}
	out, progress, err := backupCLI(t, "backup", "run", "--plan", "dev", "--tz", "Asia/Tokyo", addr)
	if err != nil {
		t.Fatalf("backup run: %v\n%s\n%s", err, out, progress)
	}
	t.Logf("backup run --plan dev:\n%s\n%s", progress, out)
	for _, want := range []string{"State          completed", "+09:00 (Asia/Tokyo)", "Plan           dev", "ledger-databases/0", "ledger-databases/1", "auditor-databases/0", "after/0", "succeeded", "Output of after/0"} {
		if !strings.Contains(out, want) {
			t.Errorf("backup run output lacks %q:\n%s", want, out)
		}
	}
	for _, want := range []string{"paused and drained", "hook snapshot on ledger-1 succeeded (exit 0", "hook snapshot on auditor-1 succeeded", "unpaused; restore point", "hook snapshot on ledger-3 succeeded"} {
		if !strings.Contains(progress, want) {
			t.Errorf("backup run progress lacks %q:\n%s", want, progress)
		}
	}
	// (A hook's RUNNING record may be superseded by its result.)
	if strings.Index(progress, "on ledger-1 succeeded") > strings.Index(progress, " auditor-1") {
		t.Errorf("progress shows the Auditor hook starting before the Ledger hook ended:\n%s", progress)
	}

	out, progress, err = backupCLI(t, "backup", "run", "--plan", "broken", addr)
	if exitCode(err) != exitNotCompleted || !strings.Contains(progress, "ended aborted") || !strings.Contains(progress, "ledger-1") || !strings.Contains(out, "failed") {
		t.Fatalf("backup run of a failing plan: %v, want exit %d\n%s\n%s", err, exitNotCompleted, out, progress)
	}

	out, _, err = runCLI3(t, "backup", "list", "-o", "json", addr)
	var list pb.ListBackupsResponse
	if err != nil || protojson.Unmarshal([]byte(out), &list) != nil || len(list.GetBackups()) != 1 {
		t.Fatalf("backup list -o json: %v\n%s", err, out)
	}
	id := list.GetBackups()[0].GetOpId()
	out, _, err = runCLI3(t, "backup", "list", "--plan", "dev", addr)
	if err != nil || !strings.Contains(out, id) || !strings.Contains(out, "4/4") {
		t.Fatalf("backup list: %v\n%s", err, out)
	}
	out, _, err = runCLI3(t, "backup", "show", id, "--tz", "America/New_York", addr)
	if err != nil || !strings.Contains(out, "-05:00 (America/New_York)") || !strings.Contains(out, "Plan           dev") || !strings.Contains(out, "Output of ledger-databases/0") {
		t.Fatalf("backup show: %v\n%s", err, out)
	}
	if _, _, err := runCLI3(t, "backup", "show", "op-nope", addr); exitCode(err) != exitFailed {
		t.Fatalf("backup show of an unknown id: %v", err)
	}
}
