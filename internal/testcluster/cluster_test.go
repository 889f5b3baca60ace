package testcluster

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

type fatalTB struct {
	testing.TB
	msg string
}

type fatalCalled struct{}

func (f *fatalTB) Helper() {}
func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic(fatalCalled{})
}

func TestWaitForReportsLastReason(t *testing.T) {
	f := &fatalTB{TB: t}
	n := 0
	func() {
		defer func() {
			if r := recover(); r != nil {
				if _, ok := r.(fatalCalled); !ok {
					panic(r)
				}
			}
		}()
		WaitFor(f, 50*time.Millisecond, func() (bool, string) {
			n++
			return false, fmt.Sprintf("attempt %d", n)
		})
	}()
	if n < 2 || !strings.Contains(f.msg, fmt.Sprintf("attempt %d", n)) || !strings.Contains(f.msg, "50ms") {
		t.Fatalf("after %d attempts the failure says %q", n, f.msg)
	}
	calls := 0
	WaitFor(t, time.Second, func() (bool, string) { calls++; return calls == 3, "" })
	if calls != 3 {
		t.Fatalf("WaitFor stopped after %d calls", calls)
	}
}

func TestHarnessKillRestartAndExtras(t *testing.T) {
	extraRan := false
	c := New(t, 3, WithExtra(func(t testing.TB, c *Cluster) {
		extraRan = len(c.GossipSeeds()) == 3
		c.AddStandIn(t, "ledger-1", ledgerOnly())
	}))
	if !extraRan {
		t.Fatal("extra hook did not run after all servers started")
	}
	leader := c.WaitForLeader(t)
	if len(c.Followers()) != 2 || c.Leader() != leader {
		t.Fatalf("leader %v, followers %d", c.Leader(), len(c.Followers()))
	}
	i := c.Index(leader)
	c.Kill(i)
	if c.Server(i) != nil || len(c.Servers()) != 2 {
		t.Fatal("killed server still listed")
	}
	c.WaitForLeader(t)
	s := c.Restart(i)
	if s.ID() != leader.ID() || c.Server(i) != s {
		t.Fatalf("restarted %s at %d", s.ID(), i)
	}
	WaitFor(t, DefaultTimeout, func() (bool, string) {
		_, ok := s.Member("ledger-1")
		return ok, "restarted server does not see the stand-in"
	})
}
