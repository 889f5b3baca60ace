package coordinator

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jonboulle/clockwork"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/stillpoint-dev/stillpoint/internal/hook"
	"github.com/stillpoint-dev/stillpoint/internal/timefmt"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// Retention (SPEC "Backups and restores"): per plan, keep the last N
// catalog entries and none older than the maximum age; the leader prunes
// the rest, running the plan's delete hook once per pruned entry first.
//
//   - Entries are ordered by restore point, newest first.
//   - keep_last counts valid entries (partial ones included). An entry
//     invalidated after the fact does not count toward it and is not
//     pruned by it: it stays for inspection until max_age prunes it.
//   - max_age prunes entries whose restore point is older than now minus
//     max_age, except the plan's newest valid entry: a plan whose backups
//     stopped keeps its last good restore point.
//   - A pruned entry's delete hook must succeed before the entry leaves
//     the catalog; a failed one keeps it (logged, retried at the next
//     evaluation). Its run's step id is "retention-delete.<attempt>"
//     under the backup's op id, so an agent asked again after a failover
//     returns the run it already made instead of deleting twice (while it
//     remembers the op: its last 64). A "coordinator" delete hook has no
//     such memory: a failover between its run and the prune runs it again,
//     so a delete hook should accept an artefact that is already gone.
//   - Entries of a deleted plan, and pauses that are not backups, are
//     never pruned.
//
// The duty evaluates when the catalog gains or loses an entry (a backup
// completed) and every retentionInterval (for max_age).

// retentionInterval is the periodic evaluation (max_age, retried delete
// hooks).
const retentionInterval = 30 * time.Second

// pruneChoice is one entry retention no longer keeps, and why.
type pruneChoice struct {
	rp  *pb.RestorePoint
	why string
}

// restorePointTime is an entry's restore point (its creation time if it
// has none).
func restorePointTime(rp *pb.RestorePoint) time.Time {
	if t := rp.GetWindow().GetRestorePoint(); t != nil {
		return t.AsTime()
	}
	return rp.GetCreatedAt().GetLocalTime().AsTime()
}

