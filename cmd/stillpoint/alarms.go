package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/stillpoint-dev/stillpoint/internal/timefmt"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

func init() { subcommands = append(subcommands, newAlarmsCmd) }

func newAlarmsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "alarms",
		Short: "List or watch the drift alarms the coordinator raised",
		Long: `The coordinator leader evaluates every agent of every cluster on each gossip
update and on a period: error bound above the warning (alarm_warning_ratio of
max_error_bound, 80% by default) and above max_error_bound, offset spread above
the warning and above max_drift (naming the nodes at the extremes), a clock
that is stale, unsynchronized or disrupted, falsetickers (naming the NTP
servers), a pending leap second, an absent agent, an unreachable node, a node
paused with no operation holding it or past its lease. An alarm is raised once
its condition has held for alarm_for and cleared once it has been clear for
alarm_clear_for; it lives in the replicated state, so it survives failover.`,
		Example: `  stillpoint alarms list
  stillpoint alarms watch --addr 10.0.0.5:7400 -o json`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newAlarmsListCmd(), newAlarmsWatchCmd())
	return cmd
}

func newAlarmsListCmd() *cobra.Command {
	var all, stale bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List active alarms (--all: cleared ones still kept too)",
		Example: `  stillpoint alarms list
  stillpoint alarms list --all -o json`,
		Args: cobra.NoArgs,
	}
	cf := addClientFlags(cmd)
	cmd.Flags().BoolVar(&all, "all", false, "include cleared alarms still kept (alarm_retention)")
	cmd.Flags().BoolVar(&stale, "stale", false, "answer from the asked server's replica (no leader needed)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		return unary(cmd, cf, "list alarms", func(ctx context.Context, c *coordinatorClient) (*pb.ListAlarmsResponse, error) {
			return c.ListAlarms(ctx, &pb.ListAlarmsRequest{IncludeCleared: all, Stale: stale})
		}, func(resp *pb.ListAlarmsResponse) error {
			rows := make([][]string, 0, len(resp.GetAlarms()))
			for _, a := range resp.GetAlarms() {
				rows = append(rows, alarmRow(a))
			}
			if err := table(cmd.OutOrStdout(), alarmHeader, rows); err != nil {
				return err
			}
			if len(rows) == 0 {
				_, err := fmt.Fprintln(cmd.OutOrStdout(), "(no alarms)")
				return err
			}
			return nil
		})
	}
	return cmd
}

func newAlarmsWatchCmd() *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "watch",
		Short: "Print the alarms, then every alarm raised, updated or cleared, until interrupted",
		Long: `Print the active alarms, then one line per alarm as it is raised, updated or
cleared, until interrupted. With -o json every message from the server is one
line of JSON (WatchAlarmsResponse: initial, alarms). The watch reconnects by
itself when the server it is connected to goes away.`,
		Example: `  stillpoint alarms watch
  stillpoint alarms watch -o json | jq -c '.alarms[]'`,
		Args: cobra.NoArgs,
	}
	cf := addClientFlags(cmd)
	cmd.Flags().BoolVar(&all, "all", false, "include cleared alarms still kept in the initial list")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		c, err := cf.dial(cmd)
		if err != nil {
			return err
		}
		defer c.Close()
		return watchAlarms(cmd.Context(), c, all, func(resp *pb.WatchAlarmsResponse) error {
			w := cmd.OutOrStdout()
			if cf.output == outputJSON {
				b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(resp)
				if err != nil {
					return err
				}
				_, err = fmt.Fprintln(w, string(b))
				return err
			}
			if resp.GetInitial() {
				rows := make([][]string, 0, len(resp.GetAlarms()))
				for _, a := range resp.GetAlarms() {
					rows = append(rows, alarmRow(a))
				}
				if err := table(w, alarmHeader, rows); err != nil {
					return err
				}
				_, err := fmt.Fprintf(w, "-- watching %s (%d active); Ctrl-C to stop\n", resp.GetServedBy(), len(rows))
				return err
			}
			for _, a := range resp.GetAlarms() {
				if _, err := fmt.Fprintln(w, alarmEvent(a)); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return cmd
}

// watchAlarms streams alarms until ctx ends, reconnecting when the server
// goes away; after a reconnect the initial set is printed again.
// A server never reached (a wrong --addr, or one that is down) or a refusal
// is an error; an interrupt ends the watch without one.
func watchAlarms(ctx context.Context, c *coordinatorClient, all bool, emit func(*pb.WatchAlarmsResponse) error) error {
	err := c.WatchAlarms(ctx, &pb.WatchAlarmsRequest{IncludeCleared: all}, emit)
	if ctx.Err() != nil {
		return nil
	}
	if _, ok := status.FromError(err); ok && err != nil {
		return c.rpcError("watch alarms", err)
	}
	return err
}

var alarmHeader = []string{"SEVERITY", "KIND", "CLUSTER", "NODE", "FIGURE", "RAISED", "STATE", "MESSAGE"}

func alarmRow(a *pb.Alarm) []string {
	node := a.GetNode()
	if node == "" {
		node = strings.Join(a.GetNodes(), "..")
	}
	if node == "" {
		node = "-"
	}
	cluster := a.GetCluster()
	if cluster == "" {
		cluster = "-"
	}
	state := "active"
	if !a.GetActive() {
		state = "cleared " + alarmTime(a.GetClearedAt())
	}
	sev := a.GetSeverity()
	if sev == "" {
		sev = "-"
	}
	return []string{sev, a.GetKind(), cluster, node, alarmFigure(a), alarmTime(a.GetRaisedAt()), state, a.GetMessage()}
}

// alarmEvent is one line of `alarms watch`.
func alarmEvent(a *pb.Alarm) string {
	what := "RAISED "
	switch {
	case !a.GetActive():
		what = "CLEARED"
	case a.GetUpdatedAt() != nil && a.GetRaisedAt() != nil && a.GetUpdatedAt().GetLocalTime().AsTime().After(a.GetRaisedAt().GetLocalTime().AsTime()):
		what = "UPDATED"
	}
	return fmt.Sprintf("%s %s %-8s %s %s", time.Now().UTC().Format(time.RFC3339), what, a.GetSeverity(), a.GetId(), a.GetMessage())
}

// alarmFigure shows an alarm's figure against its limit.
func alarmFigure(a *pb.Alarm) string {
	switch a.GetUnit() {
	case "ns":
		f := timefmt.Duration(time.Duration(a.GetFigure()))
		if a.GetLimit() > 0 {
			f += " > " + timefmt.Duration(time.Duration(a.GetLimit()))
		}
		return f
	case "count":
		return fmt.Sprintf("%g", a.GetFigure())
	}
	return "-"
}

func alarmTime(st *pb.StampedTime) string {
	if st.GetLocalTime() == nil {
		return "-"
	}
	return st.GetLocalTime().AsTime().UTC().Format(time.RFC3339)
}
