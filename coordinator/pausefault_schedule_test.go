package coordinator

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// faultKind is one kind of failure the harness injects into a pause.
type faultKind int

const (
	// kindLeaderLoss: the runner's leader is deposed at the step; a new
	// runner with a higher epoch resumes the last persisted record.
	kindLeaderLoss faultKind = iota
	// kindPersistFail: recording the op fails (no quorum), optionally after
	// the entry committed, for one or more attempts.
	kindPersistFail
	// kindAgentError: the agent call fails (unreachable, timeout after the
	// effect, an outage over several calls, an internal error, or the
	// node's drain times out).
	kindAgentError
	// kindRestart: the node restarts (it comes back unpaused), at the step
	// or some time after it; the hold watch hears of it after a gossip delay.
	kindRestart
	// kindClock: the agent's reading at the ack or the unpause stamp is
	// taken under a non-synchronized estimate whose bound does not hold.
	kindClock
	// kindRestartV1: like kindRestart on a v1 server (no CheckPaused):
	// the node is down for a while, and its agent, polling every second,
	// can only notice it while it is unreachable.
	kindRestartV1
	// kindForce: an operator ends the op's hold (ForceUnpause) at the
	// step: variant 0 aborts it (it must not complete), variant 1 ends the
	// hold now (it may complete, only with a sound window).
	kindForce
	numKinds
)

var kindNames = [numKinds]string{"leader-loss", "persist-failure", "agent-error", "node-restart", "clock-failure", "v1-node-restart", "operator-force"}

func (k faultKind) String() string { return kindNames[k] }

// fault is one injected failure at one step of the protocol: an agent call
// (node, method, nth call of that method to that node) or the nth persist.
type fault struct {
	kind    faultKind
	node    int // -1: a persist step
	method  string
	call    int
	persist int
	// after: the step takes effect first (the node paused, the entry
	// committed), then the failure hits its reply.
	after   bool
	variant int
	times   int
	delay   time.Duration // restart: after the step
	gossip  time.Duration // restart: until the hold watch hears of it
	reading string        // clock: "ack" or "unpause"
	down    time.Duration // v1 restart: how long the node is unreachable
	status  pb.ClockStatus
}

func (f fault) String() string {
	var site string
	if f.node < 0 {
		site = fmt.Sprintf("persist#%d", f.persist)
	} else {
		site = fmt.Sprintf("node-%d %s#%d", f.node+1, f.method, f.call)
	}
	when := "before"
	if f.after {
		when = "after"
	}
	s := fmt.Sprintf("%s at %s (%s its effect)", f.kind, site, when)
	switch f.kind {
	case kindLeaderLoss:
		if f.variant == 1 {
			s += " (the Pause lands late)"
		}
	case kindPersistFail:
		s += fmt.Sprintf(" variant=%d times=%d", f.variant, f.times)
	case kindAgentError:
		s += fmt.Sprintf(" variant=%s times=%d", agentErrorNames[f.variant], f.times)
		if f.variant == 5 {
			s += fmt.Sprintf(" for=%v", f.delay)
		}
	case kindRestart:
		s += fmt.Sprintf(" delay=%v gossip=%v", f.delay, f.gossip)
	case kindRestartV1:
		s += fmt.Sprintf(" delay=%v gossip=%v down=%v", f.delay, f.gossip, f.down)
	case kindClock:
		s += fmt.Sprintf(" reading=%s status=%s", f.reading, f.status)
	case kindForce:
		s += map[int]string{0: " (abort)", 1: " (end the hold now)"}[f.variant]
	}
	return s
}

var agentErrorNames = []string{"unreachable", "timeout-after-effect", "outage", "internal", "drain-timed-out", "partition", "pause-delayed"}

// schedule is everything one seed decides.
type schedule struct {
	seed    uint64
	nodes   int
	leaseMs int64
	holdMs  int64
	// maxDrain bounds how long a node takes to drain before it acks (0:
	// acks at once); maxWaitMs is the runtime max_pause_wait.
	maxDrain  time.Duration
	maxWaitMs int64
	// latency: agent calls take network time (drawn per call).
	latency bool
	// untilUnpaused: the op holds until an operator ends it, at most
	// untilUnpausedMaxLeases leases.
	untilUnpaused bool
	// gaps[i] is how long the i-th leader election takes.
	gaps   []time.Duration
	faults []fault
	// backup, when set, makes the op a backup (pausefault_backup_test.go).
	backup *backupSchedule
}

func (s *schedule) String() string {
	fs := make([]string, len(s.faults))
	for i, f := range s.faults {
		fs[i] = f.String()
	}
	return fmt.Sprintf("nodes=%d lease=%dms hold=%dms until_unpaused=%v max_drain=%v max_pause_wait=%dms latency=%v elections=%v faults=[%s]",
		s.nodes, s.leaseMs, s.holdMs, s.untilUnpaused, s.maxDrain, s.maxWaitMs, s.latency, s.gaps, strings.Join(fs, "; "))
}

