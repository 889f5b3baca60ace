package clock

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// Proto encodes the estimate as in force at local time now:
// error_bound_ns = BoundAt(now), age_ns = Age(now).
func (e Estimate) Proto(now time.Time) *pb.ClockEstimate {
	out := &pb.ClockEstimate{
		OffsetNs:         int64(e.Offset),
		ErrorBoundNs:     int64(e.BoundAt(now)),
		Status:           StatusToProto(e.Status),
		Reason:           e.Reason,
		AgeNs:            int64(e.Age(now)),
		BaseErrorBoundNs: int64(e.ErrorBound),
		MaxDriftPpm:      e.MaxDriftPPM,
		LeapPending:      e.LeapPending,
		SlewPpm:          e.SlewPPM,
		SlewOffsetNs:     int64(e.slewAt(now)),
		FailedRounds:     uint32(max(e.FailedRounds, 0)),
		LastFailure:      e.LastFailure,
	}
	for _, s := range e.Sources {
		if s.Verdict == Falseticker {
			out.Falsetickers++
		}
	}
	if !e.AsOf.IsZero() {
		out.SampledAt = timestamppb.New(e.AsOf)
	}
	if k := e.Kernel; k != nil {
		out.Kernel = &pb.KernelClock{FreqPpm: k.FreqPPM, TickUs: k.TickUS, NominalTickUs: k.NominalTickUS,
			PendingOffsetNs: int64(k.PendingOffset), Status: k.Status}
	}
	for _, s := range e.Sources {
		out.Sources = append(out.Sources, &pb.ClockSource{
			Address:          s.Address,
			OffsetNs:         int64(s.Offset),
			RttNs:            int64(s.RTT),
			Stratum:          uint32(s.Stratum),
			ErrorBoundNs:     int64(s.ErrorBound),
			Verdict:          VerdictToProto(s.Verdict),
			Reason:           s.Reason,
			Leap:             uint32(s.Leap),
			RootDelayNs:      int64(s.RootDelay),
			RootDispersionNs: int64(s.RootDispersion),
			PrecisionNs:      int64(s.Precision),
			Answered:         s.Answered,
		})
	}
	return out
}

// Stamp pairs local time now with the estimate in force at it. The
// estimate must have been evaluated at now (Sampler.Stamp gives both).
func (e Estimate) Stamp(now time.Time) *pb.StampedTime {
	return &pb.StampedTime{LocalTime: timestamppb.New(now), Estimate: e.Proto(now)}
}

// FromProto decodes an estimate. AsOf carries no monotonic reading, so
// BoundAt on the result measures age on the wall clock of whoever calls
// it; prefer the error_bound_ns that travelled with a reading.
func FromProto(p *pb.ClockEstimate) (Estimate, error) {
	if p == nil {
		return Estimate{}, ErrNoEstimate
	}
	e := Estimate{
		Offset:       time.Duration(p.GetOffsetNs()),
		ErrorBound:   time.Duration(p.GetBaseErrorBoundNs()),
		MaxDriftPPM:  p.GetMaxDriftPpm(),
		Status:       StatusFromProto(p.GetStatus()),
		Reason:       p.GetReason(),
		LeapPending:  p.GetLeapPending(),
		SlewPPM:      p.GetSlewPpm(),
		SlewOffset:   time.Duration(p.GetSlewOffsetNs()),
		FailedRounds: int(p.GetFailedRounds()),
		LastFailure:  p.GetLastFailure(),
	}
	if k := p.GetKernel(); k != nil {
		e.Kernel = &KernelClock{FreqPPM: k.GetFreqPpm(), TickUS: k.GetTickUs(), NominalTickUS: k.GetNominalTickUs(),
			PendingOffset: time.Duration(k.GetPendingOffsetNs()), Status: k.GetStatus()}
	}
	if e.SlewPPM < 0 || e.SlewOffset < 0 {
		return Estimate{}, fmt.Errorf("%w: negative slew (%g ppm, offset %d ns)", ErrNoEstimate, p.GetSlewPpm(), p.GetSlewOffsetNs())
	}
	if e.ErrorBound < 0 || p.GetErrorBoundNs() < 0 {
		return Estimate{}, fmt.Errorf("%w: negative error bound (%d ns, base %d ns)", ErrNoEstimate, p.GetErrorBoundNs(), p.GetBaseErrorBoundNs())
	}
	if p.SampledAt != nil {
		if err := p.SampledAt.CheckValid(); err != nil {
			return Estimate{}, fmt.Errorf("clock estimate sampled_at: %w", err)
		}
		e.AsOf = p.SampledAt.AsTime()
	}
	if (e.SlewPPM != 0 || e.SlewOffset != 0) && !e.AsOf.IsZero() {
		// slew_offset_ns runs to the accompanying reading.
		e.SlewAsOf = e.AsOf.Add(time.Duration(p.GetAgeNs()))
	}
	for _, s := range p.GetSources() {
		e.Sources = append(e.Sources, Source{
			Address:        s.GetAddress(),
			Offset:         time.Duration(s.GetOffsetNs()),
			RTT:            time.Duration(s.GetRttNs()),
			Stratum:        uint8(min(s.GetStratum(), 255)),
			Leap:           uint8(min(s.GetLeap(), 3)),
			ErrorBound:     time.Duration(s.GetErrorBoundNs()),
			Verdict:        VerdictFromProto(s.GetVerdict()),
			Reason:         s.GetReason(),
			RootDelay:      time.Duration(s.GetRootDelayNs()),
			RootDispersion: time.Duration(s.GetRootDispersionNs()),
			Precision:      time.Duration(s.GetPrecisionNs()),
			Answered:       s.GetAnswered(),
		})
	}
	return e, nil
}

