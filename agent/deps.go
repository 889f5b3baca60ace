package agent

import (
	"context"
	"time"

	"github.com/stillpoint-dev/stillpoint/internal/clock"
	"github.com/stillpoint-dev/stillpoint/internal/scalaradmin"
)

// adminClient is what the agent needs from the node's scalar-admin port.
// Errors wrap the scalaradmin error classes.
type adminClient interface {
	Pause(ctx context.Context, waitOutstanding bool, maxWait time.Duration) error
	Unpause(ctx context.Context) error
	// CheckPaused reports the gate; on a v1 server it returns scalaradmin.Unknown
	// and an error wrapping scalaradmin.ErrUnimplemented.
	CheckPaused(ctx context.Context) (scalaradmin.PauseState, error)
}

// clockSource is what the agent needs from the clock sampler: the
// estimate in force and the local clock it applies to.
type clockSource interface {
	Current() clock.Estimate
	Now() time.Time
}