// retentionPrunes picks the entries of one plan that r no longer keeps at
// now, oldest first.
func retentionPrunes(r *pb.Retention, entries []*pb.RestorePoint, now time.Time) []pruneChoice {
	keep, maxAge := int(r.GetKeepLast()), time.Duration(r.GetMaxAgeMs())*time.Millisecond
	if keep <= 0 && maxAge <= 0 {
		return nil
	}
	sorted := append([]*pb.RestorePoint(nil), entries...)
	sort.SliceStable(sorted, func(i, j int) bool { return restorePointTime(sorted[i]).After(restorePointTime(sorted[j])) })
	var out []pruneChoice
	valid := 0
	for _, rp := range sorted {
		if !rp.GetInvalid() {
			valid++
			if keep > 0 && valid > keep {
				out = append(out, pruneChoice{rp, fmt.Sprintf("beyond keep_last %d", keep)})
				continue
			}
			if valid == 1 {
				continue // the newest valid entry: max_age never takes it
			}
		}
		if age := now.Sub(restorePointTime(rp)); maxAge > 0 && age > maxAge {
			out = append(out, pruneChoice{rp, fmt.Sprintf("%s old, older than max_age %s", timefmt.Duration(age), timefmt.Duration(maxAge))})
		}
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// deleteHookEnv is the environment of the delete hook of a pruned entry.
func deleteHookEnv(plan string, rp *pb.RestorePoint, step string) map[string]string {
	at := restorePointTime(rp)
	clusters := rp.GetCluster()
	if cs := rp.GetBackup().GetPlan().GetClusters(); len(cs) > 0 {
		clusters = strings.Join(cs, ",")
	}
	env := map[string]string{
		hook.EnvOpID:      rp.GetOpId(),
		hook.EnvBackupID:  rp.GetOpId(),
		hook.EnvPlan:      plan,
		hook.EnvClusters:  clusters,
		hook.EnvHookGroup: hook.GroupDelete,
		hook.EnvStepID:    step,
	}
	putInstant(env, hook.EnvRestorePoint, at)
	return env
}

// deleteStepID is the step id of a delete hook's attempt.
func deleteStepID(attempt int) string { return "retention-delete." + strconv.Itoa(attempt) }

// retainer prunes the catalog on the leader. Its seams are functions so
// the policy can be tested without Raft or agents.
type retainer struct {
	log   *zap.Logger
	clock clockwork.Clock
	plans func() []*pb.PlanRecord
	// entries lists a plan's catalog entries.
	entries func(plan string) []*pb.RestorePoint
	// version changes when the catalog gains or loses an entry; changed
	// fires at the next FSM change.
	version func() string
	changed func() <-chan struct{}
	// runHook runs a delete hook step for a backup and returns its ended
	// run.
	runHook func(ctx context.Context, ref *pb.HookRef, backupID, step string, env map[string]string) *pb.HookRun
	// prune applies a PruneBackupsCommand through Raft.
	prune func(ctx context.Context, cmd *pb.PruneBackupsCommand) error
	// alarm raises (a non-nil alarm) or clears (nil) a plan's delete hook
	// alarm, DeleteHookAlarmID(plan), through Raft; active says whether
	// it is raised.
	alarm  func(ctx context.Context, id string, a *pb.Alarm) error
	active func(id string) bool
	stamp  func() *pb.StampedTime
	// attempts is the delete hook attempt to make next, per backup id
	// (this term; a new leader starts again at 1 and gets the agent's
	// recorded runs back).
	attempts map[string]int
}

// run evaluates at once, when the catalog's entries change, and every
// retentionInterval, until ctx ends.
func (rt *retainer) run(ctx context.Context) {
	seen := "" // never a version: the first pass evaluates
	var due <-chan time.Time
	for {
		changed := rt.changed()
		if v := rt.version(); v != seen {
			seen = v
			rt.evaluate(ctx)
			due = rt.clock.After(retentionInterval)
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-due:
			rt.evaluate(ctx)
			due = rt.clock.After(retentionInterval)
		}
	}
}

// evaluate prunes every plan's entries its retention no longer keeps.
func (rt *retainer) evaluate(ctx context.Context) {
	for _, rec := range rt.plans() {
		if ctx.Err() != nil {
			return
		}
		p := rec.GetPlan()
		if p.GetRetention().GetKeepLast() <= 0 && p.GetRetention().GetMaxAgeMs() <= 0 {
			continue
		}
		rt.evaluatePlan(ctx, p)
	}
}

func (rt *retainer) evaluatePlan(ctx context.Context, p *pb.BackupPlan) {
	name := p.GetName()
	choices := retentionPrunes(p.GetRetention(), rt.entries(name), rt.clock.Now())
	if len(choices) == 0 {
		return
	}
	log := rt.log.With(zap.String("plan", name))
	hook := p.GetDeleteHook()
	hasHook := hook.GetAgent() != "" && hook.GetHook() != ""
	var ids, whys, failed []string
	for _, c := range choices {
		id := c.rp.GetOpId()
		if hasHook {
			if rt.attempts == nil {
				rt.attempts = map[string]int{}
			}
			attempt := max(rt.attempts[id], 1)
			step := deleteStepID(attempt)
			run := rt.runHook(ctx, hook, id, step, deleteHookEnv(name, c.rp, step))
			if ctx.Err() != nil {
				return
			}
			if run.GetState() != pb.HookState_HOOK_STATE_SUCCEEDED {
				rt.attempts[id] = attempt + 1
				failed = append(failed, fmt.Sprintf("%s (%s, exit code %d%s)", id, enumWord(run.GetState()), run.GetExitCode(), messageSuffix(run.GetMessage())))
				log.Error("delete hook failed; the catalog entry is kept and retried at the next evaluation",
					zap.String("op_id", id), zap.String("agent", hook.GetAgent()), zap.String("hook", hook.GetHook()), zap.String("step_id", step),
					zap.String("state", run.GetState().String()), zap.Int32("exit_code", run.GetExitCode()), zap.String("message", run.GetMessage()),
					zap.String("output_tail", lastLines(run.GetOutputTail(), 3)))
				continue
			}
			log.Info("delete hook ran", zap.String("op_id", id), zap.String("agent", hook.GetAgent()), zap.String("hook", hook.GetHook()),
				zap.String("step_id", step), zap.Duration("duration", time.Duration(run.GetDurationNs())))
		}
		ids = append(ids, id)
		whys = append(whys, id+" "+c.why)
	}
	rt.noteFailures(ctx, p, failed)
	if len(ids) == 0 {
		return
	}
	cmd := &pb.PruneBackupsCommand{Plan: name, BackupIds: ids, Reason: strings.Join(whys, "; "), At: rt.stamp()}
	if err := rt.prune(ctx, cmd); err != nil {
		log.Warn("pruning the catalog failed; retried at the next evaluation", zap.Strings("backup_ids", ids), zap.Error(err))
		return
	}
	for _, id := range ids {
		delete(rt.attempts, id)
	}
	log.Info("catalog entries pruned", zap.Strings("backup_ids", ids), zap.String("reason", cmd.GetReason()))
}

// Kind of the alarm raised while a plan's delete hook fails.
const AlarmDeleteHookFailed = "backup_delete_hook_failed"

// DeleteHookAlarmID is the id of a plan's delete hook alarm.
func DeleteHookAlarmID(plan string) string { return "backup-delete-hook/" + plan }

// noteFailures raises the plan's delete hook alarm while entries are kept
// because their delete hook failed, and clears it once none is.
func (rt *retainer) noteFailures(ctx context.Context, p *pb.BackupPlan, failed []string) {
	if rt.alarm == nil {
		return
	}
	id := DeleteHookAlarmID(p.GetName())
	var a *pb.Alarm
	if len(failed) > 0 {
		ref := p.GetDeleteHook()
		a = &pb.Alarm{
			Id: id, Kind: AlarmDeleteHookFailed, Severity: "warning", Node: ref.GetAgent(),
			Message: fmt.Sprintf("plan %s: delete hook %s on %s failed for %d catalog entries retention prunes; they are kept and retried: %s",
				p.GetName(), ref.GetHook(), ref.GetAgent(), len(failed), strings.Join(failed, "; ")),
			Figure: float64(len(failed)), Unit: "count", RaisedAt: rt.stamp(), UpdatedAt: rt.stamp(),
		}
	} else if !rt.active(id) {
		return
	}
	if err := rt.alarm(ctx, id, a); err != nil {
		rt.log.Warn("delete hook alarm not recorded; retried at the next evaluation", zap.String("plan", p.GetName()), zap.Error(err))
	}
}

func messageSuffix(m string) string {
	if m == "" {
		return ""
	}
	return ": " + m
}

// enumWord is a hook state's short word, e.g. "failed".
func enumWord(s pb.HookState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "HOOK_STATE_"))
}

