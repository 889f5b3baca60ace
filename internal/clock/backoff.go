package clock

import (
	"fmt"
	"sync"
	"time"
)

// backoff leaves a server that does not answer, or that sent a
// kiss-of-death, alone: after n consecutive failures it is skipped for
// (2^(n-1) - 1/2) poll intervals, capped, so the first failure is retried
// at the next round, the second skips one round, the third three, and so
// on (half a poll interval of slack absorbs the jitter). Times are
// monotonic readings of the sampler's clock.
type backoff struct {
	poll, max time.Duration

	mu    sync.Mutex
	state map[string]*serverBackoff
}

type serverBackoff struct {
	fails int
	until time.Duration
	last  string
}

func newBackoff(poll, maxWait time.Duration) *backoff {
	return &backoff{poll: poll, max: maxWait, state: map[string]*serverBackoff{}}
}

// skip reports whether addr is still being left alone at now, and why.
func (b *backoff) skip(addr string, now time.Duration) (bool, string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.state[addr]
	if st == nil || now >= st.until {
		return false, ""
	}
	return true, fmt.Sprintf("%v: backing off after %d consecutive failures, next query in %v (last: %s)",
		ErrUnreachable, st.fails, (st.until - now).Round(time.Millisecond), st.last)
}

// record notes the outcome of a query made at now.
func (b *backoff) record(addr string, err error, now time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err == nil || !backsOff(err) {
		delete(b.state, addr)
		return
	}
	st := b.state[addr]
	if st == nil {
		st = &serverBackoff{}
		b.state[addr] = st
	}
	st.fails++
	st.last = err.Error()
	wait := b.poll
	for i := 1; i < st.fails && wait < b.max; i++ {
		wait *= 2
	}
	st.until = now + min(wait-b.poll/2, b.max)
}
