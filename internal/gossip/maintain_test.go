package gossip

import (
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"
)

func TestDeadMembersPruned(t *testing.T) {
	fast := func(c *Config) { c.DeadRetention = 200 * time.Millisecond; c.RejoinInterval = 50 * time.Millisecond }
	a := startNode(t, "a", fast)
	b := startNode(t, "b", fast)
	if _, err := b.pool.Join([]string{a.pool.AdvertiseAddr()}); err != nil {
		t.Fatal(err)
	}
	waitConverged(t, []*testNode{a, b})
	if err := b.pool.Leave(time.Second); err != nil {
		t.Fatal(err)
	}
	if err := b.pool.Shutdown(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "b seen left", func() error {
		if m, ok := a.pool.Member("b"); !ok || m.Status != StatusLeft {
			return fmt.Errorf("a sees b as %v (known %v)", m.Status, ok)
		}
		return nil
	})
	waitFor(t, 10*time.Second, "b pruned", func() error {
		if m, ok := a.pool.Member("b"); ok {
			return fmt.Errorf("a still lists b (%v since %v)", m.Status, m.UpdatedAt)
		}
		return nil
	})
	if _, ok := a.pool.Member("a"); !ok {
		t.Fatal("a pruned itself")
	}
}

// A pool whose seeds all failed keeps retrying them: when the seed comes
// back (same address, new process) long after memberlist stopped gossiping
// to the dead, the two find each other again.
func TestIsolatedPoolRejoinsSeeds(t *testing.T) {
	seed := startNode(t, "seed", nil)
	addr := seed.pool.AdvertiseAddr()
	_, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		t.Fatal(err)
	}
	member := startNode(t, "member", func(c *Config) { c.Join = []string{addr} })
	waitConverged(t, []*testNode{seed, member})

	if err := seed.pool.Shutdown(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "seed seen dead", func() error {
		if m, _ := member.pool.Member("seed"); m.Status != StatusDead {
			return fmt.Errorf("member sees seed as %v", m.Status)
		}
		return nil
	})
	// Outlast GossipToTheDeadTime (2s in the test profile) so only the
	// pool's rejoin loop can reconnect them.
	time.Sleep(3 * time.Second)

	var again *testNode
	waitFor(t, 5*time.Second, "seed restarted on its old port", func() error {
		var startErr error
		again, startErr = tryStartNode(t, "seed", func(c *Config) { c.BindPort = port })
		return startErr
	})
	waitConverged(t, []*testNode{again, member})
}

// tryStartNode is startNode returning the error (the port may still be
// held for a moment).
func tryStartNode(t *testing.T, name string, mutate func(*Config)) (*testNode, error) {
	cfg := DefaultConfig()
	cfg.Name, cfg.BindAddr, cfg.BindPort, cfg.Profile = name, "127.0.0.1", 0, ProfileTest
	if mutate != nil {
		mutate(&cfg)
	}
	box := &metaBox{m: testMeta(name)}
	p, err := New(cfg, box.get)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { _ = p.Shutdown() })
	return &testNode{pool: p, meta: box}, nil
}
