package clock

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/beevik/ntp"
)

// sample is one server's answer in a round.
type sample struct {
	src Source
	// at is the local reading just after the reply arrived.
	at  Reading
	err error
}

// interval is the sample's θ ± ε.
func (s sample) interval(extra time.Duration) Interval {
	e := s.src.ErrorBound + extra
	return Interval{Lo: s.src.Offset - e, Hi: s.src.Offset + e}
}

// query asks one server, reading the local clock through clk so a skewed
// clock gets the correction for itself.
func query(addr string, timeout time.Duration, clk Clock, maxDispersion time.Duration) sample {
	s := sample{src: Source{Address: addr}}
	resp, err := ntp.QueryWithOptions(addr, ntp.QueryOptions{
		Timeout:       timeout,
		GetSystemTime: clk.Now,
	})
	s.at = ReadClock(clk)
	if err != nil {
		s.err = classifyQueryError(err, timeout)
	} else {
		s.src.Answered = true
		s.src.Offset = resp.ClockOffset
		s.src.RTT = resp.RTT
		s.src.Stratum = resp.Stratum
		s.src.Leap = uint8(resp.Leap)
		s.src.RootDelay = resp.RootDelay
		s.src.RootDispersion = resp.RootDispersion
		s.src.Precision = resp.Precision
		s.src.ErrorBound = sampleBound(resp)
		s.err = validate(resp, maxDispersion)
	}
	switch {
	case s.err == nil:
		s.src.Verdict = Selected // provisional: the intersection decides
	case errors.Is(s.err, ErrUnreachable):
		s.src.Verdict = Unreachable
	case errors.Is(s.err, ErrServerNotSynced):
		s.src.Verdict = NotSynchronized
	default:
		s.src.Verdict = Invalid
	}
	if s.err != nil {
		s.src.Reason = s.err.Error()
	}
	return s
}

// sampleBound is RTT/2 + root delay/2 + root dispersion + precision: true
// time at the server's reply lies within it of local + offset.
func sampleBound(r *ntp.Response) time.Duration {
	return r.RTT/2 + r.RootDelay/2 + r.RootDispersion + r.Precision
}

func classifyQueryError(err error, timeout time.Duration) error {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("%w: no reply within %v", ErrUnreachable, timeout)
	case errors.Is(err, ntp.ErrInvalidTime), errors.Is(err, ntp.ErrInvalidMode),
		errors.Is(err, ntp.ErrInvalidTransmitTime), errors.Is(err, ntp.ErrServerTickedBackwards),
		errors.Is(err, ntp.ErrServerResponseMismatch):
		return fmt.Errorf("%w: %v", ErrBadPacket, err)
	case errors.As(err, &ne):
		return fmt.Errorf("%w: %v", ErrUnreachable, err)
	}
	var ae *net.AddrError
	var de *net.DNSError
	if errors.As(err, &ae) || errors.As(err, &de) {
		return fmt.Errorf("%w: %v", ErrUnreachable, err)
	}
	return fmt.Errorf("%w: %v", ErrInvalidSample, err)
}

// validate judges a reply. Order matters: a stratum-0 reply is a
// kiss-of-death only when it carries a kiss code; with no code (refid 0)
// it is a server that has not synchronized yet — what a starting chronyd
// answers (leap 3, stratum 0, refid 0) — and must not be backed off.
func validate(r *ntp.Response, maxDispersion time.Duration) error {
	if r.Stratum == 0 {
		if r.KissCode != "" {
			return fmt.Errorf("%w %s (stratum 0)", ErrKissOfDeath, r.KissCode)
		}
		return fmt.Errorf("%w (stratum 0, leap %d, no reference id)", ErrServerNotSynced, r.Leap)
	}
	if r.Leap == ntp.LeapNotInSync {
		return fmt.Errorf("%w: %w (stratum %d)", ErrServerNotSynced, ErrLeapNotInSync, r.Stratum)
	}
	if err := impossible(r); err != nil {
		return err
	}
	err := r.Validate()
	switch {
	case err == nil:
	case errors.Is(err, ntp.ErrInvalidStratum):
		return fmt.Errorf("%w %d", ErrBadStratum, r.Stratum)
	case errors.Is(err, ntp.ErrInvalidDispersion):
		return fmt.Errorf("%w: root delay %v, dispersion %v", ErrDispersion, r.RootDelay, r.RootDispersion)
	default:
		return fmt.Errorf("%w: %v", ErrInvalidSample, err)
	}
	if r.RootDispersion > maxDispersion {
		return fmt.Errorf("%w: %v exceeds the maximum %v", ErrDispersion, r.RootDispersion, maxDispersion)
	}
	return nil
}

// impossible rejects a reply whose server processing time T3−T2 exceeds
// the round trip T4−T1 by more than the server's stated precision: one of
// the four timestamps is wrong (chrony under libfaketime does this), the
// library clamps the RTT to 0 and the sample would otherwise be certified
// with a bound of ±precision that need not hold the truth.
func impossible(r *ntp.Response) error {
	ts := r.Timestamps
	roundTrip := ts.ClientRecv.Sub(ts.ClientXmit)
	processing := ts.ServerXmit.Sub(ts.ServerRecv)
	if processing > roundTrip+r.Precision {
		return fmt.Errorf("%w: server processing time T3−T2 %v exceeds the round trip T4−T1 %v (precision %v)",
			ErrImpossibleReply, processing, roundTrip, r.Precision)
	}
	return nil
}

// backsOff reports whether a failure should make the sampler leave the
// server alone for a while: no answer, or a kiss-of-death.
func backsOff(err error) bool {
	return errors.Is(err, ErrUnreachable) || errors.Is(err, ErrKissOfDeath)
}
