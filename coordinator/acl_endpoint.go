package coordinator

import (
	"context"
	"crypto/rand"
	"fmt"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stillpoint-dev/stillpoint/coordinator/fsm"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// Bounds of token requests.
const (
	maxTokenName = 128
	maxTokenTTL  = 10 * 365 * 24 * time.Hour
	maxNote      = 1024
)

// ValidateCreateACLToken checks a token request; every problem is named.
func ValidateCreateACLToken(req *pb.CreateACLTokenRequest) error {
	var bad []string
	switch n := req.GetName(); {
	case n == "":
		bad = append(bad, "name is required (who or what the token is for)")
	case len(n) > maxTokenName:
		bad = append(bad, fmt.Sprintf("name is %d bytes, at most %d", len(n), maxTokenName))
	case !utf8.ValidString(n):
		bad = append(bad, "name is not valid UTF-8")
	}
	if r := req.GetRole(); r < pb.ACLRole_ACL_ROLE_READ || r > pb.ACLRole_ACL_ROLE_ADMIN {
		bad = append(bad, fmt.Sprintf("role %v: want read, operate or admin", r))
	}
	if ttl := req.GetTtlMs(); ttl < 0 || time.Duration(ttl)*time.Millisecond > maxTokenTTL || ttl > int64(maxTokenTTL/time.Millisecond) {
		bad = append(bad, fmt.Sprintf("ttl_ms %d: want 0 (no expiry) up to %d", ttl, maxTokenTTL.Milliseconds()))
	}
	if err := validateNote(req.GetNote()); err != nil {
		bad = append(bad, err.Error())
	}
	return joinBad(bad)
}

func validateNote(n string) error {
	if len(n) > maxNote || !utf8.ValidString(n) {
		return fmt.Errorf("note: at most %d bytes of UTF-8", maxNote)
	}
	return nil
}

func joinBad(bad []string) error {
	if len(bad) == 0 {
		return nil
	}
	return badRequest(bad)
}

// newToken makes a token and its secret, stamped by this server.
func (s *Server) newToken(name string, role pb.ACLRole, ttl time.Duration, by string) (*pb.ACLToken, string, error) {
	secret, err := NewTokenSecret()
	if err != nil {
		return nil, "", err
	}
	id, err := newAccessorID()
	if err != nil {
		return nil, "", err
	}
	tok := &pb.ACLToken{AccessorId: id, Name: name, Role: role, SecretSha256: tokenHash(secret), CreatedAt: s.Stamp(), CreatedBy: by}
	if ttl > 0 {
		tok.ExpiresAt = timestamppb.New(s.cfg.Now().Add(ttl))
	}
	return tok, secret, nil
}

// ACLBootstrap creates the first admin token, once per cluster.
func (s *Server) ACLBootstrap(ctx context.Context, req *pb.ACLBootstrapRequest) (*pb.ACLBootstrapResponse, error) {
	if err := validateNote(req.GetNote()); err != nil {
		return nil, invalidArgument("note", "%v", err)
	}
	if resp, done, err := forward(ctx, s, req, pb.CoordinatorServiceClient.ACLBootstrap); done {
		return resp, err
	}
	if s.fsm.ACLBootstrapped() {
		return nil, apiError(codes.AlreadyExists, pb.ErrorReason_ERROR_REASON_ACL_BOOTSTRAP, nil, "%v (at most once per cluster; create more tokens with an admin token)", fsm.ErrACLBootstrapped)
	}
	c := s.callerOf(ctx, req.GetNote())
	tok, secret, err := s.newToken("bootstrap", pb.ACLRole_ACL_ROLE_ADMIN, 0, c.GetActor())
	if err != nil {
		return nil, apiError(codes.Internal, pb.ErrorReason_ERROR_REASON_INTERNAL, nil, "server %s: %v", s.cfg.NodeID, err)
	}
	serverSecret := make([]byte, 32)
	if _, err := rand.Read(serverSecret); err != nil {
		return nil, apiError(codes.Internal, pb.ErrorReason_ERROR_REASON_INTERNAL, nil, "server %s: %v", s.cfg.NodeID, err)
	}
	out, err := s.Apply(ctx, &pb.ACLBootstrapCommand{Token: tok, ServerSecret: serverSecret, Caller: c, At: s.Stamp()})
	if err != nil {
		return nil, s.toStatus(err)
	}
	s.log.Warn("ACL bootstrapped: first admin token created", zap.String("accessor", tok.GetAccessorId()), zap.String("actor", c.GetActor()))
	return &pb.ACLBootstrapResponse{Token: out.(*pb.ACLToken), Secret: secret}, nil
}

// CreateACLToken creates a token; its secret is in this answer only.
func (s *Server) CreateACLToken(ctx context.Context, req *pb.CreateACLTokenRequest) (*pb.CreateACLTokenResponse, error) {
	if err := ValidateCreateACLToken(req); err != nil {
		return nil, err
	}
	if resp, done, err := forward(ctx, s, req, pb.CoordinatorServiceClient.CreateACLToken); done {
		return resp, err
	}
	c := s.callerOf(ctx, req.GetNote())
	tok, secret, err := s.newToken(req.GetName(), req.GetRole(), time.Duration(req.GetTtlMs())*time.Millisecond, c.GetActor())
	if err != nil {
		return nil, apiError(codes.Internal, pb.ErrorReason_ERROR_REASON_INTERNAL, nil, "server %s: %v", s.cfg.NodeID, err)
	}
	out, err := s.Apply(ctx, &pb.CreateACLTokenCommand{Token: tok, Caller: c, At: s.Stamp()})
	if err != nil {
		return nil, s.toStatus(err)
	}
	s.log.Info("ACL token created", zap.String("accessor", tok.GetAccessorId()), zap.String("name", tok.GetName()),
		zap.String("role", fsm.RoleName(tok.GetRole())), zap.String("actor", c.GetActor()))
	return &pb.CreateACLTokenResponse{Token: out.(*pb.ACLToken), Secret: secret}, nil
}

// ListACLTokens lists the tokens (accessor ids, names, roles; no secrets).
func (s *Server) ListACLTokens(ctx context.Context, req *pb.ListACLTokensRequest) (*pb.ListACLTokensResponse, error) {
	if resp, done, err := forwardRead(ctx, s, req.GetStale(), req, pb.CoordinatorServiceClient.ListACLTokens); done {
		return resp, err
	}
	return &pb.ListACLTokensResponse{Tokens: s.fsm.ACLTokens(), Bootstrapped: s.fsm.ACLBootstrapped()}, nil
}

// ValidateRevokeACLToken checks a revoke request.
func ValidateRevokeACLToken(req *pb.RevokeACLTokenRequest) error {
	var bad []string
	if id := req.GetAccessorId(); len(id) != 16 || !isHex(id) {
		bad = append(bad, fmt.Sprintf("accessor_id %q: want the 16 hex characters `stillpoint acl token list` shows", truncate(id, 40)))
	}
	if err := validateNote(req.GetNote()); err != nil {
		bad = append(bad, err.Error())
	}
	return joinBad(bad)
}

func isHex(s string) bool {
	for _, r := range s {
		if (r < '0' || r > '9') && (r < 'a' || r > 'f') {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// RevokeACLToken deletes a token: it is refused from the next call on.
func (s *Server) RevokeACLToken(ctx context.Context, req *pb.RevokeACLTokenRequest) (*pb.RevokeACLTokenResponse, error) {
	if err := ValidateRevokeACLToken(req); err != nil {
		return nil, err
	}
	if resp, done, err := forward(ctx, s, req, pb.CoordinatorServiceClient.RevokeACLToken); done {
		return resp, err
	}
	c := s.callerOf(ctx, req.GetNote())
	out, err := s.Apply(ctx, &pb.RevokeACLTokenCommand{AccessorId: req.GetAccessorId(), Caller: c, At: s.Stamp()})
	if err != nil {
		return nil, s.toStatus(err)
	}
	s.log.Warn("ACL token revoked", zap.String("accessor", req.GetAccessorId()), zap.String("actor", c.GetActor()))
	return &pb.RevokeACLTokenResponse{Token: out.(*pb.ACLToken)}, nil
}
