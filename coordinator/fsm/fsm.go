package fsm

import (
	"fmt"
	"sync"

	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// Response is what ApplyCommand returns for every log entry. Err is a rejection
// (the command changed nothing); Value is the command's result, if any.
type Response struct {
	Index uint64
	Err   error
	Value proto.Message
}

// FSM is the coordinator's replicated state machine. It knows nothing of
// Raft: the coordinator's raftFSM adapter feeds it committed log entries
// (ApplyCommand), snapshots and restores. Its read accessors return copies
// and are safe for concurrent use with ApplyCommand, Snapshot and Restore.
type FSM struct {
	log *zap.Logger

	mu        sync.RWMutex
	st        *state
	lastIndex uint64
	// changed is closed and replaced on every applied entry or restore.
	changed chan struct{}
}

// New returns an FSM holding a fresh state (default runtime config).
func New(log *zap.Logger) *FSM {
	if log == nil {
		log = zap.NewNop()
	}
	return &FSM{log: log.Named("fsm"), st: newState(), changed: make(chan struct{})}
}

// ApplyCommand decodes and applies one committed command (what Encode
// wrote) at log index index. A command whose type is unknown panics unless
// it carries IgnoreUnknownTypeFlag (then it is skipped and the result is
// nil); a command that cannot be decoded panics. Rejections are returned as
// Response.Err.
func (f *FSM) ApplyCommand(index uint64, data []byte) *Response {
	if len(data) == 0 {
		panic(fmt.Sprintf("fsm: empty log entry at index %d", index))
	}
	t := MessageType(data[0])
	ignorable := t&IgnoreUnknownTypeFlag != 0
	t &^= IgnoreUnknownTypeFlag
	body := data[1:]

	f.mu.Lock()
	defer f.mu.Unlock()
	defer f.notifyLocked(index)

	var err error
	var val proto.Message
	switch t {
	case CreateOperationType:
		val, err = f.applyCreateOperation(index, decode[*pb.CreateOperationCommand](t, index, body))
	case UpdateOperationType:
		val, err = f.applyUpdateOperation(index, decode[*pb.UpdateOperationCommand](t, index, body))
	case BumpEpochType:
		val, err = f.applyBumpEpoch(index, decode[*pb.BumpEpochCommand](t, index, body))
	case SetConfigType:
		val, err = f.applySetConfig(index, decode[*pb.SetConfigCommand](t, index, body))
	case RaiseAlarmType:
		val, err = f.applyRaiseAlarm(index, decode[*pb.RaiseAlarmCommand](t, index, body))
	case ClearAlarmType:
		val, err = f.applyClearAlarm(index, decode[*pb.ClearAlarmCommand](t, index, body))
	case UpsertMemberType:
		val, err = f.applyUpsertMember(index, decode[*pb.UpsertMemberCommand](t, index, body))
	case RemoveMemberType:
		val, err = f.applyRemoveMember(index, decode[*pb.RemoveMemberCommand](t, index, body))
	case AppendAuditType:
		val, err = f.applyAppendAudit(index, decode[*pb.AppendAuditCommand](t, index, body))
	case RemoveRosterMemberType:
		val, err = f.applyRemoveRosterMember(index, decode[*pb.RemoveRosterMemberCommand](t, index, body))
	case InvalidateRestorePointType:
		val, err = f.applyInvalidateRestorePoint(index, decode[*pb.InvalidateRestorePointCommand](t, index, body))
	case SetBackupPlanType:
		val, err = f.applySetBackupPlan(index, decode[*pb.SetBackupPlanCommand](t, index, body))
	case DeleteBackupPlanType:
		val, err = f.applyDeleteBackupPlan(index, decode[*pb.DeleteBackupPlanCommand](t, index, body))
	case RecordScheduleFireType:
		val, err = f.applyRecordScheduleFire(index, decode[*pb.RecordScheduleFireCommand](t, index, body))
	case PruneBackupsType:
		val, err = f.applyPruneBackups(index, decode[*pb.PruneBackupsCommand](t, index, body))
	case ACLBootstrapType, CreateACLTokenType, RevokeACLTokenType:
		val, err = f.applyACL(t, index, body)
	default:
		if ignorable {
			f.log.Warn("skipping unknown ignorable command", zap.Uint8("type", uint8(t)), zap.Uint64("index", index))
			return nil
		}
		panic(fmt.Sprintf("fsm: unknown command type %d at index %d", uint8(t), index))
	}
	if err != nil {
		f.log.Debug("command rejected", zap.Stringer("type", t), zap.Uint64("index", index), zap.Error(err))
	}
	return &Response{Index: index, Err: err, Value: val}
}

// decode unmarshals body (the entry at index) into a new T, panicking on a
// corrupt entry.
func decode[T proto.Message](t MessageType, index uint64, body []byte) T {
	var zero T
	msg := zero.ProtoReflect().New().Interface().(T)
	if err := proto.Unmarshal(body, msg); err != nil {
		panic(fmt.Sprintf("fsm: decode %s at index %d: %v", t, index, err))
	}
	return msg
}

func (f *FSM) notifyLocked(index uint64) {
	if index > f.lastIndex {
		f.lastIndex = index
	}
	close(f.changed)
	f.changed = make(chan struct{})
}

// Changed returns a channel closed at the next applied entry or restore.
// Read the state after it fires, then call Changed again.
func (f *FSM) Changed() <-chan struct{} {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.changed
}

// LastIndex is the index of the last applied entry.
func (f *FSM) LastIndex() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.lastIndex
}

// audit appends a record (caller holds f.mu) and trims the log.
func (f *FSM) audit(index uint64, action, actor, opID, detail string, at *pb.StampedTime) {
	f.st.audit = append(f.st.audit, &pb.AuditRecord{
		Index: index, Action: action, Actor: actor, OpId: opID, Detail: detail, At: clone(at),
	})
	f.trimAudit()
}

// attachCaller sets the caller of the record audit just appended (caller
// holds f.mu).
func (f *FSM) attachCaller(c *pb.Caller) {
	if c == nil || len(f.st.audit) == 0 {
		return
	}
	r := f.st.audit[len(f.st.audit)-1]
	r.Caller = clone(c)
	if c.GetActor() != "" {
		r.Actor = c.GetActor()
	}
}

func (f *FSM) trimAudit() {
	if n := len(f.st.audit); n > MaxAuditRecords {
		f.st.audit = append([]*pb.AuditRecord(nil), f.st.audit[n-MaxAuditRecords:]...)
	}
}
