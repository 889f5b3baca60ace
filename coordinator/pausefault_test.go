package coordinator

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// Deterministic fault exploration of the pause runner (issue 10, "Prove
// it"). Every schedule drives pauseRunner.run with fake agents and nodes,
// an in-memory op log and a stepped clock, injects faults at steps of the
// protocol, plays the leader loop (a deposed runner is replaced by one with
// a higher epoch resuming the last persisted record), then checks the
// promise against the fake nodes' true history.
//
//	go test ./coordinator -run TestPauseRunnerFaults -race                     # the default sweep
//	go test ./coordinator -run TestPauseRunnerFaults -faults.n=100000          # a longer one
//	go test ./coordinator -run TestPauseRunnerFaults -faults.seed=N -faults.v  # replay one seed with logs
//	go test ./coordinator -run TestPauseRunnerFaults -faults.awaiting          # include what awaits a fix
var (
	faultSeed     = flag.Uint64("faults.seed", 0, "replay this one fault schedule of the pause runner")
	faultFirst    = flag.Uint64("faults.first", 1, "first seed of the sweep")
	faultN        = flag.Int("faults.n", 3000, "fault schedules in the sweep")
	faultVerbose  = flag.Bool("faults.v", false, "log the runners of a replayed schedule")
	faultKinds    = flag.String("faults.kinds", "", "comma-separated fault kinds to inject (default: every enabled kind)")
	faultAwaiting = flag.Bool("faults.awaiting", false, "also inject the fault kinds and check the invariants whose fixes are not on main yet")
)

// awaitingFix lists the fault kinds and invariant checks that still fail on
// main, with the issue item whose fix they wait for. Enable one (delete its
// line) when the fix lands; -faults.awaiting runs them all.
var awaitingFix = map[string]string{
	kindRestartV1.String(): "no issue item yet: a v1 server cannot report its gate, so a restart shorter than the agent's 1 s poll goes unseen and a COMPLETED window can be unsound",
	// Every other fault kind and check is enabled: issue 10 items 3, 6, 7 and 9
	// and issue 11 item 1 landed. Add a line here, naming the issue item,
	// to land a new kind or check ahead of its fix.
}

// Invariant checks that can be awaiting a fix.
const (
	checkIntendedEnd        = "check:intended-end-state"
	checkRollbackAborted    = "check:rolled-back-is-aborted"
	checkHoldDeadline       = "check:hold-ends-at-its-deadline"
	checkUnpauseRetried     = "check:unpause-retried"
	checkFaultFreeCompletes = "check:fault-free-run-completes"
)

func enabled(name string) bool {
	_, waiting := awaitingFix[name]
	return !waiting || *faultAwaiting
}

