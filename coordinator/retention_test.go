package coordinator

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"go.uber.org/zap/zaptest"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stillpoint-dev/stillpoint/internal/hook"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

func entry(id string, age time.Duration, invalid bool) *pb.RestorePoint {
	return &pb.RestorePoint{OpId: id, Invalid: invalid, Window: &pb.RestoreWindow{RestorePoint: timestamppb.New(st0.Add(-age))}}
}

func TestRetentionPrunes(t *testing.T) {
	day := 24 * time.Hour
	// Newest first by restore point whatever the list order.
	entries := []*pb.RestorePoint{
		entry("d3", 3*day, false), entry("d0", 0, false), entry("d1", day, true), entry("d2", 2*day, false), entry("d5", 5*day, true), entry("d4", 4*day, false),
	}
	tests := []struct {
		name string
		r    *pb.Retention
		want string
	}{
		{"no retention", &pb.Retention{}, ""},
		{"keep_last 2 counts valid entries only", &pb.Retention{KeepLast: 2}, "d4 d3"},
		{"keep_last 10", &pb.Retention{KeepLast: 10}, ""},
		{"max_age 2.5d prunes invalid ones too", &pb.Retention{MaxAgeMs: (60 * time.Hour).Milliseconds()}, "d5 d4 d3"},
		{"both", &pb.Retention{KeepLast: 1, MaxAgeMs: (36 * time.Hour).Milliseconds()}, "d5 d4 d3 d2"},
		{"max_age never takes the newest valid", &pb.Retention{MaxAgeMs: 1}, "d5 d4 d3 d2 d1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, c := range retentionPrunes(tc.r, entries, st0) {
				got = append(got, c.rp.GetOpId())
			}
			if strings.Join(got, " ") != tc.want {
				t.Fatalf("pruned %v, want %q", got, tc.want)
			}
		})
	}
	only := []*pb.RestorePoint{entry("old", 10*day, false), entry("older-invalid", 11*day, true)}
	if got := retentionPrunes(&pb.Retention{MaxAgeMs: day.Milliseconds()}, only, st0); len(got) != 1 || got[0].rp.GetOpId() != "older-invalid" {
		t.Fatalf("a plan whose backups stopped: pruned %v, want only the invalid entry", got)
	}
}

// retRig is a retainer over a real FSM holding completed backups of plan
// nightly, with a fake agent that runs a step at most once per (backup,
// step) like a real one and remembers its result.
type retRig struct {
	*schedRig
	mu    sync.Mutex
	runs  map[string]*pb.HookRun // backup id + step -> result
	execs map[string]int         // backup id -> hook executions
	fail  map[string]bool        // backup ids whose delete fails
	envs  map[string]map[string]string
}

func newRetRig(t *testing.T, keep int32, ids ...string) *retRig {
	p := &pb.BackupPlan{Name: "nightly", Retention: &pb.Retention{KeepLast: keep}, DeleteHook: &pb.HookRef{Agent: "ledger-1", Hook: "rm-dump"}}
	r := &retRig{schedRig: newSchedRig(t, p), runs: map[string]*pb.HookRun{}, execs: map[string]int{}, fail: map[string]bool{}, envs: map[string]map[string]string{}}
	for i, id := range ids {
		r.completeBackup(id, time.Duration(i)*time.Hour)
	}
	return r
}

func (r *retRig) completeBackup(id string, at time.Duration) {
	op := &pb.Operation{
		OpId: id, Cluster: "ledger", State: pb.OperationState_OPERATION_STATE_PENDING, Targets: []*pb.TargetRecord{{Node: "ledger-1"}},
		Backup: &pb.BackupRun{Plan: &pb.BackupPlan{Name: "nightly"}}, RequestId: "req-" + id,
	}
	r.apply(&pb.CreateOperationCommand{Operation: op})
	op.State = pb.OperationState_OPERATION_STATE_COMPLETED
	rp := timestamppb.New(st0.Add(at))
	op.Window = &pb.RestoreWindow{Start: rp, End: rp, RestorePoint: rp}
	r.apply(&pb.UpdateOperationCommand{Operation: op})
}

func (r *retRig) retainer() *retainer {
	return &retainer{
		log: zaptest.NewLogger(r.t), clock: r.clock,
		plans: r.f.Plans, entries: r.f.PlanBackups, version: r.f.CatalogVersion, changed: r.f.Changed,
		runHook: func(_ context.Context, ref *pb.HookRef, backupID, step string, env map[string]string) *pb.HookRun {
			r.mu.Lock()
			defer r.mu.Unlock()
			key := backupID + "/" + step
			if run, ok := r.runs[key]; ok {
				return run
			}
			r.execs[backupID]++
			r.envs[backupID] = env
			run := &pb.HookRun{StepId: step, State: pb.HookState_HOOK_STATE_SUCCEEDED}
			if r.fail[backupID] {
				run.State, run.ExitCode, run.OutputTail = pb.HookState_HOOK_STATE_FAILED, 2, []byte("rm: cannot remove\n")
			}
			r.runs[key] = run
			return run
		},
		prune: func(_ context.Context, cmd *pb.PruneBackupsCommand) error { return r.applyErr(cmd) },
		alarm: func(_ context.Context, id string, a *pb.Alarm) error {
			if a == nil {
				return r.applyErr(&pb.ClearAlarmCommand{Id: id})
			}
			return r.applyErr(&pb.RaiseAlarmCommand{Alarm: a})
		},
		active: func(id string) bool { a, ok := r.f.Alarm(id); return ok && a.GetActive() },
		stamp:  func() *pb.StampedTime { return &pb.StampedTime{LocalTime: timestamppb.New(r.clock.Now())} },
	}
}

