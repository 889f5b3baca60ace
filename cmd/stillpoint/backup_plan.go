package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/stillpoint-dev/stillpoint/internal/plan"
	"github.com/stillpoint-dev/stillpoint/internal/timefmt"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

func init() { backupSubcommands = append(backupSubcommands, newBackupPlanCmd) }

// outputYAML is `backup plan get`'s own output format: the plan file.
const outputYAML = "yaml"

func newBackupPlanCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Set, show, list and delete backup plans",
		Long: `Backup plans are YAML files stored in the coordinator. A plan names:

  clusters    what to pause together (default: the Ledger cluster)
  groups      hook groups run while every node is paused, in order
              (by default ledger-databases, then auditor-databases)
  after       hooks run once the restore point is known
  databases   what each backup covers, for 'stillpoint restore plan'
  schedule    an optional cron schedule with its time zone
  retention   how many backups to keep, and for how long

Start from 'stillpoint backup plan example', which explains every key.`,
		Example: `  stillpoint backup plan example > nightly.yaml
  stillpoint backup plan set -f nightly.yaml
  stillpoint backup plan get nightly`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newPlanSetCmd(), newPlanCheckCmd(), newPlanGetCmd(), newPlanListCmd(), newPlanDeleteCmd(), newPlanExampleCmd())
	return cmd
}

func newPlanSetCmd() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "set -f FILE",
		Short: "Store a backup plan from a YAML file (create or replace)",
		Long: `Read a backup plan from a YAML file (- for standard input) and store it in
the coordinator, replacing a plan of the same name (its schedule state is
kept).

The file is read strictly: an unknown key is an error with its line number,
durations need units ("5s", "720h"), and on_error, kind, method and
missed_runs are lower-case words. The coordinator leader then checks the plan
as a whole and reports every problem at once, each with its field:
clusters known, hook groups non-empty and without cycles, every hook's agent
on a roster (or "coordinator") and the hook defined in that agent's own
config file (the agent is asked), databases consistent, the cron schedule and
time zones valid. A refused plan changes nothing. The change is audited.`,
		Example: `  stillpoint backup plan set -f nightly.yaml
  stillpoint backup plan example | sed 's/name: nightly/name: adhoc/' | stillpoint backup plan set -f -`,
		Args: cobra.NoArgs,
	}
	cf := addClientFlags(cmd)
	cmd.Flags().StringVarP(&file, "file", "f", "", "the plan's YAML file, - for standard input (required)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if file == "" {
			return usagef("--file is required (write one from `stillpoint backup plan example`)")
		}
		p, err := readPlanFile(cmd.InOrStdin(), file)
		if err != nil {
			return err
		}
		return unary(cmd, cf, "set backup plan "+p.GetName(), func(ctx context.Context, c *coordinatorClient) (*pb.SetBackupPlanResponse, error) {
			return c.SetBackupPlan(ctx, &pb.SetBackupPlanRequest{Plan: p})
		}, func(resp *pb.SetBackupPlanResponse) error {
			rp := resp.GetPlan().GetPlan()
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "backup plan %s stored (%s)\n", rp.GetName(), planSummary(rp))
			return err
		})
	}
	return cmd
}

func newPlanCheckCmd() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "check -f FILE",
		Short: "Check a backup plan file offline (no coordinator needed)",
		Long: `Read a backup plan file strictly, as 'stillpoint backup plan set' does, and
check everything that needs no coordinator: names, group order and cycles,
empty groups, databases, the cron schedule and time zones, retention and hold
figures. Every problem is listed with its field. What only the cluster knows —
clusters on the roster, agents, the hooks their config files define, the
maximum hold — is checked by 'set'. Exit status 1 when the plan has problems.`,
		Example: `  stillpoint backup plan check -f nightly.yaml
  for f in plans/*.yaml; do stillpoint backup plan check -f "$f" || exit 1; done`,
		Args: cobra.NoArgs,
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "the plan's YAML file, - for standard input (required)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if file == "" {
			return usagef("--file is required")
		}
		p, err := readPlanFile(cmd.InOrStdin(), file)
		if err != nil {
			return err
		}
		if err := plan.Validate(p, nil); err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s: backup plan %s is well formed (%s); agents and hooks are checked by `stillpoint backup plan set`\n", file, p.GetName(), planSummary(p))
		return err
	}
	return cmd
}