// lastLines is the last n lines of a hook's output, for a log line.
func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// retentionDuty is the leader's retention for one term.
func (s *Server) retentionDuty(ctx context.Context, epoch uint64) {
	log := s.log.With(zap.Uint64("epoch", epoch), zap.String("duty", "retention"))
	hooks := &pauseRunner{
		log: log, agents: agentConns{s}, epoch: epoch, clock: clockwork.NewRealClock(), stamp: s.Stamp,
		leader: s.cfg.NodeID, hookAddr: s.agentAddress, localHook: s.runLocalHook,
	}
	rt := &retainer{
		log: log, clock: clockwork.NewRealClock(),
		plans: s.fsm.Plans, entries: s.fsm.PlanBackups, version: s.fsm.CatalogVersion, changed: s.fsm.Changed,
		runHook: func(ctx context.Context, ref *pb.HookRef, backupID, step string, env map[string]string) *pb.HookRun {
			run := &pb.HookRun{StepId: step, Group: hook.GroupDelete, Ref: proto.Clone(ref).(*pb.HookRef), State: pb.HookState_HOOK_STATE_RUNNING, StartedAt: s.Stamp()}
			if ref.GetAgent() == CoordinatorAgent {
				return hooks.runLocalHook(ctx, run, env)
			}
			return hooks.callAgentHook(ctx, &pb.Operation{OpId: backupID}, run, env)
		},
		prune: func(ctx context.Context, cmd *pb.PruneBackupsCommand) error {
			actx, cancel := context.WithTimeout(ctx, s.cfg.ApplyTimeout)
			defer cancel()
			_, err := s.Apply(actx, cmd)
			return err
		},
		alarm: func(ctx context.Context, id string, a *pb.Alarm) error {
			actx, cancel := context.WithTimeout(ctx, s.cfg.ApplyTimeout)
			defer cancel()
			var cmd proto.Message = &pb.ClearAlarmCommand{Id: id, ClearedAt: s.Stamp()}
			if a != nil {
				cmd = &pb.RaiseAlarmCommand{Alarm: a}
			}
			_, err := s.Apply(actx, cmd)
			return err
		},
		active: func(id string) bool { a, ok := s.fsm.Alarm(id); return ok && a.GetActive() },
		stamp:  s.Stamp,
	}
	rt.run(ctx)
}
