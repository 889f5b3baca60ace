package coordinator

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stillpoint-dev/stillpoint/coordinator/fsm"
	"github.com/stillpoint-dev/stillpoint/internal/logging/logtest"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// Fakes for driving pauseRunner without Raft or agents (prefix rt: runner
// test). Every fake node keeps a paused flag so a test can check that
// nothing is left paused.

// rtStamp is a synchronized reading of now with a 1ms bound.
func rtStamp(now time.Time) *pb.StampedTime {
	return &pb.StampedTime{LocalTime: timestamppb.New(now), Estimate: &pb.ClockEstimate{
		Status: pb.ClockStatus_CLOCK_STATUS_SYNCHRONIZED, ErrorBoundNs: int64(time.Millisecond),
	}}
}

// rtAgent is one fake agent and its node.
type rtAgent struct {
	pb.AgentServiceClient // nil: calls not faked panic
	name                  string
	now                   func() time.Time

	mu      sync.Mutex
	paused  bool
	leaseMs int64
	// Hooks; nil means success.
	pauseErr   func() error
	renewErr   func() error
	unpauseErr func() error
	// unpauseFails: the agent answers but its node's Unpause failed (the
	// lease stays armed).
	unpauseFails func() bool
	// remaining, when set, is the lease_remaining_ms reported.
	remaining func() int64
	renews    []time.Time
	unpauses  int
	// hook runs a backup hook step (nil: succeeds at once); it may block.
	hook      func(req *pb.RunHookRequest) *pb.HookRun
	steps     map[string]*rtStep
	hookCalls int
}

func (a *rtAgent) Pause(_ context.Context, req *pb.PauseRequest, _ ...grpc.CallOption) (*pb.PauseResponse, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.pauseErr != nil {
		if err := a.pauseErr(); err != nil {
			return nil, err
		}
	}
	a.paused, a.leaseMs = true, req.GetLeaseMs()
	return &pb.PauseResponse{Node: a.name, Outcome: pb.NodeOutcome_NODE_OUTCOME_PAUSED, Message: "paused and drained",
		AckedAt: rtStamp(a.now()), LeaseRemainingMs: a.remainingLocked()}, nil
}

func (a *rtAgent) remainingLocked() int64 {
	if a.remaining != nil {
		return a.remaining()
	}
	return a.leaseMs
}

func (a *rtAgent) RenewLease(_ context.Context, req *pb.RenewLeaseRequest, _ ...grpc.CallOption) (*pb.RenewLeaseResponse, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.renewErr != nil {
		if err := a.renewErr(); err != nil {
			return nil, err
		}
	}
	a.renews = append(a.renews, a.now())
	a.leaseMs = req.GetLeaseMs()
	return &pb.RenewLeaseResponse{LeaseRemainingMs: a.remainingLocked()}, nil
}

func (a *rtAgent) Unpause(context.Context, *pb.UnpauseRequest, ...grpc.CallOption) (*pb.UnpauseResponse, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.unpauses++
	if a.unpauseErr != nil {
		if err := a.unpauseErr(); err != nil {
			return nil, err
		}
	}
	if a.unpauseFails != nil && a.unpauseFails() {
		return &pb.UnpauseResponse{Node: a.name, Outcome: pb.NodeOutcome_NODE_OUTCOME_UNREACHABLE, SentAt: rtStamp(a.now()),
			Message: "unpause of node " + a.name + " failed: admin port unreachable; the lease stays armed"}, nil
	}
	a.paused = false
	return &pb.UnpauseResponse{Node: a.name, Outcome: pb.NodeOutcome_NODE_OUTCOME_UNPAUSED, Message: "unpaused", SentAt: rtStamp(a.now())}, nil
}

func (a *rtAgent) isPaused() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.paused
}

// rtFleet dials fake agents by address (the node name).
type rtFleet map[string]*rtAgent

func (f rtFleet) agent(addr string) (pb.AgentServiceClient, error) {
	if a, ok := f[addr]; ok {
		return a, nil
	}
	return nil, status.Errorf(codes.Unavailable, "no agent at %s", addr)
}

// rtLog is an in-memory op log that applies the FSM's rules for updates
// (epoch fence, no update after the end) and lets a test fail or observe
// each write.
type rtLog struct {
	mu      sync.Mutex
	epoch   uint64
	cur     *pb.Operation
	history []*pb.Operation
	// hook runs before a write is stored; an error rejects the write.
	// stored=true stores it and then returns the error (a commit whose
	// outcome the leader did not learn).
	hook func(op *pb.Operation) (stored bool, err error)
}

func (l *rtLog) updateOperation(_ context.Context, op *pb.Operation) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if op.GetEpoch() != l.epoch {
		return fsm.ErrStaleEpoch
	}
	if l.cur != nil && fsm.IsTerminal(l.cur.GetState()) && !rtAfterRunsOnly(l.cur, op) {
		return fsm.ErrOperationEnded
	}
	if l.hook != nil {
		stored, err := l.hook(op)
		if stored {
			l.store(op)
		}
		if err != nil {
			return err
		}
		if stored {
			return nil
		}
	}
	l.store(op)
	return nil
}

