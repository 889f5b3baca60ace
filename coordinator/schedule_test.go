package coordinator

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stillpoint-dev/stillpoint/coordinator/fsm"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

var st0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// schedRig is a scheduler over a real FSM (applied without Raft), a fake
// clock and a fake backup starter that is idempotent on request id like
// StartBackup.
type schedRig struct {
	t     *testing.T
	f     *fsm.FSM
	index uint64
	clock *clockwork.FakeClock
	sc    *scheduler

	mu       sync.Mutex
	ops      map[string]string // request id -> op id
	starts   []string          // every start call's request id
	startErr error
	held     string
}

func newSchedRig(t *testing.T, p *pb.BackupPlan) *schedRig {
	r := &schedRig{t: t, f: fsm.New(nil), clock: clockwork.NewFakeClockAt(st0), ops: map[string]string{}}
	if p != nil {
		r.apply(&pb.SetBackupPlanCommand{Plan: p, Actor: "test", At: &pb.StampedTime{LocalTime: timestamppb.New(st0.Add(300 * time.Millisecond))}})
	}
	r.sc = r.scheduler()
	return r
}

// scheduler is a new leader's scheduler over the same state.
func (r *schedRig) scheduler() *scheduler {
	return &scheduler{
		log:   zaptest.NewLogger(r.t),
		clock: r.clock,
		plans: r.f.Plans,
		record: func(_ context.Context, cmd *pb.RecordScheduleFireCommand) error {
			return r.applyErr(cmd)
		},
		start: func(_ context.Context, name, requestID string, instant time.Time) (string, error) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.starts = append(r.starts, requestID)
			if r.startErr != nil {
				return "", r.startErr
			}
			if id, ok := r.ops[requestID]; ok {
				return id, nil
			}
			id := fmt.Sprintf("op-%d", len(r.ops)+1)
			r.ops[requestID] = id
			return id, nil
		},
		held:  func(*pb.BackupPlan) string { r.mu.Lock(); defer r.mu.Unlock(); return r.held },
		stamp: func() *pb.StampedTime { return &pb.StampedTime{LocalTime: timestamppb.New(r.clock.Now())} },
	}
}

func (r *schedRig) applyErr(cmd proto.Message) error {
	b, err := fsm.Encode(cmd)
	if err != nil {
		r.t.Fatal(err)
	}
	r.mu.Lock()
	r.index++
	i := r.index
	r.mu.Unlock()
	return r.f.ApplyCommand(i, b).Err
}

func (r *schedRig) apply(cmd proto.Message) {
	r.t.Helper()
	if err := r.applyErr(cmd); err != nil {
		r.t.Fatalf("apply %T: %v", cmd, err)
	}
}

func (r *schedRig) state(name string) *pb.PlanRecord {
	rec, ok := r.f.Plan(name)
	if !ok {
		r.t.Fatalf("plan %s missing", name)
	}
	return rec
}

func (r *schedRig) wantFired(name string, instant time.Time, opID, reason string) {
	r.t.Helper()
	rec := r.state(name)
	if !rec.GetLastFired().AsTime().Equal(instant) || rec.GetLastFiredOpId() != opID || !strings.Contains(rec.GetLastFiredReason(), reason) || (reason == "" && rec.GetLastFiredReason() != "") {
		r.t.Fatalf("plan %s: last fired %v op %q reason %q; want %v op %q reason containing %q",
			name, rec.GetLastFired().AsTime(), rec.GetLastFiredOpId(), rec.GetLastFiredReason(), instant, opID, reason)
	}
}

func (r *schedRig) wantStarts(ids ...string) {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if strings.Join(r.starts, " ") != strings.Join(ids, " ") {
		r.t.Fatalf("starts = %v, want %v", r.starts, ids)
	}
}

func every(d string) *pb.BackupPlan {
	return &pb.BackupPlan{Name: "nightly", Schedule: "@every " + d}
}

