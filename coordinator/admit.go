package coordinator

import (
	"errors"
	"fmt"
	"sort"
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
type unknownClusterError struct{ error }

func (e unknownClusterError) Is(target error) bool { return target == ErrUnknownCluster }
func (e unknownClusterError) Unwrap() error        { return e.error }

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

// assess returns why one candidate may not take part in a pause (empty
// when it may). Each reason names the figure and its bound.
func assess(c candidate, cfg *pb.RuntimeConfig) []string {
	if c.absent != "" {
		return []string{c.absent}
	}
	var why []string
	if c.status != pb.MemberStatus_MEMBER_STATUS_ALIVE {
		why = append(why, fmt.Sprintf("gossip status %s", enumname.Of(c.status)))
	}
	if c.stateErr != nil {
		return append(why, fmt.Sprintf("agent at %s did not answer Status: %v", c.grpcAddr, c.stateErr))
	}
	if c.state == nil {
		return append(why, "no live agent state")
	}
	ck := c.state.GetClock()
	if st := ck.GetStatus(); st != pb.ClockStatus_CLOCK_STATUS_SYNCHRONIZED {
		r := fmt.Sprintf("clock %s", enumname.Of(st))
		if ck.GetReason() != "" {
			r += " (" + ck.GetReason() + ")"
		}
		why = append(why, r)
	}
	if bound, max := time.Duration(ck.GetErrorBoundNs()), time.Duration(cfg.GetMaxErrorBoundNs()); boundExceeds(bound, max) {
		why = append(why, fmt.Sprintf("error bound %s > max %s", timefmt.Duration(bound), timefmt.Duration(max)))
	}
	ns := c.state.GetNodeState()
	switch {
	case !ns.GetReachable():
		r := "node admin port unreachable"
		if ns.GetReason() != "" {
			r += " (" + ns.GetReason() + ")"
		}
		why = append(why, r)
	case ns.GetPaused() == pb.PausedState_PAUSED_STATE_PAUSED && c.state.GetOpId() == "":
		why = append(why, "node is already paused outside stillpoint")
	}
	if op := c.state.GetOpId(); op != "" {
		why = append(why, fmt.Sprintf("agent holds op %s", op))
	}
	return why
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
		err := fmt.Errorf("%w for cluster %s: %s", ErrRefused, cluster, strings.Join(problems, "; "))
		if len(cands) == 0 {
			return nil, unknownClusterError{err}
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
