package coordinator

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/stillpoint-dev/stillpoint/coordinator/fsm"
	"github.com/stillpoint-dev/stillpoint/internal/enumname"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// CoordinatorAgent is the HookRef.agent of a hook the leader runs itself,
// defined in the coordinator servers' config (Config.Hooks).
const CoordinatorAgent = "coordinator"

// localHookFunc runs a hook defined in this server's config and returns
// its ended run (step id, group and ref are the caller's).
type localHookFunc func(ctx context.Context, hook string, env map[string]string) *pb.HookRun

// Agent calls for hooks: each RunHook call waits at most hookCallTimeout
// (the agent answers RUNNING, or the deadline passes, and the runner asks
// again: the agent attaches to the running hook); an agent that does not
// answer for hookUnreachableFor fails its hook.
var (
	hookCallTimeout    = 30 * time.Second
	hookUnreachableFor = 30 * time.Second
)

// hookEnded reports whether a run has its result.
func hookEnded(s pb.HookState) bool {
	switch s {
	case pb.HookState_HOOK_STATE_SUCCEEDED, pb.HookState_HOOK_STATE_FAILED, pb.HookState_HOOK_STATE_TIMED_OUT, pb.HookState_HOOK_STATE_SKIPPED:
		return true
	}
	return false
}

// hookFailed reports whether an ended run counts as a failure.
func hookFailed(s pb.HookState) bool {
	return s == pb.HookState_HOOK_STATE_FAILED || s == pb.HookState_HOOK_STATE_TIMED_OUT
}

// abortsOnError: a failed hook with this policy aborts the backup (the
// default).
func abortsOnError(ref *pb.HookRef) bool {
	return ref.GetOnError() != pb.HookOnError_HOOK_ON_ERROR_CONTINUE
}

// isAfter: an `after` hook's run.
func isAfter(run *pb.HookRun) bool { return run.GetGroup() == fsm.AfterGroup }

// describeRun names a run's hook, agent and outcome, for reasons.
func describeRun(run *pb.HookRun) string {
	s := fmt.Sprintf("hook %s on agent %s (step %s) %s", run.GetRef().GetHook(), run.GetRef().GetAgent(), run.GetStepId(), enumname.Of(run.GetState()))
	if run.GetState() == pb.HookState_HOOK_STATE_FAILED && run.GetExitCode() != 0 {
		s += fmt.Sprintf(" with exit code %d", run.GetExitCode())
	}
	if run.GetMessage() != "" {
		s += ": " + run.GetMessage()
	}
	return s
}

// setRun replaces op's run with run's step id.
func setRun(op *pb.Operation, run *pb.HookRun) {
	for i, h := range op.GetBackup().GetHooks() {
		if h.GetStepId() == run.GetStepId() {
			op.Backup.Hooks[i] = proto.Clone(run).(*pb.HookRun)
			return
		}
	}
}

// closeRuns ends every run of op that has not ended and is selected by
// which: a RUNNING one FAILED with why (it may still be running where it
// was started, but nothing waits for it any more), a PENDING one SKIPPED.
// It returns the runs it failed.
func closeRuns(op *pb.Operation, which func(*pb.HookRun) bool, why string) []*pb.HookRun {
	var failed []*pb.HookRun
	for _, h := range op.GetBackup().GetHooks() {
		if hookEnded(h.GetState()) || !which(h) {
			continue
		}
		if h.GetState() == pb.HookState_HOOK_STATE_PENDING {
			h.State = pb.HookState_HOOK_STATE_SKIPPED
			h.Message = why
			continue
		}
		h.State = pb.HookState_HOOK_STATE_FAILED
		h.Message = "interrupted: " + why
		failed = append(failed, h)
	}
	return failed
}

// settleBackup brings op's backup in line with op's end before it is
// recorded: an op that ended without a window skips or fails every run
// that has not ended (after hooks included); a completed op fails any
// during run still open (marking the backup partial).
func settleBackup(op *pb.Operation) {
	if op.GetBackup() == nil || !fsm.IsTerminal(op.GetState()) {
		return
	}
	if op.GetState() != pb.OperationState_OPERATION_STATE_COMPLETED {
		closeRuns(op, func(*pb.HookRun) bool { return true }, fmt.Sprintf("the backup ended %s", enumname.Of(op.GetState())))
		return
	}
	during := func(h *pb.HookRun) bool { return !isAfter(h) }
	if len(closeRuns(op, during, "the hold ended before it did")) > 0 {
		op.Backup.Partial = true
	}
}