// readPlanFile reads and strictly decodes the plan in file (- for stdin).
func readPlanFile(stdin io.Reader, file string) (*pb.BackupPlan, error) {
	var b []byte
	var err error
	if file == "-" {
		b, err = io.ReadAll(stdin)
	} else if b, err = os.ReadFile(file); err != nil {
		return nil, fmt.Errorf("read plan file: %w", err)
	}
	if err != nil {
		return nil, err
	}
	p, err := plan.Decode(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return p, nil
}

func newPlanGetCmd() *cobra.Command {
	var stale bool
	cmd := &cobra.Command{
		Use:   "get NAME",
		Short: "Print a stored backup plan as YAML (or JSON)",
		Long: `Print a stored backup plan as the YAML that 'stillpoint backup plan set'
reads (edit it and set it again), preceded by comments saying who set it and
when, when its schedule last fired and fires next (in the schedule's zone
with its offset). -o json prints the API's PlanRecord.`,
		Example: `  stillpoint backup plan get nightly > nightly.yaml
  stillpoint backup plan get nightly -o json | jq .plan.groups`,
		Args: cobra.ExactArgs(1),
	}
	cf := addClientFlags(cmd)
	cmd.Flags().Lookup("output").Usage = "output format: yaml (the plan file) or json (protojson, proto field names)"
	cmd.Flags().Lookup("output").DefValue = outputYAML
	cf.output = outputYAML
	cmd.Flags().BoolVar(&stale, "stale", false, "answer from the asked server's own view (no leader needed)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if cf.output == outputYAML {
			cf.output = outputTable
		} else if cf.output == outputTable {
			return usagef("--output %q: want yaml or json", cf.output)
		}
		return unary(cmd, cf, "get backup plan "+args[0], func(ctx context.Context, c *coordinatorClient) (*pb.GetBackupPlanResponse, error) {
			return c.GetBackupPlan(ctx, &pb.GetBackupPlanRequest{Name: args[0], Stale: stale})
		}, func(resp *pb.GetBackupPlanResponse) error {
			return printPlanYAML(cmd.OutOrStdout(), resp.GetPlan())
		})
	}
	return cmd
}

func printPlanYAML(w io.Writer, rec *pb.PlanRecord) error {
	p := rec.GetPlan()
	b, err := plan.Encode(p)
	if err != nil {
		return err
	}
	var head strings.Builder
	if at := p.GetUpdatedAt().GetLocalTime(); at != nil || p.GetUpdatedBy() != "" {
		fmt.Fprintf(&head, "# set by %s at %s\n", orDash(p.GetUpdatedBy()), stampText(p.GetUpdatedAt()))
	}
	for _, line := range scheduleLines(rec, time.Now()) {
		head.WriteString(line + "\n")
	}
	_, err = fmt.Fprintf(w, "%s%s", head.String(), b)
	return err
}