// TrueInterval is where true time lay when the stamped local time was read:
// [t + θ − ε, t + θ + ε], with ε the bound in force at that reading
// (error_bound_ns). Check ValidateStamp first: an unsynchronized estimate
// gives a meaningless interval, a missing one gives zero times.
func TrueInterval(st *pb.StampedTime) (lo, hi time.Time) {
	if st.GetLocalTime() == nil || st.GetEstimate() == nil {
		return time.Time{}, time.Time{}
	}
	mid := st.GetLocalTime().AsTime().Add(time.Duration(st.GetEstimate().GetOffsetNs()))
	b := time.Duration(st.GetEstimate().GetErrorBoundNs())
	return mid.Add(-b), mid.Add(b)
}

// ValidateStamp checks that a stamped time can be turned into a true-time
// interval: a present, valid, non-zero local time (a missing or zero one
// decodes to 1970 and would silently drop out of a max) and a
// synchronized estimate with a positive bound (a zero bound is not a
// measurement: every sample carries at least the server's precision).
// Errors wrap ErrBadStamp, ErrNoEstimate or ErrNotSynchronized.
func ValidateStamp(st *pb.StampedTime) error {
	if st == nil || st.GetLocalTime() == nil {
		return fmt.Errorf("%w: no local time", ErrBadStamp)
	}
	if err := st.GetLocalTime().CheckValid(); err != nil {
		return fmt.Errorf("%w: local time: %w", ErrBadStamp, err)
	}
	if lt := st.GetLocalTime(); lt.GetSeconds() == 0 && lt.GetNanos() == 0 {
		return fmt.Errorf("%w: local time is zero (1970-01-01T00:00:00Z)", ErrBadStamp)
	}
	est := st.GetEstimate()
	if est == nil {
		return fmt.Errorf("%w with local time %s", ErrNoEstimate, st.GetLocalTime().AsTime().Format(time.RFC3339Nano))
	}
	if est.GetStatus() != pb.ClockStatus_CLOCK_STATUS_SYNCHRONIZED {
		return fmt.Errorf("%w: status %s: %s", ErrNotSynchronized, StatusFromProto(est.GetStatus()), est.GetReason())
	}
	if est.GetErrorBoundNs() <= 0 {
		return fmt.Errorf("%w: error bound %d ns is not positive", ErrNoEstimate, est.GetErrorBoundNs())
	}
	return nil
}

// StatusToProto maps a Status to the wire enum.
func StatusToProto(s Status) pb.ClockStatus {
	switch s {
	case Synchronized:
		return pb.ClockStatus_CLOCK_STATUS_SYNCHRONIZED
	case Stale:
		return pb.ClockStatus_CLOCK_STATUS_STALE
	case Unsynchronized:
		return pb.ClockStatus_CLOCK_STATUS_UNSYNCHRONIZED
	case Disrupted:
		return pb.ClockStatus_CLOCK_STATUS_DISRUPTED
	}
	return pb.ClockStatus_CLOCK_STATUS_UNSPECIFIED
}

// StatusFromProto is the inverse of StatusToProto.
func StatusFromProto(s pb.ClockStatus) Status {
	switch s {
	case pb.ClockStatus_CLOCK_STATUS_SYNCHRONIZED:
		return Synchronized
	case pb.ClockStatus_CLOCK_STATUS_STALE:
		return Stale
	case pb.ClockStatus_CLOCK_STATUS_UNSYNCHRONIZED:
		return Unsynchronized
	case pb.ClockStatus_CLOCK_STATUS_DISRUPTED:
		return Disrupted
	}
	return StatusUnspecified
}

// VerdictToProto maps a Verdict to the wire enum.
func VerdictToProto(v Verdict) pb.SourceVerdict {
	switch v {
	case Selected:
		return pb.SourceVerdict_SOURCE_VERDICT_SELECTED
	case Falseticker:
		return pb.SourceVerdict_SOURCE_VERDICT_FALSETICKER
	case Unreachable:
		return pb.SourceVerdict_SOURCE_VERDICT_UNREACHABLE
	case Invalid:
		return pb.SourceVerdict_SOURCE_VERDICT_INVALID
	case NotSynchronized:
		return pb.SourceVerdict_SOURCE_VERDICT_NOT_SYNCHRONIZED
	case NoMajority:
		return pb.SourceVerdict_SOURCE_VERDICT_NO_MAJORITY
	}
	return pb.SourceVerdict_SOURCE_VERDICT_UNSPECIFIED
}

// VerdictFromProto is the inverse of VerdictToProto.
func VerdictFromProto(v pb.SourceVerdict) Verdict {
	switch v {
	case pb.SourceVerdict_SOURCE_VERDICT_SELECTED:
		return Selected
	case pb.SourceVerdict_SOURCE_VERDICT_FALSETICKER:
		return Falseticker
	case pb.SourceVerdict_SOURCE_VERDICT_UNREACHABLE:
		return Unreachable
	case pb.SourceVerdict_SOURCE_VERDICT_INVALID:
		return Invalid
	case pb.SourceVerdict_SOURCE_VERDICT_NOT_SYNCHRONIZED:
		return NotSynchronized
	case pb.SourceVerdict_SOURCE_VERDICT_NO_MAJORITY:
		return NoMajority
	}
	return VerdictUnspecified
}
