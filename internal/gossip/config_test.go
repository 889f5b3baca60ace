package gossip

import (
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stillpoint-dev/stillpoint/internal/config"
)

func TestConfigValidate(t *testing.T) {
	ok := func(c *Config) { c.Name = "n1"; c.BindAddr = "127.0.0.1" }
	tests := []struct {
		name   string
		mutate func(*Config)
		want   []string
	}{
		{"default is valid", func(*Config) {}, nil},
		{"loopback port 0", func(c *Config) { ok(c); c.BindPort = 0; c.Profile = ProfileTest }, nil},
		{"keys of every AES size", func(c *Config) { ok(c); c.SecretKey = make([]byte, 24) }, nil},
		{"advertise", func(c *Config) { ok(c); c.AdvertiseAddr = "10.1.2.3"; c.AdvertisePort = 8000 }, nil},
		{"everything wrong", func(c *Config) {
			c.Name = ""
			c.BindAddr = "localhost"
			c.BindPort = 70000
			c.AdvertiseAddr = "host.example"
			c.AdvertisePort = -1
			c.Join = []string{"10.0.0.1:7946", "no-port"}
			c.SecretKey = []byte("short")
			c.Profile = "wan"
			c.MetaMinInterval = -time.Second
			c.RejoinInterval = -time.Second
			c.DeadRetention = -time.Second
		}, []string{
			"name: must not be empty",
			`bind_addr: "localhost" is not an IP address`,
			"bind_port: 70000 out of range",
			`advertise_addr: "host.example" is not an IP address`,
			"advertise_port: -1 out of range",
			`join[1]: "no-port" is not host:port`,
			"secret_key: 5 bytes, want 16, 24 or 32",
			`profile: "wan"`,
			"meta_min_interval: -1s is negative",
			"rejoin_interval: -1s is negative",
			"dead_retention: -1s is negative",
		}},
		{"name too long", func(c *Config) { c.Name = strings.Repeat("n", MaxNameLen+1) }, []string{"name: 129 bytes, limit 128"}},
		{"fixed advertise port with dynamic bind port", func(c *Config) { c.BindPort = 0; c.AdvertisePort = 7946 }, []string{"advertise_port: 7946 set with bind_port 0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.mutate(&c)
			err := c.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if !errors.Is(err, config.ErrInvalid) {
				t.Fatalf("err = %v, want config.ErrInvalid", err)
			}
			var p config.Problems
			if !errors.As(err, &p) || len(p) != len(tt.want) {
				t.Errorf("got %d problems, want %d:\n%v", len(p), len(tt.want), err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not report %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestNewRefuses(t *testing.T) {
	good := func() Config {
		c := DefaultConfig()
		c.Name, c.BindAddr, c.BindPort, c.Profile = "n0", "127.0.0.1", 0, ProfileTest
		return c
	}
	tests := []struct {
		name string
		cfg  func() Config
		meta func() Meta
		is   error
		want string
	}{
		{"invalid config", func() Config { c := good(); c.SecretKey = []byte("x"); return c }, func() Meta { return Meta{} }, config.ErrInvalid, "secret_key"},
		{"nil meta func", good, nil, nil, "localMeta func is nil"},
		{"oversized initial meta", good, func() Meta { return Meta{Cluster: strings.Repeat("c", MaxClusterLen+1)} }, ErrMetaField, "initial metadata"},
		{"port in use", func() Config {
			c := good()
			c.BindPort = takenPort(t)
			return c
		}, func() Meta { return Meta{} }, nil, "start memberlist"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := New(tt.cfg(), tt.meta)
			if err == nil {
				_ = p.Shutdown()
				t.Fatal("New succeeded")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("err = %v, want %v", err, tt.is)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "n0") {
				t.Errorf("error %q does not name the node and %q", err, tt.want)
			}
		})
	}
}

// takenPort returns a port held by a running pool.
func takenPort(t *testing.T) int {
	t.Helper()
	nd := startNode(t, "holder", nil)
	_, port, err := net.SplitHostPort(nd.pool.AdvertiseAddr())
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestProfilesStart(t *testing.T) {
	for _, profile := range []string{"", ProfileLAN, ProfileLocal, ProfileTest} {
		t.Run("profile "+profile, func(t *testing.T) {
			a := startNode(t, "a", func(c *Config) { c.Profile = profile })
			b := startNode(t, "b", func(c *Config) { c.Profile = profile })
			if _, err := b.pool.Join([]string{a.pool.AdvertiseAddr()}); err != nil {
				t.Fatal(err)
			}
			waitConverged(t, []*testNode{a, b})
		})
	}
}

func BenchmarkEncodeMeta(b *testing.B) {
	m := fullMeta()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := EncodeMeta(m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeMeta(b *testing.B) {
	enc, err := EncodeMeta(fullMeta())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeMeta(enc); err != nil {
			b.Fatal(err)
		}
	}
}
