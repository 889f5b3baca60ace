package fsm

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func stamp(d time.Duration) *pb.StampedTime {
	return &pb.StampedTime{LocalTime: timestamppb.New(t0.Add(d))}
}

// applier feeds commands to an FSM as Raft would, with increasing indexes.
type applier struct {
	t     *testing.T
	f     *FSM
	index uint64
}

func newApplier(t *testing.T) *applier {
	return &applier{t: t, f: New(nil)}
}

func (a *applier) apply(cmd proto.Message) *Response {
	a.t.Helper()
	b, err := Encode(cmd)
	if err != nil {
		a.t.Fatalf("encode %T: %v", cmd, err)
	}
	return a.applyRaw(b)
}

func (a *applier) applyRaw(b []byte) *Response {
	a.t.Helper()
	a.index++
	return a.f.ApplyCommand(a.index, b)
}

func (a *applier) mustApply(cmd proto.Message) *Response {
	a.t.Helper()
	r := a.apply(cmd)
	if r.Err != nil {
		a.t.Fatalf("apply %T: %v", cmd, r.Err)
	}
	return r
}

func newOp(id, cluster string, epoch uint64) *pb.Operation {
	return &pb.Operation{
		OpId: id, Cluster: cluster, Epoch: epoch,
		State:           pb.OperationState_OPERATION_STATE_PENDING,
		Targets:         []*pb.TargetRecord{{Node: "ledger-1"}, {Node: "ledger-2"}},
		RequestedHoldMs: 100,
		CreatedAt:       stamp(0),
	}
}

func completed(op *pb.Operation) *pb.Operation {
	op = proto.Clone(op).(*pb.Operation)
	op.State = pb.OperationState_OPERATION_STATE_COMPLETED
	op.HoldNs = int64(30 * time.Millisecond)
	op.EndedAt = stamp(time.Second)
	op.Window = &pb.RestoreWindow{
		Start:         timestamppb.New(t0.Add(100 * time.Millisecond)),
		End:           timestamppb.New(t0.Add(120 * time.Millisecond)),
		RestorePoint:  timestamppb.New(t0.Add(110 * time.Millisecond)),
		UncertaintyNs: int64(10 * time.Millisecond),
		WidthNs:       int64(20 * time.Millisecond),
	}
	return op
}

func withState(op *pb.Operation, s pb.OperationState) *pb.Operation {
	op = proto.Clone(op).(*pb.Operation)
	op.State = s
	return op
}

