package coordinator

import (
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
)

// stepClock is a clockwork.Clock that the fault harness advances one timer
// event at a time, only while every goroutine of the schedule's synctest
// bubble is durably blocked, so a schedule replays exactly.
//
// clockwork's FakeClock fires every timer due at once into buffered
// channels, so two coinciding timers race in the runner's select. Here a
// harness fires one timer at a time and lets the runner handle it before the
// next; coinciding timers fire in creation order.
type stepClock struct {
	mu     sync.Mutex
	now    time.Time
	seq    int
	timers map[*stepEvent]struct{}
}

var _ clockwork.Clock = (*stepClock)(nil)

func newStepClock(t0 time.Time) *stepClock {
	return &stepClock{now: t0, timers: map[*stepEvent]struct{}{}}
}

type stepEvent struct {
	c      *stepClock
	ch     chan time.Time
	at     time.Time
	period time.Duration
	seq    int
	fn     func()
	agent  bool
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *stepClock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }
func (c *stepClock) Until(t time.Time) time.Duration { return t.Sub(c.Now()) }

func (c *stepClock) arm(d, period time.Duration, fn func()) *stepEvent {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	e := &stepEvent{c: c, ch: make(chan time.Time, 1), at: c.now.Add(d), period: period, seq: c.seq, fn: fn}
	c.timers[e] = struct{}{}
	return e
}

func (c *stepClock) After(d time.Duration) <-chan time.Time { return c.NewTimer(d).Chan() }
func (c *stepClock) Sleep(d time.Duration)                  { <-c.After(d) }

func (c *stepClock) NewTimer(d time.Duration) clockwork.Timer {
	return stepTimer{c.arm(d, 0, nil)}
}

func (c *stepClock) AfterFunc(d time.Duration, f func()) clockwork.Timer {
	return stepTimer{c.arm(d, 0, f)}
}

func (c *stepClock) NewTicker(d time.Duration) clockwork.Ticker {
	if d <= 0 {
		panic("stepClock: non-positive ticker period")
	}
	return stepTicker{c.arm(d, d, nil)}
}

func (e *stepEvent) stop() bool {
	e.c.mu.Lock()
	defer e.c.mu.Unlock()
	_, armed := e.c.timers[e]
	delete(e.c.timers, e)
	return armed
}

func (e *stepEvent) reset(d time.Duration, ticker bool) bool {
	e.c.mu.Lock()
	defer e.c.mu.Unlock()
	_, armed := e.c.timers[e]
	e.at = e.c.now.Add(d)
	if ticker {
		e.period = d
	}
	e.c.seq++
	e.seq = e.c.seq
	e.c.timers[e] = struct{}{}
	return armed
}

type stepTimer struct{ e *stepEvent }

func (t stepTimer) Chan() <-chan time.Time     { return t.e.ch }
func (t stepTimer) Stop() bool                 { return t.e.stop() }
func (t stepTimer) Reset(d time.Duration) bool { return t.e.reset(d, false) }

type stepTicker struct{ e *stepEvent }

func (t stepTicker) Chan() <-chan time.Time { return t.e.ch }
func (t stepTicker) Stop()                  { t.e.stop() }
func (t stepTicker) Reset(d time.Duration)  { t.e.reset(d, true) }

// reset drops the timers a returned runner left armed.
func (c *stepClock) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.timers = map[*stepEvent]struct{}{}
}

// advance moves the clock on while no runner runs (a leader election).
func (c *stepClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// step fires the next timer, like time's timers: into a one-slot buffer,
// dropped when the slot is full. Call it only once every goroutine of the
// bubble is durably blocked (synctest.Wait), so the runner handles one
// event before the next. While an agent call is in flight (a fake agent
// waits on its own timer) the runner is blocked in a fan-out: the agents'
// timers fire first, and a runner timer that falls due meanwhile fires
// once the runner is free, alone, so that its select never chooses at
// random between two ready timers. It reports false when no timer is armed.
func (c *stepClock) step() bool {
	c.mu.Lock()
	var next *stepEvent
	for e := range c.timers {
		if next == nil || e.agent && !next.agent || e.agent == next.agent && (e.at.Before(next.at) || e.at.Equal(next.at) && e.seq < next.seq) {
			next = e
		}
	}
	if next == nil {
		c.mu.Unlock()
		return false
	}
	if next.at.After(c.now) {
		c.now = next.at
	}
	now := c.now
	if next.period > 0 {
		for !next.at.After(now) { // ticks missed while the runner was busy are dropped
			next.at = next.at.Add(next.period)
		}
	} else {
		delete(c.timers, next)
	}
	c.mu.Unlock()
	if next.fn != nil {
		go next.fn()
		return true
	}
	select {
	case next.ch <- now:
	default:
	}
	return true
}

// agentTimer is a timer of a fake agent (a network leg, a drain).
func (c *stepClock) agentTimer(d time.Duration) clockwork.Timer {
	e := c.arm(d, 0, nil)
	c.mu.Lock()
	e.agent = true
	c.mu.Unlock()
	return stepTimer{e}
}
