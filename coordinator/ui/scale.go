package ui

import (
	"math"
	"time"

	"github.com/stillpoint-dev/stillpoint/internal/timefmt"
)

// SymLog maps a signed duration to [X0, X1] on a symmetric logarithmic
// scale: linear within ±Lin of zero, logarithmic beyond, up to ±Max. Clock
// offsets of microseconds and limits of tens of milliseconds then share
// one axis and both stay readable.
type SymLog struct {
	Lin, Max time.Duration
	X0, X1   float64
}

// t is v in scale units: sign(v)·log10(1 + |v|/Lin).
func (s SymLog) t(v time.Duration) float64 {
	a := math.Abs(float64(v)) / float64(s.Lin)
	r := math.Log10(1 + a)
	if v < 0 {
		return -r
	}
	return r
}

// X is the position of v, clamped to the axis.
func (s SymLog) X(v time.Duration) float64 {
	m := s.t(s.Max)
	u := s.t(v)
	if u > m {
		u = m
	}
	if u < -m {
		u = -m
	}
	mid := (s.X0 + s.X1) / 2
	return mid + u/m*(s.X1-s.X0)/2
}

// Tick is one labelled position on an axis.
type Tick struct {
	X     float64
	Label string
}

// Ticks are zero and every decade from Lin to Max on both sides.
func (s SymLog) Ticks() []Tick {
	out := []Tick{{X: s.X(0), Label: "0"}}
	for d := s.Lin; d <= s.Max; d *= 10 {
		out = append(out, Tick{X: s.X(d), Label: "+" + timefmt.Duration(d)}, Tick{X: s.X(-d), Label: "−" + timefmt.Duration(d)})
		if d > math.MaxInt64/10 {
			break
		}
	}
	return out
}

// NewSymLog picks the axis for values reaching extent: linear below lin,
// up to the first decade of lin at or above extent.
func NewSymLog(lin, extent time.Duration, x0, x1 float64) SymLog {
	if lin <= 0 {
		lin = 10 * time.Microsecond
	}
	max := lin * 10
	for max < extent && max < math.MaxInt64/10 {
		max *= 10
	}
	return SymLog{Lin: lin, Max: max, X0: x0, X1: x1}
}

// TimeScale maps instants in [T0, T1] linearly to [X0, X1].
type TimeScale struct {
	T0, T1 time.Time
	X0, X1 float64
}

// NewTimeScale covers [lo, hi] with pad of its span added on both sides
// (a zero span becomes one millisecond).
func NewTimeScale(lo, hi time.Time, pad float64, x0, x1 float64) TimeScale {
	span := hi.Sub(lo)
	if span <= 0 {
		span = time.Millisecond
		hi = lo.Add(span)
	}
	p := time.Duration(float64(span) * pad)
	return TimeScale{T0: lo.Add(-p), T1: hi.Add(p), X0: x0, X1: x1}
}

// X is the position of t (not clamped).
func (s TimeScale) X(t time.Time) float64 {
	return s.X0 + float64(t.Sub(s.T0))/float64(s.T1.Sub(s.T0))*(s.X1-s.X0)
}

// Ticks are about n round instants inside the scale, labelled as offsets
// from T0's tick origin ("+1.5s").
func (s TimeScale) Ticks(n int, origin time.Time) []Tick {
	span := s.T1.Sub(s.T0)
	if n < 1 || span <= 0 {
		return nil
	}
	step := niceStep(span / time.Duration(n))
	first := origin.Add(time.Duration(math.Ceil(float64(s.T0.Sub(origin))/float64(step))) * step)
	var out []Tick
	for t := first; !t.After(s.T1); t = t.Add(step) {
		d := t.Sub(origin)
		label := "0"
		if d > 0 {
			label = "+" + timefmt.Duration(d)
		} else if d < 0 {
			label = "−" + timefmt.Duration(-d)
		}
		out = append(out, Tick{X: s.X(t), Label: label})
	}
	return out
}

// niceStep rounds d up to 1, 2 or 5 times a power of ten nanoseconds.
func niceStep(d time.Duration) time.Duration {
	if d <= 0 {
		return 1
	}
	p := time.Duration(1)
	for p*10 <= d {
		p *= 10
	}
	for _, m := range []time.Duration{1, 2, 5, 10} {
		if p*m >= d {
			return p * m
		}
	}
	return p * 10
}