func TestCreateOperation(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(a *applier)
		op      *pb.Operation
		wantErr error
	}{
		{name: "fresh cluster", op: newOp("op-1", "ledger", 0)},
		{name: "missing id", op: newOp("", "ledger", 0), wantErr: ErrInvalidCommand},
		{name: "missing cluster", op: newOp("op-1", "", 0), wantErr: ErrInvalidCommand},
		{name: "terminal state", op: withState(newOp("op-1", "ledger", 0), pb.OperationState_OPERATION_STATE_ABORTED), wantErr: ErrInvalidCommand},
		{name: "stale epoch", setup: func(a *applier) { a.mustApply(&pb.BumpEpochCommand{LeaderId: "s1"}) }, op: newOp("op-1", "ledger", 0), wantErr: ErrStaleEpoch},
		{name: "current epoch", setup: func(a *applier) { a.mustApply(&pb.BumpEpochCommand{LeaderId: "s1"}) }, op: newOp("op-1", "ledger", 1)},
		{
			name:    "locked cluster is rejected",
			setup:   func(a *applier) { a.mustApply(&pb.CreateOperationCommand{Operation: newOp("op-0", "ledger", 0)}) },
			op:      newOp("op-1", "ledger", 0),
			wantErr: ErrClusterLocked,
		},
		{
			name:  "other cluster is free",
			setup: func(a *applier) { a.mustApply(&pb.CreateOperationCommand{Operation: newOp("op-0", "auditor", 0)}) },
			op:    newOp("op-1", "ledger", 0),
		},
		{
			name: "duplicate id",
			setup: func(a *applier) {
				a.mustApply(&pb.CreateOperationCommand{Operation: newOp("op-1", "auditor", 0)})
			},
			op:      newOp("op-1", "ledger", 0),
			wantErr: ErrOperationExists,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := newApplier(t)
			if tc.setup != nil {
				tc.setup(a)
			}
			before := a.f.Dump()
			r := a.apply(&pb.CreateOperationCommand{Operation: tc.op, Actor: "alice"})
			if !errors.Is(r.Err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", r.Err, tc.wantErr)
			}
			if tc.wantErr != nil {
				if diff := diffProto(before, a.f.Dump()); diff != "" {
					t.Fatalf("rejected create changed the state (-before +after):\n%s", diff)
				}
				return
			}
			got, ok := a.f.Operation(tc.op.GetOpId())
			if !ok || !proto.Equal(got, tc.op) {
				t.Fatalf("stored op = %v, want %v", got, tc.op)
			}
			if holder, ok := a.f.Lock(tc.op.GetCluster()); !ok || holder != tc.op.GetOpId() {
				t.Fatalf("lock of %s = %q,%v; want %s", tc.op.GetCluster(), holder, ok, tc.op.GetOpId())
			}
			rec := a.f.Audit(1)[0]
			if rec.GetAction() != AuditPause || rec.GetActor() != "alice" || rec.GetOpId() != tc.op.GetOpId() || rec.GetIndex() != r.Index {
				t.Fatalf("audit record = %v", rec)
			}
		})
	}
}

func TestUpdateOperation(t *testing.T) {
	base := newOp("op-1", "ledger", 0)
	tests := []struct {
		name       string
		update     *pb.UpdateOperationCommand
		wantErr    error
		wantLocked bool
		wantRP     bool
		wantAudit  string
	}{
		{name: "progress keeps lock", update: &pb.UpdateOperationCommand{Operation: withState(base, pb.OperationState_OPERATION_STATE_HOLDING)}, wantLocked: true},
		{name: "completed catalogs and unlocks", update: &pb.UpdateOperationCommand{Operation: completed(base), Actor: "leader"}, wantRP: true, wantAudit: AuditUnpause},
		{name: "aborted unlocks", update: &pb.UpdateOperationCommand{Operation: withState(base, pb.OperationState_OPERATION_STATE_ABORTED)}, wantAudit: AuditUnpause},
		{name: "invalid unlocks", update: &pb.UpdateOperationCommand{Operation: withState(base, pb.OperationState_OPERATION_STATE_INVALID)}, wantAudit: AuditUnpause},
		{name: "force unpause", update: &pb.UpdateOperationCommand{Operation: withState(base, pb.OperationState_OPERATION_STATE_ABORTED), ForceUnpause: true, Actor: "bob", At: stamp(time.Second)}, wantAudit: AuditForceUnpause},
		{name: "completed without window", update: &pb.UpdateOperationCommand{Operation: withState(base, pb.OperationState_OPERATION_STATE_COMPLETED)}, wantErr: ErrInvalidCommand, wantLocked: true},
		{name: "unknown op", update: &pb.UpdateOperationCommand{Operation: newOp("op-x", "ledger", 0)}, wantErr: ErrOperationNotFound, wantLocked: true},
		{name: "cluster changed", update: &pb.UpdateOperationCommand{Operation: newOp("op-1", "auditor", 0)}, wantErr: ErrInvalidCommand, wantLocked: true},
		{name: "stale epoch", update: &pb.UpdateOperationCommand{Operation: newOp("op-1", "ledger", 7)}, wantErr: ErrStaleEpoch, wantLocked: true},
		{name: "missing id", update: &pb.UpdateOperationCommand{Operation: &pb.Operation{}}, wantErr: ErrInvalidCommand, wantLocked: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := newApplier(t)
			a.mustApply(&pb.CreateOperationCommand{Operation: base})
			before := a.f.Dump()
			r := a.apply(tc.update)
			if !errors.Is(r.Err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", r.Err, tc.wantErr)
			}
			if tc.wantErr != nil {
				if diff := diffProto(before, a.f.Dump()); diff != "" {
					t.Fatalf("rejected update changed the state:\n%s", diff)
				}
			} else if got, _ := a.f.Operation("op-1"); !proto.Equal(got, tc.update.GetOperation()) {
				t.Fatalf("stored op = %v, want %v", got, tc.update.GetOperation())
			}
			if _, locked := a.f.Lock("ledger"); locked != tc.wantLocked {
				t.Fatalf("ledger locked = %v, want %v", locked, tc.wantLocked)
			}
			rp, ok := a.f.RestorePoint("op-1")
			if ok != tc.wantRP {
				t.Fatalf("restore point present = %v, want %v", ok, tc.wantRP)
			}
			if ok {
				want := &pb.RestorePoint{OpId: "op-1", Cluster: "ledger", Window: tc.update.GetOperation().GetWindow(),
					HoldNs: tc.update.GetOperation().GetHoldNs(), Targets: []string{"ledger-1", "ledger-2"}, CreatedAt: tc.update.GetOperation().GetEndedAt()}
				if diff := diffProto(want, rp); diff != "" {
					t.Fatalf("restore point (-want +got):\n%s", diff)
				}
			}
			last := a.f.Audit(1)[0]
			if tc.wantAudit == "" {
				if last.GetAction() != AuditPause {
					t.Fatalf("unexpected audit record %v", last)
				}
				return
			}
			if last.GetAction() != tc.wantAudit || last.GetActor() != tc.update.GetActor() || last.GetOpId() != "op-1" {
				t.Fatalf("audit = %v, want action %s actor %q", last, tc.wantAudit, tc.update.GetActor())
			}
		})
	}
}

