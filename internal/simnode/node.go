// Package simnode is a faithful simulated Scalar DL Ledger/Auditor or
// ScalarDB Cluster node: it serves rpc.Admin with the real pause semantics
// (gate, drain, timeouts, error reasons), runs a transfer workload across two
// non-atomic stores, and records on the real clock every interval during
// which it was paused and drained — the oracle the pause-protocol tests
// check restore points against.
package simnode

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/reflection"

	"github.com/stillpoint-dev/stillpoint/internal/grpcx"
	"github.com/stillpoint-dev/stillpoint/proto/rpc"
)

// Node is one simulated node. Use New, Start, then Stop.
type Node struct {
	cfg   Config
	log   *zap.Logger
	gate  *gate
	nonce int64

	storeA, storeB       Store
	memA, memB           *MemoryStore
	ownStores            bool
	accountsA, accountsB []string

	mu        sync.Mutex // guards lifecycle below
	addr      string
	srv       *grpc.Server
	stop      chan struct{}
	serveDone chan struct{}
	started   bool
	stopped   bool
	restarts  int

	wlCancel  context.CancelFunc
	wlWG      sync.WaitGroup
	seq       atomic.Uint64
	committed atomic.Int64
	rejected  atomic.Int64
	failed    atomic.Int64
}

// New validates cfg and builds a node. It does no I/O.
func New(cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, log: cfg.Logger, nonce: time.Now().UnixNano()}
	if n.log == nil {
		n.log = zap.NewNop()
	}
	n.log = n.log.With(zap.String("node_id", cfg.ID), zap.Stringer("mode", cfg.Mode))
	n.gate = newGate(cfg.Mode, cfg.PauseConflict, cfg.V1, cfg.DrainDelay, n.logDrained)
	n.gate.onEnd = n.logInterval
	if cfg.StoreA == nil {
		n.memA, n.memB = NewMemoryStores()
		n.storeA, n.storeB, n.ownStores = n.memA, n.memB, true
	} else {
		n.storeA, n.storeB = cfg.StoreA, cfg.StoreB
		n.memA, _ = cfg.StoreA.(*MemoryStore)
		n.memB, _ = cfg.StoreB.(*MemoryStore)
	}
	n.accountsA = accountNames("a", cfg.Workload.Accounts)
	n.accountsB = accountNames("b", cfg.Workload.Accounts)
	return n, nil
}

// logDrained logs the start of an oracle interval (gate closed, nothing in
// flight) with its instant in Unix ns, for oracles that read the logs from
// outside the process (the fault suite), then calls cfg.OnPausedDrained.
func (n *Node) logDrained(at time.Time) {
	n.log.Info("paused and drained", zap.Int64("drained_unix_ns", at.UnixNano()))
	if n.cfg.OnPausedDrained != nil {
		n.cfg.OnPausedDrained(at)
	}
}

// logInterval logs one ended oracle interval: the node was paused and
// drained from start to end (Unix ns on this host's clock).
func (n *Node) logInterval(iv Interval) {
	n.log.Info("paused interval ended", zap.Int64("start_unix_ns", iv.Start.UnixNano()),
		zap.Int64("end_unix_ns", iv.End.UnixNano()), zap.Duration("paused", iv.End.Sub(iv.Start)))
}

// Start initializes the stores, starts serving rpc.Admin and, if enabled,
// the workload. ctx bounds the start-up only; the node runs until Stop.
func (n *Node) Start(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.started {
		return fmt.Errorf("node %s: already started", n.cfg.ID)
	}
	if err := n.storeA.Init(ctx, n.accountsA, InitialBalance); err != nil {
		return fmt.Errorf("node %s: %w", n.cfg.ID, err)
	}
	if err := n.storeB.Init(ctx, n.accountsB, InitialBalance); err != nil {
		return fmt.Errorf("node %s: %w", n.cfg.ID, err)
	}
	lis, err := net.Listen("tcp", n.cfg.Listen)
	if err != nil {
		return fmt.Errorf("node %s: listen on %s: %w", n.cfg.ID, n.cfg.Listen, err)
	}
	if err := n.serveLocked(lis); err != nil {
		_ = lis.Close()
		return err
	}
	n.started = true
	if n.cfg.Workload.Enabled {
		n.startWorkload()
	}
	n.log.Info("simulated node serving rpc.Admin", zap.String("addr", n.addr), zap.Bool("v1", n.cfg.V1),
		zap.Bool("workload", n.cfg.Workload.Enabled))
	return nil
}

// serveLocked starts one server generation on lis.
func (n *Node) serveLocked(lis net.Listener) error {
	srv, err := grpcx.NewServer(n.cfg.TLS)
	if err != nil {
		return fmt.Errorf("node %s: admin server: %w", n.cfg.ID, err)
	}
	n.stop = make(chan struct{})
	rpc.RegisterAdminServer(srv, &adminServer{n: n, stop: n.stop})
	// A generic client (grpcurl) can call rpc.Admin without admin.proto.
	reflection.Register(srv)
	n.srv = srv
	n.addr = lis.Addr().String()
	done := make(chan struct{})
	n.serveDone = done
	go func() {
		defer close(done)
		if err := srv.Serve(lis); err != nil {
			n.log.Warn("admin server ended", zap.Error(err))
		}
	}()
	return nil
}

