package clock

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"go.uber.org/zap"
)

// Config configures a Sampler.
type Config struct {
	// Servers are NTP servers as host:port (the port is required).
	Servers []string
	// PollInterval between sampling rounds; each wait is jittered by
	// ±Jitter (a fraction).
	PollInterval time.Duration
	Jitter       float64
	// Timeout for one server's reply (beevik/ntp has no context and would
	// wait 5 s by default).
	Timeout time.Duration
	// MaxDriftPPM: an estimate's bound grows by this rate with age.
	MaxDriftPPM float64
	// StaleAfterPolls: a synchronized estimate older than this many poll
	// intervals is stale.
	StaleAfterPolls int
	// MaxDispersion: a server reporting more root dispersion is invalid
	// (beevik/ntp's Validate accepts up to 16 s).
	MaxDispersion time.Duration
	// JumpThreshold: a wall-clock move against the monotonic clock larger
	// than this makes the estimate disrupted; smaller moves widen the bound.
	JumpThreshold time.Duration
	// MaxBackoff caps how long an unreachable or kiss-of-death server is
	// left alone (doubling per failure, from one poll interval).
	MaxBackoff time.Duration
	// Clock is the local clock (default System).
	Clock Clock
	// Kernel reads the host's clock discipline (adjtimex) so the bound
	// grows at the slew rate in force; default SystemKernel. nil: the
	// rate is not read (only for a clock no daemon slews, e.g. a test's).
	Kernel Kernel
	Logger *zap.Logger
}

// DefaultServers are public pool servers (none smear leap seconds, so they
// may be mixed).
var DefaultServers = []string{"0.pool.ntp.org:123", "1.pool.ntp.org:123", "2.pool.ntp.org:123", "3.pool.ntp.org:123"}

// DefaultConfig polls four pool servers every 16 s.
func DefaultConfig() Config {
	return Config{
		Servers:         append([]string(nil), DefaultServers...),
		PollInterval:    16 * time.Second,
		Jitter:          0.1,
		Timeout:         2 * time.Second,
		MaxDriftPPM:     DefaultMaxDriftPPM,
		StaleAfterPolls: 4,
		MaxDispersion:   time.Second,
		JumpThreshold:   5 * time.Millisecond,
		MaxBackoff:      16 * 16 * time.Second,
		Clock:           System,
		Kernel:          SystemKernel,
		Logger:          zap.NewNop(),
	}
}

// Validate reports every problem with the config.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf(format, args...))
	}
	if len(c.Servers) == 0 {
		bad("servers: at least one NTP server (host:port) is required, 3 or more recommended")
	}
	seen := map[string]bool{}
	for _, s := range c.Servers {
		host, port, err := net.SplitHostPort(s)
		if err != nil {
			bad("server %q: want host:port: %v", s, err)
			continue
		}
		if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 || host == "" {
			bad("server %q: want host:port with a port 1-65535", s)
		}
		if seen[s] {
			bad("server %q listed twice (it would count twice toward a majority)", s)
		}
		seen[s] = true
	}
	if c.PollInterval <= 0 {
		bad("poll interval %v: must be positive", c.PollInterval)
	}
	if c.Jitter < 0 || c.Jitter > 0.5 {
		bad("jitter %v: want 0 to 0.5", c.Jitter)
	}
	if c.Timeout <= 0 {
		bad("timeout %v: must be positive", c.Timeout)
	}
	if c.MaxDriftPPM <= 0 || c.MaxDriftPPM > 1e5 {
		bad("max drift %v ppm: want above 0 and at most 100000", c.MaxDriftPPM)
	}
	if c.StaleAfterPolls < 1 {
		bad("stale after %d polls: want at least 1", c.StaleAfterPolls)
	}
	if c.MaxDispersion <= 0 {
		bad("max dispersion %v: must be positive", c.MaxDispersion)
	}
	if c.JumpThreshold <= 0 {
		bad("jump threshold %v: must be positive", c.JumpThreshold)
	}
	if c.MaxBackoff < 0 {
		bad("max backoff %v: must not be negative", c.MaxBackoff)
	}
	if c.Clock == nil {
		bad("clock: nil (use clock.System)")
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return nil
}

// quorum is how many servers must agree: a majority of those configured.
func (c Config) quorum() int { return len(c.Servers)/2 + 1 }
