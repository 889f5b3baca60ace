package coordinator

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/stillpoint-dev/stillpoint/coordinator/fsm"
	"github.com/stillpoint-dev/stillpoint/internal/gossip"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// maxHoldMs caps a requested hold: a pause is minutes at most.
const maxHoldMs = int64(time.Hour / time.Millisecond)

// maxRequestIDLen bounds StartPauseRequest.request_id.
const maxRequestIDLen = 128

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
		if fsm.IsTerminal(cur.GetState()) {
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
		log:    log,
		ops:    serverOpLog{s},
		agents: agentConns{s},
		watch:  func(op *pb.Operation) string { return s.holdProblems(op, incarnations) },
		cfg:    cfg,
		epoch:  epoch,
		clock:  clockwork.NewRealClock(),
		stamp:  s.Stamp,
		force:  make(chan struct{}),
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

// holdProblems is the membership watch of SPEC step 4: a target that
// restarted, died or left, or a new node of the cluster, invalidates the
// window.
func (s *Server) holdProblems(op *pb.Operation, incarnations map[string]uint64) string {
	targets := map[string]bool{}
	var why []string
	for _, t := range op.GetTargets() {
		targets[t.GetNode()] = true
		m, ok := s.pool.Member(t.GetNode())
		switch {
		case !ok:
			why = append(why, fmt.Sprintf("%s: left the gossip pool during the hold", t.GetNode()))
		case m.Status != gossip.StatusAlive:
			why = append(why, fmt.Sprintf("%s: agent is %s during the hold", t.GetNode(), memberStatusName(memberStatus(m.Status))))
		case m.Meta.InterruptedOpID == op.GetOpId():
			why = append(why, fmt.Sprintf("%s: node came back unpaused during the hold (it restarted)", t.GetNode()))
		case incarnations[t.GetNode()] != 0 && m.Meta.Incarnation != 0 && m.Meta.Incarnation != incarnations[t.GetNode()]:
			why = append(why, fmt.Sprintf("%s: agent restarted during the hold", t.GetNode()))
		}
	}
	for _, m := range s.pool.Members() {
		if m.Status == gossip.StatusAlive && m.Meta.Cluster == op.GetCluster() && m.Meta.Role != RoleServer && !targets[m.Name] {
			why = append(why, fmt.Sprintf("%s: a new node of cluster %s joined during the hold (it runs unpaused)", m.Name, op.GetCluster()))
		}
	}
	sort.Strings(why)
	return strings.Join(why, "; ")
}

// candidates gathers every agent of cluster — each member of its roster
// and every agent the gossip view places in it — and asks each present one
// for its live state in parallel. A roster member whose agent left or is
// not in the gossip view is a candidate marked absent: it refuses the
// pause, since its node may be serving unpaused.
func (s *Server) candidates(ctx context.Context, cluster string) []candidate {
	var out []candidate
	seen := map[string]bool{}
	for _, m := range s.pool.Members() {
		gone := m.Status == gossip.StatusLeft || m.Status == gossip.StatusDead
		if m.Meta.Role == RoleServer || m.Meta.Cluster != cluster || gone || m.Name == s.cfg.NodeID {
			continue
		}
		seen[m.Name] = true
		c := candidate{name: m.Name, grpcAddr: m.Meta.GRPCAddr, status: memberStatus(m.Status), incarnation: m.Meta.Incarnation}
		if m.MetaErr != nil {
			c.stateErr = fmt.Errorf("undecodable gossip metadata: %v", m.MetaErr)
		}
		out = append(out, c)
	}
	for _, rec := range s.fsm.Roster(cluster) {
		if seen[rec.GetName()] {
			continue
		}
		c := candidate{name: rec.GetName(), grpcAddr: rec.GetGrpcAddress(), status: pb.MemberStatus_MEMBER_STATUS_DEAD}
		how := "is not in the gossip view"
		if m, ok := s.pool.Member(rec.GetName()); ok {
			c.status = memberStatus(m.Status)
			switch m.Status {
			case gossip.StatusLeft:
				how = "left gossip (it was stopped)"
			case gossip.StatusDead:
				how = "failed (gossip declared it dead)"
			}
		}
		c.absent = fmt.Sprintf("on the %s roster but its agent %s: its node may be serving unpaused; start the agent, or if the node is gone for good run `stillpoint members remove %s`",
			cluster, how, rec.GetName())
		out = append(out, c)
	}
	timeout := s.cfg.StatusTimeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	var wg sync.WaitGroup
	for i := range out {
		if out[i].stateErr != nil || out[i].absent != "" {
			continue
		}
		wg.Add(1)
		go func(c *candidate) {
			defer wg.Done()
			cl, err := agentConns{s}.agent(c.grpcAddr)
			if err != nil {
				c.stateErr = err
				return
			}
			cctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			resp, err := cl.Status(cctx, &pb.StatusRequest{})
			if err != nil {
				c.stateErr = errors.New(status.Convert(err).Message())
				return
			}
			c.state = resp.GetState()
		}(&out[i])
	}
	wg.Wait()
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// newOpID returns a sortable, unique operation id (≤ 40 bytes).
func newOpID(now time.Time) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "op-" + now.UTC().Format("20060102T150405.000Z") + "-" + hex.EncodeToString(b[:])
}

// StartPause admits, records and starts a pause of one cluster (SPEC steps
// 1-2). It returns as soon as the operation is recorded; follow it with
// WatchOperation.
func (s *Server) StartPause(ctx context.Context, req *pb.StartPauseRequest) (*pb.StartPauseResponse, error) {
	var bad []string
	if req.GetCluster() == "" {
		bad = append(bad, "cluster is required")
	}
	if h := req.GetHoldMs(); h < 0 || h > maxHoldMs {
		bad = append(bad, fmt.Sprintf("hold_ms %d is outside 0..%d", h, maxHoldMs))
	}
	if id := req.GetRequestId(); len(id) > maxRequestIDLen {
		bad = append(bad, fmt.Sprintf("request_id is %d bytes; at most %d", len(id), maxRequestIDLen))
	}
	if len(bad) > 0 {
		return nil, status.Error(codes.InvalidArgument, strings.Join(bad, "; "))
	}
	if resp, done, err := forward(ctx, s, req, pb.CoordinatorServiceClient.StartPause); done {
		return resp, err
	}
	s.pauses.mu.Lock()
	epoch, leading := s.pauses.epoch, s.pauses.ctx != nil && s.pauses.ctx.Err() == nil
	s.pauses.mu.Unlock()
	if !leading {
		return nil, notAppliedError("server %s is still taking over as leader; retry", s.cfg.NodeID)
	}
	if prev, ok := s.fsm.OperationByRequest(req.GetRequestId()); ok {
		// A retry of a request that was recorded: its op, whatever became
		// of it.
		if prev.GetCluster() != req.GetCluster() {
			return nil, status.Errorf(codes.InvalidArgument, "request_id %q already started operation %s on cluster %s, not %s",
				req.GetRequestId(), prev.GetOpId(), prev.GetCluster(), req.GetCluster())
		}
		s.log.Info("StartPause retried; returning the op it started", zap.String("op_id", prev.GetOpId()), zap.String("request_id", req.GetRequestId()))
		return &pb.StartPauseResponse{Operation: prev}, nil
	}
	if holder, locked := s.fsm.Lock(req.GetCluster()); locked {
		return nil, status.Errorf(codes.FailedPrecondition, "cluster %s is held by operation %s; one operation at a time per cluster (watch it with `stillpoint ops watch %s`)",
			req.GetCluster(), holder, holder)
	}
	who := actor(ctx, req.GetRequestedBy())
	cfg := s.fsm.Config()
	targets, err := admit(req.GetCluster(), s.candidates(ctx, req.GetCluster()), cfg)
	if err != nil {
		s.log.Warn("pause refused", zap.String("cluster", req.GetCluster()), zap.String("actor", who), zap.Error(err))
		actx, cancel := context.WithTimeout(ctx, s.cfg.ApplyTimeout)
		defer cancel()
		_, _ = s.Apply(actx, &pb.AppendAuditCommand{Record: &pb.AuditRecord{Action: "pause_refused", Actor: who, Detail: err.Error(), At: s.Stamp()}})
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	}
	now := s.Stamp()
	op := &pb.Operation{
		OpId:            newOpID(now.GetLocalTime().AsTime()),
		Cluster:         req.GetCluster(),
		State:           pb.OperationState_OPERATION_STATE_PENDING,
		Epoch:           epoch,
		Targets:         targets,
		RequestedHoldMs: req.GetHoldMs(),
		LeaseMs:         cfg.GetLeaseNs() / int64(time.Millisecond),
		RequestedBy:     who,
		CreatedAt:       now,
		Leader:          s.cfg.NodeID,
		RequestId:       req.GetRequestId(),
	}
	// The commit must not depend on the client staying: a cancel after
	// Raft took the entry would leave the op without a runner (the
	// re-drive loop would still find it, but the client would be told it
	// failed).
	cctx, cancel := commitContext(ctx, s.cfg.ApplyTimeout)
	defer cancel()
	out, err := s.Apply(cctx, &pb.CreateOperationCommand{Operation: op, Actor: who})
	if err != nil {
		return nil, s.toStatus(err)
	}
	stored, _ := out.(*pb.Operation)
	if stored == nil {
		stored = op
	}
	s.log.Info("pause admitted and recorded", zap.String("op_id", op.GetOpId()), zap.String("cluster", op.GetCluster()),
		zap.Int("targets", len(targets)), zap.String("actor", who), zap.Uint64("epoch", epoch))
	if !s.startRunner(stored) {
		return nil, status.Errorf(codes.Unavailable, "server %s lost leadership after recording %s; the next leader takes it over", s.cfg.NodeID, op.GetOpId())
	}
	return &pb.StartPauseResponse{Operation: stored}, nil
}

// commitContext is ctx's values without its cancellation, bounded by the
// apply timeout: for a write that, once sent to Raft, must be seen through.
func commitContext(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), timeout)
}

