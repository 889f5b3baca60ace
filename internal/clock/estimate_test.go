package clock

import (
	"testing"
	"time"
)

// Acceptance: ε grows linearly with age at max_drift, measured on an
// injected clock.
func TestBoundAtGrowsLinearlyWithAge(t *testing.T) {
	clk := NewManual(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	e := Estimate{Offset: 40 * time.Millisecond, ErrorBound: 100 * time.Microsecond, MaxDriftPPM: 50, Status: Synchronized, AsOf: clk.Now()}
	tests := []struct {
		age  time.Duration
		want time.Duration
	}{
		{0, 100 * time.Microsecond},
		{time.Second, 150 * time.Microsecond},
		{10 * time.Second, 600 * time.Microsecond},
		{100 * time.Second, 5100 * time.Microsecond},
		{time.Hour, 100*time.Microsecond + 180*time.Millisecond},
		{333 * time.Nanosecond, 100*time.Microsecond + 1}, // 0.01665 ns rounds up
	}
	for _, tc := range tests {
		now := e.AsOf.Add(tc.age)
		if got := e.BoundAt(now); got != tc.want {
			t.Errorf("BoundAt(as_of + %v) = %v, want %v", tc.age, got, tc.want)
		}
	}
	// Linear: equal steps of age add equal amounts of bound.
	var prev, step time.Duration
	for i := range 10 {
		clk.Advance(7 * time.Second)
		b := e.BoundAt(clk.Now())
		if i > 0 {
			if d := b - prev; i > 1 && d != step {
				t.Fatalf("step %d grew the bound by %v, earlier steps by %v", i, d, step)
			} else {
				step = d
			}
		}
		prev = b
	}
	if step != 350*time.Microsecond {
		t.Fatalf("7 s at 50 ppm grew the bound by %v, want 350µs", step)
	}
	if got := e.BoundAt(e.AsOf.Add(-time.Second)); got != e.ErrorBound {
		t.Fatalf("a reading before as_of: BoundAt = %v, want the base bound %v", got, e.ErrorBound)
	}
}

func TestTrueTime(t *testing.T) {
	asOf := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	e := Estimate{Offset: -40 * time.Millisecond, ErrorBound: time.Millisecond, MaxDriftPPM: 50, AsOf: asOf}
	local := asOf.Add(10 * time.Second) // bound 1ms + 500µs
	lo, hi := e.TrueTime(local)
	if want := local.Add(-40*time.Millisecond - 1500*time.Microsecond); !lo.Equal(want) {
		t.Errorf("lo = %v, want %v", lo, want)
	}
	if want := local.Add(-40*time.Millisecond + 1500*time.Microsecond); !hi.Equal(want) {
		t.Errorf("hi = %v, want %v", hi, want)
	}
}

func TestStatusAndVerdictNames(t *testing.T) {
	for s, want := range map[Status]string{Synchronized: "synchronized", Stale: "stale", Unsynchronized: "unsynchronized", Disrupted: "disrupted", StatusUnspecified: "unspecified"} {
		if s.String() != want {
			t.Errorf("%d.String() = %q, want %q", s, s.String(), want)
		}
	}
	for v, want := range map[Verdict]string{Selected: "selected", Falseticker: "falseticker", Unreachable: "unreachable", Invalid: "invalid", VerdictUnspecified: "unspecified"} {
		if v.String() != want {
			t.Errorf("%d.String() = %q, want %q", v, v.String(), want)
		}
	}
}

func TestClocks(t *testing.T) {
	sk := NewSkewed(40 * time.Millisecond)
	r := sk.Read()
	if d := time.Until(r.Wall.Round(0)); d < 30*time.Millisecond || d > 50*time.Millisecond {
		t.Fatalf("skewed wall reads %v from the host clock, want ~+40ms", d)
	}
	sk.Jump(time.Second)
	r2 := sk.Read()
	if j := wallJump(r, r2); j < time.Second-time.Millisecond || j > time.Second+time.Millisecond {
		t.Fatalf("wallJump after Jump(1s) = %v", j)
	}
	if sk.Offset() != 1040*time.Millisecond {
		t.Fatalf("offset %v", sk.Offset())
	}

	m := NewManual(time.Unix(1000, 0))
	a := m.Read()
	m.Advance(time.Second)
	m.Step(-2 * time.Second)
	b := m.Read()
	if got := wallJump(a, b); got != -2*time.Second {
		t.Fatalf("manual wallJump = %v, want -2s", got)
	}
	if got := b.Mono - a.Mono; got != time.Second {
		t.Fatalf("manual mono advanced %v, want 1s", got)
	}

	s1 := ReadClock(System)
	s2 := ReadClock(System)
	if j := wallJump(s1, s2); j.Abs() > time.Millisecond {
		t.Fatalf("system clock reads a %v jump between two readings", j)
	}
}
