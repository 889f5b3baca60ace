package coordinator

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// The fault harness over backups: the op of every schedule is a backup
// whose Ledger group runs a hook on node-1 (and node-2), then whose
// Auditor group runs one on the last node, then an after hook on node-1.
// Hooks take fake time (some longer than a lease), some fail, and a leader
// is lost while they run (at RunHook calls, before or after the agent
// started the step, and at the records of their runs). The oracle: never a
// step run twice; a COMPLETED backup's succeeded during hooks ran (true
// time, from the fake agents) inside every target's paused interval, every
// succeeded Ledger hook ended before any Auditor hook started; a failed
// hook with on_error abort never lets the backup complete.

// backupSchedule is what a backup schedule adds to a pause schedule.
type backupSchedule struct {
	// dur is how long each step runs (fake time).
	dur map[string]time.Duration
	// failStep fails (exit 1); failContinue: its on_error is continue.
	failStep     string
	failContinue bool
}

// fakeHookRun is a step as a fake agent ran it: its true interval and how
// many times it was started (never more than once).
type fakeHookRun struct {
	start, end time.Time
	starts     int
}

// addBackup makes s a backup schedule: hook durations, a failing step,
// and faults at the RunHook calls, drawn from their own stream.
func addBackup(s *schedule) {
	rng := rand.New(rand.NewPCG(s.seed, 0xbac))
	b := &backupSchedule{dur: map[string]time.Duration{}}
	steps := backupPlan(s.nodes, false).GetGroups()
	var ids []string
	for _, g := range steps {
		for i := range g.GetHooks() {
			ids = append(ids, fmt.Sprintf("%s/%d", g.GetName(), i))
		}
	}
	ids = append(ids, "after/0")
	for _, id := range ids {
		b.dur[id] = time.Duration(rng.Int64N(int64(s.leaseMs)*3/2)) * time.Millisecond
	}
	if rng.IntN(4) == 0 {
		b.failStep = ids[rng.IntN(len(ids))]
		b.failContinue = rng.IntN(2) == 0
	}
	for range rng.IntN(3) {
		node := []int{0, s.nodes - 1}[rng.IntN(2)]
		f := fault{kind: kindLeaderLoss, node: node, method: "runhook", call: rng.IntN(3), after: rng.IntN(2) == 0}
		if rng.IntN(3) == 0 {
			f = fault{kind: kindLeaderLoss, node: -1, persist: 2 + rng.IntN(6), after: rng.IntN(2) == 0}
		}
		s.faults = append(s.faults, f)
	}
	s.untilUnpaused = true
	s.backup = b
}

// backupPlan is the schedules' plan over nodes.
func backupPlan(nodes int, failContinue bool) *pb.BackupPlan {
	ledger := []*pb.HookRef{{Agent: "node-1", Hook: "dump"}}
	if nodes > 1 {
		ledger = append(ledger, &pb.HookRef{Agent: "node-2", Hook: "dump"})
	}
	return &pb.BackupPlan{Name: "fault", Groups: []*pb.HookGroup{
		{Name: "ledger-databases", Hooks: ledger},
		{Name: "auditor-databases", Hooks: []*pb.HookRef{{Agent: fmt.Sprintf("node-%d", nodes), Hook: "dump"}}},
	}, After: []*pb.HookRef{{Agent: "node-1", Hook: "notify"}}}
}

// backupOpFor is the harness op as a backup of s's plan.
func backupOpFor(s *schedule) *pb.BackupRun {
	run := newBackupRun(backupPlan(s.nodes, s.backup.failContinue))
	for _, h := range run.GetHooks() {
		if h.GetStepId() == s.backup.failStep && s.backup.failContinue {
			h.Ref.OnError = pb.HookOnError_HOOK_ON_ERROR_CONTINUE
		}
	}
	return run
}

