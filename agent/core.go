package agent

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/stillpoint-dev/stillpoint/internal/clock"
	"github.com/stillpoint-dev/stillpoint/internal/scalaradmin"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// coreConfig is the part of Config the lease state machine needs.
type coreConfig struct {
	Node        string
	MaxLease    time.Duration
	CallTimeout time.Duration
	// ExpiryRetry is the wait before the dead-man switch tries again after
	// its Unpause failed.
	ExpiryRetry time.Duration
	// Timers arms the dead-man switch; nil is the real clock. A test passes
	// a clockwork fake that also backs its clockSource, so a lease runs out
	// when the test advances the clock, not after a real wait.
	Timers clockwork.Clock
}

// coreHooks are called (without locks held) when something worth gossiping
// or counting happens. Nil hooks are skipped.
type coreHooks struct {
	changed     func()
	interrupted func(opID string)
}

// core is the agent's state machine: the dead-man lease, fencing epochs,
// idempotent per-op results, and the node's last seen state. Operations
// that touch the node are serialized by sem; mu guards the fields and is
// never held across a node call.
type core struct {
	cfg   coreConfig
	admin adminClient
	clk   clockSource
	store store
	log   *zap.Logger
	hooks coreHooks

	sem   chan struct{}
	rearm chan struct{}

	mu sync.Mutex
	p  persisted
	// onEnded is told of every op that ends here (its during hooks die).
	onEnded func(op string)
	// leaseMono is p.Lease's deadline on the monotonic clock.
	leaseMono time.Time
	// ack is the held op's PauseResponse; ackMono when it was read.
	ack     *pb.PauseResponse
	ackMono time.Time
	// unpausing: an Unpause (by request, expiry or shutdown) is in flight
	// for the lease, so an open gate is expected.
	unpausing bool
	// draining: the node's Pause call is in flight.
	draining bool
	stopping bool
	// dead: Kill was called; nothing more is persisted.
	dead bool
	// retryAt: the next expiry attempt after a failed one.
	retryAt time.Time
	// expiryFailedOp: an expiry Unpause failed for this op (logged once).
	expiryFailedOp string
	// cancelOp: an Unpause for this op came while a node call (its Pause
	// draining) held the node lock; a Pause of it that returns unpauses
	// the node at once.
	cancelOp string
	// interruptedOp is the op during which the node was seen unpaused.
	interruptedOp string
	// gateNoted is when the agent last set the gate itself (an answered
	// Unpause); a CheckPaused that started before it is stale.
	gateNoted time.Time
	// lostDuringOp: a v1 node (no CheckPaused) was unreachable during this op.
	lostDuringOp string
	// serverV1: the node answered CheckPaused with UNIMPLEMENTED.
	serverV1 bool
	node     nodeState
	events   []*pb.AgentEvent
}

func newCore(cfg coreConfig, admin adminClient, clk clockSource, st store, log *zap.Logger, hooks coreHooks) *core {
	if cfg.ExpiryRetry <= 0 {
		cfg.ExpiryRetry = time.Second
	}
	return &core{
		cfg: cfg, admin: admin, clk: clk, store: st, log: log, hooks: hooks,
		sem:   make(chan struct{}, 1),
		rearm: make(chan struct{}, 1),
		p:     persisted{Version: stateVersion},
	}
}

// acquire takes the node-operation lock, or fails when ctx ends first.
func (c *core) acquire(ctx context.Context) error {
	select {
	case c.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("agent %s busy with another node call: %w", c.cfg.Node, ctx.Err())
	}
}

func (c *core) release() { <-c.sem }

func (c *core) changed() {
	if c.hooks.changed != nil {
		c.hooks.changed()
	}
}

// signalRearm tells the lease timer that the deadline moved.
func (c *core) signalRearm() {
	select {
	case c.rearm <- struct{}{}:
	default:
	}
}

// remainingLocked is the lease time left (0 when none or run out).
func (c *core) remainingLocked() time.Duration {
	if c.p.Lease == nil {
		return 0
	}
	d := c.leaseMono.Sub(c.clk.Now())
	if d < 0 {
		return 0
	}
	return d
}

// saveLocked persists p unless the agent was killed.
func (c *core) saveLocked(p persisted) error {
	if c.dead {
		return fmt.Errorf("%w: agent %s was killed", ErrStopping, c.cfg.Node)
	}
	if err := c.store.save(p); err != nil {
		return fmt.Errorf("%w: %w", ErrPersist, err)
	}
	return nil
}

