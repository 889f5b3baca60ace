// Package clock measures this host's clock offset against NTP servers with a
// certified error bound: true time lies within
// [local + Offset − BoundAt(local), local + Offset + BoundAt(local)].
package clock

import (
	"time"
)

// Status says whether an estimate may be trusted. Only Synchronized may take
// part in a pause.
type Status int

// Statuses, per SPEC "Clock model".
const (
	StatusUnspecified Status = iota
	Synchronized
	// Stale: no fresh sample within N poll intervals.
	Stale
	// Unsynchronized: no majority, leap indicator 3, kiss-of-death, stratum
	// 0/16, all servers unreachable.
	Unsynchronized
	// Disrupted: the wall clock jumped against the monotonic clock.
	Disrupted
)

func (s Status) String() string {
	switch s {
	case Synchronized:
		return "synchronized"
	case Stale:
		return "stale"
	case Unsynchronized:
		return "unsynchronized"
	case Disrupted:
		return "disrupted"
	}
	return "unspecified"
}

// DefaultMaxDriftPPM is the default rate at which an estimate's bound grows
// with age (50 ppm).
const DefaultMaxDriftPPM = 50.0

// Clock is the local clock; injectable so tests can give an agent a skewed
// clock. Now must return a time carrying a monotonic reading.
type Clock interface {
	Now() time.Time
}

// Estimate is one certified estimate of the local clock's offset.
type Estimate struct {
	// Offset to add to a local wall reading to get true time.
	Offset time.Duration
	// ErrorBound at AsOf (before growth with age).
	ErrorBound time.Duration
	// MaxDriftPPM: the bound grows by this many parts per million of age
	// (the oscillator), plus SlewPPM (the time daemon).
	MaxDriftPPM float64
	// SlewPPM is the fastest rate the kernel was seen slewing the clock
	// since AsOf (adjtimex: |freq| + |tick − nominal|); the bound grows at
	// MaxDriftPPM + SlewPPM. SlewOffset is every offset handed to the
	// kernel to slew since AsOf, added to the bound whole.
	SlewPPM    float64
	SlewOffset time.Duration
	// Kernel is the latest adjtimex reading (nil: not read).
	Kernel *KernelClock
	Status Status
	// Reason explains a status other than Synchronized, naming the server
	// at fault where there is one.
	Reason string
	// AsOf is the local time (with monotonic reading) the samples were taken.
	AsOf        time.Time
	LeapPending bool
	// Sources are the servers as of the latest round; after a failed round
	// that kept this estimate they say what failed (the offset and bound
	// are still those of the round at AsOf).
	Sources []Source
	// FailedRounds counts the rounds since AsOf that gave no estimate;
	// LastFailure is why the latest one failed.
	FailedRounds int
	LastFailure  string
}

// Age is how old the estimate is at local time now, on the monotonic clock
// where both readings carry one.
func (e Estimate) Age(now time.Time) time.Duration {
	if e.AsOf.IsZero() {
		return 0
	}
	d := now.Sub(e.AsOf)
	if d < 0 {
		return 0
	}
	return d
}

// BoundAt is the error bound in force at local time now:
// ε(as_of) + slew offset + (max_drift + slew rate) × (now − as_of),
// rounded up to the nanosecond.
func (e Estimate) BoundAt(now time.Time) time.Duration {
	return e.ErrorBound + e.SlewOffset + drift(e.Age(now), e.RatePPM())
}

// RatePPM is the rate the bound grows at: max drift plus the slew rate in
// force.
func (e Estimate) RatePPM() float64 { return e.MaxDriftPPM + e.SlewPPM }

// TrueTime is the interval true time lies in when the local clock reads
// local: [local + θ − ε, local + θ + ε] with ε = BoundAt(local). Meaningful
// only for a synchronized estimate.
func (e Estimate) TrueTime(local time.Time) (lo, hi time.Time) {
	b := e.BoundAt(local)
	mid := local.Add(e.Offset)
	return mid.Add(-b), mid.Add(b)
}
