package coordinator

import (
	"context"
	"fmt"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// runLocalHook runs a hook defined in this server's config (Config.Hooks)
// for a backup this server leads.
func (s *Server) runLocalHook(ctx context.Context, name string, env map[string]string) *pb.HookRun {
	for _, d := range s.cfg.Hooks {
		if d.Name == name {
			return &pb.HookRun{State: pb.HookState_HOOK_STATE_FAILED, EndedAt: s.Stamp(),
				Message: fmt.Sprintf("coordinator %s cannot run hook %s yet: no executor is wired", s.cfg.NodeID, name)}
		}
	}
	return &pb.HookRun{State: pb.HookState_HOOK_STATE_FAILED, EndedAt: s.Stamp(),
		Message: fmt.Sprintf("coordinator %s has no hook named %s in its config", s.cfg.NodeID, name)}
}
