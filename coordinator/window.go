package coordinator

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stillpoint-dev/stillpoint/internal/window"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// reading turns a stamped wall time into a window reading: the local time
// with the offset and the bound in force when it was read.
func reading(st *pb.StampedTime) window.Reading {
	return window.Reading{
		Local:  st.GetLocalTime().AsTime(),
		Offset: time.Duration(st.GetEstimate().GetOffsetNs()),
		Bound:  time.Duration(st.GetEstimate().GetErrorBoundNs()),
	}
}

// computeWindow is SPEC step 6 over an operation's recorded readings.
func computeWindow(op *pb.Operation, cfg *pb.RuntimeConfig) (*pb.RestoreWindow, error) {
	targets := make([]window.Target, 0, len(op.GetTargets()))
	for _, t := range op.GetTargets() {
		if t.GetAckedAt().GetEstimate() == nil || t.GetUnpauseSentAt().GetEstimate() == nil {
			return nil, fmt.Errorf("%s: a reading has no clock estimate; cannot certify a window", t.GetNode())
		}
		targets = append(targets, window.Target{Node: t.GetNode(), Ack: reading(t.GetAckedAt()), Unpause: reading(t.GetUnpauseSentAt())})
	}
	w, err := window.Compute(targets, window.Options{
		MinWidth:         time.Duration(cfg.GetMinWindowNs()),
		TargetClockBound: time.Duration(cfg.GetTargetClockBoundNs()),
	})
	if err != nil {
		return nil, err
	}
	return &pb.RestoreWindow{
		Start:         timestamppb.New(w.Start),
		End:           timestamppb.New(w.End),
		RestorePoint:  timestamppb.New(w.RestorePoint),
		UncertaintyNs: int64(w.Uncertainty),
		WidthNs:       int64(w.Width),
	}, nil
}

// minHold is how long the targets must stay paused after the last ack:
// at least 2·max ε + margin (SPEC step 4), and long enough that the window
// left after the bounds, the target clock bound β on both sides, is at
// least max(min_window, 2·max ε) wide — a restore point whose ± covers at
// least one clock bound on either side.
func minHold(requested, maxBound time.Duration, cfg *pb.RuntimeConfig) time.Duration {
	width := max(time.Duration(cfg.GetMinWindowNs()), 2*maxBound)
	extra := time.Duration(cfg.GetMarginNs()+2*cfg.GetTargetClockBoundNs()) + width
	return window.MinHold(requested, maxBound, extra)
}
