package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/stillpoint-dev/stillpoint/coordinator"
	"github.com/stillpoint-dev/stillpoint/internal/clock"
	"github.com/stillpoint-dev/stillpoint/internal/config"
	"github.com/stillpoint-dev/stillpoint/internal/gossip"
	"github.com/stillpoint-dev/stillpoint/internal/grpcx"
	"github.com/stillpoint-dev/stillpoint/internal/hook"
	"github.com/stillpoint-dev/stillpoint/internal/logging"
)

func init() { subcommands = append(subcommands, newServerCmd) }

// serverFile is the `stillpoint server` configuration as written in YAML,
// environment and flags; toConfig maps it onto coordinator.Config.
type serverFile struct {
	NodeID           string `yaml:"node_id" flag:"node-id"`
	DataDir          string `yaml:"data_dir" flag:"data-dir"`
	RaftBind         string `yaml:"raft_bind" flag:"raft-bind"`
	RaftAdvertise    string `yaml:"raft_advertise" flag:"raft-advertise"`
	GRPCListen       string `yaml:"grpc_listen" flag:"grpc-listen"`
	GRPCAdvertise    string `yaml:"grpc_advertise" flag:"grpc-advertise"`
	Bootstrap        bool   `yaml:"bootstrap" flag:"bootstrap"`
	BootstrapExpect  int    `yaml:"bootstrap_expect" flag:"bootstrap-expect"`
	LeaveOnTerminate bool   `yaml:"leave_on_terminate" flag:"leave-on-terminate"`
	Gossip           struct {
		Bind          string   `yaml:"bind" flag:"gossip-bind"`
		Advertise     string   `yaml:"advertise" flag:"gossip-advertise"`
		Join          []string `yaml:"join" flag:"gossip-join"`
		EncryptionKey string   `yaml:"encryption_key" flag:"gossip-encryption-key"`
		Profile       string   `yaml:"profile" flag:"gossip-profile"`
	} `yaml:"gossip"`
	MetricsListen string `yaml:"metrics_listen" flag:"metrics-listen"`
	// ACL: token enforcement on the API (on by default: run
	// `stillpoint acl bootstrap` once per cluster).
	ACL struct {
		Enabled       bool `yaml:"enabled" flag:"acl-enabled"`
		ProtectHealth bool `yaml:"protect_health" flag:"acl-protect-health"`
	} `yaml:"acl"`
	Log struct {
		Level  string `yaml:"level" flag:"log-level"`
		Format string `yaml:"format" flag:"log-format"`
	} `yaml:"log"`
	// TLS of the gRPC listener, and of this server's calls to the others.
	GRPCTLS grpcx.TLS `yaml:"grpc_tls"`
	PeerTLS grpcx.TLS `yaml:"peer_tls"`
	// AgentTLS is the client side of calls to agents' AgentService.
	AgentTLS grpcx.TLS `yaml:"agent_tls"`
	// NTPServers, when set, give the server its own clock estimate: every
	// time it records (op created/ended, audit) carries it.
	NTPServers []string `yaml:"ntp_servers" flag:"ntp-servers"`
	// Alerting pushes the leader's alarms to Alertmanager's v2 API and to
	// webhooks (Alertmanager's receiver JSON).
	Alerting coordinator.AlertingConfig `yaml:"alerting"`
	// Hooks are the backup hooks this server runs when it is the leader
	// and a plan names agent "coordinator" (same shape as an agent's).
	Hooks []hook.Definition `yaml:"hooks"`
}

func defaultServerFile() serverFile {
	d := coordinator.DefaultConfig()
	var f serverFile
	f.DataDir = d.DataDir
	f.RaftBind = d.RaftBindAddr
	f.GRPCListen = d.GRPCAddr
	f.Gossip.Bind = "0.0.0.0:7946"
	f.Gossip.Profile = gossip.ProfileLAN
	f.MetricsListen = "127.0.0.1:7402"
	f.Log.Level, f.Log.Format = "info", "json"
	f.ACL.Enabled = true
	return f
}

