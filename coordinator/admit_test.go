package coordinator

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// Unit tests of admission (SPEC "Pause protocol" step 1) with fake
// candidates: every refusal names the node and the figure against its bound.

var admitCfg = &pb.RuntimeConfig{MaxErrorBoundNs: int64(50 * time.Millisecond), MaxDriftNs: int64(100 * time.Millisecond)}

// admissible is an admissible candidate with clock offset off and bound eps.
func admissible(name string, off, eps time.Duration) candidate {
	return candidate{
		name: name, grpcAddr: name + ":7001", status: pb.MemberStatus_MEMBER_STATUS_ALIVE, incarnation: 7,
		state: &pb.AgentState{
			Node:      name,
			Clock:     &pb.ClockEstimate{OffsetNs: int64(off), ErrorBoundNs: int64(eps), Status: pb.ClockStatus_CLOCK_STATUS_SYNCHRONIZED},
			NodeState: &pb.NodeState{Reachable: true, Paused: pb.PausedState_PAUSED_STATE_UNPAUSED},
		},
	}
}

func withCand(c candidate, f func(*candidate)) candidate {
	f(&c)
	return c
}

func TestAssess(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    candidate
		want []string // substrings, one per reason, in order; none: admissible
	}{
		{"healthy", admissible("n1", 0, time.Millisecond), nil},
		{"bound equal to the max is admitted", admissible("n1", 0, 50*time.Millisecond), nil},
		{"absent roster member", candidate{name: "n1", absent: "on the roster but not in the gossip view"}, []string{"on the roster but not in the gossip view"}},
		{"suspect", withCand(admissible("n1", 0, time.Millisecond), func(c *candidate) { c.status = pb.MemberStatus_MEMBER_STATUS_SUSPECT }),
			[]string{"gossip status suspect"}},
		{"status call failed", withCand(admissible("n1", 0, time.Millisecond), func(c *candidate) { c.state, c.stateErr = nil, errors.New("connection refused") }),
			[]string{"agent at n1:7001 did not answer Status: connection refused"}},
		{"no state", withCand(admissible("n1", 0, time.Millisecond), func(c *candidate) { c.state = nil }), []string{"no live agent state"}},
		{"unsynchronized with its reason", withCand(admissible("n1", 0, time.Millisecond), func(c *candidate) {
			c.state.Clock.Status, c.state.Clock.Reason = pb.ClockStatus_CLOCK_STATUS_UNSYNCHRONIZED, "no majority of 3 servers"
		}), []string{"clock unsynchronized (no majority of 3 servers)"}},
		{"stale", withCand(admissible("n1", 0, time.Millisecond), func(c *candidate) { c.state.Clock.Status = pb.ClockStatus_CLOCK_STATUS_STALE }),
			[]string{"clock stale"}},
		{"bound over the max", admissible("n1", 0, 60*time.Millisecond), []string{"error bound 60ms > max 50ms"}},
		{"node unreachable", withCand(admissible("n1", 0, time.Millisecond), func(c *candidate) {
			c.state.NodeState = &pb.NodeState{Reachable: false, Reason: "dial tcp 10.0.0.1:50053: connection refused"}
		}), []string{"node admin port unreachable (dial tcp 10.0.0.1:50053: connection refused)"}},
		{"paused outside stillpoint", withCand(admissible("n1", 0, time.Millisecond), func(c *candidate) {
			c.state.NodeState.Paused = pb.PausedState_PAUSED_STATE_PAUSED
		}), []string{"node is already paused outside stillpoint"}},
		{"held by an op", withCand(admissible("n1", 0, time.Millisecond), func(c *candidate) {
			c.state.OpId = "op-1"
			c.state.NodeState.Paused = pb.PausedState_PAUSED_STATE_PAUSED
		}), []string{"agent holds op op-1"}},
		{"every reason at once", withCand(admissible("n1", 0, 70*time.Millisecond), func(c *candidate) {
			c.status = pb.MemberStatus_MEMBER_STATUS_SUSPECT
			c.state.Clock.Status = pb.ClockStatus_CLOCK_STATUS_DISRUPTED
			c.state.NodeState.Reachable = false
			c.state.OpId = "op-2"
		}), []string{"gossip status suspect", "clock disrupted", "error bound 70ms > max 50ms", "node admin port unreachable", "agent holds op op-2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := assess(tc.c, admitCfg)
			if len(got) != len(tc.want) {
				t.Fatalf("assess = %q, want %d reasons like %q", got, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("reason %d = %q, want it to contain %q", i, got[i], w)
				}
			}
		})
	}
}

