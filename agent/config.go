// Package agent is the sidecar beside every Ledger/Auditor node: it measures
// the host clock against NTP, watches the node's pause gate, gossips both,
// and pauses/unpauses the node for the coordinator under a dead-man lease.
package agent

import (
	"encoding/base64"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/stillpoint-dev/stillpoint/internal/config"
	"github.com/stillpoint-dev/stillpoint/internal/gossip"
	"github.com/stillpoint-dev/stillpoint/internal/grpcx"
	"github.com/stillpoint-dev/stillpoint/internal/hook"
)

// Limits on identifiers, so the gossiped metadata stays under memberlist's
// 512-byte ceiling and op ids stay readable in logs.
const (
	// MaxOpIDLen is the longest op id the agent accepts (what gossip
	// metadata has room for).
	MaxOpIDLen = gossip.MaxOpIDLen
	// maxEvents is how many recent events State keeps.
	maxEvents = 32
	// maxEnded is how many ended operations are remembered (and persisted)
	// so a repeated Unpause returns the original result.
	maxEnded = 16
)

// Config is everything one agent needs. Durations in YAML are strings
// such as "30s".
type Config struct {
	// NodeName is this agent's (and its node's) unique name in the gossip pool.
	NodeName string `yaml:"node_name" flag:"node-name"`
	// Role is "ledger", "auditor" or another label.
	Role string `yaml:"role" flag:"role"`
	// Cluster is the name of the cluster the node belongs to.
	Cluster string `yaml:"cluster" flag:"cluster"`

	Admin   AdminConfig   `yaml:"admin"`
	NTP     NTPConfig     `yaml:"ntp"`
	Gossip  GossipConfig  `yaml:"gossip"`
	GRPC    GRPCConfig    `yaml:"grpc"`
	Metrics MetricsConfig `yaml:"metrics"`

	// DataDir holds the persisted lease and the highest epoch seen.
	DataDir string `yaml:"data_dir" flag:"data-dir"`
	// MaxLease caps every lease a coordinator may ask for.
	MaxLease time.Duration `yaml:"max_lease" flag:"max-lease"`
	// CheckPausedInterval is how often the node's gate is polled.
	CheckPausedInterval time.Duration `yaml:"check_paused_interval" flag:"check-paused-interval"`

	Log LogConfig `yaml:"log"`

	// Hooks are the backup hooks this agent may run (a backup plan names
	// them; the command behind a name is defined only here, so the
	// coordinator cannot ship a command line to this host). Validated at
	// start-up with hook.Validate.
	Hooks []hook.Definition `yaml:"hooks"`
}

// AdminConfig is the local node's scalar-admin port.
type AdminConfig struct {
	// Address is host:port (Ledger 50053, Auditor 40053).
	Address string    `yaml:"address" flag:"admin-address"`
	TLS     grpcx.TLS `yaml:"tls"`
	// CallTimeout bounds one Unpause/CheckPaused call (Pause is bounded by
	// the lease and the drain wait).
	CallTimeout time.Duration `yaml:"call_timeout" flag:"admin-call-timeout"`
}

// NTPConfig selects the NTP servers the clock is measured against.
type NTPConfig struct {
	// Servers are host:port; at least 3 are recommended for a majority.
	Servers      []string      `yaml:"servers" flag:"ntp-servers"`
	PollInterval time.Duration `yaml:"poll_interval" flag:"ntp-poll-interval"`
	Timeout      time.Duration `yaml:"timeout" flag:"ntp-timeout"`
	MaxDriftPPM  float64       `yaml:"max_drift_ppm" flag:"max-drift-ppm"`
	// StaleAfterPolls: through failed rounds the last good estimate stays
	// in force, aging, for this many poll intervals; then it is stale.
	StaleAfterPolls int `yaml:"stale_after_polls" flag:"ntp-stale-after-polls"`
}

// GossipConfig is the memberlist side.
type GossipConfig struct {
	// Bind is host:port to listen on (UDP and TCP); port 0 picks a free one.
	Bind string `yaml:"bind" flag:"gossip-bind"`
	// Advertise is host:port other members reach this agent at; empty
	// means the bound address.
	Advertise string `yaml:"advertise" flag:"gossip-advertise"`
	// Join lists members (agents or servers) to join at start.
	Join []string `yaml:"join" flag:"gossip-join"`
	// EncryptionKey is base64 of a 16, 24 or 32 byte key; empty means
	// plaintext gossip.
	EncryptionKey string `yaml:"encryption_key" flag:"gossip-encryption-key"`
	// Profile is "lan" (default), "local" or "test" (tight timings).
	Profile string `yaml:"profile" flag:"gossip-profile"`
}

// GRPCConfig is the AgentService listener.
type GRPCConfig struct {
	Listen string `yaml:"listen" flag:"grpc-listen"`
	// Advertise is host:port the coordinator dials, published in gossip
	// metadata; empty means the bound listen address. Required when Listen
	// has an unspecified host (0.0.0.0, [::], empty): nobody can dial that.
	Advertise string    `yaml:"advertise" flag:"grpc-advertise"`
	TLS       grpcx.TLS `yaml:"tls"`
}

