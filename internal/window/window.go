// Package window computes a cluster pause's safe restore window from the
// wall times agents stamped around it (SPEC "Pause protocol", step 6).
//
// Every target reports two local wall readings, each with the clock estimate
// in force when it was read:
//
//   - Ack, read right after the node acknowledged Pause: the node was paused
//     and drained at or before that true instant;
//   - Unpause, read just before Unpause was sent: the node was still paused at
//     or after that true instant.
//
// A reading means true time ∈ [Local + Offset − Bound, Local + Offset + Bound].
// So every node was certainly paused from max_i(ack_i + θ_i + ε_i) to
// min_i(unpause_i + θ_i − ε_i), whatever the true errors were within their
// bounds. The restore point is that interval's mid-time.
package window

import (
	"math"
	"time"

	"github.com/stillpoint-dev/stillpoint/internal/clock"
)

// DefaultMinWidth is the narrowest window Compute accepts by default.
const DefaultMinWidth = time.Millisecond

// Reading is one local wall time with the clock estimate in force when it
// was read: true time lies in [Local+Offset−Bound, Local+Offset+Bound].
type Reading struct {
	// Local is the agent's wall clock reading.
	Local time.Time
	// Offset θ to add to Local to estimate true time.
	Offset time.Duration
	// Bound ε on the estimate's error at Local (already grown with age).
	Bound time.Duration
}

// FromEstimate pairs a local reading with the estimate in force, taking the
// bound as grown with the estimate's age at local.
// The age is measured on the monotonic clock when local and est.AsOf carry
// one; the stored Local is the wall reading alone.
func FromEstimate(local time.Time, est clock.Estimate) Reading {
	return Reading{Local: local.Round(0), Offset: est.Offset, Bound: est.BoundAt(local)}
}

// Earliest is the earliest true instant the reading can stand for,
// Local + θ − ε.
func (r Reading) Earliest() time.Time { return r.wall().Add(r.Offset).Add(-r.Bound) }

// Latest is the latest true instant the reading can stand for,
// Local + θ + ε.
func (r Reading) Latest() time.Time { return r.wall().Add(r.Offset).Add(r.Bound) }

// wall drops any monotonic clock reading: readings from different hosts
// (or from one process's simulated skewed clocks) compare only by wall time,
// and Go compares by the monotonic clock when both sides carry one.
func (r Reading) wall() time.Time { return r.Local.Round(0) }

// Target is one paused node's pair of readings.
type Target struct {
	Node    string
	Ack     Reading
	Unpause Reading
}

// Options shape the window.
type Options struct {
	// MinWidth: a window narrower than this is invalid. Zero still requires
	// a strictly positive width.
	MinWidth time.Duration
	// TargetClockBound β: the databases stamp commits with their own clocks,
	// each within β of true time, so the window shrinks by β on both sides
	// (a restore to database time t lands somewhere in true [t−β, t+β]).
	TargetClockBound time.Duration
}

// DefaultOptions: a window at least DefaultMinWidth wide, databases
// stamping with true time.
func DefaultOptions() Options {
	return Options{MinWidth: DefaultMinWidth}
}

// Window is the interval during which every target was certainly paused
// (shrunk by the target clock bound), and its mid-time.
type Window struct {
	// Start = max_i(ack_i + θ_i + ε_i) + β.
	Start time.Time
	// End = min_i(unpause_i + θ_i − ε_i) − β.
	End time.Time
	// RestorePoint is the mid-time, Start + Width/2 (rounded down to the
	// nanosecond).
	RestorePoint time.Time
	// Uncertainty is Width/2 (rounded up to the nanosecond): every instant
	// of the window is within ±Uncertainty of the restore point.
	Uncertainty time.Duration
	// Width is End − Start.
	Width time.Duration
	// StartNode and EndNode name the targets whose readings set Start and
	// End (the first in input order on a tie).
	StartNode string
	EndNode   string
}

// Compute returns the restore window for the targets' readings. Bad input
// (no targets, unnamed or repeated nodes, zero times, negative bounds or
// options) is an error wrapping ErrInvalidInput that lists every problem. A
// window that is not positive or narrower than opts.MinWidth is a
// *InvalidWindowError, which wraps ErrInvalidWindow and names the nodes and
// figures that set each edge.
func Compute(targets []Target, opts Options) (Window, error) {
	if err := validate(targets, opts); err != nil {
		return Window{}, err
	}
	si, ei := 0, 0
	start := targets[0].Ack.Latest()
	end := targets[0].Unpause.Earliest()
	for i := 1; i < len(targets); i++ {
		if s := targets[i].Ack.Latest(); s.After(start) {
			start, si = s, i
		}
		if e := targets[i].Unpause.Earliest(); e.Before(end) {
			end, ei = e, i
		}
	}
	beta := opts.TargetClockBound
	w := Window{
		Start:     start.Add(beta),
		End:       end.Add(-beta),
		StartNode: targets[si].Node,
		EndNode:   targets[ei].Node,
	}
	w.Width = w.End.Sub(w.Start) // saturates at ±292 years
	overflow := w.Width == math.MaxInt64 && !w.Start.Add(w.Width).Equal(w.End)
	if w.Width <= 0 || w.Width < opts.MinWidth || overflow {
		return Window{}, &InvalidWindowError{
			Window:           w,
			StartReading:     targets[si].Ack,
			EndReading:       targets[ei].Unpause,
			MinWidth:         opts.MinWidth,
			TargetClockBound: beta,
			Overflow:         overflow,
		}
	}
	// Start + Width/2 cannot overflow the way (Start+End)/2 could; for an
	// odd width the mid-time rounds down and the uncertainty up, so every
	// instant of the window stays within ±Uncertainty of the restore point.
	w.RestorePoint = w.Start.Add(w.Width / 2)
	w.Uncertainty = w.Width - w.Width/2
	return w, nil
}

// MinHold is how long a pause must be held for a window to be possible:
// the requested duration, or 2·maxBound + margin if that is longer (each
// edge of the window loses up to maxBound to clock uncertainty). Fold a
// target clock bound β into margin as 2β. Negative inputs count as zero;
// the result saturates instead of overflowing.
func MinHold(requested, maxBound, margin time.Duration) time.Duration {
	requested, maxBound, margin = max(requested, 0), max(maxBound, 0), max(margin, 0)
	need := satAdd(satAdd(maxBound, maxBound), margin)
	return max(requested, need)
}

// satAdd adds two non-negative durations, saturating at the largest.
func satAdd(a, b time.Duration) time.Duration {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}
