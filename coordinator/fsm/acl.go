package fsm

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"sort"
	"time"

	"google.golang.org/protobuf/proto"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// Audit actions of ACL changes.
const (
	AuditACLBootstrap   = "acl-bootstrap"
	AuditACLTokenCreate = "acl-token-create"
	AuditACLTokenRevoke = "acl-token-revoke"
)

// ACL rejections.
var (
	// ErrACLBootstrapped: the cluster's one bootstrap already happened.
	ErrACLBootstrapped = errors.New("ACL already bootstrapped")
	// ErrACLNotBootstrapped: tokens need a bootstrap first.
	ErrACLNotBootstrapped = errors.New("ACL not bootstrapped")
	// ErrTokenExists: a token with this accessor id exists.
	ErrTokenExists = errors.New("token accessor id already exists")
	// ErrTokenNotFound: no token with this accessor id.
	ErrTokenNotFound = errors.New("token not found")
)

// applyACL dispatches the ACL commands (types 16-18).
func (f *FSM) applyACL(t MessageType, index uint64, body []byte) (proto.Message, error) {
	switch t {
	case ACLBootstrapType:
		return f.applyACLBootstrap(index, decode[*pb.ACLBootstrapCommand](t, index, body))
	case CreateACLTokenType:
		return f.applyCreateACLToken(index, decode[*pb.CreateACLTokenCommand](t, index, body))
	case RevokeACLTokenType:
		return f.applyRevokeACLToken(index, decode[*pb.RevokeACLTokenCommand](t, index, body))
	}
	return nil, fmt.Errorf("%w: %s is not an ACL command", ErrInvalidCommand, t)
}

// validToken checks what every stored token needs.
func validToken(tok *pb.ACLToken) error {
	switch {
	case tok.GetAccessorId() == "":
		return fmt.Errorf("%w: token without accessor_id", ErrInvalidCommand)
	case len(tok.GetSecretSha256()) != sha256.Size:
		return fmt.Errorf("%w: token %s: secret hash of %d bytes, want %d", ErrInvalidCommand, tok.GetAccessorId(), len(tok.GetSecretSha256()), sha256.Size)
	case tok.GetRole() < pb.ACLRole_ACL_ROLE_READ || tok.GetRole() > pb.ACLRole_ACL_ROLE_ADMIN:
		return fmt.Errorf("%w: token %s: role %v", ErrInvalidCommand, tok.GetAccessorId(), tok.GetRole())
	}
	return nil
}

func (f *FSM) applyACLBootstrap(index uint64, cmd *pb.ACLBootstrapCommand) (proto.Message, error) {
	if f.st.acl.GetBootstrapped() {
		return nil, fmt.Errorf("%w (at most once per cluster; create more tokens with an admin token)", ErrACLBootstrapped)
	}
	tok := cmd.GetToken()
	if err := validToken(tok); err != nil {
		return nil, err
	}
	if len(cmd.GetServerSecret()) < 16 {
		return nil, fmt.Errorf("%w: server secret of %d bytes, want at least 16", ErrInvalidCommand, len(cmd.GetServerSecret()))
	}
	f.st.acl = &pb.ACLState{Bootstrapped: true, Tokens: []*pb.ACLToken{clone(tok)}, ServerSecret: append([]byte(nil), cmd.GetServerSecret()...)}
	f.audit(index, AuditACLBootstrap, "", "", fmt.Sprintf("first admin token %s (%s)", tok.GetAccessorId(), tok.GetName()), cmd.GetAt())
	f.attachCaller(cmd.GetCaller())
	return publicToken(tok), nil
}