// advertised is the gRPC address published in gossip before the listener
// is bound: Advertise, or Listen.
func (g GRPCConfig) advertised() string {
	if g.Advertise != "" {
		return g.Advertise
	}
	return g.Listen
}

// MetricsConfig is the /metrics and /healthz listener; empty Listen turns
// it off.
type MetricsConfig struct {
	Listen string `yaml:"listen" flag:"metrics-listen"`
}

// LogConfig selects the log level and format (json or console).
type LogConfig struct {
	Level  string `yaml:"level" flag:"log-level"`
	Format string `yaml:"format" flag:"log-format"`
}

// DefaultConfig returns a config with every default filled in; NodeName,
// Cluster and DataDir still need values.
func DefaultConfig() Config {
	return Config{
		Role: "ledger",
		Admin: AdminConfig{
			Address:     "127.0.0.1:50053",
			CallTimeout: 5 * time.Second,
		},
		NTP: NTPConfig{
			PollInterval:    16 * time.Second,
			Timeout:         2 * time.Second,
			MaxDriftPPM:     50,
			StaleAfterPolls: 4,
		},
		Gossip: GossipConfig{
			Bind:    "0.0.0.0:7946",
			Profile: "lan",
		},
		GRPC:                GRPCConfig{Listen: "127.0.0.1:7947"},
		Metrics:             MetricsConfig{Listen: "127.0.0.1:7948"},
		MaxLease:            5 * time.Minute,
		CheckPausedInterval: time.Second,
		Log:                 LogConfig{Level: "info", Format: "json"},
	}
}

// Validate reports every problem in the config at once (one line each), or
// nil. An agent with an invalid config does not start.
func (c Config) Validate() error {
	var p config.Problems
	c.validateIdentity(&p)
	if err := checkHostPort(c.Admin.Address, false); err != nil {
		p.Addf("admin.address %q: %v", c.Admin.Address, err)
	}
	if c.Admin.CallTimeout <= 0 {
		p.Addf("admin.call_timeout %s: must be positive", c.Admin.CallTimeout)
	}
	tlsProblems(&p, "admin.tls", c.Admin.TLS, false)

	if len(c.NTP.Servers) == 0 {
		p.Addf("ntp.servers: at least one NTP server (host:port) is required; 3 or more give a majority")
	}
	for i, s := range c.NTP.Servers {
		if err := checkHostPort(s, false); err != nil {
			p.Addf("ntp.servers[%d] %q: %v", i, s, err)
		}
	}
	if c.NTP.PollInterval <= 0 {
		p.Addf("ntp.poll_interval %s: must be positive", c.NTP.PollInterval)
	}
	if c.NTP.Timeout <= 0 {
		p.Addf("ntp.timeout %s: must be positive", c.NTP.Timeout)
	}
	if c.NTP.StaleAfterPolls < 1 {
		p.Addf("ntp.stale_after_polls %d: must be at least 1", c.NTP.StaleAfterPolls)
	}
	if c.NTP.MaxDriftPPM <= 0 || c.NTP.MaxDriftPPM > 1000 {
		p.Addf("ntp.max_drift_ppm %g: must be in (0, 1000]", c.NTP.MaxDriftPPM)
	}

	if err := checkHostPort(c.Gossip.Bind, true); err != nil {
		p.Addf("gossip.bind %q: %v", c.Gossip.Bind, err)
	}
	if c.Gossip.Advertise != "" {
		if err := checkHostPort(c.Gossip.Advertise, true); err != nil {
			p.Addf("gossip.advertise %q: %v", c.Gossip.Advertise, err)
		}
	}
	for i, j := range c.Gossip.Join {
		if err := checkHostPort(j, false); err != nil {
			p.Addf("gossip.join[%d] %q: %v", i, j, err)
		}
	}
	if _, err := c.Gossip.key(); err != nil {
		p.Addf("gossip.encryption_key: %v", err)
	}
	switch c.Gossip.Profile {
	case "", "lan", "local", "test":
	default:
		p.Addf("gossip.profile %q: want lan, local or test", c.Gossip.Profile)
	}

	c.validateGRPCAddrs(&p)
	tlsProblems(&p, "grpc.tls", c.GRPC.TLS, true)
	if c.Metrics.Listen != "" {
		if err := checkHostPort(c.Metrics.Listen, true); err != nil {
			p.Addf("metrics.listen %q: %v", c.Metrics.Listen, err)
		}
	}

	if strings.TrimSpace(c.DataDir) == "" {
		p.Addf("data_dir: required (the lease and highest epoch seen are kept there)")
	}
	if c.MaxLease <= 0 {
		p.Addf("max_lease %s: must be positive", c.MaxLease)
	} else if c.MaxLease > 24*time.Hour {
		p.Addf("max_lease %s: must be at most 24h (a paused cluster serves nothing)", c.MaxLease)
	}
	if c.CheckPausedInterval <= 0 {
		p.Addf("check_paused_interval %s: must be positive", c.CheckPausedInterval)
	}
	switch c.Log.Format {
	case "", "json", "console":
	default:
		p.Addf("log.format %q: want json or console", c.Log.Format)
	}
	switch c.Log.Level {
	case "", "debug", "info", "warn", "error":
	default:
		p.Addf("log.level %q: want debug, info, warn or error", c.Log.Level)
	}
	p.Merge("", hook.Validate(c.Hooks))
	return p.Err()
}

