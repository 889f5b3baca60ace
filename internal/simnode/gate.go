package simnode

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// Interval is one span, on the real clock, during which the node's gate was
// closed and nothing was in flight. End is zero while the span is still open.
type Interval struct {
	Start time.Time
	End   time.Time
}

// Errors returned by the gate (mapped to gRPC codes by the admin server).
var (
	// ErrUnavailable: a ScalarDB-mode node rejected a transaction because it
	// is paused.
	ErrUnavailable = errors.New("node is paused: transaction rejected")
	// ErrStopped: the node stopped or restarted under the call.
	ErrStopped             = errors.New("node stopped")
	errTimedOut            = errors.New("timed out")
	errTimedOutStillPaused = errors.New("timed out, an earlier pause still holds the gate")
	errGateOpened          = errors.New("gate opened by unpause during the drain")
	errPauseInProgress     = errors.New("another pause is draining")
)

// gate is the node's admission gate: transactions enter and leave it; Pause
// closes it (held), a draining Pause closes it while it waits (draining).
// Every state change closes and replaces changed, so waiters can select on it.
type gate struct {
	mode     Mode
	conflict PauseConflict
	onDrain  func(time.Time)
	// onEnd, if set, gets every oracle interval as it ends (gate lock held).
	onEnd func(Interval)
	// v1: a drain timeout always reopens the gate, even when an earlier
	// pause holds it (the behaviour TIMED_OUT_STILL_PAUSED later fixed).
	v1 bool

	// turn serializes pauses (capacity 1).
	turn chan struct{}
	// calls counts Pause calls inside pause() (tests wait on it).
	calls atomic.Int32

	mu         sync.Mutex
	held       bool   // a completed pause holds the gate closed
	draining   bool   // a pause is draining right now
	openEpoch  uint64 // bumped by every Unpause/reset that opens a closed gate
	inflight   int
	drainDelay time.Duration
	changed    chan struct{}
	intervals  []Interval
	openIdx    int // index of the open interval, -1 if none
}

func newGate(mode Mode, conflict PauseConflict, v1 bool, drainDelay time.Duration, onDrain func(time.Time)) *gate {
	return &gate{
		mode:       mode,
		conflict:   conflict,
		v1:         v1,
		onDrain:    onDrain,
		turn:       make(chan struct{}, 1),
		drainDelay: drainDelay,
		changed:    make(chan struct{}),
		openIdx:    -1,
	}
}

func (g *gate) closedLocked() bool { return g.held || g.draining }

// broadcastLocked wakes every waiter.
func (g *gate) broadcastLocked() {
	close(g.changed)
	g.changed = make(chan struct{})
}

// markDrainedLocked opens an oracle interval if the gate is closed with
// nothing in flight and none is open yet.
func (g *gate) markDrainedLocked() {
	if !g.closedLocked() || g.inflight != 0 || g.openIdx >= 0 {
		return
	}
	now := time.Now()
	g.intervals = append(g.intervals, Interval{Start: now})
	g.openIdx = len(g.intervals) - 1
	if g.onDrain != nil {
		g.onDrain(now)
	}
}

// openLocked opens a closed gate: ends the oracle interval, wakes waiters.
func (g *gate) openLocked() {
	if !g.closedLocked() {
		return
	}
	g.held, g.draining = false, false
	g.openEpoch++
	if g.openIdx >= 0 {
		g.intervals[g.openIdx].End = time.Now()
		if g.onEnd != nil {
			g.onEnd(g.intervals[g.openIdx])
		}
		g.openIdx = -1
	}
	g.broadcastLocked()
}

// closeLocked closes the gate (held or draining) and, on a transition from
// open, admits the slow-drain phantom.
func (g *gate) closeLocked(held bool) {
	wasOpen := !g.closedLocked()
	if held {
		g.held = true
	} else {
		g.draining = true
	}
	if wasOpen && g.drainDelay > 0 {
		g.inflight++
		time.AfterFunc(g.drainDelay, g.leave)
	}
	g.markDrainedLocked()
}

// enter admits one transaction. A closed gate blocks (Ledger) until it opens
// or ctx ends, or rejects at once with ErrUnavailable (ScalarDB).
func (g *gate) enter(ctx context.Context) error {
	for {
		g.mu.Lock()
		if !g.closedLocked() {
			g.inflight++
			g.mu.Unlock()
			return nil
		}
		if g.mode == ScalarDB {
			g.mu.Unlock()
			return ErrUnavailable
		}
		ch := g.changed
		g.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// leave ends one admitted transaction.
func (g *gate) leave() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.inflight--
	if g.inflight < 0 {
		panic("simnode: gate leave without enter")
	}
	if g.inflight == 0 {
		g.markDrainedLocked()
		g.broadcastLocked()
	}
}

// pause runs one Pause call. The server does not abort a pause because its
// client went away (like the real servers); only stop (node stop/restart)
// ends it early.
func (g *gate) pause(wait bool, maxWait time.Duration, stop <-chan struct{}) error {
	g.calls.Add(1)
	defer g.calls.Add(-1)
	if g.conflict == PauseAbortInProgress {
		select {
		case g.turn <- struct{}{}:
		default:
			return errPauseInProgress
		}
	} else {
		select {
		case g.turn <- struct{}{}:
		case <-stop:
			return ErrStopped
		}
	}
	defer func() { <-g.turn }()

	g.mu.Lock()
	if !wait {
		g.closeLocked(true)
		g.mu.Unlock()
		return nil
	}
	priorHeld := g.held
	epoch := g.openEpoch
	g.closeLocked(false)
	g.mu.Unlock()

	timer := time.NewTimer(maxWait)
	defer timer.Stop()
	timedOut := false
	for {
		g.mu.Lock()
		switch {
		case g.openEpoch != epoch:
			g.mu.Unlock()
			return errGateOpened
		case g.inflight == 0:
			g.draining = false
			g.held = true
			g.mu.Unlock()
			return nil
		case timedOut:
			g.draining = false
			if priorHeld && !g.v1 {
				// The earlier pause still holds the gate: it stays closed.
				g.mu.Unlock()
				return errTimedOutStillPaused
			}
			g.openLocked()
			g.mu.Unlock()
			return errTimedOut
		}
		ch := g.changed
		g.mu.Unlock()
		select {
		case <-ch:
		case <-timer.C:
			timedOut = true
		case <-stop:
			return ErrStopped
		}
	}
}

// reset forgets every pause: a restarted process comes back with its gate
// open. Pauses still waiting return through stop, closed by the caller.
func (g *gate) reset() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.openLocked()
}

// unpause opens the gate; idempotent. It reports whether the gate was closed.
func (g *gate) unpause() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	was := g.closedLocked()
	g.openLocked()
	return was
}

// paused reports whether the gate is closed.
func (g *gate) paused() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.closedLocked()
}

func (g *gate) inFlight() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.inflight
}

func (g *gate) setDrainDelay(d time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.drainDelay = d
}

// pausedIntervals returns a copy of the oracle's intervals.
func (g *gate) pausedIntervals() []Interval {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]Interval(nil), g.intervals...)
}

// drainedSince returns the start of the open oracle interval, if any.
func (g *gate) drainedSince() (time.Time, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.openIdx < 0 {
		return time.Time{}, false
	}
	return g.intervals[g.openIdx].Start, true
}
