package main

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// plan get says when the schedule last fired and fires next in the
// schedule's zone with its offset.
func TestScheduleLines(t *testing.T) {
	now := time.Date(2026, 3, 1, 18, 0, 0, 0, time.UTC) // 03:00 on 3/2 in Tokyo
	set := &pb.StampedTime{LocalTime: timestamppb.New(time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC))}
	nightly := &pb.BackupPlan{Name: "nightly", Schedule: "30 2 * * *", ScheduleTimeZone: "Asia/Tokyo", UpdatedAt: set}
	tests := []struct {
		name string
		rec  *pb.PlanRecord
		want []string
	}{
		{"no schedule", &pb.PlanRecord{Plan: &pb.BackupPlan{Name: "adhoc", UpdatedAt: set}}, nil},
		{"fired, next tomorrow", &pb.PlanRecord{Plan: nightly, LastFired: timestamppb.New(time.Date(2026, 3, 1, 17, 30, 0, 0, time.UTC)), LastFiredOpId: "op-9"}, []string{
			"# schedule last fired for 2026-03-02T02:30:00.000000000+09:00 (Asia/Tokyo): op op-9",
			"# next fire 2026-03-03T02:30:00.000000000+09:00 (Asia/Tokyo) (in 23h30m0s)",
		}},
		{"refused while held", &pb.PlanRecord{Plan: nightly, LastFired: timestamppb.New(time.Date(2026, 3, 1, 17, 30, 0, 0, time.UTC)), LastFiredReason: "cluster ledger is held by operation op-1"}, []string{
			"# schedule last fired for 2026-03-02T02:30:00.000000000+09:00 (Asia/Tokyo): no op, cluster ledger is held by operation op-1",
			"# next fire 2026-03-03T02:30:00.000000000+09:00 (Asia/Tokyo) (in 23h30m0s)",
		}},
		{"never fired, due", &pb.PlanRecord{Plan: nightly}, []string{
			"# next fire: due now (2026-03-02T02:30:00.000000000+09:00 (Asia/Tokyo)); the leader fires it within a second",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := scheduleLines(tc.rec, now)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}
