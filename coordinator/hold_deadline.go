package coordinator

import (
	"math"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stillpoint-dev/stillpoint/internal/clock"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// holdDeadline is when a hold of length hold that starts at now ends, on
// the same clock and with the estimate now was read under. The estimate's
// bound is the one in force at now; by the deadline it has grown by the
// drift over the hold, which holdLeft adds back.
func holdDeadline(now *pb.StampedTime, hold time.Duration) *pb.StampedTime {
	d := proto.Clone(now).(*pb.StampedTime)
	d.LocalTime = timestamppb.New(now.GetLocalTime().AsTime().Add(hold))
	return d
}

// holdLeft is how long a runner taking over op at now (its own server's
// reading) must still hold so that the recorded deadline has surely passed
// in true time. The deadline was read on another server's clock; both
// readings are turned into true-time intervals with their estimates and
// the runner waits from the earliest true now to the latest true deadline:
//
//	left = (deadline + θ₁ + ε₁ + drift·hold) − (now + θ₂ − ε₂)
//
// So a hold is never cut short by the two clocks disagreeing; at worst it
// runs ε₁ + ε₂ + drift·hold longer. It is never longer than the hold
// itself (the hold began before the takeover), and when either reading has
// no synchronized estimate the two wall clocks cannot be compared: the
// whole hold is held again, as if it had just begun.
func holdLeft(op *pb.Operation, now *pb.StampedTime) time.Duration {
	return leftUntil(op.GetHoldDeadline(), holdSpan(op), now)
}

// minHoldLeft is, as holdLeft, how long op must still be held for its
// minimum hold (hold_ns) to have surely passed: for a hold that lasts
// until something ends it (an operator, a backup's last hook).
func minHoldLeft(op *pb.Operation, now *pb.StampedTime) time.Duration {
	d := op.GetHoldDeadline()
	if d == nil {
		return time.Duration(op.GetHoldNs())
	}
	minEnd := proto.Clone(d).(*pb.StampedTime)
	minEnd.LocalTime = timestamppb.New(d.GetLocalTime().AsTime().Add(time.Duration(op.GetHoldNs()) - holdSpan(op)))
	return leftUntil(minEnd, time.Duration(op.GetHoldNs()), now)
}

// leftUntil is how long, from now, until the deadline d of a hold of
// length hold has surely passed in true time (see holdLeft).
func leftUntil(d *pb.StampedTime, hold time.Duration, now *pb.StampedTime) time.Duration {
	if clock.ValidateStamp(d) != nil || clock.ValidateStamp(now) != nil {
		return hold
	}
	_, deadlineHi := clock.TrueInterval(d)
	growth := time.Duration(math.Ceil(float64(hold) * d.GetEstimate().GetMaxDriftPpm() / 1e6))
	nowLo, _ := clock.TrueInterval(now)
	return min(max(deadlineHi.Add(growth).Sub(nowLo), 0), hold)
}