func TestSpreadProblems(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		name        string
		cands       []candidate
		maxDrift    time.Duration
		wantSpread  time.Duration
		wantNamed   map[string]string // node -> substring of its reason
		wantGeneral string
	}{
		{name: "one synchronized node has no spread", cands: []candidate{admissible("a", 30*ms, ms)}, maxDrift: 100 * ms},
		{name: "within max_drift", cands: []candidate{admissible("a", -40*ms, ms), admissible("b", 10*ms, ms), admissible("c", 60*ms, ms)},
			maxDrift: 100 * ms, wantSpread: 100 * ms},
		{name: "one outlier is named with its offset, deviation and the median",
			cands:    []candidate{admissible("a", 0, ms), admissible("b", 5*ms, ms), admissible("c", 150*ms, ms)},
			maxDrift: 100 * ms, wantSpread: 150 * ms,
			wantNamed: map[string]string{"c": "clock offset +150ms is +145ms from the cluster median +5ms (offset spread 150ms > max_drift 100ms)"}},
		{name: "two halves: both sides named against the mid-point median",
			cands:    []candidate{admissible("a", 0, ms), admissible("b", 120*ms, ms)},
			maxDrift: 100 * ms, wantSpread: 120 * ms,
			wantNamed: map[string]string{"a": "is -60ms from the cluster median +60ms", "b": "is +60ms from the cluster median +60ms"}},
		{name: "unsynchronized clocks do not count",
			cands: []candidate{admissible("a", 0, ms), admissible("b", 10*ms, ms),
				withCand(admissible("c", 900*ms, ms), func(c *candidate) { c.state.Clock.Status = pb.ClockStatus_CLOCK_STATUS_UNSYNCHRONIZED })},
			maxDrift: 100 * ms, wantSpread: 10 * ms},
		{name: "candidates without state do not count",
			cands:    []candidate{admissible("a", 0, ms), withCand(admissible("b", 500*ms, ms), func(c *candidate) { c.state = nil })},
			maxDrift: 100 * ms},
		{name: "max_drift 0 checks nothing", cands: []candidate{admissible("a", 0, ms), admissible("b", time.Second, ms)}, wantSpread: time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			perNode := map[string][]string{}
			spread, general := spreadProblems(tc.cands, int64(tc.maxDrift), perNode)
			if time.Duration(spread) != tc.wantSpread {
				t.Errorf("spread = %v, want %v", time.Duration(spread), tc.wantSpread)
			}
			if got := strings.Join(general, "; "); !strings.Contains(got, tc.wantGeneral) || (tc.wantGeneral == "" && got != "") {
				t.Errorf("general = %q, want %q", got, tc.wantGeneral)
			}
			if len(perNode) != len(tc.wantNamed) {
				t.Errorf("named %v, want %v", perNode, tc.wantNamed)
			}
			for n, w := range tc.wantNamed {
				if len(perNode[n]) != 1 || !strings.Contains(perNode[n][0], w) {
					t.Errorf("%s: %q, want one reason containing %q", n, perNode[n], w)
				}
			}
		})
	}
}

// A spread over max_drift always has a node more than max_drift/2 from
// the median, so the refusal always names a node: sweep offsets around the
// boundary and check no spread refusal is left general.
func TestSpreadOverMaxDriftAlwaysNamesANode(t *testing.T) {
	maxDrift := 100 * time.Millisecond
	for n := 2; n <= 5; n++ {
		for step := time.Duration(1); step < 3*time.Millisecond; step = step*7 + 3 {
			var cands []candidate
			for i := range n {
				off := time.Duration(i) * (maxDrift + step) / time.Duration(n-1)
				cands = append(cands, admissible(fmt.Sprintf("n%d", i), off, time.Millisecond))
			}
			perNode := map[string][]string{}
			spread, general := spreadProblems(cands, int64(maxDrift), perNode)
			if time.Duration(spread) <= maxDrift {
				continue
			}
			if len(perNode) == 0 || len(general) != 0 {
				t.Errorf("%d nodes, spread %v: named %v, general %q", n, time.Duration(spread), perNode, general)
			}
		}
	}
}

func TestEvaluate(t *testing.T) {
	ev := evaluate("ledger", nil, admitCfg)
	if len(ev.general) != 1 || ev.general[0] != `cluster "ledger" has no agents` {
		t.Errorf("no candidates: general = %q", ev.general)
	}
	cands := []candidate{admissible("a", 0, time.Millisecond), admissible("b", 0, 80*time.Millisecond)}
	ev = evaluate("ledger", cands, admitCfg)
	if r, ok := ev.perNode["a"]; !ok || len(r) != 0 {
		t.Errorf("an admissible node has an empty entry: %q, %v", r, ok)
	}
	if r := ev.perNode["b"]; len(r) != 1 || !strings.Contains(r[0], "error bound 80ms > max 50ms") {
		t.Errorf("b: %q", r)
	}
	if len(ev.general) != 0 {
		t.Errorf("general = %q", ev.general)
	}
}

