package agent

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/stillpoint-dev/stillpoint/internal/hook"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

const (
	// maxHookOps is how many ops' hook runs the agent remembers, so a
	// repeated RunHook returns the ended run instead of running it again.
	maxHookOps = 64
	// maxStepsPerOp bounds the hook runs one op may start on this agent.
	maxStepsPerOp = 256
	// maxStepIDLen bounds step_id.
	maxStepIDLen = 128
)

// hookRunner serves RunHook: it runs the hooks defined in the agent's
// config file at most once per (op_id, step_id), remembers ended runs of
// the last maxHookOps ops, and kills running hooks when the agent stops.
// A hook outlives the RunHook call that started it: its own timeout, the
// agent's shutdown, or (a during hook) the end of its op on this agent
// ends it.
type hookRunner struct {
	node  string
	defs  map[string]hook.Definition
	names []string
	exec  *hook.Executor
	fence func(op string, epoch uint64) error
	// ended reports whether op's hold is over on this agent (nil: never).
	ended func(op string) bool
	// started records a new step durably and reports whether an earlier
	// run of this agent started it already (nil: not remembered).
	started func(op, step, hook string) (bool, error)
	log     *zap.Logger
	observe func(name string, run *pb.HookRun)
	maxOps  int

	// ctx ends when the agent stops: running hooks' process groups die.
	ctx    context.Context
	cancel context.CancelCauseFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	stopping bool
	runs     map[stepKey]*stepRun
	// ops lists the ops with runs, oldest first.
	ops   []string
	steps map[string][]stepKey
}

type stepKey struct{ op, step string }

type stepRun struct {
	hook string
	proc *hook.Process
	// during: a hook of a group run while the targets are held; cancel
	// kills it when its op ends on this agent.
	during bool
	cancel context.CancelCauseFunc
}

func (s *stepRun) ended() bool {
	select {
	case <-s.proc.Done():
		return true
	default:
		return false
	}
}

func newHookRunner(node string, defs []hook.Definition, exec *hook.Executor, fence func(string, uint64) error,
	log *zap.Logger, observe func(string, *pb.HookRun)) *hookRunner {
	ctx, cancel := context.WithCancelCause(context.Background())
	r := &hookRunner{
		node: node, defs: make(map[string]hook.Definition, len(defs)), names: hook.Names(defs),
		exec: exec, fence: fence, log: log, observe: observe, maxOps: maxHookOps,
		ctx: ctx, cancel: cancel,
		runs: make(map[stepKey]*stepRun), steps: make(map[string][]stepKey),
	}
	for _, d := range defs {
		r.defs[d.Name] = d
	}
	return r
}

// duringGroup reports whether a hook group runs while the targets are
// held: every group but the after hooks and retention's delete hooks.
func duringGroup(g string) bool {
	return g != "" && g != hook.GroupAfter && g != hook.GroupDelete
}

// agentSet are the variables the agent sets itself from the request.
var agentSet = []string{hook.EnvOpID, hook.EnvStepID, hook.EnvHook, hook.EnvNode}

