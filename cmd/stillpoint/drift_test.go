package main

import (
	"strings"
	"testing"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// drift's FALSETICKERS column names the servers an agent voted out, counts
// them when only gossip was heard, and says "-" for none (a server without
// a majority is not a falseticker).
func TestFalsetickerCell(t *testing.T) {
	src := func(addr string, v pb.SourceVerdict) *pb.ClockSource {
		return &pb.ClockSource{Address: addr, Verdict: v}
	}
	tests := []struct {
		name string
		ck   *pb.ClockEstimate
		want string
	}{
		{"none", &pb.ClockEstimate{Sources: []*pb.ClockSource{src("a:123", pb.SourceVerdict_SOURCE_VERDICT_SELECTED)}}, "-"},
		{"named", &pb.ClockEstimate{Falsetickers: 2, Sources: []*pb.ClockSource{
			src("a:123", pb.SourceVerdict_SOURCE_VERDICT_FALSETICKER), src("b:123", pb.SourceVerdict_SOURCE_VERDICT_SELECTED),
			src("c:123", pb.SourceVerdict_SOURCE_VERDICT_FALSETICKER)}}, "a:123,c:123"},
		{"no majority is not a falseticker", &pb.ClockEstimate{Sources: []*pb.ClockSource{src("a:123", pb.SourceVerdict_SOURCE_VERDICT_NO_MAJORITY)}}, "-"},
		{"gossip count only", &pb.ClockEstimate{Falsetickers: 1}, "1"},
		{"no clock", nil, "-"},
	}
	for _, tc := range tests {
		if got := falsetickerCell(tc.ck); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

// drift --cluster with a name no agent ever joined says the cluster is
// unknown and lists the known ones, instead of claiming the pool is empty.
func TestDriftUnknownClusterListsKnownOnes(t *testing.T) {
	c := membersCluster(t)
	addr := "--addr=" + c.Server(0).GRPCAddr()
	_, err := runCoordCLI(t, "drift", "--cluster", "nosuch", addr)
	if err == nil || !strings.Contains(err.Error(), `cluster "nosuch" is unknown`) || !strings.Contains(err.Error(), "known clusters: auditor, ledger") {
		t.Fatalf("drift --cluster nosuch: %v", err)
	}
	if code := exitCode(err); code != exitFailed {
		t.Errorf("exit %d, want %d", code, exitFailed)
	}
	_, err = runCoordCLI(t, "drift", "--cluster", "nosuch", "--stale", "-o", "json", addr)
	if err == nil || !strings.Contains(err.Error(), `cluster "nosuch" is unknown`) {
		t.Fatalf("drift --cluster nosuch --stale -o json: %v", err)
	}
}

// pause --cluster with an unknown name says so and lists the known ones;
// the CLI learns it from the refusal's ErrorInfo reason, not its text.
func TestPauseUnknownClusterListsKnownOnes(t *testing.T) {
	c := membersCluster(t)
	_, err := runCoordCLI(t, "pause", "--cluster", "nosuch", "--addr", c.Server(0).GRPCAddr())
	if err == nil || !strings.Contains(err.Error(), `cluster "nosuch" is unknown`) || !strings.Contains(err.Error(), "known clusters: auditor, ledger") {
		t.Fatalf("pause --cluster nosuch: %v", err)
	}
	if code := exitCode(err); code != exitFailed {
		t.Errorf("exit %d, want %d", code, exitFailed)
	}
}
