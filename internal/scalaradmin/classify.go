package scalaradmin

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ErrorDomain is the ErrorInfo domain of the scalar-admin protocol.
const ErrorDomain = "com.scalar.dl.admin"

// ErrorInfo reasons sent by newer servers.
const (
	ReasonPauseInProgress     = "PAUSE_IN_PROGRESS"
	ReasonGateOpen            = "GATE_OPEN"
	ReasonTimedOut            = "TIMED_OUT"
	ReasonTimedOutStillPaused = "TIMED_OUT_STILL_PAUSED"
)

// Error is every error the client returns. Unwrap gives its class (one of
// the sentinels in errors.go) and, for a cancelled or expired call, the
// context error too.
type Error struct {
	// Op is the method ("Pause", "Unpause", "CheckPaused", "Stats").
	Op string
	// Addr is the node's admin address.
	Addr string
	// Class is the sentinel.
	Class error
	// Code is the gRPC status code (OK if the error never reached gRPC).
	Code codes.Code
	// Reason is the ErrorInfo reason (domain com.scalar.dl.admin), if any.
	Reason string
	// Msg is the server's message (or the client's explanation).
	Msg    string
	ctxErr error
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "scalar-admin %s at %s: %v", e.Op, e.Addr, e.Class)
	if e.Code != codes.OK {
		fmt.Fprintf(&b, " [%s", e.Code)
		if e.Reason != "" {
			fmt.Fprintf(&b, " %s", e.Reason)
		}
		b.WriteString("]")
	}
	if e.Msg != "" {
		fmt.Fprintf(&b, ": %s", e.Msg)
	}
	return b.String()
}

// Unwrap returns the class and, if set, the context error.
func (e *Error) Unwrap() []error {
	if e.ctxErr != nil {
		return []error{e.Class, e.ctxErr}
	}
	return []error{e.Class}
}

// Reason returns the ErrorInfo reason carried by err ("" if none).
func Reason(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	if st, ok := status.FromError(err); ok {
		return reasonOf(st)
	}
	return ""
}

func reasonOf(st *status.Status) string {
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == ErrorDomain {
			return info.GetReason()
		}
	}
	return ""
}

// classify maps a gRPC error to exactly one sentinel.
func (c *Client) classify(op string, err error) error {
	if err == nil {
		return nil
	}
	e := &Error{Op: op, Addr: c.cfg.Address}
	st, ok := status.FromError(err)
	if !ok {
		// Not a gRPC status: a context error or a local failure.
		e.Msg = err.Error()
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			e.Class, e.Code, e.ctxErr = ErrUnreachable, codes.DeadlineExceeded, context.DeadlineExceeded
		case errors.Is(err, context.Canceled):
			e.Class, e.Code, e.ctxErr = ErrFailed, codes.Canceled, context.Canceled
		default:
			e.Class = ErrFailed
		}
		return e
	}
	e.Code, e.Msg, e.Reason = st.Code(), st.Message(), reasonOf(st)
	e.Class = classOf(e.Code, e.Reason)
	switch e.Code {
	case codes.DeadlineExceeded:
		e.ctxErr = context.DeadlineExceeded
	case codes.Canceled:
		e.ctxErr = context.Canceled
	}
	return e
}

// classOf is the classification table.
func classOf(code codes.Code, reason string) error {
	switch code {
	case codes.Aborted:
		if reason == ReasonPauseInProgress || reason == ReasonGateOpen {
			return ErrRetryable
		}
		return ErrFailed
	case codes.FailedPrecondition:
		switch reason {
		case ReasonTimedOutStillPaused:
			return ErrStillPaused
		case ReasonTimedOut, "":
			return ErrDrainTimedOut
		default:
			return ErrFailed
		}
	case codes.InvalidArgument:
		return ErrInvalidArgument
	case codes.Unavailable, codes.DeadlineExceeded:
		return ErrUnreachable
	case codes.Unimplemented:
		return ErrUnimplemented
	default:
		return ErrFailed
	}
}
