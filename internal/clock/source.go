package clock

import "time"

// Verdict is what the intersection algorithm made of one source.
type Verdict int

// Verdicts.
const (
	VerdictUnspecified Verdict = iota
	Selected
	Falseticker
	Unreachable
	Invalid
	// NotSynchronized: the server answered that it has no time to give yet
	// (leap 3, stratum 0). Polled normally; used once it synchronizes.
	NotSynchronized
	// NoMajority: the server answered with a usable sample, but no
	// majority of the servers agree, so nobody can tell whether it is
	// right. Not a falseticker: that takes a majority against it.
	NoMajority
)

func (v Verdict) String() string {
	switch v {
	case Selected:
		return "selected"
	case Falseticker:
		return "falseticker"
	case Unreachable:
		return "unreachable"
	case Invalid:
		return "invalid"
	case NotSynchronized:
		return "not-synchronized"
	case NoMajority:
		return "no-majority"
	}
	return "unspecified"
}

// Source is one NTP server's latest sample and verdict.
type Source struct {
	Address string
	// Answered: the server sent a reply that parsed (the figures below are
	// from it). False for an unreachable server: it has no offset at all.
	Answered       bool
	Offset         time.Duration
	RTT            time.Duration
	Stratum        uint8
	Leap           uint8
	RootDelay      time.Duration
	RootDispersion time.Duration
	Precision      time.Duration
	// ErrorBound is RTT/2 + root delay/2 + root dispersion + precision.
	ErrorBound time.Duration
	Verdict    Verdict
	Reason     string
}
