package fsm

import (
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// Every accessor returns copies: callers may keep and modify them.

// Epoch is the current fencing epoch.
func (f *FSM) Epoch() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.st.epoch
}

// Config is the runtime config in force.
func (f *FSM) Config() *pb.RuntimeConfig {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return clone(f.st.config)
}

// Operation returns the stored record of one operation.
func (f *FSM) Operation(opID string) (*pb.Operation, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	op, ok := f.st.ops[opID]
	if !ok {
		return nil, false
	}
	return clone(op), true
}

// OperationByRequest returns the operation a StartPause with this client
// request id created.
func (f *FSM) OperationByRequest(requestID string) (*pb.Operation, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if op := f.byRequestLocked(requestID); op != nil {
		return clone(op), true
	}
	return nil, false
}

// byRequestLocked finds the op created for requestID (nil when none, or
// requestID is empty), newest first.
func (f *FSM) byRequestLocked(requestID string) *pb.Operation {
	if requestID == "" {
		return nil
	}
	for i := len(f.st.opsOrder) - 1; i >= 0; i-- {
		if op := f.st.ops[f.st.opsOrder[i]]; op.GetRequestId() == requestID {
			return op
		}
	}
	return nil
}

// Operations lists operations newest first, of one cluster ("" for all),
// at most limit (0 for all).
func (f *FSM) Operations(cluster string, limit int) []*pb.Operation {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var out []*pb.Operation
	for i := len(f.st.opsOrder) - 1; i >= 0; i-- {
		op := f.st.ops[f.st.opsOrder[i]]
		if cluster != "" && !PausesCluster(op, cluster) {
			continue
		}
		out = append(out, clone(op))
		if limit > 0 && len(out) == limit {
			break
		}
	}
	return out
}

// ActiveOperations lists operations not yet in a terminal state, oldest
// first: what a new leader must resume or abort.
func (f *FSM) ActiveOperations() []*pb.Operation {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var out []*pb.Operation
	for _, id := range f.st.opsOrder {
		if op := f.st.ops[id]; !IsTerminal(op.GetState()) {
			out = append(out, clone(op))
		}
	}
	return out
}

// Lock returns the operation holding a cluster's lock.
func (f *FSM) Lock(cluster string) (opID string, locked bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	opID, locked = f.st.locks[cluster]
	return opID, locked
}

// Locks returns every held lock, cluster -> op id.
func (f *FSM) Locks() map[string]string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make(map[string]string, len(f.st.locks))
	for k, v := range f.st.locks {
		out[k] = v
	}
	return out
}

// RestorePoints lists the catalog newest first, of one cluster ("" for
// all), at most limit (0 for all).
func (f *FSM) RestorePoints(cluster string, limit int) []*pb.RestorePoint {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var out []*pb.RestorePoint
	for i := len(f.st.rpOrder) - 1; i >= 0; i-- {
		rp := f.st.restorePoints[f.st.rpOrder[i]]
		if op, ok := f.st.ops[rp.GetOpId()]; cluster != "" && rp.GetCluster() != cluster && (!ok || !PausesCluster(op, cluster)) {
			continue
		}
		out = append(out, clone(rp))
		if limit > 0 && len(out) == limit {
			break
		}
	}
	return out
}

// RestorePoint returns the catalog entry of one operation.
func (f *FSM) RestorePoint(opID string) (*pb.RestorePoint, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	rp, ok := f.st.restorePoints[opID]
	if !ok {
		return nil, false
	}
	return clone(rp), true
}

// Alarms lists alarms in the order first raised; cleared ones only when
// includeCleared.
func (f *FSM) Alarms(includeCleared bool) []*pb.Alarm {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var out []*pb.Alarm
	for _, id := range f.st.alarmOrder {
		a := f.st.alarms[id]
		if !a.GetActive() && !includeCleared {
			continue
		}
		out = append(out, clone(a))
	}
	return out
}

// Alarm returns one alarm.
func (f *FSM) Alarm(id string) (*pb.Alarm, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	a, ok := f.st.alarms[id]
	if !ok {
		return nil, false
	}
	return clone(a), true
}

// Audit returns the newest limit records (0 for all), newest first.
func (f *FSM) Audit(limit int) []*pb.AuditRecord {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var out []*pb.AuditRecord
	for i := len(f.st.audit) - 1; i >= 0; i-- {
		out = append(out, clone(f.st.audit[i]))
		if limit > 0 && len(out) == limit {
			break
		}
	}
	return out
}

// Members lists member records sorted by name.
func (f *FSM) Members() []*pb.MemberRecord {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]*pb.MemberRecord, 0, len(f.st.members))
	for _, name := range sortedKeys(f.st.members) {
		out = append(out, clone(f.st.members[name]))
	}
	return out
}

// Member returns one member record.
func (f *FSM) Member(name string) (*pb.MemberRecord, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	m, ok := f.st.members[name]
	if !ok {
		return nil, false
	}
	return clone(m), true
}

// Dump returns a deep copy of the whole state as its snapshot message
// (tests and diagnostics).
func (f *FSM) Dump() *pb.FSMSnapshot {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.st.toSnapshot()
}
