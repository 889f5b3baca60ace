package coordinator_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stillpoint-dev/stillpoint/internal/testcluster"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// TestListRaftPeersHealth: the leader's list-peers shows every live server
// healthy with a recent last contact; a killed follower turns unhealthy and
// its last contact keeps growing; members says the same for servers.
func TestListRaftPeersHealth(t *testing.T) {
	c := testcluster.New(t, 3)
	c.WaitForLeader(t)
	peers := func(i int, stale bool) (map[string]*pb.RaftPeer, error) {
		resp, err := c.Client(i).ListRaftPeers(ctxT(t, 10*time.Second), &pb.ListRaftPeersRequest{Stale: stale})
		if err != nil {
			return nil, err
		}
		out := map[string]*pb.RaftPeer{}
		for _, p := range resp.GetPeers() {
			out[p.GetId()] = p
		}
		return out, nil
	}
	// healthyExcept checks the leader's list: every peer but victim healthy
	// with a known last contact; victim (if any) unhealthy.
	healthyExcept := func(victim string) (map[string]*pb.RaftPeer, string) {
		leader := c.WaitForLeader(t)
		ps, err := peers(c.Index(leader), false)
		if err != nil {
			return nil, err.Error()
		}
		if len(ps) != 3 {
			return nil, fmt.Sprintf("%d peers: %v", len(ps), ps)
		}
		for id, p := range ps {
			if p.LastContactMs == nil && id == victim {
				// A leader elected after the kill never heard it.
				if p.GetHealthy() {
					return nil, fmt.Sprintf("%s unknown yet healthy", id)
				}
				continue
			}
			if p.LastContactMs == nil {
				return nil, fmt.Sprintf("%s: no last contact on leader %s", id, leader.ID())
			}
			if want := id != victim; p.GetHealthy() != want {
				return nil, fmt.Sprintf("%s healthy=%v (last contact %dms), want %v", id, p.GetHealthy(), p.GetLastContactMs(), want)
			}
			if id == leader.ID() && p.GetLastContactMs() != 0 {
				return nil, fmt.Sprintf("leader %s last contact %dms, want 0", id, p.GetLastContactMs())
			}
		}
		return ps, ""
	}
	testcluster.WaitFor(t, testcluster.DefaultTimeout, func() (bool, string) {
		_, why := healthyExcept("")
		return why == "", why
	})

	// A follower's stale view knows the leader's last contact only.
	f := c.Followers()[0]
	testcluster.WaitFor(t, testcluster.DefaultTimeout, func() (bool, string) {
		ps, err := peers(c.Index(f), true)
		if err != nil {
			return false, err.Error()
		}
		for id, p := range ps {
			switch {
			case id == f.ID():
				if p.LastContactMs == nil || p.GetLastContactMs() != 0 || !p.GetHealthy() {
					return false, fmt.Sprintf("self %s: %v", id, p)
				}
			case p.GetLeader():
				if p.LastContactMs == nil || !p.GetHealthy() {
					return false, fmt.Sprintf("leader %s on follower %s: %v", id, f.ID(), p)
				}
			default:
				if p.LastContactMs != nil || p.GetHealthy() {
					return false, fmt.Sprintf("other follower %s on follower %s: %v, want unknown", id, f.ID(), p)
				}
			}
		}
		return true, ""
	})

	victim := f.ID()
	c.Kill(c.Index(f))
	// The victim turns unhealthy and its last contact grows, as one leader
	// sees it. Should leadership move (a loaded machine), the new leader
	// never heard the victim and shows it unknown and unhealthy: accepted.
	var first int64 = -1
	var firstLeader string
	testcluster.WaitFor(t, testcluster.DefaultTimeout, func() (bool, string) {
		ps, why := healthyExcept(victim)
		if why != "" {
			return false, why
		}
		leader := c.WaitForLeader(t).ID()
		if ps[victim].LastContactMs == nil {
			t.Logf("leader %s never heard killed %s: unknown, unhealthy", leader, victim)
			return true, ""
		}
		got := ps[victim].GetLastContactMs()
		if leader == firstLeader && first >= 0 && got > first {
			return true, ""
		}
		if leader != firstLeader {
			first, firstLeader = got, leader
		}
		return false, fmt.Sprintf("killed %s last contact %dms on %s, not past %dms", victim, got, leader, first)
	})

	// members shows the same health for the servers.
	testcluster.WaitFor(t, testcluster.DefaultTimeout, func() (bool, string) {
		leader := c.WaitForLeader(t)
		resp, err := c.Client(c.Index(leader)).ListMembers(ctxT(t, 10*time.Second), &pb.ListMembersRequest{})
		if err != nil {
			return false, err.Error()
		}
		n := 0
		for _, m := range resp.GetMembers() {
			if m.GetRole() != "server" {
				continue
			}
			n++
			if m.RaftHealthy == nil || m.RaftLastContactMs == nil || m.GetRaftHealthy() != (m.GetName() != victim) {
				return false, fmt.Sprintf("member %s: raft healthy %v, last contact %v", m.GetName(), m.RaftHealthy, m.RaftLastContactMs)
			}
		}
		return n == 3, fmt.Sprintf("%d server members", n)
	})
}
