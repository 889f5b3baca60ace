package coordinator

import (
	"sync"
	"time"

	"github.com/hashicorp/raft"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// healthyContactTimeouts is how many heartbeat timeouts may pass since a
// server was last heard before list-peers and members call it unhealthy. A
// follower unheard for one heartbeat timeout would itself start an election;
// three leave room for a loaded machine.
const healthyContactTimeouts = 3

// contactTransport is Raft's network transport, recording when each peer
// last answered an AppendEntries. hashicorp/raft v1.8.0 keeps the leader's
// per-follower last contact (followerReplication.lastContact) unexported,
// and its FailedHeartbeatObservation carries it only once heartbeats fail.
// The leader's heartbeat loop calls AppendEntries on every follower every
// heartbeat_timeout/10 whatever the replication pipeline does, and raft
// sets its own lastContact on exactly these successful returns, so this
// gives the same figure, for every server, at heartbeat resolution.
// Embedding the concrete transport keeps its optional interfaces (pre-vote,
// close) visible to Raft.
type contactTransport struct {
	*raft.NetworkTransport
	contacts *peerContacts
}

// AppendEntries sends the RPC and records the peer's answer.
func (t *contactTransport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	err := t.NetworkTransport.AppendEntries(id, target, args, resp)
	if err == nil {
		t.contacts.heard(id, time.Now())
	}
	return err
}

// peerContacts is when this server last heard each Raft peer answer.
type peerContacts struct {
	mu   sync.Mutex
	last map[raft.ServerID]time.Time
}

func newPeerContacts() *peerContacts {
	return &peerContacts{last: map[raft.ServerID]time.Time{}}
}

func (c *peerContacts) heard(id raft.ServerID, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if at.After(c.last[id]) {
		c.last[id] = at
	}
}

func (c *peerContacts) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.last)
}

func (c *peerContacts) get(id raft.ServerID) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.last[id]
	return t, ok
}

// peerContact is what this server knows of a peer's last contact at now:
// the age and whether it is healthy; ok is false when it knows nothing.
// The leader knows every follower from its heartbeats (the table is
// emptied when leadership is lost, so a past term's figures never show); a
// follower knows only the leader.
func (s *Server) peerContact(id raft.ServerID, now time.Time) (age time.Duration, healthy, ok bool) {
	if string(id) == s.cfg.NodeID {
		return 0, true, true
	}
	var last time.Time
	switch s.raft.State() {
	case raft.Leader:
		t, known := s.rp.contacts.get(id)
		if !known {
			return 0, false, false
		}
		last = t
	case raft.Follower:
		if _, leader := s.raft.LeaderWithID(); leader != id {
			return 0, false, false
		}
		last = s.raft.LastContact()
		if last.IsZero() {
			return 0, false, false
		}
	default:
		return 0, false, false
	}
	age = now.Sub(last)
	if age < 0 {
		age = 0
	}
	return age, age <= healthyContactTimeouts*s.cfg.Raft.HeartbeatTimeout, true
}

// fillPeerContact sets a RaftPeer's last contact and health.
func (s *Server) fillPeerContact(p *pb.RaftPeer, now time.Time) {
	if age, healthy, ok := s.peerContact(raft.ServerID(p.GetId()), now); ok {
		ms := age.Milliseconds()
		p.LastContactMs, p.Healthy = &ms, healthy
	}
}