func (r *retRig) catalog() string {
	var ids []string
	for _, rp := range r.f.PlanBackups("nightly") {
		ids = append(ids, rp.GetOpId())
	}
	return strings.Join(ids, " ")
}

// keep_last prunes the oldest entries after running the delete hook once
// each; a failed hook keeps its entry until a later attempt succeeds; a
// new leader asks the agent for the step it already ran and does not run
// the hook again.
func TestRetainerDeleteHooks(t *testing.T) {
	r := newRetRig(t, 2, "b1", "b2", "b3", "b4")
	r.fail["b2"] = true
	rt := r.retainer()
	ctx := context.Background()
	rt.evaluate(ctx)
	if got := r.catalog(); got != "b4 b3 b2" {
		t.Fatalf("catalog after pruning = %q, want b2 kept (its delete hook failed)", got)
	}
	env := r.envs["b1"]
	if env[hook.EnvBackupID] != "b1" || env[hook.EnvPlan] != "nightly" || env[hook.EnvRestorePoint] != "2026-03-01T12:00:00.000000000Z" || env[hook.EnvRestorePointMS] != fmt.Sprint(st0.UnixMilli()) || env[hook.EnvStepID] != "retention-delete.1" {
		t.Fatalf("delete hook env = %v", env)
	}
	audit := r.f.Audit(1)[0]
	if !strings.Contains(audit.GetDetail(), "plan nightly: pruned 1 catalog entries (b1): b1 beyond keep_last 2") {
		t.Fatalf("audit = %v", audit)
	}

	al, ok := r.f.Alarm(DeleteHookAlarmID("nightly"))
	if !ok || !al.GetActive() || al.GetKind() != AlarmDeleteHookFailed || al.GetNode() != "ledger-1" ||
		!strings.Contains(al.GetMessage(), "delete hook rm-dump on ledger-1 failed for 1 catalog entries") || !strings.Contains(al.GetMessage(), "b2 (failed, exit code 2)") {
		t.Fatalf("alarm = %v", al)
	}

	// Fixed: the next evaluation's second attempt succeeds.
	r.fail["b2"] = false
	rt.evaluate(ctx)
	if got := r.catalog(); got != "b4 b3" {
		t.Fatalf("catalog = %q", got)
	}
	if al, _ := r.f.Alarm(DeleteHookAlarmID("nightly")); al.GetActive() {
		t.Fatalf("alarm still active once the entry was pruned: %v", al)
	}
	if _, ok := r.runs["b2/retention-delete.2"]; !ok || r.execs["b2"] != 2 {
		t.Fatalf("b2 attempts: %v runs, %d executions", r.runs, r.execs["b2"])
	}

	// A leader that ran b3's delete hook and died before pruning: the next
	// one gets the agent's recorded run back and prunes without a rerun.
	r.completeBackup("b5", 5*time.Hour)
	r.runs["b3/retention-delete.1"] = &pb.HookRun{State: pb.HookState_HOOK_STATE_SUCCEEDED}
	r.execs["b3"] = 1
	r.retainer().evaluate(ctx)
	if got := r.catalog(); got != "b5 b4" {
		t.Fatalf("catalog = %q", got)
	}
	for id, n := range map[string]int{"b1": 1, "b2": 2, "b3": 1} {
		if r.execs[id] != n {
			t.Fatalf("%s's delete hook executed %d times, want %d (executions %v)", id, r.execs[id], n, r.execs)
		}
	}
	if op, ok := r.f.Operation("b1"); !ok || op.GetState() != pb.OperationState_OPERATION_STATE_COMPLETED {
		t.Fatal("pruned backup's op left the history")
	}
}

// The duty prunes when a backup completes, without waiting for its
// interval.
func TestRetainerRunsOnCatalogChange(t *testing.T) {
	r := newRetRig(t, 1, "b1")
	r.clock = clockwork.NewFakeClockAt(st0)
	rt := r.retainer()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); rt.run(ctx) }()
	defer func() { cancel(); <-done }()
	// The first evaluation ran and the duty sleeps on its interval (which
	// the fake clock never reaches).
	if err := r.clock.BlockUntilContext(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if got := r.catalog(); got != "b1" {
		t.Fatalf("catalog = %q before b2", got)
	}
	r.completeBackup("b2", time.Hour)
	deadline := time.After(10 * time.Second)
	for {
		changed := r.f.Changed()
		if r.catalog() == "b2" {
			break
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("catalog = %q, want b1 pruned once b2 completed", r.catalog())
		}
	}
}
