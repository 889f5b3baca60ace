// Package scalaradmin is a client for one node's scalar-admin port
// (rpc.Admin): Pause, Unpause, CheckPaused and the v1 Stats.
package scalaradmin

import "errors"

// Error classes. Every error the client returns wraps exactly one of these,
// so callers can act with errors.Is.
var (
	// ErrRetryable: ABORTED with PAUSE_IN_PROGRESS or GATE_OPEN; try again.
	ErrRetryable = errors.New("node busy, retry")
	// ErrDrainTimedOut: in-flight requests did not drain within
	// max_pause_wait_time; the node reopened its gate (it is NOT paused).
	ErrDrainTimedOut = errors.New("drain timed out, node reopened its gate")
	// ErrStillPaused: TIMED_OUT_STILL_PAUSED; an earlier pause still holds
	// the gate. Do not unpause it.
	ErrStillPaused = errors.New("drain timed out while an earlier pause holds the gate; do not unpause")
	// ErrInvalidArgument: the node rejected the request's fields.
	ErrInvalidArgument = errors.New("node rejected the request as invalid")
	// ErrUnreachable: no answer from the admin port (connect failure,
	// deadline, UNAVAILABLE).
	ErrUnreachable = errors.New("admin port unreachable")
	// ErrUnimplemented: the server lacks the method (v1 vs v2).
	ErrUnimplemented = errors.New("method not implemented by this server version")
	// ErrFailed: any other error from the node.
	ErrFailed = errors.New("admin call failed")
)
