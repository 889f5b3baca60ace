package clock

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

func sampleEstimate() Estimate {
	return Estimate{
		Offset: -40 * time.Millisecond, ErrorBound: 250 * time.Microsecond, MaxDriftPPM: 50,
		Status: Synchronized, AsOf: time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC), LeapPending: true,
		Kernel:       &KernelClock{FreqPPM: -1.5, TickUS: 10000, NominalTickUS: 10000, PendingOffset: 0, Status: 0x2001},
		FailedRounds: 2, LastFailure: "all 3 servers unreachable",
		Sources: []Source{
			{Address: "127.0.0.1:1", Answered: true, Offset: -40 * time.Millisecond, RTT: 50 * time.Microsecond, Stratum: 1, ErrorBound: 30 * time.Microsecond, Verdict: Selected,
				RootDelay: 10 * time.Microsecond, RootDispersion: 20 * time.Microsecond, Precision: 29},
			{Address: "127.0.0.1:2", Answered: true, Offset: 600 * time.Millisecond, RTT: 60 * time.Microsecond, Stratum: 2, Leap: 1, ErrorBound: 40 * time.Microsecond, Verdict: Falseticker, Reason: "outside"},
			{Address: "127.0.0.1:3", Verdict: Unreachable, Reason: "unreachable: no reply within 2s"},
			{Address: "127.0.0.1:4", Answered: true, Stratum: 0, Leap: 3, Verdict: NotSynchronized, Reason: "server not synchronized yet"},
			{Address: "127.0.0.1:5", Answered: true, Stratum: 3, Verdict: NoMajority, Reason: "no 3 of 5 servers agree"},
		},
	}
}

func TestProtoRoundTrip(t *testing.T) {
	e := sampleEstimate()
	now := e.AsOf.Add(10 * time.Second)
	p := e.Proto(now)
	if p.GetErrorBoundNs() != int64(e.BoundAt(now)) || p.GetErrorBoundNs() != int64(750*time.Microsecond) {
		t.Fatalf("error_bound_ns = %d, want BoundAt(now) = 750µs", p.GetErrorBoundNs())
	}
	if p.GetAgeNs() != int64(10*time.Second) || p.GetBaseErrorBoundNs() != int64(250*time.Microsecond) {
		t.Fatalf("age_ns %d base %d", p.GetAgeNs(), p.GetBaseErrorBoundNs())
	}
	if p.GetStatus() != pb.ClockStatus_CLOCK_STATUS_SYNCHRONIZED || p.GetSources()[1].GetVerdict() != pb.SourceVerdict_SOURCE_VERDICT_FALSETICKER {
		t.Fatalf("enums: %v %v", p.GetStatus(), p.GetSources()[1].GetVerdict())
	}
	back, err := FromProto(p)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, e) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", back, e)
	}
	if _, err := FromProto(nil); !errors.Is(err, ErrNoEstimate) {
		t.Fatalf("FromProto(nil) = %v", err)
	}
	slewing := e
	slewing.SlewPPM, slewing.SlewOffset = 950, time.Millisecond
	ps := slewing.Proto(now) // 250µs + 1ms + 10 s at 1000 ppm
	if ps.GetErrorBoundNs() != int64(11250*time.Microsecond) {
		t.Fatalf("slewing: error_bound_ns %d, want 11.25ms", ps.GetErrorBoundNs())
	}
	if back, err := FromProto(ps); err != nil || back.BoundAt(now) != slewing.BoundAt(now) {
		t.Fatalf("slewing round trip: %v bound %v, want %v", err, back.BoundAt(now), slewing.BoundAt(now))
	}
	bad := e.Proto(now)
	bad.BaseErrorBoundNs = -1
	if _, err := FromProto(bad); err == nil {
		t.Fatal("FromProto accepted a negative bound")
	}
}

func TestStampAndTrueInterval(t *testing.T) {
	e := sampleEstimate()
	local := e.AsOf.Add(20 * time.Second) // bound 250µs + 1ms
	st := e.Stamp(local)
	if err := ValidateStamp(st); err != nil {
		t.Fatal(err)
	}
	lo, hi := TrueInterval(st)
	wantLo := local.Add(-40*time.Millisecond - 1250*time.Microsecond)
	wantHi := local.Add(-40*time.Millisecond + 1250*time.Microsecond)
	if !lo.Equal(wantLo) || !hi.Equal(wantHi) {
		t.Fatalf("TrueInterval = [%v, %v], want [%v, %v]", lo, hi, wantLo, wantHi)
	}
	if l2, h2 := e.TrueTime(local); !l2.Equal(lo) || !h2.Equal(hi) {
		t.Fatalf("TrueTime [%v, %v] disagrees with TrueInterval [%v, %v]", l2, h2, lo, hi)
	}
	if l, h := TrueInterval(nil); !l.IsZero() || !h.IsZero() {
		t.Fatalf("TrueInterval(nil) = %v, %v", l, h)
	}
}

func TestValidateStamp(t *testing.T) {
	good := sampleEstimate().Stamp(time.Date(2030, 1, 2, 3, 4, 6, 0, time.UTC))
	unsync := sampleEstimate()
	unsync.Status = Unsynchronized
	unsync.Reason = "no majority"
	tests := []struct {
		name string
		st   *pb.StampedTime
		want error
	}{
		{"good", good, nil},
		{"nil", nil, ErrBadStamp},
		{"no local time", &pb.StampedTime{Estimate: good.GetEstimate()}, ErrBadStamp},
		{"zero local time (decodes to 1970)", &pb.StampedTime{LocalTime: &timestamppb.Timestamp{}, Estimate: good.GetEstimate()}, ErrBadStamp},
		{"zero bound", &pb.StampedTime{LocalTime: timestamppb.Now(), Estimate: &pb.ClockEstimate{Status: pb.ClockStatus_CLOCK_STATUS_SYNCHRONIZED}}, ErrNoEstimate},
		{"stale", statusStamp(Stale), ErrNotSynchronized},
		{"disrupted", statusStamp(Disrupted), ErrNotSynchronized},
		{"unspecified", statusStamp(StatusUnspecified), ErrNotSynchronized},
		{"no estimate", &pb.StampedTime{LocalTime: timestamppb.Now()}, ErrNoEstimate},
		{"unsynchronized", unsync.Stamp(time.Now()), ErrNotSynchronized},
		{"negative bound", &pb.StampedTime{LocalTime: timestamppb.Now(), Estimate: &pb.ClockEstimate{Status: pb.ClockStatus_CLOCK_STATUS_SYNCHRONIZED, ErrorBoundNs: -5}}, ErrNoEstimate},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := ValidateStamp(tc.st); !errors.Is(err, tc.want) {
				t.Fatalf("ValidateStamp = %v, want %v", err, tc.want)
			}
		})
	}
}

func statusStamp(st Status) *pb.StampedTime {
	e := sampleEstimate()
	e.Status = st
	return e.Stamp(e.AsOf.Add(time.Second))
}
