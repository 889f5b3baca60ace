package devcluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/stillpoint-dev/stillpoint/coordinator"
	"github.com/stillpoint-dev/stillpoint/internal/grpcx"
	"github.com/stillpoint-dev/stillpoint/internal/waitfor"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// APIAddr is server 1's CoordinatorService address.
func (c *Cluster) APIAddr() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.scfgs[0].GRPCAddr
}

// Dir is the directory every component's data lives under (removed by
// Stop when the cluster made it).
func (c *Cluster) Dir() string { return c.dir }

// Servers returns the servers (nil where killed).
func (c *Cluster) Servers() []*coordinator.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*coordinator.Server(nil), c.servers...)
}

// Leader returns the index of the server that leads with its duties
// running, or -1.
func (c *Cluster) Leader() int {
	for i, s := range c.Servers() {
		if s != nil {
			if _, ok := s.LeaderEpoch(); ok {
				return i
			}
		}
	}
	return -1
}

// Node returns a node by name.
func (c *Cluster) Node(name string) *Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[name]
}

// Nodes returns the nodes in start order.
func (c *Cluster) Nodes() []*Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*Node, 0, len(c.order))
	for _, n := range c.order {
		out = append(out, c.nodes[n])
	}
	return out
}

// Client returns a CoordinatorService client for a live server, preferring
// server i when it is alive.
func (c *Cluster) Client(i int) (pb.CoordinatorServiceClient, error) {
	servers := c.Servers()
	if i < 0 || i >= len(servers) || servers[i] == nil {
		i = -1
		for j, s := range servers {
			if s != nil {
				i = j
				break
			}
		}
		if i < 0 {
			return nil, errors.New("no coordinator server is running")
		}
	}
	addr := servers[i].GRPCAddr()
	c.mu.Lock()
	defer c.mu.Unlock()
	cc, ok := c.conns[addr]
	if !ok {
		var err error
		var opts []grpc.DialOption
		if c.aclSecret != "" {
			opts = append(opts, grpc.WithPerRPCCredentials(bearer(c.aclSecret)))
		}
		if cc, err = grpcx.NewClient(addr, c.clientTLS, opts...); err != nil {
			return nil, err
		}
		c.conns[addr] = cc
	}
	return pb.NewCoordinatorServiceClient(cc), nil
}

// poll calls cond until it reports done or ctx ends; the error names the
// last reason.
func poll(ctx context.Context, what string, cond func() (bool, string)) error {
	if err := waitfor.Poll(ctx, what, cond); err != nil {
		return fmt.Errorf("dev cluster: %w", err)
	}
	return nil
}

// WaitLeader waits until some server leads with its duties running.
func (c *Cluster) WaitLeader(ctx context.Context) (int, error) {
	ctx, cancel := withDefaultTimeout(ctx, 30*time.Second)
	defer cancel()
	leader := -1
	err := poll(ctx, "a coordinator leader", func() (bool, string) {
		leader = c.Leader()
		return leader >= 0, "no server leads yet"
	})
	return leader, err
}

// WaitSynchronized waits until the leader's view shows every agent alive
// with a synchronized clock and on its cluster's roster (the member record
// the leader commits when it first sees the agent: a backup plan naming an
// agent not yet on the roster is refused).
func (c *Cluster) WaitSynchronized(ctx context.Context) error {
	ctx, cancel := withDefaultTimeout(ctx, 60*time.Second)
	defer cancel()
	names := map[string]bool{}
	for _, n := range c.Nodes() {
		names[n.Spec.Name] = true
	}
	return poll(ctx, "every agent synchronized", func() (bool, string) {
		l := c.Leader()
		if l < 0 {
			return false, "no leader"
		}
		s := c.Servers()[l]
		var missing []string
		for name := range names {
			m, ok := s.Member(name)
			if !ok {
				missing = append(missing, name+": not in gossip")
				continue
			}
			pm := coordinator.MemberProto(m, time.Now())
			if pm.GetStatus() != pb.MemberStatus_MEMBER_STATUS_ALIVE || pm.GetClock().GetStatus() != pb.ClockStatus_CLOCK_STATUS_SYNCHRONIZED {
				missing = append(missing, fmt.Sprintf("%s: %s, clock %s", name, pm.GetStatus(), pm.GetClock().GetStatus()))
				continue
			}
			if _, ok := s.FSM().Member(name); !ok {
				missing = append(missing, name+": not on the roster yet")
			}
		}
		sort.Strings(missing)
		return len(missing) == 0, strings.Join(missing, "; ")
	})
}

