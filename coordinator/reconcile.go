package coordinator

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/stillpoint-dev/stillpoint/internal/gossip"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// reconcileLoop is the leader's membership duty (Nomad leader.go style):
// it applies each gossip change to the replicated member records and the
// Raft configuration, and reconciles everything on an interval so a lost
// event heals.
func (s *Server) reconcileLoop(ctx context.Context) {
	s.reconcileAll(ctx)
	tick := time.NewTicker(s.cfg.ReconcileInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-s.reconcileCh:
			if err := s.reconcileMember(ctx, m.Name); err != nil && ctx.Err() == nil {
				s.log.Warn("reconcile member failed", zap.String("member", m.Name), zap.Error(err))
			}
		case <-tick.C:
			s.reconcileAll(ctx)
		}
	}
}

// ReconcileNow runs a full membership reconcile if this server leads.
func (s *Server) ReconcileNow(ctx context.Context) error {
	if !s.IsLeader() {
		return raft.ErrNotLeader
	}
	return s.reconcileAll(ctx)
}

func (s *Server) reconcileAll(ctx context.Context) error {
	seen := map[string]bool{}
	var firstErr error
	for _, m := range s.pool.Members() {
		seen[m.Name] = true
		if err := s.reconcileMember(ctx, m.Name); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	for _, rec := range s.fsm.Members() {
		if !seen[rec.GetName()] {
			if err := s.reconcileMember(ctx, rec.GetName()); err != nil && firstErr == nil {
				firstErr = err
			}
		}
	}
	if firstErr != nil && ctx.Err() == nil {
		s.log.Warn("full reconcile incomplete; the next one retries", zap.Error(firstErr))
	}
	return firstErr
}

// reconcileMember brings one member's record (and, for a server, the Raft
// configuration) in line with the gossip view as it is now.
func (s *Server) reconcileMember(ctx context.Context, name string) error {
	cctx, cancel := context.WithTimeout(ctx, s.cfg.ApplyTimeout)
	defer cancel()
	m, inPool := s.pool.Member(name)
	cur, inFSM := s.fsm.Member(name)
	if !inPool {
		if !inFSM {
			return nil
		}
		if cur.GetRole() != RoleServer {
			// An agent stays on its cluster's roster, absent, until an
			// operator removes it (RemoveRosterMember).
			return nil
		}
		if name != s.cfg.NodeID {
			if err := s.removeRaftServer(cctx, name); err != nil {
				return err
			}
		}
		_, err := s.Apply(cctx, &pb.RemoveMemberCommand{Name: name})
		if err == nil {
			s.log.Info("member record removed", zap.String("member", name))
		}
		return err
	}
	if m.MetaErr != nil {
		// Its metadata cannot be trusted; leave its record as it was.
		return nil
	}
	if !inFSM && m.Meta.Role != RoleServer && m.Status != gossip.StatusAlive {
		// An agent joins the roster alive; one that is gone and not on the
		// roster was removed by an operator (or never seen alive).
		return nil
	}
	want := &pb.MemberRecord{
		Name:          m.Name,
		Role:          m.Meta.Role,
		Cluster:       m.Meta.Cluster,
		GossipAddress: m.Addr,
		GrpcAddress:   m.Meta.GRPCAddr,
		Status:        recordStatus(m.Status),
	}
	if m.Meta.Role == RoleServer {
		if err := s.reconcileServer(cctx, m, want, cur); err != nil {
			return err
		}
	}
	if inFSM && proto.Equal(cur, want) {
		return nil
	}
	if _, err := s.Apply(cctx, &pb.UpsertMemberCommand{Member: want}); err != nil {
		return err
	}
	s.log.Info("member record updated", zap.String("member", name), zap.String("role", want.GetRole()),
		zap.Stringer("status", want.GetStatus()))
	return nil
}

// reconcileServer adds an alive server to the Raft configuration (or fixes
// its address) and removes one that left. A failed server stays a voter:
// it may come back.
func (s *Server) reconcileServer(ctx context.Context, m gossip.Member, want, cur *pb.MemberRecord) error {
	if cur != nil {
		want.RaftAddress = cur.GetRaftAddress()
	}
	if m.Name == s.cfg.NodeID {
		want.RaftAddress = s.RaftAddr()
		return nil
	}
	switch m.Status {
	case gossip.StatusLeft:
		return s.removeRaftServer(ctx, m.Name)
	case gossip.StatusDead:
		return nil
	}
	info, err := s.serverInfo(ctx, m.Meta.GRPCAddr)
	if err != nil {
		return err
	}
	if info.GetNodeId() != m.Name {
		return fmt.Errorf("server %s: gossip member %s at %s answers as %q", s.cfg.NodeID, m.Name, m.Meta.GRPCAddr, info.GetNodeId())
	}
	want.RaftAddress = info.GetRaftAddress()
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	for _, srv := range f.Configuration().Servers {
		if string(srv.ID) == m.Name && string(srv.Address) == want.GetRaftAddress() {
			return nil
		}
	}
	s.log.Info("adding server to Raft", zap.String("server", m.Name), zap.String("raft_addr", want.GetRaftAddress()))
	return s.waitFuture(ctx, s.raft.AddVoter(raft.ServerID(m.Name), raft.ServerAddress(want.GetRaftAddress()), 0, s.cfg.ApplyTimeout))
}

func (s *Server) removeRaftServer(ctx context.Context, id string) error {
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	for _, srv := range f.Configuration().Servers {
		if string(srv.ID) == id {
			s.log.Info("removing server from Raft", zap.String("server", id))
			return s.waitFuture(ctx, s.raft.RemoveServer(srv.ID, 0, s.cfg.ApplyTimeout))
		}
	}
	return nil
}

// waitFuture waits for a Raft future within ctx: futures can block forever
// without a quorum.
func (s *Server) waitFuture(ctx context.Context, f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("server %s: %w", s.cfg.NodeID, ErrApplyTimeout)
	case <-s.shutdownCh:
		return raft.ErrRaftShutdown
	}
}