func TestEndedOperationIsFinalAndLockReusable(t *testing.T) {
	a := newApplier(t)
	op := newOp("op-1", "ledger", 0)
	a.mustApply(&pb.CreateOperationCommand{Operation: op})
	a.mustApply(&pb.UpdateOperationCommand{Operation: completed(op)})
	if r := a.apply(&pb.UpdateOperationCommand{Operation: withState(op, pb.OperationState_OPERATION_STATE_HOLDING)}); !errors.Is(r.Err, ErrOperationEnded) {
		t.Fatalf("update after end: err = %v, want ErrOperationEnded", r.Err)
	}
	a.mustApply(&pb.CreateOperationCommand{Operation: newOp("op-2", "ledger", 0)})
	if ops := a.f.Operations("ledger", 0); len(ops) != 2 || ops[0].GetOpId() != "op-2" {
		t.Fatalf("operations newest first = %v", ops)
	}
	if act := a.f.ActiveOperations(); len(act) != 1 || act[0].GetOpId() != "op-2" {
		t.Fatalf("active operations = %v", act)
	}
}

func TestBumpEpoch(t *testing.T) {
	a := newApplier(t)
	for want := uint64(1); want <= 3; want++ {
		r := a.mustApply(&pb.BumpEpochCommand{LeaderId: "s1"})
		if got := a.f.Epoch(); got != want {
			t.Fatalf("epoch = %d, want %d", got, want)
		}
		if r.Value == nil {
			t.Fatal("BumpEpoch returned no value")
		}
	}
}

