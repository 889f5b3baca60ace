// Package fsm is the coordinator's replicated state machine: typed commands
// dispatched on a leading type byte, one small apply function per command,
// and snapshot/restore. It needs no running Raft to test.
package fsm

import "errors"

// Rejections returned in an apply Response. They change nothing.
var (
	// ErrUnknownCommand: a message that is not a command.
	ErrUnknownCommand = errors.New("unknown FSM command")
	// ErrClusterLocked: another operation holds the cluster's lock.
	ErrClusterLocked = errors.New("cluster is locked by another operation")
	// ErrOperationExists: an operation with this id was already created.
	ErrOperationExists = errors.New("operation already exists")
	// ErrOperationNotFound: no operation with this id.
	ErrOperationNotFound = errors.New("operation not found")
	// ErrOperationEnded: the operation is already in a terminal state.
	ErrOperationEnded = errors.New("operation already ended")
	// ErrStaleEpoch: the command carries an epoch other than the current
	// fencing epoch (it comes from a deposed leader).
	ErrStaleEpoch = errors.New("stale fencing epoch")
	// ErrInvalidCommand: the command's content is malformed.
	ErrInvalidCommand = errors.New("invalid command")
	// ErrInvalidConfig: the runtime config fails validation.
	ErrInvalidConfig = errors.New("invalid runtime config")
	// ErrAlarmNotFound: no alarm with this id.
	ErrAlarmNotFound = errors.New("alarm not found")
	// ErrMemberNotFound: no member record with this name.
	ErrMemberNotFound = errors.New("member not found")
	// ErrPlanNotFound: no backup plan with this name.
	ErrPlanNotFound = errors.New("backup plan not found")
)
