package coordinator

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jonboulle/clockwork"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stillpoint-dev/stillpoint/coordinator/fsm"
	"github.com/stillpoint-dev/stillpoint/internal/plan"
	"github.com/stillpoint-dev/stillpoint/internal/timefmt"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// Schedules (SPEC "Backups and restores"): the leader fires each plan's
// cron schedule in the schedule's zone. A fired instant is recorded in
// Raft before its op starts, and the op's request id is derived from the
// plan and the instant, so a failover neither skips nor doubles it:
//
//   - record the fire (last_fired = instant, no op yet: pending);
//   - start the backup with request id scheduleRequestID(plan, instant);
//   - record its op id, or why none started (refused admission).
//
// A new leader that finds a pending fire starts the backup again with the
// same request id: it gets the op that was started, or starts it once.
// Instants that passed while no leader could fire them (down, electing,
// or the leader still starting the previous instant's op: one plan's
// start does not overlap the next tick) are never fired one by one: under
// missed_runs run_once (the default) the latest of them runs once on
// recovery; under skip it is recorded without an op unless it is still on
// time. Either way the fire records how many were missed and the first.
// A fire while a plan's cluster is held by another op starts nothing and
// records why.

// schedulePoll bounds the scheduler's sleep: a plan set or changed is
// seen within it.
const schedulePoll = time.Second

// missedRunGrace is how late an instant may fire and still count as on
// time (for missed_runs skip): the smaller of this and half the gap to the
// next instant.
const missedRunGrace = time.Minute

// scheduleRequestID is the request id of the op started for a plan's
// scheduled instant: the same for every leader that starts it.
func scheduleRequestID(plan string, instant time.Time) string {
	return "schedule:" + plan + "@" + instant.UTC().Format(time.RFC3339Nano)
}

// onTime reports whether instant, due now, is late by less than the grace
// (the smaller of missedRunGrace and half the gap to the next instant).
func onTime(instant, next, now time.Time) bool {
	grace := missedRunGrace
	if !next.IsZero() {
		grace = min(grace, next.Sub(instant)/2)
	}
	return now.Sub(instant) < grace
}

// scheduler fires the leader's plan schedules. Its seams are functions so
// the policy can be tested without Raft or agents.
type scheduler struct {
	log   *zap.Logger
	clock clockwork.Clock
	// plans lists the stored plans.
	plans func() []*pb.PlanRecord
	// record applies a RecordScheduleFireCommand through Raft.
	record func(ctx context.Context, cmd *pb.RecordScheduleFireCommand) error
	// start starts a backup of the plan for instant with requestID
	// (idempotent on it) and returns its op id.
	start func(ctx context.Context, plan, requestID string, instant time.Time) (string, error)
	// held says which of the plan's clusters another op holds ("" when
	// none).
	held  func(p *pb.BackupPlan) string
	stamp func() *pb.StampedTime
	// seen is when this scheduler first saw a never-fired plan that has
	// no updated_at.
	seen map[string]time.Time
	// unreadable is the schedule of each plan already logged as
	// unreadable.
	unreadable map[string]string
}

// run fires schedules until ctx ends: at each plan's next instant, and at
// least every schedulePoll.
func (sc *scheduler) run(ctx context.Context) {
	for {
		next := sc.tick(ctx)
		wait := schedulePoll
		if !next.IsZero() {
			wait = min(wait, max(next.Sub(sc.clock.Now()), 0))
		}
		select {
		case <-ctx.Done():
			return
		case <-sc.clock.After(wait):
		}
	}
}

// tick fires every plan that is due and returns the earliest next instant
// (zero when none is known).
func (sc *scheduler) tick(ctx context.Context) time.Time {
	var earliest time.Time
	for _, rec := range sc.plans() {
		if ctx.Err() != nil {
			return earliest
		}
		if rec.GetPlan().GetSchedule() == "" {
			continue
		}
		next, err := sc.tickPlan(ctx, rec)
		if err != nil {
			sc.log.Warn("scheduled backup not fired yet; retrying", zap.String("plan", rec.GetPlan().GetName()), zap.Error(err))
			next = sc.clock.Now().Add(schedulePoll)
		}
		if !next.IsZero() && (earliest.IsZero() || next.Before(earliest)) {
			earliest = next
		}
	}
	return earliest
}

