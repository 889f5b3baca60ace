package clock

import "errors"

// Sentinel errors. A source's Reason is the text of one of the sample
// errors; callers classify with errors.Is.
var (
	ErrInvalidConfig = errors.New("invalid clock config")

	// Sample errors.
	ErrUnreachable   = errors.New("unreachable")
	ErrBadPacket     = errors.New("bad packet")
	ErrKissOfDeath   = errors.New("kiss-of-death")
	ErrLeapNotInSync = errors.New("leap indicator 3 (server clock not synchronized)")
	ErrBadStratum    = errors.New("unusable stratum")
	ErrDispersion    = errors.New("root dispersion too large")
	ErrInvalidSample = errors.New("invalid sample")

	// Stamp errors.
	ErrNoEstimate      = errors.New("no clock estimate")
	ErrNotSynchronized = errors.New("clock not synchronized")
)
