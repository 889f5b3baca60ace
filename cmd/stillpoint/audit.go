package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

func init() { subcommands = append(subcommands, newAuditCmd) }

func newAuditCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Show the audit log: who paused, changed or was refused, and when",
		Long: `The coordinator records every pause, unpause, backup, config, roster, token
and keyring change, and every refused or unauthorized call, in its replicated
state (the newest 10000 records). The actor is what the server that received
the call resolved (token accessor and name, or certificate subject, and the
caller's address); a client's --requested-by is kept as a note beside it.`,
		Example: `  stillpoint audit list --since 1h
  stillpoint audit list --since 2026-01-02T15:04:05Z -o json`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newAuditListCmd())
	return cmd
}

// parseSince reads a duration back from now ("1h") or an RFC 3339 time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, usagef("--since %q: a duration back from now must not be negative", s)
		}
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, usagef("--since %q: want a duration (90m, 24h) or an RFC 3339 time (2026-01-02T15:04:05Z)", s)
	}
	return t, nil
}

func newAuditListCmd() *cobra.Command {
	var since string
	var limit int32
	var stale bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List audit records, newest first",
		Example: `  stillpoint audit list --since 24h
  stillpoint audit list --limit 20 -o json`,
		Args: cobra.NoArgs,
	}
	cf := addClientFlags(cmd)
	cmd.Flags().StringVar(&since, "since", "", "only records since a DURATION ago or an RFC 3339 TIME")
	cmd.Flags().Int32Var(&limit, "limit", 0, "at most this many records (0: all)")
	cmd.Flags().BoolVar(&stale, "stale", false, "answer from the asked server's replica (no leader needed)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		req := &pb.ListAuditRequest{Limit: limit, Stale: stale}
		if limit < 0 {
			return usagef("--limit %d: must not be negative", limit)
		}
		if since != "" {
			t, err := parseSince(since, time.Now())
			if err != nil {
				return err
			}
			req.Since = timestamppb.New(t)
		}
		return unary(cmd, cf, "list audit", func(ctx context.Context, c *coordinatorClient) (*pb.ListAuditResponse, error) {
			return c.ListAudit(ctx, req)
		}, func(resp *pb.ListAuditResponse) error {
			var rows [][]string
			for _, r := range resp.GetRecords() {
				detail := r.GetDetail()
				if n := r.GetCaller().GetNote(); n != "" {
					detail += fmt.Sprintf(" [note: %s]", n)
				}
				if r.GetCaller().GetUnverified() {
					detail += " [forwarded identity unverified]"
				}
				action := r.GetAction()
				if r.GetRefusedCode() != "" {
					action += " " + r.GetRefusedCode() + " " + r.GetMethod()[strings.LastIndex(r.GetMethod(), "/")+1:]
				}
				rows = append(rows, []string{fmt.Sprint(r.GetIndex()), r.GetAt().GetLocalTime().AsTime().UTC().Format(time.RFC3339Nano),
					action, r.GetActor(), r.GetOpId(), detail})
			}
			if err := table(cmd.OutOrStdout(), []string{"INDEX", "AT (UTC)", "ACTION", "ACTOR", "OP", "DETAIL"}, rows); err != nil {
				return err
			}
			if len(rows) == 0 {
				_, err := fmt.Fprintln(cmd.OutOrStdout(), "(no audit records)")
				return err
			}
			return nil
		})
	}
	return cmd
}
