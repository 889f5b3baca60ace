package ui

import (
	"fmt"
	"strings"
	"time"

	"github.com/stillpoint-dev/stillpoint/internal/enumname"
	"github.com/stillpoint-dev/stillpoint/internal/timefmt"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// Timeline layout (SVG user units).
const (
	tlTop     = 24.0
	tlRow     = 26.0
	tlAxis    = 34.0
	whiskerHi = 7.0
)

// Whisker is one stamped instant drawn as true time ± bound.
type Whisker struct {
	X, Lo, Hi float64
	Label     string
}

// TargetRow is one target's paused interval: from its ack to its unpause
// stamp (true time), each end with its ± bound.
type TargetRow struct {
	Node                  string
	Y                     float64
	HasAck, HasUnpause    bool
	Ack, Unpause          Whisker
	Interrupted           bool
	PauseOutcome, Message string
	// Open: the op still holds the node; the bar runs from the ack to now.
	Open  bool
	OpenX float64
}

// HookBar is one hook run drawn from its start to its end.
type HookBar struct {
	Label  string
	Y      float64
	X0, X1 float64
	Class  string
}

// OpChart is one operation drawn on its own time axis.
type OpChart struct {
	OpID                   string
	Width, Height          float64
	PlotX0, PlotX1         float64
	TopY, AxisY            float64
	Rows                   []TargetRow
	Hooks                  []HookBar
	HasWindow              bool
	WinX0, WinX1, RestoreX float64
	Ticks                  []Tick
	Origin                 string
	Drawable               bool
}

// now is the clock a running op's open bars end at (tests replace it).
var now = time.Now

// trueTime is a stamp's local time corrected by its estimate's offset,
// and the estimate's bound.
func trueTime(st *pb.StampedTime) (time.Time, time.Duration, bool) {
	if st.GetLocalTime() == nil {
		return time.Time{}, 0, false
	}
	est := st.GetEstimate()
	return st.GetLocalTime().AsTime().Add(time.Duration(est.GetOffsetNs())), time.Duration(est.GetErrorBoundNs()), true
}

// NewOpChart lays out op's targets, hooks, window and restore point on
// one time axis; times in the labels are shown in loc.
func NewOpChart(op *pb.Operation, loc *time.Location, width float64) OpChart {
	ch := OpChart{OpID: op.GetOpId(), Width: width, PlotX0: labelWidth + 20, PlotX1: width - 30, TopY: tlTop}
	var lo, hi time.Time
	span := func(t time.Time) {
		if lo.IsZero() || t.Before(lo) {
			lo = t
		}
		if hi.IsZero() || t.After(hi) {
			hi = t
		}
	}
	for _, tg := range op.GetTargets() {
		for _, st := range []*pb.StampedTime{tg.GetAckedAt(), tg.GetUnpauseSentAt()} {
			if t, b, ok := trueTime(st); ok {
				span(t.Add(-b))
				span(t.Add(b))
			}
		}
	}
	running := !isTerminal(op.GetState())
	if running {
		span(now())
	}
	w := op.GetWindow()
	hasWindow := w.GetStart() != nil && w.GetEnd() != nil && op.GetState() == pb.OperationState_OPERATION_STATE_COMPLETED
	if hasWindow {
		span(w.GetStart().AsTime())
		span(w.GetEnd().AsTime())
	}
	for _, h := range op.GetBackup().GetHooks() {
		if t, _, ok := trueTime(h.GetStartedAt()); ok {
			span(t)
		}
		if t, _, ok := trueTime(h.GetEndedAt()); ok {
			span(t)
		}
	}
	if lo.IsZero() {
		ch.AxisY = tlTop
		ch.Height = tlTop
		return ch
	}
	ch.Drawable = true
	sc := NewTimeScale(lo, hi, 0.04, ch.PlotX0, ch.PlotX1)
	origin := lo
	if hasWindow {
		origin = w.GetRestorePoint().AsTime()
		ch.HasWindow = true
		ch.WinX0, ch.WinX1, ch.RestoreX = sc.X(w.GetStart().AsTime()), sc.X(w.GetEnd().AsTime()), sc.X(origin)
		ch.Origin = "restore point " + timefmt.InZone(origin, loc)
	} else {
		ch.Origin = "first ack " + timefmt.InZone(origin, loc)
	}
	ch.Ticks = sc.Ticks(8, origin)
	y := tlTop + tlRow/2
	whisker := func(st *pb.StampedTime) (Whisker, bool) {
		t, b, ok := trueTime(st)
		if !ok {
			return Whisker{}, false
		}
		return Whisker{X: sc.X(t), Lo: sc.X(t.Add(-b)), Hi: sc.X(t.Add(b)), Label: timefmt.InZone(t, loc) + " " + timefmt.PlusMinus(b)}, true
	}
	for _, tg := range op.GetTargets() {
		r := TargetRow{Node: tg.GetNode(), Y: y, Interrupted: tg.GetNodeInterrupted() || tg.GetInterruptedReportedLate(),
			PauseOutcome: enumname.Of(tg.GetPauseOutcome()), Message: tg.GetPauseMessage()}
		r.Ack, r.HasAck = whisker(tg.GetAckedAt())
		r.Unpause, r.HasUnpause = whisker(tg.GetUnpauseSentAt())
		if running && r.HasAck && !r.HasUnpause {
			r.Open, r.OpenX = true, sc.X(now())
		}
		ch.Rows = append(ch.Rows, r)
		y += tlRow
	}
	for _, h := range op.GetBackup().GetHooks() {
		t0, _, ok0 := trueTime(h.GetStartedAt())
		t1, _, ok1 := trueTime(h.GetEndedAt())
		if !ok0 {
			continue
		}
		if !ok1 {
			t1 = t0
		}
		ch.Hooks = append(ch.Hooks, HookBar{
			Label: fmt.Sprintf("%s: %s/%s", h.GetGroup(), h.GetRef().GetAgent(), h.GetRef().GetHook()),
			Y:     y, X0: sc.X(t0), X1: sc.X(t1), Class: hookClass(h.GetState()),
		})
		y += tlRow
	}
	ch.AxisY = y - tlRow/2 + tlRow/2 + 4
	ch.Height = ch.AxisY + tlAxis
	return ch
}

func hookClass(s pb.HookState) string {
	switch s {
	case pb.HookState_HOOK_STATE_SUCCEEDED:
		return "ok"
	case pb.HookState_HOOK_STATE_RUNNING, pb.HookState_HOOK_STATE_PENDING:
		return "warn"
	default:
		return "bad"
	}
}

// OpView is an operation's summary for the pages.
type OpView struct {
	Op          *pb.Operation
	ID          string
	Clusters    string
	State       string
	StateClass  string
	Reason      string
	Created     string
	Ended       string
	Window      string
	RestorePt   string
	RestoreUTC  string
	EpochMS     int64
	Uncertainty string
	Hold        string
	Plan        string
	Invalidated string
	Chart       OpChart
	Hooks       []HookView
}

// HookView is one hook run as the op page lists it.
type HookView struct {
	Step, Group, Agent, Hook, State, StateClass string
	Started, Duration, Message, Output          string
	Exit                                        int32
	Truncated                                   bool
}

// NewOpView summarises op with its times in loc.
func NewOpView(op *pb.Operation, loc *time.Location, width float64) OpView {
	v := OpView{Op: op, ID: op.GetOpId(), State: enumname.Of(op.GetState()), Reason: op.GetReason(),
		Hold: timefmt.Duration(time.Duration(op.GetHoldNs())), Plan: op.GetBackup().GetPlan().GetName(),
		Invalidated: op.GetInvalidatedReason()}
	cl := op.GetClusters()
	if len(cl) == 0 {
		cl = []string{op.GetCluster()}
	}
	v.Clusters = strings.Join(cl, ", ")
	switch op.GetState() {
	case pb.OperationState_OPERATION_STATE_COMPLETED:
		v.StateClass = "ok"
		if op.GetInvalidatedAfterCompletion() {
			v.StateClass = "bad"
		}
	case pb.OperationState_OPERATION_STATE_INVALID, pb.OperationState_OPERATION_STATE_ABORTED:
		v.StateClass = "bad"
	default:
		v.StateClass = "warn"
	}
	if t, _, ok := trueTime(op.GetCreatedAt()); ok {
		v.Created = timefmt.InZone(t, loc)
	}
	if t, _, ok := trueTime(op.GetEndedAt()); ok {
		v.Ended = timefmt.InZone(t, loc)
	}
	if w := op.GetWindow(); w.GetRestorePoint() != nil && op.GetState() == pb.OperationState_OPERATION_STATE_COMPLETED {
		rp := w.GetRestorePoint().AsTime()
		v.RestorePt = timefmt.InZone(rp, loc)
		v.RestoreUTC = timefmt.UTC(rp)
		v.EpochMS = timefmt.EpochMillis(rp)
		v.Uncertainty = timefmt.PlusMinus(time.Duration(w.GetUncertaintyNs()))
		v.Window = timefmt.InZone(w.GetStart().AsTime(), loc) + " .. " + timefmt.InZone(w.GetEnd().AsTime(), loc)
	}
	v.Chart = NewOpChart(op, loc, width)
	for _, h := range op.GetBackup().GetHooks() {
		hv := HookView{Step: h.GetStepId(), Group: h.GetGroup(), Agent: h.GetRef().GetAgent(), Hook: h.GetRef().GetHook(),
			State: enumname.Of(h.GetState()), StateClass: hookClass(h.GetState()), Exit: h.GetExitCode(),
			Message: h.GetMessage(), Output: string(h.GetOutputTail()), Truncated: h.GetOutputTruncated()}
		if h.GetDurationNs() > 0 {
			hv.Duration = timefmt.Duration(time.Duration(h.GetDurationNs()))
		}
		if t, _, ok := trueTime(h.GetStartedAt()); ok {
			hv.Started = timefmt.InZone(t, loc)
		}
		v.Hooks = append(v.Hooks, hv)
	}
	return v
}

// StripOp is one operation on the recent-ops strip.
type StripOp struct {
	ID, State, Class, Label string
	X0, X1                  float64
	HasRP                   bool
	RPX                     float64
}

// Strip is the recent operations on one shared time axis: each op from
// its creation to its end (or now), the restore point of a completed one
// marked.
type Strip struct {
	Width, Height, Y float64
	PlotX0, PlotX1   float64
	Ops              []StripOp
	From, To         string
}

// NewStrip lays ops out on one axis from the earliest creation to the
// latest end (now for a running op); times labelled in loc.
func NewStrip(ops []*pb.Operation, now time.Time, loc *time.Location, width float64) Strip {
	st := Strip{Width: width, Height: 44, Y: 16, PlotX0: 20, PlotX1: width - 20}
	type span struct{ t0, t1 time.Time }
	var lo, hi time.Time
	spans := make([]span, len(ops))
	for i, op := range ops {
		t0, _, ok := trueTime(op.GetCreatedAt())
		if !ok {
			continue
		}
		t1, _, ok := trueTime(op.GetEndedAt())
		switch {
		case !isTerminal(op.GetState()):
			t1 = now
		case !ok:
			t1 = t0
		}
		spans[i] = span{t0, t1}
		if lo.IsZero() || t0.Before(lo) {
			lo = t0
		}
		if t1.After(hi) {
			hi = t1
		}
	}
	if lo.IsZero() {
		return st
	}
	sc := NewTimeScale(lo, hi, 0.02, st.PlotX0, st.PlotX1)
	st.From, st.To = timefmt.InZone(sc.T0, loc), timefmt.InZone(sc.T1, loc)
	for i, op := range ops {
		if spans[i].t0.IsZero() {
			continue
		}
		v := NewOpView(op, loc, 0)
		so := StripOp{ID: op.GetOpId(), State: v.State, Class: v.StateClass, X0: sc.X(spans[i].t0), X1: sc.X(spans[i].t1),
			Label: op.GetOpId() + " " + v.State + " " + v.Clusters}
		if so.X1-so.X0 < 3 {
			so.X1 = so.X0 + 3 // a pause of milliseconds on an axis of hours stays visible
		}
		if v.RestorePt != "" {
			so.HasRP, so.RPX = true, sc.X(op.GetWindow().GetRestorePoint().AsTime())
			so.Label += ", restore point " + v.RestorePt
		}
		st.Ops = append(st.Ops, so)
	}
	return st
}
