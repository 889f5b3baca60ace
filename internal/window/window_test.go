package window

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stillpoint-dev/stillpoint/internal/clock"
)

var t0 = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

const ms = time.Millisecond

// rd is a reading taken at local t0+at with offset θ and bound ε.
func rd(at, theta, eps time.Duration) Reading {
	return Reading{Local: t0.Add(at), Offset: theta, Bound: eps}
}

func TestCompute(t *testing.T) {
	const century = 100 * 365 * 24 * time.Hour
	tests := []struct {
		name      string
		targets   []Target
		opts      Options
		wantStart time.Duration // from t0
		wantEnd   time.Duration
		wantRP    time.Duration
		wantUnc   time.Duration
		startNode string
		endNode   string
	}{
		{
			name:      "single target, perfect clock",
			targets:   []Target{{"l1", rd(0, 0, 0), rd(10*ms, 0, 0)}},
			wantStart: 0, wantEnd: 10 * ms, wantRP: 5 * ms, wantUnc: 5 * ms,
			startNode: "l1", endNode: "l1",
		},
		{
			name:      "single target, offset and bound",
			targets:   []Target{{"l1", rd(0, 3*ms, ms), rd(10*ms, 3*ms, ms)}},
			wantStart: 4 * ms, wantEnd: 12 * ms, wantRP: 8 * ms, wantUnc: 4 * ms,
			startNode: "l1", endNode: "l1",
		},
		{
			name: "start and end set by different nodes",
			targets: []Target{
				{"l1", rd(0, 0, ms), rd(20*ms, -2*ms, ms)},                     // start 1ms, end 17ms
				{"l2", rd(ms, 2*ms, 500*time.Microsecond), rd(30*ms, 0, 2*ms)}, // start 3.5ms, end 28ms
				{"l3", rd(-5*ms, 5*ms, 0), rd(25*ms, -5*ms, 0)},                // start 0, end 20ms
			},
			wantStart: 3500 * time.Microsecond, wantEnd: 17 * ms,
			wantRP: 10250 * time.Microsecond, wantUnc: 6750 * time.Microsecond,
			startNode: "l2", endNode: "l1",
		},
		{
			name:      "odd nanosecond width: mid-time down, uncertainty up",
			targets:   []Target{{"l1", rd(0, 0, 0), rd(3, 0, 0)}},
			wantStart: 0, wantEnd: 3, wantRP: 1, wantUnc: 2,
			startNode: "l1", endNode: "l1",
		},
		{
			name:      "target clock bound shrinks both edges",
			targets:   []Target{{"l1", rd(0, 0, ms), rd(10*ms, 0, ms)}},
			opts:      Options{TargetClockBound: 2 * ms},
			wantStart: 3 * ms, wantEnd: 7 * ms, wantRP: 5 * ms, wantUnc: 2 * ms,
			startNode: "l1", endNode: "l1",
		},
		{
			name:      "exactly the minimum width is valid",
			targets:   []Target{{"l1", rd(0, 0, ms), rd(3*ms, 0, ms)}},
			opts:      Options{MinWidth: ms},
			wantStart: ms, wantEnd: 2 * ms, wantRP: 1500 * time.Microsecond, wantUnc: 500 * time.Microsecond,
			startNode: "l1", endNode: "l1",
		},
		{
			name: "equal bounds, ties name the first node",
			targets: []Target{
				{"a", rd(0, 0, ms), rd(10*ms, 0, ms)},
				{"b", rd(0, 0, ms), rd(10*ms, 0, ms)},
			},
			wantStart: ms, wantEnd: 9 * ms, wantRP: 5 * ms, wantUnc: 4 * ms,
			startNode: "a", endNode: "a",
		},
		{
			name: "huge skews cancel through the offsets",
			targets: []Target{
				{"past", rd(-century, century, ms), rd(-century+10*ms, century, ms)},
				{"future", rd(century, -century, ms), rd(century+10*ms, -century, ms)},
			},
			wantStart: ms, wantEnd: 9 * ms, wantRP: 5 * ms, wantUnc: 4 * ms,
			startNode: "past", endNode: "past",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := Compute(tt.targets, tt.opts)
			if err != nil {
				t.Fatalf("Compute: %v", err)
			}
			check := func(what string, got time.Time, want time.Duration) {
				t.Helper()
				if !got.Equal(t0.Add(want)) {
					t.Errorf("%s = t0%+v, want t0%+v", what, got.Sub(t0), want)
				}
			}
			check("Start", w.Start, tt.wantStart)
			check("End", w.End, tt.wantEnd)
			check("RestorePoint", w.RestorePoint, tt.wantRP)
			if w.Uncertainty != tt.wantUnc {
				t.Errorf("Uncertainty = %v, want %v", w.Uncertainty, tt.wantUnc)
			}
			if w.Width != tt.wantEnd-tt.wantStart {
				t.Errorf("Width = %v, want %v", w.Width, tt.wantEnd-tt.wantStart)
			}
			if w.StartNode != tt.startNode || w.EndNode != tt.endNode {
				t.Errorf("set by %s/%s, want %s/%s", w.StartNode, w.EndNode, tt.startNode, tt.endNode)
			}
		})
	}
}

