// Package waitfor is the one polling loop the tests and the dev cluster
// wait on: a condition checked every Interval until it holds, the context
// ends or a timeout passes, with the condition's last reason in the error.
// Waiting on a condition, never sleeping for a guessed time, keeps the tests
// deterministic on a loaded machine.
package waitfor

import (
	"context"
	"fmt"
	"time"
)

// Interval is how often a condition is checked.
const Interval = 10 * time.Millisecond

// Cond reports whether the awaited state holds and, when it does not, why
// (the last reason goes into the error).
type Cond func() (done bool, why string)

// Poll checks cond every Interval until it holds or ctx ends; the error
// names what and cond's last reason.
func Poll(ctx context.Context, what string, cond Cond) error {
	tick := time.NewTicker(Interval)
	defer tick.Stop()
	for {
		ok, why := cond()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			if why == "" {
				return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
			}
			return fmt.Errorf("waiting for %s: %w (last: %s)", what, ctx.Err(), why)
		case <-tick.C:
		}
	}
}

// TB is the part of testing.TB Fatal needs (this package is linked into the
// dev cluster, so it does not import testing).
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
}

// Fatal fails t when cond does not hold within timeout (or ctx ends).
func Fatal(ctx context.Context, t TB, timeout time.Duration, what string, cond Cond) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := Poll(ctx, what, cond); err != nil {
		t.Fatalf("after %v: %v", timeout, err)
	}
}

// Bool is a condition without a reason.
func Bool(f func() bool) Cond { return func() (bool, string) { return f(), "" } }

// Err is a condition whose error says why it does not hold yet.
func Err(f func() error) Cond {
	return func() (bool, string) {
		if err := f(); err != nil {
			return false, err.Error()
		}
		return true, ""
	}
}
