package coordinator

import (
	"context"
	"runtime/debug"
	"strings"
	"sync/atomic"

	"go.uber.org/zap"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// The coordinator's outermost interceptors (before authentication):
// reasonUnary/reasonStream make sure every error a client gets carries a
// coordinator ErrorInfo naming this server; recoverUnary/recoverStream,
// inside them, turn a handler's panic into INTERNAL and keep serving.

// missingReasonHook, when set (tests), is told of every error a handler
// returned without a coordinator ErrorInfo: a site that forgot its reason.
var missingReasonHook atomic.Pointer[func(method string, err error)]

// coordinatorMethodPrefix is what the full method name of every
// CoordinatorService method starts with. The safety net covers only these:
// health and reflection have their own errors (Health/Check of an unknown
// service name is a plain NOT_FOUND) and no place in the catalog.
var coordinatorMethodPrefix = "/" + pb.CoordinatorService_ServiceDesc.ServiceName + "/"

// reasonUnary is the safety net on unary calls.
func (s *Server) reasonUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	resp, err := h(ctx, req)
	if err != nil && strings.HasPrefix(info.FullMethod, coordinatorMethodPrefix) {
		err = s.ensureReason(ctx, info.FullMethod, err)
	}
	return resp, err
}

// reasonStream is the safety net on streams.
func (s *Server) reasonStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	if err := h(srv, ss); err != nil {
		if !strings.HasPrefix(info.FullMethod, coordinatorMethodPrefix) {
			return err
		}
		return s.ensureReason(ss.Context(), info.FullMethod, err)
	}
	return nil
}

// ensureReason returns err with a coordinator ErrorInfo naming this
// server. An error without one is a bug at its site: it is logged at
// error level (and reported to missingReasonHook) and given the reason
// its code implies, keeping code and message — unless the caller is gone
// (its context ended), where the error is the transport's and the reason
// CANCELED.
func (s *Server) ensureReason(ctx context.Context, method string, err error) error {
	st := status.Convert(err)
	p := st.Proto()
	for i, d := range st.Details() {
		info, ok := d.(*errdetails.ErrorInfo)
		if !ok || info.GetDomain() != ErrorDomain {
			continue
		}
		if info.GetMetadata()["server"] != "" {
			return err
		}
		md := map[string]string{"server": s.cfg.NodeID}
		for k, v := range info.GetMetadata() {
			md[k] = v
		}
		// The reason as sent: one this build does not know (a newer
		// leader's) is kept, not dropped.
		out := withInfoReason(status.New(st.Code(), st.Message()), info.GetReason(), md).Proto()
		// Keep the other details (BadRequest) in their order.
		out.Details = append(out.Details[:1], p.Details[:i]...)
		out.Details = append(out.Details, p.Details[i+1:]...)
		return status.FromProto(out).Err()
	}
	reason := reasonForCode(st.Code())
	if ctx.Err() != nil {
		reason = pb.ErrorReason_ERROR_REASON_CANCELED
	} else {
		s.log.Error("error without a reason (a bug at its site); attaching one from its code",
			zap.String("method", method), zap.Stringer("code", st.Code()), zap.String("reason", reason.Reason()), zap.Error(err))
		if hook := missingReasonHook.Load(); hook != nil {
			(*hook)(method, err)
		}
	}
	md := map[string]string{"server": s.cfg.NodeID}
	out := withInfo(status.New(st.Code(), st.Message()), reason, md).Proto()
	out.Details = append(out.Details, p.Details...)
	return status.FromProto(out).Err()
}

// reasonForCode is the reason given to an error sent without one: the
// generic reason of its code, else INTERNAL (the missing reason is itself
// a server bug). A reasonless UNAUTHENTICATED is taken for a token refusal
// (tokens are the common case; the TLS layer's certificate refusals get
// UNAUTHENTICATED_CERTIFICATE from annotateRefusal); a reasonless
// PERMISSION_DENIED for a certificate role refusal (the token role check
// always attaches PERMISSION_DENIED_ROLE with its keys).
func reasonForCode(c codes.Code) pb.ErrorReason {
	switch c {
	case codes.Canceled, codes.DeadlineExceeded:
		return pb.ErrorReason_ERROR_REASON_CANCELED
	case codes.InvalidArgument:
		return pb.ErrorReason_ERROR_REASON_INVALID_ARGUMENT
	case codes.ResourceExhausted:
		return pb.ErrorReason_ERROR_REASON_RATE_LIMITED
	case codes.Unauthenticated:
		return pb.ErrorReason_ERROR_REASON_UNAUTHENTICATED_TOKEN
	case codes.PermissionDenied:
		return pb.ErrorReason_ERROR_REASON_PERMISSION_DENIED_CERTIFICATE
	}
	return pb.ErrorReason_ERROR_REASON_INTERNAL
}

// annotateRefusal gives a refusal of the TLS authentication layer (grpcx:
// no or a bad client certificate, a certificate role the method refuses)
// its certificate reason when it has none: UNAUTHENTICATED_CERTIFICATE,
// PERMISSION_DENIED_CERTIFICATE, else the reason of its code.
func annotateRefusal(err error) error {
	if ReasonOf(err) != "" {
		return err
	}
	st := status.Convert(err)
	reason := reasonForCode(st.Code())
	if st.Code() == codes.Unauthenticated {
		reason = pb.ErrorReason_ERROR_REASON_UNAUTHENTICATED_CERTIFICATE
	}
	return withInfo(st, reason, nil).Err()
}

// opIDOf is the op id a request names, or "".
func opIDOf(req any) string {
	if r, ok := req.(interface{ GetOpId() string }); ok {
		return r.GetOpId()
	}
	return ""
}

// recoverUnary turns a handler's panic into INTERNAL (reason INTERNAL),
// logged at error level with the method, the op id when the request names
// one, and the stack; the server keeps serving.
func (s *Server) recoverUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (resp any, err error) {
	defer func() {
		if p := recover(); p != nil {
			resp, err = nil, s.panicked(info.FullMethod, opIDOf(req), p, debug.Stack())
		}
	}()
	return h(ctx, req)
}

// recoverStream is recoverUnary for streams.
func (s *Server) recoverStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = s.panicked(info.FullMethod, "", p, debug.Stack())
		}
	}()
	return h(srv, ss)
}

// panicked logs a recovered panic and is the caller's error. The panic
// value stays in the log with the stack: it may hold internals a client
// must not see.
func (s *Server) panicked(method, opID string, p any, stack []byte) error {
	s.log.Error("panic in a gRPC handler; recovered, the server keeps serving",
		zap.String("method", method), zap.String("op_id", opID), zap.Any("panic", p), zap.ByteString("stack", stack))
	return apiError(codes.Internal, pb.ErrorReason_ERROR_REASON_INTERNAL, map[string]string{"op_id": opID},
		"server %s: internal error in %s (a bug); its log has the panic and the stack", s.cfg.NodeID, method)
}

// interceptorOptions are the server options of the outer interceptors, in
// order: safety net, then recovery.
func (s *Server) interceptorOptions() (unary []grpc.UnaryServerInterceptor, stream []grpc.StreamServerInterceptor) {
	return []grpc.UnaryServerInterceptor{s.reasonUnary, s.recoverUnary}, []grpc.StreamServerInterceptor{s.reasonStream, s.recoverStream}
}
