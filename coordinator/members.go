package coordinator

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stillpoint-dev/stillpoint/internal/clock"
	"github.com/stillpoint-dev/stillpoint/internal/gossip"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// MemberProto converts a member of the live gossip view to its API form,
// growing its clock bound from the time it was gossiped to now.
func MemberProto(m gossip.Member, now time.Time) *pb.Member {
	out := &pb.Member{
		Name:          m.Name,
		GossipAddress: m.Addr,
		Status:        memberStatus(m.Status),
	}
	if !m.UpdatedAt.IsZero() {
		out.MetaAgeMs = now.Sub(m.UpdatedAt).Milliseconds()
	}
	if m.MetaErr != nil {
		out.Role = "unknown"
		return out
	}
	meta := m.Meta
	out.Role = meta.Role
	out.Cluster = meta.Cluster
	out.GrpcAddress = meta.GRPCAddr
	out.OpId = meta.OpID
	out.LeaseRemainingMs = meta.LeaseRemainingMS
	out.InterruptedOpId = meta.InterruptedOpID
	if meta.Role != RoleServer {
		out.NodeState = &pb.NodeState{
			Reachable: meta.Node.Reachable,
			Paused:    meta.Node.Paused,
			Draining:  meta.Node.Draining,
		}
		if out.LeaseRemainingMs > 0 && out.MetaAgeMs > 0 {
			out.LeaseRemainingMs = max(0, out.LeaseRemainingMs-out.MetaAgeMs)
		}
	}
	if meta.Clock.Status != clock.StatusUnspecified {
		out.Clock = clockProto(meta.Clock, m.UpdatedAt, now)
	}
	return out
}

// clockProto grows the gossiped bound by max drift over the time since the
// metadata arrived (the bound was already grown to the sender's encode time).
func clockProto(c gossip.ClockMeta, heard, now time.Time) *pb.ClockEstimate {
	since := time.Duration(0)
	if !heard.IsZero() && now.After(heard) {
		since = now.Sub(heard)
	}
	growth := time.Duration(float64(since) * c.MaxDriftPPM / 1e6)
	return &pb.ClockEstimate{
		OffsetNs:         c.OffsetNS,
		ErrorBoundNs:     c.BoundNS + int64(growth),
		BaseErrorBoundNs: c.BoundNS,
		Status:           clock.StatusToProto(c.Status),
		AgeNs:            (time.Duration(c.AgeMS)*time.Millisecond + since).Nanoseconds(),
		MaxDriftPpm:      c.MaxDriftPPM,
		LeapPending:      c.LeapPending,
		SampledAt:        sampledAt(heard, c.AgeMS),
		Falsetickers:     c.Falsetickers,
	}
}

func sampledAt(heard time.Time, ageMS int64) *timestamppb.Timestamp {
	if heard.IsZero() {
		return nil
	}
	return timestamppb.New(heard.Add(-time.Duration(ageMS) * time.Millisecond))
}

func memberStatus(s gossip.Status) pb.MemberStatus {
	switch s {
	case gossip.StatusAlive:
		return pb.MemberStatus_MEMBER_STATUS_ALIVE
	case gossip.StatusDead:
		return pb.MemberStatus_MEMBER_STATUS_DEAD
	case gossip.StatusLeft:
		return pb.MemberStatus_MEMBER_STATUS_LEFT
	}
	return pb.MemberStatus_MEMBER_STATUS_UNSPECIFIED
}

// recordMemberProto is a member known only from its Raft record (no longer
// in the gossip view).
func recordMemberProto(r *pb.MemberRecord) *pb.Member {
	st := pb.MemberStatus_MEMBER_STATUS_DEAD
	if r.GetStatus() == pb.MemberRecordStatus_MEMBER_RECORD_STATUS_LEFT {
		st = pb.MemberStatus_MEMBER_STATUS_LEFT
	}
	return &pb.Member{
		Name: r.GetName(), Role: r.GetRole(), Cluster: r.GetCluster(),
		GossipAddress: r.GetGossipAddress(), GrpcAddress: r.GetGrpcAddress(), Status: st,
	}
}
