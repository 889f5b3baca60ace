package coordinator

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/stillpoint-dev/stillpoint/coordinator/fsm"
	"github.com/stillpoint-dev/stillpoint/internal/hook"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// rtPlan is the guide's plan: Ledger databases (a hook on ledger-1), then
// Auditor databases (a hook on auditor-1, not a target), then an after
// hook on ledger-2.
func rtPlan(ledgerOnError pb.HookOnError) *pb.BackupPlan {
	return &pb.BackupPlan{
		Name: "nightly",
		Groups: []*pb.HookGroup{
			{Name: "ledger-databases", Hooks: []*pb.HookRef{{Agent: "ledger-1", Hook: "pg-dump-ledger", OnError: ledgerOnError}}},
			{Name: "auditor-databases", Hooks: []*pb.HookRef{{Agent: "auditor-1", Hook: "pg-dump-auditor"}}},
		},
		After: []*pb.HookRef{{Agent: "ledger-2", Hook: "notify"}},
	}
}

// rtBackup is a PENDING backup op of plan over ledger-1 and ledger-2, held
// until its hooks end (at most maxHold).
func rtBackup(plan *pb.BackupPlan, maxHold time.Duration) *pb.Operation {
	op := rtUntilUnpaused(0, 15_000, "ledger-1", "ledger-2")
	op.MaxHoldNs = int64(maxHold)
	op.Backup = newBackupRun(plan)
	return op
}

// rtHookLog records, in order, each hook's start and end and whether every
// target was paused at that moment.
type rtHookLog struct {
	mu     sync.Mutex
	events []string
	envs   map[string]map[string]string
	paused map[string][2]bool // step -> paused at start, at end
}

func (h *rtHookLog) note(f rtFleet, req *pb.RunHookRequest, what string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	all := f["ledger-1"].isPaused() && f["ledger-2"].isPaused()
	h.events = append(h.events, what+" "+req.GetStepId())
	if h.envs == nil {
		h.envs, h.paused = map[string]map[string]string{}, map[string][2]bool{}
	}
	h.envs[req.GetStepId()] = req.GetEnv()
	p := h.paused[req.GetStepId()]
	if what == "start" {
		p[0] = all
	} else {
		p[1] = all
	}
	h.paused[req.GetStepId()] = p
}

// rtHookFleet is the targets plus auditor-1, each hook wrapped by the log;
// behave decides a step's result (nil: success) and may block.
func rtHookFleet(hl *rtHookLog, behave func(req *pb.RunHookRequest) *pb.HookRun) rtFleet {
	f := rtNewFleet(time.Now, "ledger-1", "ledger-2", "auditor-1")
	for _, a := range f {
		a.hook = func(req *pb.RunHookRequest) *pb.HookRun {
			hl.note(f, req, "start")
			var run *pb.HookRun
			if behave != nil {
				run = behave(req)
			}
			hl.note(f, req, "end")
			return run
		}
	}
	return f
}

func rtRun(op *pb.Operation, name string) *pb.HookRun {
	for _, h := range op.GetBackup().GetHooks() {
		if h.GetStepId() == name {
			return h
		}
	}
	return nil
}

func rtRunStates(op *pb.Operation) string {
	var s []string
	for _, h := range op.GetBackup().GetHooks() {
		s = append(s, h.GetStepId()+"="+h.GetState().String())
	}
	return strings.Join(s, " ")
}

