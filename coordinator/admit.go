package coordinator

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/stillpoint-dev/stillpoint/internal/enumname"
	"github.com/stillpoint-dev/stillpoint/internal/timefmt"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// ErrRefused wraps every admission refusal; the message names each
// offending node and the figure against its bound.
var ErrRefused = errors.New("pause refused")

// ErrUnknownCluster marks a refusal of a cluster that has no agent and no
// roster member: a name nobody ever joined (a typo). Its status carries
// the ErrorInfo reason ReasonUnknownCluster.
var ErrUnknownCluster = errors.New("unknown cluster")

// unknownClusterError is a refusal that is also ErrUnknownCluster, with
// the refusal's message.
type unknownClusterError struct {
	error
	cluster string // the clusters nobody joined, comma-separated
}

func (e unknownClusterError) Is(target error) bool { return target == ErrUnknownCluster }
func (e unknownClusterError) Unwrap() error        { return e.error }

// clusterOf is the cluster an ErrUnknownCluster names ("" for none).
func clusterOf(err error) string {
	var u unknownClusterError
	if errors.As(err, &u) {
		return u.cluster
	}
	return ""
}

// candidate is one agent considered for a pause: its gossip view and, when
// the live Status call succeeded, its fresh state.
type candidate struct {
	name     string
	grpcAddr string
	status   pb.MemberStatus
	state    *pb.AgentState
	stateErr error
	// incarnation is the agent's gossip boot id at admission.
	incarnation uint64
	// absent says why a roster member has no agent to ask (it left or is
	// not in the gossip view); empty for a present agent.
	absent string
}

// problem is one reason a candidate may not take part in a pause, with
// the catalog reason its kind refuses with and, for a clock, its error
// bound against the limit.
type problem struct {
	kind            pb.ErrorReason
	text            string
	figureNs, bound int64
}

// assess returns why one candidate may not take part in a pause (empty
// when it may). Each reason names the figure and its bound.
func assess(c candidate, cfg *pb.RuntimeConfig) []string {
	var why []string
	for _, p := range assessProblems(c, cfg) {
		why = append(why, p.text)
	}
	return why
}

// assessProblems is assess with each problem's kind.
func assessProblems(c candidate, cfg *pb.RuntimeConfig) []problem {
	const (
		absent = pb.ErrorReason_ERROR_REASON_ROSTER_MEMBER_ABSENT
		agent  = pb.ErrorReason_ERROR_REASON_PAUSE_REFUSED_AGENT
		clk    = pb.ErrorReason_ERROR_REASON_PAUSE_REFUSED_CLOCK
	)
	if c.absent != "" {
		return []problem{{kind: absent, text: c.absent}}
	}
	var why []problem
	if c.status != pb.MemberStatus_MEMBER_STATUS_ALIVE {
		kind := agent
		if c.status == pb.MemberStatus_MEMBER_STATUS_DEAD || c.status == pb.MemberStatus_MEMBER_STATUS_LEFT {
			kind = absent
		}
		why = append(why, problem{kind: kind, text: fmt.Sprintf("gossip status %s", enumname.Of(c.status))})
	}
	if c.stateErr != nil {
		return append(why, problem{kind: agent, text: fmt.Sprintf("agent at %s did not answer Status: %v", c.grpcAddr, c.stateErr)})
	}
	if c.state == nil {
		return append(why, problem{kind: agent, text: "no live agent state"})
	}
	ck := c.state.GetClock()
	bound, max := time.Duration(ck.GetErrorBoundNs()), time.Duration(cfg.GetMaxErrorBoundNs())
	if st := ck.GetStatus(); st != pb.ClockStatus_CLOCK_STATUS_SYNCHRONIZED {
		r := fmt.Sprintf("clock %s", enumname.Of(st))
		if ck.GetReason() != "" {
			r += " (" + ck.GetReason() + ")"
		}
		why = append(why, problem{kind: clk, text: r, figureNs: int64(bound), bound: int64(max)})
	}
	if boundExceeds(bound, max) {
		why = append(why, problem{kind: clk, text: fmt.Sprintf("error bound %s > max %s", timefmt.Duration(bound), timefmt.Duration(max)),
			figureNs: int64(bound), bound: int64(max)})
	}
	ns := c.state.GetNodeState()
	switch {
	case !ns.GetReachable():
		r := "node admin port unreachable"
		if ns.GetReason() != "" {
			r += " (" + ns.GetReason() + ")"
		}
		why = append(why, problem{kind: agent, text: r})
	case ns.GetPaused() == pb.PausedState_PAUSED_STATE_PAUSED && c.state.GetOpId() == "":
		why = append(why, problem{kind: agent, text: "node is already paused outside stillpoint"})
	}
	if op := c.state.GetOpId(); op != "" {
		why = append(why, problem{kind: agent, text: fmt.Sprintf("agent holds op %s", op)})
	}
	return why
}

