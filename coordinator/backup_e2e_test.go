package coordinator_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stillpoint-dev/stillpoint/coordinator"
	"github.com/stillpoint-dev/stillpoint/internal/clock"
	"github.com/stillpoint-dev/stillpoint/internal/devcluster"
	"github.com/stillpoint-dev/stillpoint/internal/hook"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// storePlan stores plan through the leader's Raft log.
func storePlan(t *testing.T, c *devcluster.Cluster, plan *pb.BackupPlan) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Servers()[c.Leader()].Apply(ctx, &pb.SetBackupPlanCommand{Plan: plan, Actor: "test"}); err != nil {
		t.Fatalf("store plan %s: %v", plan.GetName(), err)
	}
}

// startBackup starts a backup of plan, retrying a refused admission (a
// loaded box's clock bounds) a few times.
func startBackup(t *testing.T, cl pb.CoordinatorServiceClient, plan string) *pb.Operation {
	t.Helper()
	id := fmt.Sprintf("test-%d", time.Now().UnixNano())
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		resp, err := cl.StartBackup(ctx, &pb.StartBackupRequest{Plan: plan, RequestId: id, RequestedBy: "test"})
		cancel()
		if err == nil {
			return resp.GetOperation()
		}
		// A refusal (clocks on a loaded box) or NOT_APPLIED (a leader change:
		// nothing was done, retry as is) is retried with the same id.
		if (status.Code(err) != codes.FailedPrecondition && coordinator.ReasonOf(err) != coordinator.ReasonNotApplied) || attempt == 5 {
			t.Fatalf("start backup of %s: %v", plan, err)
		}
		t.Logf("backup of %s refused (attempt %d), retrying: %v", plan, attempt, err)
		time.Sleep(500 * time.Millisecond)
	}
}

// backupUntil runs a backup of plan until it ends as the test means
// (done), at most 3 times: on a loaded box a leader change or a lost lease
// can end one for reasons that are not the plan's.
func backupUntil(t *testing.T, c *devcluster.Cluster, cl pb.CoordinatorServiceClient, plan string, done func(*pb.Operation) bool) *pb.Operation {
	t.Helper()
	for attempt := 1; ; attempt++ {
		op := watchEnd(t, c, startBackup(t, cl, plan).GetOpId(), 60*time.Second)
		if done(op) || attempt == 3 {
			return op
		}
		t.Logf("backup of %s ended %s (%s); again", plan, op.GetState(), op.GetReason())
	}
}

func runOf(op *pb.Operation, step string) *pb.HookRun {
	for _, h := range op.GetBackup().GetHooks() {
		if h.GetStepId() == step {
			return h
		}
	}
	return nil
}

// checkHooksInsidePause is the oracle for a backup's during hooks: each
// run, from its agent's start and end stamps, lies inside a
// paused-and-drained interval of every target, and every run of a group
// ended before any run of a group after it started.
func checkHooksInsidePause(t *testing.T, c *devcluster.Cluster, op *pb.Operation, order []string) {
	t.Helper()
	type span struct{ lo, hi time.Time }
	groups := map[string][]span{}
	for _, h := range op.GetBackup().GetHooks() {
		if h.GetGroup() == "after" {
			continue
		}
		if err := clock.ValidateStamp(h.GetStartedAt()); err != nil {
			t.Fatalf("%s: start stamp: %v", h.GetStepId(), err)
		}
		if err := clock.ValidateStamp(h.GetEndedAt()); err != nil {
			t.Fatalf("%s: end stamp: %v", h.GetStepId(), err)
		}
		// The dev agents read the host clock (no skew here), the clock the
		// simnodes record their paused intervals on: a stamp's local time
		// is its true time. The estimate's interval is wider by ±ε and
		// under load can reach past the pause's edges, which causality
		// (a hook starts after every ack reached the leader, and ends
		// before any Unpause is sent) keeps the hook inside of.
		lo, hi := h.GetStartedAt().GetLocalTime().AsTime(), h.GetEndedAt().GetLocalTime().AsTime()
		if elo, _ := clock.TrueInterval(h.GetStartedAt()); elo.After(lo) {
			t.Errorf("%s: start stamp %s outside its own estimate's interval (from %s)", h.GetStepId(), lo, elo)
		}
		groups[h.GetGroup()] = append(groups[h.GetGroup()], span{lo, hi})
		for _, tg := range op.GetTargets() {
			inside := false
			for _, iv := range c.Node(tg.GetNode()).Sim.PausedIntervals() {
				if !iv.Start.After(lo) && !iv.End.IsZero() && !iv.End.Before(hi) {
					inside = true
				}
			}
			if !inside {
				t.Errorf("hook %s ran [%s, %s], not inside a paused interval of %s: %v", h.GetStepId(), lo, hi, tg.GetNode(), c.Node(tg.GetNode()).Sim.PausedIntervals())
			}
		}
	}
	for i := 1; i < len(order); i++ {
		for _, before := range groups[order[i-1]] {
			for _, after := range groups[order[i]] {
				if !before.hi.Before(after.lo) {
					t.Errorf("a %s hook ended by %s, not before a %s hook started at %s", order[i-1], before.hi, order[i], after.lo)
				}
			}
		}
	}
}

