package coordinator

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/stillpoint-dev/stillpoint/coordinator/fsm"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// Seeds are in testdata/fuzz/<FuzzName>; `go test -fuzz=FuzzX` explores
// further. Every fuzz target asserts an answer, not just "no panic".

func FuzzParseBearer(f *testing.F) {
	good, _ := NewTokenSecret()
	for _, s := range []string{"Bearer " + good, "bearer " + good, "Basic abc", "Bearer", "Bearer spt_", "Bearer  " + good + " ", good} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		secret, err := ParseBearer(v)
		if err != nil {
			if !errors.Is(err, ErrMalformedToken) {
				t.Fatalf("ParseBearer error %v is not ErrMalformedToken", err)
			}
			if len(v) > 8 && strings.Contains(err.Error(), v) {
				t.Fatalf("error repeats the header value: %v", err)
			}
			return
		}
		if CheckTokenSecret(secret) != nil || len(secret) != tokenSecretLen || !strings.Contains(v, secret) {
			t.Fatalf("ParseBearer(%q) accepted %q", v, secret)
		}
	})
}

func FuzzDecodeCaller(f *testing.F) {
	v, _ := encodeCaller(&pb.Caller{Actor: "token:ops/0123456789abcdef@127.0.0.1:1", TokenAccessor: "0123456789abcdef", Note: "n"})
	for _, s := range []string{v, "", "AAAA", "!!", strings.Repeat("A", 8000)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		c, err := DecodeCaller(v)
		if err == nil && c.GetActor() == "" {
			t.Fatalf("DecodeCaller(%q) accepted a caller without an actor", v)
		}
		if err == nil {
			again, err := encodeCaller(c)
			if err != nil {
				t.Fatal(err)
			}
			if c2, err := DecodeCaller(again); err != nil || !proto.Equal(c, c2) {
				t.Fatalf("round trip of %v: %v %v", c, c2, err)
			}
		}
	})
}

// fuzzRequest unmarshals b into a new T and runs validate on it: it must
// answer nil or INVALID_ARGUMENT with a message.
func fuzzRequest[T proto.Message](t *testing.T, b []byte, validate func(T) error) {
	var zero T
	req := zero.ProtoReflect().New().Interface().(T)
	if proto.Unmarshal(b, req) != nil {
		return
	}
	err := validate(req)
	if err == nil {
		return
	}
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.InvalidArgument || st.Message() == "" {
		t.Fatalf("validator answered %v for %v; want INVALID_ARGUMENT", err, req)
	}
}

func seed[T proto.Message](f *testing.F, msgs ...T) {
	for _, m := range msgs {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

func FuzzValidateCreateACLToken(f *testing.F) {
	seed(f, &pb.CreateACLTokenRequest{Name: "ops", Role: pb.ACLRole_ACL_ROLE_OPERATE, TtlMs: 3600000},
		&pb.CreateACLTokenRequest{Role: 9, TtlMs: -1}, &pb.CreateACLTokenRequest{Name: strings.Repeat("n", 200), TtlMs: 1 << 62})
	f.Fuzz(func(t *testing.T, b []byte) { fuzzRequest(t, b, ValidateCreateACLToken) })
}

func FuzzValidateRevokeACLToken(f *testing.F) {
	seed(f, &pb.RevokeACLTokenRequest{AccessorId: "0123456789abcdef"}, &pb.RevokeACLTokenRequest{AccessorId: "ZZ"})
	f.Fuzz(func(t *testing.T, b []byte) { fuzzRequest(t, b, ValidateRevokeACLToken) })
}

func FuzzValidateKeyring(f *testing.F) {
	seed(f, &pb.KeyringRequest{Op: pb.KeyringOp_KEYRING_OP_LIST},
		&pb.KeyringRequest{Op: pb.KeyringOp_KEYRING_OP_INSTALL, Key: "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="},
		&pb.KeyringRequest{Op: pb.KeyringOp_KEYRING_OP_USE, Key: "short"}, &pb.KeyringRequest{Op: 42})
	f.Fuzz(func(t *testing.T, b []byte) { fuzzRequest(t, b, ValidateKeyring) })
}

func FuzzValidateListAudit(f *testing.F) {
	seed(f, &pb.ListAuditRequest{Limit: 10}, &pb.ListAuditRequest{Limit: -1})
	f.Fuzz(func(t *testing.T, b []byte) { fuzzRequest(t, b, ValidateListAudit) })
}

func FuzzValidateStartPause(f *testing.F) {
	seed(f, &pb.StartPauseRequest{Cluster: "ledger", HoldMs: 100, RequestId: "r"},
		&pb.StartPauseRequest{Clusters: []string{"a", "a", ""}, HoldMs: -5}, &pb.StartPauseRequest{})
	f.Fuzz(func(t *testing.T, b []byte) { fuzzRequest(t, b, ValidateStartPause) })
}

func FuzzValidateUpdateConfig(f *testing.F) {
	seed(f, &pb.UpdateConfigRequest{Config: fsm.DefaultRuntimeConfig()}, &pb.UpdateConfigRequest{Config: &pb.RuntimeConfig{MarginNs: -1}})
	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzRequest(t, b, func(req *pb.UpdateConfigRequest) error {
			if err := errors.Join(fsm.ValidateRuntimeConfig(req.GetConfig()), fsm.CheckRetiredFields(req.GetConfig())); err != nil {
				return status.Error(codes.InvalidArgument, err.Error())
			}
			return nil
		})
	})
}