// hookDriver runs a backup's during groups while the targets are held:
// group by group in dependency order, a group's hooks in parallel. Every
// change of a run goes to updates (the hold loop records it); done gets
// one outcome when every group has ended, or the first failure that
// aborts the backup.
type hookDriver struct {
	updates chan hookUpdate
	done    chan string // "" every group ended; else why the backup aborts
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// startHooks starts the driver over op's recorded runs: ended runs are
// kept, the others (re)run with their step ids.
func (r *pauseRunner) startHooks(ctx context.Context, op *pb.Operation) *hookDriver {
	dctx, cancel := context.WithCancel(ctx)
	d := &hookDriver{updates: make(chan hookUpdate), done: make(chan string, 1), cancel: cancel}
	snap := proto.Clone(op).(*pb.Operation)
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		d.done <- r.driveGroups(dctx, snap, d)
	}()
	return d
}

// stop cancels the driver and waits for its goroutines (calls in flight
// are cancelled; their hooks go on where they run, unwatched).
func (d *hookDriver) stop() {
	d.cancel()
	d.wg.Wait()
}

// hookUpdate is a run's change for the hold loop; committed, when set, is
// closed once a record holding it is committed.
type hookUpdate struct {
	run       *pb.HookRun
	committed chan struct{}
}

// send hands a run's change to the hold loop.
func (d *hookDriver) send(ctx context.Context, run *pb.HookRun) {
	select {
	case d.updates <- hookUpdate{run: proto.Clone(run).(*pb.HookRun)}:
	case <-ctx.Done():
	}
}

// sendCommitted hands a run's change to the hold loop and waits until it
// is committed; false when ctx ended first.
func (d *hookDriver) sendCommitted(ctx context.Context, run *pb.HookRun) bool {
	c := make(chan struct{})
	select {
	case d.updates <- hookUpdate{run: proto.Clone(run).(*pb.HookRun), committed: c}:
	case <-ctx.Done():
		return false
	}
	select {
	case <-c:
		return true
	case <-ctx.Done():
		return false
	}
}

// groupDeps is each group's prerequisites: its `after`, or by default the
// group listed before it.
func groupDeps(plan *pb.BackupPlan) map[string][]string {
	deps := map[string][]string{}
	for i, g := range plan.GetGroups() {
		switch {
		case len(g.GetAfter()) > 0:
			deps[g.GetName()] = g.GetAfter()
		case i > 0:
			deps[g.GetName()] = []string{plan.GetGroups()[i-1].GetName()}
		}
	}
	return deps
}

// driveGroups runs the groups; it returns why the backup aborts, or "".
func (r *pauseRunner) driveGroups(ctx context.Context, op *pb.Operation, d *hookDriver) string {
	runs := map[string][]*pb.HookRun{}
	for _, h := range op.GetBackup().GetHooks() {
		if isAfter(h) {
			continue
		}
		if h.GetRef().GetAgent() == CoordinatorAgent && h.GetState() == pb.HookState_HOOK_STATE_RUNNING {
			// Started by an earlier runner: its process may still run
			// (or have run) there. Never run it twice.
			h.State = pb.HookState_HOOK_STATE_FAILED
			h.Message = "it was running under an earlier leader's runner; a coordinator hook is never run twice"
			d.send(ctx, h)
		}
		if hookFailed(h.GetState()) && abortsOnError(h.GetRef()) {
			return "backup aborted: " + describeRun(h)
		}
		runs[h.GetGroup()] = append(runs[h.GetGroup()], h)
	}
	plan := op.GetBackup().GetPlan()
	deps := groupDeps(plan)
	ended := map[string]bool{}
	for len(ended) < len(plan.GetGroups()) {
		var wave []string
		for _, g := range plan.GetGroups() {
			ready := !ended[g.GetName()]
			for _, dep := range deps[g.GetName()] {
				ready = ready && ended[dep]
			}
			if ready {
				wave = append(wave, g.GetName())
			}
		}
		if len(wave) == 0 {
			return "backup aborted: the plan's hook groups wait on each other (a cycle) or on an unknown group"
		}
		if why := r.runWave(ctx, op, d, wave, runs); why != "" || ctx.Err() != nil {
			return why
		}
		for _, g := range wave {
			ended[g] = true
		}
	}
	return ""
}

