// Package devcluster runs a whole Stillpoint deployment in one process on
// loopback: NTP servers (ntptest), a Raft coordinator of N servers, and an
// agent beside each simulated Ledger/Auditor node running the transfer
// workload. `stillpoint dev`, the end-to-end tests, the benchmarks and the
// point-in-time-restore test all build on it.
package devcluster

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/stillpoint-dev/stillpoint/agent"
	"github.com/stillpoint-dev/stillpoint/coordinator"
	"github.com/stillpoint-dev/stillpoint/internal/clock"
	"github.com/stillpoint-dev/stillpoint/internal/gossip"
	"github.com/stillpoint-dev/stillpoint/internal/grpcx"
	"github.com/stillpoint-dev/stillpoint/internal/hook"
	"github.com/stillpoint-dev/stillpoint/internal/ntptest"
	"github.com/stillpoint-dev/stillpoint/internal/simnode"
	"github.com/stillpoint-dev/stillpoint/internal/tlsx"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// NodeSpec is one simulated node and the agent beside it.
type NodeSpec struct {
	Name    string
	Role    string
	Cluster string
}

// Config shapes the cluster.
type Config struct {
	// Servers is the number of coordinator servers (1, 3 or 5).
	Servers int
	// APIAddr is where server 1 serves the CoordinatorService
	// ("127.0.0.1:0" picks a free port).
	APIAddr string
	Nodes   []NodeSpec
	// NTPServers is how many loopback NTP servers the clocks sample.
	NTPServers int
	// NTPAddrs, when set, are NTP servers (host:port) started by the
	// caller that every clock samples instead of NTPServers loopback ones
	// (e.g. servers with injected latency, or in another network
	// namespace behind netem). OwnNTP nodes still get their own.
	NTPAddrs []string
	// NTPPoll is the agents' (and servers') NTP poll interval.
	NTPPoll time.Duration
	// Skews gives a node's local clock an offset from true time.
	Skews map[string]time.Duration
	// Kernels gives a node's agent a clock discipline source (adjtimex)
	// other than the host's, e.g. one that slews.
	Kernels map[string]clock.Kernel
	// OwnNTP lists nodes whose agent samples NTPServers loopback NTP
	// servers of its own (Node.NTP) instead of the shared ones, so a test
	// can silence one agent's servers.
	OwnNTP []string
	// Workload runs on every simulated node.
	Workload simnode.WorkloadConfig
	// Stores, when set, gives a node its two stores (default in-memory).
	Stores func(node string) (a, b simnode.Store, err error)
	// Runtime, when set, replaces the coordinator's runtime config once a
	// leader is elected.
	Runtime func(*pb.RuntimeConfig)
	// AgentGossipProfile is the agents' gossip timing profile (default
	// "test": tight timings; "lan" for many agents on a small box, where
	// 20 ms gossip rounds alone fill the CPU).
	AgentGossipProfile string
	// AgentCheckPausedInterval is how often each agent polls its node's
	// gate (default 50 ms; production agents poll every second).
	AgentCheckPausedInterval time.Duration
	// Alerting is every server's notifier config (Alertmanager, webhooks).
	Alerting coordinator.AlertingConfig
	// ExtraHooks, when set, adds hooks to a node's agent besides the dev
	// hooks every agent has (DevHooks); dir is the node's directory.
	ExtraHooks func(node NodeSpec, dir string) []hook.Definition
	// ServerHooks are the hooks every server's config defines (what a plan
	// runs with agent "coordinator").
	ServerHooks []hook.Definition
	// TLS turns on mTLS on every gRPC link with an ephemeral CA written
	// under DataDir/tls: a server certificate per server (listener, peer
	// and agent links), an agent certificate per agent, and a client
	// certificate for Client and ClientTLS. Admin ports stay plaintext.
	TLS bool
	// DataDir holds every component's data; empty means a temporary
	// directory removed by Stop.
	DataDir string
	// AgentDataDir, when set, is a node's agent data directory (its lease
	// file) instead of DataDir/<node>, e.g. one tmpfs directory per agent
	// to model one disk per host.
	AgentDataDir func(node NodeSpec) string
	Logger       *zap.Logger

	// GossipKey, when set, encrypts gossip on every server and agent (each
	// keeps a keyring file in its data dir).
	GossipKey []byte
	// ACL enables token enforcement on the servers (bootstrap it with
	// ACLBootstrap).
	ACL bool
}

