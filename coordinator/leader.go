package coordinator

import (
	"context"
	"sort"
	"sync"
	"time"

	"go.uber.org/zap"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// LeaderDuty runs on the leader for one term: it starts after a Barrier
// and the BumpEpoch of the term, with that epoch, and its ctx is cancelled
// when leadership is lost or the server shuts down. It must return soon
// after ctx is done.
type LeaderDuty func(ctx context.Context, epoch uint64)

type namedDuty struct {
	name string
	fn   LeaderDuty
}

// leaderState tracks the current term's duties.
type leaderState struct {
	mu     sync.Mutex
	duties []namedDuty
	// Set while this server leads and its duties run.
	cancel context.CancelFunc
	ctx    context.Context
	epoch  uint64
	wg     *sync.WaitGroup
	// done is closed when the term's establish/duties have all returned.
	done chan struct{}
	// running counts the duties of the current term still running, by name.
	running map[string]int
}

// dutyStopTimeout bounds how long a shutdown waits for the leader term's
// duties to return once their ctx is cancelled.
const dutyStopTimeout = 10 * time.Second

// AddLeaderDuty registers fn to run each time this server becomes leader.
// Registered while leading, it starts at once for the current term.
func (s *Server) AddLeaderDuty(name string, fn LeaderDuty) {
	s.leader.mu.Lock()
	defer s.leader.mu.Unlock()
	s.leader.duties = append(s.leader.duties, namedDuty{name, fn})
	if s.leader.ctx != nil && s.leader.ctx.Err() == nil {
		s.startDutyLocked(namedDuty{name, fn})
	}
}

func (s *Server) startDutyLocked(d namedDuty) {
	ctx, epoch, wg := s.leader.ctx, s.leader.epoch, s.leader.wg
	wg.Add(1)
	if s.leader.running == nil {
		s.leader.running = map[string]int{}
	}
	s.leader.running[d.name]++
	go func() {
		defer wg.Done()
		defer func() {
			s.leader.mu.Lock()
			if s.leader.running[d.name]--; s.leader.running[d.name] <= 0 {
				delete(s.leader.running, d.name)
			}
			s.leader.mu.Unlock()
		}()
		s.log.Debug("leader duty started", zap.String("duty", d.name), zap.Uint64("epoch", epoch))
		d.fn(ctx, epoch)
	}()
}

// LeaderEpoch returns the fencing epoch of this server's current term and
// whether it is leading with its duties started.
func (s *Server) LeaderEpoch() (uint64, bool) {
	s.leader.mu.Lock()
	defer s.leader.mu.Unlock()
	if s.leader.ctx == nil || s.leader.ctx.Err() != nil {
		return 0, false
	}
	return s.leader.epoch, true
}

// monitorLeadership drains Raft's NotifyCh and starts or stops the leader
// term on each transition.
func (s *Server) monitorLeadership() {
	defer s.wg.Done()
	for {
		select {
		case isLeader := <-s.rp.notify:
			if isLeader {
				s.startLeading()
			} else {
				s.rp.contacts.reset()
				s.stopLeading()
			}
		case <-s.shutdownCh:
			return
		}
	}
}

func (s *Server) startLeading() {
	s.stopLeading()
	select {
	case <-s.shutdownCh:
		return
	default:
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	s.leader.mu.Lock()
	s.leader.cancel, s.leader.done = cancel, done
	s.leader.mu.Unlock()
	s.log.Info("gained leadership")
	go func() {
		defer close(done)
		s.leaderTerm(ctx)
	}()
}

// stopLeading cancels the current term and waits for its duties to return.
func (s *Server) stopLeading() { s.stopLeadingWithin(0) }

// stopLeadingWithin is stopLeading bounded by timeout (0: unbounded), for
// a shutdown, which must end even if a duty ignores its cancelled ctx: it
// logs the duties still running and reports false.
func (s *Server) stopLeadingWithin(timeout time.Duration) bool {
	s.leader.mu.Lock()
	cancel, done := s.leader.cancel, s.leader.done
	s.leader.cancel, s.leader.done, s.leader.ctx = nil, nil, nil
	s.leader.mu.Unlock()
	if cancel == nil {
		return true
	}
	cancel()
	if timeout <= 0 {
		<-done
		s.log.Info("leader duties stopped")
		return true
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-done:
		s.log.Info("leader duties stopped")
		return true
	case <-t.C:
		s.leader.mu.Lock()
		running := make([]string, 0, len(s.leader.running))
		for name := range s.leader.running {
			running = append(running, name)
		}
		s.leader.mu.Unlock()
		sort.Strings(running)
		s.log.Error("leader duties still running after their term was cancelled; shutting down without them",
			zap.Duration("waited", timeout), zap.Strings("duties", running))
		return false
	}
}

// leaderTerm establishes the term (Barrier, BumpEpoch), starts the duties
// and waits for the term to end.
func (s *Server) leaderTerm(ctx context.Context) {
	epoch, ok := s.establish(ctx)
	if !ok {
		return
	}
	wg := &sync.WaitGroup{}
	s.leader.mu.Lock()
	if ctx.Err() != nil {
		s.leader.mu.Unlock()
		return
	}
	s.leader.ctx, s.leader.epoch, s.leader.wg = ctx, epoch, wg
	for _, d := range s.leader.duties {
		s.startDutyLocked(d)
	}
	s.leader.mu.Unlock()
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.reconcileLoop(ctx)
	}()
	s.log.Info("leader term established", zap.Uint64("epoch", epoch))
	<-ctx.Done()
	wg.Wait()
}

// establish waits until every earlier entry is applied here (Barrier),
// then bumps the fencing epoch. It retries until it succeeds or the term
// ends.
func (s *Server) establish(ctx context.Context) (uint64, bool) {
	backoff := s.cfg.Raft.CommitTimeout
	for {
		if ctx.Err() != nil {
			return 0, false
		}
		err := s.barrier(ctx)
		if err == nil {
			var resp any
			actx, cancel := context.WithTimeout(ctx, s.cfg.ApplyTimeout)
			resp, err = s.Apply(actx, &pb.BumpEpochCommand{LeaderId: s.cfg.NodeID})
			cancel()
			if err == nil {
				if v, ok := resp.(interface{ GetValue() uint64 }); ok {
					return v.GetValue(), true
				}
				return s.fsm.Epoch(), true
			}
		}
		s.log.Warn("establishing leadership failed; retrying", zap.Error(err))
		select {
		case <-ctx.Done():
			return 0, false
		case <-time.After(backoff):
		}
		if backoff < time.Second {
			backoff *= 2
		}
	}
}

func (s *Server) barrier(ctx context.Context) error {
	f := s.raft.Barrier(s.cfg.ApplyTimeout)
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}
