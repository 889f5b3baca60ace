package simnode

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/stillpoint-dev/stillpoint/internal/grpcx"
)

// Mode selects what a closed gate does to a new transaction.
type Mode int

// Modes.
const (
	// Ledger (and Auditor): a new transaction blocks while the node is
	// paused and proceeds when it is unpaused.
	Ledger Mode = iota + 1
	// ScalarDB: a new transaction fails at once with UNAVAILABLE.
	ScalarDB
)

func (m Mode) String() string {
	switch m {
	case Ledger:
		return "ledger"
	case ScalarDB:
		return "scalardb"
	default:
		return fmt.Sprintf("mode(%d)", int(m))
	}
}

// ParseMode reads "ledger", "auditor" (same semantics as ledger) or "scalardb".
func ParseMode(s string) (Mode, error) {
	switch s {
	case "ledger", "auditor":
		return Ledger, nil
	case "scalardb":
		return ScalarDB, nil
	default:
		return 0, fmt.Errorf("unknown mode %q: want ledger, auditor or scalardb", s)
	}
}

// PauseConflict selects what a Pause does when another Pause is still
// draining.
type PauseConflict int

// Pause conflict policies.
const (
	// PauseWaitTurn (default, the v1 behaviour): pauses are serialized; a
	// pause arriving while another drains waits for it to finish, then runs.
	PauseWaitTurn PauseConflict = iota
	// PauseAbortInProgress (the newer-server behaviour): the second pause
	// fails at once with ABORTED, ErrorInfo reason PAUSE_IN_PROGRESS.
	PauseAbortInProgress
)

// DefaultMaxPauseWait is the server default when max_pause_wait_time is unset.
const DefaultMaxPauseWait = 30 * time.Second

// Config describes one simulated node.
type Config struct {
	// ID names the node in logs, errors and transaction ids.
	ID string
	// Listen is the admin address (host:port; port 0 picks a free port).
	Listen string
	// TLS for the admin port (zero value: plaintext).
	TLS grpcx.TLS
	// Mode: Ledger blocks new transactions while paused, ScalarDB rejects
	// them with UNAVAILABLE.
	Mode Mode
	// V1 emulates an older server: Stats is served and CheckPaused is
	// UNIMPLEMENTED. Otherwise (v2) CheckPaused is served and Stats is not.
	V1 bool
	// PauseConflict: what a pause does while another pause drains.
	PauseConflict PauseConflict
	// DrainDelay makes every drain take at least this long: when the gate
	// closes, a phantom in-flight request is admitted that finishes after
	// DrainDelay (slow-drain injection).
	DrainDelay time.Duration
	// DefaultMaxPauseWait applies when a request leaves
	// max_pause_wait_time unset (30 s like the real servers).
	DefaultMaxPauseWait time.Duration
	// Workload runs the transfer workload when Enabled.
	Workload WorkloadConfig
	// StoreA and StoreB hold the two halves of every transfer. Nil: the node
	// creates a pair of in-memory stores (and closes them on Stop). Stores
	// passed in are initialized by Start but closed by the caller.
	StoreA, StoreB Store
	// OnPausedDrained, if set, is called at the exact instant the gate is
	// closed with nothing in flight (the start of a PausedIntervals entry),
	// while the node holds its gate lock: it must be quick and must not call
	// back into the Node. Tests take a memory snapshot here.
	OnPausedDrained func(at time.Time)
	// Logger (nil: no logs).
	Logger *zap.Logger
}

// DefaultConfig is a v2 Ledger node on 127.0.0.1:50053 with the workload off.
func DefaultConfig() Config {
	return Config{
		ID:                  "sim-1",
		Listen:              "127.0.0.1:50053",
		Mode:                Ledger,
		DefaultMaxPauseWait: DefaultMaxPauseWait,
		Workload:            DefaultWorkloadConfig(),
	}
}

// Validate reports every problem in the config at once.
func (c Config) Validate() error {
	var errs []error
	if c.ID == "" {
		errs = append(errs, errors.New("simnode: empty ID"))
	}
	if err := ValidateListen(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("simnode %s: %w", c.ID, err))
	}
	if c.Mode != Ledger && c.Mode != ScalarDB {
		errs = append(errs, fmt.Errorf("simnode %s: mode %v: want Ledger or ScalarDB", c.ID, c.Mode))
	}
	if c.PauseConflict != PauseWaitTurn && c.PauseConflict != PauseAbortInProgress {
		errs = append(errs, fmt.Errorf("simnode %s: unknown pause conflict policy %d", c.ID, c.PauseConflict))
	}
	if c.DrainDelay < 0 {
		errs = append(errs, fmt.Errorf("simnode %s: drain delay %v is negative", c.ID, c.DrainDelay))
	}
	if c.DefaultMaxPauseWait <= 0 {
		errs = append(errs, fmt.Errorf("simnode %s: default max pause wait %v must be positive", c.ID, c.DefaultMaxPauseWait))
	}
	if (c.StoreA == nil) != (c.StoreB == nil) {
		errs = append(errs, fmt.Errorf("simnode %s: give both StoreA and StoreB or neither", c.ID))
	}
	if err := c.Workload.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("simnode %s: %w", c.ID, err))
	}
	return errors.Join(errs...)
}

// ValidateListen checks a host:port listen address without binding it.
func ValidateListen(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("listen address %q: %w", addr, err)
	}
	if host != "" && host != "localhost" && net.ParseIP(host) == nil {
		return fmt.Errorf("listen address %q: host %q is not an IP address or localhost", addr, host)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("listen address %q: port %q is not a number in 0-65535", addr, port)
	}
	return nil
}
