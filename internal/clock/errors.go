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
	// ErrServerNotSynced: the server answered but has no time to give yet
	// (leap 3, stratum 0, no reference id: what a starting chronyd says).
	// Unlike a kiss-of-death it is polled normally and used as soon as it
	// synchronizes.
	ErrServerNotSynced = errors.New("server not synchronized yet")
	// ErrImpossibleReply: the server claims to have held the request longer
	// than the whole round trip (T3−T2 > T4−T1), so one of the four
	// timestamps is wrong and no bound can be certified from it.
	ErrImpossibleReply = errors.New("impossible reply")
	ErrBadStratum      = errors.New("unusable stratum")
	ErrDispersion      = errors.New("root dispersion too large")
	ErrInvalidSample   = errors.New("invalid sample")

	// Stamp errors.
	ErrNoEstimate      = errors.New("no clock estimate")
	ErrNotSynchronized = errors.New("clock not synchronized")
	ErrBadStamp        = errors.New("bad stamped time")
)
