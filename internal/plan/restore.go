package plan

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// Restore step actions.
const (
	ActionWarning = "warning"
	ActionStop    = "stop"
	ActionRestore = "restore"
	ActionStart   = "start"
)

// ErrRestoreRefused wraps every reason a restore plan cannot be made.
var ErrRestoreRefused = errors.New("restore plan refused")

// Restore builds the restore plan of catalog entries that must all come
// from one pause (the same op): the guide's order — stop Ledger, stop
// Auditor, restore each Ledger database, each Auditor database, start
// Ledger, start Auditor — with, per database, the time to restore to in
// its own zone with its offset, or the artefact its hook left. A mix of
// pauses, an entry that is not a backup, an invalid entry or one without a
// restore point is refused, naming it; a partial entry gets a warning step
// first.
func Restore(entries []*pb.RestorePoint) (*pb.RestorePlan, error) {
	if len(entries) == 0 {
		return nil, fmt.Errorf("%w: no backup named", ErrRestoreRefused)
	}
	first := entries[0]
	var mixed bool
	for _, e := range entries[1:] {
		if e.GetOpId() != first.GetOpId() {
			mixed = true
		}
	}
	if mixed {
		var lines []string
		for _, e := range entries {
			lines = append(lines, fmt.Sprintf("backup %s: op %s (plan %s), restore point %s", e.GetOpId(), e.GetOpId(), orText(e.GetBackup().GetPlan().GetName(), "none"), restorePointText(e)))
		}
		return nil, fmt.Errorf("%w: the backups come from different pauses — restore Ledger and Auditor only from backups of the same pause:\n  %s",
			ErrRestoreRefused, strings.Join(lines, "\n  "))
	}
	e := first
	switch {
	case e.GetBackup().GetPlan() == nil:
		return nil, fmt.Errorf("%w: %s is a pause, not a backup: it ran no plan, so nothing says which databases it covers (its restore point is %s; run backups with `stillpoint backup run --plan NAME`)",
			ErrRestoreRefused, e.GetOpId(), restorePointText(e))
	case e.GetInvalid():
		return nil, fmt.Errorf("%w: backup %s is invalid: %s — do not restore to it", ErrRestoreRefused, e.GetOpId(), orText(e.GetInvalidReason(), "flagged invalid"))
	case e.GetWindow().GetRestorePoint() == nil:
		return nil, fmt.Errorf("%w: backup %s has no restore point", ErrRestoreRefused, e.GetOpId())
	}
	p := e.GetBackup().GetPlan()
	rp := e.GetWindow().GetRestorePoint().AsTime()
	unc := time.Duration(e.GetWindow().GetUncertaintyNs())
	out := &pb.RestorePlan{BackupIds: []string{e.GetOpId()}, Plan: p.GetName()}

	if e.GetPartial() || e.GetBackup().GetPartial() {
		var failed []string
		for _, h := range e.GetBackup().GetHooks() {
			if h.GetState() != pb.HookState_HOOK_STATE_SUCCEEDED && h.GetGroup() != afterGroup {
				failed = append(failed, fmt.Sprintf("%s (%s on %s: %s)", h.GetStepId(), h.GetRef().GetHook(), h.GetRef().GetAgent(), hookStateWord(h.GetState())))
			}
		}
		out.Steps = append(out.Steps, &pb.RestoreStep{Action: ActionWarning, BackupId: e.GetOpId(),
			Instructions: fmt.Sprintf("backup %s is partial: a hook with on_error continue failed (%s); a database whose artefact is missing cannot be restored from this backup",
				e.GetOpId(), orText(strings.Join(failed, ", "), "see `stillpoint backup show "+e.GetOpId()+"`"))})
	}

	if len(p.GetDatabases()) == 0 {
		out.Steps = append(out.Steps, &pb.RestoreStep{Action: ActionWarning, BackupId: e.GetOpId(), RestoreTo: timestamppb.New(rp),
			RestoreToLocal: LocalTime(rp, unc, time.UTC), TimeZone: "UTC",
			Instructions: fmt.Sprintf("plan %s declares no databases, so this plan cannot name them: restore every Ledger and Auditor database to the restore point %s (±%v) with its own tools; declare them under databases: in the plan for per-database steps",
				p.GetName(), LocalTime(rp, unc, time.UTC), unc)})
	}
	services := []string{ServiceLedger}
	for _, d := range p.GetDatabases() {
		if d.GetService() == ServiceAuditor {
			services = append(services, ServiceAuditor)
			break
		}
	}
	for _, svc := range services {
		out.Steps = append(out.Steps, &pb.RestoreStep{Action: ActionStop, Service: svc,
			Instructions: fmt.Sprintf("stop every %s node (and anything else that writes to its databases) before restoring", serviceTitle(svc))})
	}
	for _, svc := range services {
		for _, d := range p.GetDatabases() {
			if d.GetService() != svc {
				continue
			}
			step, warn := restoreStep(e, d, rp, unc)
			if warn != "" {
				out.Steps = append(out.Steps, &pb.RestoreStep{Action: ActionWarning, Service: svc, Database: d.GetName(), BackupId: e.GetOpId(), Instructions: warn})
			}
			out.Steps = append(out.Steps, step)
		}
	}
	for _, svc := range services {
		out.Steps = append(out.Steps, &pb.RestoreStep{Action: ActionStart, Service: svc,
			Instructions: fmt.Sprintf("start the %s nodes once every database above is restored", serviceTitle(svc))})
	}
	return out, nil
}

