package fsm

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// Alarm defaults (runtime config; a zero field means its default, so a
// config stored before the field existed keeps working).
const (
	DefaultAlarmWarningRatio = 0.8
	DefaultAlarmFor          = 15 * time.Second
	DefaultAlarmClearFor     = 30 * time.Second
	DefaultAlarmRetention    = 7 * 24 * time.Hour
	DefaultAlarmEvalInterval = 5 * time.Second
	// MaxClearedAlarms bounds the cleared alarms kept whatever the
	// retention: the oldest cleared are dropped first.
	MaxClearedAlarms = 1000
)

// AlarmSettings are the alarm thresholds in force (defaults filled in).
type AlarmSettings struct {
	// WarnErrorBound and WarnSpread are the warning thresholds; the
	// critical ones are admission's MaxErrorBound and MaxDrift.
	WarnErrorBound, MaxErrorBound time.Duration
	WarnSpread, MaxDrift          time.Duration
	WarningRatio                  float64
	For, ClearFor                 time.Duration
	Retention, EvalInterval       time.Duration
}

// AlarmSettingsOf reads the alarm settings from c, filling defaults.
func AlarmSettingsOf(c *pb.RuntimeConfig) AlarmSettings {
	orDur := func(v int64, d time.Duration) time.Duration {
		if v <= 0 {
			return d
		}
		return time.Duration(v)
	}
	s := AlarmSettings{
		MaxErrorBound: time.Duration(c.GetMaxErrorBoundNs()),
		MaxDrift:      time.Duration(c.GetMaxDriftNs()),
		WarningRatio:  c.GetAlarmWarningRatio(),
		For:           orDur(c.GetAlarmForNs(), DefaultAlarmFor),
		ClearFor:      orDur(c.GetAlarmClearForNs(), DefaultAlarmClearFor),
		Retention:     orDur(c.GetAlarmRetentionNs(), DefaultAlarmRetention),
		EvalInterval:  orDur(c.GetAlarmEvalIntervalNs(), DefaultAlarmEvalInterval),
	}
	if s.WarningRatio <= 0 {
		s.WarningRatio = DefaultAlarmWarningRatio
	}
	s.WarnErrorBound = time.Duration(float64(s.MaxErrorBound) * s.WarningRatio)
	s.WarnSpread = time.Duration(float64(s.MaxDrift) * s.WarningRatio)
	return s
}

// validateAlarmConfig adds a problem for every alarm setting out of range.
func validateAlarmConfig(c *pb.RuntimeConfig, bad func(format string, args ...any)) {
	if r := c.GetAlarmWarningRatio(); r < 0 || r >= 1 || r != r {
		bad("alarm_warning_ratio is %v; it must be in (0, 1) (0 means the default %v): warnings fire at this fraction of max_error_bound_ns and max_drift_ns", r, DefaultAlarmWarningRatio)
	}
	for _, d := range []struct {
		name string
		v    int64
	}{
		{"alarm_for_ns", c.GetAlarmForNs()},
		{"alarm_clear_for_ns", c.GetAlarmClearForNs()},
		{"alarm_retention_ns", c.GetAlarmRetentionNs()},
		{"alarm_eval_interval_ns", c.GetAlarmEvalIntervalNs()},
	} {
		if d.v < 0 {
			bad("%s is %d (%s); it must not be negative (0 means the default)", d.name, d.v, time.Duration(d.v))
		}
	}
	if v := c.GetAlarmEvalIntervalNs(); v > 0 && v < int64(100*time.Millisecond) {
		bad("alarm_eval_interval_ns is %s; below 100ms the leader would do little else", time.Duration(v))
	}
	if v := c.GetAlarmRetentionNs(); v > 0 && v < int64(time.Minute) {
		bad("alarm_retention_ns is %s; keep cleared alarms at least 1m", time.Duration(v))
	}
}

// applyRaiseAlarm raises an alarm or updates an active one. An alarm
// raised again while active is the same episode: its raised_at and
// first_seen stay, its figure, severity and message follow the command.
// Cleared alarms past retention are dropped (the command's time is the
// clock, so every replica drops the same ones).
func (f *FSM) applyRaiseAlarm(_ uint64, cmd *pb.RaiseAlarmCommand) (proto.Message, error) {
	a := cmd.GetAlarm()
	if a.GetId() == "" {
		return nil, fmt.Errorf("%w: alarm without id", ErrInvalidCommand)
	}
	stored := clone(a)
	stored.Active = true
	stored.ClearedAt = nil
	if stored.GetFirstSeen() == nil {
		stored.FirstSeen = clone(a.GetRaisedAt())
	}
	if prev, ok := f.st.alarms[a.GetId()]; ok {
		if prev.GetActive() {
			// Still the same episode: keep when it started.
			if prev.GetRaisedAt() != nil {
				stored.RaisedAt = prev.GetRaisedAt()
			}
			if prev.GetFirstSeen() != nil {
				stored.FirstSeen = prev.GetFirstSeen()
			}
			if stored.GetUpdatedAt() == nil {
				stored.UpdatedAt = clone(a.GetRaisedAt())
			}
		}
	} else {
		f.st.alarmOrder = append(f.st.alarmOrder, a.GetId())
	}
	f.st.alarms[a.GetId()] = stored
	f.pruneAlarmsLocked(a.GetRaisedAt())
	return clone(stored), nil
}

func (f *FSM) applyClearAlarm(_ uint64, cmd *pb.ClearAlarmCommand) (proto.Message, error) {
	a, ok := f.st.alarms[cmd.GetId()]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrAlarmNotFound, cmd.GetId())
	}
	if a.GetActive() {
		a.Active = false
		a.ClearedAt = clone(cmd.GetClearedAt())
	}
	out := clone(a)
	f.pruneAlarmsLocked(cmd.GetClearedAt())
	return out, nil
}

// pruneAlarmsLocked drops cleared alarms cleared more than the retention
// before now (a time from the command being applied), and the oldest
// cleared ones beyond MaxClearedAlarms. Active alarms are never dropped.
func (f *FSM) pruneAlarmsLocked(now *pb.StampedTime) {
	retention := AlarmSettingsOf(f.st.config).Retention
	var cutoff time.Time
	if t := now.GetLocalTime(); t != nil {
		cutoff = t.AsTime().Add(-retention)
	}
	cleared := 0
	for _, id := range f.st.alarmOrder {
		if !f.st.alarms[id].GetActive() {
			cleared++
		}
	}
	kept := f.st.alarmOrder[:0]
	for _, id := range f.st.alarmOrder {
		a := f.st.alarms[id]
		if !a.GetActive() {
			at := a.GetClearedAt().GetLocalTime()
			tooOld := !cutoff.IsZero() && at != nil && at.AsTime().Before(cutoff)
			if tooOld || cleared > MaxClearedAlarms {
				delete(f.st.alarms, id)
				cleared--
				continue
			}
		}
		kept = append(kept, id)
	}
	f.st.alarmOrder = kept
}
