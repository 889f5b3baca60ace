package coordinator

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// interval is a span of true time during which a node was paused and
// drained; end is zero while it lasts.
type interval struct{ start, end time.Time }

// fakeAgent models one agent and its node (agent/pause.go): a gate, a lease
// that expires on the harness clock (the dead-man switch unpauses the
// node), epoch fencing, idempotent per-op results, a node that comes back
// unpaused after a restart, and the agent's interrupted report. The true
// history of the gate is the oracle.
type fakeAgent struct {
	h    *faultHarness
	idx  int
	name string
	rng  *rand.Rand // drains
	lrng *rand.Rand // network latency

	mu sync.Mutex
	// Clock: true time = local + thetaTrue; the agent believes thetaEst ± eps.
	thetaTrue, thetaEst, eps time.Duration
	// Node.
	paused    bool
	intervals []interval
	restartAt []time.Time // pending time-triggered restarts
	// Agent.
	maxEpoch    uint64
	lease       *fakeLease
	ended       map[string]*pb.UnpauseResponse
	unseen      map[string]bool      // ended ops whose Pause never came
	interrupted map[string]time.Time // op -> true time the agent saw its node come back unpaused
	outage      int                  // calls left to fail as unreachable
	badClock    map[string]pb.ClockStatus
	drainFails  bool // the next drain times out
	served      int  // calls that reached the agent
	cutOffUntil time.Time
	// v1 server: no CheckPaused; a restart leaves it unreachable for down.
	v1        bool
	down      time.Duration
	downUntil time.Time
	// hooks are the backup steps this agent ran, by op/step id.
	hooks map[string]*fakeHookRun
}

type fakeLease struct {
	op       string
	epoch    uint64
	deadline time.Time
	held     bool
	ack      *pb.PauseResponse
}

var _ pb.AgentServiceClient = (*fakeAgent)(nil)

// sync applies, in time order up to now, the restarts and the lease expiry
// that happened since the agent was last looked at.
func (a *fakeAgent) sync(now time.Time) {
	for {
		next, kind := time.Time{}, ""
		for _, r := range a.restartAt {
			if !r.After(now) && (kind == "" || r.Before(next)) {
				next, kind = r, "restart"
			}
		}
		if l := a.lease; l != nil && !l.deadline.After(now) && (kind == "" || l.deadline.Before(next)) {
			next, kind = l.deadline, "expire"
		}
		switch kind {
		case "":
			return
		case "restart":
			for i, r := range a.restartAt {
				if r.Equal(next) {
					a.restartAt = append(a.restartAt[:i], a.restartAt[i+1:]...)
					break
				}
			}
			a.restart(next)
		case "expire":
			l := a.lease
			a.gate(false, next)
			a.ended[l.op] = &pb.UnpauseResponse{
				Node: a.name, Outcome: pb.NodeOutcome_NODE_OUTCOME_UNPAUSED, SentAt: a.stampAt(next, ""), LeaseExpired: true,
				Message: fmt.Sprintf("lease of op %s ran out; agent %s unpaused its node", l.op, a.name),
			}
			a.lease = nil
		}
	}
}

// restart: the node comes back unpaused; an agent holding a lease notices.
func (a *fakeAgent) restart(at time.Time) {
	a.gate(false, at)
	seen := at
	if a.v1 {
		// No CheckPaused: the agent notices only if one of its polls (every
		// second) falls while the node is down.
		a.downUntil = at.Add(a.down)
		phase := a.h.t0.Add(time.Duration(a.idx) * 137 * time.Millisecond)
		polls := (at.Sub(phase) + time.Second - 1) / time.Second
		if seen = phase.Add(polls * time.Second); !seen.Before(a.downUntil) {
			return
		}
	}
	if a.lease != nil {
		if _, ok := a.interrupted[a.lease.op]; !ok {
			a.interrupted[a.lease.op] = seen
		}
	}
}

