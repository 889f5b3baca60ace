package clock

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func iv(lo, hi time.Duration) Interval { return Interval{Lo: lo, Hi: hi} }

func TestIntersect(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name   string
		in     []Interval
		lo, hi time.Duration
		chosen []int
		ok     bool
	}{
		{"single", []Interval{iv(1*ms, 3*ms)}, 1 * ms, 3 * ms, []int{0}, true},
		{"two agree, liar far", []Interval{iv(39*ms, 41*ms), iv(38*ms, 40500*time.Microsecond), iv(600*ms, 602*ms)}, 39 * ms, 40500 * time.Microsecond, []int{0, 1}, true},
		{"all three overlap: hull of the 2-of-3 region", []Interval{iv(0, 10*ms), iv(5*ms, 15*ms), iv(8*ms, 20*ms)}, 5 * ms, 15 * ms, []int{0, 1, 2}, true},
		// The three-way overlap is [44,45] but the truth may be 40 (two
		// honest intervals): the majority hull keeps every candidate.
		{"liar overlapping one honest interval", []Interval{iv(30*ms, 50*ms), iv(35*ms, 45*ms), iv(44*ms, 60*ms)}, 35 * ms, 50 * ms, []int{0, 1, 2}, true},
		{"no majority of three", []Interval{iv(0, 1*ms), iv(2*ms, 3*ms), iv(4*ms, 5*ms)}, 0, 0, nil, false},
		{"two disagree", []Interval{iv(0, 1*ms), iv(2*ms, 3*ms)}, 0, 0, nil, false},
		{"touching endpoints share a point", []Interval{iv(0, 1*ms), iv(1*ms, 2*ms)}, 1 * ms, 1 * ms, []int{0, 1}, true},
		{"malformed interval counts but is never chosen", []Interval{iv(0, 2*ms), iv(1*ms, 3*ms), iv(5*ms, 4*ms)}, 1 * ms, 2 * ms, []int{0, 1}, true},
		{"empty", nil, 0, 0, nil, false},
		{"five: 3 agree", []Interval{iv(-1*ms, 1*ms), iv(0, 2*ms), iv(-2*ms, 0), iv(9*ms, 10*ms), iv(-10*ms, -9*ms)}, 0, 0, []int{0, 1, 2}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lo, hi, chosen, ok := Intersect(tc.in)
			if ok != tc.ok || lo != tc.lo || hi != tc.hi || !slices.Equal(chosen, tc.chosen) {
				t.Fatalf("Intersect = [%v, %v] %v %v, want [%v, %v] %v %v", lo, hi, chosen, ok, tc.lo, tc.hi, tc.chosen, tc.ok)
			}
		})
	}
}

// coverage counts the intervals containing d.
func coverage(in []Interval, d time.Duration) int {
	n := 0
	for _, v := range in {
		if v.Lo <= v.Hi && v.Contains(d) {
			n++
		}
	}
	return n
}

// TestIntersectProperty: random interval sets in which a majority contain
// the truth; the result must contain the truth, choose every interval that
// contains it, and agree with a brute-force scan of every endpoint.
func TestIntersectProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 20000 {
		n := 1 + rng.IntN(9)
		need := n/2 + 1
		truth := time.Duration(rng.Int64N(2000) - 1000)
		good := need + rng.IntN(n-need+1)
		in := make([]Interval, 0, n)
		for range good {
			a, b := time.Duration(rng.Int64N(300)), time.Duration(rng.Int64N(300))
			in = append(in, iv(truth-a, truth+b))
		}
		for range n - good {
			c := time.Duration(rng.Int64N(4000) - 2000)
			w := time.Duration(rng.Int64N(400))
			in = append(in, iv(c-w, c+w))
		}
		rng.Shuffle(len(in), func(i, j int) { in[i], in[j] = in[j], in[i] })

		lo, hi, chosen, ok := Intersect(in)
		if !ok || lo > truth || truth > hi {
			t.Fatalf("round %d: Intersect(%v) = [%v, %v] ok=%v, truth %v outside", round, in, lo, hi, ok, truth)
		}
		for i, v := range in {
			if v.Contains(truth) && !slices.Contains(chosen, i) {
				t.Fatalf("round %d: interval %d %v contains the truth but was not chosen (%v)", round, i, v, chosen)
			}
		}
		// Brute force: majority coverage changes only at endpoints.
		wantLo, wantHi, found := time.Duration(0), time.Duration(0), false
		for _, v := range in {
			for _, p := range []time.Duration{v.Lo, v.Hi} {
				if coverage(in, p) >= need {
					if !found || p < wantLo {
						wantLo = p
					}
					if !found || p > wantHi {
						wantHi = p
					}
					found = true
				}
			}
		}
		if lo != wantLo || hi != wantHi {
			t.Fatalf("round %d: Intersect(%v) = [%v, %v], brute force [%v, %v]", round, in, lo, hi, wantLo, wantHi)
		}
	}
}
