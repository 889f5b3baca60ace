package coordinator

import (
	"cmp"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/stillpoint-dev/stillpoint/coordinator/fsm"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// alarmHysteresis is the leader's in-memory evaluation state: since when
// each condition has held without its alarm raised (pending), and since
// when each raised alarm's condition has been clear (clearing). It is lost
// with leadership on purpose: a new leader starts it empty, finds the
// raised alarms in the FSM (same ids) and so neither raises them twice
// nor drops them; a clear then waits a full clear_for again.
type alarmHysteresis struct {
	pending  map[string]pendingCond
	clearing map[string]time.Time
}

// pendingCond is a condition seen but not yet raised: when it was first
// seen and last seen.
type pendingCond struct{ since, last time.Time }

func newAlarmHysteresis() *alarmHysteresis {
	return &alarmHysteresis{pending: map[string]pendingCond{}, clearing: map[string]time.Time{}}
}

// alarmDecision is what the leader should commit now.
type alarmDecision struct {
	// raise holds new alarms (first_seen set to when the condition began)
	// and updates of raised ones (changed figure, nodes or message).
	raise []*pb.Alarm
	// firstSeen is when each raised alarm's condition began, by id.
	firstSeen map[string]time.Time
	clear     []string
	// next is how long until a pending raise or clear falls due (0: none).
	next time.Duration
}

// step advances the hysteresis to now over the conditions that hold and
// the evaluator's alarms active in the FSM (by id). A condition raises
// its alarm when it holds and was first seen set.For ago, with no gap as
// long as set.ClearFor since (so a figure hovering at its threshold
// raises once instead of never); a raised alarm clears once its
// condition has been clear for set.ClearFor; a condition that comes back
// while clearing cancels the clear (no flapping). A raised alarm whose
// figure or message changed is updated at most once per set.For, at once
// when its nodes or severity change.
func (h *alarmHysteresis) step(now time.Time, conds map[string]alarmCond, raised map[string]*pb.Alarm, set fsm.AlarmSettings) alarmDecision {
	d := alarmDecision{firstSeen: map[string]time.Time{}}
	due := func(at time.Time, after time.Duration) bool {
		left := at.Add(after).Sub(now)
		if left <= 0 {
			return true
		}
		if d.next == 0 || left < d.next {
			d.next = left
		}
		return false
	}
	for id, c := range conds {
		delete(h.clearing, id)
		if cur, ok := raised[id]; ok {
			delete(h.pending, id)
			if alarmChanged(cur, c.alarm, now, set.For) {
				d.raise = append(d.raise, c.alarm)
			}
			continue
		}
		p, ok := h.pending[id]
		if !ok {
			p.since = now
		}
		p.last = now
		h.pending[id] = p
		if due(p.since, set.For) {
			d.raise = append(d.raise, c.alarm)
			d.firstSeen[id] = p.since
		}
	}
	for id, p := range h.pending {
		if _, ok := conds[id]; !ok && now.Sub(p.last) >= set.ClearFor {
			delete(h.pending, id)
		}
	}
	for id := range raised {
		if _, ok := conds[id]; ok {
			continue
		}
		since, ok := h.clearing[id]
		if !ok {
			since = now
			h.clearing[id] = now
		}
		if due(since, set.ClearFor) {
			d.clear = append(d.clear, id)
		}
	}
	for id := range h.clearing {
		if _, ok := raised[id]; !ok {
			delete(h.clearing, id)
		}
	}
	slices.SortFunc(d.raise, func(a, b *pb.Alarm) int { return cmp.Compare(a.GetId(), b.GetId()) })
	slices.Sort(d.clear)
	return d
}

// alarmChanged says whether a raised alarm should be updated to next.
func alarmChanged(cur, next *pb.Alarm, now time.Time, every time.Duration) bool {
	if cur.GetSeverity() != next.GetSeverity() || !slices.Equal(cur.GetNodes(), next.GetNodes()) || cur.GetLimit() != next.GetLimit() {
		return true
	}
	if cur.GetFigure() == next.GetFigure() && cur.GetMessage() == next.GetMessage() {
		return false
	}
	last := cur.GetUpdatedAt()
	if last == nil {
		last = cur.GetRaisedAt()
	}
	if last.GetLocalTime() == nil {
		return true
	}
	return now.Sub(last.GetLocalTime().AsTime()) >= every
}

// evaluatorAlarms is the evaluator's active alarms in the FSM, by id.
func evaluatorAlarms(all []*pb.Alarm) map[string]*pb.Alarm {
	out := map[string]*pb.Alarm{}
	for _, a := range all {
		if a.GetActive() && evaluatorKinds[a.GetKind()] {
			out[a.GetId()] = proto.Clone(a).(*pb.Alarm)
		}
	}
	return out
}
