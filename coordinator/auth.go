package coordinator

import (
	"context"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/stillpoint-dev/stillpoint/coordinator/fsm"
	"github.com/stillpoint-dev/stillpoint/internal/grpcx"
	"github.com/stillpoint-dev/stillpoint/internal/tlsx"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// Metadata one server adds when it forwards a call to the leader.
const (
	// callerHeader carries the Caller the receiving server resolved
	// (base64 of its protobuf encoding).
	callerHeader = "x-stillpoint-caller"
	// serverSecretHeader authenticates the forwarding server when mTLS is
	// off (the cluster's ACL server secret, base64).
	serverSecretHeader = "x-stillpoint-server-secret"
	// maxCallerHeader bounds a decoded caller header.
	maxCallerHeader = 4096
)

// AuditRefused is the audit action of a refused or unauthorized call.
const AuditRefused = "refused"

type callerKey struct{}

// withCaller stores the resolved caller in ctx for the handlers.
func withCaller(ctx context.Context, c *pb.Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// callerOf is the call's resolved caller with the client's free-text note
// beside it (never as the actor). A handler reached without the
// interceptor (in-process tests) resolves it here.
func (s *Server) callerOf(ctx context.Context, note string) *pb.Caller {
	c, ok := ctx.Value(callerKey{}).(*pb.Caller)
	if !ok {
		c, _ = s.resolveLocal(ctx)
	}
	c = proto.Clone(c).(*pb.Caller)
	if note != "" {
		c.Note = note
	}
	return c
}

// resolveLocal resolves the caller of a call this server received from a
// client: its verified certificate, its token and its address. The
// returned caller is filled as far as it could be even with an error.
func (s *Server) resolveLocal(ctx context.Context) (*pb.Caller, error) {
	c := &pb.Caller{ReceivedBy: s.cfg.NodeID}
	if p, ok := peer.FromContext(ctx); ok {
		if p.Addr != nil {
			c.RemoteAddr = p.Addr.String()
		}
	}
	if role, subject, ok := tlsx.RoleOf(ctx); ok {
		c.CertSubject = subject
		if role != "" {
			c.CertSubject += " (" + role + ")"
		}
	}
	tok, err := s.tokenFromMetadata(ctx)
	if tok != nil {
		c.TokenAccessor, c.TokenName, c.Role = tok.GetAccessorId(), tok.GetName(), tok.GetRole()
	}
	c.Actor = actorName(c)
	return c, err
}

// actorName is a caller for a person: its token, else its certificate,
// else anonymous, at its address.
func actorName(c *pb.Caller) string {
	who := "anonymous"
	switch {
	case c.GetTokenAccessor() != "":
		who = "token:" + c.GetTokenName() + "/" + c.GetTokenAccessor()
	case c.GetCertSubject() != "":
		who = "cert:" + c.GetCertSubject()
	}
	if c.GetRemoteAddr() != "" {
		who += "@" + c.GetRemoteAddr()
	}
	return who
}

// tokenFromMetadata finds the token a call presents (nil, nil when none).
// An unknown, revoked or expired token is an Unauthenticated error.
func (s *Server) tokenFromMetadata(ctx context.Context) (*pb.ACLToken, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	switch len(vals) {
	case 0:
		return nil, nil
	case 1:
	default:
		return nil, invalidArgument("authorization", "%d authorization headers; send one", len(vals))
	}
	secret, err := ParseBearer(vals[0])
	if err != nil {
		return nil, apiStatus(codes.Unauthenticated, pb.ErrorReason_ERROR_REASON_UNAUTHENTICATED_TOKEN, nil, err.Error()).Err()
	}
	tok, ok := s.lookupToken(ctx, tokenHash(secret))
	if !ok {
		return nil, apiError(codes.Unauthenticated, pb.ErrorReason_ERROR_REASON_UNAUTHENTICATED_TOKEN, nil, "token is unknown or revoked on server %s (create one with `stillpoint acl token create`)", s.cfg.NodeID)
	}
	if exp := tok.GetExpiresAt(); exp != nil && !s.cfg.Now().Before(exp.AsTime()) {
		return tok, apiError(codes.Unauthenticated, pb.ErrorReason_ERROR_REASON_UNAUTHENTICATED_TOKEN, nil, "token %s (%s) expired at %s", tok.GetAccessorId(), tok.GetName(), exp.AsTime().UTC().Format(time.RFC3339))
	}
	return tok, nil
}

// tokenCatchUp bounds how long a follower waits for its replica to learn a
// token it does not know yet (one created a moment ago on the leader).
const tokenCatchUp = time.Second

// lookupToken finds the token with secret hash sum. A follower that does
// not know it waits (up to tokenCatchUp) for its replica to catch up.
func (s *Server) lookupToken(ctx context.Context, sum []byte) (*pb.ACLToken, bool) {
	tok, ok := s.fsm.TokenBySecretHash(sum)
	if ok || s.IsLeader() {
		return tok, ok
	}
	timer := time.NewTimer(tokenCatchUp)
	defer timer.Stop()
	for {
		changed := s.fsm.Changed()
		if tok, ok = s.fsm.TokenBySecretHash(sum); ok {
			return tok, true
		}
		select {
		case <-changed:
		case <-timer.C:
			return nil, false
		case <-ctx.Done():
			return nil, false
		}
	}
}

// encodeCaller and decodeCaller are the callerHeader's form.
func encodeCaller(c *pb.Caller) (string, error) {
	b, err := proto.Marshal(c)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// DecodeCaller parses a callerHeader value.
func DecodeCaller(v string) (*pb.Caller, error) {
	if len(v) > base64.StdEncoding.EncodedLen(maxCallerHeader) {
		return nil, fmt.Errorf("%s header of %d bytes exceeds %d", callerHeader, len(v), base64.StdEncoding.EncodedLen(maxCallerHeader))
	}
	b, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return nil, fmt.Errorf("%s header is not base64: %w", callerHeader, err)
	}
	c := &pb.Caller{}
	if err := proto.Unmarshal(b, c); err != nil {
		return nil, fmt.Errorf("%s header is not a Caller: %w", callerHeader, err)
	}
	if c.GetActor() == "" {
		return nil, fmt.Errorf("%s header names no actor", callerHeader)
	}
	return c, nil
}

// forwardHeaders are what this server adds to a call it forwards: the
// caller it resolved and, once ACLs are bootstrapped, the server secret.
func (s *Server) forwardHeaders(ctx context.Context) []string {
	var out []string
	if c, ok := ctx.Value(callerKey{}).(*pb.Caller); ok {
		if v, err := encodeCaller(c); err == nil {
			out = append(out, callerHeader, v)
		}
	}
	if sec := s.fsm.ServerSecret(); len(sec) > 0 {
		out = append(out, serverSecretHeader, base64.StdEncoding.EncodeToString(sec))
	}
	return out
}

// peerIsServer reports whether the call's verified client certificate is a
// coordinator server's (mTLS, role server).
func peerIsServer(ctx context.Context) bool {
	role, _, ok := tlsx.RoleOf(ctx)
	return ok && role == tlsx.RoleServer
}

// tlsRefused audits a call the certificate checks refused (no
// certificate, another CA, expired, wrong role).
func (s *Server) tlsRefused(ctx context.Context, call grpcx.Call, err error) {
	c, _ := s.resolveLocal(ctx)
	if call.Verified {
		c.CertSubject = call.Identity.Name + " (" + call.Identity.Role + ")"
		c.Actor = actorName(c)
	}
	s.refused(ctx, call.Method, &refusal{caller: c, err: err})
}

// forwardTrusted reports whether a forwarded call comes from another
// server: its certificate has the server role, or it carries the
// cluster's server secret. Without mTLS and before the ACL bootstrap
// nothing can tell a server from a client (see docs: the forwarded identity
// is then recorded as unverified).
func (s *Server) forwardTrusted(ctx context.Context) bool {
	if peerIsServer(ctx) {
		return true
	}
	md, _ := metadata.FromIncomingContext(ctx)
	v := md.Get(serverSecretHeader)
	if len(v) != 1 {
		return false
	}
	sec, err := base64.StdEncoding.DecodeString(v[0])
	return err == nil && s.fsm.ServerSecretMatches(sec)
}

// refusal is a call the interceptor turned away.
type refusal struct {
	caller *pb.Caller
	err    error
}

// authorizeCall resolves the caller of method and checks it may call it.
func (s *Server) authorizeCall(ctx context.Context, method string) (*pb.Caller, *refusal) {
	need, known := roleFor(method, s.cfg.ACL)
	md, _ := metadata.FromIncomingContext(ctx)
	forwardedBy := md.Get(forwardedHeader)
	var c *pb.Caller
	if len(forwardedBy) > 0 {
		local, _ := s.resolveLocal(ctx)
		trusted := s.forwardTrusted(ctx)
		if v := md.Get(callerHeader); len(v) == 1 {
			fc, err := DecodeCaller(v[0])
			switch {
			case err != nil && !trusted:
				fc = local // refused below when a role is needed
			case err != nil:
				return local, &refusal{local, invalidArgument(callerHeader, "forwarded call to %s: %v", method, err)}
			}
			c = fc
		} else {
			c = local
		}
		c.Unverified = !trusted
		// A forwarded token is verified here too: the forwarder's claim
		// about it is never taken on trust. (A server-to-server call
		// carries the caller it acts for, without the token.)
		if need != roleServer {
			tok, err := s.tokenFromMetadata(ctx)
			if err != nil {
				return c, &refusal{c, err}
			}
			if tok.GetAccessorId() != c.GetTokenAccessor() {
				return c, &refusal{c, apiError(codes.PermissionDenied, pb.ErrorReason_ERROR_REASON_SERVER_ONLY, nil, "forwarded call to %s names token %q but presents %q", method, c.GetTokenAccessor(), tok.GetAccessorId())}
			}
			c.Role = tok.GetRole()
		}
	} else {
		var err error
		c, err = s.resolveLocal(ctx)
		if err != nil {
			return c, &refusal{c, err}
		}
	}
	if !known {
		return c, &refusal{c, apiError(codes.PermissionDenied, pb.ErrorReason_ERROR_REASON_PERMISSION_DENIED_ROLE, map[string]string{"role": fsm.RoleName(c.GetRole()), "needed_role": "none"},
			"method %s is not in the ACL table of server %s; refused", method, s.cfg.NodeID)}
	}
	// Before the ACL bootstrap nothing but a server certificate can tell
	// a server from a client: public and server-to-server calls are then
	// taken with the forwarded identity marked unverified.
	if c.GetUnverified() && s.cfg.ACL.Enabled && (need != rolePublic && need != roleServer || need == roleServer && s.fsm.ACLBootstrapped()) {
		return c, &refusal{c, apiError(codes.PermissionDenied, pb.ErrorReason_ERROR_REASON_SERVER_ONLY, nil,
			"call to %s claims to be forwarded by server %s but is not from an authenticated server (no server certificate, no ACL server secret)", method, forwardedBy[0])}
	}
	if need == roleServer {
		if len(forwardedBy) == 0 {
			return c, &refusal{c, apiError(codes.PermissionDenied, pb.ErrorReason_ERROR_REASON_SERVER_ONLY, nil, "%s is a server-to-server method", method)}
		}
		return c, nil
	}
	if !s.cfg.ACL.Enabled || need == rolePublic {
		return c, nil
	}
	short := method[strings.LastIndex(method, "/")+1:]
	if c.GetTokenAccessor() == "" {
		hint := "stillpoint: pass --token, STILLPOINT_TOKEN or --token-file; any gRPC client: metadata authorization: Bearer <secret>"
		if !s.fsm.ACLBootstrapped() {
			hint = "ACLs are enabled but not bootstrapped: run `stillpoint acl bootstrap` once for the first admin token"
		}
		return c, &refusal{c, apiError(codes.Unauthenticated, pb.ErrorReason_ERROR_REASON_UNAUTHENTICATED_TOKEN, map[string]string{"needed_role": need.String()},
			"%s needs a token with role %s; this call has none (%s)", short, need, hint)}
	}
	if roleOf(c.GetRole()) < need {
		return c, &refusal{c, apiError(codes.PermissionDenied, pb.ErrorReason_ERROR_REASON_PERMISSION_DENIED_ROLE, map[string]string{"role": fsm.RoleName(c.GetRole()), "needed_role": need.String()},
			"token %s (%s) has role %s; %s needs role %s",
			c.GetTokenAccessor(), c.GetTokenName(), fsm.RoleName(c.GetRole()), short, need)}
	}
	return c, nil
}

// unaryAuth is the CoordinatorService's unary interceptor.
func (s *Server) unaryAuth(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	c, ref := s.authorizeCall(ctx, info.FullMethod)
	if ref != nil {
		s.refused(ctx, info.FullMethod, ref)
		return nil, ref.err
	}
	return handler(withCaller(ctx, c), req)
}

// streamAuth is the CoordinatorService's stream interceptor.
func (s *Server) streamAuth(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	c, ref := s.authorizeCall(ss.Context(), info.FullMethod)
	if ref != nil {
		s.refused(ss.Context(), info.FullMethod, ref)
		return ref.err
	}
	return handler(srv, &callerStream{ServerStream: ss, ctx: withCaller(ss.Context(), c)})
}

type callerStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *callerStream) Context() context.Context { return s.ctx }

// refusalLimit bounds the refusals one server records per refusalWindow;
// the rest are counted and named in the next recorded one (an attacker
// must not flush the bounded audit log).
const (
	refusalLimit  = 20
	refusalWindow = 10 * time.Second
)

// refusalLimited is RecordRefusal's answer over refusalLimit.
func (s *Server) refusalLimited() error {
	return apiError(codes.ResourceExhausted, pb.ErrorReason_ERROR_REASON_RATE_LIMITED, map[string]string{"retry_after_ms": strconv.FormatInt(refusalWindow.Milliseconds(), 10)},
		"server %s records at most %d relayed refusals per %v", s.cfg.NodeID, refusalLimit, refusalWindow)
}

type refusalLimiter struct {
	mu      sync.Mutex
	start   time.Time
	n       int
	dropped int
}

// allow reports whether a refusal may be recorded now, and how many were
// dropped before it.
func (l *refusalLimiter) allow(now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.start) >= refusalWindow {
		l.start, l.n = now, 0
	}
	if l.n >= refusalLimit {
		l.dropped++
		return false, 0
	}
	l.n++
	d := l.dropped
	l.dropped = 0
	return true, d
}

