package coordinator

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/stillpoint-dev/stillpoint/internal/gossip"
	"github.com/stillpoint-dev/stillpoint/internal/grpcx"
	"github.com/stillpoint-dev/stillpoint/internal/tlsx"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// forwardedHeader marks a request one server forwarded to the leader; a
// non-leader receiving one refuses it instead of forwarding again.
const forwardedHeader = "x-stillpoint-forwarded-by"

// forwardedMetadata are incoming headers copied onto a forwarded request.
var forwardedMetadata = []string{"authorization"}

// forward sends req to the leader with call when this server is not the
// leader, Consul-style: every write handler starts with
//
//	if resp, done, err := forward(ctx, s, req, pb.CoordinatorServiceClient.UpdateConfig); done {
//		return resp, err
//	}
//
// and then serves the request as the leader. done=false means this server
// is the leader. It waits (within ctx and Config.LeaderWait) for a leader
// to be elected.
func forward[Req, Resp any](ctx context.Context, s *Server, req Req,
	call func(pb.CoordinatorServiceClient, context.Context, Req, ...grpc.CallOption) (Resp, error),
) (resp Resp, done bool, err error) {
	return forwardVia(ctx, s.forwarder(), req, call)
}

// forwarder is what forwarding needs of a server (a seam for tests).
type forwarder struct {
	self string
	log  *zap.Logger
	// hold is how long a request may wait for a leader (holdDeadline).
	hold func(ctx context.Context) time.Time
	// leader waits for a leader with a known gRPC address.
	leader func(ctx context.Context, deadline time.Time) (id, addr string, err error)
	conn   func(addr string) (*grpc.ClientConn, error)
	// applyTimeout bounds a forwarded call without a deadline of its own.
	applyTimeout time.Duration
	toStatus     func(error) error
	// headers are added to every forwarded call (the resolved caller, the
	// server secret).
	headers func(ctx context.Context) []string
	// read: the request changes nothing, so any UNAVAILABLE may be
	// retried on the next leader.
	read bool
}

func (s *Server) forwarder() forwarder {
	return forwarder{
		self: s.cfg.NodeID, log: s.log, hold: s.holdDeadline, leader: s.waitForLeader,
		conn: s.conns.get, applyTimeout: s.cfg.ApplyTimeout, toStatus: s.toStatus, headers: s.forwardHeaders,
	}
}

// maxConnectWait bounds how long one attempt waits for the connection to
// the leader before it looks for the leader again.
const maxConnectWait = time.Second