// RunHook runs (or attaches to, or returns) the hook run of (op_id,
// step_id). It waits for the run to end, or until shortly before the
// call's deadline (so the answer still arrives), then returns the run
// with state RUNNING.
func (r *hookRunner) RunHook(ctx context.Context, req *pb.RunHookRequest) (*pb.RunHookResponse, error) {
	op, step, name := req.GetOpId(), req.GetStepId(), req.GetHook()
	if err := validateOpID(r.node, op); err != nil {
		return nil, err
	}
	if err := r.validateStep(step); err != nil {
		return nil, err
	}
	if name == "" {
		return nil, fmt.Errorf("%w: agent %s: hook is required (the name of a hook in the agent's config; it has %s)",
			ErrInvalidRequest, r.node, r.hookList())
	}
	if err := hook.ValidateRequestEnv(req.GetEnv()); err != nil {
		return nil, fmt.Errorf("%w: agent %s: op %s step %s: %v", ErrInvalidRequest, r.node, op, step, err)
	}
	env := make(map[string]string, len(req.GetEnv())+len(agentSet))
	for k, v := range req.GetEnv() {
		env[k] = v
	}
	own := map[string]string{hook.EnvOpID: op, hook.EnvStepID: step, hook.EnvHook: name, hook.EnvNode: r.node}
	for _, k := range agentSet {
		if v, ok := env[k]; ok && v != own[k] {
			return nil, fmt.Errorf("%w: agent %s: env %s=%q contradicts the request (%q); the agent sets it itself",
				ErrInvalidRequest, r.node, k, v, own[k])
		}
		env[k] = own[k]
	}
	if err := r.fence(op, req.GetEpoch()); err != nil {
		return nil, err
	}

	log := r.log.With(zap.String("op_id", op), zap.String("step_id", step), zap.String("hook", name))
	sr, err := r.start(log, op, step, name, env)
	if err != nil {
		return nil, err
	}

	wait := ctx
	if dl, ok := ctx.Deadline(); ok {
		margin := min(time.Until(dl)/10, time.Second)
		var cancel context.CancelFunc
		wait, cancel = context.WithDeadline(ctx, dl.Add(-margin))
		defer cancel()
	}
	select {
	case <-sr.proc.Done():
	case <-wait.Done():
		log.Debug("RunHook call returns while the hook runs on", zap.Error(wait.Err()))
	}
	run := sr.proc.Result()
	run.StepId = step
	run.Ref = &pb.HookRef{Agent: r.node, Hook: sr.hook}
	return &pb.RunHookResponse{Run: run}, nil
}

// start returns the run of (op, step), starting it if it is new.
func (r *hookRunner) start(log *zap.Logger, op, step, name string, env map[string]string) (*stepRun, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	key := stepKey{op, step}
	if sr, ok := r.runs[key]; ok {
		if sr.hook != name {
			return nil, fmt.Errorf("%w: agent %s: op %s step %s already ran hook %q; refusing hook %q under the same step",
				ErrStepTaken, r.node, op, step, sr.hook, name)
		}
		log.Info("RunHook attaches to the step's run", zap.Bool("ended", sr.ended()))
		return sr, nil
	}
	if r.stopping {
		return nil, fmt.Errorf("%w: agent %s refuses hook %q of op %s", ErrStopping, r.node, name, op)
	}
	if g := env[hook.EnvHookGroup]; duringGroup(g) && r.ended != nil && r.ended(op) {
		// A call that arrived after the hold ended (the leader ended it
		// while the call was in flight): a during hook never starts on a
		// node that is no longer held.
		return nil, fmt.Errorf("%w: op %s ended on agent %s (its node is no longer held); refusing hook %q of group %s (step %s), which must run inside the pause",
			ErrOpEnded, op, r.node, name, g, step)
	}
	def, ok := r.defs[name]
	if !ok {
		return nil, fmt.Errorf("%w: agent %s has no hook named %q (it has %s)", ErrNoSuchHook, r.node, name, r.hookList())
	}
	if len(r.steps[op]) >= maxStepsPerOp {
		return nil, fmt.Errorf("%w: agent %s: op %s already ran %d hook steps here, at most %d",
			ErrInvalidRequest, r.node, op, len(r.steps[op]), maxStepsPerOp)
	}
	// Retention's delete hooks are exempt: a new leader asks again from
	// its first attempt's step id, and a delete may run again (it accepts
	// a gone artefact).
	if r.started != nil && env[hook.EnvHookGroup] != hook.GroupDelete {
		before, err := r.started(op, step, name)
		if err != nil {
			return nil, err
		}
		if before {
			return nil, fmt.Errorf("%w: agent %s: op %s step %s (hook %q) started before agent %s restarted, which killed it; a step runs at most once",
				ErrStepTaken, r.node, op, step, name, r.node)
		}
	}
	log.Info("hook starting", zap.String("command", def.Command), zap.Strings("args", def.Args), zap.Duration("timeout", def.Timeout))
	pctx, cancel := context.WithCancelCause(r.ctx)
	sr := &stepRun{hook: name, during: duringGroup(env[hook.EnvHookGroup]), cancel: cancel}
	sr.proc = r.exec.Start(pctx, def, env)
	r.runs[key] = sr
	if _, seen := r.steps[op]; !seen {
		r.ops = append(r.ops, op)
	}
	r.steps[op] = append(r.steps[op], key)
	r.evictLocked()
	r.wg.Add(1)
	go r.watch(log, name, sr)
	return sr, nil
}