// rtAfterRunsOnly: as the FSM, a COMPLETED backup takes updates of its
// backup only (its after runs).
func rtAfterRunsOnly(cur, op *pb.Operation) bool {
	if cur.GetState() != pb.OperationState_OPERATION_STATE_COMPLETED || cur.GetBackup() == nil {
		return false
	}
	a, b := proto.Clone(cur).(*pb.Operation), proto.Clone(op).(*pb.Operation)
	a.Backup, b.Backup, a.Epoch = nil, nil, b.GetEpoch()
	return proto.Equal(a, b)
}

func (l *rtLog) store(op *pb.Operation) {
	l.cur = proto.Clone(op).(*pb.Operation)
	l.history = append(l.history, l.cur)
}

// latest is the op as last recorded.
func (l *rtLog) latest() *pb.Operation {
	l.mu.Lock()
	defer l.mu.Unlock()
	return proto.Clone(l.cur).(*pb.Operation)
}

// newTerm fences off the previous runner, as BumpEpoch does.
func (l *rtLog) newTerm() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.epoch++
	l.hook = nil
	return l.epoch
}

// rtOp is a PENDING op over the fleet's nodes.
func rtOp(holdMs, leaseMs int64, nodes ...string) *pb.Operation {
	op := &pb.Operation{OpId: "op-test", Cluster: "ledger", State: pb.OperationState_OPERATION_STATE_PENDING,
		RequestedHoldMs: holdMs, LeaseMs: leaseMs, Epoch: 1}
	for _, n := range nodes {
		op.Targets = append(op.Targets, &pb.TargetRecord{Node: n, GrpcAddress: n})
	}
	return op
}

func rtNewFleet(now func() time.Time, nodes ...string) rtFleet {
	f := rtFleet{}
	for _, n := range nodes {
		f[n] = &rtAgent{name: n, now: now}
	}
	return f
}

// rtRunner builds a runner for one term over the fakes.
func rtRunner(t *testing.T, l *rtLog, f rtFleet, epoch uint64, watch holdWatch) *pauseRunner {
	t.Helper()
	if watch == nil {
		watch = func(*pb.Operation) string { return "" }
	}
	cfg := fsm.DefaultRuntimeConfig()
	cfg.MaxPauseWaitNs = int64(time.Second)
	return &pauseRunner{
		log:    logtest.New(t, zap.DebugLevel).With(zap.Uint64("epoch", epoch)),
		ops:    l,
		agents: f,
		watch:  watch,
		cfg:    cfg,
		epoch:  epoch,
		clock:  clockwork.NewRealClock(),
		stamp:  func() *pb.StampedTime { return rtStamp(time.Now()) },
		force:  make(chan struct{}),
		// Agents that are not targets are dialled by name.
		hookAddr: func(agent string) (string, error) { return agent, nil },
	}
}

// rtNonePaused fails the test when a fake node is still paused.
func rtNonePaused(t *testing.T, f rtFleet) {
	t.Helper()
	for n, a := range f {
		if a.isPaused() {
			t.Errorf("%s is still paused", n)
		}
	}
}

// rtStep is one hook step on a fake agent: run once, attached to by every
// later call with its step id.
type rtStep struct {
	starts int
	req    *pb.RunHookRequest
	done   chan struct{}
	run    *pb.HookRun
}

// RunHook runs a step at most once per (op, step id), as the agent does: a
// repeat attaches to the running hook and returns its result when it
// ends, or the caller's context error.
func (a *rtAgent) RunHook(ctx context.Context, req *pb.RunHookRequest, _ ...grpc.CallOption) (*pb.RunHookResponse, error) {
	a.mu.Lock()
	if a.steps == nil {
		a.steps = map[string]*rtStep{}
	}
	key := req.GetOpId() + "/" + req.GetStepId()
	st, ok := a.steps[key]
	if !ok {
		st = &rtStep{req: proto.Clone(req).(*pb.RunHookRequest), done: make(chan struct{})}
		a.steps[key] = st
		hook := a.hook
		a.mu.Unlock()
		go func() {
			started := rtStamp(a.now())
			var run *pb.HookRun
			if hook != nil {
				run = hook(req)
			}
			if run == nil {
				run = &pb.HookRun{State: pb.HookState_HOOK_STATE_SUCCEEDED}
			}
			run.StartedAt, run.EndedAt = started, rtStamp(a.now())
			a.mu.Lock()
			st.run = run
			a.mu.Unlock()
			close(st.done)
		}()
		a.mu.Lock()
	}
	st.starts++
	a.hookCalls++
	a.mu.Unlock()
	select {
	case <-st.done:
		a.mu.Lock()
		defer a.mu.Unlock()
		return &pb.RunHookResponse{Run: proto.Clone(st.run).(*pb.HookRun)}, nil
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
}

// rtStarted is how many times a step was started (1 at most, or the fake
// is broken) and how many RunHook calls it got.
func (a *rtAgent) rtStepCalls(opID, step string) (calls int, req *pb.RunHookRequest) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if st, ok := a.steps[opID+"/"+step]; ok {
		return st.starts, st.req
	}
	return 0, nil
}
