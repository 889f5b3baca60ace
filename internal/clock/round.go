package clock

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// round queries every server concurrently (skipping those backing off when
// honorBackoff) and turns the answers into an estimate.
func (s *Sampler) round(ctx context.Context, honorBackoff bool) (Estimate, Reading) {
	k0, _ := s.readKernel() // a failed read is the sampler's to report (install)
	start := ReadClock(s.cfg.Clock)
	timeout := s.cfg.Timeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	n := len(s.cfg.Servers)
	samples := make([]sample, n)
	pending := make([]bool, n) // asked, no answer yet
	queried := make([]bool, n)
	type result struct {
		i int
		s sample
	}
	ch := make(chan result, n) // buffered: a goroutine never blocks after an abandoned round
	asked := 0
	for i, addr := range s.cfg.Servers {
		if honorBackoff {
			if skip, why := s.backoff.skip(addr, start.Mono); skip {
				samples[i] = sample{src: Source{Address: addr, Verdict: Unreachable, Reason: why}, at: start, err: ErrUnreachable}
				continue
			}
		}
		if timeout <= 0 || ctx.Err() != nil {
			samples[i] = abandoned(addr, start, ctx)
			continue
		}
		pending[i], queried[i] = true, true
		asked++
		go func() { ch <- result{i, query(addr, timeout, s.cfg.Clock, s.cfg.MaxDispersion)} }()
	}
wait:
	for ; asked > 0; asked-- {
		select {
		case r := <-ch:
			samples[r.i] = r.s
			pending[r.i] = false
		case <-ctx.Done():
			break wait
		}
	}
	end := ReadClock(s.cfg.Clock)
	for i, p := range pending {
		if p {
			samples[i] = abandoned(s.cfg.Servers[i], end, ctx)
			continue
		}
		if honorBackoff && queried[i] {
			s.backoff.record(samples[i].src.Address, samples[i].err, end.Mono)
		}
	}
	k1, _ := s.readKernel()
	rate := s.cfg.MaxDriftPPM + max(k0.SlewPPM(), k1.SlewPPM())
	return s.assemble(samples, start, end, rate), end
}

func abandoned(addr string, at Reading, ctx context.Context) sample {
	err := fmt.Errorf("%w: query abandoned: %v", ErrUnreachable, context.Cause(ctx))
	if ctx.Err() == nil {
		err = fmt.Errorf("%w: no time left before the deadline", ErrUnreachable)
	}
	return sample{src: Source{Address: addr, Verdict: Unreachable, Reason: err.Error()}, at: at, err: err}
}

// assemble selects among the samples with the intersection algorithm and
// builds the estimate as of end, aging each sample to end at ratePPM.
func (s *Sampler) assemble(samples []sample, start, end Reading, ratePPM float64) Estimate {
	e := Estimate{
		MaxDriftPPM: s.cfg.MaxDriftPPM,
		AsOf:        end.Wall,
		Sources:     make([]Source, len(samples)),
	}
	for i, sm := range samples {
		e.Sources[i] = sm.src
	}
	jump := wallJump(start, end)
	if jump.Abs() > s.cfg.JumpThreshold {
		e.Status = Disrupted
		e.Reason = fmt.Sprintf("wall clock jumped %s against the monotonic clock during sampling (threshold %v)", fmtSigned(jump.Round(time.Microsecond)), s.cfg.JumpThreshold)
		return e
	}
	var (
		intervals []Interval
		index     []int // intervals[k] belongs to samples[index[k]]
		failures  []string
	)
	for i, sm := range samples {
		if sm.err != nil {
			failures = append(failures, sm.src.Address+": "+sm.src.Reason)
			continue
		}
		// Age each sample to the estimate's instant at the drift rate.
		age := max(end.Mono-sm.at.Mono, 0)
		intervals = append(intervals, sm.interval(drift(age, ratePPM)))
		index = append(index, i)
	}
	need := s.cfg.quorum()
	if len(intervals) == 0 {
		e.Status = Unsynchronized
		if allUnreachable(samples) {
			e.Reason = fmt.Sprintf("all %d servers unreachable: %s", len(samples), strings.Join(failures, "; "))
		} else {
			e.Reason = fmt.Sprintf("no majority: 0 of %d servers gave a usable sample (need %d): %s", len(samples), need, strings.Join(failures, "; "))
		}
		return e
	}
	lo, hi, chosen, ok := intersectQuorum(intervals, need)
	if !ok {
		// Nobody is outvoted without a majority: each answering server
		// may be the right one, so none is called a falseticker.
		e.Status = Unsynchronized
		var usable []string
		for k, i := range index {
			src := &e.Sources[i]
			src.Verdict = NoMajority
			src.Reason = fmt.Sprintf("no %d of %d servers agree", need, len(samples))
			usable = append(usable, fmt.Sprintf("%s: offset %s ± %s", src.Address, fmtDur(src.Offset), fmtBound(intervals[k].Hi-src.Offset)))
		}
		e.Reason = fmt.Sprintf("no majority: no offset is within the bounds of %d of %d servers (%s)", need, len(samples), strings.Join(append(usable, failures...), "; "))
		return e
	}
	selected := make(map[int]bool, len(chosen))
	for _, k := range chosen {
		selected[index[k]] = true
	}
	leaps := 0
	for k, i := range index {
		src := &e.Sources[i]
		if selected[i] {
			src.Verdict = Selected
			if src.Leap == 1 || src.Leap == 2 {
				leaps++
			}
			continue
		}
		src.Verdict = Falseticker
		src.Reason = fmt.Sprintf("offset %s ± %s is outside the majority interval [%s, %s]",
			fmtDur(src.Offset), fmtBound(intervals[k].Hi-src.Offset), fmtDur(lo), fmtDur(hi))
	}
	e.Status = Synchronized
	e.Offset = lo + (hi-lo)/2
	// A step below the jump threshold inside the round moved the local
	// readings some samples were taken with: widen the bound by it.
	e.ErrorBound = hi - e.Offset + jump.Abs() // rounds up when hi-lo is odd
	e.LeapPending = leaps*2 > len(chosen)
	return e
}

func allUnreachable(samples []sample) bool {
	for _, sm := range samples {
		if sm.src.Verdict != Unreachable {
			return false
		}
	}
	return true
}

// drift is how far a clock drifting at ppm can move in age, rounded up.
func drift(age time.Duration, ppm float64) time.Duration {
	d := float64(age) * ppm / 1e6
	n := time.Duration(d)
	if float64(n) < d {
		n++
	}
	return n
}

// fmtDur prints a duration in milliseconds with a sign, e.g. +40.012ms.
func fmtDur(d time.Duration) string {
	return fmt.Sprintf("%+.3fms", float64(d)/float64(time.Millisecond))
}

// fmtBound prints a non-negative duration in milliseconds, e.g. 0.034ms.
func fmtBound(d time.Duration) string {
	return fmt.Sprintf("%.3fms", float64(d)/float64(time.Millisecond))
}

// fmtSigned prints a duration with an explicit sign, e.g. +1s.
func fmtSigned(d time.Duration) string {
	if d >= 0 {
		return "+" + d.String()
	}
	return d.String()
}