func TestPauseRunnerFaults(t *testing.T) {
	var kinds []faultKind
	for k := range numKinds {
		if enabled(k.String()) && (*faultKinds == "" || strings.Contains(","+*faultKinds+",", ","+k.String()+",")) {
			kinds = append(kinds, k)
		}
	}
	seeds := []uint64{*faultSeed}
	if *faultSeed == 0 {
		seeds = seeds[:0]
		for i := range *faultN {
			seeds = append(seeds, *faultFirst+uint64(i))
		}
	}
	runs, fails := map[faultKind]int{}, map[faultKind]int{}
	classes := map[string]int{}
	var failed []uint64
	start := time.Now()
	for _, seed := range seeds {
		s := newSchedule(seed, kinds)
		var v []string
		synctest.Test(t, func(t *testing.T) {
			log := zap.NewNop()
			if *faultVerbose {
				log = zaptest.NewLogger(t)
			}
			v = runFaultSchedule(s, log)
		})
		for k := range s.kinds() {
			runs[k]++
			if len(v) > 0 {
				fails[k]++
			}
		}
		if len(v) == 0 {
			continue
		}
		failed = append(failed, seed)
		for _, x := range v {
			classes[violationClass(x)]++
		}
		if len(failed) <= 10 {
			t.Errorf("seed %d: %s\n  schedule: %s\n  replay: go test ./coordinator -run 'TestPauseRunnerFaults$' -faults.seed=%d -faults.v",
				seed, strings.Join(v, "\n    "), s, seed)
		}
	}
	var sum []string
	for k := range numKinds {
		sum = append(sum, fmt.Sprintf("%s %d/%d", k, fails[k], runs[k]))
	}
	t.Logf("%d schedules in %v; failing/run by fault kind: %s", len(seeds), time.Since(start).Round(time.Millisecond), strings.Join(sum, ", "))
	if len(failed) > 0 {
		var cs []string
		for c, n := range classes {
			cs = append(cs, fmt.Sprintf("%5d  %s", n, c))
		}
		sort.Sort(sort.Reverse(sort.StringSlice(cs)))
		t.Logf("broken invariants by kind:\n%s", strings.Join(cs, "\n"))
		sort.Slice(failed, func(i, j int) bool { return failed[i] < failed[j] })
		t.Errorf("%d of %d schedules broke an invariant; seeds: %v", len(failed), len(seeds), failed[:min(len(failed), 50)])
	}
}

// violationClass strips node names, figures and times from a violation so
// the sweep can count them by kind.
func violationClass(v string) string {
	v = regexp.MustCompile(`node-\d+|op-fault-\d+|[\d:.]+(ms|s|h)?`).ReplaceAllString(v, "_")
	if len(v) > 110 {
		v = v[:110]
	}
	return v
}

// faultHarness is one schedule's world.
type faultHarness struct {
	sched  *schedule
	t0     time.Time
	clk    *stepClock
	agents []*fakeAgent
	cfg    *pb.RuntimeConfig
	log    *zap.Logger

	mu          sync.Mutex
	calls       map[string]int
	persists    int
	persistFail int // attempts left to fail
	lost        bool
	gossip      map[int]time.Duration
	records     []committed
	late        []latePause
	starts      []time.Time // when each runner started
	runner      *pauseRunner
	// forced: where the runner was when an operator force-unpaused the
	// op, and the number of runners started by then.
	forced        pb.OperationState
	forcedAbort   bool
	forcedRunners int
	// forceRecordable: the runner that received the force committed a
	// record after it, so a takeover must honour it.
	forceRecordable bool
	finishAt        time.Time // first attempt to record UNPAUSING after a full hold
}

type latePause struct {
	a   *fakeAgent
	req *pb.PauseRequest
	// served is how many calls had reached the agent when the Pause was
	// delayed: more by the end means a later runner reached the agent and
	// could fence the Pause.
	served int
}

func (h *faultHarness) delay(a *fakeAgent, req *pb.PauseRequest) {
	h.mu.Lock()
	defer h.mu.Unlock()
	a.mu.Lock()
	served := a.served
	a.mu.Unlock()
	h.late = append(h.late, latePause{a, req, served})
}

type committed struct {
	op *pb.Operation
	at time.Time
}

func (h *faultHarness) count(node int, method string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	k := fmt.Sprintf("%d/%s", node, method)
	n := h.calls[k]
	h.calls[k]++
	return n
}

func (h *faultHarness) loseLeader() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lost = true
}

func (h *faultHarness) noteGossip(node int, d time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.gossip[node] = d
}

func (h *faultHarness) last() *pb.Operation {
	h.mu.Lock()
	defer h.mu.Unlock()
	return proto.Clone(h.records[len(h.records)-1].op).(*pb.Operation)
}

// lateTo: a Pause to a was delayed.
func (h *faultHarness) lateTo(a *fakeAgent) bool {
	for _, l := range h.late {
		if l.a == a {
			return true
		}
	}
	return false
}