// haltLocked ends the current server generation. graceful bounds a
// GracefulStop before the hard Stop; a crash (restart) stops hard at once.
func (n *Node) haltLocked(graceful bool) {
	close(n.stop)
	if graceful {
		done := make(chan struct{})
		go func() { n.srv.GracefulStop(); close(done) }()
		t := time.NewTimer(2 * time.Second)
		select {
		case <-done:
		case <-t.C:
		}
		t.Stop()
	}
	n.srv.Stop()
	<-n.serveDone
	n.gate.reset()
}

// Addr is the admin address the node listens on (with the chosen port).
func (n *Node) Addr() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.addr
}

// ID is the node's id.
func (n *Node) ID() string { return n.cfg.ID }

// Restart simulates a process restart on the same address: the admin server
// dies (open calls fail UNAVAILABLE), every pause is forgotten and the gate
// opens, and the server comes back on the same address. The workload and the
// stores live on (a restart loses no committed data). ctx bounds re-binding
// the address.
func (n *Node) Restart(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.started || n.stopped {
		return fmt.Errorf("node %s: restart: not running", n.cfg.ID)
	}
	n.haltLocked(false)
	var lis net.Listener
	var err error
	for {
		lis, err = net.Listen("tcp", n.addr)
		if err == nil {
			break
		}
		t := time.NewTimer(10 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("node %s: restart: re-listen on %s: %w (last error: %w)", n.cfg.ID, n.addr, ctx.Err(), err)
		case <-t.C:
		}
	}
	if err := n.serveLocked(lis); err != nil {
		_ = lis.Close()
		return err
	}
	n.restarts++
	n.log.Info("node restarted: gate open, pause forgotten", zap.String("addr", n.addr), zap.Int("restarts", n.restarts))
	return nil
}

// Stop stops the workload (in-flight transfers finish), the admin server,
// opens the gate and closes the stores the node created. Idempotent.
func (n *Node) Stop() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.started || n.stopped {
		n.stopped = true
		return
	}
	n.stopped = true
	n.stopWorkload()
	n.haltLocked(true)
	if n.ownStores {
		_ = n.storeA.Close()
		_ = n.storeB.Close()
	}
	n.log.Info("simulated node stopped")
}

// Transact runs fn as one transaction through the node's gate: it waits
// while the node is paused (Ledger; ctx bounds the wait) or fails with
// ErrUnavailable (ScalarDB), and a drain waits for fn to return.
func (n *Node) Transact(ctx context.Context, fn func(ctx context.Context) error) error {
	if err := n.gate.enter(ctx); err != nil {
		return fmt.Errorf("node %s: %w", n.cfg.ID, err)
	}
	defer n.gate.leave()
	return fn(ctx)
}

// Hold admits one transaction that stays in flight until release is called
// (idempotent): a deterministic slow transaction for drain tests.
func (n *Node) Hold(ctx context.Context) (release func(), err error) {
	if err := n.gate.enter(ctx); err != nil {
		return nil, fmt.Errorf("node %s: %w", n.cfg.ID, err)
	}
	var once sync.Once
	return func() { once.Do(n.gate.leave) }, nil
}

// Paused reports whether the gate is closed.
func (n *Node) Paused() bool { return n.gate.paused() }

// InFlight is the number of admitted, unfinished transactions.
func (n *Node) InFlight() int { return n.gate.inFlight() }

// SetDrainDelay changes the slow-drain injection for later pauses.
func (n *Node) SetDrainDelay(d time.Duration) { n.gate.setDrainDelay(d) }

// PausedIntervals returns, on the real clock, every interval during which
// the gate was closed with nothing in flight; an open one has End zero.
func (n *Node) PausedIntervals() []Interval { return n.gate.pausedIntervals() }

// DrainedSince returns the start of the current paused-and-drained interval,
// if the node is in one. A read that starts and ends with the same answer
// happened entirely while the node was paused and drained.
func (n *Node) DrainedSince() (time.Time, bool) { return n.gate.drainedSince() }

// Stores returns the node's stores A and B.
func (n *Node) Stores() (a, b Store) { return n.storeA, n.storeB }

// Snapshot reads both in-memory stores at one instant. It fails unless the
// node runs on a pair from NewMemoryStores (the default).
func (n *Node) Snapshot() (a, b StoreState, err error) {
	if n.memA == nil || n.memB == nil {
		return StoreState{}, StoreState{}, fmt.Errorf("node %s: snapshot needs in-memory stores", n.cfg.ID)
	}
	return SnapshotMemory(n.memA, n.memB)
}

// Verify checks the transfer invariant on the node's stores: at one instant
// for in-memory stores; for PostgreSQL each store is read in its own
// snapshot, so transfers in flight between the two reads show up unpaired.
func (n *Node) Verify(ctx context.Context) (Report, error) {
	if n.memA != nil && n.memB != nil {
		a, b, err := SnapshotMemory(n.memA, n.memB)
		if err == nil {
			return Check(a, b), nil
		}
	}
	a, err := n.storeA.Read(ctx)
	if err != nil {
		return Report{}, fmt.Errorf("node %s: verify: %w", n.cfg.ID, err)
	}
	b, err := n.storeB.Read(ctx)
	if err != nil {
		return Report{}, fmt.Errorf("node %s: verify: %w", n.cfg.ID, err)
	}
	return Check(a, b), nil
}
