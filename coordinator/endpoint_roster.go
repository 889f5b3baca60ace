package coordinator

import (
	"context"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"

	"github.com/stillpoint-dev/stillpoint/internal/gossip"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// RemoveRosterMember takes an agent off its cluster's roster: the operator
// says its node is gone for good, so its absence no longer refuses a pause.
// It is refused while the agent is alive in gossip (it would rejoin the
// roster at once, and its node is evidently still there). Audited with the
// actor.
func (s *Server) RemoveRosterMember(ctx context.Context, req *pb.RemoveRosterMemberRequest) (*pb.RemoveRosterMemberResponse, error) {
	if req.GetName() == "" {
		return nil, invalidArgument("name", "name is required (list the roster with `stillpoint members`)")
	}
	if resp, done, err := forward(ctx, s, req, pb.CoordinatorServiceClient.RemoveRosterMember); done {
		return resp, err
	}
	name := req.GetName()
	rec, ok := s.fsm.Member(name)
	if !ok {
		return nil, apiError(codes.NotFound, pb.ErrorReason_ERROR_REASON_MEMBER_NOT_FOUND, map[string]string{"node": name}, "%s is on no cluster's roster (list the roster with `stillpoint members`)", name)
	}
	if rec.GetRole() == RoleServer {
		return nil, apiError(codes.InvalidArgument, pb.ErrorReason_ERROR_REASON_INVALID_ARGUMENT, map[string]string{"field": "name", "node": name}, "%s is a coordinator server, not a roster member: remove it with `stillpoint operator raft remove-peer %s`", name, name)
	}
	if m, ok := s.pool.Member(name); ok && m.Status != gossip.StatusDead && m.Status != gossip.StatusLeft {
		return nil, apiError(codes.FailedPrecondition, pb.ErrorReason_ERROR_REASON_MEMBER_BUSY, map[string]string{"node": name, "cluster": rec.GetCluster()},
			"%s is alive in gossip (its agent at %s is running): an alive agent stays on the %s roster; stop the agent first if the node is being decommissioned",
			name, m.Meta.GRPCAddr, rec.GetCluster())
	}
	c := s.callerOf(ctx, req.GetRequestedBy())
	if _, err := s.Apply(ctx, &pb.RemoveRosterMemberCommand{Name: name, Actor: c.GetActor(), Caller: c, Reason: req.GetReason(), At: s.Stamp()}); err != nil {
		return nil, s.toStatus(err)
	}
	s.log.Warn("member removed from the roster", zap.String("member", name), zap.String("cluster", rec.GetCluster()),
		zap.String("actor", c.GetActor()), zap.String("note", c.GetNote()), zap.String("reason", req.GetReason()))
	return &pb.RemoveRosterMemberResponse{Member: recordMemberProto(rec)}, nil
}