// fenceLocked refuses a request from a deposed leader (an epoch lower
// than the highest seen) and persists a higher epoch before anything else
// happens, so every later request of an older leader is refused.
func (c *core) fenceLocked(op string, epoch uint64) error {
	if epoch < c.p.MaxEpoch {
		return fmt.Errorf("%w: agent %s: op %s carries epoch %d, lower than the highest epoch seen %d (request from a deposed leader?)",
			ErrStaleEpoch, c.cfg.Node, op, epoch, c.p.MaxEpoch)
	}
	if epoch == c.p.MaxEpoch {
		return nil
	}
	next := c.p
	next.MaxEpoch = epoch
	if err := c.saveLocked(next); err != nil {
		return fmt.Errorf("agent %s did not take op %s at epoch %d: %w", c.cfg.Node, op, epoch, err)
	}
	c.p = next
	return nil
}

// fenceHook fences a RunHook like any other request: an epoch lower than
// the highest seen is refused, a higher one is persisted first.
func (c *core) fenceHook(op string, epoch uint64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopping || c.dead {
		return fmt.Errorf("%w: agent %s refuses a hook of op %s", ErrStopping, c.cfg.Node, op)
	}
	return c.fenceLocked(op, epoch)
}

// opEnded reports whether op's hold is over on this agent: unpaused,
// expired, or refused because an unpause or renewal came first.
func (c *core) opEnded(op string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.p.Ended {
		if e.OpID == op {
			return true
		}
	}
	return false
}

// hookStarted reports whether step (op, step) was started before (by an
// earlier run of this agent), and otherwise records it as started,
// durably, before the hook may start.
func (c *core) hookStarted(op, step, hook string) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, h := range c.p.HookSteps {
		if h.OpID == op && h.StepID == step {
			return true, nil
		}
	}
	next := c.p
	next.HookSteps = append(append([]hookStep(nil), c.p.HookSteps...), hookStep{OpID: op, StepID: step, Hook: hook})
	if len(next.HookSteps) > maxHookSteps {
		next.HookSteps = next.HookSteps[len(next.HookSteps)-maxHookSteps:]
	}
	if err := c.saveLocked(next); err != nil {
		return false, fmt.Errorf("agent %s did not start hook %q of op %s step %s: %w", c.cfg.Node, hook, op, step, err)
	}
	c.p = next
	return false, nil
}

// unseenLocked reports whether op was asked about before its Pause came.
func (c *core) unseenLocked(op string) bool {
	for _, e := range c.p.Ended {
		if e.OpID == op {
			return e.Unseen
		}
	}
	return false
}

// endUnseenLocked remembers an op the agent was asked to unpause or renew
// before it ever saw its Pause, so that Pause, arriving late, is refused
// instead of pausing the node for a whole lease.
func (c *core) endUnseenLocked(op string, epoch uint64) error {
	if _, ok := c.findEndedLocked(op); ok {
		return nil
	}
	next := c.p
	next.Ended = appendEnded(c.p.Ended, endedOp{OpID: op, Epoch: epoch, Unseen: true})
	if err := c.saveLocked(next); err != nil {
		return err
	}
	c.p = next
	return nil
}

func appendEnded(ended []endedOp, e endedOp) []endedOp {
	out := append(append([]endedOp(nil), ended...), e)
	if len(out) > maxEnded {
		out = out[len(out)-maxEnded:]
	}
	return out
}

// noSuchOpLocked is the answer to a request for an op the agent does not
// hold; an op never seen is remembered as ended first.
// verb names the request ("unpause"), done what it would have done
// ("unpaused").
func (c *core) noSuchOpLocked(verb, done, op string, epoch uint64) error {
	nothing := "nothing " + done
	if err := c.endUnseenLocked(op, epoch); err != nil {
		return fmt.Errorf("agent %s could not remember op %s as ended: %w", c.cfg.Node, op, err)
	}
	if l := c.p.Lease; l != nil {
		return fmt.Errorf("%w: agent %s holds op %s, not %s (asked to %s it); %s", ErrNoSuchOp, c.cfg.Node, l.OpID, op, verb, nothing)
	}
	return fmt.Errorf("%w: agent %s holds no op (asked to %s %s); %s", ErrNoSuchOp, c.cfg.Node, verb, op, nothing)
}

