package coordinator

import (
	"context"
	"fmt"
	"maps"

	"github.com/stillpoint-dev/stillpoint/internal/hook"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// runLocalHook runs a hook defined in this server's config (Config.Hooks)
// for a backup this server leads, with the hook executor (its process
// group is killed at its timeout or when this server's term ends).
func (s *Server) runLocalHook(ctx context.Context, name string, env map[string]string) *pb.HookRun {
	for _, d := range s.cfg.Hooks {
		if d.Name != name {
			continue
		}
		env = maps.Clone(env)
		env[hook.EnvHook], env[hook.EnvNode] = name, CoordinatorAgent
		ex := &hook.Executor{Stamp: s.Stamp, Label: "coordinator " + s.cfg.NodeID}
		return ex.Run(ctx, d, env)
	}
	return &pb.HookRun{State: pb.HookState_HOOK_STATE_FAILED, EndedAt: s.Stamp(),
		Message: fmt.Sprintf("coordinator %s has no hook named %s in its config", s.cfg.NodeID, name)}
}