// runWave runs every open run of the groups in parallel; it returns at the
// first failure that aborts the backup, or when all have ended.
func (r *pauseRunner) runWave(ctx context.Context, op *pb.Operation, d *hookDriver, groups []string, runs map[string][]*pb.HookRun) string {
	aborted := make(chan string, 1)
	var wg sync.WaitGroup
	for _, g := range groups {
		r.log.Info("running hook group", zap.String("group", g), zap.Int("hooks", len(runs[g])))
		for _, run := range runs[g] {
			if hookEnded(run.GetState()) {
				continue
			}
			wg.Add(1)
			d.wg.Add(1)
			go func() {
				defer wg.Done()
				defer d.wg.Done()
				out := r.runStep(ctx, op, run, d)
				if ctx.Err() != nil {
					return
				}
				d.send(ctx, out)
				if hookFailed(out.GetState()) && abortsOnError(out.GetRef()) {
					select {
					case aborted <- "backup aborted: " + describeRun(out):
					default:
					}
				}
			}()
		}
	}
	all := make(chan struct{})
	go func() {
		wg.Wait()
		close(all)
	}()
	select {
	case why := <-aborted:
		return why
	case <-all:
		select {
		case why := <-aborted:
			return why
		default:
			return ""
		}
	case <-ctx.Done():
		return ""
	}
}

// runStep runs one step to its end: recorded RUNNING first (for a new
// leader to find), then run on its agent or on this server.
func (r *pauseRunner) runStep(ctx context.Context, op *pb.Operation, run *pb.HookRun, d *hookDriver) *pb.HookRun {
	log := r.log.With(zap.String("step_id", run.GetStepId()), zap.String("agent", run.GetRef().GetAgent()), zap.String("hook", run.GetRef().GetHook()))
	run = proto.Clone(run).(*pb.HookRun)
	if run.GetState() != pb.HookState_HOOK_STATE_RUNNING {
		run.State = pb.HookState_HOOK_STATE_RUNNING
		run.StartedAt = r.stamp()
		switch {
		case d == nil:
		case run.GetRef().GetAgent() == CoordinatorAgent:
			// A new leader runs a PENDING step and never a RUNNING
			// coordinator one: this server's hook starts only once its
			// RUNNING record is committed. (An agent runs a step once
			// per step id whatever the record says.)
			if !d.sendCommitted(ctx, run) {
				return run
			}
		default:
			d.send(ctx, run)
		}
	}
	log.Info("hook started")
	env := hookEnv(op, run)
	out := r.execHook(ctx, op, run, env)
	if ctx.Err() == nil {
		log.Info("hook ended", zap.String("state", out.GetState().String()), zap.Int32("exit_code", out.GetExitCode()),
			zap.Duration("duration", time.Duration(out.GetDurationNs())), zap.String("message", out.GetMessage()))
	}
	return out
}

// merge takes an agent's or executor's result into our run: its outcome,
// our identity.
func merge(run, got *pb.HookRun) *pb.HookRun {
	out := proto.Clone(got).(*pb.HookRun)
	out.StepId, out.Group, out.Ref = run.GetStepId(), run.GetGroup(), run.GetRef()
	if out.GetStartedAt() == nil {
		out.StartedAt = run.GetStartedAt()
	}
	return out
}

// execHook runs run where it is defined: a coordinator hook here, any other
// on its agent.
func (r *pauseRunner) execHook(ctx context.Context, op *pb.Operation, run *pb.HookRun, env map[string]string) *pb.HookRun {
	if run.GetRef().GetAgent() == CoordinatorAgent {
		return r.runLocalHook(ctx, run, env)
	}
	return r.callAgentHook(ctx, op, run, env)
}

