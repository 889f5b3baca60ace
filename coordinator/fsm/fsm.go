package fsm

import (
	"fmt"
	"sync"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// Response is what Apply returns for every log entry. Err is a rejection
// (the command changed nothing); Value is the command's result, if any.
type Response struct {
	Index uint64
	Err   error
	Value proto.Message
}

// FSM is the coordinator's raft.FSM. Its read accessors return copies and
// are safe for concurrent use with Apply, Snapshot and Restore.
type FSM struct {
	log *zap.Logger

	mu        sync.RWMutex
	st        *state
	lastIndex uint64
	// changed is closed and replaced on every applied entry or restore.
	changed chan struct{}
}

var _ raft.FSM = (*FSM)(nil)

// New returns an FSM holding a fresh state (default runtime config).
func New(log *zap.Logger) *FSM {
	if log == nil {
		log = zap.NewNop()
	}
	return &FSM{log: log.Named("fsm"), st: newState(), changed: make(chan struct{})}
}

// Apply decodes and applies one Raft log entry. An entry whose type is
// unknown panics unless it carries IgnoreUnknownTypeFlag; an entry that
// cannot be decoded panics. Rejections are returned as Response.Err.
func (f *FSM) Apply(l *raft.Log) interface{} {
	if l.Type != raft.LogCommand {
		return nil
	}
	if len(l.Data) == 0 {
		panic(fmt.Sprintf("fsm: empty log entry at index %d", l.Index))
	}
	t := MessageType(l.Data[0])
	ignorable := t&IgnoreUnknownTypeFlag != 0
	t &^= IgnoreUnknownTypeFlag
	body := l.Data[1:]

	f.mu.Lock()
	defer f.mu.Unlock()
	defer f.notifyLocked(l.Index)

	var err error
	var val proto.Message
	switch t {
	case CreateOperationType:
		val, err = f.applyCreateOperation(l.Index, decode[*pb.CreateOperationCommand](t, l, body))
	case UpdateOperationType:
		val, err = f.applyUpdateOperation(l.Index, decode[*pb.UpdateOperationCommand](t, l, body))
	case BumpEpochType:
		val, err = f.applyBumpEpoch(l.Index, decode[*pb.BumpEpochCommand](t, l, body))
	case SetConfigType:
		val, err = f.applySetConfig(l.Index, decode[*pb.SetConfigCommand](t, l, body))
	case RaiseAlarmType:
		val, err = f.applyRaiseAlarm(l.Index, decode[*pb.RaiseAlarmCommand](t, l, body))
	case ClearAlarmType:
		val, err = f.applyClearAlarm(l.Index, decode[*pb.ClearAlarmCommand](t, l, body))
	case UpsertMemberType:
		val, err = f.applyUpsertMember(l.Index, decode[*pb.UpsertMemberCommand](t, l, body))
	case RemoveMemberType:
		val, err = f.applyRemoveMember(l.Index, decode[*pb.RemoveMemberCommand](t, l, body))
	case AppendAuditType:
		val, err = f.applyAppendAudit(l.Index, decode[*pb.AppendAuditCommand](t, l, body))
	case RemoveRosterMemberType:
		val, err = f.applyRemoveRosterMember(l.Index, decode[*pb.RemoveRosterMemberCommand](t, l, body))
	case InvalidateRestorePointType:
		val, err = f.applyInvalidateRestorePoint(l.Index, decode[*pb.InvalidateRestorePointCommand](t, l, body))
	case SetBackupPlanType:
		val, err = f.applySetBackupPlan(l.Index, decode[*pb.SetBackupPlanCommand](t, l, body))
	case DeleteBackupPlanType:
		val, err = f.applyDeleteBackupPlan(l.Index, decode[*pb.DeleteBackupPlanCommand](t, l, body))
	case RecordScheduleFireType:
		val, err = f.applyRecordScheduleFire(l.Index, decode[*pb.RecordScheduleFireCommand](t, l, body))
	case PruneBackupsType:
		val, err = f.applyPruneBackups(l.Index, decode[*pb.PruneBackupsCommand](t, l, body))
	case ACLBootstrapType, CreateACLTokenType, RevokeACLTokenType:
		val, err = f.applyACL(t, l, body)
	default:
		if ignorable {
			f.log.Warn("skipping unknown ignorable command", zap.Uint8("type", uint8(t)), zap.Uint64("index", l.Index))
			return nil
		}
		panic(fmt.Sprintf("fsm: unknown command type %d at index %d", uint8(t), l.Index))
	}
	if err != nil {
		f.log.Debug("command rejected", zap.Stringer("type", t), zap.Uint64("index", l.Index), zap.Error(err))
	}
	return &Response{Index: l.Index, Err: err, Value: val}
}

// decode unmarshals body into a new T, panicking on a corrupt entry.
func decode[T proto.Message](t MessageType, l *raft.Log, body []byte) T {
	var zero T
	msg := zero.ProtoReflect().New().Interface().(T)
	if err := proto.Unmarshal(body, msg); err != nil {
		panic(fmt.Sprintf("fsm: decode %s at index %d: %v", t, l.Index, err))
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