// RunHook runs a step once per (op, step id), taking its drawn time; a
// repeat attaches to it. It is fenced by epoch like Pause.
func (a *fakeAgent) RunHook(ctx context.Context, req *pb.RunHookRequest, _ ...grpc.CallOption) (*pb.RunHookResponse, error) {
	if a.h.sched.backup == nil {
		return nil, status.Error(codes.Unimplemented, "the harness's plain pauses run no hooks")
	}
	key := req.GetOpId() + "/" + req.GetStepId()
	var st fakeHookRun
	_, err := a.call(ctx, "runhook", func(now time.Time) (proto.Message, error) {
		if err := a.fence(req.GetOpId(), req.GetEpoch()); err != nil {
			return nil, err
		}
		run, ok := a.hooks[key]
		if !ok {
			run = &fakeHookRun{start: now, end: now.Add(a.h.sched.backup.dur[req.GetStepId()])}
			if a.hooks == nil {
				a.hooks = map[string]*fakeHookRun{}
			}
			a.hooks[key] = run
			run.starts++
		}
		st = *run
		return &pb.RunHookResponse{}, nil
	})
	if err != nil {
		return nil, err
	}
	if left := st.end.Sub(a.h.clk.Now()); left > 0 {
		// Not an agent timer: the runner goes on (renewing, watching)
		// while a hook runs, so the hook's end takes its turn in time
		// order with the runner's timers.
		t := a.h.clk.NewTimer(left)
		select {
		case <-t.Chan():
		case <-ctx.Done():
			t.Stop()
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}
	a.mu.Lock()
	run := &pb.HookRun{State: pb.HookState_HOOK_STATE_SUCCEEDED, StartedAt: a.stampAt(st.start, ""), EndedAt: a.stampAt(st.end, ""),
		DurationNs: int64(st.end.Sub(st.start))}
	a.mu.Unlock()
	if req.GetStepId() == a.h.sched.backup.failStep {
		run.State, run.ExitCode, run.Message = pb.HookState_HOOK_STATE_FAILED, 1, fmt.Sprintf("agent %s hook %s exited 1 (injected)", a.name, req.GetHook())
	}
	return &pb.RunHookResponse{Run: run}, nil
}

// checkBackup is the backup oracle over the fake agents' true history.
func (h *faultHarness) checkBackup() []string {
	var v []string
	last := h.last()
	truth := map[string]*fakeHookRun{} // step id -> run
	for _, a := range h.agents {
		a.mu.Lock()
		for key, r := range a.hooks {
			step := strings.TrimPrefix(key, last.GetOpId()+"/")
			truth[step] = r
			if r.starts > 1 {
				v = append(v, fmt.Sprintf("step %s started %d times on %s", step, r.starts, a.name))
			}
		}
		a.mu.Unlock()
	}
	planned := map[string]bool{}
	for _, run := range last.GetBackup().GetHooks() {
		planned[run.GetStepId()] = true
	}
	for step := range truth {
		if !planned[step] {
			v = append(v, fmt.Sprintf("an agent ran step %s, which the plan does not have (a step run again under another id)", step))
		}
	}
	var ledgerEnds, auditorStarts []time.Time
	for _, run := range last.GetBackup().GetHooks() {
		r := truth[run.GetStepId()]
		if r == nil {
			if run.GetState() == pb.HookState_HOOK_STATE_SUCCEEDED {
				v = append(v, fmt.Sprintf("step %s recorded SUCCEEDED but never ran", run.GetStepId()))
			}
			continue
		}
		switch run.GetGroup() {
		case "ledger-databases":
			if run.GetState() == pb.HookState_HOOK_STATE_SUCCEEDED {
				ledgerEnds = append(ledgerEnds, r.end)
			}
		case "auditor-databases":
			auditorStarts = append(auditorStarts, r.start)
		}
		if run.GetGroup() == "after" || run.GetState() != pb.HookState_HOOK_STATE_SUCCEEDED || last.GetState() != pb.OperationState_OPERATION_STATE_COMPLETED {
			continue
		}
		for _, a := range h.agents {
			if !a.pausedWithin(r.start, r.end) {
				v = append(v, fmt.Sprintf("COMPLETED with during hook %s run [%s, %s] outside the paused interval of %s: %s",
					run.GetStepId(), r.start.Format("15:04:05.000000"), r.end.Format("15:04:05.000000"), a.name, a.history()))
			}
		}
	}
	for _, e := range ledgerEnds {
		for _, s := range auditorStarts {
			if s.Before(e) {
				v = append(v, fmt.Sprintf("an Auditor hook started at %s before a Ledger hook ended at %s", s.Format("15:04:05.000000"), e.Format("15:04:05.000000")))
			}
		}
	}
	if b := h.sched.backup; b.failStep != "" && !b.failContinue && !strings.HasPrefix(b.failStep, "after") && last.GetState() == pb.OperationState_OPERATION_STATE_COMPLETED {
		for _, run := range last.GetBackup().GetHooks() {
			if run.GetStepId() == b.failStep && run.GetState() == pb.HookState_HOOK_STATE_FAILED && !strings.Contains(run.GetMessage(), "interrupted") {
				v = append(v, fmt.Sprintf("step %s failed with on_error abort, but the backup COMPLETED", b.failStep))
			}
		}
	}
	return v
}

func TestBackupRunnerFaults(t *testing.T) {
	var kinds []faultKind
	for k := range numKinds {
		if enabled(k.String()) && k != kindForce {
			kinds = append(kinds, k)
		}
	}
	n := max(*faultN/6, 1)
	seeds := []uint64{*faultSeed}
	if *faultSeed == 0 {
		seeds = seeds[:0]
		for i := range n {
			seeds = append(seeds, *faultFirst+uint64(i))
		}
	}
	start := time.Now()
	var failed []uint64
	outcomes := map[string]int{}
	for _, seed := range seeds {
		s := newSchedule(seed, kinds)
		addBackup(s)
		var v []string
		var last *pb.Operation
		synctest.Test(t, func(t *testing.T) {
			log := zap.NewNop()
			if *faultVerbose {
				log = zaptest.NewLogger(t)
			}
			h := newFaultHarness(s, log)
			v = h.play()
			last = h.last()
		})
		outcomes[last.GetState().String()]++
		if len(v) == 0 {
			continue
		}
		failed = append(failed, seed)
		if len(failed) <= 10 {
			t.Errorf("seed %d: %s\n  schedule: %s fail=%q continue=%v\n  replay: go test ./coordinator -run 'TestBackupRunnerFaults$' -faults.seed=%d -faults.v",
				seed, strings.Join(v, "\n    "), s, s.backup.failStep, s.backup.failContinue, seed)
		}
	}
	t.Logf("%d backup schedules in %v; outcomes %v", len(seeds), time.Since(start).Round(time.Millisecond), outcomes)
	if len(failed) > 0 {
		t.Errorf("%d of %d backup schedules broke an invariant; seeds: %v", len(failed), len(seeds), failed[:min(len(failed), 50)])
	}
}
