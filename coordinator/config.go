// Package coordinator is the Raft-replicated coordinator server: the FSM
// behind hashicorp/raft, leader duties, gossip membership, and the
// CoordinatorService gRPC API with transparent leader forwarding.
package coordinator

import (
	"net"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/stillpoint-dev/stillpoint/internal/clock"
	"github.com/stillpoint-dev/stillpoint/internal/config"
	"github.com/stillpoint-dev/stillpoint/internal/gossip"
	"github.com/stillpoint-dev/stillpoint/internal/grpcx"
	"github.com/stillpoint-dev/stillpoint/internal/hook"
)

// RoleServer is the gossip role of coordinator servers.
const RoleServer = "server"

// RaftTimings are hashicorp/raft's timeouts.
type RaftTimings struct {
	HeartbeatTimeout   time.Duration `yaml:"heartbeat_timeout"`
	ElectionTimeout    time.Duration `yaml:"election_timeout"`
	LeaderLeaseTimeout time.Duration `yaml:"leader_lease_timeout"`
	CommitTimeout      time.Duration `yaml:"commit_timeout"`
}

// Config configures a Server.
type Config struct {
	// NodeID names this server: its Raft server ID and gossip name.
	NodeID string
	// DataDir holds the Raft log (raft/wal) and snapshots (raft/snapshots).
	DataDir string

	// RaftBindAddr is host:port the Raft TCP transport listens on (port 0
	// picks a free one).
	RaftBindAddr string
	// RaftAdvertiseAddr is host:port peers reach Raft on; required when
	// RaftBindAddr is a wildcard address.
	RaftAdvertiseAddr string

	// GRPCAddr is host:port the CoordinatorService listens on.
	GRPCAddr string
	// GRPCAdvertiseAddr is host:port other servers and clients reach it on;
	// empty means the listener's address.
	GRPCAdvertiseAddr string
	// TLS is the gRPC server side; ClientTLS is used to forward to the
	// leader and to ask peers before bootstrapping.
	TLS       grpcx.TLS
	ClientTLS grpcx.TLS

	// ACL switches bearer-token enforcement on the CoordinatorService.
	ACL ACLConfig

	// Bootstrap makes this server bootstrap a cluster of itself alone.
	Bootstrap bool
	// BootstrapExpect waits until this many servers are in the gossip pool,
	// then bootstraps the cluster from them (Consul-style).
	BootstrapExpect int

	// LeaveOnShutdown announces a graceful leave on Shutdown: the leader
	// then removes this server from the Raft configuration. Off by default
	// (a restart should not shrink the cluster).
	LeaveOnShutdown bool

	// Gossip configures this server's memberlist pool; Name is forced to
	// NodeID.
	Gossip gossip.Config

	Raft RaftTimings

	// Hooks are the backup hooks this server may run as the leader (a
	// plan's hook with agent "coordinator"); defined only here, never sent
	// over the wire.
	Hooks []hook.Definition

	// SnapshotThreshold is how many log entries trigger a snapshot.
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	// TrailingLogs stay in the log after a snapshot.
	TrailingLogs uint64
	// SnapshotRetain is how many snapshots are kept on disk.
	SnapshotRetain int
	// WALSegmentSize is the preallocated size of each raft-wal segment (0
	// means raft-wal's 64 MiB; tests use a few MiB).
	WALSegmentSize int

	// ReconcileInterval is how often the leader reconciles every member,
	// healing any lost gossip event.
	ReconcileInterval time.Duration
	// WatchInterval is how often the leader checks the gossip view for
	// what only it can show after the fact: late reports that a node came
	// back unpaused during a completed op, and dead agents whose nodes may
	// still be paused (0: 1s).
	WatchInterval time.Duration
	// DeadAgentGrace is added to a lease before the leader alarms that a
	// node may be left paused by a dead agent: it absorbs the skew between
	// the servers' clocks and a renewal in flight (0: 2s).
	DeadAgentGrace time.Duration
	// LeaderWait is how long a request waits for a leader to be elected
	// (within its own deadline) before failing UNAVAILABLE.
	LeaderWait time.Duration
	// ApplyTimeout bounds a Raft apply whose context has no deadline.
	ApplyTimeout time.Duration

	Logger *zap.Logger
	// Now reads the local wall clock (injectable for tests).
	Now func() time.Time
	// Clock, when set, is this server's NTP estimate: every wall time the
	// server records (op created/ended, audit) carries it. Without it the
	// stamps carry an estimate with status unspecified.
	Clock ClockSource

	// HTTPAddr is host:port of the HTTP listener serving /metrics, /healthz
	// and /readyz (port 0 picks a free one; empty: none).
	HTTPAddr string
	// MetricsGatherer is served on /metrics beside the coordinator's own
	// metrics (the binary's registry: raft and memberlist via go-metrics,
	// Go runtime). Optional.
	MetricsGatherer prometheus.Gatherer

	// Alerting pushes the alarms to Alertmanager and webhooks (leader only).
	Alerting AlertingConfig

	// AgentTLS is the client side of links to agents' AgentService.
	AgentTLS grpcx.TLS
	// StatusTimeout bounds each live agent Status call at admission.
	StatusTimeout time.Duration
}

// ClockSource is a running NTP sampler (internal/clock.Sampler).
type ClockSource interface {
	Current() clock.Estimate
	Now() time.Time
}

