package agent

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stillpoint-dev/stillpoint/internal/config"
	"github.com/stillpoint-dev/stillpoint/internal/gossip"
)

func validConfig() Config {
	c := DefaultConfig()
	c.NodeName = "ledger-1"
	c.Cluster = "prod"
	c.NTP.Servers = []string{"10.0.0.1:123", "10.0.0.2:123", "10.0.0.3:123"}
	c.DataDir = "/var/lib/stillpoint-agent"
	return c
}

func TestConfigValid(t *testing.T) {
	c := validConfig()
	c.Gossip.EncryptionKey = base64.StdEncoding.EncodeToString(make([]byte, 32))
	if err := c.Validate(); err != nil {
		t.Fatalf("valid config rejected: %v", err)
	}
}

// TestConfigProblems: each bad input yields exactly one clear problem line
// naming the key and the value.
func TestConfigProblems(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"no name", func(c *Config) { c.NodeName = "" }, "node_name: required"},
		{"name with space", func(c *Config) { c.NodeName = "ledger 1" }, `node_name "ledger 1": character ' ' not allowed`},
		{"name too long for gossip", func(c *Config) { c.NodeName = strings.Repeat("n", gossip.MaxNameLen+1) }, "node name is 129 bytes, limit 128"},
		{"role too long for gossip", func(c *Config) { c.Role = strings.Repeat("r", gossip.MaxRoleLen+1) }, "role is 33 bytes, limit 32"},
		{"cluster too long for gossip", func(c *Config) { c.Cluster = strings.Repeat("c", gossip.MaxClusterLen+1) }, "cluster is 65 bytes, limit 64"},
		{"grpc address too long for gossip", func(c *Config) { c.GRPC.Listen = strings.Repeat("h", gossip.MaxGRPCAddrLen) + ":1" }, "grpc address is 162 bytes, limit 160"},
		{"no role", func(c *Config) { c.Role = "" }, "role: required"},
		{"no cluster", func(c *Config) { c.Cluster = "" }, "cluster: required"},
		{"admin without port", func(c *Config) { c.Admin.Address = "localhost" }, `admin.address "localhost": want host:port`},
		{"admin port 0", func(c *Config) { c.Admin.Address = "127.0.0.1:0" }, `admin.address "127.0.0.1:0": port 0 is only valid for a listen address`},
		{"admin call timeout", func(c *Config) { c.Admin.CallTimeout = 0 }, "admin.call_timeout 0s: must be positive"},
		{"admin TLS half a key pair", func(c *Config) { c.Admin.TLS.CertFile = "/x.pem" }, "admin.tls: TLS needs both cert_file and key_file"},
		{"no NTP servers", func(c *Config) { c.NTP.Servers = nil }, "ntp.servers: at least one NTP server"},
		{"NTP server without port", func(c *Config) { c.NTP.Servers = []string{"pool.ntp.org"} }, `ntp.servers[0] "pool.ntp.org": want host:port`},
		{"NTP poll", func(c *Config) { c.NTP.PollInterval = -time.Second }, "ntp.poll_interval -1s: must be positive"},
		{"NTP timeout", func(c *Config) { c.NTP.Timeout = 0 }, "ntp.timeout 0s: must be positive"},
		{"drift", func(c *Config) { c.NTP.MaxDriftPPM = 0 }, "ntp.max_drift_ppm 0: must be in (0, 1000]"},
		{"gossip bind", func(c *Config) { c.Gossip.Bind = "0.0.0.0:70000" }, `gossip.bind "0.0.0.0:70000": port "70000"`},
		{"gossip advertise", func(c *Config) { c.Gossip.Advertise = "10.0.0.1" }, `gossip.advertise "10.0.0.1": want host:port`},
		{"gossip join", func(c *Config) { c.Gossip.Join = []string{"10.0.0.1:7946", "seed"} }, `gossip.join[1] "seed": want host:port`},
		{"gossip key not base64", func(c *Config) { c.Gossip.EncryptionKey = "%%%" }, "gossip.encryption_key: not valid base64"},
		{"gossip key length", func(c *Config) { c.Gossip.EncryptionKey = base64.StdEncoding.EncodeToString(make([]byte, 20)) }, "gossip.encryption_key: decodes to 20 bytes; want 16, 24 or 32"},
		{"gossip profile", func(c *Config) { c.Gossip.Profile = "wan" }, `gossip.profile "wan": want lan, local or test`},
		{"grpc listen", func(c *Config) { c.GRPC.Listen = "" }, `grpc.listen "": empty; want host:port`},
		{"grpc listen on every interface, no advertise", func(c *Config) { c.GRPC.Listen = "0.0.0.0:7947" }, `grpc.advertise: required when grpc.listen "0.0.0.0:7947" has an unspecified host`},
		{"grpc listen on every IPv6 interface, no advertise", func(c *Config) { c.GRPC.Listen = "[::]:7947" }, `grpc.advertise: required when grpc.listen "[::]:7947" has an unspecified host`},
		{"grpc listen with empty host, no advertise", func(c *Config) { c.GRPC.Listen = ":7947" }, `grpc.advertise: required when grpc.listen ":7947" has an unspecified host`},
		{"grpc advertise unspecified", func(c *Config) { c.GRPC.Listen, c.GRPC.Advertise = "0.0.0.0:7947", "0.0.0.0:7947" }, `grpc.advertise "0.0.0.0:7947": unspecified host`},
		{"grpc advertise IPv6 unspecified", func(c *Config) { c.GRPC.Advertise = "[::]:7947" }, `grpc.advertise "[::]:7947": unspecified host`},
		{"grpc advertise empty host", func(c *Config) { c.GRPC.Advertise = ":7947" }, `grpc.advertise ":7947": unspecified host`},
		{"grpc advertise without port", func(c *Config) { c.GRPC.Advertise = "agent-1" }, `grpc.advertise "agent-1": want host:port`},
		{"grpc advertise port 0", func(c *Config) { c.GRPC.Advertise = "agent-1:0" }, `grpc.advertise "agent-1:0": port 0 is only valid for a listen address`},
		{"grpc advertise too long for gossip", func(c *Config) { c.GRPC.Advertise = strings.Repeat("h", gossip.MaxGRPCAddrLen) + ":1" }, "grpc address is 162 bytes, limit 160"},
		{"grpc TLS without cert", func(c *Config) { c.GRPC.TLS.Enabled = true }, "grpc.tls: a TLS server needs cert_file and key_file"},
		{"metrics listen", func(c *Config) { c.Metrics.Listen = "metrics" }, `metrics.listen "metrics": want host:port`},
		{"no data dir", func(c *Config) { c.DataDir = " " }, "data_dir: required"},
		{"max lease zero", func(c *Config) { c.MaxLease = 0 }, "max_lease 0s: must be positive"},
		{"max lease huge", func(c *Config) { c.MaxLease = 48 * time.Hour }, "max_lease 48h0m0s: must be at most 24h"},
		{"check interval", func(c *Config) { c.CheckPausedInterval = 0 }, "check_paused_interval 0s: must be positive"},
		{"log format", func(c *Config) { c.Log.Format = "xml" }, `log.format "xml": want json or console`},
		{"log level", func(c *Config) { c.Log.Level = "loud" }, `log.level "loud": want debug, info, warn or error`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.mutate(&c)
			err := c.Validate()
			var p config.Problems
			if !errors.As(err, &p) {
				t.Fatalf("Validate = %v, want config.Problems", err)
			}
			if len(p) != 1 || !strings.Contains(p[0], tt.want) {
				t.Fatalf("problems %q, want exactly one containing %q", []string(p), tt.want)
			}
			if _, err := New(c); err == nil {
				t.Fatal("New accepted an invalid config: the agent must not start")
			}
		})
	}
}

