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
	// (the oscillator), plus what the time daemon slews.
	MaxDriftPPM float64
	// SlewOffset is how far the host's time daemon may have slewed the
	// clock from AsOf to SlewAsOf: the kernel's slew rate (adjtimex:
	// |freq| + |tick − nominal|) integrated over the reads, plus every
	// offset handed to the kernel to slew. SlewPPM is the rate at SlewAsOf,
	// extrapolated beyond it (from AsOf when SlewAsOf is zero).
	SlewOffset time.Duration
	SlewPPM    float64
	SlewAsOf   time.Time
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
// ε(as_of) + max_drift × (now − as_of) + the slew up to the last kernel
// read + slew rate × (now − that read), rounded up to the nanosecond.
func (e Estimate) BoundAt(now time.Time) time.Duration {
	return e.ErrorBound + drift(e.Age(now), e.MaxDriftPPM) + e.slewAt(now)
}

// slewAt is how far the daemon may have slewed the clock from AsOf to now.
func (e Estimate) slewAt(now time.Time) time.Duration {
	since := e.Age(now)
	if !e.SlewAsOf.IsZero() {
		since = max(now.Sub(e.SlewAsOf), 0)
	}
	return e.SlewOffset + drift(since, e.SlewPPM)
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