func TestSetConfig(t *testing.T) {
	valid := DefaultRuntimeConfig()
	valid.MaxErrorBoundNs = int64(5 * time.Millisecond)
	tests := []struct {
		name     string
		cfg      *pb.RuntimeConfig
		wantErrs []string
	}{
		{name: "valid", cfg: valid},
		{name: "missing", cfg: nil, wantErrs: []string{"config is missing"}},
		{name: "every problem reported", cfg: &pb.RuntimeConfig{MarginNs: -1, LeaseNs: int64(time.Millisecond)},
			wantErrs: []string{"max_error_bound_ns", "max_drift_ns", "min_window_ns", "max_pause_wait_ns", "margin_ns", "lease_ns is 1ms"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := newApplier(t)
			r := a.apply(&pb.SetConfigCommand{Config: tc.cfg, Actor: "carol", At: stamp(0)})
			if len(tc.wantErrs) > 0 {
				if !errors.Is(r.Err, ErrInvalidConfig) {
					t.Fatalf("err = %v, want ErrInvalidConfig", r.Err)
				}
				for _, w := range tc.wantErrs {
					if !strings.Contains(r.Err.Error(), w) {
						t.Errorf("error %q does not mention %q", r.Err, w)
					}
				}
				if !proto.Equal(a.f.Config(), DefaultRuntimeConfig()) || len(a.f.Audit(0)) != 0 {
					t.Fatal("rejected config changed the state")
				}
				return
			}
			if r.Err != nil {
				t.Fatal(r.Err)
			}
			if !proto.Equal(a.f.Config(), tc.cfg) {
				t.Fatalf("config = %v, want %v", a.f.Config(), tc.cfg)
			}
			rec := a.f.Audit(0)
			if len(rec) != 1 || rec[0].GetAction() != AuditConfigChange || rec[0].GetActor() != "carol" ||
				!strings.Contains(rec[0].GetDetail(), "max_error_bound_ns 10ms -> 5ms") {
				t.Fatalf("audit = %v", rec)
			}
		})
	}
}

func TestDefaultRuntimeConfig(t *testing.T) {
	c := DefaultRuntimeConfig()
	if err := ValidateRuntimeConfig(c); err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{
		"max_error_bound_ns": 10e6, "max_drift_ns": 100e6, "lease_ns": 15e9, "margin_ns": 1e6,
		"min_window_ns": 1e6, "max_pause_wait_ns": 10e9, "target_clock_bound_ns": 0, "alarm_error_bound_ns": 0,
		"alarm_for_ns": 15e9, "alarm_clear_for_ns": 30e9, "alarm_eval_interval_ns": 5e9,
	}
	m := c.ProtoReflect()
	for name, v := range want {
		fd := m.Descriptor().Fields().ByName(protoreflectName(name))
		if got := m.Get(fd).Int(); got != v {
			t.Errorf("%s = %d, want %d", name, got, v)
		}
	}
}

func TestAlarms(t *testing.T) {
	a := newApplier(t)
	a.mustApply(&pb.RaiseAlarmCommand{Alarm: &pb.Alarm{Id: "bound/l1", Node: "l1", Kind: "error_bound", Message: "12ms > 10ms", RaisedAt: stamp(0)}})
	// Raised again while active: same episode, first raised_at kept.
	a.mustApply(&pb.RaiseAlarmCommand{Alarm: &pb.Alarm{Id: "bound/l1", Node: "l1", Kind: "error_bound", Message: "15ms > 10ms", RaisedAt: stamp(time.Second)}})
	got, _ := a.f.Alarm("bound/l1")
	if !got.GetActive() || got.GetMessage() != "15ms > 10ms" || !got.GetRaisedAt().GetLocalTime().AsTime().Equal(t0) {
		t.Fatalf("alarm = %v", got)
	}
	if r := a.apply(&pb.RaiseAlarmCommand{Alarm: &pb.Alarm{}}); !errors.Is(r.Err, ErrInvalidCommand) {
		t.Fatalf("raise without id: %v", r.Err)
	}
	if r := a.apply(&pb.ClearAlarmCommand{Id: "nope"}); !errors.Is(r.Err, ErrAlarmNotFound) {
		t.Fatalf("clear unknown: %v", r.Err)
	}
	a.mustApply(&pb.ClearAlarmCommand{Id: "bound/l1", ClearedAt: stamp(2 * time.Second)})
	if n := len(a.f.Alarms(false)); n != 0 {
		t.Fatalf("%d active alarms after clear", n)
	}
	all := a.f.Alarms(true)
	if len(all) != 1 || all[0].GetActive() || all[0].GetClearedAt() == nil {
		t.Fatalf("alarms incl. cleared = %v", all)
	}
	// A new episode after clearing starts fresh.
	a.mustApply(&pb.RaiseAlarmCommand{Alarm: &pb.Alarm{Id: "bound/l1", RaisedAt: stamp(3 * time.Second)}})
	got, _ = a.f.Alarm("bound/l1")
	if !got.GetActive() || got.GetClearedAt() != nil || !got.GetRaisedAt().GetLocalTime().AsTime().Equal(t0.Add(3*time.Second)) {
		t.Fatalf("re-raised alarm = %v", got)
	}
}

