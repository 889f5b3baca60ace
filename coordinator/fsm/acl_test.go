package fsm

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"testing"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

func testToken(id string, role pb.ACLRole) *pb.ACLToken {
	sum := sha256.Sum256([]byte("secret-" + id))
	return &pb.ACLToken{AccessorId: id, Name: "n-" + id, Role: role, SecretSha256: sum[:], CreatedAt: stamp(0)}
}

// TestACL: tokens before bootstrap are refused; bootstrap happens once;
// a token is found by its secret hash only; revocation removes it; the
// state survives a snapshot; nothing the API returns carries a hash.
func TestACL(t *testing.T) {
	a := newApplier(t)
	caller := &pb.Caller{Actor: "anonymous@127.0.0.1:1", RemoteAddr: "127.0.0.1:1"}
	if r := a.apply(&pb.CreateACLTokenCommand{Token: testToken("t1", pb.ACLRole_ACL_ROLE_READ)}); !errors.Is(r.Err, ErrACLNotBootstrapped) {
		t.Fatalf("token before bootstrap: %v", r.Err)
	}
	secret := bytes.Repeat([]byte{7}, 32)
	r := a.mustApply(&pb.ACLBootstrapCommand{Token: testToken("root", pb.ACLRole_ACL_ROLE_ADMIN), ServerSecret: secret, Caller: caller, At: stamp(0)})
	if len(r.Value.(*pb.ACLToken).GetSecretSha256()) != 0 {
		t.Fatal("bootstrap returned the secret hash")
	}
	if r := a.apply(&pb.ACLBootstrapCommand{Token: testToken("root2", pb.ACLRole_ACL_ROLE_ADMIN), ServerSecret: secret}); !errors.Is(r.Err, ErrACLBootstrapped) {
		t.Fatalf("second bootstrap: %v", r.Err)
	}
	if r := a.apply(&pb.CreateACLTokenCommand{Token: &pb.ACLToken{AccessorId: "x", Role: pb.ACLRole_ACL_ROLE_READ, SecretSha256: []byte("short")}}); !errors.Is(r.Err, ErrInvalidCommand) {
		t.Fatalf("token with a short hash: %v", r.Err)
	}
	a.mustApply(&pb.CreateACLTokenCommand{Token: testToken("t1", pb.ACLRole_ACL_ROLE_READ), Caller: caller})
	if r := a.apply(&pb.CreateACLTokenCommand{Token: testToken("t1", pb.ACLRole_ACL_ROLE_READ)}); !errors.Is(r.Err, ErrTokenExists) {
		t.Fatalf("duplicate accessor: %v", r.Err)
	}
	sum := sha256.Sum256([]byte("secret-t1"))
	if tok, ok := a.f.TokenBySecretHash(sum[:]); !ok || tok.GetAccessorId() != "t1" || tok.GetSecretSha256() != nil {
		t.Fatalf("lookup by hash = %v, %v", tok, ok)
	}
	if !a.f.ServerSecretMatches(secret) || a.f.ServerSecretMatches([]byte("nope")) {
		t.Fatal("server secret check wrong")
	}

	snap, err := a.f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	g := New(nil)
	if err := g.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	if toks := g.ACLTokens(); len(toks) != 2 || !g.ACLBootstrapped() || !g.ServerSecretMatches(secret) {
		t.Fatalf("restored ACL = %v bootstrapped=%v", toks, g.ACLBootstrapped())
	}

	a.mustApply(&pb.RevokeACLTokenCommand{AccessorId: "t1", Caller: caller})
	if _, ok := a.f.TokenBySecretHash(sum[:]); ok {
		t.Fatal("revoked token still found")
	}
	if r := a.apply(&pb.RevokeACLTokenCommand{AccessorId: "t1"}); !errors.Is(r.Err, ErrTokenNotFound) {
		t.Fatalf("second revoke: %v", r.Err)
	}
	recs := a.f.Audit(0)
	if len(recs) != 3 || recs[0].GetAction() != AuditACLTokenRevoke || recs[0].GetActor() != caller.GetActor() || recs[0].GetCaller().GetRemoteAddr() != "127.0.0.1:1" {
		t.Fatalf("audit = %v", recs)
	}
}