// watch logs and counts a run when it ends.
func (r *hookRunner) watch(log *zap.Logger, name string, sr *stepRun) {
	defer r.wg.Done()
	<-sr.proc.Done()
	sr.cancel(nil)
	run := sr.proc.Result()
	fields := []zap.Field{
		zap.String("state", run.GetState().String()), zap.Int32("exit_code", run.GetExitCode()),
		zap.Duration("duration", time.Duration(run.GetDurationNs())), zap.Int("output_bytes", len(run.GetOutputTail())),
		zap.Bool("output_truncated", run.GetOutputTruncated()),
	}
	if run.GetMessage() != "" {
		fields = append(fields, zap.String("message", run.GetMessage()))
	}
	if run.GetState() == pb.HookState_HOOK_STATE_SUCCEEDED {
		log.Info("hook ended", fields...)
	} else {
		log.Warn("hook ended", fields...)
	}
	if r.observe != nil {
		r.observe(name, run)
	}
}

// evictLocked forgets the oldest ops whose runs have all ended, keeping
// at most maxOps ops (an op with a running hook is kept).
func (r *hookRunner) evictLocked() {
	for i := 0; len(r.ops) > r.maxOps && i < len(r.ops); {
		op := r.ops[i]
		running := false
		for _, k := range r.steps[op] {
			if !r.runs[k].ended() {
				running = true
				break
			}
		}
		if running {
			i++
			continue
		}
		for _, k := range r.steps[op] {
			delete(r.runs, k)
		}
		delete(r.steps, op)
		r.ops = append(r.ops[:i], r.ops[i+1:]...)
	}
}

func (r *hookRunner) validateStep(step string) error {
	if step == "" {
		return fmt.Errorf("%w: agent %s: step_id is required (unique within the op)", ErrInvalidRequest, r.node)
	}
	if len(step) > maxStepIDLen {
		return fmt.Errorf("%w: agent %s: step_id is %d bytes, at most %d", ErrInvalidRequest, r.node, len(step), maxStepIDLen)
	}
	for _, c := range step {
		if c <= ' ' || c == 0x7f {
			return fmt.Errorf("%w: agent %s: step_id %q contains a space or control character", ErrInvalidRequest, r.node, step)
		}
	}
	return nil
}

func (r *hookRunner) hookList() string {
	if len(r.names) == 0 {
		return "none: its config file defines no hooks"
	}
	return strings.Join(r.names, ", ")
}

// shutdown refuses new runs and kills every running hook's process group
// (SIGTERM, then SIGKILL after the grace), logging each; it waits for
// them until ctx ends.
func (r *hookRunner) shutdown(ctx context.Context) error {
	r.mu.Lock()
	r.stopping = true
	for key, sr := range r.runs {
		if !sr.ended() {
			r.log.Warn("agent stopping: killing running hook", zap.String("op_id", key.op), zap.String("step_id", key.step), zap.String("hook", sr.hook))
		}
	}
	r.mu.Unlock()
	r.cancel(fmt.Errorf("agent %s stopping", r.node))
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("agent %s stopping: hooks still ending: %w", r.node, ctx.Err())
	}
}

// endOp kills the during hooks of op still running here: op's hold is
// over on this agent (unpaused, or its lease expired), so they would run
// against a node no longer held; the leader has recorded them failed.
func (r *hookRunner) endOp(op string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, key := range r.steps[op] {
		sr := r.runs[key]
		if sr == nil || !sr.during || sr.ended() {
			continue
		}
		r.log.Warn("op ended while its during hook runs: killing it", zap.String("op_id", op), zap.String("step_id", key.step), zap.String("hook", sr.hook))
		sr.cancel(fmt.Errorf("op %s ended on agent %s: its node is no longer held", op, r.node))
	}
}

// run returns the recorded run of (op, step), if any.
func (r *hookRunner) run(op, step string) (*pb.HookRun, bool) {
	r.mu.Lock()
	sr, ok := r.runs[stepKey{op, step}]
	r.mu.Unlock()
	if !ok {
		return nil, false
	}
	return sr.proc.Result(), true
}