// The first instant is the schedule's first after the plan was set; each
// instant fires once, with the request id of plan and instant, recorded
// before the op starts and then with its op id.
func TestSchedulerFiresEachInstantOnce(t *testing.T) {
	r := newSchedRig(t, every("10s"))
	ctx := context.Background()
	if next := r.sc.tick(ctx); !next.Equal(st0.Add(10 * time.Second)) {
		t.Fatalf("next = %v, want %v", next, st0.Add(10*time.Second))
	}
	r.wantStarts()
	r.clock.Advance(10 * time.Second)
	if next := r.sc.tick(ctx); !next.Equal(st0.Add(20 * time.Second)) {
		t.Fatalf("next = %v", next)
	}
	first := scheduleRequestID("nightly", st0.Add(10*time.Second))
	r.wantStarts(first)
	r.wantFired("nightly", st0.Add(10*time.Second), "op-1", "")
	// Ticks before the next instant fire nothing.
	r.clock.Advance(9 * time.Second)
	r.sc.tick(ctx)
	r.sc.tick(ctx)
	r.wantStarts(first)
	r.clock.Advance(time.Second + 400*time.Millisecond)
	r.sc.tick(ctx)
	r.wantStarts(first, scheduleRequestID("nightly", st0.Add(20*time.Second)))
	r.wantFired("nightly", st0.Add(20*time.Second), "op-2", "")
	if got := first; got != "schedule:nightly@2026-03-01T12:00:10Z" {
		t.Fatalf("request id %q", got)
	}
}

// A leader that died after recording a fire: the next one starts the op
// with the same request id (so an op already started is returned, not
// doubled) and records its id; it fires nothing else before its time.
func TestSchedulerCompletesPendingFireAfterFailover(t *testing.T) {
	for _, started := range []bool{false, true} {
		t.Run(fmt.Sprintf("op started before the crash %v", started), func(t *testing.T) {
			r := newSchedRig(t, every("10s"))
			instant := st0.Add(10 * time.Second)
			r.apply(&pb.RecordScheduleFireCommand{Plan: "nightly", Instant: timestamppb.New(instant)})
			id := scheduleRequestID("nightly", instant)
			if started {
				r.ops[id] = "op-old"
			}
			r.clock.Advance(12 * time.Second)
			r.scheduler().tick(context.Background())
			want := "op-1"
			if started {
				want = "op-old"
			}
			r.wantFired("nightly", instant, want, "")
			r.wantStarts(id)
			if len(r.ops) != 1 {
				t.Fatalf("ops = %v, want one for the instant", r.ops)
			}
		})
	}
}

// A start that fails for now (leadership moving) leaves the fire pending
// and is retried with the same request id; a refusal is the instant's
// outcome.
func TestSchedulerStartFailures(t *testing.T) {
	r := newSchedRig(t, every("10s"))
	ctx := context.Background()
	r.clock.Advance(10 * time.Second)
	r.startErr = status.Error(codes.Unavailable, "server s1 is still taking over as leader; retry")
	r.sc.tick(ctx)
	r.wantFired("nightly", st0.Add(10*time.Second), "", "")
	r.startErr = nil
	r.clock.Advance(time.Second)
	r.sc.tick(ctx)
	id := scheduleRequestID("nightly", st0.Add(10*time.Second))
	r.wantStarts(id, id)
	r.wantFired("nightly", st0.Add(10*time.Second), "op-1", "")

	r.startErr = status.Error(codes.FailedPrecondition, "pause refused: ledger-2 clock unsynchronized")
	r.clock.Advance(9 * time.Second)
	r.sc.tick(ctx)
	r.wantFired("nightly", st0.Add(20*time.Second), "", "ledger-2 clock unsynchronized")
	r.startErr = nil
	r.sc.tick(ctx)
	if len(r.starts) != 3 {
		t.Fatalf("refused instant started again: %v", r.starts)
	}
}

// Instants missed while no leader could fire them: run_once (the default)
// runs the latest once, recording how many were missed; skip records it
// without an op, unless it is still on time.
func TestSchedulerMissedRuns(t *testing.T) {
	for _, tc := range []struct {
		name     string
		policy   pb.MissedRunPolicy
		lateness time.Duration
		runs     bool
	}{
		{"run_once by default", pb.MissedRunPolicy_MISSED_RUN_POLICY_UNSPECIFIED, 3 * time.Second, true},
		{"run_once", pb.MissedRunPolicy_MISSED_RUN_POLICY_RUN_ONCE, 9 * time.Second, true},
		{"skip, late", pb.MissedRunPolicy_MISSED_RUN_POLICY_SKIP, 5 * time.Second, false},
		{"skip, latest still on time", pb.MissedRunPolicy_MISSED_RUN_POLICY_SKIP, 4 * time.Second, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := every("10s")
			p.MissedRuns = tc.policy
			r := newSchedRig(t, p)
			r.apply(&pb.RecordScheduleFireCommand{Plan: "nightly", Instant: timestamppb.New(st0.Add(10 * time.Second)), OpId: "op-0"})
			// Down from 15s to 70s + lateness: 20s..70s were missed.
			r.clock.Advance(70*time.Second + tc.lateness)
			r.sc.tick(context.Background())
			latest := st0.Add(70 * time.Second)
			if tc.runs {
				r.wantFired("nightly", latest, "op-1", "")
				r.wantStarts(scheduleRequestID("nightly", latest))
			} else {
				r.wantFired("nightly", latest, "", "missed_runs: skip")
				r.wantStarts()
			}
			audit := r.f.Audit(0)
			var fired *pb.AuditRecord
			for _, a := range audit {
				if a.GetAction() == fsm.AuditScheduleFire && strings.Contains(a.GetDetail(), "fired 2026-03-01T12:01:10") {
					fired = a
				}
			}
			if fired == nil || !strings.Contains(fired.GetDetail(), "5 earlier instants missed from 2026-03-01T12:00:20.000000000Z") {
				t.Fatalf("fire audit = %v", audit)
			}
			// Nothing more until 80s.
			r.sc.tick(context.Background())
			if n := len(r.starts); (tc.runs && n != 1) || (!tc.runs && n != 0) {
				t.Fatalf("starts = %v", r.starts)
			}
		})
	}
}

