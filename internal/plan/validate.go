// Package plan checks and converts backup plans and builds restore plans.
//
// A backup plan arrives as YAML (the CLI decodes it strictly, see Decode)
// or as a pb.BackupPlan (the API). Validate reports every problem at once,
// each with the field path it is about, before anything is stored.
// Restore builds, from catalog entries of one pause, the steps the Scalar
// DL backup guide prescribes for a restore.
package plan

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/stillpoint-dev/stillpoint/internal/hook"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// CoordinatorAgent is the agent name of a hook defined in the coordinator
// servers' config and run by the leader.
const CoordinatorAgent = "coordinator"

// Services a plan's database belongs to, in restore order.
const (
	ServiceLedger  = "ledger"
	ServiceAuditor = "auditor"
)

// roleLedger is the role Ledger agents gossip.
const roleLedger = "ledger"

// afterGroup is the group name of the after hooks' runs (HookRun.group).
const afterGroup = hook.GroupAfter

// ErrInvalid wraps every validation failure.
var ErrInvalid = errors.New("invalid backup plan")

// Problem is one thing wrong with a plan: the field path (e.g.
// "groups[1].hooks[0].hook") and what is wrong with it.
type Problem struct {
	Field   string
	Message string
}

func (p Problem) String() string {
	if p.Field == "" {
		return p.Message
	}
	return p.Field + ": " + p.Message
}

// Error lists every problem found in a plan.
type Error struct {
	Plan     string
	Problems []Problem
}

func (e *Error) Error() string {
	var b strings.Builder
	name := e.Plan
	if name == "" {
		name = "(unnamed)"
	}
	n := len(e.Problems)
	fmt.Fprintf(&b, "backup plan %s has %d problem", name, n)
	if n != 1 {
		b.WriteString("s")
	}
	b.WriteString(":")
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return ErrInvalid }

