//go:build linux

package clock

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// SystemKernel reads this host's clock discipline with adjtimex(2), modes
// 0: a read that changes nothing and needs no privilege.
var SystemKernel Kernel = KernelFunc(readAdjtimex)

// userHZ is the tick rate adjtimex's tick field is expressed in.
const userHZ = 100

func readAdjtimex() (KernelClock, error) {
	var tx unix.Timex // Modes 0: read only
	if _, err := unix.Adjtimex(&tx); err != nil {
		return KernelClock{}, fmt.Errorf("adjtimex: %w", err)
	}
	return kernelFromTimex(&tx), nil
}

func kernelFromTimex(tx *unix.Timex) KernelClock {
	unit := time.Microsecond
	if tx.Status&staNano != 0 {
		unit = time.Nanosecond
	}
	return KernelClock{
		FreqPPM:       float64(tx.Freq) / 65536,
		TickUS:        int64(tx.Tick),
		NominalTickUS: 1_000_000 / userHZ,
		PendingOffset: time.Duration(tx.Offset) * unit,
		Status:        tx.Status,
	}
}
