package coordinator

import (
	"sync"
	"time"
)

// leaseSlack is added to a lease's latest possible end before the runner
// takes it as surely run out: network delay of a request still in flight,
// the agent's timer firing late, clock rate differences.
const leaseSlack = time.Second

// minRenewGap keeps renewals from spinning when an agent reports almost no
// lease left.
const minRenewGap = 10 * time.Millisecond

// leaseView is what the runner knows of one target's lease, on the
// runner's clock: it runs out no earlier than low and no later than high.
// An agent reads lease_remaining_ms somewhere between the request being
// sent and its answer arriving, so remaining counts from the send for low
// and from the answer for high.
type leaseView struct{ low, high time.Time }

// leaseBook holds the runner's view of every target's lease. The zero
// value is empty and ready.
type leaseBook struct {
	mu sync.Mutex
	m  map[string]leaseView
}

func (b *leaseBook) set(node string, v leaseView) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil {
		b.m = map[string]leaseView{}
	}
	b.m[node] = v
}

// answered records an agent's answer: the request went out at sent, the
// answer came at recv with remaining lease.
func (b *leaseBook) answered(node string, sent, recv time.Time, remaining time.Duration) {
	remaining = max(remaining, 0)
	b.set(node, leaseView{low: sent.Add(remaining), high: recv.Add(remaining)})
}

// unknown records a request whose outcome is unknown (no answer by at):
// the agent may have armed or extended the lease up to lease from at.
func (b *leaseBook) unknown(node string, at time.Time, lease time.Duration) {
	b.mu.Lock()
	v, ok := b.m[node]
	b.mu.Unlock()
	if !ok || v.high.Before(at.Add(lease)) {
		v.high = at.Add(lease)
	}
	b.set(node, v)
}

// renewIn is how long until the next renewal: a third of the smallest
// lease left (lease/renewFraction when nothing is known), so a lease that
// was armed long before the hold is renewed as early as it needs.
func (b *leaseBook) renewIn(now time.Time, lease time.Duration) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	d := lease / renewFraction
	for _, v := range b.m {
		d = min(d, v.low.Sub(now)/renewFraction)
	}
	return max(d, minRenewGap)
}

// runsOutBy is when the node's lease has surely run out: the latest end
// known plus leaseSlack; ok=false when nothing is known.
func (b *leaseBook) runsOutBy(node string) (time.Time, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	v, ok := b.m[node]
	if !ok {
		return time.Time{}, false
	}
	return v.high.Add(leaseSlack), true
}
