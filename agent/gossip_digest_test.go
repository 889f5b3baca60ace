package agent

import (
	"testing"
	"time"

	"github.com/stillpoint-dev/stillpoint/internal/clock"
)

// TestMeaningfulOffsetChange: an offset that moves by more than 1ms is
// gossiped even when the bound and status stay the same (the leader's
// alarms and metrics read offsets from gossip); sub-millisecond jitter is
// not.
func TestMeaningfulOffsetChange(t *testing.T) {
	base := metaDigest{status: clock.Synchronized, boundNS: int64(2 * time.Millisecond)}
	moved := base
	moved.offsetNS = int64(40 * time.Millisecond)
	if !meaningful(base, moved) {
		t.Fatal("a 40ms offset change with the same bound and status is not gossiped")
	}
	jitter := base
	jitter.offsetNS = int64(300 * time.Microsecond)
	if meaningful(base, jitter) {
		t.Fatal("300µs of offset jitter is gossiped")
	}
}
