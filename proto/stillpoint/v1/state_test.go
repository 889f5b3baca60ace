package stillpointv1

import "testing"

// Ended holds for exactly the three end states, for every declared state.
func TestOperationStateEnded(t *testing.T) {
	ends := map[OperationState]bool{
		OperationState_OPERATION_STATE_COMPLETED: true,
		OperationState_OPERATION_STATE_ABORTED:   true,
		OperationState_OPERATION_STATE_INVALID:   true,
	}
	for n := range OperationState_name {
		s := OperationState(n)
		if s.Ended() != ends[s] {
			t.Errorf("%v.Ended() = %v, want %v", s, s.Ended(), ends[s])
		}
	}
}
