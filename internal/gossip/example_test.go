package gossip_test

import (
	"fmt"
	"time"

	"github.com/stillpoint-dev/stillpoint/internal/clock"
	"github.com/stillpoint-dev/stillpoint/internal/enumname"
	"github.com/stillpoint-dev/stillpoint/internal/gossip"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// Two members on loopback: an agent gossips its pause state, a server
// watches it.
func Example() {
	start := func(name string, meta func() gossip.Meta) *gossip.Pool {
		cfg := gossip.DefaultConfig()
		cfg.Name, cfg.BindAddr, cfg.BindPort, cfg.Profile = name, "127.0.0.1", 0, gossip.ProfileTest
		p, err := gossip.New(cfg, meta)
		if err != nil {
			panic(err)
		}
		return p
	}
	server := start("server-1", func() gossip.Meta {
		return gossip.Meta{Role: "server", GRPCAddr: "127.0.0.1:7400", Incarnation: gossip.NewIncarnation()}
	})
	defer server.Shutdown()

	paused := pb.PausedState_PAUSED_STATE_UNPAUSED // the agent's state; guarded by the example's single goroutine
	incarnation := gossip.NewIncarnation()
	agentMeta := func() gossip.Meta {
		return gossip.Meta{
			Role: "ledger", Cluster: "prod", GRPCAddr: "127.0.0.1:7500",
			Clock:       gossip.ClockMeta{Status: clock.Synchronized, BoundNS: 2e6, MaxDriftPPM: 50},
			Node:        gossip.NodeState{Reachable: true, Paused: paused},
			Incarnation: incarnation,
		}
	}
	agent := start("ledger-1", agentMeta)
	defer agent.Shutdown()

	events, cancel := server.Subscribe(16)
	defer cancel()
	if _, err := agent.Join([]string{server.AdvertiseAddr()}); err != nil {
		panic(err)
	}
	waitFor := func(ok func(gossip.Member) bool) gossip.Member {
		deadline := time.After(10 * time.Second)
		for {
			select {
			case ev := <-events:
				if ev.Member.Name == "ledger-1" && ok(ev.Member) {
					return ev.Member
				}
			case <-deadline:
				panic("timed out")
			}
		}
	}
	m := waitFor(func(gossip.Member) bool { return true })
	fmt.Println(m.Name, m.Status, m.Meta.Role, enumname.Of(m.Meta.Node.Paused), m.Meta.Clock.Status)

	paused = pb.PausedState_PAUSED_STATE_PAUSED
	if err := agent.UpdateMeta(); err != nil {
		panic(err)
	}
	m = waitFor(func(m gossip.Member) bool { return m.Meta.Node.Paused == pb.PausedState_PAUSED_STATE_PAUSED })
	fmt.Println(m.Name, m.Status, enumname.Of(m.Meta.Node.Paused))
	// Output:
	// ledger-1 alive ledger unpaused synchronized
	// ledger-1 alive paused
}