func restoreStep(e *pb.RestorePoint, d *pb.PlanDatabase, rp time.Time, unc time.Duration) (*pb.RestoreStep, string) {
	zoneName := d.GetTimeZone()
	if zoneName == "" {
		zoneName = "UTC"
	}
	loc, err := time.LoadLocation(zoneName)
	if err != nil {
		loc, zoneName = time.UTC, "UTC"
	}
	local := LocalTime(rp, unc, loc)
	s := &pb.RestoreStep{
		Action: ActionRestore, Service: d.GetService(), Database: d.GetName(), Kind: d.GetKind(), Method: d.GetMethod(),
		BackupId: e.GetOpId(), RestoreTo: timestamppb.New(rp), RestoreToLocal: local, TimeZone: zoneName,
	}
	var warn string
	location := ""
	if d.GetMethod() == pb.RestoreMethod_RESTORE_METHOD_DUMP || d.GetMethod() == pb.RestoreMethod_RESTORE_METHOD_SNAPSHOT {
		run := artefactRun(e.GetBackup(), d.GetHook())
		switch {
		case run == nil:
			warn = fmt.Sprintf("backup %s has no run of hook %s on %s: database %s has no %s in this backup", e.GetOpId(), d.GetHook().GetHook(), d.GetHook().GetAgent(), d.GetName(), MethodName(d.GetMethod()))
		case run.GetState() != pb.HookState_HOOK_STATE_SUCCEEDED:
			warn = fmt.Sprintf("hook %s on %s (step %s) %s: database %s has no usable %s in this backup (%s)", d.GetHook().GetHook(), d.GetHook().GetAgent(), run.GetStepId(),
				hookStateWord(run.GetState()), d.GetName(), MethodName(d.GetMethod()), orText(run.GetMessage(), fmt.Sprintf("exit code %d", run.GetExitCode())))
		}
		if run != nil {
			s.Artefact = proto.Clone(run).(*pb.HookRun)
			location = LastLine(run.GetOutputTail())
		}
		if location == "" && warn == "" {
			warn = fmt.Sprintf("hook %s on %s printed nothing: the %s's location is unknown (a hook should print where it put the artefact as its last line)", d.GetHook().GetHook(), d.GetHook().GetAgent(), MethodName(d.GetMethod()))
		}
	}
	s.Instructions = instructions(d, rp, unc, local, zoneName, location)
	return s, warn
}

// artefactRun finds the run of a database's hook among the backup's group
// runs.
func artefactRun(b *pb.BackupRun, ref *pb.HookRef) *pb.HookRun {
	for _, h := range b.GetHooks() {
		if h.GetGroup() != afterGroup && h.GetRef().GetAgent() == ref.GetAgent() && h.GetRef().GetHook() == ref.GetHook() {
			return h
		}
	}
	return nil
}

// LastLine is the last non-empty line of a hook's output: where hooks
// print their artefact's location.
func LastLine(out []byte) string {
	out = bytes.TrimRight(out, "\r\n\t ")
	if i := bytes.LastIndexByte(out, '\n'); i >= 0 {
		out = out[i+1:]
	}
	return strings.TrimSpace(string(out))
}

// LocalTime renders t in loc with its numeric offset (RFC 3339), with the
// fewest fractional digits (milliseconds, else microseconds, else
// nanoseconds) whose rounding still lies within ±unc of t, so a database
// tool given the text restores to a point inside the window.
func LocalTime(t time.Time, unc time.Duration, loc *time.Location) string {
	for _, f := range []struct {
		unit   time.Duration
		layout string
	}{
		{time.Millisecond, "2006-01-02T15:04:05.000-07:00"},
		{time.Microsecond, "2006-01-02T15:04:05.000000-07:00"},
	} {
		r := t.Round(f.unit)
		if d := r.Sub(t); d <= unc && -d <= unc {
			return r.In(loc).Format(f.layout)
		}
	}
	return t.In(loc).Format("2006-01-02T15:04:05.000000000-07:00")
}