func stampText(st *pb.StampedTime) string {
	if st.GetLocalTime() == nil {
		return "-"
	}
	return timefmt.UTC(st.GetLocalTime().AsTime())
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// planSummary is one line about a plan: what it pauses and runs.
func planSummary(p *pb.BackupPlan) string {
	clusters := "the Ledger cluster"
	if len(p.GetClusters()) > 0 {
		clusters = strings.Join(p.GetClusters(), ",")
	}
	hooks := 0
	for _, g := range p.GetGroups() {
		hooks += len(g.GetHooks())
	}
	return fmt.Sprintf("pauses %s; %d groups, %d hooks, %d after hooks; %d databases", clusters, len(p.GetGroups()), hooks, len(p.GetAfter()), len(p.GetDatabases()))
}

func newPlanListCmd() *cobra.Command {
	var stale bool
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the stored backup plans",
		Long: `List the stored backup plans: what each pauses, its hook groups in order,
its databases, its schedule and when it last fired, and who set it.`,
		Example: `  stillpoint backup plan list
  stillpoint backup plan list -o json | jq -r '.plans[].plan.name'`,
		Args: cobra.NoArgs,
	}
	cf := addClientFlags(cmd)
	cmd.Flags().BoolVar(&stale, "stale", false, "answer from the asked server's own view (no leader needed)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		return unary(cmd, cf, "list backup plans", func(ctx context.Context, c *coordinatorClient) (*pb.ListBackupPlansResponse, error) {
			return c.ListBackupPlans(ctx, &pb.ListBackupPlansRequest{Stale: stale})
		}, func(resp *pb.ListBackupPlansResponse) error {
			return planTable(cmd.OutOrStdout(), resp.GetPlans())
		})
	}
	return cmd
}

func planTable(w io.Writer, recs []*pb.PlanRecord) error {
	header := []string{"NAME", "CLUSTERS", "GROUPS", "DATABASES", "SCHEDULE", "LAST FIRED", "UPDATED BY"}
	rows := make([][]string, 0, len(recs))
	for _, rec := range recs {
		p := rec.GetPlan()
		clusters := "(ledger cluster)"
		if len(p.GetClusters()) > 0 {
			clusters = strings.Join(p.GetClusters(), ",")
		}
		var groups []string
		for _, g := range p.GetGroups() {
			groups = append(groups, fmt.Sprintf("%s(%d)", g.GetName(), len(g.GetHooks())))
		}
		var dbs []string
		for _, d := range p.GetDatabases() {
			dbs = append(dbs, fmt.Sprintf("%s:%s/%s", d.GetName(), plan.KindName(d.GetKind()), plan.MethodName(d.GetMethod())))
		}
		sched := "-"
		if p.GetSchedule() != "" {
			sched = p.GetSchedule()
			if z := p.GetScheduleTimeZone(); z != "" {
				sched += " " + z
			}
		}
		fired := "-"
		if lf := rec.GetLastFired(); lf != nil {
			fired = lf.AsTime().UTC().Format(time.RFC3339)
		}
		rows = append(rows, []string{p.GetName(), clusters, orDash(strings.Join(groups, " → ")), orDash(strings.Join(dbs, ",")), sched, fired, orDash(p.GetUpdatedBy())})
	}
	if err := table(w, header, rows); err != nil {
		return err
	}
	if len(rows) == 0 {
		_, err := fmt.Fprintln(w, "(no backup plans; start from `stillpoint backup plan example`)")
		return err
	}
	return nil
}

func newPlanDeleteCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a backup plan (its backups stay in the catalog)",
		Long: `Delete a stored backup plan. Refused while a backup of the plan is running
(the error names the op). Backups the plan made stay in the catalog, each with
the plan as it was when it ran, so their restore plans still work. Audited.`,
		Example: `  stillpoint backup plan delete adhoc`,
		Args:    cobra.ExactArgs(1),
	}
	cf := addClientFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return unary(cmd, cf, "delete backup plan "+args[0], func(ctx context.Context, c *coordinatorClient) (*pb.DeleteBackupPlanResponse, error) {
			return c.DeleteBackupPlan(ctx, &pb.DeleteBackupPlanRequest{Name: args[0]})
		}, func(*pb.DeleteBackupPlanResponse) error {
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "backup plan %s deleted\n", args[0])
			return err
		})
	}
	return cmd
}

func newPlanExampleCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "example",
		Short: "Print a commented default backup plan to start from",
		Long: `Print a backup plan that pauses the Ledger cluster, dumps the Ledger database
(group ledger-databases), then the Auditor database (group auditor-databases),
with a comment on every key. Edit the agent and hook names to match your
agents' config files, then store it with 'stillpoint backup plan set'.`,
		Example: `  stillpoint backup plan example > nightly.yaml`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := io.WriteString(cmd.OutOrStdout(), plan.Example())
			return err
		},
	}
}
