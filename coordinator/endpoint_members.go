package coordinator

import (
	"context"
	"sort"
	"time"

	"github.com/hashicorp/raft"

	"github.com/stillpoint-dev/stillpoint/internal/version"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// ListMembers lists every member of the gossip pool with its clock state
// and node state, plus members known only from their Raft records.
func (s *Server) ListMembers(ctx context.Context, req *pb.ListMembersRequest) (*pb.ListMembersResponse, error) {
	if resp, done, err := forwardRead(ctx, s, req.GetStale(), req, pb.CoordinatorServiceClient.ListMembers); done {
		return resp, err
	}
	now := time.Now()
	var out []*pb.Member
	seen := map[string]bool{}
	for _, m := range s.pool.Members() {
		seen[m.Name] = true
		pm := MemberProto(m, now)
		if req.GetCluster() != "" && pm.GetCluster() != req.GetCluster() {
			continue
		}
		out = append(out, pm)
	}
	for _, rec := range s.fsm.Members() {
		if seen[rec.GetName()] || (req.GetCluster() != "" && rec.GetCluster() != req.GetCluster()) {
			continue
		}
		out = append(out, recordMemberProto(rec))
	}
	for _, m := range out {
		if m.GetRole() != "server" {
			continue
		}
		if age, healthy, ok := s.peerContact(raft.ServerID(m.GetName()), now); ok {
			ms := age.Milliseconds()
			m.RaftLastContactMs, m.RaftHealthy = &ms, &healthy
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetName() < out[j].GetName() })
	return &pb.ListMembersResponse{Members: out, ServedBy: s.cfg.NodeID}, nil
}

// GetServerInfo describes this server; it is never forwarded.
func (s *Server) GetServerInfo(context.Context, *pb.GetServerInfoRequest) (*pb.GetServerInfoResponse, error) {
	leaderID, _ := s.Leader()
	return &pb.GetServerInfoResponse{
		NodeId:           s.cfg.NodeID,
		RaftAddress:      s.RaftAddr(),
		GrpcAddress:      s.grpcAddr,
		GossipAddress:    s.pool.AdvertiseAddr(),
		HasRaftState:     s.hasRaftState(),
		LeaderId:         leaderID,
		RaftState:        s.raft.State().String(),
		LastAppliedIndex: s.raft.AppliedIndex(),
		Version:          version.Version,
		HttpAddress:      s.HTTPAddr(),
	}, nil
}