// DefaultConfig is the dev cluster of the README: 3 servers, ledger-1..3
// (cluster ledger) and auditor-1..2 (cluster auditor), 3 NTP servers, the
// API on 127.0.0.1:7400.
func DefaultConfig() Config {
	w := simnode.DefaultWorkloadConfig()
	w.Enabled = true
	return Config{
		Servers: 3,
		APIAddr: "127.0.0.1:7400",
		Nodes: []NodeSpec{
			{"ledger-1", "ledger", "ledger"}, {"ledger-2", "ledger", "ledger"}, {"ledger-3", "ledger", "ledger"},
			{"auditor-1", "auditor", "auditor"}, {"auditor-2", "auditor", "auditor"},
		},
		NTPServers: 3,
		NTPPoll:    time.Second,
		Workload:   w,
	}
}

// Validate reports every problem.
func (c Config) Validate() error {
	var errs []error
	if c.Servers < 1 {
		errs = append(errs, fmt.Errorf("servers: %d, want at least 1", c.Servers))
	}
	if c.NTPServers < 1 && len(c.NTPAddrs) == 0 {
		errs = append(errs, fmt.Errorf("ntp servers: %d, want at least 1", c.NTPServers))
	}
	seen := map[string]bool{}
	for _, n := range c.Nodes {
		if n.Name == "" || n.Cluster == "" || n.Role == "" {
			errs = append(errs, fmt.Errorf("node %+v: name, role and cluster are required", n))
		}
		if seen[n.Name] {
			errs = append(errs, fmt.Errorf("node %s appears twice", n.Name))
		}
		seen[n.Name] = true
	}
	for _, name := range c.OwnNTP {
		if !seen[name] {
			errs = append(errs, fmt.Errorf("own NTP for %s: no such node (nodes: %v)", name, c.nodeNames()))
		}
	}
	for name := range c.Kernels {
		if !seen[name] {
			errs = append(errs, fmt.Errorf("kernel for %s: no such node (nodes: %v)", name, c.nodeNames()))
		}
	}
	for name := range c.Skews {
		if !seen[name] {
			errs = append(errs, fmt.Errorf("skew for %s: no such node (nodes: %v)", name, c.nodeNames()))
		}
	}
	if _, _, err := net.SplitHostPort(c.APIAddr); err != nil {
		errs = append(errs, fmt.Errorf("api address %q: %v", c.APIAddr, err))
	}
	return errors.Join(errs...)
}

func (c Config) nodeNames() []string {
	var out []string
	for _, n := range c.Nodes {
		out = append(out, n.Name)
	}
	return out
}

// Node is one simulated node with its agent.
type Node struct {
	Spec  NodeSpec
	Sim   *simnode.Node
	Agent *agent.Agent
	// NTP are the node's own NTP servers (Config.OwnNTP), else nil.
	NTP []*ntptest.Server
	cfg agent.Config
	clk clock.Clock
}

// SnapshotDir is where the node's "snapshot" dev hook writes its
// artefacts (one file per op and step).
func (n *Node) SnapshotDir() string { return filepath.Join(n.cfg.DataDir, "snapshots") }

// Clock is the local clock the node's agent reads: a *clock.Skewed for a
// node in Config.Skews (a test can Jump it), else clock.System.
func (n *Node) Clock() clock.Clock { return n.clk }