// UpdateRuntime edits the coordinator's runtime config.
func (c *Cluster) UpdateRuntime(ctx context.Context, edit func(*pb.RuntimeConfig)) error {
	cl, err := c.Client(0)
	if err != nil {
		return err
	}
	ctx, cancel := withDefaultTimeout(ctx, 20*time.Second)
	defer cancel()
	// Reading the config and writing the edited whole is idempotent, so a
	// write whose outcome is unknown (leadership lost while committing, on
	// a loaded box) is simply done again.
	var lastErr error
	err = poll(ctx, "the runtime config to be written", func() (bool, string) {
		got, err := cl.GetConfig(ctx, &pb.GetConfigRequest{})
		if err != nil {
			lastErr = fmt.Errorf("dev cluster: get config: %w", err)
			return !retryable(err), lastErr.Error()
		}
		cfg := proto.Clone(got.GetConfig()).(*pb.RuntimeConfig)
		edit(cfg)
		if _, err := cl.UpdateConfig(ctx, &pb.UpdateConfigRequest{Config: cfg, RequestedBy: "devcluster"}); err != nil {
			lastErr = fmt.Errorf("dev cluster: update config: %w", err)
			return !retryable(err), lastErr.Error()
		}
		lastErr = nil
		return true, ""
	})
	if lastErr != nil {
		return lastErr
	}
	return err
}

// retryable: the call changed nothing, or changed the state in a way
// repeating it does not alter (no leader yet, leadership lost mid-commit).
func retryable(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.Unknown, codes.DeadlineExceeded:
		return true
	}
	return false
}

// KillServer crashes server i (no leave, no graceful stop).
func (c *Cluster) KillServer(i int) {
	c.mu.Lock()
	s := c.servers[i]
	c.servers[i] = nil
	c.mu.Unlock()
	if s != nil {
		s.Kill()
	}
}

// RestartServerFrom starts a coordinator server again from cfg (its data
// dir and addresses), retrying until ctx ends while the OS has not yet
// released the ports of the server just stopped there. Both harnesses
// restart servers through it.
func RestartServerFrom(ctx context.Context, cfg coordinator.Config) (*coordinator.Server, error) {
	var s *coordinator.Server
	var last error
	err := waitfor.Poll(ctx, "server "+cfg.NodeID+" to start on its old addresses", func() (bool, string) {
		s, last = coordinator.NewServer(cfg)
		if last != nil {
			return false, last.Error()
		}
		return true, ""
	})
	if err != nil {
		return nil, fmt.Errorf("restart %s: %w", cfg.NodeID, err)
	}
	return s, nil
}

// RestartServer starts server i again from its data dir.
func (c *Cluster) RestartServer(i int) error {
	c.mu.Lock()
	cfg := c.scfgs[i]
	c.mu.Unlock()
	cfg.Gossip.Join = c.gossipSeeds()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := RestartServerFrom(ctx, cfg)
	if err != nil {
		return fmt.Errorf("dev cluster: %w", err)
	}
	c.mu.Lock()
	c.servers[i] = s
	c.mu.Unlock()
	return nil
}

// KillAgent crashes a node's agent: no leave, no unpause.
func (c *Cluster) KillAgent(name string) {
	if n := c.Node(name); n != nil && n.Agent != nil {
		n.Agent.Kill()
	}
}