// forwardVia is forward over f. A failed attempt is retried (with the
// leader looked up again) only when the request cannot have been applied:
// it was never sent (no connection to the leader), or the leader answered
// that it did not apply it (ErrorInfo reason NOT_APPLIED: not the leader,
// still taking over, shutting down). Any other failure after the request
// was sent — the leader died mid-call, a timeout, a lost reply — may have
// been applied: it is returned, never retried blindly (a retried
// StartPause would find the cluster held by its own op).
func forwardVia[Req, Resp any](ctx context.Context, f forwarder, req Req,
	call func(pb.CoordinatorServiceClient, context.Context, Req, ...grpc.CallOption) (Resp, error),
) (resp Resp, done bool, err error) {
	md, _ := metadata.FromIncomingContext(ctx)
	hold := f.hold(ctx)
	for attempt := 0; ; attempt++ {
		id, addr, err := f.leader(ctx, hold)
		if err != nil {
			return resp, true, f.toStatus(err)
		}
		if id == f.self {
			return resp, false, nil
		}
		if by := md.Get(forwardedHeader); len(by) > 0 {
			return resp, true, f.toStatus(fmt.Errorf("%w: server %s received a request forwarded by %s, but the leader is %s", ErrForwardLoop, f.self, by[0], id))
		}
		var sent bool
		resp, sent, err = forwardOnce(ctx, f, md, id, addr, hold, req, call)
		if err == nil || (sent && !notApplied(err) && !(f.read && status.Code(err) == codes.Unavailable)) || !time.Now().Before(hold) {
			return resp, true, err
		}
		f.log.Debug("forward not applied; retrying", zap.String("leader", id), zap.Int("attempt", attempt), zap.Bool("sent", sent), zap.Error(err))
		select {
		case <-ctx.Done():
			return resp, true, err
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// forwardOnce sends req to the leader id at addr. sent=false means the
// request never left this server (no connection to the leader within the
// wait).
func forwardOnce[Req, Resp any](ctx context.Context, f forwarder, md metadata.MD, id, addr string, hold time.Time, req Req,
	call func(pb.CoordinatorServiceClient, context.Context, Req, ...grpc.CallOption) (Resp, error),
) (resp Resp, sent bool, err error) {
	cc, err := f.conn(addr)
	if err != nil {
		return resp, false, f.toStatus(fmt.Errorf("%w: leader %s at %s: %v", ErrLeaderUnreachable, id, addr, err))
	}
	if !connReady(ctx, cc, min(time.Until(hold), maxConnectWait)) {
		return resp, false, f.toStatus(fmt.Errorf("%w: leader %s at %s: no connection (%s)", ErrLeaderUnreachable, id, addr, cc.GetState()))
	}
	out := []string{forwardedHeader, f.self}
	if f.headers != nil {
		out = append(out, f.headers(ctx)...)
	}
	for _, k := range forwardedMetadata {
		for _, v := range md.Get(k) {
			out = append(out, k, v)
		}
	}
	octx := metadata.AppendToOutgoingContext(ctx, out...)
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		octx, cancel = context.WithTimeout(octx, f.applyTimeout)
		defer cancel()
	}
	f.log.Debug("forwarding to leader", zap.String("leader", id), zap.String("addr", addr))
	resp, err = call(pb.NewCoordinatorServiceClient(cc), octx, req)
	if err != nil {
		// Keep the code and details (a NOT_APPLIED reason); say the way.
		st := status.Convert(err)
		if ReasonOf(err) == "" {
			st = withInfo(st, forwardedReason(st, f.read), map[string]string{"server": f.self})
		}
		p := st.Proto()
		p.Message = fmt.Sprintf("forwarded by %s to leader %s (%s): %s", f.self, id, addr, p.GetMessage())
		return resp, true, status.FromProto(p).Err()
	}
	return resp, true, nil
}

// forwardedReason is the reason of a forwarded call's error that came
// back without a coordinator one (the request was sent: a request that
// never left this server is NOT_APPLIED from toStatus). Only grpc's own
// failures — UNAVAILABLE or UNKNOWN with no ErrorInfo at all: the
// connection broke, the stream was reset — leave the outcome open: a write
// may have been applied (OUTCOME_UNKNOWN), a read changed nothing
// (NOT_APPLIED). A context's end (CANCELED, DEADLINE_EXCEEDED) is
// CANCELED. Any other answer is the leader's own definitive refusal (a
// mixed-version leader's UNIMPLEMENTED, INVALID_ARGUMENT...): it keeps its
// code and gets the reason of its code.
func forwardedReason(st *status.Status, read bool) pb.ErrorReason {
	switch st.Code() {
	case codes.Canceled, codes.DeadlineExceeded:
		return pb.ErrorReason_ERROR_REASON_CANCELED
	case codes.Unavailable, codes.Unknown:
		for _, d := range st.Proto().GetDetails() {
			if d.MessageIs((*errdetails.ErrorInfo)(nil)) {
				return reasonForCode(st.Code())
			}
		}
		if read {
			return pb.ErrorReason_ERROR_REASON_NOT_APPLIED
		}
		return pb.ErrorReason_ERROR_REASON_OUTCOME_UNKNOWN
	}
	return reasonForCode(st.Code())
}

// connReady waits up to wait for cc to be connected, so that a failure
// after it can be told from a request that was never sent.
func connReady(ctx context.Context, cc *grpc.ClientConn, wait time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, max(wait, 0))
	defer cancel()
	for {
		st := cc.GetState()
		switch st {
		case connectivity.Ready:
			return true
		case connectivity.Idle:
			cc.Connect()
		case connectivity.Shutdown:
			return false
		}
		if !cc.WaitForStateChange(ctx, st) {
			return false
		}
	}
}

// holdDeadline is how long a request may wait for a leader: LeaderWait,
// but at most half of what remains of its own deadline.
func (s *Server) holdDeadline(ctx context.Context) time.Time {
	wait := s.cfg.LeaderWait
	if dl, ok := ctx.Deadline(); ok {
		if rem := time.Until(dl) / 2; rem < wait {
			wait = rem
		}
	}
	return time.Now().Add(wait)
}

// forwardRead is forward for reads: a stale read is served locally.
func forwardRead[Req, Resp any](ctx context.Context, s *Server, stale bool, req Req,
	call func(pb.CoordinatorServiceClient, context.Context, Req, ...grpc.CallOption) (Resp, error),
) (resp Resp, done bool, err error) {
	if stale {
		return resp, false, nil
	}
	f := s.forwarder()
	f.read = true
	return forwardVia(ctx, f, req, call)
}

// Leader returns the current leader's id and gRPC address, as far as this
// server knows ("" when none is known).
func (s *Server) Leader() (id, grpcAddr string) {
	_, lid := s.raft.LeaderWithID()
	if lid == "" {
		return "", ""
	}
	id = string(lid)
	if id == s.cfg.NodeID {
		return id, s.grpcAddr
	}
	return id, s.serverGRPCAddr(id)
}

// serverGRPCAddr finds a server's gRPC address from its gossip metadata,
// else from its FSM member record.
func (s *Server) serverGRPCAddr(id string) string {
	if m, ok := s.pool.Member(id); ok && m.MetaErr == nil && m.Meta.Role == RoleServer && m.Meta.GRPCAddr != "" {
		return m.Meta.GRPCAddr
	}
	if rec, ok := s.fsm.Member(id); ok {
		return rec.GetGrpcAddress()
	}
	return ""
}

// waitForLeader polls for a leader whose gRPC address is known.
func (s *Server) waitForLeader(ctx context.Context, deadline time.Time) (id, addr string, err error) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		id, addr = s.Leader()
		if id != "" && addr != "" {
			return id, addr, nil
		}
		if !time.Now().Before(deadline) {
			if id != "" {
				return "", "", fmt.Errorf("%w: leader %s has no known gRPC address (not in gossip or member records)", ErrLeaderUnreachable, id)
			}
			return "", "", s.noLeaderError()
		}
		select {
		case <-ctx.Done():
			return "", "", s.noLeaderError()
		case <-s.shutdownCh:
			return "", "", raft.ErrRaftShutdown
		case <-tick.C:
		}
	}
}