// refusalPrecedence orders the admission reasons: a refusal with problems
// of several kinds carries the first (errors.proto documents the order).
var refusalPrecedence = []pb.ErrorReason{
	pb.ErrorReason_ERROR_REASON_ROSTER_MEMBER_ABSENT,
	pb.ErrorReason_ERROR_REASON_PAUSE_REFUSED_AGENT,
	pb.ErrorReason_ERROR_REASON_PAUSE_REFUSED_CLOCK,
	pb.ErrorReason_ERROR_REASON_PAUSE_REFUSED_DRIFT,
}

// admissionRefusal is ErrRefused with what an API error needs: the
// catalog reason (by refusalPrecedence), every offending node, and the
// figure of the reason against its bound.
type admissionRefusal struct {
	msg, cluster      string
	reason            pb.ErrorReason
	nodes             []string
	figureNs, boundNs int64
}

func (e *admissionRefusal) Error() string { return e.msg }
func (e *admissionRefusal) Unwrap() error { return ErrRefused }

// metadata is the refusal's ErrorInfo metadata.
func (e *admissionRefusal) metadata() map[string]string {
	md := map[string]string{"cluster": e.cluster, "nodes": strings.Join(e.nodes, ",")}
	if e.figureNs != 0 || e.boundNs != 0 {
		md["figure_ns"] = strconv.FormatInt(e.figureNs, 10)
		md["bound_ns"] = strconv.FormatInt(e.boundNs, 10)
	}
	return md
}

// newRefusal classifies the refusal of sorted candidates with message
// msg: the kinds of every node's problems, the spread nodes ev names.
func newRefusal(msg, cluster string, sorted []candidate, cfg *pb.RuntimeConfig, ev evaluation, spreadNodes []string) *admissionRefusal {
	kinds := map[pb.ErrorReason]bool{}
	offending := map[string]bool{}
	var clockFigure int64
	namedDrift := false
	for _, c := range sorted {
		probs := assessProblems(c, cfg)
		for _, p := range probs {
			kinds[p.kind], offending[c.name] = true, true
			if p.kind == pb.ErrorReason_ERROR_REASON_PAUSE_REFUSED_CLOCK {
				clockFigure = max(clockFigure, p.figureNs)
			}
		}
		if len(ev.perNode[c.name]) > len(probs) { // spreadProblems named it
			offending[c.name], namedDrift = true, true
		}
	}
	if spreadExceeds(time.Duration(ev.spread), time.Duration(cfg.GetMaxDriftNs())) {
		kinds[pb.ErrorReason_ERROR_REASON_PAUSE_REFUSED_DRIFT] = true
		if !namedDrift { // no node stands out: the extremes
			for _, n := range spreadNodes {
				offending[n] = true
			}
		}
	}
	r := &admissionRefusal{msg: msg, cluster: strings.ReplaceAll(cluster, "+", ","), reason: pb.ErrorReason_ERROR_REASON_PAUSE_REFUSED_AGENT}
	for _, k := range refusalPrecedence {
		if kinds[k] {
			r.reason = k
			break
		}
	}
	switch r.reason {
	case pb.ErrorReason_ERROR_REASON_PAUSE_REFUSED_CLOCK:
		r.figureNs, r.boundNs = clockFigure, cfg.GetMaxErrorBoundNs()
	case pb.ErrorReason_ERROR_REASON_PAUSE_REFUSED_DRIFT:
		r.figureNs, r.boundNs = ev.spread, cfg.GetMaxDriftNs()
	}
	for n := range offending {
		r.nodes = append(r.nodes, n)
	}
	sort.Strings(r.nodes)
	return r
}

// evaluation is what admission found: the reasons per candidate node
// (every node of the cluster has an entry, empty when admissible), and
// cluster-level problems (no agents, an offset spread no node explains).
type evaluation struct {
	perNode map[string][]string
	general []string
	spread  int64
}

// evaluate checks every candidate of cluster against cfg, the way a pause
// would be admitted.
func evaluate(cluster string, cands []candidate, cfg *pb.RuntimeConfig) evaluation {
	ev := evaluation{perNode: map[string][]string{}}
	for _, c := range cands {
		ev.perNode[c.name] = assess(c, cfg)
	}
	if len(cands) == 0 {
		ev.general = append(ev.general, fmt.Sprintf("cluster %q has no agents", cluster))
	}
	var spreadGeneral []string
	ev.spread, spreadGeneral = spreadProblems(cands, cfg.GetMaxDriftNs(), ev.perNode)
	ev.general = append(ev.general, spreadGeneral...)
	return ev
}