// ForceUnpause ends an operation's hold now: every target is unpaused and
// the op ends ABORTED. For an operation that already ended it re-sends
// Unpause to its targets (idempotent) and returns the record.
func (s *Server) ForceUnpause(ctx context.Context, req *pb.ForceUnpauseRequest) (*pb.ForceUnpauseResponse, error) {
	if req.GetOpId() == "" {
		return nil, status.Error(codes.InvalidArgument, "op_id is required")
	}
	if resp, done, err := forward(ctx, s, req, pb.CoordinatorServiceClient.ForceUnpause); done {
		return resp, err
	}
	op, ok := s.fsm.Operation(req.GetOpId())
	if !ok {
		return nil, status.Errorf(codes.NotFound, "operation %s not found (list them with `stillpoint ops list`)", req.GetOpId())
	}
	who := actor(ctx, "")
	reason := fmt.Sprintf("by %s", who)
	if req.GetReason() != "" {
		reason += ": " + req.GetReason()
	}
	if fsm.IsTerminal(op.GetState()) {
		return &pb.ForceUnpauseResponse{Operation: op}, nil
	}
	s.pauses.mu.Lock()
	r := s.pauses.running[op.GetOpId()]
	s.pauses.mu.Unlock()
	if r == nil {
		return nil, notAppliedError("operation %s is not driven by leader %s yet; retry", op.GetOpId(), s.cfg.NodeID)
	}
	s.log.Warn("force unpause requested", zap.String("op_id", op.GetOpId()), zap.String("actor", who), zap.String("reason", req.GetReason()))
	r.forceUnpause(reason)
	final, err := s.waitTerminal(ctx, op.GetOpId())
	if err != nil {
		return nil, err
	}
	return &pb.ForceUnpauseResponse{Operation: final}, nil
}

