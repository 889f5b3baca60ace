package coordinator

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/hashicorp/raft"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"

	"github.com/stillpoint-dev/stillpoint/coordinator/fsm"
	"github.com/stillpoint-dev/stillpoint/internal/config"
	"github.com/stillpoint-dev/stillpoint/internal/grpcx"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// Errors of the server itself; converted to gRPC status at the API edge.
var (
	// ErrNoLeader: no leader is known within the wait.
	ErrNoLeader = errors.New("no coordinator leader elected")
	// ErrLeaderUnreachable: the leader is known but its gRPC address is not.
	ErrLeaderUnreachable = errors.New("coordinator leader unreachable")
	// ErrForwardLoop: a forwarded request reached a server that is not the
	// leader either.
	ErrForwardLoop = errors.New("forwarded request reached a non-leader")
)

// ErrorDomain is the ErrorInfo domain on coordinator errors.
const ErrorDomain = pb.ErrorDomain

// ErrorInfo reasons other packages switch on; the catalog is
// pb.ErrorReason (proto/stillpoint/v1/errors.proto).
var (
	// ReasonNotApplied marks an error after which the request certainly
	// changed nothing (no leader, not the leader, still taking over): it
	// may be retried as it is, here or on another server.
	ReasonNotApplied = pb.ErrorReason_ERROR_REASON_NOT_APPLIED.Reason()
	// ReasonUnknownCluster marks a refusal of a cluster no agent ever
	// joined, so that a client can list the known ones.
	ReasonUnknownCluster = pb.ErrorReason_ERROR_REASON_UNKNOWN_CLUSTER.Reason()
)

// apiStatus is a status with code and message carrying the ErrorInfo of
// reason with md (nil for none) as its metadata. Every error the API
// returns is built here (or by apiError).
func apiStatus(code codes.Code, reason pb.ErrorReason, md map[string]string, msg string) *status.Status {
	return withInfo(status.New(code, msg), reason, md)
}

// apiError is apiStatus's error with a formatted message.
func apiError(code codes.Code, reason pb.ErrorReason, md map[string]string, format string, args ...any) error {
	return apiStatus(code, reason, md, fmt.Sprintf(format, args...)).Err()
}

// withInfo attaches an ErrorInfo of ErrorDomain with reason and md to st.
func withInfo(st *status.Status, reason pb.ErrorReason, md map[string]string, more ...protoadapt.MessageV1) *status.Status {
	return withInfoReason(st, reason.Reason(), md, more...)
}

// withInfoReason is withInfo with the reason as its string (one this build
// may not know).
func withInfoReason(st *status.Status, reason string, md map[string]string, more ...protoadapt.MessageV1) *status.Status {
	var meta map[string]string
	for k, v := range md {
		if v == "" {
			continue
		}
		if meta == nil {
			meta = map[string]string{}
		}
		meta[k] = v
	}
	details := append([]protoadapt.MessageV1{&errdetails.ErrorInfo{Domain: ErrorDomain, Reason: reason, Metadata: meta}}, more...)
	if d, err := st.WithDetails(details...); err == nil {
		return d
	}
	return st
}

// notAppliedError is a handler's UNAVAILABLE for a request it refused
// before changing anything.
func notAppliedError(md map[string]string, format string, args ...any) error {
	return apiError(codes.Unavailable, pb.ErrorReason_ERROR_REASON_NOT_APPLIED, md, format, args...)
}

// invalidArgument is INVALID_ARGUMENT naming the request field at fault.
func invalidArgument(field, format string, args ...any) error {
	return apiError(codes.InvalidArgument, pb.ErrorReason_ERROR_REASON_INVALID_ARGUMENT, map[string]string{"field": field}, format, args...)
}

// badRequest is INVALID_ARGUMENT listing every problem of a request (nil
// for none): "field" names the first problem's field, a BadRequest detail
// every one. Each problem names its field first ("hold_ms 5 is outside
// ...", "key: ...").
func badRequest(bad []string) error {
	if len(bad) == 0 {
		return nil
	}
	br := &errdetails.BadRequest{}
	for _, b := range bad {
		br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{Field: fieldOf(b), Description: b})
	}
	st := status.New(codes.InvalidArgument, strings.Join(bad, "; "))
	return withInfo(st, pb.ErrorReason_ERROR_REASON_INVALID_ARGUMENT, map[string]string{"field": fieldOf(bad[0])}, br).Err()
}

// fieldOf is the field a problem names first, or "request".
func fieldOf(problem string) string {
	end := strings.IndexAny(problem, " :")
	if end < 0 {
		end = len(problem)
	}
	f := problem[:end]
	if f == "" {
		return "request"
	}
	for _, r := range f {
		if r != '_' && r != '.' && (r < 'a' || r > 'z') && (r < '0' || r > '9') {
			return "request"
		}
	}
	return f
}

// ReasonOf returns the ErrorInfo reason of a coordinator error, or "".
func ReasonOf(err error) string { return grpcx.ReasonOf(err, ErrorDomain) }

// ErrorInfoOf returns the coordinator ErrorInfo of err, or nil.
func ErrorInfoOf(err error) *errdetails.ErrorInfo { return grpcx.InfoOf(err, ErrorDomain) }

// notApplied reports whether err says the request changed nothing.
func notApplied(err error) bool { return ReasonOf(err) == ReasonNotApplied }