// force is an operator's ForceUnpause reaching the runner that drives the
// op (the endpoint calls forceUnpause on it).
// at is where the runner is: the state it is recording or working in.
func (h *faultHarness) force(at pb.OperationState, abort bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.forceLocked(at, abort)
}

// untilUnpausedMaxLeases: a schedule's op held until unpaused holds at
// most this many leases.
const untilUnpausedMaxLeases = 3

// forceLocked: abort (unpause --abort) or end the hold now (unpause).
func (h *faultHarness) forceLocked(at pb.OperationState, abort bool) {
	if h.forced != pb.OperationState_OPERATION_STATE_UNSPECIFIED {
		return
	}
	h.forced, h.forcedAbort = at, abort
	h.forcedRunners = len(h.starts)
	if abort {
		h.runner.forceUnpause("by operator (injected)")
	} else {
		h.runner.endHoldNow("by operator (injected)")
	}
}

// reachedAfterLate: a runner reached a after a Pause to it was delayed.
func (h *faultHarness) reachedAfterLate(a *fakeAgent) bool {
	for _, l := range h.late {
		if l.a == a && a.served > l.served {
			return true
		}
	}
	return false
}

// faultOpLog is the in-memory Raft log: a deposed leader records nothing,
// and persists fail where the schedule says.
type faultOpLog struct{ h *faultHarness }

var errInjectedPersist = errors.New("recording the operation failed (injected: no quorum)")

func (l faultOpLog) updateOperation(ctx context.Context, op *pb.Operation) error {
	h := l.h
	h.mu.Lock()
	defer h.mu.Unlock()
	n := h.persists
	h.persists++
	if op.GetState() == pb.OperationState_OPERATION_STATE_UNPAUSING && op.GetEndState() == pb.OperationState_OPERATION_STATE_UNSPECIFIED && h.finishAt.IsZero() {
		h.finishAt = h.clk.Now()
	}
	if ctx.Err() != nil || h.lost {
		return fmt.Errorf("not the leader: %w", context.Canceled)
	}
	// A force the runner had received before this write could be in it.
	forceKnown := h.forced != pb.OperationState_OPERATION_STATE_UNSPECIFIED && len(h.starts) == h.forcedRunners
	commit := func() {
		h.records = append(h.records, committed{op: proto.Clone(op).(*pb.Operation), at: h.clk.Now()})
		h.forceRecordable = h.forceRecordable || forceKnown
	}
	for _, f := range h.sched.atPersist(n) {
		switch f.kind {
		case kindForce:
			h.forceLocked(op.GetState(), f.variant == 0)
		case kindLeaderLoss:
			if f.after {
				commit()
			}
			h.lost = true
			return errors.New("leadership lost while committing (injected)")
		case kindPersistFail:
			h.persistFail = f.times
			if f.variant == 1 {
				commit()
				h.persistFail--
				return errInjectedPersist
			}
		}
	}
	if h.persistFail > 0 {
		h.persistFail--
		return errInjectedPersist
	}
	commit()
	return nil
}

// watch is the hold watch fed by the fake nodes: a restart is heard of
// after its gossip delay.
func (h *faultHarness) watch(op *pb.Operation) string {
	now := h.clk.Now()
	var why []string
	for _, a := range h.agents {
		a.mu.Lock()
		a.sync(now)
		at, ok := a.interrupted[op.GetOpId()]
		a.mu.Unlock()
		h.mu.Lock()
		g := h.gossip[a.idx]
		h.mu.Unlock()
		if ok && !now.Before(at.Add(g)) {
			why = append(why, fmt.Sprintf("%s: node came back unpaused during the hold (it restarted)", a.name))
		}
	}
	return strings.Join(why, "; ")
}

func (h *faultHarness) stamp() *pb.StampedTime {
	return &pb.StampedTime{LocalTime: timestamppb.New(h.clk.Now()), Estimate: &pb.ClockEstimate{
		ErrorBoundNs: int64(time.Millisecond), Status: pb.ClockStatus_CLOCK_STATUS_SYNCHRONIZED}}
}

