package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// stateFile is the one file the agent keeps in its data directory.
const stateFile = "agent-state.json"

// stateVersion is bumped on incompatible changes to persisted.
const stateVersion = 1

// leasePhase is where a lease stands.
type leasePhase string

const (
	// phasePausing: the lease is written, the node's Pause was sent and its
	// outcome is not known (in flight, unreachable, unknown error). The
	// gate may be closed, so the dead-man switch is armed.
	phasePausing leasePhase = "pausing"
	// phaseHeld: the node acked the Pause; the gate is closed by us.
	phaseHeld leasePhase = "held"
)

// leaseRecord is the dead-man lease as persisted. The deadline is a wall
// time so it survives a restart of the agent (and of the host).
type leaseRecord struct {
	OpID  string     `json:"op_id"`
	Epoch uint64     `json:"epoch"`
	Phase leasePhase `json:"phase"`
	// DeadlineUnixNS is the local wall time at which the lease runs out.
	DeadlineUnixNS int64 `json:"deadline_unix_ns"`
	// LeaseMS is the last lease length granted.
	LeaseMS int64 `json:"lease_ms"`
	// StartedUnixNS is the local wall time the lease was first written.
	StartedUnixNS int64 `json:"started_unix_ns"`
	// Ack is the PauseResponse (protobuf wire form) once the node acked,
	// so a repeated Pause after a restart returns the original ack.
	Ack []byte `json:"ack,omitempty"`
}

func (l *leaseRecord) deadline() time.Time { return time.Unix(0, l.DeadlineUnixNS) }

// endedOp is an operation that is over, kept so a repeated Unpause (or a
// repeated Pause) returns the original result.
// hookStep is a started hook step (RunHook's op_id, step_id and hook).
type hookStep struct {
	OpID   string `json:"op_id"`
	StepID string `json:"step_id"`
	Hook   string `json:"hook"`
}

// maxHookSteps bounds the hook steps remembered across restarts.
const maxHookSteps = 256

type endedOp struct {
	OpID  string `json:"op_id"`
	Epoch uint64 `json:"epoch"`
	// Unpause is the UnpauseResponse in protobuf wire form.
	Unpause []byte `json:"unpause"`
	// Unseen: the op was asked about (Unpause, RenewLease) before its
	// Pause ever arrived; a late Pause of it is refused.
	Unseen bool `json:"unseen,omitempty"`
}

// persisted is everything that must survive an agent restart.
type persisted struct {
	Version  int          `json:"version"`
	MaxEpoch uint64       `json:"max_epoch"`
	Lease    *leaseRecord `json:"lease,omitempty"`
	Ended    []endedOp    `json:"ended,omitempty"`
	// LeasesExpired counts leases this agent's dead-man switch ran out.
	LeasesExpired uint64 `json:"leases_expired"`
	// LastLeaseExpiredOp is the op whose lease ran out most recently.
	LastLeaseExpiredOp string `json:"last_lease_expired_op,omitempty"`
	// HookSteps are the hook steps this agent started, newest last (at
	// most maxHookSteps): a step asked for again after a restart, its
	// hook killed at shutdown, is refused rather than run twice.
	HookSteps []hookStep `json:"hook_steps,omitempty"`
}

// ErrStateCorrupt: the state file exists but cannot be read back. The agent
// refuses to start rather than forget a lease.
var ErrStateCorrupt = errors.New("agent state file is corrupt")

// store reads and writes persisted atomically: write a temp file, fsync,
// rename over the old one, fsync the directory.
type store struct {
	dir string
}

func (s store) path() string { return filepath.Join(s.dir, stateFile) }

// load returns the persisted state, or a fresh one if there is none.
func (s store) load() (persisted, error) {
	b, err := os.ReadFile(s.path())
	if errors.Is(err, os.ErrNotExist) {
		return persisted{Version: stateVersion}, nil
	}
	if err != nil {
		return persisted{}, fmt.Errorf("read agent state %s: %w", s.path(), err)
	}
	var p persisted
	if err := json.Unmarshal(b, &p); err != nil {
		return persisted{}, fmt.Errorf("%w: %s: %v (move it aside only if the node is known to be unpaused)", ErrStateCorrupt, s.path(), err)
	}
	if p.Version != stateVersion {
		return persisted{}, fmt.Errorf("%w: %s: version %d, this agent reads version %d", ErrStateCorrupt, s.path(), p.Version, stateVersion)
	}
	return p, nil
}

// save writes p durably; when it returns nil the state survives a crash.
func (s store) save(p persisted) error {
	p.Version = stateVersion
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return fmt.Errorf("encode agent state: %w", err)
	}
	tmp, err := os.CreateTemp(s.dir, stateFile+".tmp-*")
	if err != nil {
		return fmt.Errorf("write agent state in %s: %w", s.dir, err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("write agent state %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("fsync agent state %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close agent state %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), s.path()); err != nil {
		return fmt.Errorf("replace agent state %s: %w", s.path(), err)
	}
	d, err := os.Open(s.dir)
	if err != nil {
		return fmt.Errorf("open data dir %s for fsync: %w", s.dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync data dir %s: %w", s.dir, err)
	}
	return nil
}