func (a *fakeAgent) gate(paused bool, at time.Time) {
	switch {
	case paused && !a.paused:
		a.intervals = append(a.intervals, interval{start: at})
	case !paused && a.paused:
		a.intervals[len(a.intervals)-1].end = at
	}
	a.paused = paused
}

// stampAt is the agent's reading of true time at, under its estimate (or a
// failed one when the schedule injects a clock failure for this reading).
func (a *fakeAgent) stampAt(at time.Time, reading string) *pb.StampedTime {
	est := &pb.ClockEstimate{OffsetNs: int64(a.thetaEst), ErrorBoundNs: int64(a.eps), BaseErrorBoundNs: int64(a.eps),
		Status: pb.ClockStatus_CLOCK_STATUS_SYNCHRONIZED}
	if st, ok := a.badClock[reading]; ok && reading != "" {
		delete(a.badClock, reading)
		// The estimate is no longer sound: the true offset lies far outside
		// the bound, in the direction that widens the window.
		off := 5 * time.Second
		if reading == "unpause" {
			off = -off
		}
		est.Status = st
		est.OffsetNs = int64(a.thetaTrue - off)
		est.Reason = "injected clock failure"
	}
	return &pb.StampedTime{LocalTime: timestamppb.New(at.Add(-a.thetaTrue)), Estimate: est}
}

// fence refuses a request from a deposed leader and remembers any higher
// epoch (agent/core.go fenceLocked).
func (a *fakeAgent) fence(op string, epoch uint64) error {
	if epoch < a.maxEpoch {
		return status.Errorf(codes.FailedPrecondition, "agent %s: op %s carries epoch %d, lower than the highest epoch seen %d", a.name, op, epoch, a.maxEpoch)
	}
	a.maxEpoch = epoch
	return nil
}

// noSuchOp remembers an op asked about before its Pause came, so that
// Pause, arriving late, is refused (agent/core.go noSuchOpLocked).
func (a *fakeAgent) noSuchOp(verb, op string) error {
	if _, ok := a.ended[op]; !ok {
		a.ended[op] = &pb.UnpauseResponse{Node: a.name, Outcome: pb.NodeOutcome_NODE_OUTCOME_UNSPECIFIED,
			Message: fmt.Sprintf("op %s was unpaused or renewed before its Pause reached agent %s", op, a.name)}
		a.unseen[op] = true
	}
	return status.Errorf(codes.NotFound, "agent %s holds no lease of op %s (asked to %s it)", a.name, op, verb)
}

// trueTime maps a reading of this agent back to true time.
func (a *fakeAgent) trueTime(st *pb.StampedTime) time.Time {
	return st.GetLocalTime().AsTime().Add(a.thetaTrue)
}

// call runs one agent RPC under the schedule's faults at this site: the
// request travels, the agent serves it, the reply travels.
func (a *fakeAgent) call(ctx context.Context, method string, effect func(now time.Time) (proto.Message, error)) (proto.Message, error) {
	if err := a.transit(ctx); err != nil {
		return nil, err
	}
	resp, err := a.serve(ctx, method, effect)
	if err == nil {
		if terr := a.transit(ctx); terr != nil {
			return nil, terr // the reply is lost with the caller
		}
	}
	return resp, err
}

// transit waits out one network leg when the schedule has latency: mostly
// a millisecond or two, sometimes tens, rarely hundreds.
func (a *fakeAgent) transit(ctx context.Context) error {
	if !a.h.sched.latency {
		return nil
	}
	a.mu.Lock()
	var d time.Duration
	switch p := a.lrng.IntN(100); {
	case p < 70:
		d = time.Duration(a.lrng.Int64N(int64(2 * time.Millisecond)))
	case p < 95:
		d = time.Duration(a.lrng.Int64N(int64(50 * time.Millisecond)))
	default:
		// Up to a quarter of what the lease leaves after the longest
		// drain: slower legs can outrun a lease armed on arrival before
		// its first renewal lands, whatever the runner does (a config
		// with max_pause_wait close to the lease invites that).
		margin := (a.h.sched.leaseMs - a.h.sched.maxWaitMs) * int64(time.Millisecond)
		d = time.Duration(a.lrng.Int64N(margin / 4))
	}
	a.mu.Unlock()
	if d <= 0 {
		return nil
	}
	t := a.h.clk.agentTimer(d)
	select {
	case <-t.Chan():
		return nil
	case <-ctx.Done():
		t.Stop()
		return status.Error(codes.Canceled, ctx.Err().Error())
	}
}