func newFaultHarness(s *schedule, log *zap.Logger) *faultHarness {
	rng := rand.New(rand.NewPCG(s.seed, 0xc10c))
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	h := &faultHarness{
		sched: s, t0: t0, clk: newStepClock(t0), log: log,
		calls: map[string]int{}, gossip: map[int]time.Duration{},
		cfg: &pb.RuntimeConfig{
			MaxErrorBoundNs: int64(50 * time.Millisecond), MaxDriftNs: int64(100 * time.Millisecond),
			LeaseNs: s.leaseMs * int64(time.Millisecond), MarginNs: int64(7 * time.Millisecond),
			MinWindowNs: int64(time.Millisecond), MaxPauseWaitNs: s.maxWaitMs * int64(time.Millisecond),
		},
	}
	op := &pb.Operation{
		OpId: fmt.Sprintf("op-fault-%d", s.seed), Cluster: "ledger", State: pb.OperationState_OPERATION_STATE_PENDING,
		Epoch: 1, RequestedHoldMs: s.holdMs, LeaseMs: s.leaseMs, RequestedBy: "fault harness", CreatedAt: h.stamp(),
	}
	if s.untilUnpaused {
		op.UntilUnpaused, op.MaxHoldNs = true, untilUnpausedMaxLeases*s.leaseMs*int64(time.Millisecond)
	}
	if s.backup != nil {
		op.Backup = backupOpFor(s)
	}
	for i := range s.nodes {
		eps := time.Duration(500+rng.IntN(4500)) * time.Microsecond
		theta := time.Duration(rng.IntN(100_000)-50_000) * time.Microsecond
		a := &fakeAgent{
			h: h, idx: i, name: fmt.Sprintf("node-%d", i+1),
			thetaTrue: theta, eps: eps, thetaEst: theta + time.Duration(rng.Float64()*1.8-0.9)*eps,
			rng:   rand.New(rand.NewPCG(s.seed, uint64(i))),
			lrng:  rand.New(rand.NewPCG(s.seed, 0x1a7+uint64(i))),
			ended: map[string]*pb.UnpauseResponse{}, unseen: map[string]bool{}, interrupted: map[string]time.Time{}, badClock: map[string]pb.ClockStatus{},
		}
		h.agents = append(h.agents, a)
		op.Targets = append(op.Targets, &pb.TargetRecord{Node: a.name, GrpcAddress: "fake://" + a.name, AgentIncarnation: 1,
			AdmittedClock: &pb.ClockEstimate{OffsetNs: int64(a.thetaEst), ErrorBoundNs: int64(eps), Status: pb.ClockStatus_CLOCK_STATUS_SYNCHRONIZED}})
	}
	h.records = []committed{{op: op, at: t0}}
	return h
}

// drive runs one runner on op until it returns. A leader loss injected
// during a step takes effect once the runner is idle: its ctx is
// cancelled, as the leader loop does on losing leadership.
func (h *faultHarness) drive(epoch uint64, op *pb.Operation) (final *pb.Operation, stuck string, err error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h.clk.reset()
	h.mu.Lock()
	h.starts = append(h.starts, h.clk.Now())
	h.mu.Unlock()
	r := &pauseRunner{
		log: h.log.With(zap.Uint64("epoch", epoch)), ops: faultOpLog{h}, agents: fakeDialer{h}, watch: h.watch,
		cfg: h.cfg, epoch: epoch, clock: h.clk, stamp: h.stamp, force: make(chan struct{}),
	}
	h.mu.Lock()
	h.runner = r
	h.mu.Unlock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		final, err = r.run(ctx, op)
	}()
	for {
		synctest.Wait()
		select {
		case <-done:
			return final, "", err
		default:
		}
		h.mu.Lock()
		lost := h.lost
		h.mu.Unlock()
		switch {
		case lost:
			cancel()
			<-done
			return final, "", err
		case h.clk.Now().Sub(h.t0) > 6*time.Hour:
			stuck = "the runner did not finish within 6 h of fake time"
		case !h.clk.step():
			stuck = "the runner is blocked with no timer armed"
		}
		if stuck != "" {
			cancel()
			<-done
			return final, stuck, err
		}
	}
}