// Cluster is a running dev cluster.
type Cluster struct {
	cfg      Config
	log      *zap.Logger
	dir      string
	ownDir   bool
	ntp      []*ntptest.Server
	samplers []*clock.Sampler
	stopClk  context.CancelFunc

	mu      sync.Mutex
	servers []*coordinator.Server
	scfgs   []coordinator.Config
	nodes   map[string]*Node
	order   []string
	conns   map[string]*grpc.ClientConn
	stopped bool

	pki       *devPKI // nil without Config.TLS
	clientTLS grpcx.TLS
	// aclSecret is the bootstrap admin token (ACL on); Client sends it.
	aclSecret string
}

// Start brings the whole cluster up and waits until a leader is elected
// and every agent's clock is synchronized in the leader's view.
func Start(ctx context.Context, cfg Config) (_ *Cluster, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("dev cluster: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.NTPPoll <= 0 {
		cfg.NTPPoll = time.Second
	}
	c := &Cluster{cfg: cfg, log: cfg.Logger, dir: cfg.DataDir, nodes: map[string]*Node{}, conns: map[string]*grpc.ClientConn{}}
	if c.dir == "" {
		if c.dir, err = os.MkdirTemp("", "stillpoint-dev-"); err != nil {
			return nil, fmt.Errorf("dev cluster: %w", err)
		}
		c.ownDir = true
	}
	defer func() {
		if err != nil {
			c.Stop(context.Background())
		}
	}()
	if cfg.TLS {
		if c.pki, err = newDevPKI(filepath.Join(c.dir, "tls")); err != nil {
			return nil, fmt.Errorf("dev cluster: CA: %w", err)
		}
		if c.clientTLS, err = c.pki.issue(tlsx.RoleClient, "dev-operator"); err != nil {
			return nil, err
		}
	}
	for i := 0; i < cfg.NTPServers && len(cfg.NTPAddrs) == 0; i++ {
		s, err := ntptest.Start(ntptest.DefaultConfig())
		if err != nil {
			return nil, fmt.Errorf("dev cluster: NTP server: %w", err)
		}
		c.ntp = append(c.ntp, s)
	}
	clkCtx, cancel := context.WithCancel(context.Background())
	c.stopClk = cancel
	for i := range cfg.Servers {
		if err := c.startServer(clkCtx, i); err != nil {
			return nil, err
		}
	}
	if _, err := c.WaitLeader(ctx); err != nil {
		return nil, err
	}
	if cfg.ACL {
		if err := c.bootstrapACL(ctx); err != nil {
			return nil, err
		}
	}
	if cfg.Runtime != nil {
		if err := c.UpdateRuntime(ctx, cfg.Runtime); err != nil {
			return nil, err
		}
	}
	for _, spec := range cfg.Nodes {
		if err := c.startNode(ctx, spec); err != nil {
			return nil, err
		}
	}
	if err := c.WaitSynchronized(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// NTPAddrs are the NTP servers every clock samples: Config.NTPAddrs, else
// the loopback ones Start started.
func (c *Cluster) NTPAddrs() []string {
	if len(c.cfg.NTPAddrs) > 0 {
		return append([]string(nil), c.cfg.NTPAddrs...)
	}
	var out []string
	for _, s := range c.ntp {
		out = append(out, s.Addr())
	}
	return out
}

func (c *Cluster) startServer(clkCtx context.Context, i int) error {
	cfg := coordinator.DefaultConfig()
	cfg.NodeID = fmt.Sprintf("server-%d", i+1)
	cfg.DataDir = filepath.Join(c.dir, cfg.NodeID)
	cfg.RaftBindAddr = "127.0.0.1:0"
	cfg.GRPCAddr = "127.0.0.1:0"
	if i == 0 {
		cfg.GRPCAddr = c.cfg.APIAddr
	}
	cfg.HTTPAddr = "127.0.0.1:0" // /metrics, /healthz, /readyz
	cfg.Alerting = c.cfg.Alerting
	cfg.Hooks = c.cfg.ServerHooks
	// Tolerant of a loaded 2-core box: leadership must not flap mid-op.
	// 500/500/250 ms flapped 10 times in a minute with the race detector
	// on a box at load 9 (every op taken over and aborted); these are
	// hashicorp/raft's own defaults.
	cfg.Raft = coordinator.RaftTimings{
		HeartbeatTimeout:   time.Second,
		ElectionTimeout:    time.Second,
		LeaderLeaseTimeout: 500 * time.Millisecond,
		CommitTimeout:      5 * time.Millisecond,
	}
	cfg.WALSegmentSize = 4 << 20
	cfg.ReconcileInterval = time.Second
	cfg.Logger = c.log
	if c.cfg.Servers == 1 {
		cfg.Bootstrap = true
	} else {
		cfg.BootstrapExpect = c.cfg.Servers
	}
	cfg.Gossip = gossip.Config{Name: cfg.NodeID, BindAddr: "127.0.0.1", Profile: gossip.ProfileTest, Join: c.gossipSeeds(), Logger: c.log, SecretKey: c.cfg.GossipKey}
	if c.pki != nil {
		tl, err := c.pki.issue(tlsx.RoleServer, cfg.NodeID)
		if err != nil {
			return err
		}
		cfg.TLS, cfg.ClientTLS, cfg.AgentTLS = tl, tl, tl
	}
	cfg.ACL.Enabled = c.cfg.ACL
	sc := clock.DefaultConfig()
	sc.Servers = c.NTPAddrs()
	sc.PollInterval = c.cfg.NTPPoll
	sc.Logger = c.log.Named(cfg.NodeID)
	sampler, err := clock.NewSampler(sc)
	if err != nil {
		return fmt.Errorf("dev cluster: %s clock: %w", cfg.NodeID, err)
	}
	sampler.SampleOnce(clkCtx)
	go sampler.Run(clkCtx)
	c.samplers = append(c.samplers, sampler)
	cfg.Clock = sampler
	s, err := coordinator.NewServer(cfg)
	if err != nil {
		return fmt.Errorf("dev cluster: %w", err)
	}
	// Pin the ports a restart must reuse.
	cfg.RaftBindAddr = s.RaftAddr()
	cfg.GRPCAddr = s.GRPCAddr()
	cfg.HTTPAddr = s.HTTPAddr()
	_, port, _ := net.SplitHostPort(s.GossipAddr())
	cfg.Gossip.BindPort, _ = strconv.Atoi(port)
	c.mu.Lock()
	c.servers = append(c.servers, s)
	c.scfgs = append(c.scfgs, cfg)
	c.mu.Unlock()
	return nil
}

func (c *Cluster) gossipSeeds() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, s := range c.servers {
		if s != nil {
			out = append(out, s.GossipAddr())
		}
	}
	return out
}

func (c *Cluster) startNode(ctx context.Context, spec NodeSpec) error {
	scfg := simnode.DefaultConfig()
	scfg.ID = spec.Name
	scfg.Listen = "127.0.0.1:0"
	scfg.DefaultMaxPauseWait = 5 * time.Second
	scfg.Workload = c.cfg.Workload
	scfg.Logger = c.log.Named(spec.Name + "-sim")
	if c.cfg.Stores != nil {
		a, b, err := c.cfg.Stores(spec.Name)
		if err != nil {
			return fmt.Errorf("dev cluster: stores of %s: %w", spec.Name, err)
		}
		scfg.StoreA, scfg.StoreB = a, b
	}
	sim, err := simnode.New(scfg)
	if err != nil {
		return fmt.Errorf("dev cluster: %w", err)
	}
	if err := sim.Start(ctx); err != nil {
		return fmt.Errorf("dev cluster: simnode %s: %w", spec.Name, err)
	}
	acfg := agent.DefaultConfig()
	acfg.NodeName = spec.Name
	acfg.Role = spec.Role
	acfg.Cluster = spec.Cluster
	acfg.Admin.Address = sim.Addr()
	acfg.Admin.CallTimeout = 5 * time.Second
	acfg.NTP.Servers = c.NTPAddrs()
	acfg.NTP.PollInterval = c.cfg.NTPPoll
	acfg.NTP.Timeout = 500 * time.Millisecond
	acfg.Gossip.Bind = "127.0.0.1:0"
	acfg.Gossip.Join = c.gossipSeeds()
	acfg.Gossip.Profile = gossip.ProfileTest
	if len(c.cfg.GossipKey) > 0 {
		acfg.Gossip.EncryptionKey = base64.StdEncoding.EncodeToString(c.cfg.GossipKey)
	}
	if c.cfg.AgentGossipProfile != "" {
		acfg.Gossip.Profile = c.cfg.AgentGossipProfile
	}
	acfg.GRPC.Listen = "127.0.0.1:0"
	if c.pki != nil {
		if acfg.GRPC.TLS, err = c.pki.issue(tlsx.RoleAgent, spec.Name); err != nil {
			sim.Stop()
			return err
		}
	}
	acfg.Metrics.Listen = "127.0.0.1:0"
	acfg.DataDir = filepath.Join(c.dir, spec.Name)
	if c.cfg.AgentDataDir != nil {
		acfg.DataDir = c.cfg.AgentDataDir(spec)
	}
	hooks, err := DevHooks(acfg.DataDir)
	if err != nil {
		sim.Stop()
		return fmt.Errorf("dev cluster: hooks of %s: %w", spec.Name, err)
	}
	acfg.Hooks = hooks
	if c.cfg.ExtraHooks != nil {
		acfg.Hooks = append(acfg.Hooks, c.cfg.ExtraHooks(spec, acfg.DataDir)...)
	}
	acfg.MaxLease = 5 * time.Minute
	acfg.CheckPausedInterval = 50 * time.Millisecond
	if c.cfg.AgentCheckPausedInterval > 0 {
		acfg.CheckPausedInterval = c.cfg.AgentCheckPausedInterval
	}
	n := &Node{Spec: spec, Sim: sim, cfg: acfg, clk: clock.System}
	if slices.Contains(c.cfg.OwnNTP, spec.Name) {
		var addrs []string
		for range c.cfg.NTPServers {
			s, err := ntptest.Start(ntptest.DefaultConfig())
			if err != nil {
				sim.Stop()
				for _, s := range n.NTP {
					_ = s.Close()
				}
				return fmt.Errorf("dev cluster: NTP server for %s: %w", spec.Name, err)
			}
			n.NTP = append(n.NTP, s)
			addrs = append(addrs, s.Addr())
		}
		n.cfg.NTP.Servers = addrs
	}
	if off, ok := c.cfg.Skews[spec.Name]; ok {
		n.clk = clock.NewSkewed(off)
	}
	c.mu.Lock()
	c.nodes[spec.Name] = n
	c.order = append(c.order, spec.Name)
	c.mu.Unlock()
	return c.startAgent(ctx, n)
}

func (c *Cluster) startAgent(ctx context.Context, n *Node) error {
	opts := []agent.Option{agent.WithClock(n.clk), agent.WithLogger(c.log.Named(n.Spec.Name))}
	if k, ok := c.cfg.Kernels[n.Spec.Name]; ok {
		opts = append(opts, agent.WithKernel(k))
	}
	a, err := agent.New(n.cfg, opts...)
	if err != nil {
		return fmt.Errorf("dev cluster: %w", err)
	}
	if err := a.Start(ctx); err != nil {
		return fmt.Errorf("dev cluster: agent %s: %w", n.Spec.Name, err)
	}
	c.mu.Lock()
	n.Agent = a
	// A restarted agent listens where it did, as a deployed one does: an
	// op in flight still knows it by that address.
	n.cfg.GRPC.Listen = a.GRPCAddr()
	c.mu.Unlock()
	return nil
}