// A fire while the plan's cluster is held records why and starts nothing;
// the next instant runs.
func TestSchedulerLockedCluster(t *testing.T) {
	r := newSchedRig(t, every("10s"))
	r.held = "cluster ledger is held by operation op-manual"
	r.clock.Advance(10 * time.Second)
	r.sc.tick(context.Background())
	r.wantFired("nightly", st0.Add(10*time.Second), "", "held by operation op-manual")
	r.wantStarts()
	r.held = ""
	r.clock.Advance(10 * time.Second)
	r.sc.tick(context.Background())
	r.wantFired("nightly", st0.Add(20*time.Second), "op-1", "")
}

// The loop sleeps until the next instant on its clock, then fires.
func TestSchedulerRunLoop(t *testing.T) {
	r := newSchedRig(t, every("5s"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.sc.run(ctx) }()
	defer func() { cancel(); <-done }()
	for i := 1; i <= 3; i++ {
		want := st0.Add(time.Duration(5*i) * time.Second)
		for {
			changed := r.f.Changed()
			if rec := r.state("nightly"); rec.GetLastFired().AsTime().Equal(want) && rec.GetLastFiredOpId() != "" {
				break
			}
			if err := r.clock.BlockUntilContext(ctx, 1); err != nil {
				t.Fatal(err)
			}
			if r.clock.Now().Before(want) {
				r.clock.Advance(time.Second)
				continue
			}
			select {
			case <-changed:
			case <-time.After(10 * time.Second):
				t.Fatalf("instant %v not fired", want)
			}
		}
	}
	if len(r.starts) != 3 {
		t.Fatalf("starts = %v", r.starts)
	}
}

// A never-fired plan stored without its time counts from when the
// scheduler first saw it (not from each tick's now, which never comes).
func TestSchedulerPlanWithoutUpdatedAt(t *testing.T) {
	r := newSchedRig(t, nil)
	r.apply(&pb.SetBackupPlanCommand{Plan: every("10s"), Actor: "test"})
	r.sc.tick(context.Background())
	r.clock.Advance(10 * time.Second)
	r.sc.tick(context.Background())
	r.wantFired("nightly", st0.Add(10*time.Second), "op-1", "")
}

// A plan deleted while its fire was pending: the next leader's start finds
// no plan (and no op), nothing is recorded and nothing else fires.
func TestSchedulerPendingFireOfDeletedPlan(t *testing.T) {
	r := newSchedRig(t, every("10s"))
	r.apply(&pb.RecordScheduleFireCommand{Plan: "nightly", Instant: timestamppb.New(st0.Add(10 * time.Second))})
	r.apply(&pb.DeleteBackupPlanCommand{Name: "nightly"})
	r.clock.Advance(30 * time.Second)
	if next := r.scheduler().tick(context.Background()); !next.IsZero() {
		t.Fatalf("next = %v for no plan", next)
	}
	r.wantStarts()
}

// An unreadable stored schedule is left alone (and logged once).
func TestSchedulerUnreadableSchedule(t *testing.T) {
	r := newSchedRig(t, &pb.BackupPlan{Name: "odd", Schedule: "every full moon"})
	r.clock.Advance(time.Hour)
	for range 3 {
		if next := r.sc.tick(context.Background()); !next.IsZero() {
			t.Fatalf("next = %v", next)
		}
	}
	if len(r.sc.unreadable) != 1 {
		t.Fatalf("unreadable = %v", r.sc.unreadable)
	}
	r.wantStarts()
}
