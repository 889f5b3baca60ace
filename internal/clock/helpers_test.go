package clock

import (
	"context"
	"testing"
	"time"

	"github.com/stillpoint-dev/stillpoint/internal/ntptest"
	"github.com/stillpoint-dev/stillpoint/internal/waitfor"
)

// startNTP starts a loopback NTP server with default settings changed by f.
func startNTP(t testing.TB, f func(*ntptest.Settings)) *ntptest.Server {
	t.Helper()
	cfg := ntptest.DefaultConfig()
	if f != nil {
		f(&cfg.Settings)
	}
	s, err := ntptest.Start(cfg)
	if err != nil {
		t.Fatalf("start ntptest: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// startNTPOn starts a loopback NTP server whose clock is clk (offset by
// the settings): against a local Manual clock that stands still, its
// replies are instantaneous rather than impossible.
func startNTPOn(t testing.TB, clk Clock, f func(*ntptest.Settings)) *ntptest.Server {
	t.Helper()
	cfg := ntptest.DefaultConfig()
	cfg.Now = clk.Now
	if f != nil {
		f(&cfg.Settings)
	}
	s, err := ntptest.Start(cfg)
	if err != nil {
		t.Fatalf("start ntptest: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func addrs(servers ...*ntptest.Server) []string {
	out := make([]string, len(servers))
	for i, s := range servers {
		out[i] = s.Addr()
	}
	return out
}

// testConfig polls the given servers with timeouts generous enough for a
// loaded 2-core box.
func testConfig(servers []string, f func(*Config)) Config {
	cfg := DefaultConfig()
	cfg.Servers = servers
	cfg.Timeout = 2 * time.Second
	cfg.PollInterval = time.Second
	cfg.Kernel = steadyKernel // never the host's: its slewing is not the test's
	if f != nil {
		f(&cfg)
	}
	return cfg
}

func newSampler(t testing.TB, servers []string, f func(*Config)) *Sampler {
	t.Helper()
	s, err := NewSampler(testConfig(servers, f))
	if err != nil {
		t.Fatalf("NewSampler: %v", err)
	}
	return s
}

// contains reports whether the estimate's interval holds offset d.
func containsOffset(e Estimate, d time.Duration) bool {
	return e.Offset-e.ErrorBound <= d && d <= e.Offset+e.ErrorBound
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	waitfor.Fatal(context.Background(), t, timeout, what, waitfor.Bool(cond))
}

// steadyKernel is a kernel that does not slew.
var steadyKernel = KernelFunc(func() (KernelClock, error) {
	return KernelClock{TickUS: 10000, NominalTickUS: 10000}, nil
})