func recordStatus(st gossip.Status) pb.MemberRecordStatus {
	switch st {
	case gossip.StatusDead:
		return pb.MemberRecordStatus_MEMBER_RECORD_STATUS_FAILED
	case gossip.StatusLeft:
		return pb.MemberRecordStatus_MEMBER_RECORD_STATUS_LEFT
	}
	return pb.MemberRecordStatus_MEMBER_RECORD_STATUS_ALIVE
}

// infoCache remembers other servers' self-descriptions by gRPC address.
type infoCache struct {
	mu sync.Mutex
	m  map[string]*pb.GetServerInfoResponse
}

// serverInfo asks the server at grpcAddr about itself (cached: a server's
// id and Raft address do not change while its gRPC address stays).
func (s *Server) serverInfo(ctx context.Context, grpcAddr string) (*pb.GetServerInfoResponse, error) {
	s.infos.mu.Lock()
	if info, ok := s.infos.m[grpcAddr]; ok {
		s.infos.mu.Unlock()
		return info, nil
	}
	s.infos.mu.Unlock()
	info, err := s.askServerInfo(ctx, grpcAddr)
	if err != nil {
		return nil, err
	}
	s.infos.mu.Lock()
	s.infos.m[grpcAddr] = info
	s.infos.mu.Unlock()
	return info, nil
}

// askServerInfo always asks (no cache): used before bootstrapping, where
// has_raft_state must be current.
func (s *Server) askServerInfo(ctx context.Context, grpcAddr string) (*pb.GetServerInfoResponse, error) {
	if grpcAddr == "" {
		return nil, fmt.Errorf("server %s: peer has no gRPC address in its gossip metadata", s.cfg.NodeID)
	}
	cc, err := s.conns.get(grpcAddr)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	info, err := pb.NewCoordinatorServiceClient(cc).GetServerInfo(ctx, &pb.GetServerInfoRequest{})
	if err != nil {
		return nil, fmt.Errorf("server %s: ask server at %s for its info: %w", s.cfg.NodeID, grpcAddr, err)
	}
	return info, nil
}