func TestComputeInvalidWindow(t *testing.T) {
	tests := []struct {
		name      string
		targets   []Target
		opts      Options
		wantWidth time.Duration
		wantMsg   string
	}{
		{
			name: "negative width names both nodes and figures",
			targets: []Target{
				{"ledger-1", rd(0, 0, 100*time.Microsecond), rd(5*ms, -2*ms, 200*time.Microsecond)},
				{"ledger-2", rd(ms, 3100*time.Microsecond, 100*time.Microsecond), rd(9*ms, 0, 0)},
			},
			opts:      Options{MinWidth: ms},
			wantWidth: -1400 * time.Microsecond,
			wantMsg: "window is -1.4ms wide: " +
				"start 2026-11-24T12:00:00.004200000Z set by ledger-2 (ack 2026-11-24T12:00:00.001000000Z + θ 3.1ms + ε 0.1ms), " +
				"end 2026-11-24T12:00:00.002800000Z set by ledger-1 (unpause 2026-11-24T12:00:00.005000000Z + θ -2ms − ε 0.2ms); need ≥ 1ms",
		},
		{
			name:      "exactly zero width with no minimum",
			targets:   []Target{{"l1", rd(0, 0, ms), rd(2*ms, 0, ms)}},
			wantWidth: 0,
			wantMsg: "window is 0ns wide: start 2026-11-24T12:00:00.001000000Z set by l1 (ack 2026-11-24T12:00:00.000000000Z + θ 0ns + ε 1ms), " +
				"end 2026-11-24T12:00:00.001000000Z set by l1 (unpause 2026-11-24T12:00:00.002000000Z + θ 0ns − ε 1ms); need > 0",
		},
		{
			name:      "one nanosecond under the minimum",
			targets:   []Target{{"l1", rd(0, 0, ms), rd(3*ms-1, 0, ms)}},
			opts:      Options{MinWidth: ms},
			wantWidth: ms - 1,
			wantMsg:   "window is 0.999999ms wide",
		},
		{
			name:      "target clock bound closes the window",
			targets:   []Target{{"l1", rd(0, 0, 0), rd(4*ms, 0, 0)}},
			opts:      Options{TargetClockBound: 2 * ms},
			wantWidth: 0,
			wantMsg:   "+ β 2ms), end 2026-11-24T12:00:00.002000000Z set by l1 (unpause 2026-11-24T12:00:00.004000000Z + θ 0ns − ε 0ns − β 2ms); need > 0",
		},
		{
			name: "disjoint pauses",
			targets: []Target{
				{"a", rd(0, 0, 0), rd(10*ms, 0, 0)},
				{"b", rd(20*ms, 0, 0), rd(30*ms, 0, 0)},
			},
			wantWidth: -10 * ms,
			wantMsg:   "window is -10ms wide: start 2026-11-24T12:00:00.020000000Z set by b",
		},
		{
			name:      "wider than a duration holds",
			targets:   []Target{{"l1", rd(0, 0, 0), rd(ms, math.MaxInt64, 0)}},
			wantWidth: math.MaxInt64,
			wantMsg:   "window is wider than the largest duration (292 years): readings are implausible: start",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := Compute(tt.targets, tt.opts)
			if err == nil {
				t.Fatalf("Compute = %+v, want an invalid window", w)
			}
			if !errors.Is(err, ErrInvalidWindow) || errors.Is(err, ErrInvalidInput) {
				t.Errorf("error %v: want ErrInvalidWindow only", err)
			}
			var iw *InvalidWindowError
			if !errors.As(err, &iw) {
				t.Fatalf("error %T is not *InvalidWindowError", err)
			}
			if iw.Window.Width != tt.wantWidth {
				t.Errorf("Width = %v, want %v", iw.Window.Width, tt.wantWidth)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error\n %s\ndoes not contain\n %s", err, tt.wantMsg)
			}
		})
	}
}