func (s *schedule) kinds() map[faultKind]bool {
	k := map[faultKind]bool{}
	for _, f := range s.faults {
		k[f.kind] = true
	}
	return k
}

// newSchedule draws a schedule from seed, with faults of the given kinds.
func newSchedule(seed uint64, kinds []faultKind) *schedule {
	rng := rand.New(rand.NewPCG(seed, 0x57111))
	s := &schedule{
		seed:  seed,
		nodes: 1 + rng.IntN(4),
		// Odd leases keep renewals off the 50 ms poll grid.
		leaseMs: []int64{901, 1501, 3001}[rng.IntN(3)],
		holdMs:  []int64{0, 0, 230, 1010, 2570}[rng.IntN(5)],
	}
	s.maxWaitMs = s.leaseMs / 3
	if rng.IntN(2) == 0 {
		// Drains as long as the node may take: up to most of the lease.
		s.maxWaitMs = s.leaseMs * 85 / 100
		s.maxDrain = time.Duration(s.maxWaitMs) * time.Millisecond
	}
	for range 4 {
		s.gaps = append(s.gaps, []time.Duration{0, 150 * time.Millisecond, time.Duration(s.leaseMs/2) * time.Millisecond, time.Duration(2*s.leaseMs) * time.Millisecond}[rng.IntN(4)])
	}
	// Drawn from its own stream so adding it left earlier seeds alone.
	s.latency = rand.New(rand.NewPCG(seed, 0x1a7)).IntN(2) == 0
	methods := []string{"pause", "renew", "unpause"}
	nf := 1 + rng.IntN(3)
	if rng.IntN(8) == 0 {
		nf = 0 // a fault-free run must complete
	}
	for range nf {
		f := fault{kind: kinds[rng.IntN(len(kinds))], node: -1, after: rng.IntN(2) == 0}
		switch {
		case f.kind == kindPersistFail, (f.kind == kindLeaderLoss || f.kind == kindForce) && rng.IntN(3) == 0:
			f.persist = rng.IntN(6)
		default:
			f.node = rng.IntN(s.nodes)
			f.method = methods[rng.IntN(3)]
			f.call = rng.IntN(2)
			if f.method == "renew" {
				f.call = rng.IntN(5)
			}
		}
		switch f.kind {
		case kindPersistFail:
			f.variant = rng.IntN(2) // 1: the entry committed, the reply failed
			f.times = 1 + rng.IntN(3)
		case kindLeaderLoss:
			if f.method == "pause" && !f.after {
				f.variant = rng.IntN(2) // 1: the Pause is delayed and lands late
			}
		case kindAgentError:
			f.variant = rng.IntN(len(agentErrorNames))
			if (f.variant == 4 || f.variant == 6) && f.method != "pause" {
				f.variant = 0
			}
			// partition: the agent is cut off from the coordinators for a
			// while (its lease still runs).
			f.delay = time.Duration(rng.Int64N(2 * s.leaseMs * int64(time.Millisecond)))
			f.after = f.variant == 1
			f.times = 1 + rng.IntN(5)
		case kindRestart, kindRestartV1:
			if f.kind == kindRestartV1 {
				f.down = time.Duration(20+rng.IntN(2000)) * time.Millisecond
			}
			if rng.IntN(2) == 0 {
				f.delay = time.Duration(rng.Int64N(int64(3 * time.Second)))
			}
			f.gossip = []time.Duration{0, 100 * time.Millisecond, time.Second, 2500 * time.Millisecond}[rng.IntN(4)]
		case kindClock:
			f.method = []string{"pause", "unpause"}[rng.IntN(2)]
			f.call = 0
			f.reading = map[string]string{"pause": "ack", "unpause": "unpause"}[f.method]
			f.status = []pb.ClockStatus{pb.ClockStatus_CLOCK_STATUS_STALE, pb.ClockStatus_CLOCK_STATUS_UNSYNCHRONIZED, pb.ClockStatus_CLOCK_STATUS_DISRUPTED}[rng.IntN(3)]
			f.after = false
		}
		s.faults = append(s.faults, f)
	}
	// Drawn from their own stream so adding them left earlier seeds alone:
	// which operator action a force is, and whether the op is held until
	// unpaused (at most a few leases).
	x := rand.New(rand.NewPCG(seed, 0xe4d))
	for i := range s.faults {
		if s.faults[i].kind == kindForce {
			s.faults[i].variant = x.IntN(2)
			s.untilUnpaused = s.untilUnpaused || s.faults[i].variant == 1 && x.IntN(2) == 0
		}
	}
	return s
}

// at returns the faults of an agent call site.
func (s *schedule) at(node int, method string, call int) []fault {
	var out []fault
	for _, f := range s.faults {
		if f.node == node && f.method == method && f.call == call {
			out = append(out, f)
		}
	}
	return out
}

// atPersist returns the faults of the nth persist.
func (s *schedule) atPersist(n int) []fault {
	var out []fault
	for _, f := range s.faults {
		if f.node < 0 && f.persist == n {
			out = append(out, f)
		}
	}
	return out
}
