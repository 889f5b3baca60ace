package plan

import (
	"time"

	"github.com/robfig/cron/v3"
)

// wallSchedule runs a five-field schedule with fixed hours on the zone's
// wall clock, as cron does across DST changes (robfig/cron alone skips a
// wall time the clocks jump over, a daily backup lost, and fires one they
// repeat twice):
//   - a wall time the clocks skip fires as much later as they jumped
//     (02:30 on a spring-forward night in New York fires at 03:30 EDT);
//     instants of the skipped hour that land on one already fired merge;
//   - a wall time the clocks repeat fires at its first occurrence only.
//
// A schedule over every hour ("0 * * * *") is left to robfig/cron: it
// keeps elapsed time (each real hour once, including a repeated one).
type wallSchedule struct {
	wall *cron.SpecSchedule // the spec, evaluated in UTC (no DST)
	loc  *time.Location
}

// allHours is the Hour field of a spec that matches every hour.
const allHours = 1<<24 - 1

// zoned wraps s for loc when its hours are fixed.
func zoned(s cron.Schedule, loc *time.Location) cron.Schedule {
	spec, ok := s.(*cron.SpecSchedule)
	if !ok || spec.Hour&allHours == allHours {
		return s
	}
	w := *spec
	w.Location = time.UTC
	return wallSchedule{wall: &w, loc: loc}
}

// wallOf is t's reading on loc's clock, as a UTC time.
func wallOf(t time.Time, loc *time.Location) time.Time {
	y, mo, d := t.In(loc).Date()
	h, mi, s := t.In(loc).Clock()
	return time.Date(y, mo, d, h, mi, s, 0, time.UTC)
}

// instant is the first instant whose wall reading in loc is w, or, when
// the clocks skip w, w read with the offset before the jump (so it reads
// w + the jump after it).
func instant(w time.Time, loc *time.Location) time.Time {
	x := time.Date(w.Year(), w.Month(), w.Day(), w.Hour(), w.Minute(), w.Second(), 0, loc)
	if !wallOf(x, loc).Equal(w) {
		// Skipped. Go's choice of offset is unspecified; take the later
		// of w under the offsets in force either side of it.
		_, before := x.Add(-12 * time.Hour).In(loc).Zone()
		_, after := x.Add(12 * time.Hour).In(loc).Zone()
		a := w.Add(-time.Duration(before) * time.Second)
		if b := w.Add(-time.Duration(after) * time.Second); b.After(a) {
			a = b
		}
		return time.Unix(a.Unix(), 0)
	}
	first := x
	for _, back := range []time.Duration{30 * time.Minute, time.Hour, 2 * time.Hour} {
		if y := x.Add(-back); wallOf(y, loc).Equal(w) && y.Before(first) {
			first = y
		}
	}
	return first
}

// Next is the first instant after t.
func (s wallSchedule) Next(t time.Time) time.Time {
	w := wallOf(t, s.loc)
	// A few wall instants can map to t or before (a repeated hour, a
	// skipped hour's instants shifted onto ones already fired); the walk
	// moves past them. Five years without a match is none.
	limit := w.AddDate(5, 0, 0)
	for {
		w = s.wall.Next(w)
		if w.IsZero() || w.After(limit) {
			return time.Time{}
		}
		if at := instant(w, s.loc); at.After(t) {
			return at.In(s.loc)
		}
	}
}
