package plan

import (
	"testing"
	"time"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

var st0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestDueAt(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		name, schedule, zone string
		anchor, now          time.Time
		latest, first, next  time.Time
		count                int64
	}{
		{name: "every 2s, none due", schedule: "@every 2s", anchor: st0.Add(300 * time.Millisecond), now: st0.Add(time.Second),
			next: st0.Add(2 * time.Second)},
		{name: "every 2s, one due on the dot", schedule: "@every 2s", anchor: st0, now: st0.Add(2 * time.Second),
			latest: st0.Add(2 * time.Second), first: st0.Add(2 * time.Second), count: 1, next: st0.Add(4 * time.Second)},
		{name: "every 2s, 5 due after a gap", schedule: "@every 2s", anchor: st0, now: st0.Add(11 * time.Second),
			latest: st0.Add(10 * time.Second), first: st0.Add(2 * time.Second), count: 5, next: st0.Add(12 * time.Second)},
		{name: "02:30 Tokyo is 17:30 UTC", schedule: "30 2 * * *", zone: "Asia/Tokyo", anchor: at("2026-03-01T00:00:00Z"), now: at("2026-03-01T17:30:00.5Z"),
			latest: at("2026-03-01T17:30:00Z"), first: at("2026-03-01T17:30:00Z"), count: 1, next: at("2026-03-02T17:30:00Z")},
		{name: "four Tokyo nights missed", schedule: "30 2 * * *", zone: "Asia/Tokyo", anchor: at("2026-03-01T00:00:00Z"), now: at("2026-03-04T18:00:00Z"),
			latest: at("2026-03-04T17:30:00Z"), first: at("2026-03-01T17:30:00Z"), count: 4, next: at("2026-03-05T17:30:00Z")},
		{name: "@daily in Paris across the spring change", schedule: "@daily", zone: "Europe/Paris", anchor: at("2026-03-28T23:00:00Z"), now: at("2026-03-29T23:30:00Z"),
			latest: at("2026-03-29T22:00:00Z"), first: at("2026-03-29T22:00:00Z"), count: 1, next: at("2026-03-30T22:00:00Z")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sched, loc, err := Schedule(&pb.BackupPlan{Schedule: tc.schedule, ScheduleTimeZone: tc.zone})
			if err != nil {
				t.Fatal(err)
			}
			d := DueAt(sched, loc, tc.anchor, tc.now)
			if !d.Latest.Equal(tc.latest) || !d.First.Equal(tc.first) || !d.Next.Equal(tc.next) || d.Count != tc.count {
				t.Fatalf("due = latest %v first %v count %d next %v; want %v %v %d %v", d.Latest, d.First, d.Count, d.Next, tc.latest, tc.first, tc.count, tc.next)
			}
		})
	}
}