func TestMembers(t *testing.T) {
	a := newApplier(t)
	m := &pb.MemberRecord{Name: "s1", Role: "server", RaftAddress: "127.0.0.1:1", Status: pb.MemberRecordStatus_MEMBER_RECORD_STATUS_ALIVE}
	a.mustApply(&pb.UpsertMemberCommand{Member: m})
	a.mustApply(&pb.UpsertMemberCommand{Member: &pb.MemberRecord{Name: "l1", Role: "ledger", Cluster: "ledger"}})
	if got, _ := a.f.Member("s1"); !proto.Equal(got, m) {
		t.Fatalf("member = %v", got)
	}
	if ms := a.f.Members(); len(ms) != 2 || ms[0].GetName() != "l1" {
		t.Fatalf("members sorted = %v", ms)
	}
	if r := a.apply(&pb.UpsertMemberCommand{Member: &pb.MemberRecord{}}); !errors.Is(r.Err, ErrInvalidCommand) {
		t.Fatalf("upsert without name: %v", r.Err)
	}
	a.mustApply(&pb.RemoveMemberCommand{Name: "s1"})
	if _, ok := a.f.Member("s1"); ok {
		t.Fatal("s1 still present after remove")
	}
	if r := a.apply(&pb.RemoveMemberCommand{Name: "s1"}); !errors.Is(r.Err, ErrMemberNotFound) {
		t.Fatalf("remove twice: %v", r.Err)
	}
}

func TestAppendAudit(t *testing.T) {
	a := newApplier(t)
	r := a.mustApply(&pb.AppendAuditCommand{Record: &pb.AuditRecord{Action: "backup", Actor: "cron", OpId: "op-9", Detail: "pg dump", At: stamp(0)}})
	recs := a.f.Audit(0)
	if len(recs) != 1 || recs[0].GetIndex() != r.Index || recs[0].GetAction() != "backup" || recs[0].GetActor() != "cron" {
		t.Fatalf("audit = %v", recs)
	}
	if r := a.apply(&pb.AppendAuditCommand{Record: &pb.AuditRecord{}}); !errors.Is(r.Err, ErrInvalidCommand) {
		t.Fatalf("audit without action: %v", r.Err)
	}
}

func TestAuditIsBounded(t *testing.T) {
	a := newApplier(t)
	for i := 0; i < MaxAuditRecords+5; i++ {
		a.mustApply(&pb.AppendAuditCommand{Record: &pb.AuditRecord{Action: "x"}})
	}
	recs := a.f.Audit(0)
	if len(recs) != MaxAuditRecords || recs[0].GetIndex() != uint64(MaxAuditRecords+5) || recs[len(recs)-1].GetIndex() != 6 {
		t.Fatalf("audit holds %d records, newest %d oldest %d", len(recs), recs[0].GetIndex(), recs[len(recs)-1].GetIndex())
	}
}