// GossipSeeds are the live servers' gossip addresses, for a test's own
// gossip member to join.
func (c *Cluster) GossipSeeds() []string { return c.gossipSeeds() }

// StopAgent stops a node's agent cleanly, as SIGTERM or a systemd restart
// does: it leaves gossip (memberlist Leave) while its node keeps serving.
func (c *Cluster) StopAgent(ctx context.Context, name string) error {
	n := c.Node(name)
	if n == nil || n.Agent == nil {
		return fmt.Errorf("dev cluster: no agent %s", name)
	}
	return n.Agent.Stop(ctx)
}

// RestartAgent starts a node's agent again on the same data dir.
func (c *Cluster) RestartAgent(ctx context.Context, name string) error {
	n := c.Node(name)
	if n == nil {
		return fmt.Errorf("dev cluster: no node %s", name)
	}
	n.cfg.Gossip.Join = c.gossipSeeds()
	return c.startAgent(ctx, n)
}

// Stop stops everything, in order, and removes a temporary data dir: the
// agents (they leave gossip) and their nodes, then the coordinator's
// followers, then its leader last, so that no election starts while the
// cluster goes down.
func (c *Cluster) Stop(ctx context.Context) {
	ctx, cancel := withDefaultTimeout(ctx, 30*time.Second)
	defer cancel()
	leader := c.Leader()
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return
	}
	c.stopped = true
	nodes := make([]*Node, 0, len(c.nodes))
	for _, n := range c.nodes {
		nodes = append(nodes, n)
	}
	servers := append([]*coordinator.Server(nil), c.servers...)
	conns := c.conns
	c.conns = nil
	c.mu.Unlock()
	for _, cc := range conns {
		_ = cc.Close()
	}
	// Agents leave gossip on Stop (a moment each): stop them in parallel.
	var wg sync.WaitGroup
	for _, n := range nodes {
		if n.Agent != nil {
			wg.Go(func() { _ = n.Agent.Stop(ctx) })
		}
	}
	wg.Wait()
	for _, n := range nodes {
		n.Sim.Stop()
		for _, s := range n.NTP {
			_ = s.Close()
		}
	}
	if leader >= 0 && leader < len(servers) {
		servers = append(append(servers[:leader:leader], servers[leader+1:]...), servers[leader])
	}
	for _, s := range servers {
		if s != nil {
			_ = s.Shutdown(ctx)
		}
	}
	if c.stopClk != nil {
		c.stopClk()
	}
	for _, s := range c.ntp {
		_ = s.Close()
	}
	if c.ownDir {
		_ = os.RemoveAll(c.dir)
	}
}

func withDefaultTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

// bootstrapACL creates the cluster's first admin token; Client sends it
// from then on.
func (c *Cluster) bootstrapACL(ctx context.Context) error {
	cl, err := c.Client(0)
	if err != nil {
		return err
	}
	var resp *pb.ACLBootstrapResponse
	err = poll(ctx, "the ACL bootstrap", func() (bool, string) {
		resp, err = cl.ACLBootstrap(ctx, &pb.ACLBootstrapRequest{Note: "dev cluster"})
		if err != nil {
			return !retryable(err), err.Error()
		}
		return true, ""
	})
	if err == nil && resp == nil {
		err = errors.New("dev cluster: ACL bootstrap refused")
	}
	if err != nil {
		return fmt.Errorf("dev cluster: ACL bootstrap: %w", err)
	}
	c.mu.Lock()
	c.aclSecret = resp.GetSecret()
	// Connections made before the token have none.
	for addr, cc := range c.conns {
		_ = cc.Close()
		delete(c.conns, addr)
	}
	c.mu.Unlock()
	return nil
}

// ACLToken is the bootstrap admin token's secret ("" with ACLs off).
func (c *Cluster) ACLToken() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.aclSecret
}

// bearer sends an ACL token with every call.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (bearer) RequireTransportSecurity() bool { return false }
