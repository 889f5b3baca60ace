package coordinator

import (
	"context"
	"sort"
	"time"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

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