// DefaultConfig returns production defaults: gRPC on 127.0.0.1:7400, Raft
// on 127.0.0.1:7401, LAN gossip on 7946.
func DefaultConfig() Config {
	g := gossip.DefaultConfig()
	return Config{
		DataDir:      "/var/lib/stillpoint/server",
		RaftBindAddr: "127.0.0.1:7401",
		GRPCAddr:     "127.0.0.1:7400",
		Gossip:       g,
		Raft: RaftTimings{
			HeartbeatTimeout:   1000 * time.Millisecond,
			ElectionTimeout:    1000 * time.Millisecond,
			LeaderLeaseTimeout: 500 * time.Millisecond,
			CommitTimeout:      50 * time.Millisecond,
		},
		SnapshotThreshold: 8192,
		SnapshotInterval:  2 * time.Minute,
		TrailingLogs:      10240,
		SnapshotRetain:    2,
		ReconcileInterval: 60 * time.Second,
		WatchInterval:     time.Second,
		DeadAgentGrace:    2 * time.Second,
		LeaderWait:        5 * time.Second,
		ApplyTimeout:      10 * time.Second,
		StatusTimeout:     2 * time.Second,
	}
}

// TestTimings are timings for in-process clusters on loopback: short
// enough that elections take well under a second, long enough that a
// loaded 2-core machine running the race detector does not make a leader
// step down mid-test (50 ms leases did).
func TestTimings() RaftTimings {
	return RaftTimings{
		HeartbeatTimeout:   250 * time.Millisecond,
		ElectionTimeout:    250 * time.Millisecond,
		LeaderLeaseTimeout: 125 * time.Millisecond,
		CommitTimeout:      5 * time.Millisecond,
	}
}

// Validate reports every problem in c.
func (c Config) Validate() error {
	var p config.Problems
	if c.NodeID == "" {
		p.Addf("node_id: must not be empty")
	}
	if c.DataDir == "" {
		p.Addf("data_dir: must not be empty")
	} else if !filepath.IsAbs(c.DataDir) && !filepath.IsLocal(c.DataDir) {
		p.Addf("data_dir: %q is neither absolute nor local", c.DataDir)
	}
	checkHostPort := func(name, v string, required bool) (host string) {
		if v == "" {
			if required {
				p.Addf("%s: must not be empty", name)
			}
			return ""
		}
		h, _, err := net.SplitHostPort(v)
		if err != nil {
			p.Addf("%s: %q is not host:port: %v", name, v, err)
		}
		return h
	}
	raftHost := checkHostPort("raft_bind_addr", c.RaftBindAddr, true)
	checkHostPort("raft_advertise_addr", c.RaftAdvertiseAddr, false)
	if ip := net.ParseIP(raftHost); ip != nil && ip.IsUnspecified() && c.RaftAdvertiseAddr == "" {
		p.Addf("raft_advertise_addr: required when raft_bind_addr is the wildcard %s", c.RaftBindAddr)
	}
	checkHostPort("http_addr", c.HTTPAddr, false)
	grpcHost := checkHostPort("grpc_addr", c.GRPCAddr, true)
	checkHostPort("grpc_advertise_addr", c.GRPCAdvertiseAddr, false)
	if ip := net.ParseIP(grpcHost); ip != nil && ip.IsUnspecified() && c.GRPCAdvertiseAddr == "" {
		p.Addf("grpc_advertise_addr: required when grpc_addr is the wildcard %s", c.GRPCAddr)
	}
	if c.Bootstrap && c.BootstrapExpect > 0 {
		p.Addf("bootstrap and bootstrap_expect=%d are exclusive: choose one", c.BootstrapExpect)
	}
	if c.BootstrapExpect < 0 {
		p.Addf("bootstrap_expect: %d is negative", c.BootstrapExpect)
	}
	if c.BootstrapExpect == 2 {
		p.Addf("bootstrap_expect: 2 servers cannot tolerate any failure; use 1, 3 or 5")
	}
	g := c.Gossip
	g.Name = c.NodeID
	if g.Name == "" {
		g.Name = "unnamed"
	}
	p.Merge("gossip.", g.Validate())
	pos := []struct {
		name string
		d    time.Duration
	}{
		{"raft.heartbeat_timeout", c.Raft.HeartbeatTimeout},
		{"raft.election_timeout", c.Raft.ElectionTimeout},
		{"raft.leader_lease_timeout", c.Raft.LeaderLeaseTimeout},
		{"raft.commit_timeout", c.Raft.CommitTimeout},
		{"reconcile_interval", c.ReconcileInterval},
		{"leader_wait", c.LeaderWait},
		{"apply_timeout", c.ApplyTimeout},
		{"snapshot_interval", c.SnapshotInterval},
	}
	for _, d := range pos {
		if d.d <= 0 {
			p.Addf("%s: %v must be positive", d.name, d.d)
		}
	}
	if c.Raft.LeaderLeaseTimeout > c.Raft.HeartbeatTimeout {
		p.Addf("raft.leader_lease_timeout: %v exceeds raft.heartbeat_timeout %v", c.Raft.LeaderLeaseTimeout, c.Raft.HeartbeatTimeout)
	}
	if c.WatchInterval < 0 || c.DeadAgentGrace < 0 {
		p.Addf("watch_interval %v and dead_agent_grace %v must not be negative", c.WatchInterval, c.DeadAgentGrace)
	}
	if c.SnapshotThreshold == 0 {
		p.Addf("snapshot_threshold: must be positive")
	}
	if c.SnapshotRetain < 1 {
		p.Addf("snapshot_retain: %d, want at least 1", c.SnapshotRetain)
	}
	if err := c.Alerting.Validate(); err != nil {
		p.Addf("alerting: %v", err)
	}
	if c.WALSegmentSize < 0 {
		p.Addf("wal_segment_size: %d is negative", c.WALSegmentSize)
	}
	p.Merge("", hook.Validate(c.Hooks))
	return p.Err()
}
