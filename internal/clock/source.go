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
	}
	return "unspecified"
}

// Source is one NTP server's latest sample and verdict.
type Source struct {
	Address    string
	Offset     time.Duration
	RTT        time.Duration
	Stratum    uint8
	Leap       uint8
	ErrorBound time.Duration
	Verdict    Verdict
	Reason     string
}