// runLocalHook runs a coordinator hook with this server's executor.
func (r *pauseRunner) runLocalHook(ctx context.Context, run *pb.HookRun, env map[string]string) *pb.HookRun {
	if r.localHook == nil {
		out := proto.Clone(run).(*pb.HookRun)
		out.State = pb.HookState_HOOK_STATE_FAILED
		out.Message = fmt.Sprintf("coordinator %s runs no hooks (hook %s)", r.leader, run.GetRef().GetHook())
		out.EndedAt = r.stamp()
		return out
	}
	return merge(run, r.localHook(ctx, run.GetRef().GetHook(), env))
}

// callAgentHook runs a step on its agent with RunHook, asking again while
// the agent reports it RUNNING (a repeat attaches to the running hook, the
// agent runs a step at most once per op) and while the agent does not
// answer, up to hookUnreachableFor.
func (r *pauseRunner) callAgentHook(ctx context.Context, op *pb.Operation, run *pb.HookRun, env map[string]string) *pb.HookRun {
	agent := run.GetRef().GetAgent()
	fail := func(format string, a ...any) *pb.HookRun {
		out := proto.Clone(run).(*pb.HookRun)
		out.State = pb.HookState_HOOK_STATE_FAILED
		out.Message = fmt.Sprintf(format, a...)
		out.EndedAt = r.stamp()
		return out
	}
	addr, err := r.hookAddress(op, agent)
	if err != nil {
		return fail("agent %s: %v", agent, err)
	}
	req := &pb.RunHookRequest{OpId: op.GetOpId(), Epoch: r.epoch, Hook: run.GetRef().GetHook(), StepId: run.GetStepId(), Env: env}
	var silentSince time.Time
	backoff := unpauseBackoffMin
	for {
		c, err := r.agents.agent(addr)
		if err == nil {
			cctx, cancel := context.WithTimeout(ctx, hookCallTimeout)
			var resp *pb.RunHookResponse
			resp, err = c.RunHook(cctx, req)
			cancel()
			if err == nil {
				silentSince = time.Time{}
				if got := resp.GetRun(); hookEnded(got.GetState()) {
					return merge(run, got)
				}
				continue // still running: attach again
			}
		}
		if ctx.Err() != nil {
			return run
		}
		switch status.Code(err) {
		case codes.DeadlineExceeded:
			continue // the call's deadline passed while the hook ran
		case codes.Unavailable, codes.Canceled, codes.ResourceExhausted, codes.Aborted:
		default:
			return fail("agent %s (%s) refused hook %s: %s", agent, addr, run.GetRef().GetHook(), status.Convert(err).Message())
		}
		now := r.clock.Now()
		if silentSince.IsZero() {
			silentSince = now
		}
		if now.Sub(silentSince) >= hookUnreachableFor {
			return fail("agent %s (%s) unreachable for %s: %s", agent, addr, hookUnreachableFor, status.Convert(err).Message())
		}
		select {
		case <-ctx.Done():
			return run
		case <-r.clock.After(backoff):
		}
		backoff = min(2*backoff, unpauseBackoffMax)
	}
}

// hookAddress is the gRPC address of the agent that runs a hook: a
// target's from the op, any other agent's from the server's view.
func (r *pauseRunner) hookAddress(op *pb.Operation, agent string) (string, error) {
	for _, t := range op.GetTargets() {
		if t.GetNode() == agent && t.GetGrpcAddress() != "" {
			return t.GetGrpcAddress(), nil
		}
	}
	if r.hookAddr == nil {
		return "", fmt.Errorf("not a target of the op and no address is known")
	}
	return r.hookAddr(agent)
}

