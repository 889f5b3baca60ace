package fsm

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// AuditRosterRemove is the audit action of an operator's roster removal.
const AuditRosterRemove = "roster-remove"

// roleServer is the role coordinator servers gossip.
const roleServer = "server"

// A cluster's roster is the member records of its agents: every agent
// that ever joined stays on it (its status follows gossip: alive, failed,
// left) until an operator removes it. A pause refuses while any roster
// member is absent.

func (f *FSM) applyRemoveRosterMember(index uint64, cmd *pb.RemoveRosterMemberCommand) (proto.Message, error) {
	m, ok := f.st.members[cmd.GetName()]
	if !ok {
		return nil, fmt.Errorf("%w: %q is on no cluster's roster", ErrMemberNotFound, cmd.GetName())
	}
	if m.GetRole() == roleServer {
		return nil, fmt.Errorf("%w: %s is a coordinator server, not a roster member (remove it from Raft instead)", ErrInvalidCommand, cmd.GetName())
	}
	delete(f.st.members, cmd.GetName())
	detail := fmt.Sprintf("%s removed from the roster of cluster %s (last status %s)", m.GetName(), m.GetCluster(), recordStatusName(m.GetStatus()))
	if cmd.GetReason() != "" {
		detail += ": " + cmd.GetReason()
	}
	f.audit(index, AuditRosterRemove, cmd.GetActor(), "", detail, cmd.GetAt())
	f.attachCaller(cmd.GetCaller())
	return m, nil
}

// Roster lists the agents on cluster's roster ("" for every cluster),
// sorted by name.
func (f *FSM) Roster(cluster string) []*pb.MemberRecord {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var out []*pb.MemberRecord
	for _, name := range sortedKeys(f.st.members) {
		m := f.st.members[name]
		if m.GetRole() == roleServer || (cluster != "" && m.GetCluster() != cluster) {
			continue
		}
		out = append(out, clone(m))
	}
	return out
}

func recordStatusName(s pb.MemberRecordStatus) string {
	switch s {
	case pb.MemberRecordStatus_MEMBER_RECORD_STATUS_ALIVE:
		return "alive"
	case pb.MemberRecordStatus_MEMBER_RECORD_STATUS_FAILED:
		return "failed"
	case pb.MemberRecordStatus_MEMBER_RECORD_STATUS_LEFT:
		return "left"
	}
	return "unknown"
}
