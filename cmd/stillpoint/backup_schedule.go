package main

import (
	"fmt"
	"time"

	"github.com/stillpoint-dev/stillpoint/internal/plan"
	"github.com/stillpoint-dev/stillpoint/internal/timefmt"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// scheduleLines are the comment lines `backup plan get` prints about a
// plan's schedule at now: when it last fired and what became of it, and
// when it fires next, each in the schedule's zone with its offset.
func scheduleLines(rec *pb.PlanRecord, now time.Time) []string {
	p := rec.GetPlan()
	var out []string
	sched, loc, err := plan.Schedule(p)
	if loc == nil {
		loc = time.UTC
	}
	if lf := rec.GetLastFired(); lf != nil {
		line := fmt.Sprintf("# schedule last fired for %s", timefmt.InZone(lf.AsTime(), loc))
		switch {
		case rec.GetLastFiredOpId() != "":
			line += ": op " + rec.GetLastFiredOpId()
		case rec.GetLastFiredReason() != "":
			line += ": no op, " + rec.GetLastFiredReason()
		default:
			line += ": op starting"
		}
		out = append(out, line)
	}
	if p.GetSchedule() == "" {
		return out
	}
	if err != nil || sched == nil {
		return append(out, fmt.Sprintf("# schedule %q cannot be read: %v", p.GetSchedule(), err))
	}
	anchor, ok := plan.ScheduleAnchor(rec)
	if !ok {
		anchor = now
	}
	due := plan.DueAt(sched, loc, anchor, now)
	switch {
	case due.Count > 0:
		out = append(out, fmt.Sprintf("# next fire: due now (%s); the leader fires it within a second", timefmt.InZone(due.Latest, loc)))
	case due.Next.IsZero():
		out = append(out, "# next fire: none (the schedule names no instant within five years)")
	default:
		out = append(out, fmt.Sprintf("# next fire %s (in %s)", timefmt.InZone(due.Next, loc), timefmt.Duration(due.Next.Sub(now))))
	}
	return out
}
