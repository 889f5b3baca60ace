package clock

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

func TestKernelSlewPPM(t *testing.T) {
	tests := []struct {
		name string
		k    KernelClock
		want float64
	}{
		{"steady", KernelClock{TickUS: 10000, NominalTickUS: 10000}, 0},
		{"chrony trimming the oscillator", KernelClock{FreqPPM: -12.5, TickUS: 10000, NominalTickUS: 10000}, 12.5},
		{"chrony slewing at its max rate via the tick", KernelClock{FreqPPM: 500, TickUS: 10833, NominalTickUS: 10000}, 500 + 83300},
		{"tick below nominal", KernelClock{TickUS: 9990, NominalTickUS: 10000}, 1000},
	}
	for _, tc := range tests {
		if got := tc.k.SlewPPM(); got != tc.want {
			t.Errorf("%s: SlewPPM = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// The bound between a sample and a stamp grows at max drift plus the slew
// rate the kernel showed, integrated over the reads, plus every offset
// handed to the kernel to slew; the estimate reports both, and a kernel
// that cannot be read leaves the rate unknown: not synchronized.
func TestSlewingGrowsTheBound(t *testing.T) {
	clk := NewManual(time.Now())
	servers := addrs(startNTPOn(t, clk, nil), startNTPOn(t, clk, nil), startNTPOn(t, clk, nil))
	kern := &fakeKernel{}
	kern.set(KernelClock{FreqPPM: 20, TickUS: 10000, NominalTickUS: 10000})
	s := newSampler(t, servers, func(c *Config) { c.Clock = clk; c.Kernel = kern; c.PollInterval = time.Minute })
	e := s.SampleOnce(context.Background())
	if e.Status != Synchronized || e.SlewPPM != 20 || e.Kernel == nil || e.Kernel.FreqPPM != 20 {
		t.Fatalf("after the round: %v slew %v kernel %+v", e.Status, e.SlewPPM, e.Kernel)
	}
	base := e.ErrorBound

	// chrony slews hard, seen at one read one second after the round,
	// then calms down: the spike counts for the intervals on both sides of
	// that read (the rate between two reads is the larger of the two), not
	// for the rest of the poll.
	kern.set(KernelClock{FreqPPM: 20, TickUS: 10100, NominalTickUS: 10000, Status: staUnsync}) // +10,000 ppm
	clk.Advance(time.Second)
	s.Current()
	kern.set(KernelClock{FreqPPM: 20, TickUS: 10000, NominalTickUS: 10000})
	clk.Advance(time.Second)
	s.Current()
	clk.Advance(8 * time.Second)
	e = s.Current()
	slewed := drift(2*time.Second, 10020) + drift(8*time.Second, 20)
	if e.SlewPPM != 20 || (e.SlewOffset-slewed).Abs() > 2 {
		t.Fatalf("slew rate %v ppm, slewed %v: want 20 ppm now and %v slewed", e.SlewPPM, e.SlewOffset, slewed)
	}
	if got, want := e.BoundAt(clk.Now()), base+drift(10*time.Second, DefaultMaxDriftPPM)+e.SlewOffset; got != want {
		t.Fatalf("bound after 10 s %v, want %v (50 ppm alone would give %v)", got, want, base+drift(10*time.Second, DefaultMaxDriftPPM))
	}
	// Past the last read, the rate then in force is extrapolated.
	if got, want := e.BoundAt(clk.Now().Add(time.Second)), base+drift(11*time.Second, DefaultMaxDriftPPM)+e.SlewOffset+drift(time.Second, 20); got != want {
		t.Fatalf("bound 1 s past the last read %v, want %v", got, want)
	}

	// ntpd hands the kernel PLL 3 ms to slew, then another 1 ms.
	kern.set(KernelClock{FreqPPM: 20, TickUS: 10000, NominalTickUS: 10000, PendingOffset: 3 * time.Millisecond, Status: 0x2001})
	s.Current()
	kern.set(KernelClock{FreqPPM: 20, TickUS: 10000, NominalTickUS: 10000, PendingOffset: time.Millisecond})
	s.Current()
	kern.set(KernelClock{FreqPPM: 20, TickUS: 10000, NominalTickUS: 10000, PendingOffset: 2 * time.Millisecond})
	prev := e.SlewOffset
	e = s.Current()
	if e.SlewOffset-prev != 4*time.Millisecond {
		t.Fatalf("slew offset grew by %v, want 3 ms + the 1 ms handed over later", e.SlewOffset-prev)
	}
	if got, want := e.BoundAt(clk.Now()), base+drift(10*time.Second, DefaultMaxDriftPPM)+e.SlewOffset; got != want {
		t.Fatalf("bound %v, want %v", got, want)
	}
	p := e.Proto(clk.Now())
	if p.GetSlewPpm() != 20 || p.GetSlewOffsetNs() != int64(e.SlewOffset) || p.GetKernel().GetPendingOffsetNs() != int64(2*time.Millisecond) ||
		p.GetErrorBoundNs() != int64(e.BoundAt(clk.Now())) {
		t.Fatalf("proto: slew %v offset %d kernel %+v bound %d", p.GetSlewPpm(), p.GetSlewOffsetNs(), p.GetKernel(), p.GetErrorBoundNs())
	}
	back, err := FromProto(p)
	if err != nil || back.BoundAt(clk.Now()) != e.BoundAt(clk.Now()) || back.BoundAt(clk.Now().Add(time.Second)) != e.BoundAt(clk.Now().Add(time.Second)) {
		t.Fatalf("decoded: %v, bound %v / %v, want %v / %v", err, back.BoundAt(clk.Now()), back.BoundAt(clk.Now().Add(time.Second)),
			e.BoundAt(clk.Now()), e.BoundAt(clk.Now().Add(time.Second)))
	}

	// A fresh round starts the tracking over.
	e = s.SampleOnce(context.Background())
	if e.SlewPPM != 20 || e.SlewOffset != 2*time.Millisecond {
		t.Fatalf("after a new round: slew %v offset %v, want 20 ppm and the 2 ms still pending", e.SlewPPM, e.SlewOffset)
	}

	kern.fail(errors.New("adjtimex: operation not permitted"))
	e = s.Current()
	if e.Status != Unsynchronized || !strings.Contains(e.Reason, "slewing") || !strings.Contains(e.Reason, "operation not permitted") {
		t.Fatalf("kernel unreadable: %v %q", e.Status, e.Reason)
	}
	if err := ValidateStamp(e.Stamp(clk.Now())); !errors.Is(err, ErrNotSynchronized) {
		t.Fatalf("a stamp under an unknown slew rate validated: %v", err)
	}
	if st := e.Proto(clk.Now()).GetStatus(); st != pb.ClockStatus_CLOCK_STATUS_UNSYNCHRONIZED {
		t.Fatalf("proto status %v", st)
	}
}

// Reading the host's kernel (modes 0: read only) works where the tests run.
func TestSystemKernelReads(t *testing.T) {
	if SystemKernel == nil {
		t.Skip("no adjtimex on this OS")
	}
	k, err := SystemKernel.ReadKernel()
	if err != nil {
		t.Fatalf("adjtimex read: %v", err)
	}
	if k.NominalTickUS != 10000 || k.TickUS < 9000 || k.TickUS > 11000 {
		t.Fatalf("kernel %s: implausible tick", k)
	}
}
