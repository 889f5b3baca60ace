package testcluster

import (
	"sync"
	"testing"

	"github.com/stillpoint-dev/stillpoint/internal/gossip"
)

// StandIn is a bare gossip member with settable metadata: what the
// coordinator sees of an agent, without the agent.
type StandIn struct {
	Pool *gossip.Pool
	mu   sync.Mutex
	meta gossip.Meta
}

// AddStandIn joins a gossip member named name with meta to the cluster.
func (c *Cluster) AddStandIn(t testing.TB, name string, meta gossip.Meta) *StandIn {
	t.Helper()
	si := &StandIn{meta: meta}
	cfg := gossip.Config{
		Name:     name,
		BindAddr: "127.0.0.1",
		Profile:  gossip.ProfileTest,
		Join:     c.GossipSeeds(),
		Logger:   c.log,
	}
	p, err := gossip.New(cfg, si.current)
	if err != nil {
		t.Fatalf("testcluster: stand-in %s: %v", name, err)
	}
	si.Pool = p
	c.AddCleanup(func() { _ = p.Shutdown() })
	return si
}

func (si *StandIn) current() gossip.Meta {
	si.mu.Lock()
	defer si.mu.Unlock()
	return si.meta
}

// Set changes the stand-in's metadata and gossips it.
func (si *StandIn) Set(fn func(m *gossip.Meta)) error {
	si.mu.Lock()
	fn(&si.meta)
	si.mu.Unlock()
	return si.Pool.UpdateMeta()
}
