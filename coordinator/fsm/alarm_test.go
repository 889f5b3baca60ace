package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

func TestRaiseAlarmKeepsEpisodeStart(t *testing.T) {
	a := newApplier(t)
	a.mustApply(&pb.RaiseAlarmCommand{Alarm: &pb.Alarm{Id: "x", Kind: "error_bound_warning", Severity: "warning", Cluster: "c", Node: "l1",
		Figure: 9e6, Limit: 8e6, Unit: "ns", FirstSeen: stamp(-15 * time.Second), RaisedAt: stamp(0)}})
	a.mustApply(&pb.RaiseAlarmCommand{Alarm: &pb.Alarm{Id: "x", Kind: "error_bound_warning", Severity: "warning", Cluster: "c", Node: "l1",
		Figure: 9.5e6, Limit: 8e6, Unit: "ns", FirstSeen: stamp(time.Second), RaisedAt: stamp(time.Second)}})
	got, _ := a.f.Alarm("x")
	if got.GetFigure() != 9.5e6 || !got.GetRaisedAt().GetLocalTime().AsTime().Equal(t0) ||
		!got.GetFirstSeen().GetLocalTime().AsTime().Equal(t0.Add(-15*time.Second)) ||
		!got.GetUpdatedAt().GetLocalTime().AsTime().Equal(t0.Add(time.Second)) {
		t.Fatalf("updated alarm = %v", got)
	}
	if n := len(a.f.Alarms(true)); n != 1 {
		t.Fatalf("%d alarms after raising the same id twice, want 1", n)
	}
	// Survives snapshot/restore whole.
	b := a.roundTrip()
	if got2, ok := b.Alarm("x"); !ok || got2.GetFigure() != 9.5e6 || got2.GetCluster() != "c" || got2.GetSeverity() != "warning" {
		t.Fatalf("restored alarm = %v", got2)
	}
}

func TestClearedAlarmsRetention(t *testing.T) {
	a := newApplier(t)
	cfg := DefaultRuntimeConfig()
	cfg.AlarmRetentionNs = int64(time.Hour)
	a.mustApply(&pb.SetConfigCommand{Config: cfg, At: stamp(0)})
	a.mustApply(&pb.RaiseAlarmCommand{Alarm: &pb.Alarm{Id: "old", RaisedAt: stamp(0)}})
	a.mustApply(&pb.RaiseAlarmCommand{Alarm: &pb.Alarm{Id: "live", RaisedAt: stamp(0)}})
	a.mustApply(&pb.ClearAlarmCommand{Id: "old", ClearedAt: stamp(time.Minute)})
	a.mustApply(&pb.RaiseAlarmCommand{Alarm: &pb.Alarm{Id: "new", RaisedAt: stamp(30 * time.Minute)}})
	if _, ok := a.f.Alarm("old"); !ok {
		t.Fatal("cleared alarm dropped before its retention")
	}
	a.mustApply(&pb.ClearAlarmCommand{Id: "new", ClearedAt: stamp(time.Hour + 2*time.Minute)})
	if _, ok := a.f.Alarm("old"); ok {
		t.Fatal("cleared alarm kept past its retention")
	}
	if got, ok := a.f.Alarm("live"); !ok || !got.GetActive() {
		t.Fatal("an active alarm was dropped by retention")
	}

	// A burst of distinct cleared alarms is capped.
	for i := 0; i < MaxClearedAlarms+50; i++ {
		id := fmt.Sprintf("burst-%d", i)
		a.mustApply(&pb.RaiseAlarmCommand{Alarm: &pb.Alarm{Id: id, RaisedAt: stamp(2 * time.Hour)}})
		a.mustApply(&pb.ClearAlarmCommand{Id: id, ClearedAt: stamp(2 * time.Hour)})
	}
	cleared := 0
	for _, al := range a.f.Alarms(true) {
		if !al.GetActive() {
			cleared++
		}
	}
	if cleared > MaxClearedAlarms {
		t.Fatalf("%d cleared alarms kept, cap %d", cleared, MaxClearedAlarms)
	}
	if _, ok := a.f.Alarm("live"); !ok {
		t.Fatal("the cap dropped an active alarm")
	}
}

func TestAlarmConfigValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*pb.RuntimeConfig)
		want string
	}{
		{"ratio 1", func(c *pb.RuntimeConfig) { c.AlarmWarningRatio = 1 }, "alarm_warning_ratio"},
		{"ratio negative", func(c *pb.RuntimeConfig) { c.AlarmWarningRatio = -0.1 }, "alarm_warning_ratio"},
		{"for negative", func(c *pb.RuntimeConfig) { c.AlarmForNs = -1 }, "alarm_for_ns"},
		{"clear negative", func(c *pb.RuntimeConfig) { c.AlarmClearForNs = -1 }, "alarm_clear_for_ns"},
		{"interval tiny", func(c *pb.RuntimeConfig) { c.AlarmEvalIntervalNs = int64(time.Millisecond) }, "alarm_eval_interval_ns"},
		{"retention tiny", func(c *pb.RuntimeConfig) { c.AlarmRetentionNs = int64(time.Second) }, "alarm_retention_ns"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultRuntimeConfig()
			tc.mod(c)
			err := ValidateRuntimeConfig(c)
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one naming %s", err, tc.want)
			}
		})
	}
	// Zero means default: a config stored before the alarm fields existed.
	old := DefaultRuntimeConfig()
	old.AlarmWarningRatio, old.AlarmForNs, old.AlarmClearForNs, old.AlarmRetentionNs, old.AlarmEvalIntervalNs = 0, 0, 0, 0, 0
	if err := ValidateRuntimeConfig(old); err != nil {
		t.Fatal(err)
	}
	s := AlarmSettingsOf(old)
	if s.WarnErrorBound != 8*time.Millisecond || s.WarnSpread != 80*time.Millisecond || s.For != DefaultAlarmFor {
		t.Fatalf("settings of a zero config = %+v", s)
	}
	//lint:ignore SA1019 the retired field must be refused
	old.AlarmErrorBoundNs = int64(20 * time.Millisecond)
	if err := CheckRetiredFields(old); !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "alarm_error_bound_ns") {
		t.Fatalf("retired alarm_error_bound_ns: %v", err)
	}
}

// roundTrip snapshots a's FSM and restores it into a fresh one.
func (a *applier) roundTrip() *FSM {
	a.t.Helper()
	snap, err := a.f.Snapshot()
	if err != nil {
		a.t.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		a.t.Fatal(err)
	}
	snap.Release()
	b := New(nil)
	if err := b.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		a.t.Fatal(err)
	}
	return b
}