func terminal(s pb.OperationState) bool {
	switch s {
	case pb.OperationState_OPERATION_STATE_COMPLETED, pb.OperationState_OPERATION_STATE_ABORTED, pb.OperationState_OPERATION_STATE_INVALID:
		return true
	}
	return false
}

// runFaultSchedule plays the leader loop over one schedule and returns the
// broken invariants.
func runFaultSchedule(s *schedule, log *zap.Logger) []string {
	return newFaultHarness(s, log).play()
}

// play runs the leader loop to the end and returns the broken invariants.
func (h *faultHarness) play() []string {
	s := h.sched
	var v []string
	epoch := uint64(1)
	for round := 0; ; round++ {
		rec := h.last()
		if terminal(rec.GetState()) {
			break
		}
		if round >= 12 {
			v = append(v, fmt.Sprintf("op still %s after %d runners", rec.GetState(), round))
			break
		}
		final, stuck, err := h.drive(epoch, rec)
		if stuck != "" {
			v = append(v, fmt.Sprintf("op %s: %s", h.last().GetState(), stuck))
			break
		}
		h.mu.Lock()
		lost := h.lost
		h.lost = false
		h.mu.Unlock()
		if lost {
			// A new leader is elected, then resumes the op.
			h.clk.advance(s.gaps[min(int(epoch-1), len(s.gaps)-1)])
			epoch++
			continue
		}
		if err == nil {
			if !terminal(final.GetState()) {
				v = append(v, fmt.Sprintf("run returned without error in state %s", final.GetState()))
			}
			if got := h.last().GetState(); got != final.GetState() {
				v = append(v, fmt.Sprintf("run returned %s but the log holds %s", final.GetState(), got))
			}
			break
		}
		// The runner stopped on an error while its leader is still leader:
		// the leader loop re-drives the op as recorded, in the same term,
		// a second later (pause_endpoint.go, issue 10 item 6).
		h.clk.advance(time.Second)
	}
	// Pauses a deposed leader sent land now, after the op ended.
	for _, l := range h.late {
		l.a.deliverLate(l.req)
	}
	v = append(v, h.check()...)
	if h.sched.backup != nil {
		v = append(v, h.checkBackup()...)
	}
	return v
}

