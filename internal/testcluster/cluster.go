package testcluster

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"

	"github.com/stillpoint-dev/stillpoint/coordinator"
	"github.com/stillpoint-dev/stillpoint/internal/devcluster"
	"github.com/stillpoint-dev/stillpoint/internal/gossip"
	"github.com/stillpoint-dev/stillpoint/internal/grpcx"
	"github.com/stillpoint-dev/stillpoint/internal/tlsx"
	"github.com/stillpoint-dev/stillpoint/internal/tlsx/tlsxtest"
	"github.com/stillpoint-dev/stillpoint/internal/waitfor"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// DefaultTimeout bounds the harness's own waits (leader election, joins)
// on a loaded 2-core machine.
const DefaultTimeout = 20 * time.Second

// Options configure a Cluster.
type Options struct {
	// ServerConfig adjusts server i's config before its first start.
	ServerConfig func(i int, c *coordinator.Config)
	// Extras run, in order, once all servers are started (agents, stand-ins).
	Extras []func(t testing.TB, c *Cluster)
	// LogLevel of server logs written to t.Log (default warn).
	LogLevel zapcore.Level
	// PKI, when set, turns on mTLS on every link (WithTLS).
	PKI *tlsxtest.PKI
}

// Option changes Options.
type Option func(*Options)

// WithServerConfig adjusts every server's config (i is its index).
func WithServerConfig(fn func(i int, c *coordinator.Config)) Option {
	return func(o *Options) { o.ServerConfig = fn }
}

// WithExtra adds a hook run after the servers start; use it to add agents
// or other members to the same cluster.
func WithExtra(fn func(t testing.TB, c *Cluster)) Option {
	return func(o *Options) { o.Extras = append(o.Extras, fn) }
}

// WithLogLevel sets the level of server logs written to t.Log.
func WithLogLevel(l zapcore.Level) Option {
	return func(o *Options) { o.LogLevel = l }
}

// WithTLS turns on mTLS with certificates of pki: server i listens, dials
// its peers and dials agents with a server certificate named after it
// (files <pki.Dir>/server-server-<i+1>.pem and -key.pem, which a reload
// test may replace), and Client dials with a client certificate
// "operator".
func WithTLS(pki *tlsxtest.PKI) Option {
	return func(o *Options) { o.PKI = pki }
}

// Cluster is N in-process coordinator servers.
type Cluster struct {
	t    testing.TB
	opts Options
	log  *zap.Logger
	logw *testWriter

	mu       sync.Mutex
	servers  []*coordinator.Server // nil while killed
	cfgs     []coordinator.Config
	conns    map[string]*grpc.ClientConn
	cleanups []func()
	// clientTLS is what Client dials with.
	clientTLS grpcx.TLS
}

// New starts n servers that discover each other over gossip and bootstrap
// with bootstrap_expect=n (n=1: --bootstrap). It does not wait for a
// leader; call WaitForLeader. Everything stops at the end of the test.
func New(t testing.TB, n int, opts ...Option) *Cluster {
	t.Helper()
	o := Options{LogLevel: zapcore.WarnLevel}
	for _, f := range opts {
		f(&o)
	}
	w := &testWriter{t: t}
	enc := zap.NewDevelopmentEncoderConfig()
	log := zap.New(zapcore.NewCore(zapcore.NewConsoleEncoder(enc), zapcore.AddSync(w), o.LogLevel))
	c := &Cluster{t: t, opts: o, log: log, logw: w, conns: map[string]*grpc.ClientConn{}}
	t.Cleanup(c.shutdown)
	if o.PKI != nil {
		c.clientTLS = o.PKI.TLS(tlsx.RoleClient, "operator")
	}
	for i := 0; i < n; i++ {
		cfg := c.serverConfig(i, n)
		s, err := coordinator.NewServer(cfg)
		if err != nil {
			t.Fatalf("testcluster: start server %d: %v", i, err)
		}
		// Pin the ports actually bound so Restart reuses them.
		cfg.RaftBindAddr = s.RaftAddr()
		cfg.GRPCAddr = s.GRPCAddr()
		_, port, _ := net.SplitHostPort(s.GossipAddr())
		cfg.Gossip.BindPort, _ = strconv.Atoi(port)
		cfg.Gossip.Join = nil
		c.mu.Lock()
		c.servers = append(c.servers, s)
		c.cfgs = append(c.cfgs, cfg)
		c.mu.Unlock()
	}
	for _, extra := range o.Extras {
		extra(t, c)
	}
	return c
}

