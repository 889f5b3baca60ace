package waitfor

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestPollReturnsOnceTheConditionHolds(t *testing.T) {
	n := 0
	err := Poll(context.Background(), "three checks", func() (bool, string) { n++; return n == 3, fmt.Sprintf("check %d", n) })
	if err != nil || n != 3 {
		t.Fatalf("Poll = %v after %d checks, want nil after 3", err, n)
	}
}

func TestPollNamesWhatAndTheLastReason(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	err := Poll(ctx, "the leader", func() (bool, string) {
		n++
		if n == 2 {
			cancel()
		}
		return false, fmt.Sprintf("no leader (check %d)", n)
	})
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "waiting for the leader") || !strings.Contains(err.Error(), "last: no leader (check 2)") {
		t.Fatalf("Poll = %v, want canceled naming the leader and the last reason", err)
	}
}

type fakeT struct{ msg string }

func (*fakeT) Helper()                          {}
func (f *fakeT) Fatalf(format string, a ...any) { f.msg = fmt.Sprintf(format, a...) }

func TestFatalFailsWithTheReasonAfterTheTimeout(t *testing.T) {
	var ft fakeT
	Fatal(context.Background(), &ft, 30*time.Millisecond, "the node to pause", Err(func() error { return errors.New("gate open") }))
	if !strings.Contains(ft.msg, "after 30ms") || !strings.Contains(ft.msg, "the node to pause") || !strings.Contains(ft.msg, "gate open") {
		t.Fatalf("Fatal said %q", ft.msg)
	}
	ft = fakeT{}
	Fatal(context.Background(), &ft, time.Second, "true", Bool(func() bool { return true }))
	if ft.msg != "" {
		t.Fatalf("Fatal failed on a condition that holds: %q", ft.msg)
	}
}