// noLeaderError says how many of the configured servers this one can see.
func (s *Server) noLeaderError() error {
	f := s.raft.GetConfiguration()
	if f.Error() != nil || len(f.Configuration().Servers) == 0 {
		seen := len(s.liveServers())
		if s.cfg.BootstrapExpect > 0 {
			return fmt.Errorf("%w: server %s is waiting to bootstrap (%d of %d expected servers seen in gossip)", ErrNoLeader, s.cfg.NodeID, seen, s.cfg.BootstrapExpect)
		}
		return fmt.Errorf("%w: server %s has not joined a Raft cluster (no bootstrap, no peers); start it with --bootstrap or --bootstrap-expect", ErrNoLeader, s.cfg.NodeID)
	}
	servers := f.Configuration().Servers
	reachable := 0
	live := s.liveServers()
	for _, srv := range servers {
		if string(srv.ID) == s.cfg.NodeID || live[string(srv.ID)] {
			reachable++
		}
	}
	return fmt.Errorf("%w; %d of %d servers reachable from %s (a leader needs %d)", ErrNoLeader, reachable, len(servers), s.cfg.NodeID, len(servers)/2+1)
}

// liveServers are the alive gossip members with role server, by name.
func (s *Server) liveServers() map[string]bool {
	out := map[string]bool{}
	for _, m := range s.pool.Members() {
		if m.Status == gossip.StatusAlive && m.MetaErr == nil && m.Meta.Role == RoleServer {
			out[m.Name] = true
		}
	}
	return out
}

// connPool keeps one client connection per server address.
type connPool struct {
	tls grpcx.TLS
	src *tlsx.Source // nil: plaintext
	// roles the dialled server's certificate must carry (with a CA).
	roles []string
	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

func newConnPool(t grpcx.TLS, src *tlsx.Source, roles ...string) *connPool {
	return &connPool{tls: t, src: src, roles: roles, conns: map[string]*grpc.ClientConn{}}
}

func (p *connPool) get(addr string) (*grpc.ClientConn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if cc, ok := p.conns[addr]; ok {
		return cc, nil
	}
	var roles []string
	if p.src != nil && p.src.HasCA() {
		roles = p.roles
	}
	cc, err := grpcx.NewClientFrom(addr, p.tls, p.src, roles)
	if err != nil {
		return nil, err
	}
	p.conns[addr] = cc
	return cc, nil
}

func (p *connPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for addr, cc := range p.conns {
		_ = cc.Close()
		delete(p.conns, addr)
	}
}