func (c *Cluster) serverConfig(i, n int) coordinator.Config {
	cfg := coordinator.DefaultConfig()
	cfg.NodeID = fmt.Sprintf("server-%d", i+1)
	cfg.DataDir = c.t.TempDir()
	cfg.RaftBindAddr = "127.0.0.1:0"
	cfg.GRPCAddr = "127.0.0.1:0"
	cfg.Raft = coordinator.TestTimings()
	cfg.WALSegmentSize = 1 << 20
	cfg.SnapshotInterval = time.Second
	cfg.ReconcileInterval = 200 * time.Millisecond
	cfg.LeaderWait = 5 * time.Second
	cfg.ApplyTimeout = 5 * time.Second
	cfg.Logger = c.log
	if n == 1 {
		cfg.Bootstrap = true
	} else {
		cfg.BootstrapExpect = n
	}
	cfg.Gossip = gossip.Config{
		Name:     cfg.NodeID,
		BindAddr: "127.0.0.1",
		Profile:  gossip.ProfileTest,
		Join:     c.GossipSeeds(),
		Logger:   c.log,
	}
	if c.opts.PKI != nil {
		tl := c.opts.PKI.TLS(tlsx.RoleServer, cfg.NodeID)
		cfg.TLS, cfg.ClientTLS, cfg.AgentTLS = tl, tl, tl
	}
	if c.opts.ServerConfig != nil {
		c.opts.ServerConfig(i, &cfg)
	}
	return cfg
}

// Server returns server i (nil while killed).
func (c *Cluster) Server(i int) *coordinator.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.servers[i]
}

// Servers returns the running servers.
func (c *Cluster) Servers() []*coordinator.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*coordinator.Server
	for _, s := range c.servers {
		if s != nil {
			out = append(out, s)
		}
	}
	return out
}

// Index returns the index of s in the cluster, or -1.
func (c *Cluster) Index(s *coordinator.Server) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, x := range c.servers {
		if x == s && s != nil {
			return i
		}
	}
	return -1
}

// Leader returns the running server that leads with its term established
// (nil if none).
func (c *Cluster) Leader() *coordinator.Server {
	for _, s := range c.Servers() {
		if _, ok := s.LeaderEpoch(); ok && s.IsLeader() {
			return s
		}
	}
	return nil
}

// Followers returns the running servers that are not the leader.
func (c *Cluster) Followers() []*coordinator.Server {
	var out []*coordinator.Server
	for _, s := range c.Servers() {
		if !s.IsLeader() {
			out = append(out, s)
		}
	}
	return out
}

// WaitForLeader waits until one running server leads with its term
// established and every running server knows it as leader.
func (c *Cluster) WaitForLeader(t testing.TB) *coordinator.Server {
	t.Helper()
	var leader *coordinator.Server
	WaitFor(t, DefaultTimeout, func() (bool, string) {
		leader = c.Leader()
		if leader == nil {
			return false, "no running server leads with an established term"
		}
		for _, s := range c.Servers() {
			if id, addr := s.Leader(); id != leader.ID() || addr == "" {
				return false, fmt.Sprintf("%s sees leader %q (gRPC %q), want %s", s.ID(), id, addr, leader.ID())
			}
		}
		return true, ""
	})
	return leader
}

// Kill stops server i abruptly (no gossip leave); its data dir stays.
func (c *Cluster) Kill(i int) {
	c.t.Helper()
	c.mu.Lock()
	if i < 0 || i >= len(c.servers) {
		c.mu.Unlock() // a panic under the lock would hang the cleanup's shutdown
		c.t.Fatalf("testcluster: Kill(%d): no such server (0..%d)", i, len(c.servers)-1)
	}
	s := c.servers[i]
	c.servers[i] = nil
	c.mu.Unlock()
	if s == nil {
		c.t.Fatalf("testcluster: Kill(%d): server not running", i)
	}
	s.Kill()
}

