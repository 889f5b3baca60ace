package coordinator

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/raft"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stillpoint-dev/stillpoint/coordinator/fsm"
	"github.com/stillpoint-dev/stillpoint/internal/config"
	"github.com/stillpoint-dev/stillpoint/internal/grpcx"
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
const ErrorDomain = "coordinator.stillpoint.dev"

// ReasonNotApplied marks an error after which the request certainly
// changed nothing (no leader, not the leader, still taking over): it may
// be retried as it is, here or on another server.
const ReasonNotApplied = "NOT_APPLIED"

// ReasonUnknownCluster marks a refusal of a cluster no agent ever joined,
// so that a client can list the known ones.
const ReasonUnknownCluster = "UNKNOWN_CLUSTER"

// notAppliedErrors are the internal errors that leave a write unapplied.
var notAppliedErrors = []error{ErrNoLeader, ErrLeaderUnreachable, ErrForwardLoop,
	raft.ErrNotLeader, raft.ErrLeadershipTransferInProgress, raft.ErrEnqueueTimeout}

// withReason attaches an ErrorInfo of ErrorDomain to a status.
func withReason(st *status.Status, reason string) *status.Status {
	if d, err := st.WithDetails(&errdetails.ErrorInfo{Domain: ErrorDomain, Reason: reason}); err == nil {
		return d
	}
	return st
}

// notAppliedError is a handler's UNAVAILABLE for a request it refused
// before changing anything.
func notAppliedError(format string, args ...any) error {
	return withReason(status.Newf(codes.Unavailable, format, args...), ReasonNotApplied).Err()
}

// ReasonOf returns the ErrorInfo reason of a coordinator error, or "".
func ReasonOf(err error) string { return grpcx.ReasonOf(err, ErrorDomain) }

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
	code := codes.Internal
	msg := err.Error()
	switch {
	case errors.Is(err, ErrNoLeader):
		code = codes.Unavailable
	case errors.Is(err, ErrLeaderUnreachable), errors.Is(err, ErrForwardLoop):
		code = codes.Unavailable
		msg += "; retry shortly"
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		code = codes.Unavailable
		msg = fmt.Sprintf("server %s is not the coordinator leader (%v); the write was not applied: retry", s.cfg.NodeID, err)
	case errors.Is(err, raft.ErrLeadershipLost):
		// Not Unavailable: a blind retry could apply the write twice.
		code = codes.Unknown
		msg = fmt.Sprintf("server %s lost leadership while committing; the write may or may not have been committed: read the state before retrying", s.cfg.NodeID)
	case errors.Is(err, ErrApplyTimeout):
		code = codes.DeadlineExceeded
	case errors.Is(err, raft.ErrEnqueueTimeout):
		code = codes.Unavailable
		msg = fmt.Sprintf("server %s: timed out enqueueing the write (not applied): retry", s.cfg.NodeID)
	case errors.Is(err, raft.ErrRaftShutdown), errors.Is(err, raft.ErrAbortedByRestore):
		code = codes.Unavailable
		msg = fmt.Sprintf("server %s is shutting down or restoring (%v): retry on another server", s.cfg.NodeID, err)
	case errors.Is(err, fsm.ErrClusterLocked), errors.Is(err, fsm.ErrOperationEnded), errors.Is(err, fsm.ErrStaleEpoch),
		errors.Is(err, ErrRefused):
		code = codes.FailedPrecondition
	case errors.Is(err, fsm.ErrOperationNotFound), errors.Is(err, fsm.ErrAlarmNotFound), errors.Is(err, fsm.ErrMemberNotFound),
		errors.Is(err, fsm.ErrPlanNotFound):
		code = codes.NotFound
	case errors.Is(err, fsm.ErrOperationExists), errors.Is(err, fsm.ErrACLBootstrapped), errors.Is(err, fsm.ErrTokenExists):
		code = codes.AlreadyExists
	case errors.Is(err, fsm.ErrACLNotBootstrapped):
		code = codes.FailedPrecondition
	case errors.Is(err, fsm.ErrTokenNotFound):
		code = codes.NotFound
	case errors.Is(err, fsm.ErrInvalidConfig), errors.Is(err, fsm.ErrInvalidCommand), errors.Is(err, config.ErrInvalid):
		code = codes.InvalidArgument
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	}
	st := status.New(code, msg)
	if errors.Is(err, ErrUnknownCluster) {
		return withReason(st, ReasonUnknownCluster).Err()
	}
	for _, e := range notAppliedErrors {
		if errors.Is(err, e) {
			st = withReason(st, ReasonNotApplied)
			break
		}
	}
	return st.Err()
}