func (a *fakeAgent) serve(ctx context.Context, method string, effect func(now time.Time) (proto.Message, error)) (proto.Message, error) {
	n := a.h.count(a.idx, method)
	if ctx.Err() != nil {
		return nil, status.Error(codes.Canceled, ctx.Err().Error())
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.h.clk.Now()
	a.sync(now)
	faults := a.h.sched.at(a.idx, method, n)
	for _, f := range faults {
		if f.after {
			continue
		}
		if err := a.inject(f, method, now); err != nil {
			return nil, err
		}
	}
	a.sync(now)
	if a.outage > 0 {
		a.outage--
		return nil, status.Errorf(codes.Unavailable, "agent %s unreachable", a.name)
	}
	if now.Before(a.cutOffUntil) {
		return nil, status.Errorf(codes.Unavailable, "agent %s unreachable (partitioned)", a.name)
	}
	a.served++
	resp, err := effect(now)
	for _, f := range faults {
		if !f.after {
			continue
		}
		if ierr := a.inject(f, method, now); ierr != nil {
			return nil, ierr
		}
	}
	a.sync(now)
	return resp, err
}

// inject applies fault f at this call; an error is what the runner sees
// instead of the reply.
func (a *fakeAgent) inject(f fault, method string, now time.Time) error {
	switch f.kind {
	case kindLeaderLoss:
		a.h.loseLeader()
		if f.variant == 1 && method == "pause" {
			return errDelayed
		}
		return status.Errorf(codes.Canceled, "leader lost (injected at %s %s)", a.name, method)
	case kindAgentError:
		switch f.variant {
		case 0:
			return status.Errorf(codes.Unavailable, "agent %s unreachable (injected)", a.name)
		case 1:
			return status.Errorf(codes.DeadlineExceeded, "agent %s timed out (injected)", a.name)
		case 2:
			a.outage = f.times
			return status.Errorf(codes.Unavailable, "agent %s unreachable (injected outage)", a.name)
		case 3:
			return status.Errorf(codes.Internal, "agent %s: internal error (injected)", a.name)
		case 4:
			a.drainFails = true
		case 6:
			// Held in the network: it lands after the op ended.
			return errDelayed
		case 5:
			a.cutOffUntil = now.Add(f.delay)
			return status.Errorf(codes.Unavailable, "agent %s unreachable (injected partition for %v)", a.name, f.delay)
		}
	case kindRestart, kindRestartV1:
		if f.kind == kindRestartV1 {
			a.v1, a.down = true, f.down
		}
		if f.delay == 0 {
			a.restart(now)
		} else {
			a.restartAt = append(a.restartAt, now.Add(f.delay))
		}
		a.h.noteGossip(a.idx, f.gossip)
	case kindClock:
		a.badClock[f.reading] = f.status
	case kindForce:
		a.h.force(map[string]pb.OperationState{
			"pause": pb.OperationState_OPERATION_STATE_PAUSING, "renew": pb.OperationState_OPERATION_STATE_HOLDING,
			"unpause": pb.OperationState_OPERATION_STATE_UNPAUSING,
		}[method], f.variant == 0)
	}
	return nil
}

// errDelayed: the request is held in the network and lands late.
var errDelayed = errors.New("delayed")

func (a *fakeAgent) Pause(ctx context.Context, req *pb.PauseRequest, _ ...grpc.CallOption) (*pb.PauseResponse, error) {
	// The lease is armed when the Pause arrives; the node acks once it has
	// drained.
	arrived := a.h.clk.Now()
	a.mu.Lock()
	drain := time.Duration(0)
	if a.h.sched.maxDrain > 0 {
		drain = time.Duration(a.rng.Int64N(int64(a.h.sched.maxDrain)))
	}
	a.mu.Unlock()
	if drain > 0 {
		t := a.h.clk.agentTimer(drain)
		select {
		case <-t.Chan():
		case <-ctx.Done():
			t.Stop()
			return nil, status.Error(codes.Canceled, ctx.Err().Error())
		}
	}
	resp, err := a.call(ctx, "pause", func(now time.Time) (proto.Message, error) { return a.pause(req, arrived, now) })
	if errors.Is(err, errDelayed) {
		a.h.delay(a, proto.Clone(req).(*pb.PauseRequest))
		return nil, status.Error(codes.DeadlineExceeded, "no answer: the Pause is delayed in the network")
	}
	if err != nil {
		return nil, err
	}
	return resp.(*pb.PauseResponse), nil
}

func (a *fakeAgent) pause(req *pb.PauseRequest, arrived, now time.Time) (*pb.PauseResponse, error) {
	op := req.GetOpId()
	if err := a.fence(op, req.GetEpoch()); err != nil {
		return nil, err
	}
	if res, ok := a.ended[op]; ok && (a.lease == nil || a.lease.op != op) {
		return nil, status.Errorf(codes.FailedPrecondition, "agent %s: op %s already ended (%s)", a.name, op, res.GetOutcome())
	}
	if l := a.lease; l != nil {
		if l.op != op {
			return nil, status.Errorf(codes.Aborted, "agent %s is held by op %s", a.name, l.op)
		}
		if l.held {
			r := proto.Clone(l.ack).(*pb.PauseResponse)
			r.LeaseRemainingMs = l.deadline.Sub(now).Milliseconds()
			return r, nil
		}
	}
	lease := time.Duration(req.GetLeaseMs()) * time.Millisecond
	a.lease = &fakeLease{op: op, epoch: req.GetEpoch(), deadline: arrived.Add(lease)}
	if a.drainFails {
		a.drainFails = false
		res := &pb.UnpauseResponse{Node: a.name, Outcome: pb.NodeOutcome_NODE_OUTCOME_DRAIN_TIMED_OUT, Message: "nothing to unpause: drain timed out"}
		a.ended[op] = res
		a.lease = nil
		return &pb.PauseResponse{Node: a.name, Outcome: pb.NodeOutcome_NODE_OUTCOME_DRAIN_TIMED_OUT,
			Message: fmt.Sprintf("node of agent %s did not pause for op %s: drain timed out; gate reopened", a.name, op)}, nil
	}
	a.gate(true, now)
	ack := &pb.PauseResponse{Node: a.name, Outcome: pb.NodeOutcome_NODE_OUTCOME_PAUSED, Message: "paused and drained",
		AckedAt: a.stampAt(now, "ack"), LeaseRemainingMs: a.lease.deadline.Sub(now).Milliseconds()}
	a.lease.held, a.lease.ack = true, ack
	return proto.Clone(ack).(*pb.PauseResponse), nil
}

func (a *fakeAgent) RenewLease(ctx context.Context, req *pb.RenewLeaseRequest, _ ...grpc.CallOption) (*pb.RenewLeaseResponse, error) {
	resp, err := a.call(ctx, "renew", func(now time.Time) (proto.Message, error) {
		op := req.GetOpId()
		if err := a.fence(op, req.GetEpoch()); err != nil {
			return nil, err
		}
		l := a.lease
		if l == nil || l.op != op {
			if res, ok := a.ended[op]; ok && !a.unseen[op] {
				if res.GetLeaseExpired() {
					return nil, status.Errorf(codes.FailedPrecondition, "lease expired: agent %s: lease of op %s ran out and the agent unpaused its node", a.name, op)
				}
				return nil, status.Errorf(codes.FailedPrecondition, "agent %s: op %s already ended", a.name, op)
			}
			return nil, a.noSuchOp("renew", op)
		}
		l.epoch = req.GetEpoch()
		l.deadline = now.Add(time.Duration(req.GetLeaseMs()) * time.Millisecond)
		return &pb.RenewLeaseResponse{LeaseRemainingMs: req.GetLeaseMs()}, nil
	})
	if err != nil {
		return nil, err
	}
	return resp.(*pb.RenewLeaseResponse), nil
}

func (a *fakeAgent) Unpause(ctx context.Context, req *pb.UnpauseRequest, _ ...grpc.CallOption) (*pb.UnpauseResponse, error) {
	resp, err := a.call(ctx, "unpause", func(now time.Time) (proto.Message, error) {
		op := req.GetOpId()
		if err := a.fence(op, req.GetEpoch()); err != nil {
			return nil, err
		}
		l := a.lease
		if l == nil || l.op != op {
			if res, ok := a.ended[op]; ok && !a.unseen[op] {
				return proto.Clone(res), nil
			}
			return nil, a.noSuchOp("unpause", op)
		}
		// Stamp, then confirm the node is still paused, then unpause.
		sent := a.stampAt(now, "unpause")
		res := &pb.UnpauseResponse{Node: a.name, Outcome: pb.NodeOutcome_NODE_OUTCOME_UNPAUSED, SentAt: sent, Message: "unpaused"}
		// A v2 node answers CheckPaused; a v1 node only tells by being
		// unreachable.
		seen, ok := a.interrupted[op]
		if ok && !now.Before(seen) || !a.v1 && !a.paused || a.v1 && now.Before(a.downUntil) {
			res.Interrupted = true
			res.Message = fmt.Sprintf("unpaused; but node %s was seen unpaused during op %s (it restarted): the window is invalid", a.name, op)
		}
		a.gate(false, now)
		a.ended[op] = res
		a.lease = nil
		return proto.Clone(res), nil
	})
	if err != nil {
		return nil, err
	}
	return resp.(*pb.UnpauseResponse), nil
}

func (a *fakeAgent) Status(context.Context, *pb.StatusRequest, ...grpc.CallOption) (*pb.StatusResponse, error) {
	return nil, status.Error(codes.Unimplemented, "the runner does not ask for status")
}

func (a *fakeAgent) Keyring(context.Context, *pb.AgentServiceKeyringRequest, ...grpc.CallOption) (*pb.AgentServiceKeyringResponse, error) {
	return nil, status.Error(codes.Unimplemented, "fake agent has no keyring")
}

// deliverLate delivers a delayed Pause of a deposed leader.
func (a *fakeAgent) deliverLate(req *pb.PauseRequest) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.h.clk.Now()
	a.sync(now)
	_, _ = a.pause(req, now, now)
}

// pausedWithin reports whether the node was paused throughout [from, to]
// in true time.
func (a *fakeAgent) pausedWithin(from, to time.Time) bool {
	for _, iv := range a.intervals {
		if !iv.start.After(from) && (iv.end.IsZero() || !iv.end.Before(to)) {
			return true
		}
	}
	return false
}

func (a *fakeAgent) history() string {
	var b strings.Builder
	for _, iv := range a.intervals {
		end := "now"
		if !iv.end.IsZero() {
			end = iv.end.Format("15:04:05.000000")
		}
		fmt.Fprintf(&b, "[%s, %s] ", iv.start.Format("15:04:05.000000"), end)
	}
	return strings.TrimSpace(b.String())
}

// fakeDialer hands the runner the fake agents by address.
type fakeDialer struct{ h *faultHarness }

func (d fakeDialer) agent(addr string) (pb.AgentServiceClient, error) {
	for _, a := range d.h.agents {
		if "fake://"+a.name == addr {
			return a, nil
		}
	}
	return nil, fmt.Errorf("no agent at %q", addr)
}
