package coordinator

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/stillpoint-dev/stillpoint/coordinator/fsm"
	"github.com/stillpoint-dev/stillpoint/internal/enumname"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// opLog persists operation records through Raft. update must succeed
// before the runner touches a node for the state it records.
type opLog interface {
	updateOperation(ctx context.Context, op *pb.Operation) error
}

// agentDialer returns an AgentService client for an agent's gRPC address.
type agentDialer interface {
	agent(addr string) (pb.AgentServiceClient, error)
}

// holdWatch reports, while targets are held, anything that makes the window
// invalid (a target restarted, a new node of the cluster joined). Empty
// means nothing happened.
type holdWatch func(op *pb.Operation) string

// pauseRunner drives one operation on the leader, per SPEC "Pause protocol"
// steps 3-6. It is created for one op and epoch.
type pauseRunner struct {
	log    *zap.Logger
	ops    opLog
	agents agentDialer
	watch  holdWatch
	cfg    *pb.RuntimeConfig
	epoch  uint64
	// clock times the fan-out, the hold, renewals and polls.
	clock clockwork.Clock
	// stamp reads the coordinator's wall clock with its estimate.
	stamp func() *pb.StampedTime
	// force is closed when an operator ends the hold (unpause --op):
	// forceAbort says whether the op is aborted (ABORTED, no window) or its
	// hold just ends now (the window decides), forceReason says why. The
	// first request wins.
	force       chan struct{}
	forceOnce   sync.Once
	forceReason string
	forceAbort  bool
	// leases is what this runner knows of each target's lease.
	leases leaseBook
	// leader is this server's id, added to the op's leaders with the
	// runner's first record ("" in tests that do not care).
	leader string
	// hookAddr resolves the gRPC address of an agent that runs a backup
	// hook and is not a target of the op (nil: only targets run hooks).
	hookAddr func(agent string) (string, error)
	// localHook runs a hook defined in this server's config (nil: none).
	localHook localHookFunc
}

// noteLeader appends leader to op.leaders unless it is the last one there.
// An op recorded before leaders existed is seeded with its admitting
// leader first.
func noteLeader(op *pb.Operation, leader string) {
	if leader == "" {
		return
	}
	if len(op.GetLeaders()) == 0 && op.GetLeader() != "" {
		op.Leaders = []string{op.GetLeader()}
	}
	if n := len(op.GetLeaders()); n == 0 || op.GetLeaders()[n-1] != leader {
		op.Leaders = append(op.Leaders, leader)
	}
}

// renewFraction: leases are renewed every lease/renewFraction.
const renewFraction = 3

// rpcSlack is added to node-side waits to bound an agent call.
const rpcSlack = 5 * time.Second

// forceUnpause aborts the op: its targets are unpaused and it ends
// ABORTED with no window (unpause --op --abort).
func (r *pauseRunner) forceUnpause(reason string) { r.endHold(true, reason) }

// endHoldNow ends the op's hold now: its targets are unpaused and the op
// completes with its window when the window is valid (unpause --op).
func (r *pauseRunner) endHoldNow(reason string) { r.endHold(false, reason) }

func (r *pauseRunner) endHold(abort bool, reason string) {
	r.forceOnce.Do(func() {
		r.forceReason, r.forceAbort = reason, abort
		close(r.force)
	})
}

// forced reports whether an operator ended the hold, and whether to abort.
func (r *pauseRunner) forced() (ended, abort bool) {
	select {
	case <-r.force:
		return true, r.forceAbort
	default:
		return false, false
	}
}

// Reasons an operator's end of the hold leaves on the op.
const (
	forceAbortedPrefix = "force-unpaused: "
	holdEndedPrefix    = "hold ended by the operator: "
)