// runAfterHooks runs a completed backup's `after` hooks in parallel, with
// the restore point in their environment, recording each change. A failed
// after hook marks the backup partial and nothing else.
func (r *pauseRunner) runAfterHooks(ctx context.Context, op *pb.Operation) (*pb.Operation, error) {
	var open []*pb.HookRun
	for _, h := range op.GetBackup().GetHooks() {
		if !isAfter(h) || hookEnded(h.GetState()) {
			continue
		}
		if h.GetRef().GetAgent() == CoordinatorAgent && h.GetState() == pb.HookState_HOOK_STATE_RUNNING {
			// Started by an earlier runner: never run twice.
			h.State, op.Backup.Partial = pb.HookState_HOOK_STATE_FAILED, true
			h.Message = "it was running under an earlier leader's runner; a coordinator hook is never run twice"
			if err := r.persist(ctx, op); err != nil {
				return nil, err
			}
			continue
		}
		open = append(open, h)
	}
	if len(open) == 0 {
		return op, nil
	}
	r.log.Info("running after hooks", zap.Int("hooks", len(open)), zap.Time("restore_point", op.GetWindow().GetRestorePoint().AsTime()))
	var mu sync.Mutex
	var firstErr error
	record := func(run *pb.HookRun) error {
		mu.Lock()
		defer mu.Unlock()
		setRun(op, run)
		if hookFailed(run.GetState()) {
			op.Backup.Partial = true
		}
		err := r.persist(ctx, op)
		if err != nil && firstErr == nil {
			firstErr = err
		}
		return err
	}
	var wg sync.WaitGroup
	for _, run := range open {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mu.Lock()
			env := hookEnv(op, run)
			mu.Unlock()
			run = proto.Clone(run).(*pb.HookRun)
			if run.GetState() != pb.HookState_HOOK_STATE_RUNNING {
				run.State, run.StartedAt = pb.HookState_HOOK_STATE_RUNNING, r.stamp()
				if record(run) != nil {
					return // not recorded RUNNING: the next leader runs it
				}
			}
			out := r.execHook(ctx, op, run, env)
			if ctx.Err() == nil {
				r.log.Info("after hook ended", zap.String("step_id", out.GetStepId()), zap.String("state", out.GetState().String()), zap.String("message", out.GetMessage()))
				_ = record(out)
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return op, nil
}

// runRecorder records a held op's hook runs off the hold loop, so that a
// slow or failing Raft write never delays a lease renewal: the loop
// submits its latest record and goes on; the recorder writes the latest
// it has (earlier ones it had not started are superseded). A write the
// FSM refuses for good, or one given up when the term ended, is reported
// on failed.
type runRecorder struct {
	latest chan pendingRecord // capacity 1: the record to write next
	failed chan error         // capacity 1
	done   chan struct{}
}

func (r *pauseRunner) startRecorder(ctx context.Context) *runRecorder {
	rec := &runRecorder{latest: make(chan pendingRecord, 1), failed: make(chan error, 1), done: make(chan struct{})}
	go func() {
		defer close(rec.done)
		for p := range rec.latest {
			if err := r.persist(ctx, p.op); err != nil {
				select {
				case rec.failed <- err:
				default:
				}
				return
			}
			for _, c := range p.committed {
				close(c)
			}
		}
	}()
	return rec
}

// pendingRecord is a record to write and whom to tell once it is
// committed (it holds every change of the records it superseded).
type pendingRecord struct {
	op        *pb.Operation
	committed []chan struct{}
}

// submit queues a copy of op as the record to write, replacing one queued
// and not yet started (whose waiters then wait for this one); committed,
// when set, is closed once it is written.
func (rec *runRecorder) submit(op *pb.Operation, committed chan struct{}) {
	p := pendingRecord{op: proto.Clone(op).(*pb.Operation)}
	if committed != nil {
		p.committed = append(p.committed, committed)
	}
	for {
		select {
		case rec.latest <- p:
			return
		default:
		}
		select {
		case old := <-rec.latest: // superseded
			p.committed = append(p.committed, old.committed...)
		default:
		}
	}
}

// close writes what is queued and waits for the writer: the loop's next
// record (UNPAUSING, or the end) is then never overtaken by an older one.
func (rec *runRecorder) close() {
	close(rec.latest)
	<-rec.done
}

// afterHooksOpen reports whether a completed backup still has after hooks
// to run (a leader that took over runs them).
func afterHooksOpen(op *pb.Operation) bool {
	if op.GetState() != pb.OperationState_OPERATION_STATE_COMPLETED {
		return false
	}
	for _, h := range op.GetBackup().GetHooks() {
		if isAfter(h) && !hookEnded(h.GetState()) {
			return true
		}
	}
	return false
}
