package coordinator

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// A shutdown must end even if a leader duty ignores its cancelled ctx: the
// bounded stop gives up after its timeout and names the duty; a duty that
// returns is waited for.
func TestStopLeadingWithinBoundsAHungDuty(t *testing.T) {
	core, logs := observer.New(zap.ErrorLevel)
	s := &Server{log: zap.New(core)}
	release := make(chan struct{})
	defer close(release)
	start := func(fn LeaderDuty) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		wg := &sync.WaitGroup{}
		s.leader.mu.Lock()
		s.leader.ctx, s.leader.cancel, s.leader.done, s.leader.wg = ctx, cancel, done, wg
		s.startDutyLocked(namedDuty{"hung", fn})
		s.leader.mu.Unlock()
		go func() { wg.Wait(); close(done) }()
	}

	start(func(ctx context.Context, _ uint64) { <-release }) // ignores ctx
	if s.stopLeadingWithin(50 * time.Millisecond) {
		t.Fatal("stop reported the duties returned while one ignores its ctx")
	}
	if e := logs.All(); len(e) != 1 || !strings.Contains(e[0].Message, "still running") {
		t.Fatalf("logs: %v", e)
	}
	if d := logs.All()[0].ContextMap()["duties"]; !strings.Contains(strings.Join(toStrings(d), ","), "hung") {
		t.Fatalf("logged duties %v, want the hung one named", d)
	}

	start(func(ctx context.Context, _ uint64) { <-ctx.Done() })
	if !s.stopLeadingWithin(10 * time.Second) {
		t.Fatal("a duty that returns on cancel was not waited for")
	}
}

func toStrings(v any) []string {
	switch v := v.(type) {
	case []string:
		return v
	case []any:
		out := make([]string, 0, len(v))
		for _, x := range v {
			s, _ := x.(string)
			out = append(out, s)
		}
		return out
	}
	return nil
}