// toConfig builds the server config, reporting every problem.
func (f serverFile) toConfig() (coordinator.Config, error) {
	var p config.Problems
	c := coordinator.DefaultConfig()
	c.NodeID = f.NodeID
	c.DataDir = f.DataDir
	c.RaftBindAddr = f.RaftBind
	c.RaftAdvertiseAddr = f.RaftAdvertise
	c.GRPCAddr = f.GRPCListen
	c.GRPCAdvertiseAddr = f.GRPCAdvertise
	c.Bootstrap = f.Bootstrap
	c.BootstrapExpect = f.BootstrapExpect
	c.LeaveOnShutdown = f.LeaveOnTerminate
	c.TLS = f.GRPCTLS
	c.Alerting = f.Alerting
	c.ClientTLS = f.PeerTLS
	c.AgentTLS = f.AgentTLS
	c.Hooks = f.Hooks
	c.ACL = coordinator.ACLConfig{Enabled: f.ACL.Enabled, ProtectHealth: f.ACL.ProtectHealth}
	for _, a := range f.NTPServers {
		if _, _, err := splitPort(a); err != nil {
			p.Addf("ntp_servers %q: %v (want host:port, e.g. pool.ntp.org:123)", a, err)
		}
	}
	g := gossip.Config{Name: f.NodeID, Join: f.Gossip.Join, Profile: f.Gossip.Profile}
	host, port, err := splitPort(f.Gossip.Bind)
	if err != nil {
		p.Addf("gossip.bind %q: %v", f.Gossip.Bind, err)
	}
	g.BindAddr, g.BindPort = host, port
	if f.Gossip.Advertise != "" {
		host, port, err := splitPort(f.Gossip.Advertise)
		if err != nil {
			p.Addf("gossip.advertise %q: %v", f.Gossip.Advertise, err)
		}
		g.AdvertiseAddr, g.AdvertisePort = host, port
	}
	if f.Gossip.EncryptionKey != "" {
		k, err := base64.StdEncoding.DecodeString(f.Gossip.EncryptionKey)
		if err != nil {
			p.Addf("gossip.encryption_key: not valid base64: %v", err)
		}
		g.SecretKey = k
	}
	c.Gossip = g
	if f.MetricsListen != "" {
		if _, _, err := splitPort(f.MetricsListen); err != nil {
			p.Addf("metrics_listen %q: %v", f.MetricsListen, err)
		}
	}
	p.Merge("", c.Validate())
	return c, p.Err()
}

func splitPort(hp string) (string, int, error) {
	host, ps, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(ps)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("port %q is not a number in 0-65535", ps)
	}
	return host, port, nil
}

func newServerCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run a coordinator server (Raft member, gRPC API) in the foreground",
		Long: `Run one coordinator server in the foreground. Servers replicate the
coordinator's state (operations, restore-point catalog, alarms, audit log,
runtime config, members) with Raft, keep the Raft log and snapshots in
--data-dir, and serve the CoordinatorService gRPC API; a write sent to any
server is forwarded to the leader.

Servers find each other over gossip (the pool the agents join too). Start
three or five with --bootstrap-expect 3 (or 5) and --gossip-join pointing at
any other server: they bootstrap once that many are present. A single server
starts with --bootstrap. Restarting a server with its data dir rejoins the
cluster with its state.

Configuration: a YAML file (--config), overridden by STILLPOINT_* environment
variables (STILLPOINT_<FLAG_NAME>, e.g. STILLPOINT_BOOTSTRAP_EXPECT), overridden
by flags. Every problem is reported at once and the server does not start.
Coordinator metrics (per-node clock offset and bound, cluster spread, alarms,
operations, restore-point age, Raft, gossip) with Raft, memberlist and Go
metrics are served on --metrics-listen /metrics, with /healthz, /readyz and the
read-only web UI under /ui/ (stillpoint ui prints its URL).`,
		Example: `  stillpoint server --node-id s1 --data-dir /var/lib/stillpoint/s1 --bootstrap
  stillpoint server --config /etc/stillpoint/server.yaml
  stillpoint server --node-id s2 --bootstrap-expect 3 --data-dir /var/lib/stillpoint \
    --raft-bind 10.0.0.2:7401 --grpc-listen 10.0.0.2:7400 --gossip-bind 10.0.0.2:7946 \
    --gossip-join 10.0.0.1:7946`,
		Args: cobra.NoArgs,
	}
	d := defaultServerFile()
	f := cmd.Flags()
	f.String("config", "", "YAML config file")
	f.String("node-id", "", "unique server id: its Raft id and gossip name")
	f.String("data-dir", d.DataDir, "directory for the Raft log and snapshots")
	f.String("raft-bind", d.RaftBind, "Raft TCP listen host:port")
	f.String("raft-advertise", "", "Raft host:port the other servers reach (required with a wildcard bind)")
	f.String("grpc-listen", d.GRPCListen, "CoordinatorService gRPC listen host:port")
	f.String("grpc-advertise", "", "gRPC host:port others reach (default: the listen address)")
	f.Bool("bootstrap", false, "bootstrap a single-server cluster (first start only)")
	f.Int("bootstrap-expect", 0, "bootstrap once this many servers are in the gossip pool (3 or 5)")
	f.Bool("leave-on-terminate", false, "leave gossip on SIGTERM, which removes this server from Raft")
	f.String("gossip-bind", d.Gossip.Bind, "gossip listen host:port (UDP+TCP)")
	f.String("gossip-advertise", "", "gossip host:port others reach (default: bound address)")
	f.StringSlice("gossip-join", nil, "gossip members (servers or agents) to join, host:port")
	f.String("gossip-encryption-key", "", "base64 gossip key of 16, 24 or 32 bytes (prefer the env var)")
	f.String("gossip-profile", d.Gossip.Profile, "gossip timings: lan, local or test")
	f.String("metrics-listen", d.MetricsListen, "/metrics, /healthz, /readyz and the web UI (/ui/) listen host:port (empty: off)")
	f.Bool("acl-enabled", d.ACL.Enabled, "require role tokens on the API (run stillpoint acl bootstrap once); false lets anyone who reaches it pause")
	f.Bool("acl-protect-health", false, "the gRPC health service needs a read token too (HTTP /healthz, /readyz and /metrics stay open)")
	f.String("log-level", d.Log.Level, "log level: debug, info, warn or error")
	f.String("log-format", d.Log.Format, "log format: json or console")
	tlsFlags(f, "grpc-tls", "the gRPC listener (a CA requires client certificates)")
	tlsFlags(f, "peer-tls", "calls to the other servers")
	tlsFlags(f, "agent-tls", "calls to the agents")
	f.StringSlice("ntp-servers", nil, "NTP servers (host:port) for this server's own clock estimate, stamped on every recorded time")

	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		file, cfg, err := resolveServerConfig(cmd)
		if err != nil {
			return err
		}
		log, err := logging.New(logging.Config{Level: file.Log.Level, Format: file.Log.Format})
		if err != nil {
			return err
		}
		defer func() { _ = log.Sync() }()
		cfg.Logger = log
		if len(file.NTPServers) > 0 {
			sc := clock.DefaultConfig()
			sc.Servers = file.NTPServers
			sc.Logger = log.With(zap.String("node", cfg.NodeID))
			sampler, err := clock.NewSampler(sc)
			if err != nil {
				return fmt.Errorf("ntp_servers: %w", err)
			}
			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			go sampler.Run(ctx)
			cfg.Clock = sampler
		}
		return runServer(cmd.Context(), cfg, file.MetricsListen, log)
	}
	return cmd
}

func resolveServerConfig(cmd *cobra.Command) (serverFile, coordinator.Config, error) {
	file := defaultServerFile()
	var p config.Problems
	p.Merge("", config.Resolve(cmd, "config", &file))
	p.Merge("", applyTLSFlags(cmd.Flags(), "grpc-tls", &file.GRPCTLS))
	p.Merge("", applyTLSFlags(cmd.Flags(), "peer-tls", &file.PeerTLS))
	p.Merge("", applyTLSFlags(cmd.Flags(), "agent-tls", &file.AgentTLS))
	if err := p.Err(); err != nil {
		return file, coordinator.Config{}, err
	}
	cfg, err := file.toConfig()
	return file, cfg, err
}

// serverStarted, when set (tests), is called with the running server once
// SIGHUP reloads its certificates.
var serverStarted func(*coordinator.Server)

// runServer runs until SIGTERM/SIGINT (or ctx ends); SIGHUP reloads the
// TLS certificates and keys.
func runServer(ctx context.Context, cfg coordinator.Config, metricsListen string, log *zap.Logger) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if _, err := coordinator.SetupMetrics(reg); err != nil {
		return err
	}
	cfg.HTTPAddr = metricsListen
	cfg.MetricsGatherer = reg
	s, err := coordinator.NewServer(cfg)
	if err != nil {
		return err
	}
	if a := s.HTTPAddr(); a != "" {
		log.Info("serving /metrics, /healthz, /readyz and the web UI", zap.String("http", a), zap.String("ui", "http://"+a+"/ui/"))
	}
	stopHUP := reloadOnHUP(ctx, log, s.ReloadTLS)
	defer stopHUP()
	if serverStarted != nil {
		serverStarted(s)
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	<-ctx.Done()
	stop()
	log.Info("signal received; shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return s.Shutdown(sctx)
}