// Restart starts server i again from its data dir, on the same addresses,
// joining the running servers' gossip.
func (c *Cluster) Restart(i int) *coordinator.Server {
	c.t.Helper()
	c.mu.Lock()
	if c.servers[i] != nil {
		c.mu.Unlock()
		c.t.Fatalf("testcluster: Restart(%d): server still running", i)
	}
	cfg := c.cfgs[i]
	c.mu.Unlock()
	cfg.Gossip.Join = c.GossipSeeds()
	ctx, cancel := context.WithTimeout(context.Background(), DefaultTimeout)
	defer cancel()
	s, err := devcluster.RestartServerFrom(ctx, cfg)
	if err != nil {
		c.t.Fatalf("testcluster: Restart(%d): %v", i, err)
	}
	c.mu.Lock()
	c.servers[i] = s
	c.mu.Unlock()
	return s
}

// GossipSeeds are the gossip addresses of the running servers: give them
// to a new member's Join.
func (c *Cluster) GossipSeeds() []string {
	var out []string
	for _, s := range c.Servers() {
		out = append(out, s.GossipAddr())
	}
	return out
}

// Client returns a CoordinatorService client for server i.
func (c *Cluster) Client(i int) pb.CoordinatorServiceClient {
	c.t.Helper()
	s := c.Server(i)
	if s == nil {
		c.t.Fatalf("testcluster: Client(%d): server not running", i)
	}
	return pb.NewCoordinatorServiceClient(c.conn(s.GRPCAddr()))
}

func (c *Cluster) conn(addr string) *grpc.ClientConn {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cc, ok := c.conns[addr]; ok {
		return cc
	}
	cc, err := grpcx.NewClient(addr, c.clientTLS)
	if err != nil {
		c.t.Fatalf("testcluster: client for %s: %v", addr, err)
	}
	c.conns[addr] = cc
	return cc
}

// Dial returns a client for server i over a new connection with tl (not
// shared, closed when the test ends): for tests of who may connect.
func (c *Cluster) Dial(t testing.TB, i int, tl grpcx.TLS) pb.CoordinatorServiceClient {
	t.Helper()
	s := c.Server(i)
	if s == nil {
		t.Fatalf("testcluster: Dial(%d): server not running", i)
	}
	cc, err := grpcx.NewClient(s.GRPCAddr(), tl)
	if err != nil {
		t.Fatalf("testcluster: client for %s: %v", s.GRPCAddr(), err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return pb.NewCoordinatorServiceClient(cc)
}

// Logger is the harness's logger (to t.Log), for extras.
func (c *Cluster) Logger() *zap.Logger { return c.log }

// AddCleanup registers fn to run when the cluster shuts down, before the
// servers stop (extras stop their members here).
func (c *Cluster) AddCleanup(fn func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cleanups = append(c.cleanups, fn)
}

func (c *Cluster) shutdown() {
	c.mu.Lock()
	cleanups := c.cleanups
	c.cleanups = nil
	c.mu.Unlock()
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, s := range c.Servers() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Shutdown(ctx); err != nil {
				c.t.Logf("testcluster: shutdown %s: %v", s.ID(), err)
			}
		}()
	}
	wg.Wait()
	c.mu.Lock()
	for addr, cc := range c.conns {
		_ = cc.Close()
		delete(c.conns, addr)
	}
	c.mu.Unlock()
	c.logw.stop()
}

// WaitFor polls cond every 10ms until it holds or timeout passes, then
// fails the test with cond's last reason.
func WaitFor(t testing.TB, timeout time.Duration, cond func() (ok bool, reason string)) {
	t.Helper()
	waitfor.Fatal(context.Background(), t, timeout, "the condition", cond)
}

// testWriter writes log lines to t.Log until the cluster stops; lines from
// goroutines that outlive it are dropped (t.Log after a test panics).
type testWriter struct {
	mu      sync.Mutex
	t       testing.TB
	stopped bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.stopped {
		w.t.Log(string(p))
	}
	return len(p), nil
}

func (w *testWriter) stop() {
	w.mu.Lock()
	w.stopped = true
	w.mu.Unlock()
}
