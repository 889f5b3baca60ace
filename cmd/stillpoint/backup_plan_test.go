package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/stillpoint-dev/stillpoint/internal/clock"
	"github.com/stillpoint-dev/stillpoint/internal/plan"
	"github.com/stillpoint-dev/stillpoint/internal/testcluster"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

const pitrPlan = `name: pitr
# the Ledger cluster; no hooks: the restore point is the backup
databases:
  - name: ledger-rds
    service: ledger
    kind: postgres
    method: pitr
    time_zone: Asia/Tokyo
retention:
  keep_last: 30
  max_age: 720h
`

// TestBackupPlanCommands: set, get, list and delete through the CLI
// against a 3-server cluster; YAML errors carry line numbers and nothing
// is sent; the leader's refusal lists every problem.
func TestBackupPlanCommands(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.WithExtra(func(t testing.TB, c *testcluster.Cluster) {
		// A stand-in agent: on the roster, but nothing answers at its
		// gRPC address, so its hooks cannot be checked.
		c.AddStandIn(t, "ledger-1", agentMeta("ledger", 0, time.Millisecond, clock.Synchronized, pb.PausedState_PAUSED_STATE_UNPAUSED, true))
	}))
	leader := c.WaitForLeader(t)
	testcluster.WaitFor(t, testcluster.DefaultTimeout, func() (bool, string) {
		return len(leader.FSM().Roster("ledger")) == 1, "ledger-1 not on the roster"
	})
	addr := c.Server(0).GRPCAddr()
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}

	// A typo is refused locally, with its line; nothing reaches the server.
	bad := write("bad.yaml", strings.Replace(pitrPlan, "time_zone:", "timezone:", 1))
	_, err := runCoordCLI(t, "backup", "plan", "set", "-f", bad, "--addr", addr)
	if err == nil || !strings.Contains(err.Error(), `line 8: unknown key "timezone" in a database (it takes: name, service, kind, method, time_zone, hook)`) {
		t.Fatalf("set with a typo: %v", err)
	}
	// The example names agents this cluster lacks or cannot ask.
	ex := write("example.yaml", plan.Example())
	_, err = runCoordCLI(t, "backup", "plan", "set", "-f", ex, "--addr", addr)
	for _, want := range []string{"set backup plan nightly: InvalidArgument:", "nothing was stored", "backup plan nightly has 4 problems",
		`groups[0].hooks[0].hook: cannot check hook "pg-dump": agent ledger-1 is unreachable`,
		`groups[1].hooks[0].agent: "auditor-1" is on no cluster's roster and is not "coordinator" (roster: ledger-1)`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("set example: missing %q in %v", want, err)
		}
	}
	if n := len(leader.FSM().Plans()); n != 0 {
		t.Fatalf("%d plans stored after refusals", n)
	}

	out, err := runCoordCLI(t, "backup", "plan", "set", "-f", write("pitr.yaml", pitrPlan), "--addr", addr)
	if err != nil || !strings.Contains(out, "backup plan pitr stored (pauses the Ledger cluster; 0 groups, 0 hooks, 0 after hooks; 1 databases)") {
		t.Fatalf("set: %q, %v", out, err)
	}
	out, err = runCoordCLI(t, "backup", "plan", "get", "pitr", "--addr", addr)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "# set by ") || !strings.Contains(out, "max_age: 720h0m0s") || !strings.Contains(out, "time_zone: Asia/Tokyo") {
		t.Fatalf("get:\n%s", out)
	}
	// What get prints, set takes back unchanged.
	p, err := plan.Decode([]byte(out))
	if err != nil || p.GetRetention().GetKeepLast() != 30 || p.GetDatabases()[0].GetMethod() != pb.RestoreMethod_RESTORE_METHOD_PITR {
		t.Fatalf("get output does not decode: %v %v", p, err)
	}
	out, err = runCoordCLI(t, "backup", "plan", "get", "pitr", "-o", "json", "--addr", addr)
	resp := &pb.GetBackupPlanResponse{}
	if err != nil || protojson.Unmarshal([]byte(out), resp) != nil || resp.GetPlan().GetPlan().GetName() != "pitr" {
		t.Fatalf("get -o json: %q, %v", out, err)
	}
	out, err = runCoordCLI(t, "backup", "plan", "list", "--addr", addr)
	if err != nil || !strings.Contains(out, "pitr") || !strings.Contains(out, "ledger-rds:postgres/pitr") {
		t.Fatalf("list: %q, %v", out, err)
	}
	if _, err := runCoordCLI(t, "backup", "plan", "delete", "pitr", "--addr", addr); err != nil {
		t.Fatal(err)
	}
	_, err = runCoordCLI(t, "backup", "plan", "get", "pitr", "--addr", addr)
	if err == nil || !strings.Contains(err.Error(), `no backup plan is named "pitr" (plans: none)`) {
		t.Fatalf("get after delete: %v", err)
	}
	out, err = runCoordCLI(t, "backup", "plan", "list", "--addr", addr)
	if err != nil || !strings.Contains(out, "(no backup plans") {
		t.Fatalf("empty list: %q, %v", out, err)
	}
}

func TestBackupPlanCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, []byte(plan.Example()), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runCoordCLI(t, "backup", "plan", "check", "-f", good)
	if err != nil || !strings.Contains(out, "backup plan nightly is well formed (pauses the Ledger cluster; 2 groups, 2 hooks, 0 after hooks; 2 databases)") {
		t.Fatalf("check example: %q, %v", out, err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	text := strings.Replace(plan.Example(), "    after: [ledger-databases]", "    after: [auditor-databases]", 1) + "schedule: \"0 25 * * *\"\n"
	if err := os.WriteFile(bad, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = runCoordCLI(t, "backup", "plan", "check", "-f", bad)
	for _, want := range []string{"has 2 problems", "groups[1].after: cycle: auditor-databases → auditor-databases", `schedule: "0 25 * * *" is not a cron schedule`} {
		if err == nil || exitCode(err) != exitFailed || !strings.Contains(err.Error(), want) {
			t.Errorf("check bad: missing %q in %v", want, err)
		}
	}
}

func TestBackupPlanExample(t *testing.T) {
	out, err := runCoordCLI(t, "backup", "plan", "example")
	if err != nil || out != plan.Example() {
		t.Fatalf("example: %v", err)
	}
	if _, err := runCoordCLI(t, "backup", "plan", "set"); err == nil || exitCode(err) != exitUsage {
		t.Fatalf("set without -f: %v (exit %d)", err, exitCode(err))
	}
	if _, err := runCoordCLI(t, "backup", "plan", "get", "x", "-o", "table"); err == nil || exitCode(err) != exitUsage {
		t.Fatalf("get -o table: %v", err)
	}
}
