package coordinator

import (
	"google.golang.org/protobuf/proto"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// WatchAlarms streams the alarms from this server's replica: every alarm
// first (active ones, and cleared ones still kept on request), then each
// alarm as it is raised, updated or cleared, until the client hangs up.
// Any server answers (no leader needed); the replica lags the leader by at
// most the commit of the change.
func (s *Server) WatchAlarms(req *pb.WatchAlarmsRequest, stream pb.CoordinatorService_WatchAlarmsServer) error {
	ctx := stream.Context()
	ch := s.fsm.Changed()
	all := s.fsm.Alarms(true)
	last := make(map[string]*pb.Alarm, len(all))
	initial := &pb.WatchAlarmsResponse{Initial: true, ServedBy: s.cfg.NodeID}
	for _, a := range all {
		last[a.GetId()] = a
		if a.GetActive() || req.GetIncludeCleared() {
			initial.Alarms = append(initial.Alarms, a)
		}
	}
	if err := stream.Send(initial); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.shutdownCh:
			return nil
		case <-ch:
		}
		ch = s.fsm.Changed()
		resp := &pb.WatchAlarmsResponse{ServedBy: s.cfg.NodeID}
		for _, a := range s.fsm.Alarms(true) {
			if prev, ok := last[a.GetId()]; ok && proto.Equal(prev, a) {
				continue
			}
			last[a.GetId()] = a
			resp.Alarms = append(resp.Alarms, a)
		}
		if len(resp.GetAlarms()) == 0 {
			continue
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
}
