package agent

import (
	"errors"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stillpoint-dev/stillpoint/internal/grpcx"
)

// Error classes of the AgentService. Every error the agent's operations
// return wraps one of these; the gRPC edge maps them to codes.
var (
	// ErrStaleEpoch: the request's epoch is lower than the highest seen (a
	// deposed leader is fenced). FAILED_PRECONDITION.
	ErrStaleEpoch = errors.New("stale epoch")
	// ErrOpHeld: another operation holds the node. ABORTED.
	ErrOpHeld = errors.New("node held by another operation")
	// ErrInvalidRequest: a field is missing or out of range (including a
	// lease above the configured maximum). INVALID_ARGUMENT.
	ErrInvalidRequest = errors.New("invalid request")
	// ErrNoSuchOp: the agent holds no lease for this op. NOT_FOUND.
	ErrNoSuchOp = errors.New("no lease for this operation")
	// ErrLeaseExpired: the lease ran out and the agent unpaused its node by
	// itself. FAILED_PRECONDITION.
	ErrLeaseExpired = errors.New("lease expired")
	// ErrOpEnded: the operation is already over on this agent.
	// FAILED_PRECONDITION.
	ErrOpEnded = errors.New("operation already ended")
	// ErrStopping: the agent is shutting down. UNAVAILABLE.
	ErrStopping = errors.New("agent is stopping")
	// ErrNoSuchHook: RunHook named a hook the agent's config file does not
	// define. NOT_FOUND.
	ErrNoSuchHook = errors.New("no such hook")
	// ErrStepTaken: RunHook named a different hook for an (op_id, step_id)
	// that already ran one. ALREADY_EXISTS.
	ErrStepTaken = errors.New("hook step already taken")
	// ErrPersist: the lease or epoch could not be written durably, so the
	// node was not touched. INTERNAL.
	ErrPersist = errors.New("cannot persist agent state")
	// ErrNotReady: the method needs a part of the agent it has not started
	// yet (Keyring before gossip). UNAVAILABLE.
	ErrNotReady = errors.New("agent not ready")
)

// ErrorDomain is the ErrorInfo domain on AgentService errors; the reason is
// one of the Reason* constants so callers need not parse messages.
const ErrorDomain = "agent.stillpoint.dev"

// ErrorInfo reasons attached to AgentService errors.
const (
	ReasonStaleEpoch     = "STALE_EPOCH"
	ReasonOpHeld         = "OP_HELD"
	ReasonInvalid        = "INVALID_ARGUMENT"
	ReasonNoSuchOp       = "NO_SUCH_OP"
	ReasonLeaseExpired   = "LEASE_EXPIRED"
	ReasonOpEnded        = "OP_ENDED"
	ReasonStopping       = "STOPPING"
	ReasonPersistFailure = "PERSIST_FAILED"
	ReasonNoSuchHook     = "NO_SUCH_HOOK"
	ReasonStepTaken      = "STEP_TAKEN"
	ReasonNotReady       = "NOT_READY"
	// ReasonCanceled: the request's context ended (CANCELED or
	// DEADLINE_EXCEEDED, the context's own code).
	ReasonCanceled = "CANCELED"
	// ReasonInternal: an error of no class (a bug). INTERNAL.
	ReasonInternal = "INTERNAL"
)

var errorClasses = []struct {
	err    error
	code   codes.Code
	reason string
}{
	{ErrStaleEpoch, codes.FailedPrecondition, ReasonStaleEpoch},
	{ErrOpHeld, codes.Aborted, ReasonOpHeld},
	{ErrInvalidRequest, codes.InvalidArgument, ReasonInvalid},
	{ErrNoSuchOp, codes.NotFound, ReasonNoSuchOp},
	{ErrLeaseExpired, codes.FailedPrecondition, ReasonLeaseExpired},
	{ErrOpEnded, codes.FailedPrecondition, ReasonOpEnded},
	{ErrStopping, codes.Unavailable, ReasonStopping},
	{ErrPersist, codes.Internal, ReasonPersistFailure},
	{ErrNoSuchHook, codes.NotFound, ReasonNoSuchHook},
	{ErrStepTaken, codes.AlreadyExists, ReasonStepTaken},
	{ErrNotReady, codes.Unavailable, ReasonNotReady},
}

// toStatus converts an agent error into a gRPC status error carrying an
// ErrorInfo: its class's code and reason; a context's end keeps its own
// code (CANCELED, DEADLINE_EXCEEDED) with reason CANCELED; any other error
// is INTERNAL with reason INTERNAL. A status error passes unchanged.
func toStatus(node string, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	code, reason := codes.Internal, ReasonInternal
	for _, c := range errorClasses {
		if errors.Is(err, c.err) {
			code, reason = c.code, c.reason
			break
		}
	}
	if reason == ReasonInternal {
		if cc := status.FromContextError(err).Code(); cc == codes.Canceled || cc == codes.DeadlineExceeded {
			code, reason = cc, ReasonCanceled
		}
	}
	st := status.New(code, err.Error())
	if d, derr := st.WithDetails(&errdetails.ErrorInfo{
		Domain:   ErrorDomain,
		Reason:   reason,
		Metadata: map[string]string{"node": node},
	}); derr == nil {
		st = d
	}
	return st.Err()
}

// ReasonOf returns the ErrorInfo reason of an AgentService error, or "".
func ReasonOf(err error) string { return grpcx.ReasonOf(err, ErrorDomain) }
