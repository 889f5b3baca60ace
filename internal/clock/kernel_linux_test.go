//go:build linux

package clock

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestKernelFromTimex(t *testing.T) {
	tests := []struct {
		name string
		tx   unix.Timex
		want KernelClock
	}{
		{"µs offset", unix.Timex{Freq: -12 << 16, Tick: 10000, Offset: 1500, Status: 0x1},
			KernelClock{FreqPPM: -12, TickUS: 10000, NominalTickUS: 10000, PendingOffset: 1500 * time.Microsecond, Status: 0x1}},
		{"ns offset (STA_NANO)", unix.Timex{Freq: 1 << 15, Tick: 10833, Offset: 1500, Status: 0x2000 | 0x40},
			KernelClock{FreqPPM: 0.5, TickUS: 10833, NominalTickUS: 10000, PendingOffset: 1500, Status: 0x2040}},
	}
	for _, tc := range tests {
		if got := kernelFromTimex(&tc.tx); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
	if !(KernelClock{Status: 0x2040}).Unsynchronized() {
		t.Error("STA_UNSYNC not seen")
	}
}