// waitTerminal waits until the local FSM holds op in a terminal state.
func (s *Server) waitTerminal(ctx context.Context, opID string) (*pb.Operation, error) {
	for {
		ch := s.fsm.Changed()
		if op, ok := s.fsm.Operation(opID); ok && fsm.IsTerminal(op.GetState()) {
			return op, nil
		}
		select {
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		case <-ch:
		}
	}
}

// WatchOperation streams the operation from this server's replica on
// every change until it ends.
func (s *Server) WatchOperation(req *pb.WatchOperationRequest, stream pb.CoordinatorService_WatchOperationServer) error {
	if req.GetOpId() == "" {
		return status.Error(codes.InvalidArgument, "op_id is required")
	}
	ctx := stream.Context()
	notFound := time.NewTimer(s.cfg.LeaderWait)
	defer notFound.Stop()
	var last *pb.Operation
	for {
		ch := s.fsm.Changed()
		op, ok := s.fsm.Operation(req.GetOpId())
		if ok && !proto.Equal(op, last) {
			if err := stream.Send(&pb.WatchOperationResponse{Operation: op}); err != nil {
				return err
			}
			last = op
			if fsm.IsTerminal(op.GetState()) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case <-notFound.C:
			if last == nil {
				return status.Errorf(codes.NotFound, "operation %s not found on server %s", req.GetOpId(), s.cfg.NodeID)
			}
		case <-ch:
		}
	}
}

// GetDrift reports every agent's clock and whether it would be admitted
// to a pause now, with the same checks StartPause makes.
func (s *Server) GetDrift(ctx context.Context, req *pb.GetDriftRequest) (*pb.GetDriftResponse, error) {
	if resp, done, err := forwardRead(ctx, s, req.GetStale(), req, pb.CoordinatorServiceClient.GetDrift); done {
		return resp, err
	}
	cfg := s.fsm.Config()
	clusters := map[string]bool{}
	for _, m := range s.pool.Members() {
		if m.Meta.Role != RoleServer && m.MetaErr == nil && (req.GetCluster() == "" || m.Meta.Cluster == req.GetCluster()) {
			clusters[m.Meta.Cluster] = true
		}
	}
	if req.GetCluster() != "" {
		clusters[req.GetCluster()] = true
	}
	names := make([]string, 0, len(clusters))
	for c := range clusters {
		names = append(names, c)
	}
	sort.Strings(names)
	resp := &pb.GetDriftResponse{SpreadNs: map[string]int64{}, Config: cfg}
	now := time.Now()
	for _, cluster := range names {
		cands := s.candidates(ctx, cluster)
		ev := evaluate(cluster, cands, cfg)
		resp.SpreadNs[cluster] = ev.spread
		for _, c := range cands {
			var member *pb.Member
			if m, ok := s.pool.Member(c.name); ok {
				member = MemberProto(m, now)
			} else {
				member = &pb.Member{Name: c.name, Cluster: cluster}
			}
			if c.state != nil {
				member.Clock = c.state.GetClock()
				member.NodeState = c.state.GetNodeState()
				member.OpId = c.state.GetOpId()
			}
			reasons := append(append([]string(nil), ev.perNode[c.name]...), ev.general...)
			resp.Entries = append(resp.Entries, &pb.DriftEntry{Member: member, Admissible: len(reasons) == 0, Reasons: reasons})
		}
	}
	return resp, nil
}
