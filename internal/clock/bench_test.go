package clock

import (
	"context"
	"testing"
)

// BenchmarkSampleRound is the cost of one sampling round against three
// loopback servers (queried concurrently).
func BenchmarkSampleRound(b *testing.B) {
	servers := addrs(startNTP(b, nil), startNTP(b, nil), startNTP(b, nil))
	s := newSampler(b, servers, nil)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if e := s.SampleOnce(ctx); e.Status != Synchronized {
			b.Fatalf("status %v: %s", e.Status, e.Reason)
		}
	}
}

// BenchmarkIntersect is the selection alone, for 5 sources.
func BenchmarkIntersect(b *testing.B) {
	in := []Interval{iv(-1000, 1000), iv(0, 2000), iv(-2000, 0), iv(9000, 10000), iv(-10000, -9000)}
	for b.Loop() {
		if _, _, _, ok := Intersect(in); !ok {
			b.Fatal("no majority")
		}
	}
}
