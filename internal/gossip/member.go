package gossip

import (
	"time"
)

// Status is a member's liveness as this pool last learned it. memberlist's
// "suspect" state is not reported: memberlist exposes it only through
// pointers into its live node table, which cannot be read race-free, so a
// suspect member stays Alive until it is declared Dead. Dead versus Left is
// best effort (the leaving member's last metadata says which); treat both
// as gone.
type Status int

// Statuses.
const (
	StatusAlive Status = iota + 1
	// StatusDead: failed its probes and was declared dead.
	StatusDead
	// StatusLeft: announced its departure (Pool.Leave).
	StatusLeft
)

func (s Status) String() string {
	switch s {
	case StatusAlive:
		return "alive"
	case StatusDead:
		return "dead"
	case StatusLeft:
		return "left"
	}
	return "unknown"
}

// Member is one pool member as last heard of.
type Member struct {
	Name string
	// Addr is the member's gossip host:port.
	Addr   string
	Status Status
	// Meta is the decoded metadata; zero when MetaErr is set.
	Meta Meta
	// MetaErr is why the member's metadata could not be decoded. The member
	// is kept (it is alive and reachable) but its meta cannot be trusted.
	MetaErr error
	// UpdatedAt is when this pool received the latest change, local time
	// with a monotonic reading.
	UpdatedAt time.Time
}

// EventKind says what happened to a member.
type EventKind int

// Event kinds.
const (
	// EventJoin: a member appeared, or came back after dead/left.
	EventJoin EventKind = iota + 1
	// EventUpdate: a live member's metadata changed.
	EventUpdate
	// EventLeave: a member was declared dead or left (see Member.Status).
	EventLeave
)

func (k EventKind) String() string {
	switch k {
	case EventJoin:
		return "join"
	case EventUpdate:
		return "update"
	case EventLeave:
		return "leave"
	}
	return "unknown"
}

// Event is one membership change, carrying the member as it is after it.
type Event struct {
	Kind   EventKind
	Member Member
}
