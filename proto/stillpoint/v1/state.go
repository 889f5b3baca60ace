package stillpointv1

// Ended reports whether an operation in state s has ended: COMPLETED,
// ABORTED or INVALID. No state follows an ended one. The coordinator's
// state machine and the Go client both decide "ended" by it.
func (s OperationState) Ended() bool {
	switch s {
	case OperationState_OPERATION_STATE_COMPLETED, OperationState_OPERATION_STATE_ABORTED, OperationState_OPERATION_STATE_INVALID:
		return true
	}
	return false
}
