package gossip

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/memberlist"
	"google.golang.org/protobuf/proto"

	"github.com/stillpoint-dev/stillpoint/internal/clock"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// MetaVersion is the leading byte of every encoded Meta. Adding protobuf
// fields keeps the version (old decoders skip unknown fields); bump it only
// for a change old decoders must refuse.
const MetaVersion byte = 1

// Limits on the strings that travel in Meta. Together with every numeric
// field at its widest they keep an encoded Meta under memberlist.MetaMaxSize
// (asserted by TestEncodeMetaWorstCaseFits).
const (
	MaxNameLen     = 128
	MaxRoleLen     = 32
	MaxClusterLen  = 64
	MaxGRPCAddrLen = 160
	MaxOpIDLen     = 40
)

// Errors from EncodeMeta and DecodeMeta; match with errors.Is.
var (
	ErrMetaTooLarge = errors.New("gossip metadata too large")
	ErrMetaField    = errors.New("gossip metadata field invalid")
	ErrMetaEmpty    = errors.New("gossip metadata empty")
	ErrMetaVersion  = errors.New("gossip metadata version unknown")
	ErrMetaCorrupt  = errors.New("gossip metadata corrupt")
)

// ClockMeta is the clock estimate a member gossips.
type ClockMeta struct {
	OffsetNS int64
	// BoundNS is the error bound at encode time, already grown with age.
	BoundNS int64
	Status  clock.Status
	// AgeMS is the sample's age at encode time.
	AgeMS        int64
	MaxDriftPPM  float64
	LeapPending  bool
	Falsetickers uint32
}

// ClockMetaFrom summarizes e as in force at local time now.
func ClockMetaFrom(e clock.Estimate, now time.Time) ClockMeta {
	falsetickers := uint32(0)
	for _, s := range e.Sources {
		if s.Verdict == clock.Falseticker {
			falsetickers++
		}
	}
	return ClockMeta{
		OffsetNS:     int64(e.Offset),
		BoundNS:      int64(e.BoundAt(now)),
		Status:       e.Status,
		AgeMS:        e.Age(now).Milliseconds(),
		MaxDriftPPM:  e.MaxDriftPPM,
		LeapPending:  e.LeapPending,
		Falsetickers: falsetickers,
	}
}

// NodeState is what an agent knows of its local Ledger/Auditor node.
type NodeState struct {
	// Reachable: the admin port answered the last check.
	Reachable bool
	// Paused is the gate: PAUSED or UNPAUSED, else not known (UNKNOWN, or
	// UNSPECIFIED from an older agent or a member without a node).
	Paused   pb.PausedState
	Draining bool
}

// Meta is the typed node metadata every member gossips.
type Meta struct {
	// Role is "server", "ledger", "auditor" or another label.
	Role    string
	Cluster string
	// GRPCAddr is host:port of the member's gRPC endpoint.
	GRPCAddr string
	Clock    ClockMeta
	Node     NodeState
	// OpID is the operation currently holding the node ("" when idle).
	OpID             string
	LeaseRemainingMS int64
	// InterruptedOpID is the operation during which the node came back
	// unpaused.
	InterruptedOpID string
	// Incarnation is random per agent process start (NewIncarnation): a new
	// value means the agent restarted.
	Incarnation        uint64
	LeasesExpired      uint64
	LastLeaseExpiredOp string
	// Leaving is set by Pool.Leave just before the member leaves, so peers
	// can tell a graceful departure (StatusLeft) from a failure.
	Leaving bool
}

// NewIncarnation returns a random non-zero boot id for Meta.Incarnation.
func NewIncarnation() uint64 {
	var b [8]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			// crypto/rand never fails on supported platforms (Go ≥ 1.24).
			panic(fmt.Sprintf("gossip: crypto/rand: %v", err))
		}
		if v := binary.LittleEndian.Uint64(b[:]); v != 0 {
			return v
		}
	}
}

// ValidateMetaLimits checks the configured strings a member gossips, so a
// config is refused up front rather than metadata failing to encode later.
// Every problem is reported.
func ValidateMetaLimits(name, role, cluster, grpcAddr string) error {
	var errs []error
	if name == "" {
		errs = append(errs, fmt.Errorf("%w: node name must not be empty", ErrMetaField))
	}
	errs = append(errs,
		checkField("node name", name, MaxNameLen),
		checkField("role", role, MaxRoleLen),
		checkField("cluster", cluster, MaxClusterLen),
		checkField("grpc address", grpcAddr, MaxGRPCAddrLen),
	)
	return errors.Join(errs...)
}