func TestUnknownCommand(t *testing.T) {
	t.Run("panics", func(t *testing.T) {
		a := newApplier(t)
		defer func() {
			if recover() == nil {
				t.Fatal("unknown command type did not panic")
			}
		}()
		a.applyRaw([]byte{77, 1, 2})
	})
	t.Run("ignorable is skipped", func(t *testing.T) {
		a := newApplier(t)
		before := a.f.Dump()
		if r := a.applyRaw([]byte{byte(IgnoreUnknownTypeFlag | 77), 1, 2}); r != nil {
			t.Fatalf("response = %v, want nil", r)
		}
		if diff := diffProto(before, a.f.Dump()); diff != "" {
			t.Fatalf("ignorable command changed the state:\n%s", diff)
		}
	})
	t.Run("ignorable known type is applied", func(t *testing.T) {
		a := newApplier(t)
		b, err := EncodeAs(BumpEpochType|IgnoreUnknownTypeFlag, &pb.BumpEpochCommand{})
		if err != nil {
			t.Fatal(err)
		}
		a.applyRaw(b)
		if a.f.Epoch() != 1 {
			t.Fatalf("epoch = %d, want 1", a.f.Epoch())
		}
	})
	t.Run("corrupt body panics", func(t *testing.T) {
		a := newApplier(t)
		defer func() {
			if recover() == nil {
				t.Fatal("corrupt entry did not panic")
			}
		}()
		a.applyRaw([]byte{byte(SetConfigType), 0xff, 0xff, 0xff})
	})
	t.Run("encode rejects non-commands", func(t *testing.T) {
		if _, err := Encode(&pb.Operation{}); !errors.Is(err, ErrUnknownCommand) {
			t.Fatalf("err = %v", err)
		}
	})
}

// populate builds a state touching every part of the FSM.
func populate(t *testing.T) *applier {
	a := newApplier(t)
	a.mustApply(&pb.BumpEpochCommand{LeaderId: "s1"})
	cfg := DefaultRuntimeConfig()
	cfg.MarginNs = 2e6
	a.mustApply(&pb.SetConfigCommand{Config: cfg, Actor: "op"})
	done := newOp("op-1", "ledger", 1)
	a.mustApply(&pb.CreateOperationCommand{Operation: done, Actor: "op"})
	a.mustApply(&pb.UpdateOperationCommand{Operation: completed(done)})
	a.mustApply(&pb.InvalidateRestorePointCommand{OpId: "op-1", Node: "ledger-2", Reason: "ledger-2 restarted", At: stamp(time.Minute), RecordedBy: "s1"})
	a.mustApply(&pb.CreateOperationCommand{Operation: newOp("op-2", "ledger", 1)})
	a.mustApply(&pb.CreateOperationCommand{Operation: newOp("op-3", "auditor", 1)})
	a.mustApply(&pb.RaiseAlarmCommand{Alarm: &pb.Alarm{Id: "a1", Node: "ledger-1", RaisedAt: stamp(0)}})
	a.mustApply(&pb.RaiseAlarmCommand{Alarm: &pb.Alarm{Id: "a2", Node: "ledger-2", RaisedAt: stamp(0)}})
	a.mustApply(&pb.ClearAlarmCommand{Id: "a2", ClearedAt: stamp(time.Second)})
	a.mustApply(&pb.UpsertMemberCommand{Member: &pb.MemberRecord{Name: "s1", Role: "server"}})
	a.mustApply(&pb.UpsertMemberCommand{Member: &pb.MemberRecord{Name: "ledger-1", Role: "ledger", Cluster: "ledger"}})
	a.mustApply(&pb.UpsertMemberCommand{Member: &pb.MemberRecord{Name: "ledger-9", Role: "ledger", Cluster: "ledger"}})
	a.mustApply(&pb.RemoveRosterMemberCommand{Name: "ledger-9", Actor: "op", Reason: "gone"})
	a.mustApply(&pb.AppendAuditCommand{Record: &pb.AuditRecord{Action: "backup", Actor: "cron"}})
	return a
}

