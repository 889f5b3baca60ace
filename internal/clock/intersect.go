package clock

import (
	"slices"
	"time"
)

// Interval is a closed range of candidate offsets [Lo, Hi]: one sample's
// θ ± ε.
type Interval struct {
	Lo, Hi time.Duration
}

// Contains reports whether d lies in the interval.
func (iv Interval) Contains(d time.Duration) bool { return iv.Lo <= d && d <= iv.Hi }

// Intersect is the NTP intersection (Marzullo) algorithm for a majority:
// [lo, hi] is the smallest interval holding every offset that a majority
// (more than half) of the intervals contain. If the truth lies in a
// majority of the intervals, it lies in [lo, hi] (property-tested). chosen
// lists, in index order, the intervals that take part in some majority;
// the others are falsetickers. ok is false when no point is covered by a
// majority. Intervals with Lo > Hi are malformed, count toward the total
// and are never chosen.
func Intersect(intervals []Interval) (lo, hi time.Duration, chosen []int, ok bool) {
	return intersectQuorum(intervals, len(intervals)/2+1)
}

// intersectQuorum is Intersect requiring need intervals rather than a
// majority of those given (the sampler needs a majority of the configured
// servers, some of which may not have answered).
func intersectQuorum(intervals []Interval, need int) (lo, hi time.Duration, chosen []int, ok bool) {
	if need < 1 {
		need = 1
	}
	type edge struct {
		at    time.Duration
		delta int // +1 opens an interval, -1 closes one
	}
	edges := make([]edge, 0, 2*len(intervals))
	for _, iv := range intervals {
		if iv.Lo > iv.Hi {
			continue
		}
		edges = append(edges, edge{iv.Lo, +1}, edge{iv.Hi, -1})
	}
	// Closed intervals: at equal offsets open before close, so touching
	// intervals share their common point.
	slices.SortFunc(edges, func(a, b edge) int {
		if a.at != b.at {
			if a.at < b.at {
				return -1
			}
			return 1
		}
		return b.delta - a.delta
	})
	var regions []Interval // maximal runs covered by at least need intervals
	count := 0
	for _, e := range edges {
		if e.delta > 0 {
			count++
			if count == need {
				regions = append(regions, Interval{Lo: e.at})
			}
			continue
		}
		if count == need {
			regions[len(regions)-1].Hi = e.at
		}
		count--
	}
	if len(regions) == 0 {
		return 0, 0, nil, false
	}
	lo, hi = regions[0].Lo, regions[len(regions)-1].Hi
	for i, iv := range intervals {
		if iv.Lo > iv.Hi {
			continue
		}
		for _, r := range regions {
			if iv.Lo <= r.Hi && r.Lo <= iv.Hi {
				chosen = append(chosen, i)
				break
			}
		}
	}
	return lo, hi, chosen, true
}
