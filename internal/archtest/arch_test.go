// Package archtest enforces the architecture's never-rules (issue 16 item 4)
// over the module's production import graph: `go list -deps -json ./...`,
// non-test imports only (a package's _test files may use the harnesses).
package archtest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/stillpoint-dev/stillpoint"

// graph maps a package to its direct non-test imports. Packages of this module
// are named relative to the module root ("coordinator/fsm"); others keep their
// full path. The standard library is left out.
type graph map[string][]string

// rule forbids every package matched by from to reach (directly or through
// any chain of imports) a package matched by forbidden. exempt names packages
// the rule deliberately does not apply to.
type rule struct {
	name      string
	from      func(pkg string) bool
	forbidden func(dep string) bool
	exempt    map[string]string // package -> why
}

type violation struct {
	rule     string
	from, to string
	path     []string // from ... to
}

func (v violation) String() string {
	return fmt.Sprintf("%s: %s imports %s (via %s)", v.rule, v.from, v.to, strings.Join(v.path, " -> "))
}

func under(prefix string) func(string) bool {
	return func(p string) bool { return p == prefix || strings.HasPrefix(p, prefix+"/") }
}

func oneOf(pkgs ...string) func(string) bool {
	return func(p string) bool { return slices.Contains(pkgs, p) }
}

// inModule reports whether p is a package of this module (module-relative name).
func inModule(p string) bool { return !strings.Contains(strings.SplitN(p, "/", 2)[0], ".") }

// moduleExcept forbids every package of this module except the allowed ones.
func moduleExcept(allowed ...string) func(string) bool {
	return func(p string) bool { return inModule(p) && !slices.Contains(allowed, p) }
}

// harnesses are the simulator and test harnesses production code never links.
var harnesses = []string{"internal/simnode", "internal/devcluster", "internal/testcluster", "internal/ntptest", "internal/peertest"}

var rules = []rule{
	{name: "agent never imports coordinator", from: under("agent"), forbidden: under("coordinator")},
	{name: "coordinator never imports agent", from: under("coordinator"), forbidden: under("agent")},
	// internal/clock is a leaf: it may use only the generated proto types
	// (StampedTime, ClockEstimate).
	{name: "internal/clock imports no package of this module above it", from: oneOf("internal/clock"),
		forbidden: moduleExcept("proto/stillpoint/v1")},
	// internal/window sits on clock (estimates) and timefmt (formatting); proto
	// comes in through clock.
	{name: "internal/window imports no package of this module above it", from: oneOf("internal/window"),
		forbidden: moduleExcept("internal/clock", "internal/timefmt", "proto/stillpoint/v1")},
	// The Go client is what automation links: the API and gRPC only, never
	// the server (and its Raft) or the agent.
	{name: "client imports only the API, grpcx and tlsx of this module", from: under("client"),
		forbidden: moduleExcept("proto/stillpoint/v1", "internal/grpcx", "internal/tlsx")},
	{name: "coordinator/fsm does not import hashicorp/raft", from: oneOf("coordinator/fsm"),
		forbidden: under("github.com/hashicorp/raft")},
	{name: "production code never links the simulator or test harnesses",
		from:      func(p string) bool { return inModule(p) && !slices.Contains(harnesses, p) },
		forbidden: oneOf(harnesses...),
		exempt: map[string]string{
			// SPEC "Dev mode": the shipped binary runs `stillpoint dev` (a whole
			// cluster on loopback, internal/devcluster), `stillpoint simnode` (a
			// simulated Scalar DL node, internal/simnode) and `stillpoint ntptest`
			// (a local NTP test server, internal/ntptest). This exemption covers
			// only the binary's main package; issue 16 item 4 may move these.
			"cmd/stillpoint": "stillpoint dev, simnode and ntptest subcommands (SPEC dev mode)",
		}},
}

// knownViolations are rule breaks present on main today, listed so the test
// stays green while they are open and fails once one is fixed (drop it here
// then). Key: violation.rule + "|" + from + "|" + to. None today: the last
// (coordinator/fsm implementing raft.FSM) moved to coordinator/fsm_adapter.go.
var knownViolations = map[string]string{}

// check returns every violation of rules in g, sorted.
func check(g graph, rules []rule) []violation {
	var out []violation
	pkgs := make([]string, 0, len(g))
	for p := range g {
		pkgs = append(pkgs, p)
	}
	slices.Sort(pkgs)
	for _, r := range rules {
		for _, p := range pkgs {
			if !r.from(p) {
				continue
			}
			if _, ok := r.exempt[p]; ok {
				continue
			}
			for to, path := range reach(g, p) {
				if r.forbidden(to) {
					out = append(out, violation{rule: r.name, from: p, to: to, path: path})
				}
			}
		}
	}
	slices.SortFunc(out, func(a, b violation) int { return strings.Compare(a.String(), b.String()) })
	return out
}