func checkField(what, v string, limit int) error {
	if len(v) > limit {
		return fmt.Errorf("%w: %s is %d bytes, limit %d (%.20q…)", ErrMetaField, what, len(v), limit, v)
	}
	if !utf8.ValidString(v) {
		return fmt.Errorf("%w: %s %q is not valid UTF-8", ErrMetaField, what, v)
	}
	return nil
}

// EncodeMeta encodes m behind MetaVersion. It refuses strings over their
// limits and any result over memberlist.MetaMaxSize (memberlist panics on
// larger metadata).
func EncodeMeta(m Meta) ([]byte, error) {
	if err := errors.Join(
		checkField("role", m.Role, MaxRoleLen),
		checkField("cluster", m.Cluster, MaxClusterLen),
		checkField("grpc address", m.GRPCAddr, MaxGRPCAddrLen),
		checkField("op id", m.OpID, MaxOpIDLen),
		checkField("interrupted op id", m.InterruptedOpID, MaxOpIDLen),
		checkField("last lease-expired op id", m.LastLeaseExpiredOp, MaxOpIDLen),
	); err != nil {
		return nil, err
	}
	msg := &pb.GossipMeta{
		Role:               m.Role,
		Cluster:            m.Cluster,
		GrpcAddr:           m.GRPCAddr,
		ClockOffsetNs:      m.Clock.OffsetNS,
		ClockBoundNs:       m.Clock.BoundNS,
		ClockStatus:        clock.StatusToProto(m.Clock.Status),
		ClockAgeMs:         m.Clock.AgeMS,
		ClockMaxDriftPpm:   m.Clock.MaxDriftPPM,
		ClockLeapPending:   m.Clock.LeapPending,
		ClockFalsetickers:  m.Clock.Falsetickers,
		NodeReachable:      m.Node.Reachable,
		NodePaused:         m.Node.Paused,
		NodeDraining:       m.Node.Draining,
		OpId:               m.OpID,
		LeaseRemainingMs:   m.LeaseRemainingMS,
		InterruptedOpId:    m.InterruptedOpID,
		Incarnation:        m.Incarnation,
		LeasesExpired:      m.LeasesExpired,
		LastLeaseExpiredOp: m.LastLeaseExpiredOp,
		Leaving:            m.Leaving,
	}
	buf := make([]byte, 1, 1+proto.Size(msg))
	buf[0] = MetaVersion
	buf, err := proto.MarshalOptions{Deterministic: true}.MarshalAppend(buf, msg)
	if err != nil {
		return nil, fmt.Errorf("%w: marshal: %v", ErrMetaField, err)
	}
	if len(buf) > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("%w: %d bytes, memberlist limit %d", ErrMetaTooLarge, len(buf), memberlist.MetaMaxSize)
	}
	return buf, nil
}

// DecodeMeta decodes what EncodeMeta produced. Garbage, an empty slice or an
// unknown version is an error, never a panic.
func DecodeMeta(b []byte) (Meta, error) {
	if len(b) == 0 {
		return Meta{}, ErrMetaEmpty
	}
	if b[0] != MetaVersion {
		return Meta{}, fmt.Errorf("%w: version byte %d, this build reads %d", ErrMetaVersion, b[0], MetaVersion)
	}
	var msg pb.GossipMeta
	if err := proto.Unmarshal(b[1:], &msg); err != nil {
		return Meta{}, fmt.Errorf("%w: %d bytes: %v", ErrMetaCorrupt, len(b), err)
	}
	return Meta{
		Role:     msg.GetRole(),
		Cluster:  msg.GetCluster(),
		GRPCAddr: msg.GetGrpcAddr(),
		Clock: ClockMeta{
			OffsetNS:     msg.GetClockOffsetNs(),
			BoundNS:      msg.GetClockBoundNs(),
			Status:       clock.StatusFromProto(msg.GetClockStatus()),
			AgeMS:        msg.GetClockAgeMs(),
			MaxDriftPPM:  msg.GetClockMaxDriftPpm(),
			LeapPending:  msg.GetClockLeapPending(),
			Falsetickers: msg.GetClockFalsetickers(),
		},
		Node: NodeState{
			Reachable: msg.GetNodeReachable(),
			Paused:    msg.GetNodePaused(),
			Draining:  msg.GetNodeDraining(),
		},
		OpID:               msg.GetOpId(),
		LeaseRemainingMS:   msg.GetLeaseRemainingMs(),
		InterruptedOpID:    msg.GetInterruptedOpId(),
		Incarnation:        msg.GetIncarnation(),
		LeasesExpired:      msg.GetLeasesExpired(),
		LastLeaseExpiredOp: msg.GetLastLeaseExpiredOp(),
		Leaving:            msg.GetLeaving(),
	}, nil
}