// toStatus converts an internal error into a gRPC status with a code a
// client can act on and a message that says what to do. A status error
// passes through unchanged.
func (s *Server) toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	code, reason := codes.Internal, pb.ErrorReason_ERROR_REASON_INTERNAL
	md := map[string]string{}
	msg := err.Error()
	var refusal *admissionRefusal
	switch {
	case errors.Is(err, ErrUnknownCluster):
		code, reason = codes.NotFound, pb.ErrorReason_ERROR_REASON_UNKNOWN_CLUSTER
		md["cluster"] = clusterOf(err)
	case errors.As(err, &refusal):
		code, reason = codes.FailedPrecondition, refusal.reason
		md = refusal.metadata()
	case errors.Is(err, ErrNoLeader):
		code, reason = codes.Unavailable, pb.ErrorReason_ERROR_REASON_NOT_APPLIED
	case errors.Is(err, ErrLeaderUnreachable), errors.Is(err, ErrForwardLoop):
		code, reason = codes.Unavailable, pb.ErrorReason_ERROR_REASON_NOT_APPLIED
		msg += "; retry shortly"
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		code, reason = codes.Unavailable, pb.ErrorReason_ERROR_REASON_NOT_APPLIED
		msg = fmt.Sprintf("server %s is not the coordinator leader (%v); the write was not applied: retry", s.cfg.NodeID, err)
	case errors.Is(err, raft.ErrLeadershipLost):
		// Not Unavailable: a blind retry could apply the write twice.
		code, reason = codes.Unknown, pb.ErrorReason_ERROR_REASON_OUTCOME_UNKNOWN
		msg = fmt.Sprintf("server %s lost leadership while committing; the write may or may not have been committed: read the state before retrying", s.cfg.NodeID)
	case errors.Is(err, ErrApplyTimeout):
		code, reason = codes.DeadlineExceeded, pb.ErrorReason_ERROR_REASON_APPLY_TIMEOUT
	case errors.Is(err, raft.ErrEnqueueTimeout):
		code, reason = codes.Unavailable, pb.ErrorReason_ERROR_REASON_NOT_APPLIED
		msg = fmt.Sprintf("server %s: timed out enqueueing the write (not applied): retry", s.cfg.NodeID)
	case errors.Is(err, raft.ErrRaftShutdown), errors.Is(err, raft.ErrAbortedByRestore):
		code, reason = codes.Unavailable, pb.ErrorReason_ERROR_REASON_SHUTTING_DOWN
		msg = fmt.Sprintf("server %s is shutting down or restoring (%v): retry on another server", s.cfg.NodeID, err)
	case errors.Is(err, fsm.ErrClusterLocked):
		code, reason = codes.FailedPrecondition, pb.ErrorReason_ERROR_REASON_CLUSTER_LOCKED
	case errors.Is(err, fsm.ErrOperationEnded), errors.Is(err, fsm.ErrStaleEpoch):
		code, reason = codes.FailedPrecondition, pb.ErrorReason_ERROR_REASON_OPERATION_ENDED
	case errors.Is(err, fsm.ErrOperationNotFound):
		code, reason = codes.NotFound, pb.ErrorReason_ERROR_REASON_OPERATION_NOT_FOUND
	case errors.Is(err, fsm.ErrAlarmNotFound):
		code, reason = codes.NotFound, pb.ErrorReason_ERROR_REASON_ALARM_NOT_FOUND
	case errors.Is(err, fsm.ErrMemberNotFound):
		code, reason = codes.NotFound, pb.ErrorReason_ERROR_REASON_MEMBER_NOT_FOUND
	case errors.Is(err, fsm.ErrPlanNotFound):
		code, reason = codes.NotFound, pb.ErrorReason_ERROR_REASON_PLAN_NOT_FOUND
	case errors.Is(err, fsm.ErrOperationExists):
		// Op ids are unique: an impossible state.
		code, reason = codes.Internal, pb.ErrorReason_ERROR_REASON_INTERNAL
	case errors.Is(err, fsm.ErrACLBootstrapped):
		code, reason = codes.AlreadyExists, pb.ErrorReason_ERROR_REASON_ACL_BOOTSTRAP
	case errors.Is(err, fsm.ErrACLNotBootstrapped):
		code, reason = codes.FailedPrecondition, pb.ErrorReason_ERROR_REASON_ACL_BOOTSTRAP
	case errors.Is(err, fsm.ErrTokenExists):
		code, reason = codes.AlreadyExists, pb.ErrorReason_ERROR_REASON_TOKEN
	case errors.Is(err, fsm.ErrTokenNotFound):
		code, reason = codes.NotFound, pb.ErrorReason_ERROR_REASON_TOKEN
	case errors.Is(err, fsm.ErrInvalidConfig), errors.Is(err, config.ErrInvalid):
		code, reason = codes.InvalidArgument, pb.ErrorReason_ERROR_REASON_INVALID_CONFIG
	case errors.Is(err, fsm.ErrInvalidCommand):
		code, reason = codes.InvalidArgument, pb.ErrorReason_ERROR_REASON_INVALID_ARGUMENT
	case errors.Is(err, context.DeadlineExceeded):
		code, reason = codes.DeadlineExceeded, pb.ErrorReason_ERROR_REASON_CANCELED
	case errors.Is(err, context.Canceled):
		code, reason = codes.Canceled, pb.ErrorReason_ERROR_REASON_CANCELED
	}
	return apiStatus(code, reason, md, msg).Err()
}
