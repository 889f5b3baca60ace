package plan

import (
	"testing"
	"time"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// instants lists sched's instants after from up to to, in UTC.
func instants(t *testing.T, expr, zone, from, to string) []string {
	t.Helper()
	s, loc, err := Schedule(&pb.BackupPlan{Schedule: expr, ScheduleTimeZone: zone})
	if err != nil {
		t.Fatal(err)
	}
	f, err := time.Parse(time.RFC3339, from)
	if err != nil {
		t.Fatal(err)
	}
	end, err := time.Parse(time.RFC3339, to)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for n := s.Next(f.In(loc)); !n.IsZero() && !n.After(end); n = s.Next(n) {
		out = append(out, n.UTC().Format(time.RFC3339))
		if len(out) > 100 {
			t.Fatal("runaway schedule")
		}
	}
	return out
}

func sameList(t *testing.T, what string, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %v, want %v", what, got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s: got %v, want %v", what, got, want)
		}
	}
}

// A schedule with fixed hours fires once per day across DST changes: a
// wall time the clocks skip fires as much later as they jumped (not a day
// without a backup), a wall time they repeat fires at its first
// occurrence only (not twice).
func TestScheduleDSTFixedHours(t *testing.T) {
	// New York springs forward 2026-03-08 02:00 EST -> 03:00 EDT.
	sameList(t, "30 2 daily across spring forward",
		instants(t, "30 2 * * *", "America/New_York", "2026-03-07T00:00:00Z", "2026-03-10T00:00:00Z"),
		[]string{"2026-03-07T07:30:00Z", "2026-03-08T07:30:00Z", "2026-03-09T06:30:00Z"})
	// Falls back 2026-11-01 02:00 EDT -> 01:00 EST: 01:30 happens twice.
	sameList(t, "30 1 daily across fall back",
		instants(t, "30 1 * * *", "America/New_York", "2026-10-31T00:00:00Z", "2026-11-03T00:00:00Z"),
		[]string{"2026-10-31T05:30:00Z", "2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"})
	// Berlin: 02:30 does not exist on 2026-03-29, happens twice on 2026-10-25.
	sameList(t, "30 2 Berlin spring",
		instants(t, "30 2 * * *", "Europe/Berlin", "2026-03-28T00:00:00Z", "2026-03-31T00:00:00Z"),
		[]string{"2026-03-28T01:30:00Z", "2026-03-29T01:30:00Z", "2026-03-30T00:30:00Z"})
	sameList(t, "30 2 Berlin autumn",
		instants(t, "30 2 * * *", "Europe/Berlin", "2026-10-24T00:00:00Z", "2026-10-27T00:00:00Z"),
		[]string{"2026-10-24T00:30:00Z", "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"})
	// Santiago: midnight does not exist on 2026-09-06 (00:00 -04 -> 01:00 -03).
	sameList(t, "0 0 Santiago",
		instants(t, "0 0 * * *", "America/Santiago", "2026-09-05T00:00:00Z", "2026-09-08T00:00:00Z"),
		[]string{"2026-09-05T04:00:00Z", "2026-09-06T04:00:00Z", "2026-09-07T03:00:00Z"})
	// A fixed-hour schedule whose instants all fall in the skipped hour
	// fires once that day.
	sameList(t, "*/20 2 across spring forward",
		instants(t, "*/20 2 * * *", "America/New_York", "2026-03-08T06:00:00Z", "2026-03-08T12:00:00Z"),
		[]string{"2026-03-08T07:00:00Z"})
	// An anchor inside the repeated hour, after the first 01:30: the
	// second 01:30 is not another instant.
	sameList(t, "anchor in the repeated hour",
		instants(t, "30 1 * * *", "America/New_York", "2026-11-01T06:10:00Z", "2026-11-02T12:00:00Z"),
		[]string{"2026-11-02T06:30:00Z"})
}

// A schedule over every hour keeps elapsed time: each real hour once.
func TestScheduleDSTEveryHour(t *testing.T) {
	sameList(t, "hourly across fall back",
		instants(t, "0 * * * *", "America/New_York", "2026-11-01T04:30:00Z", "2026-11-01T08:30:00Z"),
		[]string{"2026-11-01T05:00:00Z", "2026-11-01T06:00:00Z", "2026-11-01T07:00:00Z", "2026-11-01T08:00:00Z"})
	sameList(t, "hourly across spring forward",
		instants(t, "0 * * * *", "America/New_York", "2026-03-08T05:30:00Z", "2026-03-08T08:30:00Z"),
		[]string{"2026-03-08T06:00:00Z", "2026-03-08T07:00:00Z", "2026-03-08T08:00:00Z"})
	sameList(t, "@every unchanged",
		instants(t, "@every 90m", "America/New_York", "2026-11-01T04:00:00Z", "2026-11-01T08:30:00Z"),
		[]string{"2026-11-01T05:30:00Z", "2026-11-01T07:00:00Z", "2026-11-01T08:30:00Z"})
}
