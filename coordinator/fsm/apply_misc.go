package fsm

import (
	"fmt"

	"go.uber.org/zap"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

func (f *FSM) applyBumpEpoch(_ uint64, cmd *pb.BumpEpochCommand) (proto.Message, error) {
	f.st.epoch++
	f.log.Info("fencing epoch bumped", zap.Uint64("epoch", f.st.epoch), zap.String("leader", cmd.GetLeaderId()))
	return wrapperspb.UInt64(f.st.epoch), nil
}

func (f *FSM) applySetConfig(index uint64, cmd *pb.SetConfigCommand) (proto.Message, error) {
	if err := ValidateRuntimeConfig(cmd.GetConfig()); err != nil {
		return nil, err
	}
	old := f.st.config
	f.st.config = clone(cmd.GetConfig())
	stripRetired(f.st.config)
	f.audit(index, AuditConfigChange, cmd.GetActor(), "", describeConfigChange(old, f.st.config), cmd.GetAt())
	f.attachCaller(cmd.GetCaller())
	return clone(f.st.config), nil
}

func (f *FSM) applyUpsertMember(_ uint64, cmd *pb.UpsertMemberCommand) (proto.Message, error) {
	m := cmd.GetMember()
	if m.GetName() == "" {
		return nil, fmt.Errorf("%w: member without name", ErrInvalidCommand)
	}
	f.st.members[m.GetName()] = clone(m)
	return clone(m), nil
}

func (f *FSM) applyRemoveMember(_ uint64, cmd *pb.RemoveMemberCommand) (proto.Message, error) {
	if _, ok := f.st.members[cmd.GetName()]; !ok {
		return nil, fmt.Errorf("%w: %s", ErrMemberNotFound, cmd.GetName())
	}
	delete(f.st.members, cmd.GetName())
	return nil, nil
}

func (f *FSM) applyAppendAudit(index uint64, cmd *pb.AppendAuditCommand) (proto.Message, error) {
	r := cmd.GetRecord()
	if r.GetAction() == "" {
		return nil, fmt.Errorf("%w: audit record without action", ErrInvalidCommand)
	}
	f.audit(index, r.GetAction(), r.GetActor(), r.GetOpId(), r.GetDetail(), r.GetAt())
	last := f.st.audit[len(f.st.audit)-1]
	last.Method, last.RefusedCode = r.GetMethod(), r.GetRefusedCode()
	f.attachCaller(r.GetCaller())
	return clone(f.st.audit[len(f.st.audit)-1]), nil
}