// recordForce writes an operator's end of the hold into a record the
// runner makes before it could act on it (PAUSING, HOLDING), so that a
// leader taking over ends the op the intended way (end_state ABORTED, or
// COMPLETED: the hold ends now and the window decides) instead of holding
// it to its deadline.
func (r *pauseRunner) recordForce(op *pb.Operation) {
	ended, abort := r.forced()
	if !ended {
		return
	}
	switch op.GetState() {
	case pb.OperationState_OPERATION_STATE_PAUSING, pb.OperationState_OPERATION_STATE_HOLDING:
		if op.GetEndState() == pb.OperationState_OPERATION_STATE_UNSPECIFIED {
			markEnd(op, abort, r.forceReason)
		}
	}
}

// markEnd records the operator's intended end on op.
func markEnd(op *pb.Operation, abort bool, reason string) {
	if abort {
		op.EndState = pb.OperationState_OPERATION_STATE_ABORTED
		op.Reason = forceAbortedPrefix + reason
		return
	}
	op.EndState = pb.OperationState_OPERATION_STATE_COMPLETED
	op.Reason = holdEndedPrefix + reason
}

// cutShort reports whether an end state recorded on op ends it without a
// window (ABORTED, INVALID). COMPLETED means the hold was ended now and
// the window decides; unset, a full hold.
func cutShort(end pb.OperationState) bool {
	return end != pb.OperationState_OPERATION_STATE_UNSPECIFIED && end != pb.OperationState_OPERATION_STATE_COMPLETED
}

// Persist retry backoff: a failed write is retried while this runner's
// term lasts, waiting persistBackoffMin, doubling up to persistBackoffMax.
const (
	persistBackoffMin = 50 * time.Millisecond
	persistBackoffMax = 2 * time.Second
)

// persist records op. A failed write is retried while the term lasts (a
// quorum may come back; an apply may have timed out), so an op does not
// stop half-way while its leader still leads. It gives up when ctx ends
// (leadership lost: the next leader resumes the op) or the FSM refuses the
// write for good (a stale epoch, an op that already ended).
func (r *pauseRunner) persist(ctx context.Context, op *pb.Operation) error {
	op.Epoch = r.epoch
	settleBackup(op)
	backoff := persistBackoffMin
	for attempt := 1; ; attempt++ {
		r.recordForce(op) // also one that came while an attempt failed
		err := r.ops.updateOperation(ctx, proto.Clone(op).(*pb.Operation))
		if err == nil {
			return nil
		}
		if attempt > 1 && fsm.IsTerminal(op.GetState()) && errors.Is(err, fsm.ErrOperationEnded) {
			// An earlier attempt was committed after all; only this
			// runner's term could have ended the op.
			return nil
		}
		if permanentPersistError(err) || ctx.Err() != nil {
			r.log.Error("recording operation failed; the next leader or the leases take over", zap.String("state", op.GetState().String()), zap.Int("attempt", attempt), zap.Error(err))
			return err
		}
		r.log.Warn("recording operation failed; retrying", zap.String("state", op.GetState().String()), zap.Int("attempt", attempt), zap.Duration("backoff", backoff), zap.Error(err))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-r.clock.After(backoff):
		}
		backoff = min(2*backoff, persistBackoffMax)
	}
}