// TestConfigGRPCAdvertiseValid: an advertise address (a service name or an
// IP) lets the agent listen on every interface.
func TestConfigGRPCAdvertiseValid(t *testing.T) {
	for _, tt := range []struct{ listen, advertise string }{
		{"0.0.0.0:7947", "agent-ledger-1:7947"},
		{"[::]:7947", "10.0.1.11:7947"},
		{":7947", "[fd00::11]:7947"},
		{"127.0.0.1:0", ""},
		{"10.0.1.11:7947", ""},
	} {
		c := validConfig()
		c.GRPC.Listen, c.GRPC.Advertise = tt.listen, tt.advertise
		if err := c.Validate(); err != nil {
			t.Errorf("listen %q advertise %q rejected: %v", tt.listen, tt.advertise, err)
		}
	}
}

// TestConfigReportsEveryProblem: several problems come back together, one
// line each.
func TestConfigReportsEveryProblem(t *testing.T) {
	c := validConfig()
	c.NodeName, c.Cluster, c.DataDir, c.MaxLease = "", "", "", 0
	err := c.Validate()
	if got := strings.Count(err.Error(), "\n"); got != 4 {
		t.Fatalf("error has %d problem lines, want 4:\n%v", got, err)
	}
}

// TestConfigFromYAML: durations read as strings, unknown keys are refused.
func TestConfigFromYAML(t *testing.T) {
	c := DefaultConfig()
	yml := `
node_name: ledger-1
cluster: prod
admin: {address: "127.0.0.1:50053", call_timeout: 3s}
ntp: {servers: ["a:123", "b:123", "c:123"], poll_interval: 8s}
gossip: {bind: "127.0.0.1:7946", join: ["10.0.0.1:7946"]}
data_dir: /tmp/x
max_lease: 2m
`
	if err := config.Decode("agent.yaml", []byte(yml), &c); err != nil {
		t.Fatalf("decode: %v", err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("validate: %v", err)
	}
	if c.MaxLease != 2*time.Minute || c.NTP.PollInterval != 8*time.Second || c.Admin.CallTimeout != 3*time.Second || c.Role != "ledger" {
		t.Fatalf("decoded %+v", c)
	}
	err := config.Decode("agent.yaml", []byte("node_name: x\nmax_leese: 1m\n"), &c)
	if !errors.Is(err, config.ErrUnknownKey) || !strings.Contains(err.Error(), "max_leese") {
		t.Fatalf("unknown key: %v", err)
	}
}

// TestConfigHooksFromYAML: the `hooks:` list decodes (durations as
// strings) and a bad hook is a start-up error naming its field.
func TestConfigHooksFromYAML(t *testing.T) {
	c := validConfig()
	yml := `
hooks:
  - name: pg-dump
    command: /etc/stillpoint/hooks/pg-dump.sh
    args: [ledger]
    dir: /var/backups/stillpoint
    timeout: 10m
    env: {PGHOST: localhost, PGUSER: backup}
  - name: snapshot
    command: nodetool
    args: [snapshot, -t, x]
    timeout: 5m
`
	if err := config.Decode("agent.yaml", []byte(yml), &c); err != nil {
		t.Fatalf("decode: %v", err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("validate: %v", err)
	}
	h := c.Hooks[0]
	if len(c.Hooks) != 2 || h.Name != "pg-dump" || h.Timeout != 10*time.Minute || h.Env["PGUSER"] != "backup" || h.Dir != "/var/backups/stillpoint" || h.Args[0] != "ledger" {
		t.Fatalf("decoded hooks %+v", c.Hooks)
	}
	c.Hooks[1].Timeout = 0
	err := c.Validate()
	if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), `hooks[1].timeout: must be > 0, got 0s (hook "snapshot")`) {
		t.Fatalf("hook without a timeout: %v", err)
	}
	c = validConfig()
	err = config.Decode("agent.yaml", []byte("hooks:\n  - name: x\n    cmd: /bin/true\n"), &c)
	if !errors.Is(err, config.ErrUnknownKey) || !strings.Contains(err.Error(), "hooks[0].cmd") {
		t.Fatalf("unknown hook key: %v", err)
	}
}