// A backup runs the Ledger group, then the Auditor group, both while every
// target is paused, records each run (RUNNING, then its result), completes
// with its window and then runs the after hook, unpaused, with the restore
// point.
func TestBackupRunsGroupsInOrderInsideTheHold(t *testing.T) {
	hl := &rtHookLog{}
	f := rtHookFleet(hl, nil)
	l := &rtLog{epoch: 1}
	r := rtRunner(t, l, f, 1, nil)
	final, err := r.run(context.Background(), rtBackup(rtPlan(0), time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if final.GetState() != pb.OperationState_OPERATION_STATE_COMPLETED || final.GetWindow() == nil {
		t.Fatalf("op ended %s (%s), want COMPLETED", final.GetState(), final.GetReason())
	}
	for _, step := range []string{"ledger-databases/0", "auditor-databases/0", "after/0"} {
		if got := rtRun(l.latest(), step); got.GetState() != pb.HookState_HOOK_STATE_SUCCEEDED || got.GetStartedAt() == nil {
			t.Errorf("recorded %s = %v, want SUCCEEDED", step, got)
		}
	}
	want := "start ledger-databases/0,end ledger-databases/0,start auditor-databases/0,end auditor-databases/0,start after/0,end after/0"
	if got := strings.Join(hl.events, ","); got != want {
		t.Fatalf("hook order %s\nwant %s", got, want)
	}
	for step, p := range hl.paused {
		if during := step != "after/0"; p != [2]bool{during, during} {
			t.Errorf("%s: every target paused at start/end = %v, want %v", step, p, during)
		}
	}
	env := hl.envs["auditor-databases/0"]
	if env[hook.EnvOpID] != "op-test" || env[hook.EnvPlan] != "nightly" || env[hook.EnvClusters] != "ledger" || env[hook.EnvHookGroup] != "auditor-databases" ||
		env[hook.EnvStepID] != "auditor-databases/0" || env[hook.EnvWindowStart] == "" || env[hook.EnvWindowStartMS] == "" || env[hook.EnvRestorePoint] != "" {
		t.Fatalf("during hook env = %v", env)
	}
	after := hl.envs["after/0"]
	if rp := final.GetWindow().GetRestorePoint().AsTime().UTC().Format("2006-01-02T15:04:05.000000000Z07:00"); after[hook.EnvRestorePoint] != rp ||
		after[hook.EnvRestorePointMS] != fmt.Sprint(final.GetWindow().GetRestorePoint().AsTime().UnixMilli()) ||
		after[hook.EnvRestorePointUncertainty] != fmt.Sprint(final.GetWindow().GetUncertaintyNs()) || after[hook.EnvWindowEnd] == "" {
		t.Fatalf("after hook env = %v, want restore point %s", after, rp)
	}
	// Every change was recorded in order (RUNNING, for a new leader to
	// find, may be superseded by the result when both came before the
	// write).
	var seen []string
	for _, op := range l.history {
		if h := rtRun(op, "ledger-databases/0"); len(seen) == 0 || seen[len(seen)-1] != h.GetState().String() {
			seen = append(seen, h.GetState().String())
		}
	}
	if got := strings.Join(seen, ","); got != "HOOK_STATE_PENDING,HOOK_STATE_RUNNING,HOOK_STATE_SUCCEEDED" && got != "HOOK_STATE_PENDING,HOOK_STATE_SUCCEEDED" {
		t.Fatalf("ledger hook recorded as %s", got)
	}
	if rtRun(final, "after/0").GetState() != pb.HookState_HOOK_STATE_SUCCEEDED || final.GetBackup().GetPartial() {
		t.Fatalf("returned op: %s partial=%v", rtRunStates(final), final.GetBackup().GetPartial())
	}
	rtNonePaused(t, f)
}

// A failed Ledger hook with on_error abort unpauses every node and ends
// the op ABORTED, naming the agent, the hook and the exit code; the later
// hooks are skipped, never run.
func TestBackupHookFailureAborts(t *testing.T) {
	hl := &rtHookLog{}
	f := rtHookFleet(hl, func(req *pb.RunHookRequest) *pb.HookRun {
		if req.GetHook() == "pg-dump-ledger" {
			return &pb.HookRun{State: pb.HookState_HOOK_STATE_FAILED, ExitCode: 2, Message: "pg_dump: connection refused", OutputTail: []byte("pg_dump: error\n")}
		}
		return nil
	})
	l := &rtLog{epoch: 1}
	final, err := rtRunner(t, l, f, 1, nil).run(context.Background(), rtBackup(rtPlan(pb.HookOnError_HOOK_ON_ERROR_ABORT), time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if final.GetState() != pb.OperationState_OPERATION_STATE_ABORTED || final.GetWindow() != nil {
		t.Fatalf("op ended %s (%s), want ABORTED without a window", final.GetState(), final.GetReason())
	}
	for _, want := range []string{"ledger-1", "pg-dump-ledger", "exit code 2", "connection refused"} {
		if !strings.Contains(final.GetReason(), want) {
			t.Errorf("reason %q does not name %q", final.GetReason(), want)
		}
	}
	got := l.latest()
	if rtRun(got, "ledger-databases/0").GetState() != pb.HookState_HOOK_STATE_FAILED || string(rtRun(got, "ledger-databases/0").GetOutputTail()) != "pg_dump: error\n" ||
		rtRun(got, "auditor-databases/0").GetState() != pb.HookState_HOOK_STATE_SKIPPED || rtRun(got, "after/0").GetState() != pb.HookState_HOOK_STATE_SKIPPED {
		t.Fatalf("recorded runs: %s", rtRunStates(got))
	}
	if n, _ := f["auditor-1"].rtStepCalls("op-test", "auditor-databases/0"); n != 0 {
		t.Fatal("the Auditor hook ran after the Ledger hook aborted the backup")
	}
	rtNonePaused(t, f)
}

// With on_error continue a failed hook lets the backup go on: it completes
// with its window, marked partial, and the later hooks run.
func TestBackupHookFailureContinuesPartial(t *testing.T) {
	hl := &rtHookLog{}
	f := rtHookFleet(hl, func(req *pb.RunHookRequest) *pb.HookRun {
		if req.GetHook() == "pg-dump-ledger" {
			return &pb.HookRun{State: pb.HookState_HOOK_STATE_TIMED_OUT, ExitCode: -1, Message: "killed at its timeout 1s"}
		}
		return nil
	})
	l := &rtLog{epoch: 1}
	final, err := rtRunner(t, l, f, 1, nil).run(context.Background(), rtBackup(rtPlan(pb.HookOnError_HOOK_ON_ERROR_CONTINUE), time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if final.GetState() != pb.OperationState_OPERATION_STATE_COMPLETED || !final.GetBackup().GetPartial() {
		t.Fatalf("op ended %s partial=%v (%s)", final.GetState(), final.GetBackup().GetPartial(), final.GetReason())
	}
	if rtRun(final, "auditor-databases/0").GetState() != pb.HookState_HOOK_STATE_SUCCEEDED || rtRun(final, "after/0").GetState() != pb.HookState_HOOK_STATE_SUCCEEDED {
		t.Fatalf("runs: %s", rtRunStates(final))
	}
	rtNonePaused(t, f)
}

// rtBlocking makes the named hook block until released, telling when it
// started.
type rtBlocking struct {
	hook    string
	started chan struct{}
	release chan struct{}
	once    sync.Once
}

func newRTBlocking(hook string) *rtBlocking {
	return &rtBlocking{hook: hook, started: make(chan struct{}), release: make(chan struct{})}
}

func (b *rtBlocking) behave(req *pb.RunHookRequest) *pb.HookRun {
	if req.GetHook() == b.hook {
		b.once.Do(func() { close(b.started) })
		<-b.release
	}
	return nil
}

// The hold lasts as long as the hooks do, well past the minimum hold, with
// the leases renewed; it ends when the last group ends.
func TestBackupHoldLastsUntilTheLastHook(t *testing.T) {
	blk := newRTBlocking("pg-dump-auditor")
	hl := &rtHookLog{}
	f := rtHookFleet(hl, blk.behave)
	l := &rtLog{epoch: 1}
	op := rtBackup(rtPlan(0), time.Hour)
	op.LeaseMs = 300 // renewed every 100ms
	done := rtRunAsync(context.Background(), rtRunner(t, l, f, 1, nil), op)
	<-blk.started
	rtWaitRenews(t, rtFleet{"ledger-1": f["ledger-1"], "ledger-2": f["ledger-2"]}, 4)
	if held := l.latest(); held.GetState() != pb.OperationState_OPERATION_STATE_HOLDING ||
		rtRun(held, "auditor-databases/0").GetState() != pb.HookState_HOOK_STATE_RUNNING {
		t.Fatalf("while the Auditor hook runs: %s, %s", held.GetState(), rtRunStates(held))
	}
	if !f["ledger-1"].isPaused() || !f["ledger-2"].isPaused() {
		t.Fatal("a target was unpaused while a hook ran")
	}
	close(blk.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if final := l.latest(); final.GetState() != pb.OperationState_OPERATION_STATE_COMPLETED {
		t.Fatalf("op ended %s (%s)", final.GetState(), final.GetReason())
	}
	if p := hl.paused["auditor-databases/0"]; p != [2]bool{true, true} {
		t.Fatalf("Auditor hook paused at start/end = %v", p)
	}
}

// A new leader takes over a backup whose hook is running: it calls RunHook
// again with the same step id (attaching to the run, never starting it
// twice), does not call the steps that ended again, and completes.
func TestBackupFailoverAttachesToRunningHook(t *testing.T) {
	blk := newRTBlocking("pg-dump-auditor")
	hl := &rtHookLog{}
	f := rtHookFleet(hl, blk.behave)
	l := &rtLog{epoch: 1}
	ctx, lose := context.WithCancel(context.Background())
	done := rtRunAsync(ctx, rtRunner(t, l, f, 1, nil), rtBackup(rtPlan(0), time.Hour))
	<-blk.started
	rtWaitFor(t, func() (bool, string) {
		cur := l.latest()
		return rtRun(cur, "auditor-databases/0").GetState() == pb.HookState_HOOK_STATE_RUNNING, rtRunStates(cur)
	})
	lose()
	if err := <-done; err == nil {
		t.Fatal("the deposed runner returned no error")
	}
	epoch := l.newTerm()
	ledgerCalls, _ := f["ledger-1"].rtStepCalls("op-test", "ledger-databases/0")
	resumed := l.latest()
	done = rtRunAsync(context.Background(), rtRunner(t, l, f, epoch, nil), resumed)
	rtWaitFor(t, func() (bool, string) {
		n, _ := f["auditor-1"].rtStepCalls("op-test", "auditor-databases/0")
		return n >= 2, fmt.Sprintf("the new runner has not called the running step again (%d calls)", n)
	})
	close(blk.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	final := l.latest()
	if final.GetState() != pb.OperationState_OPERATION_STATE_COMPLETED || rtRun(final, "auditor-databases/0").GetState() != pb.HookState_HOOK_STATE_SUCCEEDED {
		t.Fatalf("op ended %s (%s): %s", final.GetState(), final.GetReason(), rtRunStates(final))
	}
	if n, _ := f["ledger-1"].rtStepCalls("op-test", "ledger-databases/0"); n != ledgerCalls {
		t.Fatalf("the ended Ledger step was called again by the new leader (%d calls, was %d)", n, ledgerCalls)
	}
	if got := strings.Count(strings.Join(hl.events, ","), "start auditor-databases/0"); got != 1 {
		t.Fatalf("the Auditor step ran %d times", got)
	}
	_, req := f["auditor-1"].rtStepCalls("op-test", "auditor-databases/0")
	if req.GetEpoch() != 1 {
		t.Fatalf("first call's epoch %d", req.GetEpoch())
	}
	rtNonePaused(t, f)
}

// A coordinator hook that was running when its leader was deposed is never
// run again: the new leader records it FAILED and applies its on_error.
func TestBackupFailoverNeverRerunsCoordinatorHook(t *testing.T) {
	plan := rtPlan(0)
	plan.Groups[0].Hooks = []*pb.HookRef{{Agent: CoordinatorAgent, Hook: "snapshot-volumes", OnError: pb.HookOnError_HOOK_ON_ERROR_CONTINUE}}
	op := rtBackup(plan, time.Hour)
	f := rtHookFleet(&rtHookLog{}, nil)
	l := &rtLog{epoch: 1}
	// The first term recorded HOLDING with the coordinator hook RUNNING.
	first := rtRunner(t, l, f, 1, nil)
	first.localHook = func(ctx context.Context, hook string, env map[string]string) *pb.HookRun {
		<-ctx.Done()
		return &pb.HookRun{State: pb.HookState_HOOK_STATE_FAILED, Message: "cancelled"}
	}
	ctx, lose := context.WithCancel(context.Background())
	done := rtRunAsync(ctx, first, op)
	rtWaitFor(t, func() (bool, string) {
		cur := l.latest()
		return rtRun(cur, "ledger-databases/0").GetState() == pb.HookState_HOOK_STATE_RUNNING, rtRunStates(cur)
	})
	lose()
	<-done
	epoch := l.newTerm()
	second := rtRunner(t, l, f, epoch, nil)
	ran := 0
	second.localHook = func(context.Context, string, map[string]string) *pb.HookRun {
		ran++
		return &pb.HookRun{State: pb.HookState_HOOK_STATE_SUCCEEDED}
	}
	final, err := second.run(context.Background(), l.latest())
	if err != nil {
		t.Fatal(err)
	}
	if ran != 0 {
		t.Fatal("the new leader ran the coordinator hook again")
	}
	if h := rtRun(final, "ledger-databases/0"); h.GetState() != pb.HookState_HOOK_STATE_FAILED || !strings.Contains(h.GetMessage(), "never run twice") {
		t.Fatalf("coordinator step = %v", h)
	}
	if final.GetState() != pb.OperationState_OPERATION_STATE_COMPLETED || !final.GetBackup().GetPartial() {
		t.Fatalf("op ended %s partial=%v (%s)", final.GetState(), final.GetBackup().GetPartial(), final.GetReason())
	}
	rtNonePaused(t, f)
}

// An operator's `unpause --op` while a hook runs ends the hold now: the
// op completes with its window, the running hook is recorded FAILED
// (interrupted), the hooks not started SKIPPED, and the backup partial.
func TestBackupEndHoldDuringHooksCompletesPartial(t *testing.T) {
	blk := newRTBlocking("pg-dump-ledger")
	defer close(blk.release)
	f := rtHookFleet(&rtHookLog{}, blk.behave)
	l := &rtLog{epoch: 1}
	op := rtBackup(rtPlan(0), time.Hour)
	op.LeaseMs = 300
	r := rtRunner(t, l, f, 1, nil)
	done := rtRunAsync(context.Background(), r, op)
	<-blk.started
	rtWaitRenews(t, rtFleet{"ledger-1": f["ledger-1"]}, 3) // past the minimum hold
	r.endHoldNow("by alice: maintenance window over")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	final := l.latest()
	if final.GetState() != pb.OperationState_OPERATION_STATE_COMPLETED || !final.GetBackup().GetPartial() {
		t.Fatalf("op ended %s partial=%v (%s)", final.GetState(), final.GetBackup().GetPartial(), final.GetReason())
	}
	if h := rtRun(final, "ledger-databases/0"); h.GetState() != pb.HookState_HOOK_STATE_FAILED || !strings.Contains(h.GetMessage(), "interrupted") ||
		!strings.Contains(h.GetMessage(), "alice") {
		t.Fatalf("running hook recorded %v", h)
	}
	if rtRun(final, "auditor-databases/0").GetState() != pb.HookState_HOOK_STATE_SKIPPED {
		t.Fatalf("runs: %s", rtRunStates(final))
	}
	rtNonePaused(t, f)
}

// A hook still running when the maximum hold runs out fails; with
// on_error abort the backup is aborted and every node unpaused.
func TestBackupMaxHoldDuringHookAborts(t *testing.T) {
	blk := newRTBlocking("pg-dump-ledger")
	defer close(blk.release)
	f := rtHookFleet(&rtHookLog{}, blk.behave)
	l := &rtLog{epoch: 1}
	final, err := rtRunner(t, l, f, 1, nil).run(context.Background(), rtBackup(rtPlan(0), 200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if final.GetState() != pb.OperationState_OPERATION_STATE_ABORTED || !strings.Contains(final.GetReason(), "maximum hold") ||
		!strings.Contains(final.GetReason(), "pg-dump-ledger") {
		t.Fatalf("op ended %s (%s)", final.GetState(), final.GetReason())
	}
	if _, ok := fsm.Clusters(final), true; !ok || rtRun(final, "after/0").GetState() != pb.HookState_HOOK_STATE_SKIPPED {
		t.Fatalf("runs: %s", rtRunStates(final))
	}
	rtNonePaused(t, f)
}

// A slow Raft write of a hook's run never delays the lease renewals: the
// hold keeps renewing every target while the write hangs (seen in an e2e
// run under load: the writes of the hooks' runs starved the renewals and
// every lease ran out).
func TestBackupSlowRecordDoesNotStarveRenewals(t *testing.T) {
	blk := newRTBlocking("pg-dump-ledger") // the hold goes on while the write hangs
	f := rtHookFleet(&rtHookLog{}, blk.behave)
	l := &rtLog{epoch: 1}
	stuck, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	l.hook = func(op *pb.Operation) (bool, error) {
		if rtRun(op, "ledger-databases/0").GetState() != pb.HookState_HOOK_STATE_PENDING && op.GetState() == pb.OperationState_OPERATION_STATE_HOLDING {
			once.Do(func() { close(stuck) })
			<-release // the write hangs (no quorum) until released
		}
		return true, nil
	}
	op := rtBackup(rtPlan(0), time.Hour)
	op.LeaseMs = 300 // renewed every 100ms
	done := rtRunAsync(context.Background(), rtRunner(t, l, f, 1, nil), op)
	<-stuck
	before := rtRenews(f, "ledger-1")
	rtWaitFor(t, func() (bool, string) {
		n := rtRenews(f, "ledger-1")
		return n >= before+3, fmt.Sprintf("ledger-1 renewed %d times since the write hung, want 3", n-before)
	})
	close(release)
	close(blk.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if final := l.latest(); final.GetState() != pb.OperationState_OPERATION_STATE_COMPLETED {
		t.Fatalf("op ended %s (%s)", final.GetState(), final.GetReason())
	}
}

// A leader lost while a completed backup's after hook runs: the next
// leader's runner takes the completed op, calls the running after step
// again with its step id (attaching, never starting it twice) and records
// its result; the op stays COMPLETED with its window.
func TestBackupFailoverResumesAfterHooks(t *testing.T) {
	blk := newRTBlocking("notify")
	hl := &rtHookLog{}
	f := rtHookFleet(hl, blk.behave)
	l := &rtLog{epoch: 1}
	ctx, lose := context.WithCancel(context.Background())
	done := rtRunAsync(ctx, rtRunner(t, l, f, 1, nil), rtBackup(rtPlan(0), time.Hour))
	<-blk.started
	rtWaitFor(t, func() (bool, string) {
		cur := l.latest()
		return rtRun(cur, "after/0").GetState() == pb.HookState_HOOK_STATE_RUNNING, rtRunStates(cur)
	})
	lose()
	if err := <-done; err == nil {
		t.Fatal("the deposed runner returned no error")
	}
	completed := l.latest()
	if completed.GetState() != pb.OperationState_OPERATION_STATE_COMPLETED {
		t.Fatalf("op is %s before the takeover", completed.GetState())
	}
	epoch := l.newTerm()
	done = rtRunAsync(context.Background(), rtRunner(t, l, f, epoch, nil), completed)
	rtWaitFor(t, func() (bool, string) {
		n, _ := f["ledger-2"].rtStepCalls("op-test", "after/0")
		return n >= 2, fmt.Sprintf("the new runner has not called the after step again (%d calls)", n)
	})
	close(blk.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	final := l.latest()
	if final.GetState() != pb.OperationState_OPERATION_STATE_COMPLETED || !proto.Equal(final.GetWindow(), completed.GetWindow()) ||
		rtRun(final, "after/0").GetState() != pb.HookState_HOOK_STATE_SUCCEEDED {
		t.Fatalf("after the takeover: %s %s", final.GetState(), rtRunStates(final))
	}
	if got := strings.Count(strings.Join(hl.events, ","), "start after/0"); got != 1 {
		t.Fatalf("the after step ran %d times", got)
	}
}

// Hooks that end at once do not end the hold before the plan's minimum
// hold (min_hold_ms, StartBackup's requested hold): the window spans it.
func TestBackupHoldsAtLeastThePlansMinimum(t *testing.T) {
	f := rtHookFleet(&rtHookLog{}, nil)
	l := &rtLog{epoch: 1}
	op := rtBackup(rtPlan(0), time.Hour)
	op.RequestedHoldMs = 300
	final, err := rtRunner(t, l, f, 1, nil).run(context.Background(), op)
	if err != nil {
		t.Fatal(err)
	}
	if final.GetState() != pb.OperationState_OPERATION_STATE_COMPLETED || time.Duration(final.GetHoldNs()) < 300*time.Millisecond {
		t.Fatalf("op ended %s with hold %v (%s)", final.GetState(), time.Duration(final.GetHoldNs()), final.GetReason())
	}
	if w := time.Duration(final.GetWindow().GetWidthNs()); w < 300*time.Millisecond-4*time.Millisecond {
		t.Fatalf("window %v wide: the hold ended before the plan's minimum 300ms", w)
	}
}

// A coordinator hook starts only once its RUNNING record is committed: a
// new leader that finds it PENDING runs it, so starting it before the
// record (recorded off the hold loop) could run it on two servers.
func TestBackupCoordinatorHookStartsAfterItsRunningRecord(t *testing.T) {
	plan := rtPlan(0)
	plan.Groups[0].Hooks = []*pb.HookRef{{Agent: CoordinatorAgent, Hook: "snapshot-volumes"}}
	f := rtHookFleet(&rtHookLog{}, nil)
	l := &rtLog{epoch: 1}
	stuck, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	var committed atomic.Bool
	l.hook = func(op *pb.Operation) (bool, error) {
		if rtRun(op, "ledger-databases/0").GetState() == pb.HookState_HOOK_STATE_RUNNING && !committed.Load() {
			once.Do(func() { close(stuck) })
			<-release // the write hangs (no quorum) until released
			committed.Store(true)
		}
		return true, nil
	}
	r := rtRunner(t, l, f, 1, nil)
	called := make(chan bool, 1)
	r.localHook = func(context.Context, string, map[string]string) *pb.HookRun {
		select {
		case called <- committed.Load():
		default:
		}
		return &pb.HookRun{State: pb.HookState_HOOK_STATE_SUCCEEDED}
	}
	done := rtRunAsync(context.Background(), r, rtBackup(plan, time.Hour))
	<-stuck
	// While the RUNNING record hangs the hook must not start. (A window:
	// the hook used to start at once; this cannot fail falsely.)
	select {
	case <-called:
		t.Fatal("the coordinator hook started before its RUNNING record was committed")
	case <-time.After(2 * time.Second):
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if ok := <-called; !ok {
		t.Fatal("the coordinator hook started before its RUNNING record was committed")
	}
	if final := l.latest(); final.GetState() != pb.OperationState_OPERATION_STATE_COMPLETED {
		t.Fatalf("op ended %s (%s)", final.GetState(), final.GetReason())
	}
}