// A backup of the dev cluster: the Ledger group (a snapshot hook on two
// Ledger nodes), then the Auditor group (auditor-1, not paused), both
// inside every Ledger node's paused interval, Ledger strictly first; the
// after hook gets the restore point; the catalog entry carries the runs.
// A failing Ledger hook with on_error abort unpauses every node and leaves
// no catalog entry.
func TestBackupOfDevClusterRunsHooksInsideThePause(t *testing.T) {
	c := startDev(t, func(cfg *devcluster.Config) { cfg.Nodes = devcluster.DefaultConfig().Nodes })
	cl := client(t, c, 1) // forwarded to the leader
	snap := func(agent string) *pb.HookRef { return &pb.HookRef{Agent: agent, Hook: devcluster.HookSnapshot} }
	storePlan(t, c, &pb.BackupPlan{
		Name: "nightly",
		Groups: []*pb.HookGroup{
			{Name: "ledger-databases", Hooks: []*pb.HookRef{snap("ledger-1"), snap("ledger-2")}},
			{Name: "auditor-databases", Hooks: []*pb.HookRef{snap("auditor-1")}},
		},
		After: []*pb.HookRef{snap("ledger-3")},
	})
	op := startBackup(t, cl, "nightly")
	if op.GetBackup() == nil || !op.GetUntilUnpaused() || len(op.GetTargets()) != 3 {
		t.Fatalf("started op: backup %v until_unpaused %v targets %d", op.GetBackup(), op.GetUntilUnpaused(), len(op.GetTargets()))
	}
	final := watchEnd(t, c, op.GetOpId(), 60*time.Second)
	if final.GetState() != pb.OperationState_OPERATION_STATE_COMPLETED {
		t.Logf("backup ended %s (%s); again", final.GetState(), final.GetReason())
		final = backupUntil(t, c, cl, "nightly", func(o *pb.Operation) bool { return o.GetState() == pb.OperationState_OPERATION_STATE_COMPLETED })
	}
	if final.GetState() != pb.OperationState_OPERATION_STATE_COMPLETED {
		t.Fatalf("backup ended %s: %s", final.GetState(), final.GetReason())
	}
	checkOracle(t, c, final)
	checkHooksInsidePause(t, c, final, []string{"ledger-databases", "auditor-databases"})

	// The after hook ends after the op: read the catalog until it has.
	var entry *pb.RestorePoint
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := cl.GetBackup(context.Background(), &pb.GetBackupRequest{BackupId: final.GetOpId()})
		if err == nil && runOf(&pb.Operation{Backup: resp.GetBackup().GetBackup()}, "after/0").GetState() == pb.HookState_HOOK_STATE_SUCCEEDED {
			entry = resp.GetBackup()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after hook not recorded on the catalog entry: %v %v", resp, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if entry.GetPartial() || entry.GetBackup().GetPlan().GetName() != "nightly" {
		t.Fatalf("catalog entry: partial %v plan %q", entry.GetPartial(), entry.GetBackup().GetPlan().GetName())
	}
	for _, h := range entry.GetBackup().GetHooks() {
		if h.GetState() != pb.HookState_HOOK_STATE_SUCCEEDED || len(h.GetOutputTail()) == 0 {
			t.Errorf("%s: %s, output %q", h.GetStepId(), h.GetState(), h.GetOutputTail())
		}
	}
	// The after hook's artefact holds the restore point it was given.
	lines := strings.Split(strings.TrimSpace(string(runOf(&pb.Operation{Backup: entry.GetBackup()}, "after/0").GetOutputTail())), "\n")
	env, err := os.ReadFile(lines[len(lines)-1])
	if err != nil {
		t.Fatal(err)
	}
	rp := final.GetWindow().GetRestorePoint().AsTime().UTC().Format("2006-01-02T15:04:05.000000000Z07:00")
	if !strings.Contains(string(env), hook.EnvRestorePoint+"="+rp+"\n") {
		t.Fatalf("after hook env:\n%s\nwant %s=%s", env, hook.EnvRestorePoint, rp)
	}
	list, err := cl.ListBackups(context.Background(), &pb.ListBackupsRequest{Plan: "nightly"})
	if err != nil || len(list.GetBackups()) != 1 || list.GetBackups()[0].GetOpId() != final.GetOpId() {
		t.Fatalf("list backups: %v %v", list, err)
	}

	// A failing Ledger hook (on_error abort by default): every node is
	// unpaused, the op ABORTED naming the agent and hook, no entry.
	storePlan(t, c, &pb.BackupPlan{
		Name: "broken",
		Groups: []*pb.HookGroup{
			{Name: "ledger-databases", Hooks: []*pb.HookRef{snap("ledger-1"), {Agent: "ledger-2", Hook: devcluster.HookFail}}},
			{Name: "auditor-databases", Hooks: []*pb.HookRef{snap("auditor-1")}},
		},
	})
	final = backupUntil(t, c, cl, "broken", func(o *pb.Operation) bool { return strings.Contains(o.GetReason(), "backup aborted") })
	if final.GetState() != pb.OperationState_OPERATION_STATE_ABORTED || !strings.Contains(final.GetReason(), "ledger-2") ||
		!strings.Contains(final.GetReason(), devcluster.HookFail) || !strings.Contains(final.GetReason(), "exit code 1") {
		t.Fatalf("broken backup ended %s: %s", final.GetState(), final.GetReason())
	}
	if h := runOf(final, "auditor-databases/0"); h.GetState() != pb.HookState_HOOK_STATE_SKIPPED {
		t.Fatalf("auditor hook after an abort: %v", h)
	}
	for _, n := range c.Nodes() {
		ivs := n.Sim.PausedIntervals()
		if len(ivs) > 0 && ivs[len(ivs)-1].End.IsZero() {
			t.Errorf("%s is still paused after the aborted backup", n.Spec.Name)
		}
	}
	if _, err := cl.GetBackup(context.Background(), &pb.GetBackupRequest{BackupId: final.GetOpId()}); status.Code(err) != codes.NotFound {
		t.Fatalf("aborted backup's entry: %v, want NOT_FOUND", err)
	}

	// A retried StartBackup (same request_id) returns the op it started;
	// the same id naming another plan is refused.
	var first *pb.Operation
	for attempt := 1; first == nil; attempt++ {
		resp, err := cl.StartBackup(context.Background(), &pb.StartBackupRequest{Plan: "nightly", RequestId: "idem-1", RequestedBy: "test"})
		switch {
		case err == nil:
			first = resp.GetOperation()
		case status.Code(err) == codes.FailedPrecondition && attempt < 5:
			time.Sleep(500 * time.Millisecond)
		default:
			t.Fatalf("start backup idem-1: %v", err)
		}
	}
	again, err := cl.StartBackup(context.Background(), &pb.StartBackupRequest{Plan: "nightly", RequestId: "idem-1", RequestedBy: "test"})
	if err != nil || again.GetOperation().GetOpId() != first.GetOpId() {
		t.Fatalf("retried StartBackup: %v %v, want %s again", again.GetOperation().GetOpId(), err, first.GetOpId())
	}
	if _, err := cl.StartBackup(context.Background(), &pb.StartBackupRequest{Plan: "broken", RequestId: "idem-1"}); status.Code(err) != codes.InvalidArgument ||
		!strings.Contains(err.Error(), first.GetOpId()) {
		t.Fatalf("request id reused for another plan: %v, want INVALID_ARGUMENT naming %s", err, first.GetOpId())
	}
	watchEnd(t, c, first.GetOpId(), 60*time.Second)
}