func (c *core) findEndedLocked(op string) (*pb.UnpauseResponse, bool) {
	for _, e := range c.p.Ended {
		if e.OpID == op {
			if e.Unseen {
				return &pb.UnpauseResponse{Node: c.cfg.Node, Outcome: pb.NodeOutcome_NODE_OUTCOME_UNSPECIFIED,
					Message: fmt.Sprintf("op %s was unpaused or renewed before its Pause reached agent %s", op, c.cfg.Node)}, true
			}
			var r pb.UnpauseResponse
			if err := proto.Unmarshal(e.Unpause, &r); err != nil {
				c.log.Error("cannot decode remembered unpause result", zap.String("op_id", op), zap.Error(err))
				return &pb.UnpauseResponse{Node: c.cfg.Node, Outcome: pb.NodeOutcome_NODE_OUTCOME_UNSPECIFIED, Message: "result lost"}, true
			}
			return &r, true
		}
	}
	return nil, false
}

// endLocked retires the lease with its final result and persists.
func (c *core) endLocked(opID string, epoch uint64, res *pb.UnpauseResponse) error {
	b, err := proto.Marshal(res)
	if err != nil {
		return fmt.Errorf("encode result of op %s: %w", opID, err)
	}
	next := c.p
	next.Ended = appendEnded(c.p.Ended, endedOp{OpID: opID, Epoch: epoch, Unpause: b})
	next.Lease = nil
	c.p = next
	c.ack = nil
	c.unpausing = false
	c.retryAt = time.Time{}
	c.expiryFailedOp = ""
	c.lostDuringOp = ""
	if c.cancelOp == opID {
		c.cancelOp = ""
	}
	c.signalRearm()
	if f := c.onEnded; f != nil {
		go f(opID) // outside c.mu: the hook runner takes its own lock
	}
	return c.saveLocked(next)
}

// setOnEnded sets what is told of every op that ends on this agent.
func (c *core) setOnEnded(f func(op string)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.onEnded = f
}

func validateOpID(node, op string) error {
	if op == "" {
		return fmt.Errorf("%w: agent %s: op_id is required", ErrInvalidRequest, node)
	}
	if len(op) > MaxOpIDLen {
		return fmt.Errorf("%w: agent %s: op_id is %d bytes, at most %d", ErrInvalidRequest, node, len(op), MaxOpIDLen)
	}
	for _, r := range op {
		if r <= ' ' || r == 0x7f {
			return fmt.Errorf("%w: agent %s: op_id %q contains a space or control character", ErrInvalidRequest, node, op)
		}
	}
	return nil
}

func (c *core) validateLease(leaseMS int64) (time.Duration, error) {
	if leaseMS <= 0 {
		return 0, fmt.Errorf("%w: agent %s: lease_ms %d must be positive", ErrInvalidRequest, c.cfg.Node, leaseMS)
	}
	if leaseMS > c.cfg.MaxLease.Milliseconds() {
		return 0, fmt.Errorf("%w: agent %s: lease_ms %d exceeds this agent's max lease %d ms",
			ErrInvalidRequest, c.cfg.Node, leaseMS, c.cfg.MaxLease.Milliseconds())
	}
	return time.Duration(leaseMS) * time.Millisecond, nil
}

// retryRetryable calls f until it succeeds, fails with anything other
// than scalaradmin.ErrRetryable, or ctx ends; backoff doubles to 1 s.
func retryRetryable(ctx context.Context, f func(context.Context) error) error {
	backoff := 20 * time.Millisecond
	for {
		err := f(ctx)
		if err == nil || !errors.Is(err, scalaradmin.ErrRetryable) {
			return err
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (stopped retrying: %w)", err, ctx.Err())
		case <-t.C:
		}
		backoff = min(2*backoff, time.Second)
	}
}

// event records an AgentEvent stamped with the local time and estimate.
func (c *core) eventLocked(kind, op, msg string) {
	ev := &pb.AgentEvent{Kind: kind, OpId: op, Message: msg, At: c.stampNow()}
	c.events = append(c.events, ev)
	if len(c.events) > maxEvents {
		c.events = c.events[len(c.events)-maxEvents:]
	}
}

// stampNow reads the local clock and pairs it with the estimate in force,
// evaluated (jump, staleness, slew rate) at that very reading, its bound
// grown to it.
func (c *core) stampNow() *pb.StampedTime {
	if s, ok := c.clk.(stamper); ok {
		now, e := s.Stamp()
		return e.Stamp(now)
	}
	now := c.clk.Now()
	return c.clk.Current().Stamp(now)
}

// stamper is a clock source that reads the clock and evaluates its
// estimate in one step (clock.Sampler).
type stamper interface {
	Stamp() (time.Time, clock.Estimate)
}