// reach returns every package reachable from start with one shortest import
// chain to it (breadth-first).
func reach(g graph, start string) map[string][]string {
	paths := map[string][]string{}
	queue := [][]string{{start}}
	for len(queue) > 0 {
		path := queue[0]
		queue = queue[1:]
		for _, d := range g[path[len(path)-1]] {
			if _, seen := paths[d]; seen || d == start {
				continue
			}
			next := append(slices.Clip(path), d)
			paths[d] = next
			queue = append(queue, next)
		}
	}
	return paths
}

// load runs go list over the whole module from its root.
func load(t *testing.T) graph {
	t.Helper()
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	cmd := exec.Command("go", "list", "-deps", "-json=ImportPath,Imports,Standard", "./...")
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(gomod)))
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list in %s: %v\n%s", cmd.Dir, err, ee.Stderr)
		}
		t.Fatalf("go list in %s: %v", cmd.Dir, err)
	}
	rel := func(p string) string {
		if p == module {
			return "."
		}
		return strings.TrimPrefix(p, module+"/")
	}
	g := graph{}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p struct {
			ImportPath string
			Imports    []string
			Standard   bool
		}
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decoding go list output: %v", err)
		}
		if p.Standard {
			continue
		}
		var imps []string
		for _, i := range p.Imports {
			if strings.Contains(strings.SplitN(i, "/", 2)[0], ".") { // not std
				imps = append(imps, rel(i))
			}
		}
		g[rel(p.ImportPath)] = imps
	}
	return g
}

func TestArchitecture(t *testing.T) {
	g := load(t)
	for _, must := range []string{"agent", "coordinator", "coordinator/fsm", "internal/clock", "internal/window", "cmd/stillpoint", "client"} {
		if _, ok := g[must]; !ok {
			t.Fatalf("go list graph has no %s; the loader is broken (%d packages)", must, len(g))
		}
	}
	seen := map[string]bool{}
	for _, v := range check(g, rules) {
		key := v.rule + "|" + v.from + "|" + v.to
		if why, ok := knownViolations[key]; ok {
			seen[key] = true
			t.Logf("known violation (%s): %s", why, v)
			continue
		}
		t.Errorf("architecture violation: %s", v)
	}
	for key := range knownViolations {
		if !seen[key] {
			t.Errorf("known violation %q no longer occurs: remove it from knownViolations", key)
		}
	}
}

// TestCheckReportsUpwardImport shows the check can fail: fixture graphs with
// an upward edge (direct and through a chain) are reported naming both ends.
func TestCheckReportsUpwardImport(t *testing.T) {
	clean := graph{
		"agent":               {"internal/clock", "internal/gossip"},
		"coordinator":         {"coordinator/fsm", "internal/window", "github.com/hashicorp/raft"},
		"coordinator/fsm":     {"proto/stillpoint/v1"},
		"internal/window":     {"internal/clock", "internal/timefmt"},
		"internal/clock":      {"proto/stillpoint/v1"},
		"internal/gossip":     {"internal/clock"},
		"internal/devcluster": {"agent", "coordinator", "internal/simnode"},
		"cmd/stillpoint":      {"agent", "coordinator", "internal/devcluster"},
		"internal/simnode":    nil,
	}
	if vs := check(clean, rules); len(vs) != 0 {
		t.Fatalf("clean fixture reported %v", vs)
	}
	for _, tc := range []struct {
		name     string
		from, to string // edge added to the clean graph
		want     violation
	}{
		{"window imports coordinator", "internal/window", "coordinator",
			violation{rule: "internal/window imports no package of this module above it", from: "internal/window", to: "coordinator"}},
		{"clock imports window", "internal/clock", "internal/window",
			violation{rule: "internal/clock imports no package of this module above it", from: "internal/clock", to: "internal/window"}},
		{"agent reaches coordinator through gossip", "internal/gossip", "coordinator/fsm",
			violation{rule: "agent never imports coordinator", from: "agent", to: "coordinator/fsm"}},
		{"coordinator imports agent", "coordinator", "agent",
			violation{rule: "coordinator never imports agent", from: "coordinator", to: "agent"}},
		{"fsm imports raft", "coordinator/fsm", "github.com/hashicorp/raft",
			violation{rule: "coordinator/fsm does not import hashicorp/raft", from: "coordinator/fsm", to: "github.com/hashicorp/raft"}},
		{"coordinator links simnode", "coordinator", "internal/simnode",
			violation{rule: "production code never links the simulator or test harnesses", from: "coordinator", to: "internal/simnode"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := graph{}
			for k, v := range clean {
				g[k] = slices.Clone(v)
			}
			g[tc.from] = append(g[tc.from], tc.to)
			var found []string
			for _, v := range check(g, rules) {
				found = append(found, v.String())
				if v.rule == tc.want.rule && v.from == tc.want.from && v.to == tc.want.to {
					s := v.String()
					if !strings.Contains(s, tc.want.from) || !strings.Contains(s, tc.want.to) {
						t.Errorf("violation text %q does not name both %s and %s", s, tc.want.from, tc.want.to)
					}
					return
				}
			}
			t.Errorf("edge %s -> %s: want violation %s, got %q", tc.from, tc.to, tc.want, found)
		})
	}
}