// tickPlan completes a pending fire of rec, then fires its latest due
// instant, if any. It returns the plan's next instant; an error means a
// step must be retried (the fire stays as recorded).
func (sc *scheduler) tickPlan(ctx context.Context, rec *pb.PlanRecord) (time.Time, error) {
	p := rec.GetPlan()
	name := p.GetName()
	sched, loc, err := plan.Schedule(p)
	if err != nil || sched == nil {
		// Validation refuses such a plan; one stored by another server's
		// version is left alone, said once per term and schedule.
		if sc.unreadable == nil {
			sc.unreadable = map[string]string{}
		}
		if sc.unreadable[name] != p.GetSchedule() {
			sc.unreadable[name] = p.GetSchedule()
			sc.log.Error("plan has a schedule this server cannot read; not firing it", zap.String("plan", name), zap.String("schedule", p.GetSchedule()), zap.Error(err))
		}
		return time.Time{}, nil
	}
	anchor, known := plan.ScheduleAnchor(rec)
	if lf := rec.GetLastFired(); lf != nil && rec.GetLastFiredOpId() == "" && rec.GetLastFiredReason() == "" {
		if err := sc.startFired(ctx, p, anchor); err != nil {
			return time.Time{}, err
		}
	}
	if !known {
		// A plan stored without its time: from when this term first saw it.
		if sc.seen == nil {
			sc.seen = map[string]time.Time{}
		}
		if _, ok := sc.seen[name]; !ok {
			sc.seen[name] = sc.clock.Now()
		}
		anchor = sc.seen[name]
	}
	now := sc.clock.Now()
	due := plan.DueAt(sched, loc, anchor, now)
	if due.Count == 0 {
		return due.Next, nil
	}
	cmd := &pb.RecordScheduleFireCommand{Plan: name, Instant: timestamppb.New(due.Latest), At: sc.stamp()}
	if due.Count > 1 {
		cmd.MissedCount, cmd.FirstMissed = due.Count-1, timestamppb.New(due.First)
	}
	log := sc.log.With(zap.String("plan", name), zap.String("instant", timefmt.InZone(due.Latest, loc)), zap.Int64("missed", cmd.GetMissedCount()))
	late := !onTime(due.Latest, due.Next, now)
	switch {
	case late && p.GetMissedRuns() == pb.MissedRunPolicy_MISSED_RUN_POLICY_SKIP:
		cmd.Reason = fmt.Sprintf("skipped: due at %s, %s ago, while no leader could fire it (missed_runs: skip)", timefmt.InZone(due.Latest, loc), timefmt.Duration(now.Sub(due.Latest)))
	default:
		if held := sc.held(p); held != "" {
			cmd.Reason = held + "; nothing started for this instant"
		}
	}
	if err := sc.record(ctx, cmd); err != nil {
		if errors.Is(err, fsm.ErrAlreadyFired) {
			return due.Next, nil
		}
		return time.Time{}, fmt.Errorf("record fire of %s: %w", timefmt.UTC(due.Latest), err)
	}
	if cmd.GetReason() != "" {
		log.Warn("scheduled backup fired; no op started", zap.String("reason", cmd.GetReason()))
		return due.Next, nil
	}
	if late || due.Count > 1 {
		log.Info("scheduled instants passed while no leader could fire them; running the latest once (missed_runs: run_once)", zap.Time("first_missed", due.First))
	}
	if err := sc.startFired(ctx, p, due.Latest); err != nil {
		return time.Time{}, err
	}
	return due.Next, nil
}

// startFired starts the backup of a recorded fire and records its op id,
// or why it was refused. A transient failure (no leadership, Raft not
// answering) leaves the fire pending and is returned.
func (sc *scheduler) startFired(ctx context.Context, p *pb.BackupPlan, instant time.Time) error {
	name := p.GetName()
	log := sc.log.With(zap.String("plan", name), zap.String("instant", timefmt.UTC(instant)))
	opID, err := sc.start(ctx, name, scheduleRequestID(name, instant), instant)
	cmd := &pb.RecordScheduleFireCommand{Plan: name, Instant: timestamppb.New(instant), OpId: opID, At: sc.stamp()}
	if err != nil {
		if transientStart(ctx, err) {
			return fmt.Errorf("start backup of %s: %w", timefmt.UTC(instant), err)
		}
		cmd.OpId, cmd.Reason = "", status.Convert(err).Message()
	}
	if err := sc.record(ctx, cmd); err != nil && !errors.Is(err, fsm.ErrAlreadyFired) {
		if errors.Is(err, fsm.ErrPlanNotFound) {
			return nil // deleted meanwhile
		}
		return fmt.Errorf("record the outcome of %s: %w", timefmt.UTC(instant), err)
	}
	if cmd.GetReason() != "" {
		log.Warn("scheduled backup refused", zap.String("reason", cmd.GetReason()))
		return nil
	}
	log.Info("scheduled backup started", zap.String("op_id", opID))
	return nil
}

// transientStart: a start that may succeed when tried again (leadership
// moving, Raft not answering); anything else is the instant's outcome.
func transientStart(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return true
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled, codes.Aborted:
		return true
	}
	return false
}

// scheduleDuty is the leader's scheduler for one term.
func (s *Server) scheduleDuty(ctx context.Context, epoch uint64) {
	sc := &scheduler{
		log:   s.log.With(zap.Uint64("epoch", epoch), zap.String("duty", "schedule")),
		clock: clockwork.NewRealClock(),
		plans: s.fsm.Plans,
		record: func(ctx context.Context, cmd *pb.RecordScheduleFireCommand) error {
			actx, cancel := context.WithTimeout(ctx, s.cfg.ApplyTimeout)
			defer cancel()
			_, err := s.Apply(actx, cmd)
			return err
		},
		start: func(ctx context.Context, name, requestID string, instant time.Time) (string, error) {
			op, err := s.startBackup(ctx, name, requestID, "schedule", timestamppb.New(instant))
			return op.GetOpId(), err
		},
		held:  s.heldClusters,
		stamp: s.Stamp,
	}
	sc.run(ctx)
}

// heldClusters says which of the plan's clusters another op holds (""
// when none, or when its clusters cannot be resolved: the start says why).
func (s *Server) heldClusters(p *pb.BackupPlan) string {
	clusters, err := planClusters(p, s.fsm.Members())
	if err != nil {
		return ""
	}
	var held []string
	for _, c := range clusters {
		if op, ok := s.fsm.Lock(c); ok {
			held = append(held, fmt.Sprintf("cluster %s is held by operation %s", c, op))
		}
	}
	return strings.Join(held, "; ")
}
