package main

import (
	"context"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/stillpoint-dev/stillpoint/agent"
	"github.com/stillpoint-dev/stillpoint/internal/config"
	"github.com/stillpoint-dev/stillpoint/internal/grpcx"
	"github.com/stillpoint-dev/stillpoint/internal/logging"
)

func init() { subcommands = append(subcommands, newAgentCmd) }

func newAgentCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run the sidecar agent beside one Ledger/Auditor node (foreground)",
		Long: `Run the Stillpoint sidecar agent in the foreground, beside one Ledger, Auditor
or other scalar-admin node. The agent measures the host clock against NTP with
a certified error bound, watches the node's pause gate (CheckPaused), gossips
both to the coordinator, and pauses/unpauses the node for the coordinator
under a dead-man lease: a lease neither renewed nor released makes the agent
unpause its node by itself, even across an agent restart.

Configuration: a YAML file (--config), overridden by STILLPOINT_* environment
variables (STILLPOINT_<FLAG_NAME>, e.g. STILLPOINT_GOSSIP_ENCRYPTION_KEY),
overridden by flags. Every problem is reported, one per line, and the agent
does not start. Logs are JSON on stderr.

SIGHUP reloads the TLS certificates, keys and CAs (grpc.tls, admin.tls);
they are also reloaded when their files change. SIGTERM or SIGINT stops it gracefully: a node it holds paused is unpaused,
and it leaves the gossip pool.`,
		Example: `  stillpoint agent --config /etc/stillpoint/agent.yaml
  stillpoint agent --node-name ledger-1 --cluster prod --admin-address 127.0.0.1:50053 \
    --ntp-servers ntp1:123,ntp2:123,ntp3:123 --gossip-join 10.0.0.1:7946 --data-dir /var/lib/stillpoint-agent`,
		Args: cobra.NoArgs,
	}
	f := cmd.Flags()
	f.String("config", "", "YAML config file (see deploy/systemd/agent.yaml)")
	d := agent.DefaultConfig()
	f.String("node-name", "", "unique name of this agent/node in the gossip pool")
	f.String("role", d.Role, "node role: ledger, auditor or another label")
	f.String("cluster", "", "cluster the node belongs to")
	f.String("admin-address", d.Admin.Address, "the node's scalar-admin host:port (Ledger 50053, Auditor 40053)")
	f.Duration("admin-call-timeout", d.Admin.CallTimeout, "timeout of one Unpause/CheckPaused call")
	tlsFlags(f, "admin-tls", "the admin port link")
	f.StringSlice("ntp-servers", nil, "NTP servers host:port (3 or more for a majority)")
	f.Duration("ntp-poll-interval", d.NTP.PollInterval, "NTP poll interval")
	f.Duration("ntp-timeout", d.NTP.Timeout, "timeout of one NTP query")
	f.Float64("max-drift-ppm", d.NTP.MaxDriftPPM, "growth rate of the error bound with age (ppm), plus the kernel's slew rate (adjtimex)")
	f.Int("ntp-stale-after-polls", d.NTP.StaleAfterPolls, "after failed rounds the last good estimate ages for this many poll intervals, then is stale")
	f.String("gossip-bind", d.Gossip.Bind, "gossip listen host:port (UDP+TCP)")
	f.String("gossip-advertise", "", "gossip host:port others reach this agent at (default: bound address)")
	f.StringSlice("gossip-join", nil, "gossip members (servers or agents) to join, host:port")
	f.String("gossip-encryption-key", "", "base64 gossip key of 16, 24 or 32 bytes (prefer the env var)")
	f.String("gossip-profile", d.Gossip.Profile, "gossip timings: lan, local or test")
	f.String("grpc-listen", d.GRPC.Listen, "AgentService listen host:port")
	f.String("grpc-advertise", "", "AgentService host:port the coordinator dials, published in gossip (default: the bound listen address; required when listening on 0.0.0.0 or [::])")
	tlsFlags(f, "grpc-tls", "the AgentService listener (a CA requires client certificates)")
	f.String("metrics-listen", d.Metrics.Listen, "/metrics and /healthz listen host:port (empty: off)")
	f.String("data-dir", "", "directory for the persisted lease and highest epoch seen")
	f.Duration("max-lease", d.MaxLease, "longest lease a coordinator may ask for")
	f.Duration("check-paused-interval", d.CheckPausedInterval, "how often the node's gate is checked")
	f.String("log-level", d.Log.Level, "log level: debug, info, warn or error")
	f.String("log-format", d.Log.Format, "log format: json or console")

	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, err := resolveAgentConfig(cmd)
		if err != nil {
			return err
		}
		log, err := logging.New(logging.Config{Level: cfg.Log.Level, Format: cfg.Log.Format})
		if err != nil {
			return err
		}
		defer func() { _ = log.Sync() }()
		a, err := agent.New(cfg, agent.WithLogger(log))
		if err != nil {
			return err
		}
		ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
		defer stop()
		if err := a.Start(ctx); err != nil {
			return err
		}
		stopHUP := reloadOnHUP(ctx, log, a.ReloadTLS)
		defer stopHUP()
		<-ctx.Done()
		stop()
		sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		return a.Stop(sctx)
	}
	return cmd
}

// resolveAgentConfig applies defaults < file < env < flags and validates.
func resolveAgentConfig(cmd *cobra.Command) (agent.Config, error) {
	cfg := agent.DefaultConfig()
	var p config.Problems
	p.Merge("", config.Resolve(cmd, "config", &cfg))
	p.Merge("", applyTLSFlags(cmd.Flags(), "admin-tls", &cfg.Admin.TLS))
	p.Merge("", applyTLSFlags(cmd.Flags(), "grpc-tls", &cfg.GRPC.TLS))
	if err := p.Err(); err != nil {
		return cfg, err
	}
	return cfg, cfg.Validate()
}

// tlsFlags defines --<prefix>, --<prefix>-ca-file, -cert-file, -key-file and
// -server-name.
func tlsFlags(f *pflag.FlagSet, prefix, what string) {
	f.Bool(prefix, false, "enable TLS on "+what)
	f.String(prefix+"-ca-file", "", "CA bundle for "+what)
	f.String(prefix+"-cert-file", "", "certificate for "+what)
	f.String(prefix+"-key-file", "", "private key for "+what)
	f.String(prefix+"-server-name", "", "name to verify in the peer certificate on "+what)
}

// applyTLSFlags copies the TLS flags that were set (or came from env) over t.
func applyTLSFlags(f *pflag.FlagSet, prefix string, t *grpcx.TLS) error {
	var p config.Problems
	if fl := f.Lookup(prefix); fl != nil && fl.Changed {
		v, err := f.GetBool(prefix)
		if err != nil {
			p.Addf("flag --%s: %v", prefix, err)
		}
		t.Enabled = v
	}
	for suffix, dst := range map[string]*string{
		"-ca-file": &t.CAFile, "-cert-file": &t.CertFile, "-key-file": &t.KeyFile, "-server-name": &t.ServerName,
	} {
		if fl := f.Lookup(prefix + suffix); fl != nil && fl.Changed {
			*dst = fl.Value.String()
		}
	}
	return p.Err()
}
