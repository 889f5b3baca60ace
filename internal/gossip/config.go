package gossip

import (
	"net"
	"os"
	"time"

	"github.com/hashicorp/memberlist"
	"go.uber.org/zap"

	"github.com/stillpoint-dev/stillpoint/internal/config"
)

// Profiles select memberlist timings.
const (
	// ProfileLAN is memberlist's LAN timings (default).
	ProfileLAN = "lan"
	// ProfileLocal is memberlist's loopback timings with faster push-pull.
	ProfileLocal = "local"
	// ProfileTest is tight timings for in-process tests and dev mode.
	ProfileTest = "test"
)

// Config configures a Pool.
type Config struct {
	// Name is this member's unique name in the pool (≤ MaxNameLen bytes).
	Name string `yaml:"name"`
	// BindAddr is the IP to listen on (UDP and TCP share the port).
	BindAddr string `yaml:"bind_addr"`
	// BindPort 0 picks a free port; AdvertiseAddr() reports it.
	BindPort int `yaml:"bind_port"`
	// AdvertiseAddr is the IP peers reach us on; empty picks BindAddr, or
	// a private address when BindAddr is 0.0.0.0.
	AdvertiseAddr string `yaml:"advertise_addr"`
	// AdvertisePort 0 means BindPort.
	AdvertisePort int `yaml:"advertise_port"`
	// Join lists seed host:port addresses. The pool joins them in the
	// background at start and again whenever it has no live peer.
	Join []string `yaml:"join"`
	// SecretKey enables gossip encryption: 16, 24 or 32 bytes (AES-128/192/256).
	// Not loadable from YAML: read it from a key file or the environment.
	SecretKey []byte `yaml:"-"`
	// KeyringFile persists the keyring (JSON list of base64 keys, primary
	// first) so a restart keeps keys installed at run time. When it exists
	// it wins over SecretKey; when it does not, SecretKey seeds it.
	KeyringFile string `yaml:"keyring_file"`
	// Profile is "lan" (default), "local" or "test".
	Profile string      `yaml:"profile"`
	Logger  *zap.Logger `yaml:"-"`

	// MetaMinInterval coalesces UpdateMeta pushes: at most one per interval.
	// 0 means the profile default (test 100ms, local 250ms, lan 500ms).
	MetaMinInterval time.Duration `yaml:"meta_min_interval"`
	// RejoinInterval is how often a pool without live peers retries Join.
	// 0 means the profile default (test 500ms, local 2s, lan 10s).
	RejoinInterval time.Duration `yaml:"rejoin_interval"`
	// DeadRetention is how long dead and left members stay in Members().
	// 0 means 1h.
	DeadRetention time.Duration `yaml:"dead_retention"`
}

// DefaultConfig returns LAN settings on the standard memberlist port, named
// after the host.
func DefaultConfig() Config {
	host, _ := os.Hostname()
	return Config{
		Name:     host,
		BindAddr: "0.0.0.0",
		BindPort: 7946,
		Profile:  ProfileLAN,
	}
}

// Validate reports every problem in c.
func (c Config) Validate() error {
	var p config.Problems
	switch {
	case c.Name == "":
		p.Addf("name: must not be empty")
	case len(c.Name) > MaxNameLen:
		p.Addf("name: %d bytes, limit %d", len(c.Name), MaxNameLen)
	}
	if net.ParseIP(c.BindAddr) == nil {
		p.Addf("bind_addr: %q is not an IP address", c.BindAddr)
	}
	if c.BindPort < 0 || c.BindPort > 65535 {
		p.Addf("bind_port: %d out of range 0-65535", c.BindPort)
	}
	if c.AdvertiseAddr != "" && net.ParseIP(c.AdvertiseAddr) == nil {
		p.Addf("advertise_addr: %q is not an IP address", c.AdvertiseAddr)
	}
	if c.AdvertisePort < 0 || c.AdvertisePort > 65535 {
		p.Addf("advertise_port: %d out of range 0-65535", c.AdvertisePort)
	}
	if c.AdvertisePort != 0 && c.BindPort == 0 {
		p.Addf("advertise_port: %d set with bind_port 0 (a dynamic port cannot be advertised as a fixed one)", c.AdvertisePort)
	}
	for i, a := range c.Join {
		if _, _, err := net.SplitHostPort(a); err != nil {
			p.Addf("join[%d]: %q is not host:port: %v", i, a, err)
		}
	}
	switch len(c.SecretKey) {
	case 0, 16, 24, 32:
	default:
		p.Addf("secret_key: %d bytes, want 16, 24 or 32", len(c.SecretKey))
	}
	switch c.Profile {
	case "", ProfileLAN, ProfileLocal, ProfileTest:
	default:
		p.Addf("profile: %q, want lan, local or test", c.Profile)
	}
	if c.MetaMinInterval < 0 {
		p.Addf("meta_min_interval: %v is negative", c.MetaMinInterval)
	}
	if c.RejoinInterval < 0 {
		p.Addf("rejoin_interval: %v is negative", c.RejoinInterval)
	}
	if c.DeadRetention < 0 {
		p.Addf("dead_retention: %v is negative", c.DeadRetention)
	}
	return p.Err()
}

// timings are the pool's own intervals for a profile.
type timings struct {
	metaMin, rejoin, deadRetention time.Duration
}

// memberlistConfig builds the memberlist configuration for c (validated).
func (c Config) memberlistConfig() (*memberlist.Config, timings) {
	var mc *memberlist.Config
	t := timings{deadRetention: time.Hour}
	switch c.Profile {
	case ProfileTest:
		mc = memberlist.DefaultLocalConfig()
		mc.ProbeInterval = 200 * time.Millisecond
		mc.ProbeTimeout = 100 * time.Millisecond
		mc.SuspicionMult = 4
		mc.GossipInterval = 20 * time.Millisecond
		mc.PushPullInterval = 500 * time.Millisecond
		mc.TCPTimeout = 2 * time.Second
		mc.GossipToTheDeadTime = 2 * time.Second
		mc.DeadNodeReclaimTime = 50 * time.Millisecond
		t.metaMin, t.rejoin = 100*time.Millisecond, 500*time.Millisecond
	case ProfileLocal:
		mc = memberlist.DefaultLocalConfig()
		// Single-seed joins take ~18s to converge at the default 15s.
		mc.PushPullInterval = 2 * time.Second
		mc.DeadNodeReclaimTime = time.Second
		t.metaMin, t.rejoin = 250*time.Millisecond, 2*time.Second
	default:
		mc = memberlist.DefaultLANConfig()
		mc.PushPullInterval = 15 * time.Second
		// A restarted node (same name, new address) may take its name back
		// this long after it was declared dead.
		mc.DeadNodeReclaimTime = 5 * time.Second
		t.metaMin, t.rejoin = 500*time.Millisecond, 10*time.Second
	}
	mc.Name = c.Name
	mc.BindAddr = c.BindAddr
	mc.BindPort = c.BindPort
	mc.AdvertiseAddr = c.AdvertiseAddr
	mc.AdvertisePort = c.AdvertisePort
	if mc.AdvertisePort == 0 {
		mc.AdvertisePort = c.BindPort
	}
	if len(c.SecretKey) > 0 {
		mc.SecretKey = append([]byte(nil), c.SecretKey...)
	}
	if c.MetaMinInterval > 0 {
		t.metaMin = c.MetaMinInterval
	}
	if c.RejoinInterval > 0 {
		t.rejoin = c.RejoinInterval
	}
	if c.DeadRetention > 0 {
		t.deadRetention = c.DeadRetention
	}
	return mc, t
}