// Env is what validation knows of the world beyond the plan. A nil Env
// checks the plan's structure only (names, order, cron, zones, figures):
// what a plan file can be checked for without a coordinator.
type Env struct {
	// Members is the roster (and servers, which are ignored): hook agents
	// must be on it, plan clusters must be known to it.
	Members []*pb.MemberRecord
	// Hooks maps an agent (or CoordinatorAgent) to the hook names defined
	// in its config. An agent that is missing here and in Unreachable is
	// treated as unreachable.
	Hooks map[string][]string
	// Unreachable maps an agent to why its hooks could not be read.
	Unreachable map[string]string
	// MaxHold bounds min_hold (the runtime config's max_hold_ns).
	MaxHold time.Duration
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

const nameRule = "1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"

// checker collects problems.
type checker struct {
	env      *Env
	problems []Problem
}

func (c *checker) add(field, format string, args ...any) {
	c.problems = append(c.problems, Problem{Field: field, Message: fmt.Sprintf(format, args...)})
}

// Validate checks p against env (nil: structure only) and returns an
// *Error listing every problem, or nil.
func Validate(p *pb.BackupPlan, env *Env) error {
	c := &checker{env: env}
	c.name("name", p.GetName(), true)
	c.clusters(p)
	c.groups(p.GetGroups())
	for i, r := range p.GetAfter() {
		c.ref(fmt.Sprintf("after[%d]", i), r, true)
	}
	c.databases(p)
	c.schedule(p)
	c.figures(p)
	if r := p.GetDeleteHook(); r != nil && (r.GetAgent() != "" || r.GetHook() != "") {
		c.ref("delete_hook", r, true)
	}
	if len(c.problems) == 0 {
		return nil
	}
	return &Error{Plan: p.GetName(), Problems: c.problems}
}

func (c *checker) name(field, v string, required bool) {
	switch {
	case v == "" && required:
		c.add(field, "is required (%s)", nameRule)
	case v != "" && !nameRE.MatchString(v):
		c.add(field, "%q is not a valid name (%s)", v, nameRule)
	}
}

func (c *checker) clusters(p *pb.BackupPlan) {
	seen := map[string]int{}
	for i, cl := range p.GetClusters() {
		f := fmt.Sprintf("clusters[%d]", i)
		if j, dup := seen[cl]; dup {
			c.add(f, "cluster %q is already clusters[%d] (a cluster is paused once)", cl, j)
			continue
		}
		seen[cl] = i
		c.name(f, cl, true)
	}
	if c.env == nil {
		return
	}
	known := knownClusters(c.env.Members)
	if len(p.GetClusters()) == 0 {
		if _, err := LedgerCluster(c.env.Members); err != nil {
			c.add("clusters", "empty, meaning the Ledger cluster, but %v; name the clusters to pause", err)
		}
		return
	}
	for i, cl := range p.GetClusters() {
		if cl != "" && !slices.Contains(known, cl) {
			c.add(fmt.Sprintf("clusters[%d]", i), "no agent ever joined cluster %q (known clusters: %s)", cl, listOrNone(known))
		}
	}
}

// knownClusters lists the clusters of roster members, sorted.
func knownClusters(members []*pb.MemberRecord) []string {
	var out []string
	for _, m := range members {
		if m.GetRole() == "server" || m.GetCluster() == "" || slices.Contains(out, m.GetCluster()) {
			continue
		}
		out = append(out, m.GetCluster())
	}
	sort.Strings(out)
	return out
}

// LedgerCluster is the cluster a plan with no clusters pauses: the one
// cluster whose roster members have role "ledger".
func LedgerCluster(members []*pb.MemberRecord) (string, error) {
	var found []string
	for _, m := range members {
		if m.GetRole() == roleLedger && m.GetCluster() != "" && !slices.Contains(found, m.GetCluster()) {
			found = append(found, m.GetCluster())
		}
	}
	sort.Strings(found)
	switch len(found) {
	case 0:
		return "", errors.New("no roster member has role ledger")
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("roster members with role ledger are in several clusters (%s)", strings.Join(found, ", "))
}

// Clusters are the clusters p pauses: its own list, or the Ledger cluster.
func Clusters(p *pb.BackupPlan, members []*pb.MemberRecord) ([]string, error) {
	if len(p.GetClusters()) > 0 {
		return slices.Clone(p.GetClusters()), nil
	}
	cl, err := LedgerCluster(members)
	if err != nil {
		return nil, fmt.Errorf("backup plan %s names no clusters, meaning the Ledger cluster, but %w", p.GetName(), err)
	}
	return []string{cl}, nil
}

func (c *checker) groups(groups []*pb.HookGroup) {
	index := map[string]int{}
	refs := map[string]string{}
	for i, g := range groups {
		f := fmt.Sprintf("groups[%d]", i)
		c.name(f+".name", g.GetName(), true)
		if g.GetName() == afterGroup {
			c.add(f+".name", "%q is reserved for the plan's after hooks; choose another group name", afterGroup)
		}
		if g.GetName() == hook.GroupDelete {
			c.add(f+".name", "%q is reserved for retention's delete hooks (agents run it outside the hold); choose another group name", hook.GroupDelete)
		}
		if j, dup := index[g.GetName()]; dup && g.GetName() != "" {
			c.add(f+".name", "group %q is already groups[%d]", g.GetName(), j)
		} else if g.GetName() != "" {
			index[g.GetName()] = i
		}
		if len(g.GetHooks()) == 0 {
			c.add(f+".hooks", "group %q is empty: a group runs at least one hook (remove the group if it has nothing to do)", g.GetName())
		}
		for j, r := range g.GetHooks() {
			hf := fmt.Sprintf("%s.hooks[%d]", f, j)
			c.ref(hf, r, true)
			key := r.GetAgent() + "/" + r.GetHook()
			if prev, dup := refs[key]; dup && r.GetAgent() != "" && r.GetHook() != "" {
				c.add(hf, "hook %s on agent %s is already %s (a hook runs once per backup)", r.GetHook(), r.GetAgent(), prev)
			} else {
				refs[key] = hf
			}
		}
	}
	// Dependencies: explicit after names, or the group listed before.
	deps := make([][]int, len(groups))
	for i, g := range groups {
		if len(g.GetAfter()) == 0 {
			if i > 0 {
				deps[i] = []int{i - 1}
			}
			continue
		}
		seen := map[string]bool{}
		for k, a := range g.GetAfter() {
			f := fmt.Sprintf("groups[%d].after[%d]", i, k)
			j, ok := index[a]
			switch {
			case seen[a]:
				c.add(f, "group %q is named twice", a)
			case !ok:
				c.add(f, "no group is named %q (groups: %s)", a, listOrNone(groupNames(groups)))
			default:
				deps[i] = append(deps[i], j)
			}
			seen[a] = true
		}
	}
	if cyc := findCycle(deps); cyc != nil {
		names := make([]string, 0, len(cyc))
		for _, i := range cyc {
			names = append(names, groups[i].GetName())
		}
		c.add(fmt.Sprintf("groups[%d].after", cyc[0]), "cycle: %s (each runs only after the next has finished, so none can start)", strings.Join(names, " → "))
	}
}

// findCycle returns the indexes of one dependency cycle, its first node
// repeated at the end, or nil.
func findCycle(deps [][]int) []int {
	const (
		white = iota
		grey
		black
	)
	color := make([]int, len(deps))
	var stack []int
	var found []int
	var visit func(int) bool
	visit = func(n int) bool {
		color[n] = grey
		stack = append(stack, n)
		for _, d := range deps[n] {
			if color[d] == grey {
				at := slices.Index(stack, d)
				found = append(slices.Clone(stack[at:]), d)
				return true
			}
			if color[d] == white && visit(d) {
				return true
			}
		}
		stack = stack[:len(stack)-1]
		color[n] = black
		return false
	}
	for n := range deps {
		if color[n] == white && visit(n) {
			return found
		}
	}
	return nil
}

func groupNames(groups []*pb.HookGroup) []string {
	out := make([]string, 0, len(groups))
	for _, g := range groups {
		out = append(out, g.GetName())
	}
	return out
}

// ref checks a hook reference: agent and hook set, on_error known, and
// (with an Env) the agent on the roster with a hook of that name.
func (c *checker) ref(field string, r *pb.HookRef, onError bool) {
	if r.GetAgent() == "" {
		c.add(field+".agent", "is required: the node name of the agent that runs the hook, or %q", CoordinatorAgent)
	}
	if r.GetHook() == "" {
		c.add(field+".hook", "is required: a hook name defined in the agent's config file (hooks:)")
	}
	if onError {
		if _, ok := pb.HookOnError_name[int32(r.GetOnError())]; !ok {
			c.add(field+".on_error", "unknown value %d (abort or continue)", r.GetOnError())
		}
	} else if r.GetOnError() != pb.HookOnError_HOOK_ON_ERROR_UNSPECIFIED {
		c.add(field+".on_error", "is not used here (the hook's on_error is set where it runs, in its group)")
	}
	if c.env == nil || r.GetAgent() == "" || r.GetHook() == "" {
		return
	}
	agent := r.GetAgent()
	if agent != CoordinatorAgent && !onRoster(c.env.Members, agent) {
		c.add(field+".agent", "%q is on no cluster's roster and is not %q (roster: %s)", agent, CoordinatorAgent, listOrNone(rosterNames(c.env.Members)))
		return
	}
	names, ok := c.env.Hooks[agent]
	if !ok {
		why := c.env.Unreachable[agent]
		if why == "" {
			why = "not asked"
		}
		c.add(field+".hook", "cannot check hook %q: agent %s is unreachable (%s)", r.GetHook(), agent, why)
		return
	}
	if !slices.Contains(names, r.GetHook()) {
		who := "agent " + strconvQuote(agent)
		if agent == CoordinatorAgent {
			who = "the coordinator servers' config"
		}
		c.add(field+".hook", "%s has no hook named %q (it has: %s)", who, r.GetHook(), listOrNone(names))
	}
}

func strconvQuote(s string) string { return fmt.Sprintf("%q", s) }

func onRoster(members []*pb.MemberRecord, name string) bool {
	for _, m := range members {
		if m.GetName() == name && m.GetRole() != "server" {
			return true
		}
	}
	return false
}

func rosterNames(members []*pb.MemberRecord) []string {
	var out []string
	for _, m := range members {
		if m.GetRole() != "server" {
			out = append(out, m.GetName())
		}
	}
	return out
}

// Agents lists the roster agents p's hooks name (not the coordinator),
// sorted: the agents whose hooks validation needs.
func Agents(p *pb.BackupPlan) []string {
	var out []string
	add := func(r *pb.HookRef) {
		if a := r.GetAgent(); a != "" && a != CoordinatorAgent && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	for _, g := range p.GetGroups() {
		for _, r := range g.GetHooks() {
			add(r)
		}
	}
	for _, r := range p.GetAfter() {
		add(r)
	}
	add(p.GetDeleteHook())
	sort.Strings(out)
	return out
}

func (c *checker) databases(p *pb.BackupPlan) {
	seen := map[string]int{}
	for i, d := range p.GetDatabases() {
		f := fmt.Sprintf("databases[%d]", i)
		c.name(f+".name", d.GetName(), true)
		if j, dup := seen[d.GetName()]; dup && d.GetName() != "" {
			c.add(f+".name", "database %q is already databases[%d]", d.GetName(), j)
		} else {
			seen[d.GetName()] = i
		}
		if s := d.GetService(); s != ServiceLedger && s != ServiceAuditor {
			c.add(f+".service", "%q is neither %s nor %s (the restore order: Ledger databases first)", s, ServiceLedger, ServiceAuditor)
		}
		if _, ok := pb.DatabaseKind_name[int32(d.GetKind())]; !ok || d.GetKind() == pb.DatabaseKind_DATABASE_KIND_UNSPECIFIED {
			c.add(f+".kind", "is required (%s)", strings.Join(KindNames(), ", "))
		}
		if _, ok := pb.RestoreMethod_name[int32(d.GetMethod())]; !ok || d.GetMethod() == pb.RestoreMethod_RESTORE_METHOD_UNSPECIFIED {
			c.add(f+".method", "is required (%s)", strings.Join(MethodNames(), ", "))
		}
		if z := d.GetTimeZone(); z != "" {
			if _, err := time.LoadLocation(z); err != nil {
				c.add(f+".time_zone", "%q is not an IANA time zone (e.g. Asia/Tokyo, UTC): %v", z, err)
			}
		}
		hasHook := d.GetHook().GetAgent() != "" || d.GetHook().GetHook() != ""
		switch d.GetMethod() {
		case pb.RestoreMethod_RESTORE_METHOD_PITR:
			if hasHook {
				c.add(f+".hook", "a point-in-time restore needs no hook (the restore point is the backup); remove it, or use method dump or snapshot")
			}
		case pb.RestoreMethod_RESTORE_METHOD_DUMP, pb.RestoreMethod_RESTORE_METHOD_SNAPSHOT:
			m := MethodName(d.GetMethod())
			if !hasHook {
				c.add(f+".hook", "method %s needs the hook that takes the %s (one of the groups' hooks)", m, m)
				continue
			}
			c.ref(f+".hook", d.GetHook(), false)
			if !inGroups(p, d.GetHook()) {
				c.add(f+".hook", "hook %s on agent %s is in none of the plan's groups: the %s must be taken during the pause", d.GetHook().GetHook(), d.GetHook().GetAgent(), m)
			}
		}
	}
}

func inGroups(p *pb.BackupPlan, r *pb.HookRef) bool {
	for _, g := range p.GetGroups() {
		for _, h := range g.GetHooks() {
			if h.GetAgent() == r.GetAgent() && h.GetHook() == r.GetHook() {
				return true
			}
		}
	}
	return false
}

// cronParser reads five-field expressions and descriptors (@daily,
// @every 1h).
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Schedule parses a plan's schedule in its zone (nil for no schedule).
func Schedule(p *pb.BackupPlan) (cron.Schedule, *time.Location, error) {
	loc, err := zone(p.GetScheduleTimeZone())
	if err != nil {
		return nil, nil, err
	}
	if p.GetSchedule() == "" {
		return nil, loc, nil
	}
	expr := strings.TrimSpace(p.GetSchedule())
	if strings.HasPrefix(expr, "TZ=") || strings.HasPrefix(expr, "CRON_TZ=") {
		return nil, loc, errors.New("put the zone in schedule_time_zone, not in the expression")
	}
	s, err := cronParser.Parse(expr)
	if err != nil {
		return nil, loc, err
	}
	return zoned(s, loc), loc, nil
}

func zone(name string) (*time.Location, error) {
	if name == "" {
		return time.UTC, nil
	}
	return time.LoadLocation(name)
}

func (c *checker) schedule(p *pb.BackupPlan) {
	if _, err := zone(p.GetScheduleTimeZone()); err != nil {
		c.add("schedule_time_zone", "%q is not an IANA time zone (e.g. Europe/Paris, UTC): %v", p.GetScheduleTimeZone(), err)
		return
	}
	if p.GetSchedule() == "" {
		return
	}
	if _, _, err := Schedule(p); err != nil {
		c.add("schedule", "%q is not a cron schedule (five fields \"minute hour day-of-month month day-of-week\" such as \"30 2 * * *\", or @hourly, @daily, @weekly, @monthly, @every 6h): %v", p.GetSchedule(), err)
	}
}

func (c *checker) figures(p *pb.BackupPlan) {
	if _, ok := pb.MissedRunPolicy_name[int32(p.GetMissedRuns())]; !ok {
		c.add("missed_runs", "unknown value %d (run_once or skip)", p.GetMissedRuns())
	}
	if p.GetMissedRuns() != pb.MissedRunPolicy_MISSED_RUN_POLICY_UNSPECIFIED && p.GetSchedule() == "" {
		c.add("missed_runs", "is set but the plan has no schedule")
	}
	if n := p.GetRetention().GetKeepLast(); n < 0 {
		c.add("retention.keep_last", "%d is negative (0: no limit)", n)
	}
	if ms := p.GetRetention().GetMaxAgeMs(); ms < 0 {
		c.add("retention.max_age", "%s is negative (0: no limit)", msString(ms))
	}
	ms := p.GetMinHoldMs()
	if ms < 0 {
		c.add("min_hold", "%s is negative (0: the minimum the measured uncertainty requires)", msString(ms))
	}
	if c.env != nil && c.env.MaxHold > 0 && ms > c.env.MaxHold.Milliseconds() {
		c.add("min_hold", "%s exceeds the maximum hold %v (runtime config max_hold_ns)", msString(ms), c.env.MaxHold)
	}
}

// msString renders a millisecond figure as a duration when it fits one.
func msString(ms int64) string {
	if ms > -(1<<63-1)/int64(time.Millisecond) && ms < (1<<63-1)/int64(time.Millisecond) {
		return (time.Duration(ms) * time.Millisecond).String()
	}
	return fmt.Sprintf("%dms", ms)
}

func listOrNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}
