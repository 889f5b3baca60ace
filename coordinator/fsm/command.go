package fsm

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// MessageType is the leading byte of every Raft log entry: it names the
// command encoded after it.
type MessageType uint8

// Command types. Never renumber: they are in every stored Raft log.
const (
	CreateOperationType MessageType = 1
	UpdateOperationType MessageType = 2
	BumpEpochType       MessageType = 3
	SetConfigType       MessageType = 4
	RaiseAlarmType      MessageType = 5
	ClearAlarmType      MessageType = 6
	UpsertMemberType    MessageType = 7
	RemoveMemberType    MessageType = 8
	AppendAuditType     MessageType = 9
	// RemoveRosterMemberType: an operator takes an agent off its roster.
	RemoveRosterMemberType MessageType = 10
	// InvalidateRestorePointType: a late report flags a catalog entry.
	InvalidateRestorePointType MessageType = 11
	// SetBackupPlanType and DeleteBackupPlanType: backup plans.
	SetBackupPlanType    MessageType = 12
	DeleteBackupPlanType MessageType = 13
	// RecordScheduleFireType: the leader fired a plan's scheduled instant.
	RecordScheduleFireType MessageType = 14
	// PruneBackupsType: a plan's retention dropped catalog entries.
	PruneBackupsType MessageType = 15
	// ACLBootstrapType: the cluster's one ACL bootstrap (first admin token).
	ACLBootstrapType MessageType = 16
	// CreateACLTokenType and RevokeACLTokenType: bearer tokens.
	CreateACLTokenType MessageType = 17
	RevokeACLTokenType MessageType = 18
	// Types 19 and 20 are reserved for ACL and keyring commands.
)

// IgnoreUnknownTypeFlag marks a command that an older server which does not
// know its type may skip (like Nomad's). Without the flag an unknown type
// panics: replicas must never diverge silently.
const IgnoreUnknownTypeFlag MessageType = 128

func (t MessageType) String() string {
	switch t &^ IgnoreUnknownTypeFlag {
	case CreateOperationType:
		return "CreateOperation"
	case UpdateOperationType:
		return "UpdateOperation"
	case BumpEpochType:
		return "BumpEpoch"
	case SetConfigType:
		return "SetConfig"
	case RaiseAlarmType:
		return "RaiseAlarm"
	case ClearAlarmType:
		return "ClearAlarm"
	case UpsertMemberType:
		return "UpsertMember"
	case RemoveMemberType:
		return "RemoveMember"
	case AppendAuditType:
		return "AppendAudit"
	case RemoveRosterMemberType:
		return "RemoveRosterMember"
	case InvalidateRestorePointType:
		return "InvalidateRestorePoint"
	case SetBackupPlanType:
		return "SetBackupPlan"
	case DeleteBackupPlanType:
		return "DeleteBackupPlan"
	case RecordScheduleFireType:
		return "RecordScheduleFire"
	case PruneBackupsType:
		return "PruneBackups"
	case ACLBootstrapType:
		return "ACLBootstrap"
	case CreateACLTokenType:
		return "CreateACLToken"
	case RevokeACLTokenType:
		return "RevokeACLToken"
	}
	return fmt.Sprintf("MessageType(%d)", uint8(t))
}

// TypeOf returns the message type of a command message.
func TypeOf(cmd proto.Message) (MessageType, error) {
	switch cmd.(type) {
	case *pb.CreateOperationCommand:
		return CreateOperationType, nil
	case *pb.UpdateOperationCommand:
		return UpdateOperationType, nil
	case *pb.BumpEpochCommand:
		return BumpEpochType, nil
	case *pb.SetConfigCommand:
		return SetConfigType, nil
	case *pb.RaiseAlarmCommand:
		return RaiseAlarmType, nil
	case *pb.ClearAlarmCommand:
		return ClearAlarmType, nil
	case *pb.UpsertMemberCommand:
		return UpsertMemberType, nil
	case *pb.RemoveMemberCommand:
		return RemoveMemberType, nil
	case *pb.AppendAuditCommand:
		return AppendAuditType, nil
	case *pb.RemoveRosterMemberCommand:
		return RemoveRosterMemberType, nil
	case *pb.InvalidateRestorePointCommand:
		return InvalidateRestorePointType, nil
	case *pb.SetBackupPlanCommand:
		return SetBackupPlanType, nil
	case *pb.DeleteBackupPlanCommand:
		return DeleteBackupPlanType, nil
	case *pb.RecordScheduleFireCommand:
		return RecordScheduleFireType, nil
	case *pb.PruneBackupsCommand:
		return PruneBackupsType, nil
	case *pb.ACLBootstrapCommand:
		return ACLBootstrapType, nil
	case *pb.CreateACLTokenCommand:
		return CreateACLTokenType, nil
	case *pb.RevokeACLTokenCommand:
		return RevokeACLTokenType, nil
	}
	return 0, fmt.Errorf("%w: %T", ErrUnknownCommand, cmd)
}

// Encode builds a Raft log entry body: the command's type byte followed by
// the marshalled command.
func Encode(cmd proto.Message) ([]byte, error) {
	t, err := TypeOf(cmd)
	if err != nil {
		return nil, err
	}
	return EncodeAs(t, cmd)
}

// EncodeAs encodes cmd under an explicit type byte (which may carry
// IgnoreUnknownTypeFlag).
func EncodeAs(t MessageType, cmd proto.Message) ([]byte, error) {
	body, err := proto.Marshal(cmd)
	if err != nil {
		return nil, fmt.Errorf("encode %s command: %w", t, err)
	}
	return append([]byte{byte(t)}, body...), nil
}