// refused logs a refused call and records it in the audit log (through
// the leader), bounded by the refusal limiter.
func (s *Server) refused(ctx context.Context, method string, ref *refusal) {
	st := status.Convert(ref.err)
	s.log.Warn("call refused", zap.String("method", method), zap.String("actor", ref.caller.GetActor()),
		zap.String("code", st.Code().String()), zap.String("reason", st.Message()))
	ok, dropped := s.refusals.allow(s.cfg.Now())
	if !ok {
		return
	}
	detail := st.Message()
	if dropped > 0 {
		detail += fmt.Sprintf(" (and %d earlier refusals on server %s not recorded: over %d per %v)", dropped, s.cfg.NodeID, refusalLimit, refusalWindow)
	}
	rec := &pb.AuditRecord{Action: AuditRefused, Actor: ref.caller.GetActor(), Detail: detail, At: s.Stamp(),
		Caller: ref.caller, Method: method, RefusedCode: st.Code().String()}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ApplyTimeout)
	defer cancel()
	if err := s.appendAudit(actx, rec); err != nil {
		s.log.Warn("refusal not recorded in the audit log", zap.String("method", method), zap.Error(err))
	}
}

// appendAudit records rec through the leader: applied here when this
// server leads, else sent to the leader as a server-to-server call.
func (s *Server) appendAudit(ctx context.Context, rec *pb.AuditRecord) error {
	if s.IsLeader() {
		_, err := s.Apply(ctx, &pb.AppendAuditCommand{Record: rec})
		return err
	}
	// A fresh context: the refused client's metadata stays behind.
	fctx := withCaller(context.Background(), &pb.Caller{Actor: "server:" + s.cfg.NodeID, ReceivedBy: s.cfg.NodeID})
	if dl, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		fctx, cancel = context.WithDeadline(fctx, dl)
		defer cancel()
	}
	_, done, err := forward(fctx, s, &pb.RecordRefusalRequest{Record: rec}, pb.CoordinatorServiceClient.RecordRefusal)
	if !done {
		_, err = s.Apply(ctx, &pb.AppendAuditCommand{Record: rec})
	}
	return err
}

// RecordRefusal appends a follower's refusal record (server to server).
func (s *Server) RecordRefusal(ctx context.Context, req *pb.RecordRefusalRequest) (*pb.RecordRefusalResponse, error) {
	if req.GetRecord().GetAction() != AuditRefused {
		return nil, invalidArgument("record.action", "record action %q: only %q records are accepted", req.GetRecord().GetAction(), AuditRefused)
	}
	if resp, done, err := forward(ctx, s, req, pb.CoordinatorServiceClient.RecordRefusal); done {
		return resp, err
	}
	rec := req.GetRecord()
	if s.callerOf(ctx, "").GetUnverified() {
		rec = proto.Clone(rec).(*pb.AuditRecord)
		rec.Detail = "(relayed by an unauthenticated peer) " + rec.GetDetail()
		if ok, _ := s.refusals.allow(s.cfg.Now()); !ok {
			return nil, s.refusalLimited()
		}
	}
	if _, err := s.Apply(ctx, &pb.AppendAuditCommand{Record: rec}); err != nil {
		return nil, s.toStatus(err)
	}
	return &pb.RecordRefusalResponse{}, nil
}
