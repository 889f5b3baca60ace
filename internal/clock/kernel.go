package clock

import (
	"fmt"
	"time"
)

// Slewing (SPEC "Clock model"; issue 11).
//
// A host time daemon steers the clock without stepping it: chrony changes
// the kernel's frequency (and tick) to slew, at up to 83,333 ppm by default
// (maxslewrate), ntpd hands the kernel PLL an offset to slew. Go's
// monotonic clock is slewed too, so neither the fixed max-drift model nor
// the wall-vs-monotonic jump check sees it.
//
// We grow ε at the rate actually in force, read from the kernel with
// adjtimex (modes 0: read only, no privilege), rather than taking a fresh
// NTP round at every ack and unpause stamp. Why: the ack and unpause
// stamps sit on the pause's critical path, a round costs up to the query
// timeout (seconds with a lost packet) and would make every stamp depend
// on the network at exactly the moment it is read, and with a majority
// lost the stamp would have no estimate at all. Reading adjtimex costs a
// syscall, works with every daemon, and keeps a stamp's bound honest
// between rounds: the sampler reads it at every round, every evaluation
// (every stamp) and once a second in Run, integrates the rate over time
// (slewTrack), and adds every offset handed to the kernel to slew. What it
// cannot see is a slew that starts and ends between two reads less than a
// second apart; the README's production section states the host
// requirement that covers it (maxslewrate).

// KernelClock is how the kernel is disciplining the clock now (adjtimex).
type KernelClock struct {
	// FreqPPM is the frequency correction in force (timex.freq / 2^16).
	FreqPPM float64
	// TickUS is the microseconds added per clock tick; NominalTickUS is
	// 1e6/USER_HZ. A daemon that changes the tick slews by the difference.
	TickUS, NominalTickUS int64
	// PendingOffset is the offset the kernel is still slewing (PLL mode or
	// adjtime), in force when it is non-zero.
	PendingOffset time.Duration
	// Status is the kernel's STA_* bits (STA_UNSYNC 0x40: no daemon has
	// declared the clock synchronized).
	Status int32
}

// Kernel STA_* bits that matter here.
const (
	staUnsync = 0x0040
	staNano   = 0x2000
)

// SlewPPM is how fast the kernel may be moving the clock against its
// oscillator: |frequency correction| + |tick − nominal| in ppm. The
// oscillator's own error is the separate max drift.
func (k KernelClock) SlewPPM() float64 {
	ppm := abs(k.FreqPPM)
	if k.NominalTickUS > 0 {
		ppm += abs(float64(k.TickUS-k.NominalTickUS)) * 1e6 / float64(k.NominalTickUS)
	}
	return ppm
}

// Unsynchronized reports the kernel's STA_UNSYNC bit.
func (k KernelClock) Unsynchronized() bool { return k.Status&staUnsync != 0 }

func (k KernelClock) String() string {
	return fmt.Sprintf("freq %+.3f ppm, tick %d µs (nominal %d), pending offset %v, status %#x", k.FreqPPM, k.TickUS, k.NominalTickUS, k.PendingOffset, k.Status)
}

// Kernel reads the kernel's clock discipline; injectable so tests never
// touch (or depend on) the host's. An implementation must only read.
type Kernel interface {
	ReadKernel() (KernelClock, error)
}

// KernelFunc adapts a function to Kernel.
type KernelFunc func() (KernelClock, error)

// ReadKernel implements Kernel.
func (f KernelFunc) ReadKernel() (KernelClock, error) { return f() }

// slewTrack accumulates what the kernel did to the clock since an
// estimate was taken. Between two reads the rate is taken as the larger
// of the rates read at either end (a spike seen once counts for the
// intervals on both sides of it, not for the rest of the poll); past the
// last read the rate then in force is extrapolated.
type slewTrack struct {
	reads int
	// rate is the slew rate (ppm) at the last read, at (monotonic) and
	// atWall its instant.
	rate   float64
	at     time.Duration
	atWall time.Time
	// slewed is the slew integrated from the first read to the last, in
	// nanoseconds.
	slewed float64
	// pending is every offset handed to the kernel to slew: the pending
	// offset at the first read plus every later increase of it.
	pending time.Duration
	last    time.Duration
	// latest is the last reading, err a failed one (sticky: the rate in
	// the gap is unknown).
	latest KernelClock
	err    error
}

// newSlewTrack starts tracking from a read at local reading at.
func newSlewTrack(k KernelClock, err error, at Reading) slewTrack {
	t := slewTrack{}
	t.observe(k, err, at)
	return t
}

func (t *slewTrack) observe(k KernelClock, err error, at Reading) {
	if err != nil {
		t.err = err
		return
	}
	r := k.SlewPPM()
	if t.reads > 0 {
		if dt := at.Mono - t.at; dt > 0 {
			t.slewed += float64(dt) * max(t.rate, r) / 1e6
		}
	}
	if t.reads == 0 || at.Mono >= t.at {
		t.rate, t.at, t.atWall = r, at.Mono, at.Wall
	}
	t.reads++
	t.latest = k
	if p := k.PendingOffset.Abs(); p > t.last {
		t.pending += p - t.last // a new offset to slew (the first: all of it)
		t.last = p
	} else {
		t.last = p
	}
}

// offset is the slew accounted for up to the last read, rounded up.
func (t slewTrack) offset() time.Duration {
	n := time.Duration(t.slewed)
	if float64(n) < t.slewed {
		n++
	}
	return n + t.pending
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}
