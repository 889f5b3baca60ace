package gossip

import (
	"sync"
	"testing"
	"time"
)

// Leave while metadata updates stream in: memberlist's UpdateNode is not
// safe to call concurrently, so the pool's metadata push and Leave's final
// push must not overlap (under -race an overlap was reported in a dev
// cluster's shutdown: aliveNode's write against UpdateNode's read).
func TestLeaveDuringMetaUpdates(t *testing.T) {
	for range 20 {
		nodes := startCluster(t, 2, func(c *Config) { c.MetaMinInterval = time.Microsecond })
		n := nodes[1]
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			for i := uint64(1); ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				n.meta.set(func(m *Meta) { m.Clock.OffsetNS = int64(i) })
				_ = n.pool.UpdateMeta()
			}
		})
		time.Sleep(20 * time.Millisecond) // let the updates flow: the scenario, not a wait
		// As an agent's Stop: a last metadata update, then Leave at once.
		n.meta.set(func(m *Meta) { m.Clock.BoundNS++ })
		_ = n.pool.UpdateMeta()
		if err := n.pool.Leave(time.Second); err != nil {
			t.Fatal(err)
		}
		close(stop)
		wg.Wait()
		_ = n.pool.Shutdown()
		_ = nodes[0].pool.Shutdown()
	}
}
