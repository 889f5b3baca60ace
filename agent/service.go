package agent

import (
	"context"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// service is the AgentService gRPC edge: it converts agent errors to
// status codes and nothing else.
type service struct {
	pb.UnimplementedAgentServiceServer
	a *Agent
}

var _ pb.AgentServiceServer = (*service)(nil)

func (s *service) Pause(ctx context.Context, req *pb.PauseRequest) (*pb.PauseResponse, error) {
	resp, err := s.a.core.Pause(ctx, req)
	s.a.kickGossip()
	return resp, toStatus(s.a.cfg.NodeName, err)
}

func (s *service) RenewLease(ctx context.Context, req *pb.RenewLeaseRequest) (*pb.RenewLeaseResponse, error) {
	resp, err := s.a.core.RenewLease(ctx, req)
	s.a.kickGossip()
	return resp, toStatus(s.a.cfg.NodeName, err)
}

func (s *service) Unpause(ctx context.Context, req *pb.UnpauseRequest) (*pb.UnpauseResponse, error) {
	resp, err := s.a.core.Unpause(ctx, req)
	s.a.kickGossip()
	return resp, toStatus(s.a.cfg.NodeName, err)
}

func (s *service) Status(context.Context, *pb.StatusRequest) (*pb.StatusResponse, error) {
	return &pb.StatusResponse{State: s.a.State()}, nil
}

func (s *service) RunHook(ctx context.Context, req *pb.RunHookRequest) (*pb.RunHookResponse, error) {
	resp, err := s.a.hooks.RunHook(ctx, req)
	s.a.kickGossip()
	return resp, toStatus(s.a.cfg.NodeName, err)
}
