package gossip

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"google.golang.org/protobuf/proto"

	"github.com/stillpoint-dev/stillpoint/internal/clock"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

func fullMeta() Meta {
	return Meta{
		Role:     "ledger",
		Cluster:  "prod-ledger",
		GRPCAddr: "10.0.0.7:7001",
		Clock: ClockMeta{
			OffsetNS:     -1_234_567,
			BoundNS:      2_500_000,
			Status:       clock.Synchronized,
			AgeMS:        3_200,
			MaxDriftPPM:  50,
			LeapPending:  true,
			Falsetickers: 1,
		},
		Node:               NodeState{Reachable: true, Paused: pb.PausedState_PAUSED_STATE_PAUSED, Draining: true},
		OpID:               "op-20250101-000001",
		LeaseRemainingMS:   29_000,
		InterruptedOpID:    "op-20241231-000009",
		Incarnation:        0xdeadbeefcafef00d,
		LeasesExpired:      3,
		LastLeaseExpiredOp: "op-20241230-000002",
	}
}

func TestMetaRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		meta Meta
	}{
		{"zero", Meta{}},
		{"full", fullMeta()},
		{"unpaused stale", Meta{Role: "server", Clock: ClockMeta{Status: clock.Stale}, Node: NodeState{Paused: pb.PausedState_PAUSED_STATE_UNPAUSED}}},
		{"unsynchronized", Meta{Clock: ClockMeta{Status: clock.Unsynchronized, OffsetNS: math.MinInt64}}},
		{"disrupted", Meta{Clock: ClockMeta{Status: clock.Disrupted, BoundNS: math.MaxInt64}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := EncodeMeta(tt.meta)
			if err != nil {
				t.Fatalf("EncodeMeta: %v", err)
			}
			if b[0] != MetaVersion {
				t.Fatalf("leading byte %d, want version %d", b[0], MetaVersion)
			}
			got, err := DecodeMeta(b)
			if err != nil {
				t.Fatalf("DecodeMeta: %v", err)
			}
			if got != tt.meta {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, tt.meta)
			}
		})
	}
}

// worstMeta has every string at its limit and every number at its widest
// wire encoding.
func worstMeta() Meta {
	op := strings.Repeat("o", MaxOpIDLen)
	return Meta{
		Role:     strings.Repeat("r", MaxRoleLen),
		Cluster:  strings.Repeat("c", MaxClusterLen),
		GRPCAddr: strings.Repeat("g", MaxGRPCAddrLen),
		Clock: ClockMeta{
			OffsetNS:     math.MinInt64, // zigzag: widest
			BoundNS:      -1,            // negative int64 varint: 10 bytes
			Status:       clock.Disrupted,
			AgeMS:        -1,
			MaxDriftPPM:  math.MaxFloat64,
			LeapPending:  true,
			Falsetickers: math.MaxUint32,
		},
		Node:               NodeState{Reachable: true, Paused: pb.PausedState_PAUSED_STATE_UNPAUSED, Draining: true},
		OpID:               op,
		LeaseRemainingMS:   -1,
		InterruptedOpID:    op,
		Incarnation:        math.MaxUint64,
		LeasesExpired:      math.MaxUint64,
		LastLeaseExpiredOp: op,
		Leaving:            true,
	}
}

func TestEncodeMetaWorstCaseFits(t *testing.T) {
	m := worstMeta()
	if err := ValidateMetaLimits(strings.Repeat("n", MaxNameLen), m.Role, m.Cluster, m.GRPCAddr); err != nil {
		t.Fatalf("ValidateMetaLimits at the limits: %v", err)
	}
	b, err := EncodeMeta(m)
	if err != nil {
		t.Fatalf("EncodeMeta(worst case): %v", err)
	}
	if len(b) > memberlist.MetaMaxSize {
		t.Fatalf("worst case is %d bytes, memberlist limit %d", len(b), memberlist.MetaMaxSize)
	}
	t.Logf("worst-case meta: %d of %d bytes", len(b), memberlist.MetaMaxSize)
	got, err := DecodeMeta(b)
	if err != nil || got != m {
		t.Fatalf("worst case round trip: err %v, equal %v", err, got == m)
	}
}

func TestEncodeMetaRefusesOverLimit(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Meta)
		want   string
	}{
		{"role", func(m *Meta) { m.Role += "x" }, "role"},
		{"cluster", func(m *Meta) { m.Cluster += "x" }, "cluster"},
		{"grpc addr", func(m *Meta) { m.GRPCAddr += "x" }, "grpc address"},
		{"op id", func(m *Meta) { m.OpID += "x" }, "op id"},
		{"interrupted op id", func(m *Meta) { m.InterruptedOpID += "x" }, "interrupted op id"},
		{"last expired op", func(m *Meta) { m.LastLeaseExpiredOp += "x" }, "last lease-expired op id"},
		{"invalid utf8", func(m *Meta) { m.Role = "\xff" }, "not valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := worstMeta()
			tt.mutate(&m)
			_, err := EncodeMeta(m)
			if !errors.Is(err, ErrMetaField) {
				t.Fatalf("err = %v, want ErrMetaField", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %q does not name %q", err, tt.want)
			}
		})
	}
}

