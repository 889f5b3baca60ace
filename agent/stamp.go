package agent

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stillpoint-dev/stillpoint/internal/clock"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// stamp pairs a local wall reading with the estimate in force.
// TEMPORARY until internal/clock lands Estimate.Stamp.
func stamp(e clock.Estimate, now time.Time) *pb.StampedTime {
	return &pb.StampedTime{
		LocalTime: timestamppb.New(now),
		Estimate: &pb.ClockEstimate{
			OffsetNs:         int64(e.Offset),
			ErrorBoundNs:     int64(e.BoundAt(now)),
			Status:           pb.ClockStatus(e.Status),
			Reason:           e.Reason,
			AgeNs:            int64(e.Age(now)),
			BaseErrorBoundNs: int64(e.ErrorBound),
			MaxDriftPpm:      e.MaxDriftPPM,
		},
	}
}