// admit decides whether a pause of cluster may start over the given
// candidates. It returns the target records (with the clock admitted
// under) or an error wrapping ErrRefused that names every offending node
// and figure.
func admit(cluster string, cands []candidate, cfg *pb.RuntimeConfig) ([]*pb.TargetRecord, error) {
	sorted := append([]candidate(nil), cands...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].name < sorted[j].name })
	ev := evaluate(cluster, sorted, cfg)
	problems := append([]string(nil), ev.general...)
	for _, c := range sorted {
		for _, r := range ev.perNode[c.name] {
			problems = append(problems, fmt.Sprintf("%s: %s", c.name, r))
		}
	}
	if len(problems) > 0 {
		var err error = newRefusal(fmt.Sprintf("%v for cluster %s: %s", ErrRefused, cluster, strings.Join(problems, "; ")),
			cluster, sorted, cfg, ev, spreadNodes(sorted))
		if len(cands) == 0 {
			return nil, unknownClusterError{err, cluster}
		}
		return nil, err
	}
	targets := make([]*pb.TargetRecord, 0, len(sorted))
	for _, c := range sorted {
		targets = append(targets, &pb.TargetRecord{Node: c.name, GrpcAddress: c.grpcAddr, AdmittedClock: c.state.GetClock(), AgentIncarnation: c.incarnation})
	}
	return targets, nil
}

// namedOffset is one synchronized candidate's clock offset.
type namedOffset struct {
	name string
	d    time.Duration
}

// spreadFigures is the offset spread of a cluster's synchronized
// candidates: the extremes, the median and max - min.
type spreadFigures struct {
	offs           []namedOffset // sorted by offset
	lo, hi         namedOffset
	median, spread time.Duration
}

// offsetSpread computes the spread over the synchronized candidates (the
// ones admission counts); ok is false with fewer than two.
func offsetSpread(cands []candidate) (f spreadFigures, ok bool) {
	for _, c := range cands {
		ck := c.state.GetClock()
		if c.state != nil && ck.GetStatus() == pb.ClockStatus_CLOCK_STATUS_SYNCHRONIZED {
			f.offs = append(f.offs, namedOffset{c.name, time.Duration(ck.GetOffsetNs())})
		}
	}
	if len(f.offs) < 2 {
		return f, false
	}
	sort.SliceStable(f.offs, func(i, j int) bool { return f.offs[i].d < f.offs[j].d })
	f.lo, f.hi = f.offs[0], f.offs[len(f.offs)-1]
	f.spread = f.hi.d - f.lo.d
	n := len(f.offs)
	f.median = f.offs[n/2].d
	if n%2 == 0 {
		f.median = f.offs[n/2-1].d + (f.offs[n/2].d-f.offs[n/2-1].d)/2
	}
	return f, true
}

// spreadNodes are the two extremes of cands' offset spread (none when
// fewer than two are synchronized).
func spreadNodes(cands []candidate) []string {
	f, ok := offsetSpread(cands)
	if !ok {
		return nil
	}
	return []string{f.lo.name, f.hi.name}
}

// boundExceeds is admission's error-bound test (alarms use the same).
func boundExceeds(bound, max time.Duration) bool { return max > 0 && bound > max }

// spreadExceeds is admission's offset-spread test (alarms use the same).
func spreadExceeds(spread, maxDrift time.Duration) bool { return maxDrift > 0 && spread > maxDrift }

// spreadProblems checks that the offsets of the synchronized candidates
// lie within maxDrift of each other. Every node more than maxDrift/2 from
// the median gets a reason in perNode naming its offset and deviation;
// when no single node stands out the problem is returned as general.
func spreadProblems(cands []candidate, maxDriftNs int64, perNode map[string][]string) (spreadNs int64, general []string) {
	f, ok := offsetSpread(cands)
	if !ok {
		return 0, nil
	}
	spread, maxDrift, median := f.spread, time.Duration(maxDriftNs), f.median
	if !spreadExceeds(spread, maxDrift) {
		return int64(spread), nil
	}
	named := false
	for _, o := range f.offs {
		if dev := o.d - median; dev > maxDrift/2 || -dev > maxDrift/2 {
			named = true
			perNode[o.name] = append(perNode[o.name], fmt.Sprintf("clock offset %s is %s from the cluster median %s (offset spread %s > max_drift %s)",
				timefmt.Signed(o.d), timefmt.Signed(dev), timefmt.Signed(median), timefmt.Duration(spread), timefmt.Duration(maxDrift)))
		}
	}
	if !named {
		general = append(general, fmt.Sprintf("offset spread %s > max_drift %s (%s %s .. %s %s)",
			timefmt.Duration(spread), timefmt.Duration(maxDrift), f.lo.name, timefmt.Signed(f.lo.d), f.hi.name, timefmt.Signed(f.hi.d)))
	}
	return int64(spread), general
}
