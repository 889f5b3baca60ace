package plan

import (
	"time"

	"github.com/robfig/cron/v3"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// MaxScheduleWalk bounds the instants Due walks for one plan (a five-field
// schedule missed for about two years at one a minute).
const MaxScheduleWalk = 1 << 20

// Due is where a schedule stands at an instant: the instants due since an
// anchor (the latest, the first, how many) and the first one still to
// come. Next is zero when cron finds no instant within its horizon.
type Due struct {
	Latest, First, Next time.Time
	Count               int64
}

// DueAt walks sched from anchor (exclusive) in loc up to now.
func DueAt(sched cron.Schedule, loc *time.Location, anchor, now time.Time) Due {
	var d Due
	t := sched.Next(anchor.In(loc))
	if t.IsZero() || t.After(now) {
		d.Next = t
		return d
	}
	if c, ok := sched.(cron.ConstantDelaySchedule); ok && c.Delay > 0 {
		// @every: t, t+delay, t+2·delay, … (whole seconds).
		n := int64(now.Sub(t) / c.Delay)
		d.First, d.Latest, d.Count = t, t.Add(time.Duration(n)*c.Delay), n+1
		d.Next = d.Latest.Add(c.Delay)
		return d
	}
	d.First = t
	for i := 0; !t.IsZero() && !t.After(now) && i < MaxScheduleWalk; i++ {
		d.Latest = t
		d.Count++
		t = sched.Next(t)
	}
	d.Next = t
	return d
}

// ScheduleAnchor is the instant a stored plan's schedule counts from: its
// last fired instant, else when the plan was set; ok is false when it has
// neither.
func ScheduleAnchor(rec *pb.PlanRecord) (time.Time, bool) {
	if lf := rec.GetLastFired(); lf != nil {
		return lf.AsTime(), true
	}
	if at := rec.GetPlan().GetUpdatedAt().GetLocalTime(); at != nil {
		return at.AsTime(), true
	}
	return time.Time{}, false
}