// check verifies the promise against the fake nodes' true history.
func (h *faultHarness) check() []string {
	var v []string
	last := h.last()
	id := last.GetOpId()
	byName := map[string]*fakeAgent{}
	for _, a := range h.agents {
		byName[a.name] = a
		a.mu.Lock()
		a.sync(h.clk.Now())
		a.mu.Unlock()
	}
	if !terminal(last.GetState()) {
		v = append(v, fmt.Sprintf("op %s left %s although a leader exists", id, last.GetState()))
	}
	if len(h.sched.faults) == 0 && (h.sched.backup == nil || h.sched.backup.failStep == "") && last.GetState() != pb.OperationState_OPERATION_STATE_COMPLETED && enabled(checkFaultFreeCompletes) {
		v = append(v, fmt.Sprintf("no fault injected, but the op ended %s: %s", last.GetState(), last.GetReason()))
	}
	switch last.GetState() {
	case pb.OperationState_OPERATION_STATE_COMPLETED:
		w := last.GetWindow()
		for _, t := range last.GetTargets() {
			a := byName[t.GetNode()]
			for _, st := range []*pb.StampedTime{t.GetAckedAt(), t.GetUnpauseSentAt()} {
				if s := st.GetEstimate().GetStatus(); s != pb.ClockStatus_CLOCK_STATUS_SYNCHRONIZED {
					v = append(v, fmt.Sprintf("COMPLETED with a reading of %s taken under a %s estimate", a.name, s))
				}
			}
			ack, un := a.trueTime(t.GetAckedAt()), a.trueTime(t.GetUnpauseSentAt())
			if !a.pausedWithin(ack, un) {
				v = append(v, fmt.Sprintf("COMPLETED but %s was not paused throughout its ack %s .. unpause stamp %s (true time); paused: %s",
					a.name, ack.Format("15:04:05.000000"), un.Format("15:04:05.000000"), a.history()))
			}
			if !a.pausedWithin(w.GetStart().AsTime(), w.GetEnd().AsTime()) {
				v = append(v, fmt.Sprintf("COMPLETED window [%s, %s] is not inside a paused interval of %s: %s",
					w.GetStart().AsTime().Format("15:04:05.000000"), w.GetEnd().AsTime().Format("15:04:05.000000"), a.name, a.history()))
			}
		}
	case pb.OperationState_OPERATION_STATE_ABORTED, pb.OperationState_OPERATION_STATE_INVALID:
		named := strings.Contains(last.GetReason(), "leader") || strings.Contains(last.GetReason(), "force-unpaused") ||
			strings.Contains(last.GetReason(), "hold ended")
		for _, t := range last.GetTargets() {
			named = named || strings.Contains(last.GetReason(), t.GetNode())
		}
		if !named {
			v = append(v, fmt.Sprintf("%s reason names no node: %q", last.GetState(), last.GetReason()))
		}
	}
	switch h.forced {
	case pb.OperationState_OPERATION_STATE_PENDING, pb.OperationState_OPERATION_STATE_PAUSING, pb.OperationState_OPERATION_STATE_HOLDING:
		// A force that reached a runner deposed before it could record
		// anything is lost with it (the operator is answered with the
		// final state); one it recorded must survive a takeover.
		// Aborted: it must not complete. The hold ended now: it may
		// complete (the window checks above judge it), but it is never
		// aborted for it, and an op held until unpaused is not held on to
		// its maximum.
		recorded := len(h.starts) == h.forcedRunners || h.forceRecordable
		switch {
		case h.forcedAbort && last.GetState() == pb.OperationState_OPERATION_STATE_COMPLETED && recorded:
			v = append(v, fmt.Sprintf("force-unpaused (abort) while %s (%d runner(s) after it), but the op COMPLETED", h.forced, len(h.starts)-h.forcedRunners))
		case !h.forcedAbort && strings.Contains(last.GetReason(), forceAbortedPrefix):
			v = append(v, fmt.Sprintf("the hold was ended now while %s, but the op was aborted: %s", h.forced, last.GetReason()))
		case !h.forcedAbort && recorded && strings.Contains(last.GetReason(), "maximum hold"):
			v = append(v, fmt.Sprintf("the hold was ended now while %s, but the op held on to its maximum hold", h.forced))
		}
	}
	if h.forcedAbort && h.forced != pb.OperationState_OPERATION_STATE_UNSPECIFIED && last.GetState() == pb.OperationState_OPERATION_STATE_COMPLETED &&
		last.GetEndState() == pb.OperationState_OPERATION_STATE_ABORTED {
		v = append(v, "the op was recorded to end ABORTED but COMPLETED")
	}
	var everHolding, endedEarly bool
	for _, c := range h.records {
		if c.op.GetState() == pb.OperationState_OPERATION_STATE_HOLDING && !everHolding {
			everHolding = true
		}
		if c.op.GetState() == pb.OperationState_OPERATION_STATE_UNPAUSING && cutShort(c.op.GetEndState()) {
			endedEarly = true
		}
	}
	if enabled(checkRollbackAborted) && !everHolding && last.GetState() == pb.OperationState_OPERATION_STATE_INVALID {
		v = append(v, fmt.Sprintf("rolled back before any hold but ended INVALID, not ABORTED: %s", last.GetReason()))
	}
	if enabled(checkIntendedEnd) && endedEarly && last.GetState() == pb.OperationState_OPERATION_STATE_COMPLETED {
		v = append(v, "the op was ending without a window (UNPAUSING with a reason) but ended COMPLETED after a failover")
	}
	// With network latency the runner's own calls (the renewals on
	// entering the hold, the watch) may outlast a short hold: checked
	// without it.
	if enabled(checkHoldDeadline) && !h.sched.latency && !h.finishAt.IsZero() && last.GetHoldDeadline() != nil {
		// The unpause starts at the recorded deadline (plus the two
		// coordinator readings' bounds), or at once when a runner took
		// over after it: never a whole hold after a takeover.
		deadline := last.GetHoldDeadline().GetLocalTime().AsTime().Add(3 * time.Millisecond)
		var resumed time.Time
		for _, c := range h.records {
			if c.op.GetState() == pb.OperationState_OPERATION_STATE_HOLDING && !c.at.After(h.finishAt) {
				resumed = c.at // recording HOLDING took longer than the hold
			}
		}
		for _, st := range h.starts {
			if !st.After(h.finishAt) && st.After(resumed) {
				resumed = st
			}
		}
		if h.finishAt.After(deadline) && h.finishAt.After(resumed) {
			v = append(v, fmt.Sprintf("the hold ended at %s, past its recorded deadline %s (the hold or the last runner started %s)",
				h.finishAt.Format("15:04:05.000"), deadline.Format("15:04:05.000"), resumed.Format("15:04:05.000")))
		}
	}
	for _, a := range h.agents {
		a.mu.Lock()
		paused, lease, outage := a.paused, a.lease, a.outage
		if h.clk.Now().Before(a.cutOffUntil) {
			outage++
		}
		a.mu.Unlock()
		switch {
		case paused && lease == nil:
			v = append(v, fmt.Sprintf("%s left paused with no lease: nothing will unpause it", a.name))
		case paused && lease.op == id && h.lateTo(a) && terminal(last.GetState()):
			// A late Pause from a deposed leader paused the node again. An
			// agent no runner reached after the Pause was sent cannot fence
			// it: its lease bounds the damage. One that was reached must
			// refuse it.
			if h.reachedAfterLate(a) {
				v = append(v, fmt.Sprintf("%s paused for a whole lease by a late Pause of op %s (delayed in the network) after the op ended %s, although a runner reached its agent since", a.name, id, last.GetState()))
			}
		case paused && terminal(last.GetState()) && outage == 0 && enabled(checkUnpauseRetried):
			v = append(v, fmt.Sprintf("%s left paused until its lease (op %s ended %s) although its agent answers", a.name, lease.op, last.GetState()))
		}
	}
	return v
}

