package coordinator

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stillpoint-dev/stillpoint/internal/clock"
	"github.com/stillpoint-dev/stillpoint/internal/gossip"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// holdProblems (SPEC "Pause protocol" step 4) over a real gossip pool on
// loopback: each way a hold is invalidated is named with its node, and
// nothing else is.

type watchedAgent struct {
	mu   sync.Mutex
	meta gossip.Meta
	pool *gossip.Pool
}

func (a *watchedAgent) set(t *testing.T, f func(*gossip.Meta)) {
	t.Helper()
	a.mu.Lock()
	f(&a.meta)
	a.mu.Unlock()
	if err := a.pool.UpdateMeta(); err != nil {
		t.Fatal(err)
	}
}

func startWatched(t *testing.T, name, role, cluster string, incarnation uint64, seed string) *watchedAgent {
	t.Helper()
	a := &watchedAgent{meta: gossip.Meta{
		Role: role, Cluster: cluster, GRPCAddr: "127.0.0.1:1", Incarnation: incarnation,
		Clock: gossip.ClockMeta{Status: clock.Synchronized, BoundNS: 1e6, MaxDriftPPM: 50},
		Node:  gossip.NodeState{Reachable: true},
	}}
	cfg := gossip.DefaultConfig()
	cfg.Name, cfg.BindAddr, cfg.BindPort, cfg.Profile = name, "127.0.0.1", 0, gossip.ProfileTest
	if seed != "" {
		cfg.Join = []string{seed}
	}
	p, err := gossip.New(cfg, func() gossip.Meta {
		a.mu.Lock()
		defer a.mu.Unlock()
		return a.meta
	})
	if err != nil {
		t.Fatal(err)
	}
	a.pool = p
	t.Cleanup(func() { _ = p.Shutdown() })
	return a
}

func TestHoldProblems(t *testing.T) {
	server := startWatched(t, "server-1", RoleServer, "", 1, "")
	seed := server.pool.AdvertiseAddr()
	l1 := startWatched(t, "ledger-1", "ledger", "ledger", 11, seed)
	l2 := startWatched(t, "ledger-2", "ledger", "ledger", 22, seed)
	s := &Server{pool: server.pool}
	op := &pb.Operation{OpId: "op-1", Cluster: "ledger", Targets: []*pb.TargetRecord{
		{Node: "ledger-1", AgentIncarnation: 11}, {Node: "ledger-2", AgentIncarnation: 22},
	}}
	inc := map[string]uint64{"ledger-1": 11, "ledger-2": 22}

	// until waits for cond, re-checking on every membership event the
	// server hears (and every 50ms, should an event be dropped).
	events, cancel := server.pool.Subscribe(256)
	defer cancel()
	until := func(cond func() bool) bool {
		deadline := time.NewTimer(20 * time.Second)
		defer deadline.Stop()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for !cond() {
			select {
			case <-events:
			case <-tick.C:
			case <-deadline.C:
				return false
			}
		}
		return true
	}
	// wait waits until the watch reports exactly want.
	wait := func(what, want string) {
		t.Helper()
		var got string
		if !until(func() bool { got = s.holdProblems(op, inc); return got == want }) {
			t.Fatalf("%s: holdProblems = %q, want %q", what, got, want)
		}
	}
	// Both targets seen alive with their admitted incarnations.
	for _, n := range []string{"ledger-1", "ledger-2"} {
		if !until(func() bool {
			m, ok := server.pool.Member(n)
			return ok && m.Status == gossip.StatusAlive && m.Meta.Incarnation != 0
		}) {
			t.Fatalf("%s never seen alive", n)
		}
	}
	wait("targets alive and unchanged", "")

	l1.set(t, func(m *gossip.Meta) { m.InterruptedOpID = "op-1" })
	wait("a target's node restarted", "ledger-1: node came back unpaused during the hold (it restarted)")
	l1.set(t, func(m *gossip.Meta) { m.InterruptedOpID = "op-0" })
	wait("an interruption of another op", "")

	l2.set(t, func(m *gossip.Meta) { m.Incarnation = 23 })
	wait("a target's agent restarted", "ledger-2: agent restarted during the hold")
	l2.set(t, func(m *gossip.Meta) { m.Incarnation = 22 })
	wait("incarnation back", "")

	// Members of another cluster and servers are no concern of this hold.
	startWatched(t, "auditor-1", "auditor", "auditor", 5, seed)
	startWatched(t, "server-2", RoleServer, "", 6, seed)
	l3 := startWatched(t, "ledger-3", "ledger", "ledger", 33, seed)
	wait("a new node of the cluster joined", "ledger-3: a new node of cluster ledger joined during the hold (it runs unpaused)")
	if err := l3.pool.Leave(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	wait("the new node left again", "")

	// Left rather than dead is best effort in gossip (a peer that hears the
	// leave before the leaving metadata, or never gets that metadata on a
	// loaded box, records dead): the leaving flag is seen first, so the
	// leave is told apart deterministically. The subject is the hold's
	// report of a departed target, not gossip's race.
	l2.set(t, func(m *gossip.Meta) { m.Leaving = true })
	if !until(func() bool { m, ok := server.pool.Member("ledger-2"); return ok && m.Meta.Leaving }) {
		t.Fatal("ledger-2's leaving flag never reached the server")
	}
	if err := l2.pool.Leave(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	wait("a target's agent left", "ledger-2: agent is left during the hold")

	op.Targets = append(op.Targets, &pb.TargetRecord{Node: "ledger-9"})
	wait("a target unknown to the pool, sorted with the rest",
		strings.Join([]string{"ledger-2: agent is left during the hold", "ledger-9: left the gossip pool during the hold"}, "; "))
}
