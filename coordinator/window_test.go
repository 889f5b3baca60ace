package coordinator

import (
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stillpoint-dev/stillpoint/internal/clock"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// windowOp is an operation over two nodes with clean readings: acks at
// t0, unpauses at t0+2s, each under a synchronized estimate ±1ms.
func windowOp(t0 time.Time) *pb.Operation {
	est := func(local time.Time) *pb.StampedTime {
		e := clock.Estimate{Status: clock.Synchronized, ErrorBound: time.Millisecond, MaxDriftPPM: 50, AsOf: local}
		return e.Stamp(local)
	}
	return &pb.Operation{OpId: "op-1", Targets: []*pb.TargetRecord{
		{Node: "ledger-1", AckedAt: est(t0), UnpauseSentAt: est(t0.Add(2 * time.Second))},
		{Node: "ledger-2", AckedAt: est(t0.Add(time.Millisecond)), UnpauseSentAt: est(t0.Add(2 * time.Second))},
	}}
}

// Every ack and unpause reading is validated before a window is computed:
// a reading under a stale, unsynchronized or disrupted estimate, with no
// estimate, with a zero bound, or with no (or a zero) local time makes the
// window invalid, naming the node, the reading and why.
func TestComputeWindowValidatesEveryReading(t *testing.T) {
	t0 := time.Date(2030, 5, 1, 12, 0, 0, 0, time.UTC)
	cfg := &pb.RuntimeConfig{MinWindowNs: int64(time.Millisecond)}
	if _, err := computeWindow(windowOp(t0), cfg); err != nil {
		t.Fatalf("clean readings: %v", err)
	}
	status := func(s pb.ClockStatus, reason string) func(*pb.TargetRecord) {
		return func(tr *pb.TargetRecord) { tr.AckedAt.Estimate.Status = s; tr.AckedAt.Estimate.Reason = reason }
	}
	tests := []struct {
		name   string
		mutate func(*pb.TargetRecord)
		want   error
		says   string
	}{
		{"stale ack", status(pb.ClockStatus_CLOCK_STATUS_STALE, "no fresh sample for 1m5s"), clock.ErrNotSynchronized, "ledger-2: ack reading: clock not synchronized: status stale: no fresh sample"},
		{"unsynchronized ack", status(pb.ClockStatus_CLOCK_STATUS_UNSYNCHRONIZED, "all 3 servers unreachable"), clock.ErrNotSynchronized, "ledger-2: ack reading: clock not synchronized: status unsynchronized"},
		{"disrupted ack", status(pb.ClockStatus_CLOCK_STATUS_DISRUPTED, "wall clock jumped +1s"), clock.ErrNotSynchronized, "status disrupted: wall clock jumped +1s"},
		{"unspecified status", status(pb.ClockStatus_CLOCK_STATUS_UNSPECIFIED, ""), clock.ErrNotSynchronized, "status unspecified"},
		{"unpause without estimate", func(tr *pb.TargetRecord) { tr.UnpauseSentAt.Estimate = nil }, clock.ErrNoEstimate, "ledger-2: unpause reading: no clock estimate"},
		{"zero bound", func(tr *pb.TargetRecord) { tr.AckedAt.Estimate.ErrorBoundNs = 0 }, clock.ErrNoEstimate, "error bound 0 ns is not positive"},
		{"nil ack local time (decodes to 1970)", func(tr *pb.TargetRecord) { tr.AckedAt.LocalTime = nil }, clock.ErrBadStamp, "ledger-2: ack reading: bad stamped time: no local time"},
		{"zero ack local time", func(tr *pb.TargetRecord) { tr.AckedAt.LocalTime = &timestamppb.Timestamp{} }, clock.ErrBadStamp, "local time is zero"},
		{"no unpause reading", func(tr *pb.TargetRecord) { tr.UnpauseSentAt = nil }, clock.ErrBadStamp, "ledger-2: unpause reading"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			op := windowOp(t0)
			tc.mutate(op.Targets[1])
			w, err := computeWindow(proto.Clone(op).(*pb.Operation), cfg)
			if err == nil {
				t.Fatalf("window computed %v – %v from a reading that cannot be certified", w.GetStart().AsTime(), w.GetEnd().AsTime())
			}
			if !errors.Is(err, ErrUncertifiedReading) || !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("error %q, want %v naming %q", err, tc.want, tc.says)
			}
		})
	}
	if _, err := computeWindow(&pb.Operation{OpId: "op-empty"}, cfg); !errors.Is(err, ErrUncertifiedReading) {
		t.Fatalf("no targets: %v", err)
	}
}