// memSink holds a persisted snapshot (the coordinator's raftFSM adapter
// writes to Raft's sinks; its test covers closing and cancelling them).
type memSink struct {
	bytes.Buffer
}

func TestSnapshotRestoreRoundTrip(t *testing.T) {
	a := populate(t)
	snap, err := a.f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	// Apply continues after the snapshot is taken; the snapshot must not see it.
	want := a.f.Dump()
	a.mustApply(&pb.BumpEpochCommand{LeaderId: "s2"})

	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()

	// Restore into an FSM that already holds other state: it must be discarded.
	b := newApplier(t)
	b.mustApply(&pb.CreateOperationCommand{Operation: newOp("stray", "other", 0)})
	changed := b.f.Changed()
	if err := b.f.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	default:
		t.Fatal("Restore did not signal Changed")
	}
	if diff := diffProto(want, b.f.Dump()); diff != "" {
		t.Fatalf("restored state differs (-want +got):\n%s", diff)
	}
	// Spot-check accessors over the restored state.
	if _, ok := b.f.Operation("stray"); ok {
		t.Fatal("old state survived restore")
	}
	if holder, _ := b.f.Lock("ledger"); holder != "op-2" {
		t.Fatalf("ledger lock = %q", holder)
	}
	if rps := b.f.RestorePoints("ledger", 0); len(rps) != 1 || rps[0].GetOpId() != "op-1" {
		t.Fatalf("restore points = %v", rps)
	}
	if b.f.Epoch() != 1 || b.f.Config().GetMarginNs() != 2e6 {
		t.Fatalf("epoch %d margin %d", b.f.Epoch(), b.f.Config().GetMarginNs())
	}
	// The restored FSM keeps working: the lock still rejects, ending frees it.
	b.index = 100
	if r := b.apply(&pb.CreateOperationCommand{Operation: newOp("op-4", "ledger", 1)}); !errors.Is(r.Err, ErrClusterLocked) {
		t.Fatalf("create on locked restored cluster: %v", r.Err)
	}
}

func TestRestoreRejectsBadSnapshot(t *testing.T) {
	for name, b := range map[string][]byte{
		"empty":         nil,
		"wrong version": {9, 1, 2},
		"corrupt":       {snapshotVersion, 0xff, 0xff},
	} {
		t.Run(name, func(t *testing.T) {
			a := populate(t)
			before := a.f.Dump()
			if err := a.f.Restore(io.NopCloser(bytes.NewReader(b))); !errors.Is(err, ErrBadSnapshot) {
				t.Fatalf("err = %v, want ErrBadSnapshot", err)
			}
			if diff := diffProto(before, a.f.Dump()); diff != "" {
				t.Fatalf("failed restore changed the state:\n%s", diff)
			}
		})
	}
}

func TestAccessorsReturnCopies(t *testing.T) {
	a := populate(t)
	op, _ := a.f.Operation("op-2")
	op.State = pb.OperationState_OPERATION_STATE_ABORTED
	cfg := a.f.Config()
	cfg.MarginNs = 99
	if again, _ := a.f.Operation("op-2"); again.GetState() != pb.OperationState_OPERATION_STATE_PENDING {
		t.Fatal("Operation returned shared memory")
	}
	if a.f.Config().GetMarginNs() == 99 {
		t.Fatal("Config returned shared memory")
	}
}

func TestChangedFiresOnApply(t *testing.T) {
	a := newApplier(t)
	ch := a.f.Changed()
	select {
	case <-ch:
		t.Fatal("Changed fired before any apply")
	default:
	}
	r := a.apply(&pb.RemoveMemberCommand{Name: "nobody"}) // rejected entries still advance the index
	<-ch
	if a.f.LastIndex() != r.Index {
		t.Fatalf("LastIndex = %d, want %d", a.f.LastIndex(), r.Index)
	}
}