func TestComputeInvalidInput(t *testing.T) {
	good := Target{"l1", rd(0, 0, 0), rd(10*ms, 0, 0)}
	tests := []struct {
		name    string
		targets []Target
		opts    Options
		want    []string
	}{
		{"no targets", nil, Options{}, []string{"no targets"}},
		{"unnamed", []Target{{"", good.Ack, good.Unpause}}, Options{}, []string{"target #1 has no node name"}},
		{"duplicate", []Target{good, {"l2", good.Ack, good.Unpause}, good}, Options{}, []string{"node l1 listed twice (targets #1 and #3)"}},
		{"zero ack time", []Target{{"l1", Reading{}, good.Unpause}}, Options{}, []string{"node l1: ack reading has no local time"}},
		{"zero unpause time", []Target{{"l1", good.Ack, Reading{Offset: ms}}}, Options{}, []string{"node l1: unpause reading has no local time"}},
		{"negative bound", []Target{{"l1", good.Ack, rd(10*ms, 0, -ms)}}, Options{}, []string{"node l1: unpause error bound ε is negative (-1ms)"}},
		{"negative options", []Target{good}, Options{MinWidth: -ms, TargetClockBound: -2 * ms}, []string{
			"minimum width is negative (-1ms)", "target clock bound β is negative (-2ms)",
		}},
		{"every problem reported", []Target{{"", Reading{}, rd(0, 0, -1)}}, Options{MinWidth: -1}, []string{
			"minimum width is negative", "target #1 has no node name",
			"node target #1: ack reading has no local time", "node target #1: unpause error bound ε is negative (-1ns)",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := Compute(tt.targets, tt.opts)
			if err == nil {
				t.Fatalf("Compute = %+v, want error", w)
			}
			if !errors.Is(err, ErrInvalidInput) || errors.Is(err, ErrInvalidWindow) {
				t.Errorf("error %v: want ErrInvalidInput only", err)
			}
			for _, part := range tt.want {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("error %q does not contain %q", err, part)
				}
			}
			if (w != Window{}) {
				t.Errorf("Compute returned a window %+v alongside an input error", w)
			}
		})
	}
}

func TestOptions(t *testing.T) {
	if err := DefaultOptions().Validate(); err != nil {
		t.Errorf("DefaultOptions().Validate() = %v", err)
	}
	if got := DefaultOptions().MinWidth; got != DefaultMinWidth {
		t.Errorf("default MinWidth = %v, want %v", got, DefaultMinWidth)
	}
	err := Options{MinWidth: -1, TargetClockBound: -1}.Validate()
	if !errors.Is(err, ErrInvalidInput) || !strings.Contains(err.Error(), "minimum width") || !strings.Contains(err.Error(), "β") {
		t.Errorf("Validate() = %v, want both problems", err)
	}
}

func TestMinHold(t *testing.T) {
	tests := []struct {
		name                        string
		requested, maxBound, margin time.Duration
		want                        time.Duration
	}{
		{"bounds dominate", 0, 5 * ms, ms, 11 * ms},
		{"request dominates", 10 * time.Second, 5 * ms, ms, 10 * time.Second},
		{"equal", 11 * ms, 5 * ms, ms, 11 * ms},
		{"zero bound", 0, 0, ms, ms},
		{"negatives count as zero", -time.Second, -ms, -ms, 0},
		{"saturates", 0, math.MaxInt64 / 2, math.MaxInt64, math.MaxInt64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := MinHold(tt.requested, tt.maxBound, tt.margin); got != tt.want {
				t.Errorf("MinHold(%v, %v, %v) = %v, want %v", tt.requested, tt.maxBound, tt.margin, got, tt.want)
			}
		})
	}
}

func TestFromEstimate(t *testing.T) {
	est := clock.Estimate{
		Offset:      -3 * ms,
		ErrorBound:  ms,
		MaxDriftPPM: 50,
		Status:      clock.Synchronized,
		AsOf:        t0.Add(-10 * time.Second),
	}
	local := time.Now() // carries a monotonic reading, which must not survive
	est.AsOf = local.Add(-10 * time.Second)
	r := FromEstimate(local, est)
	if r.Offset != -3*ms || r.Bound != 1500*time.Microsecond {
		t.Errorf("FromEstimate = θ %v ε %v, want θ -3ms ε 1.5ms (1ms + 50ppm × 10s)", r.Offset, r.Bound)
	}
	if r.Local != local.Round(0) {
		t.Errorf("Local %v still carries a monotonic reading", r.Local)
	}
	if got, want := r.Earliest(), local.Round(0).Add(-4500*time.Microsecond); !got.Equal(want) {
		t.Errorf("Earliest = %v, want %v", got, want)
	}
	if got, want := r.Latest(), local.Round(0).Add(-1500*time.Microsecond); !got.Equal(want) {
		t.Errorf("Latest = %v, want %v", got, want)
	}
}

func BenchmarkCompute100(b *testing.B) {
	targets := make([]Target, 100)
	for i := range targets {
		skew := time.Duration(i) * 37 * time.Microsecond
		targets[i] = Target{
			Node:    "node-" + string(rune('a'+i%26)) + string(rune('a'+i/26)),
			Ack:     rd(skew, -skew, 200*time.Microsecond),
			Unpause: rd(50*ms+skew, -skew, 300*time.Microsecond),
		}
	}
	opts := DefaultOptions()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compute(targets, opts); err != nil {
			b.Fatal(err)
		}
	}
}