func (f *FSM) applyCreateACLToken(index uint64, cmd *pb.CreateACLTokenCommand) (proto.Message, error) {
	if !f.st.acl.GetBootstrapped() {
		return nil, fmt.Errorf("%w: run `stillpoint acl bootstrap` first", ErrACLNotBootstrapped)
	}
	tok := cmd.GetToken()
	if err := validToken(tok); err != nil {
		return nil, err
	}
	for _, t := range f.st.acl.GetTokens() {
		if t.GetAccessorId() == tok.GetAccessorId() {
			return nil, fmt.Errorf("%w: %s", ErrTokenExists, tok.GetAccessorId())
		}
	}
	f.st.acl.Tokens = append(f.st.acl.Tokens, clone(tok))
	sort.Slice(f.st.acl.Tokens, func(i, j int) bool { return f.st.acl.Tokens[i].GetAccessorId() < f.st.acl.Tokens[j].GetAccessorId() })
	detail := fmt.Sprintf("token %s (%s), role %s", tok.GetAccessorId(), tok.GetName(), RoleName(tok.GetRole()))
	if tok.GetExpiresAt() != nil {
		detail += ", expires " + tok.GetExpiresAt().AsTime().UTC().Format(time.RFC3339)
	}
	f.audit(index, AuditACLTokenCreate, "", "", detail, cmd.GetAt())
	f.attachCaller(cmd.GetCaller())
	return publicToken(tok), nil
}

func (f *FSM) applyRevokeACLToken(index uint64, cmd *pb.RevokeACLTokenCommand) (proto.Message, error) {
	toks := f.st.acl.GetTokens()
	for i, t := range toks {
		if t.GetAccessorId() != cmd.GetAccessorId() {
			continue
		}
		f.st.acl.Tokens = append(append([]*pb.ACLToken(nil), toks[:i]...), toks[i+1:]...)
		f.audit(index, AuditACLTokenRevoke, "", "", fmt.Sprintf("token %s (%s), role %s", t.GetAccessorId(), t.GetName(), RoleName(t.GetRole())), cmd.GetAt())
		f.attachCaller(cmd.GetCaller())
		return publicToken(t), nil
	}
	return nil, fmt.Errorf("%w: %s (list them with `stillpoint acl token list`)", ErrTokenNotFound, cmd.GetAccessorId())
}

// publicToken is tok without its secret hash.
func publicToken(tok *pb.ACLToken) *pb.ACLToken {
	out := clone(tok)
	out.SecretSha256 = nil
	return out
}

// RoleName is the short name of a role: read, operate, admin.
func RoleName(r pb.ACLRole) string {
	switch r {
	case pb.ACLRole_ACL_ROLE_READ:
		return "read"
	case pb.ACLRole_ACL_ROLE_OPERATE:
		return "operate"
	case pb.ACLRole_ACL_ROLE_ADMIN:
		return "admin"
	}
	return "none"
}

// ACLBootstrapped reports whether the cluster's ACL bootstrap happened.
func (f *FSM) ACLBootstrapped() bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.st.acl.GetBootstrapped()
}

// ACLTokens lists the tokens without their secret hashes.
func (f *FSM) ACLTokens() []*pb.ACLToken {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]*pb.ACLToken, 0, len(f.st.acl.GetTokens()))
	for _, t := range f.st.acl.GetTokens() {
		out = append(out, publicToken(t))
	}
	return out
}

// TokenBySecretHash finds the token whose secret hashes to sum (compared in
// constant time); the returned copy has no hash.
func (f *FSM) TokenBySecretHash(sum []byte) (*pb.ACLToken, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var found *pb.ACLToken
	for _, t := range f.st.acl.GetTokens() {
		if subtle.ConstantTimeCompare(t.GetSecretSha256(), sum) == 1 {
			found = t
		}
	}
	if found == nil {
		return nil, false
	}
	return publicToken(found), true
}

// ServerSecretMatches reports whether secret is the cluster's server secret
// (false before bootstrap).
func (f *FSM) ServerSecretMatches(secret []byte) bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	want := f.st.acl.GetServerSecret()
	return len(want) > 0 && subtle.ConstantTimeCompare(want, secret) == 1
}

// ServerSecret is the cluster's server secret (nil before bootstrap): for
// this server's own forwards only.
func (f *FSM) ServerSecret() []byte {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return append([]byte(nil), f.st.acl.GetServerSecret()...)
}
