package agent

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"go.uber.org/zap/zaptest"

	"github.com/stillpoint-dev/stillpoint/internal/clock"
	"github.com/stillpoint-dev/stillpoint/internal/scalaradmin"
	"github.com/stillpoint-dev/stillpoint/internal/waitfor"
)

// fakeAdmin is a scripted admin port for unit tests of the state machine
// (the integration tests use the real simnode over gRPC).
type fakeAdmin struct {
	mu          sync.Mutex
	pauseErrs   []error // consumed one per Pause call; nil entries succeed
	unpauseErrs []error
	checkErr    error
	gate        scalaradmin.PauseState
	pauses      int
	unpauses    int
	onPause     func()
	pauseBlock  chan struct{} // when set, Pause waits on it or ctx
	// onCheck runs after CheckPaused has read its answer (outside the lock).
	onCheck func()
	checks  int
	// restartedAt is when restart last reopened the gate.
	restartedAt time.Time
}

func (f *fakeAdmin) Pause(ctx context.Context, _ bool, _ time.Duration) error {
	f.mu.Lock()
	f.pauses++
	hook, block := f.onPause, f.pauseBlock
	var err error
	if len(f.pauseErrs) > 0 {
		err, f.pauseErrs = f.pauseErrs[0], f.pauseErrs[1:]
	}
	f.mu.Unlock()
	if hook != nil {
		hook()
	}
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err == nil {
		f.mu.Lock()
		f.gate = scalaradmin.Paused
		f.mu.Unlock()
	}
	return err
}

func (f *fakeAdmin) Unpause(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.unpauses++
	var err error
	if len(f.unpauseErrs) > 0 {
		err, f.unpauseErrs = f.unpauseErrs[0], f.unpauseErrs[1:]
	}
	if err == nil {
		f.gate = scalaradmin.Unpaused
	}
	return err
}

func (f *fakeAdmin) CheckPaused(context.Context) (scalaradmin.PauseState, error) {
	f.mu.Lock()
	f.checks++
	g, err, hook := f.gate, f.checkErr, f.onCheck
	f.mu.Unlock()
	if hook != nil {
		hook()
	}
	return g, err
}

// restart simulates a node restart: the gate comes back open.
func (f *fakeAdmin) restart() {
	f.mu.Lock()
	f.gate = scalaradmin.Unpaused
	f.restartedAt = time.Now()
	f.mu.Unlock()
}

func (f *fakeAdmin) restarted() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.restartedAt
}

func (f *fakeAdmin) setCheckErr(err error) {
	f.mu.Lock()
	f.checkErr = err
	f.mu.Unlock()
}

func (f *fakeAdmin) counts() (pauses, unpauses int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pauses, f.unpauses
}

func (f *fakeAdmin) setGate(g scalaradmin.PauseState) {
	f.mu.Lock()
	f.gate = g
	f.mu.Unlock()
}

// fixedClock serves one synchronized estimate and the real local clock.
type fixedClock struct{}

func (fixedClock) Now() time.Time { return time.Now() }
func (fixedClock) Current() clock.Estimate {
	return clock.Estimate{Offset: 3 * time.Millisecond, ErrorBound: time.Millisecond, MaxDriftPPM: 50,
		Status: clock.Synchronized, AsOf: time.Now()}
}

// fakeTime is a clockwork fake behind both the core's clockSource and its
// dead-man timer: a lease runs out when the test advances it.
type fakeTime struct{ *clockwork.FakeClock }

func (f fakeTime) Current() clock.Estimate {
	return clock.Estimate{Offset: 3 * time.Millisecond, ErrorBound: time.Millisecond, MaxDriftPPM: 50,
		Status: clock.Synchronized, AsOf: f.Now()}
}

// newFakeTimeCore is newTestCore on fake time, with its dead-man switch
// running until the test ends.
func newFakeTimeCore(t *testing.T, admin adminClient, mutate func(*coreConfig)) (*core, fakeTime) {
	t.Helper()
	ft := fakeTime{clockwork.NewFakeClock()}
	cfg := coreConfig{Node: "n1", MaxLease: time.Minute, CallTimeout: 2 * time.Second, ExpiryRetry: 50 * time.Millisecond, Timers: ft.FakeClock}
	if mutate != nil {
		mutate(&cfg)
	}
	c := newCore(cfg, admin, ft, store{dir: t.TempDir()}, zaptest.NewLogger(t), coreHooks{})
	if err := c.recoverState(); err != nil {
		t.Fatalf("recover: %v", err)
	}
	runTimer(t, c)
	return c, ft
}

// advanceUntil moves fake time on by step until cond holds; it fails after
// more than limit of fake time. The dead-man switch runs on its own
// goroutine, so after each step it waits until the switch has acted on it
// (see settle) before looking at cond again.
func advanceUntil(t *testing.T, ft fakeTime, step, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	for moved := time.Duration(0); ; moved += step {
		if cond() {
			return
		}
		if moved > limit {
			t.Fatalf("not seen after %s of fake time: %s", limit, what)
		}
		ft.Advance(step)
		settle(t, ft, fmt.Sprintf("+%s of fake time", moved+step), cond)
	}
}

// settleTimeout bounds how long the dead-man switch may take to act on an
// advance of fake time (real time, so generous on a loaded machine).
const settleTimeout = 10 * time.Second

// settle waits until the dead-man switch is blocked again after fake time
// moved (at), so what it did on that move is visible: a fired timer leaves
// the fake clock in Advance, and the switch re-arms one after each wake, so a
// waiter on the clock means it is blocked on its timer again. A switch that
// disarmed (the lease is gone) never re-arms: then done holding ends the wait
// (nil: the switch must re-arm). It fails the test when neither happens
// within settleTimeout: the switch is stuck or spinning on a timer that fires
// at once.
func settle(t *testing.T, ft fakeTime, at string, done func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
	defer cancel()
	armed := make(chan struct{})
	go func() {
		if ft.BlockUntilContext(ctx, 1) == nil {
			close(armed)
		}
	}()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		if done != nil && done() {
			return
		}
		select {
		case <-armed:
			return
		case <-ctx.Done():
			t.Fatalf("at %s: the dead-man switch did not block on a re-armed timer within %s (it fired early and spins, or is stuck)", at, settleTimeout)
		case <-tick.C:
		}
	}
}

func newTestCore(t *testing.T, dir string, admin adminClient, mutate func(*coreConfig)) *core {
	t.Helper()
	cfg := coreConfig{Node: "n1", MaxLease: time.Minute, CallTimeout: 2 * time.Second, ExpiryRetry: 50 * time.Millisecond}
	if mutate != nil {
		mutate(&cfg)
	}
	c := newCore(cfg, admin, fixedClock{}, store{dir: dir}, zaptest.NewLogger(t), coreHooks{})
	if err := c.recoverState(); err != nil {
		t.Fatalf("recover: %v", err)
	}
	return c
}

// runTimer runs the dead-man switch until the test ends.
func runTimer(t *testing.T, c *core) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.runLeaseTimer(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	waitfor.Fatal(context.Background(), t, within, what, waitfor.Bool(cond))
}
