package ui

import (
	"math"
	"testing"
	"time"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-6 }

func TestSymLog(t *testing.T) {
	s := NewSymLog(10*time.Microsecond, 3*time.Millisecond, 100, 500)
	if s.Max != 10*time.Millisecond {
		t.Fatalf("max = %v, want the decade at or above 3ms: 10ms", s.Max)
	}
	if x := s.X(0); !near(x, 300) {
		t.Errorf("X(0) = %v, want the middle 300", x)
	}
	if x := s.X(s.Max); !near(x, 500) {
		t.Errorf("X(max) = %v, want 500", x)
	}
	if x := s.X(-s.Max); !near(x, 100) {
		t.Errorf("X(-max) = %v, want 100", x)
	}
	if x := s.X(time.Second); !near(x, 500) {
		t.Errorf("X(1s) = %v, want clamped to 500", x)
	}
	// Symmetric and monotone.
	prev := -1.0
	for _, d := range []time.Duration{-s.Max, -time.Millisecond, -5 * time.Microsecond, 0, time.Microsecond, 10 * time.Microsecond, time.Millisecond, s.Max} {
		x := s.X(d)
		if x <= prev {
			t.Errorf("X(%v) = %v not right of the previous %v", d, x, prev)
		}
		prev = x
		if !near(s.X(d)-300, 300-s.X(-d)) {
			t.Errorf("X(%v) and X(%v) not symmetric about 300", d, -d)
		}
	}
	// Each decade beyond Lin takes (about) the same width.
	w1 := s.X(time.Millisecond) - s.X(100*time.Microsecond)
	w2 := s.X(10*time.Millisecond) - s.X(time.Millisecond)
	if math.Abs(w1-w2) > 3 {
		t.Errorf("decades %v and %v wide, want about equal", w1, w2)
	}
	ticks := s.Ticks()
	if len(ticks) != 1+2*4 { // 0, ±10µs, ±100µs, ±1ms, ±10ms
		t.Fatalf("ticks %+v, want 9", ticks)
	}
	if ticks[0].Label != "0" || ticks[1].Label != "+10µs" || ticks[2].Label != "−10µs" {
		t.Errorf("ticks %+v", ticks[:3])
	}
}

func TestNewSymLogSmallExtent(t *testing.T) {
	s := NewSymLog(0, 0, 0, 100)
	if s.Lin != 10*time.Microsecond || s.Max != 100*time.Microsecond {
		t.Errorf("scale %+v, want lin 10µs, max 100µs", s)
	}
}

func TestTimeScale(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := NewTimeScale(t0, t0.Add(time.Second), 0.1, 0, 1200)
	if x := s.X(t0); !near(x, 100) {
		t.Errorf("X(t0) = %v, want 100 (10%% pad of 1200 over 1.2s)", x)
	}
	if x := s.X(t0.Add(time.Second)); !near(x, 1100) {
		t.Errorf("X(t1) = %v, want 1100", x)
	}
	ticks := s.Ticks(5, t0.Add(500*time.Millisecond))
	var labels []string
	for _, tk := range ticks {
		labels = append(labels, tk.Label)
	}
	want := []string{"−500ms", "0", "+500ms"} // 1.2s/5 = 240ms rounds up to 500ms
	if len(labels) != len(want) {
		t.Fatalf("labels %v, want %v", labels, want)
	}
	for i := range want {
		if labels[i] != want[i] {
			t.Fatalf("labels %v, want %v", labels, want)
		}
	}
	// A zero span still draws.
	z := NewTimeScale(t0, t0, 0, 0, 100)
	if x := z.X(t0); !near(x, 0) {
		t.Errorf("zero span: X = %v", x)
	}
}

func TestNiceStep(t *testing.T) {
	for _, c := range []struct{ in, want time.Duration }{
		{0, 1}, {1, 1}, {3, 5}, {7, 10}, {11, 20}, {150 * time.Millisecond, 200 * time.Millisecond}, {time.Second, time.Second},
	} {
		if got := niceStep(c.in); got != c.want {
			t.Errorf("niceStep(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestMedian(t *testing.T) {
	ms := time.Millisecond
	for _, c := range []struct {
		in   []time.Duration
		want time.Duration
		ok   bool
	}{
		{nil, 0, false},
		{[]time.Duration{3 * ms}, 3 * ms, true},
		{[]time.Duration{5 * ms, -1 * ms, 2 * ms}, 2 * ms, true},
		{[]time.Duration{4 * ms, 0, 2 * ms, 10 * ms}, 3 * ms, true},
	} {
		got, ok := Median(c.in)
		if got != c.want || ok != c.ok {
			t.Errorf("Median(%v) = %v, %v; want %v, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}
