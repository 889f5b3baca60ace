package coordinator

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"google.golang.org/grpc/status"

	"github.com/stillpoint-dev/stillpoint/internal/gossip"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

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
