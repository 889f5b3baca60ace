// Package testcluster starts N coordinator servers in one process on
// loopback, with tight Raft and gossip timings and a temp data dir each,
// for integration tests that need a real cluster (real TCP, real Raft, real
// memberlist; nothing mocked).
//
//	c := testcluster.New(t, 3)
//	leader := c.WaitForLeader(t)
//	c.Kill(c.Index(leader))
//	c.WaitForLeader(t)
//
// # Adding agents and other members
//
// The harness knows only servers; anything else joins through a hook run
// after the servers are up, so later packages (agents, simulated nodes)
// plug in without changing this one:
//
//	c := testcluster.New(t, 3, testcluster.WithExtra(func(t testing.TB, c *testcluster.Cluster) {
//		a, err := agent.New(cfgWithJoin(c.GossipSeeds()))
//		if err != nil {
//			t.Fatal(err)
//		}
//		c.AddCleanup(func() { a.Shutdown(context.Background()) })
//	}))
//
// Until a real agent is wanted, AddStandIn joins a bare gossip member with
// the given metadata (role "ledger", a clock estimate, a node state), which
// is what the coordinator sees of an agent.
//
// Per-server configuration is adjusted with WithServerConfig; WaitFor polls
// any condition and reports its last reason when it times out.
package testcluster
