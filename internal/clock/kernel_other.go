//go:build !linux

package clock

// SystemKernel is nil where adjtimex does not exist: estimates report the
// slew rate as unknown and grow at the max drift only.
var SystemKernel Kernel