// validateGRPCAddrs checks grpc.listen and grpc.advertise: the address
// that will be advertised must be one a coordinator can dial.
func (c Config) validateGRPCAddrs(p *config.Problems) {
	if err := checkHostPort(c.GRPC.Listen, true); err != nil {
		p.Addf("grpc.listen %q: %v", c.GRPC.Listen, err)
	} else if c.GRPC.Advertise == "" && unspecifiedHost(c.GRPC.Listen) {
		p.Addf("grpc.advertise: required when grpc.listen %q has an unspecified host: "+
			"the coordinator cannot dial it; set grpc.advertise (--grpc-advertise) to this agent's reachable host:port", c.GRPC.Listen)
	}
	if c.GRPC.Advertise == "" {
		return
	}
	if err := checkHostPort(c.GRPC.Advertise, false); err != nil {
		p.Addf("grpc.advertise %q: %v", c.GRPC.Advertise, err)
	} else if unspecifiedHost(c.GRPC.Advertise) {
		p.Addf("grpc.advertise %q: unspecified host; want an address the coordinator can dial (a host name or a routable IP)", c.GRPC.Advertise)
	}
}

// unspecifiedHost reports whether host:port's host is empty, 0.0.0.0 or
// [::] (a listen-on-every-interface address nobody can dial).
func unspecifiedHost(hostPort string) bool {
	host, _, err := net.SplitHostPort(hostPort)
	if err != nil {
		return false
	}
	if host == "" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsUnspecified()
}

// validateIdentity checks the names that travel in gossip metadata.
func (c Config) validateIdentity(p *config.Problems) {
	if c.NodeName == "" {
		p.Addf("node_name: required (unique name of this agent in the gossip pool)")
	} else if err := checkLabel(c.NodeName); err != nil {
		p.Addf("node_name %q: %v", c.NodeName, err)
	}
	if c.Role == "" {
		p.Addf("role: required (ledger, auditor or another label)")
	} else if err := checkLabel(c.Role); err != nil {
		p.Addf("role %q: %v", c.Role, err)
	}
	if c.Cluster == "" {
		p.Addf("cluster: required (the name of the cluster this node belongs to)")
	} else if err := checkLabel(c.Cluster); err != nil {
		p.Addf("cluster %q: %v", c.Cluster, err)
	}
	// The names travel in every gossip message: refuse what would not fit.
	// (An empty name is already reported above; check the rest.)
	name := c.NodeName
	if name == "" {
		name = "-"
	}
	if err := gossip.ValidateMetaLimits(name, c.Role, c.Cluster, c.GRPC.advertised()); err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			p.Addf("%s", line)
		}
	}
}

// key decodes the gossip encryption key; nil means plaintext.
func (g GossipConfig) key() ([]byte, error) {
	if g.EncryptionKey == "" {
		return nil, nil
	}
	k, err := base64.StdEncoding.DecodeString(g.EncryptionKey)
	if err != nil {
		return nil, fmt.Errorf("not valid base64: %v", err)
	}
	switch len(k) {
	case 16, 24, 32:
		return k, nil
	}
	return nil, fmt.Errorf("decodes to %d bytes; want 16, 24 or 32 (e.g. `openssl rand -base64 32`)", len(k))
}

// checkLabel accepts names made of letters, digits and - _ . only.
func checkLabel(s string) error {
	for _, r := range s {
		ok := r == '-' || r == '_' || r == '.' ||
			(r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')
		if !ok {
			return fmt.Errorf("character %q not allowed: use letters, digits, '-', '_' and '.'", r)
		}
	}
	return nil
}

// checkHostPort checks host:port; port 0 only when allowZero.
func checkHostPort(s string, allowZero bool) error {
	if s == "" {
		return fmt.Errorf("empty; want host:port")
	}
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("want host:port: %v", err)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("port %q: want a number 0-65535", port)
	}
	if n == 0 && !allowZero {
		return fmt.Errorf("port 0 is only valid for a listen address")
	}
	return nil
}

// tlsProblems records a TLS section that cannot be loaded.
func tlsProblems(p *config.Problems, field string, t grpcx.TLS, server bool) {
	if !t.Active() {
		return
	}
	var err error
	if server {
		_, err = t.ServerConfig()
	} else {
		_, err = t.ClientConfig()
	}
	if err != nil {
		p.Addf("%s: %v", field, err)
	}
}