// instructions says, for a person, how to bring d back to the restore
// point with its kind's tools.
func instructions(d *pb.PlanDatabase, rp time.Time, unc time.Duration, local, zone, location string) string {
	utc := LocalTime(rp, unc, time.UTC)
	art := location
	if art == "" {
		art = "<the artefact>"
	}
	// local is RFC 3339 with a fraction and a numeric offset; SQL tools
	// take "2026-12-02 11:22:33.123+09:00".
	offset := local[len(local)-len("+09:00"):]
	wall := strings.Replace(local[:len(local)-len(offset)], "T", " ", 1)
	switch d.GetMethod() {
	case pb.RestoreMethod_RESTORE_METHOD_PITR:
		switch d.GetKind() {
		case pb.DatabaseKind_DATABASE_KIND_POSTGRES:
			return fmt.Sprintf("point-in-time restore to %s: restore the last base backup taken before it, then replay the WAL archive with recovery_target_time = '%s%s' (%s) and recovery_target_action = 'promote'; on RDS/Aurora: aws rds restore-db-instance-to-point-in-time --restore-time %s",
				local, wall, offset, zone, utc)
		case pb.DatabaseKind_DATABASE_KIND_MYSQL:
			return fmt.Sprintf("point-in-time restore to %s: restore the last full backup taken before it, then replay the binary logs with mysqlbinlog --stop-datetime='%s' (a wall time in the server's zone, %s; offset %s) | mysql; on RDS/Aurora: aws rds restore-db-instance-to-point-in-time --restore-time %s",
				local, wall, zone, offset, utc)
		case pb.DatabaseKind_DATABASE_KIND_CASSANDRA:
			return fmt.Sprintf("point-in-time restore to %s: restore the last snapshot taken before it and replay archived commit logs with restore_point_in_time=%s in commitlog_archiving.properties (GMT)",
				local, rp.UTC().Format("2006:01:02 15:04:05"))
		case pb.DatabaseKind_DATABASE_KIND_DYNAMODB:
			return fmt.Sprintf("point-in-time restore of every table to %s: aws dynamodb restore-table-to-point-in-time --source-table-name TABLE --target-table-name TABLE_RESTORED --restore-date-time %s (then point Scalar DL at the restored tables, or rename)",
				local, utc)
		case pb.DatabaseKind_DATABASE_KIND_COSMOS:
			return fmt.Sprintf("point-in-time restore of the account to %s: az cosmosdb restore --account-name ACCOUNT --target-database-account-name ACCOUNT_RESTORED --restore-timestamp %s --location LOCATION (continuous backup mode)",
				local, utc)
		}
		return fmt.Sprintf("point-in-time restore to %s (%s; UTC %s) with the database's own tools", local, zone, utc)
	case pb.RestoreMethod_RESTORE_METHOD_DUMP:
		switch d.GetKind() {
		case pb.DatabaseKind_DATABASE_KIND_POSTGRES:
			return fmt.Sprintf("restore the dump at %s: pg_restore --clean --if-exists -d DBNAME %s (custom or directory format), or psql -d DBNAME -f %s (plain SQL); it holds the state as of the pause (restore point %s)", art, art, art, local)
		case pb.DatabaseKind_DATABASE_KIND_MYSQL:
			return fmt.Sprintf("restore the dump at %s: mysql DBNAME < %s; it holds the state as of the pause (restore point %s)", art, art, local)
		}
		return fmt.Sprintf("restore the dump at %s with the database's own tools; it holds the state as of the pause (restore point %s)", art, local)
	case pb.RestoreMethod_RESTORE_METHOD_SNAPSHOT:
		switch d.GetKind() {
		case pb.DatabaseKind_DATABASE_KIND_CASSANDRA:
			return fmt.Sprintf("restore the snapshot at %s on every node: copy each table's snapshot SSTables into its data directory and run nodetool refresh KEYSPACE TABLE (or stream them with sstableloader -d HOSTS DIR); it holds the state as of the pause (restore point %s)", art, local)
		}
		return fmt.Sprintf("restore the snapshot at %s with the platform's tools (e.g. create a volume from it); it holds the state as of the pause (restore point %s)", art, local)
	}
	return fmt.Sprintf("restore to %s", local)
}

func restorePointText(e *pb.RestorePoint) string {
	if t := e.GetWindow().GetRestorePoint(); t != nil {
		return t.AsTime().UTC().Format(time.RFC3339Nano)
	}
	return "none"
}

func hookStateWord(s pb.HookState) string { return word(s.String(), "HOOK_STATE_") }

func serviceTitle(svc string) string {
	switch svc {
	case ServiceLedger:
		return "Ledger"
	case ServiceAuditor:
		return "Auditor"
	}
	return svc
}

func orText(s, alt string) string {
	if s == "" {
		return alt
	}
	return s
}

// DedupIDs drops repeated backup ids, keeping the first of each, and sorts
// nothing: the order is the operator's.
func DedupIDs(ids []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}
