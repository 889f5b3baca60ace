package fsm

import (
	"sort"

	"google.golang.org/protobuf/proto"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// MaxAuditRecords bounds the audit log; the oldest records are dropped.
const MaxAuditRecords = 10000

// state is the whole replicated state. It is only touched under FSM.mu.
type state struct {
	epoch  uint64
	config *pb.RuntimeConfig

	ops      map[string]*pb.Operation
	opsOrder []string // creation order
	locks    map[string]string

	restorePoints map[string]*pb.RestorePoint
	rpOrder       []string

	alarms     map[string]*pb.Alarm
	alarmOrder []string

	audit []*pb.AuditRecord

	members map[string]*pb.MemberRecord

	plans map[string]*pb.PlanRecord

	acl *pb.ACLState
}

func newState() *state {
	return &state{
		config:        DefaultRuntimeConfig(),
		ops:           map[string]*pb.Operation{},
		locks:         map[string]string{},
		restorePoints: map[string]*pb.RestorePoint{},
		alarms:        map[string]*pb.Alarm{},
		members:       map[string]*pb.MemberRecord{},
		plans:         map[string]*pb.PlanRecord{},
		acl:           &pb.ACLState{},
	}
}

// toSnapshot deep-copies the state into its snapshot message.
func (s *state) toSnapshot() *pb.FSMSnapshot {
	snap := &pb.FSMSnapshot{
		Epoch:  s.epoch,
		Config: clone(s.config),
		Locks:  make(map[string]string, len(s.locks)),
	}
	for _, id := range s.opsOrder {
		snap.Operations = append(snap.Operations, clone(s.ops[id]))
	}
	for _, id := range s.rpOrder {
		snap.RestorePoints = append(snap.RestorePoints, clone(s.restorePoints[id]))
	}
	for _, id := range s.alarmOrder {
		snap.Alarms = append(snap.Alarms, clone(s.alarms[id]))
	}
	for _, r := range s.audit {
		snap.Audit = append(snap.Audit, clone(r))
	}
	for _, name := range sortedKeys(s.members) {
		snap.Members = append(snap.Members, clone(s.members[name]))
	}
	for k, v := range s.locks {
		snap.Locks[k] = v
	}
	for _, name := range sortedKeys(s.plans) {
		snap.Plans = append(snap.Plans, clone(s.plans[name]))
	}
	snap.Acl = clone(s.acl)
	return snap
}

// stateFromSnapshot builds a fresh state from a snapshot message.
func stateFromSnapshot(snap *pb.FSMSnapshot) *state {
	s := newState()
	s.epoch = snap.GetEpoch()
	if snap.GetConfig() != nil {
		s.config = snap.GetConfig()
		stripRetired(s.config)
	}
	for _, op := range snap.GetOperations() {
		s.ops[op.GetOpId()] = op
		s.opsOrder = append(s.opsOrder, op.GetOpId())
	}
	for _, rp := range snap.GetRestorePoints() {
		s.restorePoints[rp.GetOpId()] = rp
		s.rpOrder = append(s.rpOrder, rp.GetOpId())
	}
	for _, a := range snap.GetAlarms() {
		s.alarms[a.GetId()] = a
		s.alarmOrder = append(s.alarmOrder, a.GetId())
	}
	s.audit = snap.GetAudit()
	for _, m := range snap.GetMembers() {
		s.members[m.GetName()] = m
	}
	for k, v := range snap.GetLocks() {
		s.locks[k] = v
	}
	for _, p := range snap.GetPlans() {
		s.plans[p.GetPlan().GetName()] = p
	}
	if snap.GetAcl() != nil {
		s.acl = snap.GetAcl()
	}
	return s
}

func clone[T proto.Message](m T) T {
	return proto.Clone(m).(T)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// IsTerminal reports whether an operation in state st has ended
// (st.Ended(), the set the client shares).
func IsTerminal(st pb.OperationState) bool { return st.Ended() }
