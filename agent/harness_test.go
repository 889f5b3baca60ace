package agent_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/stillpoint-dev/stillpoint/agent"
	"github.com/stillpoint-dev/stillpoint/internal/gossip"
	"github.com/stillpoint-dev/stillpoint/internal/grpcx"
	"github.com/stillpoint-dev/stillpoint/internal/logging/logtest"
	"github.com/stillpoint-dev/stillpoint/internal/ntptest"
	"github.com/stillpoint-dev/stillpoint/internal/simnode"
	"github.com/stillpoint-dev/stillpoint/internal/waitfor"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// The harness runs real components on loopback: ntptest NTP servers
// (real UDP packets), simnode admin ports (real gRPC), memberlist gossip
// and the agents' own gRPC servers.

// startNTP starts n honest NTP servers on the host clock.
func startNTP(t *testing.T, n int) []string {
	t.Helper()
	var addrs []string
	for range n {
		s, err := ntptest.Start(ntptest.DefaultConfig())
		if err != nil {
			t.Fatalf("ntptest: %v", err)
		}
		t.Cleanup(func() { _ = s.Close() })
		addrs = append(addrs, s.Addr())
	}
	return addrs
}

// startSim starts a simulated v2 Ledger node on a free port.
func startSim(t *testing.T, id string, mutate func(*simnode.Config)) *simnode.Node {
	t.Helper()
	cfg := simnode.DefaultConfig()
	cfg.ID = id
	cfg.Listen = "127.0.0.1:0"
	cfg.DefaultMaxPauseWait = 5 * time.Second
	if mutate != nil {
		mutate(&cfg)
	}
	n, err := simnode.New(cfg)
	if err != nil {
		t.Fatalf("simnode %s: %v", id, err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatalf("simnode %s start: %v", id, err)
	}
	t.Cleanup(n.Stop)
	return n
}

// testConfig is an agent config with tight timings on loopback.
func testConfig(name, adminAddr, dataDir string, ntp, join []string) agent.Config {
	cfg := agent.DefaultConfig()
	cfg.NodeName = name
	cfg.Cluster = "ledger-test"
	cfg.Role = "ledger"
	cfg.Admin.Address = adminAddr
	cfg.Admin.CallTimeout = 2 * time.Second
	cfg.NTP.Servers = ntp
	cfg.NTP.PollInterval = 200 * time.Millisecond
	cfg.NTP.Timeout = 500 * time.Millisecond
	cfg.Gossip.Bind = "127.0.0.1:0"
	cfg.Gossip.Join = join
	cfg.Gossip.Profile = "test"
	cfg.GRPC.Listen = "127.0.0.1:0"
	cfg.Metrics.Listen = "127.0.0.1:0"
	cfg.DataDir = dataDir
	cfg.MaxLease = 30 * time.Second
	cfg.CheckPausedInterval = 50 * time.Millisecond
	return cfg
}

// startAgent starts an agent and stops it when the test ends (a no-op
// after Kill or Stop).
func startAgent(t *testing.T, cfg agent.Config, opts ...agent.Option) *agent.Agent {
	t.Helper()
	opts = append([]agent.Option{agent.WithLogger(testLogger(t).Named(cfg.NodeName))}, opts...)
	a, err := agent.New(cfg, opts...)
	if err != nil {
		t.Fatalf("agent %s: %v", cfg.NodeName, err)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatalf("agent %s start: %v", cfg.NodeName, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = a.Stop(ctx)
	})
	return a
}

// testLogger logs warnings and errors to t.Log until the test ends.
func testLogger(t *testing.T) *zap.Logger { return logtest.New(t, zap.WarnLevel) }

func client(t *testing.T, a *agent.Agent) pb.AgentServiceClient {
	t.Helper()
	cc, err := grpcx.NewClient(a.GRPCAddr(), grpcx.TLS{})
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return pb.NewAgentServiceClient(cc)
}

func rpcCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// eventually polls cond every 20 ms until it returns nil or within passes;
// the last error explains a failure.
func eventually(t *testing.T, within time.Duration, what string, cond func() error) {
	t.Helper()
	waitfor.Fatal(context.Background(), t, within, what, waitfor.Err(cond))
}

// waitSynchronized waits until the agent's clock estimate is synchronized.
func waitSynchronized(t *testing.T, a *agent.Agent) {
	t.Helper()
	eventually(t, 15*time.Second, a.Name()+" synchronized", func() error {
		if st := a.State().GetClock().GetStatus(); st != pb.ClockStatus_CLOCK_STATUS_SYNCHRONIZED {
			return fmt.Errorf("clock status %v (%s)", st, a.State().GetClock().GetReason())
		}
		return nil
	})
}

// member is the view observer has of name.
func member(observer *agent.Agent, name string) (gossip.Member, bool) {
	for _, m := range observer.Members() {
		if m.Name == name {
			return m, true
		}
	}
	return gossip.Member{}, false
}

func scrape(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url) //nolint:noctx // test
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s: %v", url, err)
	}
	return resp.StatusCode, string(b)
}