func TestValidateMetaLimits(t *testing.T) {
	long := func(n int) string { return strings.Repeat("a", n) }
	tests := []struct {
		name                     string
		node, role, cluster, rpc string
		wantNames                []string // each must appear in the error
	}{
		{"ok", "agent-1", "ledger", "prod", "10.0.0.1:7001", nil},
		{"at limits", long(MaxNameLen), long(MaxRoleLen), long(MaxClusterLen), long(MaxGRPCAddrLen), nil},
		{"empty name", "", "ledger", "prod", "", []string{"node name must not be empty"}},
		{"all too long", long(MaxNameLen + 1), long(MaxRoleLen + 1), long(MaxClusterLen + 1), long(MaxGRPCAddrLen + 1),
			[]string{"node name is 129 bytes", "role is 33 bytes", "cluster is 65 bytes", "grpc address is 161 bytes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateMetaLimits(tt.node, tt.role, tt.cluster, tt.rpc)
			if len(tt.wantNames) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrMetaField) {
				t.Fatalf("err = %v, want ErrMetaField", err)
			}
			for _, w := range tt.wantNames {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestDecodeMetaRejects(t *testing.T) {
	good, err := EncodeMeta(fullMeta())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"nil", nil, ErrMetaEmpty},
		{"empty", []byte{}, ErrMetaEmpty},
		{"version 0", append([]byte{0}, good[1:]...), ErrMetaVersion},
		{"version 2", append([]byte{2}, good[1:]...), ErrMetaVersion},
		{"json", []byte(`{"role":"ledger"}`), ErrMetaVersion},
		{"truncated inside a string", good[:12], ErrMetaCorrupt},
		{"truncated inside a tag", good[:len(good)-2], ErrMetaCorrupt},
		{"bad tag", []byte{MetaVersion, 0xff, 0xff, 0xff}, ErrMetaCorrupt},
		{"invalid utf8 string", []byte{MetaVersion, 0x0a, 0x01, 0xff}, ErrMetaCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := DecodeMeta(tt.in)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if m != (Meta{}) {
				t.Fatalf("meta not zero on error: %+v", m)
			}
		})
	}
}

func TestDecodeMetaSkipsUnknownFields(t *testing.T) {
	b, err := EncodeMeta(Meta{Role: "ledger"})
	if err != nil {
		t.Fatal(err)
	}
	// Field 100, varint 7: what a newer encoder might add.
	b = append(b, 0xa0, 0x06, 0x07)
	m, err := DecodeMeta(b)
	if err != nil || m.Role != "ledger" {
		t.Fatalf("DecodeMeta with an unknown field: %+v, %v", m, err)
	}
}

func TestClockMetaFrom(t *testing.T) {
	asOf := time.Now()
	e := clock.Estimate{
		Offset:      -3 * time.Millisecond,
		ErrorBound:  2 * time.Millisecond,
		MaxDriftPPM: 50,
		Status:      clock.Synchronized,
		AsOf:        asOf,
		LeapPending: true,
		Sources: []clock.Source{
			{Verdict: clock.Selected}, {Verdict: clock.Falseticker}, {Verdict: clock.Falseticker}, {Verdict: clock.Unreachable},
		},
	}
	got := ClockMetaFrom(e, asOf.Add(10*time.Second))
	want := ClockMeta{
		OffsetNS:     int64(-3 * time.Millisecond),
		BoundNS:      int64(2*time.Millisecond + 500*time.Microsecond), // +50ppm of 10s
		Status:       clock.Synchronized,
		AgeMS:        10_000,
		MaxDriftPPM:  50,
		LeapPending:  true,
		Falsetickers: 2,
	}
	if got != want {
		t.Fatalf("ClockMetaFrom:\n got %+v\nwant %+v", got, want)
	}
}

func TestNewIncarnationDiffers(t *testing.T) {
	seen := make(map[uint64]bool)
	for range 100 {
		v := NewIncarnation()
		if v == 0 || seen[v] {
			t.Fatalf("NewIncarnation returned %d (zero or repeated)", v)
		}
		seen[v] = true
	}
}

func FuzzDecodeMeta(f *testing.F) {
	for _, m := range []Meta{{}, fullMeta(), worstMeta()} {
		b, err := EncodeMeta(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{MetaVersion})
	f.Add([]byte{MetaVersion, 0xff})
	f.Add([]byte{2, 0x0a, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMeta(b)
		if err != nil {
			return
		}
		// Whatever decodes must re-encode (if within limits) and decode to
		// the same value.
		again, err := EncodeMeta(m)
		if err != nil {
			return
		}
		m2, err := DecodeMeta(again)
		if err != nil {
			t.Fatalf("re-encoded meta does not decode: %v", err)
		}
		if m2 != m && !(math.IsNaN(m.Clock.MaxDriftPPM) && math.IsNaN(m2.Clock.MaxDriftPPM)) {
			t.Fatalf("re-encode changed meta:\n %+v\n %+v", m, m2)
		}
	})
}

// An older agent gossiped its own PauseState enum in field 10 (0 unknown,
// 1 paused, 2 unpaused); the field is now PausedState with the same
// numbers, so those bytes keep their meaning (0 stays "not known").
func TestDecodeMetaReadsOlderAgentsPauseState(t *testing.T) {
	for wire, want := range map[pb.PausedState]pb.PausedState{
		0: pb.PausedState_PAUSED_STATE_UNSPECIFIED,
		1: pb.PausedState_PAUSED_STATE_PAUSED,
		2: pb.PausedState_PAUSED_STATE_UNPAUSED,
		3: pb.PausedState_PAUSED_STATE_UNKNOWN,
	} {
		b, err := proto.Marshal(&pb.GossipMeta{Role: "ledger", NodePaused: wire})
		if err != nil {
			t.Fatal(err)
		}
		m, err := DecodeMeta(append([]byte{MetaVersion}, b...))
		if err != nil {
			t.Fatalf("wire %d: %v", wire, err)
		}
		if m.Node.Paused != want {
			t.Errorf("wire %d decoded as %v, want %v", wire, m.Node.Paused, want)
		}
	}
}
