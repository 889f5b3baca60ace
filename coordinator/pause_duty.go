package coordinator

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
	"go.uber.org/zap"

	"github.com/stillpoint-dev/stillpoint/coordinator/fsm"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// pauseDriver tracks the operations this server drives while it leads.
type pauseDriver struct {
	mu      sync.Mutex
	ctx     context.Context // the leader term; nil when not leading
	epoch   uint64
	running map[string]*pauseRunner
	// stopped is when each op's last runner of this term stopped on an
	// error: it is not re-driven again before redriveBackoff has passed.
	stopped map[string]time.Time
	wg      sync.WaitGroup
}

// redriveInterval is how often the leader looks for an active op without a
// runner even when the FSM did not change; redriveBackoff is how soon an
// op whose runner stopped on an error is driven again.
const (
	redriveInterval = time.Second
	redriveBackoff  = time.Second
)

// afterScanLimit is how many of the newest ops the leader looks through
// for a completed backup whose after hooks are still open.
const afterScanLimit = 50

// pauseDuty is the leader duty of the pause protocol: it resumes or aborts
// every in-flight operation from the FSM (SPEC step 7), lets StartPause run
// new ones, and until leadership is lost re-drives any active op that has
// no runner (its runner stopped on an error, or StartPause committed it
// but could not start one): no op is left stuck while a leader exists.
func (s *Server) pauseDuty(ctx context.Context, epoch uint64) {
	s.pauses.mu.Lock()
	s.pauses.ctx, s.pauses.epoch = ctx, epoch
	if s.pauses.running == nil {
		s.pauses.running = map[string]*pauseRunner{}
	}
	s.pauses.stopped = map[string]time.Time{}
	s.pauses.mu.Unlock()
	s.redriveLoop(ctx, epoch)
	s.pauses.wg.Wait()
	s.pauses.mu.Lock()
	s.pauses.ctx = nil
	s.pauses.mu.Unlock()
}

// redriveLoop starts a runner for every active op that has none: at the
// start of the term, on every FSM change and every redriveInterval.
func (s *Server) redriveLoop(ctx context.Context, epoch uint64) {
	tick := time.NewTicker(redriveInterval)
	defer tick.Stop()
	for {
		changed := s.fsm.Changed()
		for _, op := range s.fsm.ActiveOperations() {
			if s.needsRunner(op.GetOpId()) {
				s.log.Info("taking over in-flight operation", zap.String("op_id", op.GetOpId()), zap.String("state", op.GetState().String()), zap.Uint64("epoch", epoch))
				s.startRunner(op)
			}
		}
		// Completed backups whose after hooks a deposed leader left open.
		for _, op := range s.fsm.Operations("", afterScanLimit) {
			if afterHooksOpen(op) && s.needsRunner(op.GetOpId()) {
				s.log.Info("taking over a completed backup's after hooks", zap.String("op_id", op.GetOpId()), zap.Uint64("epoch", epoch))
				s.startRunner(op)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-tick.C:
		}
	}
}

// needsRunner reports whether op has no runner and may get one now.
func (s *Server) needsRunner(opID string) bool {
	s.pauses.mu.Lock()
	defer s.pauses.mu.Unlock()
	if _, ok := s.pauses.running[opID]; ok {
		return false
	}
	at, ok := s.pauses.stopped[opID]
	return !ok || time.Since(at) >= redriveBackoff
}

// startRunner drives op in the background for the current term.
func (s *Server) startRunner(op *pb.Operation) bool {
	s.pauses.mu.Lock()
	defer s.pauses.mu.Unlock()
	ctx, epoch := s.pauses.ctx, s.pauses.epoch
	if ctx == nil || ctx.Err() != nil {
		return false
	}
	if _, ok := s.pauses.running[op.GetOpId()]; ok {
		return true
	}
	// Drive the op as recorded now: a runner that stopped meanwhile may
	// have moved it on, or ended it.
	if cur, ok := s.fsm.Operation(op.GetOpId()); ok {
		if fsm.IsTerminal(cur.GetState()) && !afterHooksOpen(cur) {
			return true
		}
		op = cur
	}
	log := s.log.With(zap.String("op_id", op.GetOpId()), zap.String("cluster", op.GetCluster()), zap.Uint64("epoch", epoch))
	cfg := s.fsm.Config()
	incarnations := map[string]uint64{}
	for _, t := range op.GetTargets() {
		incarnations[t.GetNode()] = t.GetAgentIncarnation()
	}
	r := &pauseRunner{
		log:       log,
		ops:       serverOpLog{s},
		agents:    agentConns{s},
		watch:     func(op *pb.Operation) string { return s.holdProblems(op, incarnations) },
		cfg:       cfg,
		epoch:     epoch,
		clock:     clockwork.NewRealClock(),
		stamp:     s.Stamp,
		force:     make(chan struct{}),
		leader:    s.cfg.NodeID,
		hookAddr:  s.agentAddress,
		localHook: s.runLocalHook,
	}
	s.pauses.running[op.GetOpId()] = r
	s.pauses.wg.Add(1)
	go func() {
		defer s.pauses.wg.Done()
		final, err := r.run(ctx, op)
		s.pauses.mu.Lock()
		delete(s.pauses.running, op.GetOpId())
		switch {
		case err != nil:
			s.pauses.stopped[op.GetOpId()] = time.Now()
			log.Warn("runner stopped; this leader drives the op again shortly, or the next leader does", zap.Error(err))
		default:
			delete(s.pauses.stopped, op.GetOpId())
			log.Info("operation ended", zap.String("state", final.GetState().String()), zap.String("reason", final.GetReason()))
		}
		s.pauses.mu.Unlock()
	}()
	return true
}

// serverOpLog records operations through Raft.
type serverOpLog struct{ s *Server }

// The leader's context has no deadline, so Apply bounds the wait with
// Config.ApplyTimeout.
func (l serverOpLog) updateOperation(ctx context.Context, op *pb.Operation) error {
	_, err := l.s.Apply(ctx, &pb.UpdateOperationCommand{Operation: op, Actor: "leader " + l.s.cfg.NodeID, At: l.s.Stamp()})
	return err
}

// agentConns dials agents through the server's shared connection pool.
type agentConns struct{ s *Server }

func (a agentConns) agent(addr string) (pb.AgentServiceClient, error) {
	if addr == "" {
		return nil, errors.New("agent has no gRPC address in its gossip metadata")
	}
	cc, err := a.s.agentConns.get(addr)
	if err != nil {
		return nil, err
	}
	return pb.NewAgentServiceClient(cc), nil
}

// agentAddress is the gRPC address of a named agent (one that runs a
// backup hook): from the gossip view while it is there, else from its
// roster record.
func (s *Server) agentAddress(name string) (string, error) {
	if m, ok := s.pool.Member(name); ok && m.Meta.GRPCAddr != "" && m.Meta.Role != RoleServer {
		return m.Meta.GRPCAddr, nil
	}
	if rec, ok := s.fsm.Member(name); ok && rec.GetGrpcAddress() != "" {
		return rec.GetGrpcAddress(), nil
	}
	return "", fmt.Errorf("no agent named %s is in the gossip view or on any roster", name)
}