// An operator's force-unpause that reaches the runner while its nodes
// drain must survive a takeover right after HOLDING is recorded: the new
// leader ends the op ABORTED instead of holding it to completion.
func TestForceUnpauseSurvivesTakeover(t *testing.T) {
	for _, tc := range []struct {
		name   string
		faults []fault
	}{
		{"force before the node's Pause", []fault{
			{kind: kindForce, node: 0, method: "pause"},
			{kind: kindLeaderLoss, node: -1, persist: 1, after: true}, // HOLDING committed, then the leader is lost
		}},
		{"force after the node's Pause", []fault{
			{kind: kindForce, node: 0, method: "pause", after: true},
			{kind: kindLeaderLoss, node: -1, persist: 1, after: true},
		}},
		{"force while recording HOLDING is retried", []fault{
			{kind: kindPersistFail, node: -1, persist: 1, times: 2},
			{kind: kindForce, node: -1, persist: 2, after: true},
			{kind: kindLeaderLoss, node: -1, persist: 3, after: true},
		}},
	} {
		s := &schedule{seed: 1, nodes: 2, leaseMs: 1501, holdMs: 1010, maxWaitMs: 500, gaps: []time.Duration{0}, faults: tc.faults}
		var v []string
		var last *pb.Operation
		synctest.Test(t, func(t *testing.T) {
			h := newFaultHarness(s, zaptest.NewLogger(t))
			v = h.play()
			last = h.last()
		})
		if last.GetState() != pb.OperationState_OPERATION_STATE_ABORTED || !strings.Contains(last.GetReason(), "force-unpaused") {
			t.Errorf("%s, takeover once HOLDING is recorded: op ended %s (%q), want ABORTED by the force", tc.name, last.GetState(), last.GetReason())
		}
		if len(v) > 0 {
			t.Errorf("%s: invariants: %q", tc.name, v)
		}
	}
}

