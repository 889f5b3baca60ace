package clock

import (
	"sync"
	"time"
)

// Reading is one reading of a clock: its wall time, and a monotonic reading
// that a step of the wall clock does not move. Comparing how far each moved
// between two readings reveals a wall-clock jump.
type Reading struct {
	Wall time.Time
	// Mono is monotonic time since an arbitrary origin fixed per clock.
	Mono time.Duration
}

// Reader is implemented by clocks whose wall reading can be stepped
// independently of the monotonic reading carried by Now (Skewed, Manual).
// Other clocks are read through Now, whose time.Time carries both.
type Reader interface {
	Read() Reading
}

// processStart anchors System's monotonic readings.
var processStart = time.Now()

// ReadClock reads c's wall and monotonic time together.
func ReadClock(c Clock) Reading {
	if r, ok := c.(Reader); ok {
		return r.Read()
	}
	t := c.Now()
	return Reading{Wall: t, Mono: t.Sub(processStart)}
}

// wallJump is how far the wall clock moved beyond the monotonic clock
// between two readings: zero for an undisturbed clock, +1s after the wall
// clock was stepped forward by a second.
func wallJump(from, to Reading) time.Duration {
	return to.Wall.Round(0).Sub(from.Wall.Round(0)) - (to.Mono - from.Mono)
}

// System is the host clock (time.Now).
var System Clock = systemClock{}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Skewed is the host clock with its wall reading offset, and steppable at
// run time, while its monotonic reading keeps following the host: a test or
// dev-mode agent can run with a clock that is +40 ms wrong, or jump it by a
// second and watch the sampler call the estimate disrupted.
type Skewed struct {
	base Clock
	mu   sync.Mutex
	off  time.Duration
}

// NewSkewed returns the host clock offset by off (positive: the local
// clock reads ahead of true time).
func NewSkewed(off time.Duration) *Skewed {
	return &Skewed{base: System, off: off}
}

// Now is the host time plus the offset. Its monotonic reading moves with the
// offset, so durations between readings taken across a Jump include the
// jump; Read gives the undisturbed monotonic reading.
func (c *Skewed) Now() time.Time {
	return c.base.Now().Add(c.Offset())
}

// Read implements Reader.
func (c *Skewed) Read() Reading {
	b := c.base.Now()
	return Reading{Wall: b.Add(c.Offset()), Mono: b.Sub(processStart)}
}

// Offset is the current skew of the wall reading from the host clock.
func (c *Skewed) Offset() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.off
}

// Jump steps the wall reading by d (as settimeofday would).
func (c *Skewed) Jump(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.off += d
}

// Manual is a clock that moves only when told: Advance moves wall and
// monotonic time together, Step moves only the wall time. Its Now carries no
// monotonic reading (durations between its readings are wall differences).
type Manual struct {
	mu   sync.Mutex
	wall time.Time
	mono time.Duration
}

// NewManual starts a manual clock at wall time start.
func NewManual(start time.Time) *Manual {
	return &Manual{wall: start.Round(0)}
}

// Now implements Clock.
func (m *Manual) Now() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.wall
}

// Read implements Reader.
func (m *Manual) Read() Reading {
	m.mu.Lock()
	defer m.mu.Unlock()
	return Reading{Wall: m.wall, Mono: m.mono}
}

// Advance lets d of time pass.
func (m *Manual) Advance(d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.wall = m.wall.Add(d)
	m.mono += d
}

// Step jumps the wall clock by d without time passing.
func (m *Manual) Step(d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.wall = m.wall.Add(d)
}
