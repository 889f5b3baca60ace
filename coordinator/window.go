package coordinator

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stillpoint-dev/stillpoint/internal/clock"
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

// ErrUncertifiedReading: an ack or unpause reading cannot enter a window
// (no local time, no estimate, or an estimate that is not synchronized).
var ErrUncertifiedReading = errors.New("reading cannot be certified")

// validateReadings checks every target's ack and unpause reading with
// clock.ValidateStamp (SPEC "Clock model": only readings taken under a
// synchronized estimate may enter a window; a missing local time would
// decode to 1970 and silently drop out of max(ack)). The error names every
// bad reading: node, which reading, and why.
func validateReadings(op *pb.Operation) error {
	var bad []string
	var errs []error
	for _, t := range op.GetTargets() {
		for _, r := range []struct {
			what string
			st   *pb.StampedTime
		}{{"ack", t.GetAckedAt()}, {"unpause", t.GetUnpauseSentAt()}} {
			if err := clock.ValidateStamp(r.st); err != nil {
				bad = append(bad, fmt.Sprintf("%s: %s reading: %v", t.GetNode(), r.what, err))
				errs = append(errs, err)
			}
		}
	}
	if len(bad) == 0 {
		return nil
	}
	return &readingsError{msg: "cannot certify a window: " + strings.Join(bad, "; "), errs: append([]error{ErrUncertifiedReading}, errs...)}
}

// readingsError names every bad reading once and matches
// ErrUncertifiedReading and each reading's clock error with errors.Is.
type readingsError struct {
	msg  string
	errs []error
}

func (e *readingsError) Error() string   { return e.msg }
func (e *readingsError) Unwrap() []error { return e.errs }

// computeWindow is SPEC step 6 over an operation's recorded readings,
// every one of them validated first.
func computeWindow(op *pb.Operation, cfg *pb.RuntimeConfig) (*pb.RestoreWindow, error) {
	if len(op.GetTargets()) == 0 {
		return nil, fmt.Errorf("%w: operation %s has no targets", ErrUncertifiedReading, op.GetOpId())
	}
	if err := validateReadings(op); err != nil {
		return nil, err
	}
	targets := make([]window.Target, 0, len(op.GetTargets()))
	for _, t := range op.GetTargets() {
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