// An operator's end of the hold (not an abort) that reaches the runner
// while its nodes drain survives a takeover the same way: the new leader
// ends the hold at once and the window decides (here the hold ended before
// its minimum: INVALID, saying so). It is never aborted, never held on to
// its maximum, never an unsound COMPLETED.
func TestEndHoldNowSurvivesTakeover(t *testing.T) {
	for _, tc := range []struct {
		name   string
		faults []fault
	}{
		{"end before the node's Pause", []fault{
			{kind: kindForce, node: 0, method: "pause", variant: 1},
			{kind: kindLeaderLoss, node: -1, persist: 1, after: true},
		}},
		{"end while recording HOLDING is retried", []fault{
			{kind: kindPersistFail, node: -1, persist: 1, times: 2},
			{kind: kindForce, node: -1, persist: 2, after: true, variant: 1},
			{kind: kindLeaderLoss, node: -1, persist: 3, after: true},
		}},
	} {
		s := &schedule{seed: 1, nodes: 2, leaseMs: 1501, holdMs: 1010, maxWaitMs: 500, gaps: []time.Duration{0}, faults: tc.faults, untilUnpaused: true}
		var v []string
		var last *pb.Operation
		synctest.Test(t, func(t *testing.T) {
			h := newFaultHarness(s, zaptest.NewLogger(t))
			v = h.play()
			last = h.last()
		})
		if last.GetState() == pb.OperationState_OPERATION_STATE_ABORTED || last.GetEndState() != pb.OperationState_OPERATION_STATE_COMPLETED ||
			!strings.Contains(last.GetReason(), "hold ended") {
			t.Errorf("%s, takeover once HOLDING is recorded: op ended %s (end_state %s, %q), want the hold ended by the operator", tc.name, last.GetState(), last.GetEndState(), last.GetReason())
		}
		if len(v) > 0 {
			t.Errorf("%s: invariants: %q", tc.name, v)
		}
	}
}

// A seed replays exactly: the same schedule gives the same records, the
// same node histories and the same verdict, run after run.
func TestPauseRunnerFaultsReplayExactly(t *testing.T) {
	kinds := []faultKind{}
	for k := range numKinds {
		kinds = append(kinds, k)
	}
	fingerprint := func(seed uint64) string {
		var b strings.Builder
		synctest.Test(t, func(t *testing.T) {
			h := newFaultHarness(newSchedule(seed, kinds), zap.NewNop())
			v := h.play()
			for _, c := range h.records {
				fmt.Fprintf(&b, "%s %s\n", c.at.Format(time.RFC3339Nano), prototext.Format(c.op))
			}
			for _, a := range h.agents {
				fmt.Fprintf(&b, "%s %s\n", a.name, a.history())
			}
			fmt.Fprintf(&b, "%q\n", v)
		})
		return b.String()
	}
	for seed := uint64(1); seed <= 200; seed++ {
		if a, b := fingerprint(seed), fingerprint(seed); a != b {
			t.Fatalf("seed %d does not replay:\n%s\n----\n%s", seed, a, b)
		}
	}
}