func TestAdmit(t *testing.T) {
	ms := time.Millisecond
	t.Run("admitted targets are sorted and carry what admission saw", func(t *testing.T) {
		targets, err := admit("ledger", []candidate{admissible("c", 3*ms, 2*ms), admissible("a", -ms, ms), admissible("b", 0, ms)}, admitCfg)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, tg := range targets {
			names = append(names, tg.GetNode())
		}
		if strings.Join(names, ",") != "a,b,c" {
			t.Fatalf("targets %v, want a,b,c", names)
		}
		c := targets[2]
		if c.GetGrpcAddress() != "c:7001" || c.GetAgentIncarnation() != 7 || c.GetAdmittedClock().GetOffsetNs() != int64(3*ms) || c.GetAdmittedClock().GetErrorBoundNs() != int64(2*ms) {
			t.Errorf("target c = %v", c)
		}
	})
	t.Run("a refusal wraps ErrRefused and names every node with its figure", func(t *testing.T) {
		cands := []candidate{
			admissible("b", 0, 90*ms),
			{name: "d", absent: "on the roster of ledger but its agent left"},
			admissible("a", 0, ms),
			admissible("c", 400*ms, ms),
			admissible("e", 10*ms, ms),
		}
		targets, err := admit("ledger", cands, admitCfg)
		if !errors.Is(err, ErrRefused) || targets != nil {
			t.Fatalf("admit = %v, %v; want ErrRefused", targets, err)
		}
		msg := err.Error()
		for _, w := range []string{"pause refused for cluster ledger: ", "b: error bound 90ms > max 50ms", "c: clock offset +400ms", "d: on the roster of ledger but its agent left"} {
			if !strings.Contains(msg, w) {
				t.Errorf("refusal %q does not contain %q", msg, w)
			}
		}
		if strings.Contains(msg, "a:") || strings.Contains(msg, "e:") {
			t.Errorf("refusal names an admissible node: %q", msg)
		}
		if ib, ic, id := strings.Index(msg, "b:"), strings.Index(msg, "c:"), strings.Index(msg, "d:"); !(ib < ic && ic < id) {
			t.Errorf("refusal not in node order: %q", msg)
		}
	})
	t.Run("no agents", func(t *testing.T) {
		if _, err := admit("auditor", nil, admitCfg); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), `cluster "auditor" has no agents`) {
			t.Errorf("admit with no candidates = %v", err)
		}
	})
}

// A refusal with problems of several kinds carries the first reason in
// refusalPrecedence, lists every offending node whatever its problem, and
// the figure and bound of the reason it carries.
func TestAdmitRefusalPrecedence(t *testing.T) {
	absent := withCand(admissible("a", 0, time.Millisecond), func(c *candidate) { c.absent = "on the roster but gone" })
	unreachable := withCand(admissible("b", 0, time.Millisecond), func(c *candidate) { c.state.NodeState.Reachable = false })
	wide := admissible("c", 0, 80*time.Millisecond)
	far := admissible("d", 300*time.Millisecond, time.Millisecond)
	fine := admissible("e", 0, time.Millisecond)
	fine2 := admissible("f", 0, time.Millisecond)
	for _, tc := range []struct {
		cands         []candidate
		reason        pb.ErrorReason
		nodes         string
		figure, bound time.Duration
	}{
		{[]candidate{fine, far, wide, unreachable, absent}, pb.ErrorReason_ERROR_REASON_ROSTER_MEMBER_ABSENT, "a,b,c,d", 0, 0},
		{[]candidate{fine, far, wide, unreachable}, pb.ErrorReason_ERROR_REASON_PAUSE_REFUSED_AGENT, "b,c,d", 0, 0},
		{[]candidate{fine, far, wide}, pb.ErrorReason_ERROR_REASON_PAUSE_REFUSED_CLOCK, "c,d", 80 * time.Millisecond, 50 * time.Millisecond},
		{[]candidate{fine, fine2, far}, pb.ErrorReason_ERROR_REASON_PAUSE_REFUSED_DRIFT, "d", 300 * time.Millisecond, 100 * time.Millisecond},
	} {
		_, err := admit("ledger", tc.cands, admitCfg)
		var r *admissionRefusal
		if !errors.As(err, &r) || !errors.Is(err, ErrRefused) {
			t.Fatalf("admit(%d candidates) = %v, want an admissionRefusal", len(tc.cands), err)
		}
		md := r.metadata()
		if r.reason != tc.reason || md["nodes"] != tc.nodes || md["cluster"] != "ledger" ||
			r.figureNs != int64(tc.figure) || r.boundNs != int64(tc.bound) {
			t.Errorf("%d candidates: %s %v, want %s nodes %s figure %v bound %v", len(tc.cands), r.reason.Reason(), md, tc.reason.Reason(), tc.nodes, tc.figure, tc.bound)
		}
	}
}
