package coordinator

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// ListRaftPeers lists the Raft configuration (the leader's, or this
// server's own with stale).
func (s *Server) ListRaftPeers(ctx context.Context, req *pb.ListRaftPeersRequest) (*pb.ListRaftPeersResponse, error) {
	if resp, done, err := forwardRead(ctx, s, req.GetStale(), req, pb.CoordinatorServiceClient.ListRaftPeers); done {
		return resp, err
	}
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, s.toStatus(err)
	}
	_, leader := s.raft.LeaderWithID()
	out := &pb.ListRaftPeersResponse{ServedBy: s.cfg.NodeID}
	now := time.Now()
	for _, srv := range f.Configuration().Servers {
		p := &pb.RaftPeer{
			Id: string(srv.ID), Address: string(srv.Address),
			Leader: srv.ID == leader, Voter: srv.Suffrage == raft.Voter,
		}
		s.fillPeerContact(p, now)
		out.Peers = append(out.Peers, p)
	}
	return out, nil
}

// RemoveRaftPeer removes a server from the Raft configuration. A server
// still alive in gossip is added back by the leader's reconcile: stop it
// first.
func (s *Server) RemoveRaftPeer(ctx context.Context, req *pb.RemoveRaftPeerRequest) (*pb.RemoveRaftPeerResponse, error) {
	if req.GetId() == "" {
		return nil, invalidArgument("id", "id is required (see `stillpoint operator raft list-peers`)")
	}
	if resp, done, err := forward(ctx, s, req, pb.CoordinatorServiceClient.RemoveRaftPeer); done {
		return resp, err
	}
	if _, ok := s.raftPeer(req.GetId()); !ok {
		return nil, apiError(codes.NotFound, pb.ErrorReason_ERROR_REASON_PEER_NOT_FOUND, map[string]string{"node": req.GetId()}, "server %q is not a Raft peer (see `stillpoint operator raft list-peers`)", req.GetId())
	}
	s.log.Warn("removing Raft peer on operator request", zap.String("peer", req.GetId()), zap.String("actor", s.callerOf(ctx, "").GetActor()))
	if err := s.waitFuture(ctx, s.raft.RemoveServer(raft.ServerID(req.GetId()), 0, s.cfg.ApplyTimeout)); err != nil {
		return nil, s.toStatus(err)
	}
	return &pb.RemoveRaftPeerResponse{}, nil
}

// TransferLeadership hands leadership to the given server, or to the most
// up-to-date one when id is empty, and returns the new leader.
func (s *Server) TransferLeadership(ctx context.Context, req *pb.TransferLeadershipRequest) (*pb.TransferLeadershipResponse, error) {
	if resp, done, err := forward(ctx, s, req, pb.CoordinatorServiceClient.TransferLeadership); done {
		return resp, err
	}
	var f raft.Future
	switch id := req.GetId(); {
	case id == "":
		f = s.raft.LeadershipTransfer()
	case id == s.cfg.NodeID:
		return &pb.TransferLeadershipResponse{NewLeader: id}, nil
	default:
		peer, ok := s.raftPeer(id)
		if !ok {
			return nil, apiError(codes.NotFound, pb.ErrorReason_ERROR_REASON_PEER_NOT_FOUND, map[string]string{"node": id}, "server %q is not a Raft peer (see `stillpoint operator raft list-peers`)", id)
		}
		if peer.Suffrage != raft.Voter {
			return nil, apiError(codes.FailedPrecondition, pb.ErrorReason_ERROR_REASON_PEER_NOT_FOUND, map[string]string{"node": id}, "server %q is not a voter and cannot lead", id)
		}
		f = s.raft.LeadershipTransferToServer(peer.ID, peer.Address)
	}
	if err := s.waitFuture(ctx, f); err != nil {
		return nil, s.toStatus(fmt.Errorf("leadership transfer from %s: %w", s.cfg.NodeID, err))
	}
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, id := s.raft.LeaderWithID(); id != "" && string(id) != s.cfg.NodeID {
			return &pb.TransferLeadershipResponse{NewLeader: string(id)}, nil
		}
		select {
		case <-ctx.Done():
			return nil, apiError(codes.DeadlineExceeded, pb.ErrorReason_ERROR_REASON_CANCELED, nil, "leadership left %s but no new leader was seen before the deadline", s.cfg.NodeID)
		case <-tick.C:
		}
	}
}

func (s *Server) raftPeer(id string) (raft.Server, bool) {
	f := s.raft.GetConfiguration()
	if f.Error() != nil {
		return raft.Server{}, false
	}
	for _, srv := range f.Configuration().Servers {
		if string(srv.ID) == id {
			return srv, true
		}
	}
	return raft.Server{}, false
}