// permanentPersistError: the FSM refused the write and will refuse it again.
func permanentPersistError(err error) bool {
	for _, e := range []error{fsm.ErrStaleEpoch, fsm.ErrOperationEnded, fsm.ErrOperationNotFound, fsm.ErrInvalidCommand} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// run drives op from PAUSING to a terminal state. It returns the final
// record, or an error when it had to stop (context cancelled on leadership
// loss, or the log could not be written): then a new leader resumes the op
// or the leases release the nodes.
func (r *pauseRunner) run(ctx context.Context, op *pb.Operation) (*pb.Operation, error) {
	if op.GetState() == pb.OperationState_OPERATION_STATE_COMPLETED {
		// A completed backup whose after hooks a deposed leader left
		// open: only their runs may still change.
		return r.runAfterHooks(ctx, proto.Clone(op).(*pb.Operation))
	}
	final, err := r.drive(ctx, op)
	if err != nil || final.GetState() != pb.OperationState_OPERATION_STATE_COMPLETED || final.GetBackup() == nil {
		return final, err
	}
	// A backup's after hooks run once its restore point is known.
	return r.runAfterHooks(ctx, final)
}

// drive is run up to the op's end.
func (r *pauseRunner) drive(ctx context.Context, op *pb.Operation) (*pb.Operation, error) {
	op = proto.Clone(op).(*pb.Operation)
	noteLeader(op, r.leader) // recorded with this runner's first persist
	if op.GetState() != pb.OperationState_OPERATION_STATE_PENDING {
		// Taking over: the last leader may have armed or renewed any
		// target's lease up to now.
		lease := time.Duration(op.GetLeaseMs()) * time.Millisecond
		for _, t := range op.GetTargets() {
			r.leases.unknown(t.GetNode(), r.clock.Now(), lease)
		}
	}
	switch op.GetState() {
	case pb.OperationState_OPERATION_STATE_PENDING:
		op.State = pb.OperationState_OPERATION_STATE_PAUSING
		if err := r.persist(ctx, op); err != nil {
			return nil, err
		}
		if !r.pauseAll(ctx, op) {
			return r.rollback(ctx, op)
		}
		// Renew at once, before the hold is recorded: a target that acked
		// early has spent part of its lease waiting for the slowest drain,
		// and the record may take a while. A lease lost here ends the op
		// before any hold: ABORTED.
		if why := r.renewAll(ctx, op); why != "" {
			return r.endEarly(ctx, op, pb.OperationState_OPERATION_STATE_ABORTED, "before the hold: "+why, mayBePaused)
		}
		r.chooseHold(op)
		span := holdSpan(op)
		start := r.clock.Now()
		op.HoldDeadline = holdDeadline(r.stamp(), span)
		op.State = pb.OperationState_OPERATION_STATE_HOLDING
		if err := r.persist(ctx, op); err != nil {
			return nil, err
		}
		return r.holdAndFinish(ctx, op, span-r.clock.Since(start))
	case pb.OperationState_OPERATION_STATE_PAUSING:
		// A new leader cannot know which pauses landed: abort.
		op.Reason = "taken over while pausing (leader change, or the runner stopped on an error); aborted"
		return r.rollback(ctx, op)
	case pb.OperationState_OPERATION_STATE_HOLDING:
		if end := op.GetEndState(); cutShort(end) {
			// Force-unpaused before the last leader could act on it.
			return r.endEarly(ctx, op, end, op.GetReason(), allTargets)
		} else if end == pb.OperationState_OPERATION_STATE_COMPLETED {
			// The hold was ended before the last leader could act on it.
			return r.finishHold(ctx, op)
		}
		if why := r.renewAll(ctx, op); why != "" {
			return r.endEarly(ctx, op, pb.OperationState_OPERATION_STATE_INVALID, why, allTargets)
		}
		if op.GetHoldNs() == 0 { // recorded without its hold
			r.chooseHold(op)
		}
		left := holdLeft(op, r.stamp())
		r.log.Info("resuming held operation after leader change", zap.Duration("hold", time.Duration(op.GetHoldNs())), zap.Duration("left", left),
			zap.Time("recorded_deadline", op.GetHoldDeadline().GetLocalTime().AsTime()))
		return r.holdAndFinish(ctx, op, left)
	case pb.OperationState_OPERATION_STATE_UNPAUSING:
		r.log.Info("resuming unpause after leader change", zap.String("end_state", op.GetEndState().String()))
		if end := op.GetEndState(); cutShort(end) {
			// Cut short before the failover: end it the way it was meant to.
			return r.endEarly(ctx, op, end, op.GetReason(), mayBePaused)
		}
		// The old leader may have missed a restart in the hold's last
		// moments: check before any window is computed.
		if why := r.watch(op); why != "" {
			return r.endEarly(ctx, op, pb.OperationState_OPERATION_STATE_INVALID, why, allTargets)
		}
		return r.unpauseAndFinish(ctx, op)
	}
	return op, nil
}

// pauseAll pauses every target in parallel; it reports whether all acked.
func (r *pauseRunner) pauseAll(ctx context.Context, op *pb.Operation) bool {
	start := r.clock.Now()
	wait := time.Duration(r.cfg.GetMaxPauseWaitNs())
	r.fanOut(op, func(t *pb.TargetRecord) {
		cctx, cancel := context.WithTimeout(ctx, wait+rpcSlack)
		defer cancel()
		c, err := r.agents.agent(t.GetGrpcAddress())
		if err == nil {
			var resp *pb.PauseResponse
			resp, err = c.Pause(cctx, &pb.PauseRequest{
				OpId: op.GetOpId(), Epoch: r.epoch, LeaseMs: op.GetLeaseMs(),
				WaitOutstanding: true, MaxPauseWaitMs: wait.Milliseconds(),
			})
			if err == nil {
				r.leases.answered(t.GetNode(), start, r.clock.Now(), time.Duration(resp.GetLeaseRemainingMs())*time.Millisecond)
				t.PauseOutcome, t.PauseMessage, t.AckedAt = resp.GetOutcome(), resp.GetMessage(), resp.GetAckedAt()
				return
			}
		}
		r.leases.unknown(t.GetNode(), r.clock.Now(), time.Duration(op.GetLeaseMs())*time.Millisecond)
		t.PauseOutcome = rpcOutcome(err)
		t.PauseMessage = fmt.Sprintf("agent %s: %s", t.GetGrpcAddress(), status.Convert(err).Message())
	})
	fanout := r.clock.Since(start)
	op.FanoutNs = int64(fanout)
	ok := true
	for _, t := range op.GetTargets() {
		if t.GetPauseOutcome() != pb.NodeOutcome_NODE_OUTCOME_PAUSED || t.GetAckedAt() == nil {
			ok = false
			r.log.Warn("target did not pause", zap.String("target", t.GetNode()), zap.String("outcome", t.GetPauseOutcome().String()), zap.String("message", t.GetPauseMessage()))
		}
	}
	if ok {
		r.log.Info("all targets paused and drained", zap.Int("targets", len(op.GetTargets())), zap.Duration("fanout", fanout))
	}
	return ok
}

// rollback unpauses every target that may be paused by this op and
// records ABORTED. A target whose node answered TIMED_OUT_STILL_PAUSED is
// left alone: an earlier pause holds its gate.
func (r *pauseRunner) rollback(ctx context.Context, op *pb.Operation) (*pb.Operation, error) {
	var failed []string
	for _, t := range op.GetTargets() {
		if o := t.GetPauseOutcome(); o != pb.NodeOutcome_NODE_OUTCOME_PAUSED && o != pb.NodeOutcome_NODE_OUTCOME_UNSPECIFIED {
			failed = append(failed, fmt.Sprintf("%s: %s (%s)", t.GetNode(), enumname.Of(o), t.GetPauseMessage()))
		}
	}
	reason := op.GetReason()
	if len(failed) > 0 {
		if reason != "" {
			reason += ": "
		}
		reason += "not every target paused: " + strings.Join(failed, "; ")
	}
	return r.endEarly(ctx, op, pb.OperationState_OPERATION_STATE_ABORTED, reason, mayBePaused)
}

// mayBePaused selects the targets this op may have paused: all but those
// whose gate an earlier pause holds (TIMED_OUT_STILL_PAUSED).
func mayBePaused(t *pb.TargetRecord) bool {
	return t.GetPauseOutcome() != pb.NodeOutcome_NODE_OUTCOME_STILL_PAUSED
}

// fanOut runs f for every target in parallel and waits. Each f owns its
// target record.
func (r *pauseRunner) fanOut(op *pb.Operation, f func(t *pb.TargetRecord)) {
	var wg sync.WaitGroup
	for _, t := range op.GetTargets() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(t)
		}()
	}
	wg.Wait()
}

// rpcOutcome classifies a failed agent call: no answer is unreachable,
// an answer that refused is failed.
func rpcOutcome(err error) pb.NodeOutcome {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
		return pb.NodeOutcome_NODE_OUTCOME_UNREACHABLE
	}
	return pb.NodeOutcome_NODE_OUTCOME_FAILED
}
