package e2e

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/stillpoint-dev/stillpoint/internal/logging/logtest"
	"github.com/stillpoint-dev/stillpoint/internal/waitfor"
)

// testLogger logs to t.Log until the test ends (see logtest).
func testLogger(t *testing.T, level zapcore.Level) *zap.Logger { return logtest.New(t, level) }

// waitFor polls cond every 10 ms until it holds; it fails the test with
// cond's last reason when ctx ends or timeout passes.
func waitFor(ctx context.Context, t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	waitfor.Fatal(ctx, t, timeout, what, cond)
}
