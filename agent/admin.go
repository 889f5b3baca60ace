package agent

import (
	"context"
	"time"

	"github.com/stillpoint-dev/stillpoint/internal/scalaradmin"
)

// scalarAdmin adapts the scalar-admin client to adminClient.
type scalarAdmin struct {
	c *scalaradmin.Client
}

var _ adminClient = scalarAdmin{}

func (a scalarAdmin) Pause(ctx context.Context, wait bool, maxWait time.Duration) error {
	return a.c.Pause(ctx, wait, maxWait)
}

func (a scalarAdmin) Unpause(ctx context.Context) error { return a.c.Unpause(ctx) }

func (a scalarAdmin) CheckPaused(ctx context.Context) (scalaradmin.PauseState, error) {
	return a.c.CheckPaused(ctx)
}
