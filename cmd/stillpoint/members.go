package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/stillpoint-dev/stillpoint/internal/enumname"
	"github.com/stillpoint-dev/stillpoint/internal/timefmt"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

func init() { subcommands = append(subcommands, newMembersCmd) }

func newMembersCmd() *cobra.Command {
	var cluster string
	var stale bool
	cmd := &cobra.Command{
		Use:   "members",
		Short: "List servers and agents with their clock and node state",
		Long: `List every member of the gossip pool — coordinator servers and the agents
beside Ledger/Auditor nodes — as the coordinator leader sees it: each agent's
clock offset and error bound (grown to now), clock status, sample age, whether
its node is paused, unpaused or unreachable, and the operation holding it.
For a coordinator server NODE is its Raft health and how long ago the leader
last heard it ("healthy,12ms"; "unhealthy" past three heartbeat timeouts).

Every agent that ever joined a cluster stays on that cluster's roster — listed
here as dead or left once its agent is gone — until it is removed with
'stillpoint members remove NODE'. A pause of the cluster is refused while any
roster member is absent: its node may be serving unpaused.

The leader answers (any server forwards to it); --stale lets the server you
ask answer from its own view, which works without a leader.`,
		Example: `  stillpoint members
  stillpoint members --cluster ledger -o json
  STILLPOINT_ADDR=10.0.0.5:7400 stillpoint members --stale`,
		Args: cobra.NoArgs,
	}
	cf := addClientFlags(cmd)
	cmd.Flags().StringVar(&cluster, "cluster", "", "only members of this cluster")
	cmd.Flags().BoolVar(&stale, "stale", false, "answer from the asked server's own view (no leader needed)")
	cmd.AddCommand(newMembersRemoveCmd())
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		return unary(cmd, cf, "list members", func(ctx context.Context, c *coordinatorClient) (*pb.ListMembersResponse, error) {
			return c.ListMembers(ctx, &pb.ListMembersRequest{Cluster: cluster, Stale: stale})
		}, func(resp *pb.ListMembersResponse) error {
			return membersTable(cmd, resp)
		})
	}
	return cmd
}

func membersTable(cmd *cobra.Command, resp *pb.ListMembersResponse) error {
	header := []string{"NAME", "ROLE", "CLUSTER", "ADDRESS", "OFFSET", "±BOUND", "STATUS", "AGE", "NODE", "OP"}
	rows := make([][]string, 0, len(resp.GetMembers()))
	for _, m := range resp.GetMembers() {
		rows = append(rows, memberRow(m))
	}
	if err := table(cmd.OutOrStdout(), header, rows); err != nil {
		return err
	}
	if len(rows) == 0 {
		_, err := fmt.Fprintln(cmd.OutOrStdout(), "(no members)")
		return err
	}
	return nil
}

func memberRow(m *pb.Member) []string {
	dash := "-"
	offset, bound, clockStatus, age := dash, dash, dash, dash
	if c := m.GetClock(); c != nil {
		offset = timefmt.Signed(time.Duration(c.GetOffsetNs()))
		bound = timefmt.PlusMinus(time.Duration(c.GetErrorBoundNs()))
		clockStatus = enumname.Of(c.GetStatus())
		age = timefmt.Duration(time.Duration(c.GetAgeNs()).Round(time.Millisecond))
	}
	node := dash
	if ns := m.GetNodeState(); ns != nil {
		switch {
		case !ns.GetReachable():
			node = "unreachable"
		case ns.GetPaused() == pb.PausedState_PAUSED_STATE_PAUSED:
			node = "paused"
		case ns.GetPaused() == pb.PausedState_PAUSED_STATE_UNPAUSED:
			node = "unpaused"
		default:
			node = "unknown"
		}
		if ns.GetDraining() {
			node += ",draining"
		}
	}
	// A member gossip declared dead or left: its last clock and node state
	// are history, so say so.
	switch m.GetStatus() {
	case pb.MemberStatus_MEMBER_STATUS_DEAD:
		clockStatus = "dead"
		if m.GetRole() != "server" {
			node = "unreachable"
		}
	case pb.MemberStatus_MEMBER_STATUS_LEFT:
		clockStatus = "left"
		if m.GetRole() != "server" {
			node = "unreachable"
		}
	default:
		if m.GetRole() == "server" {
			clockStatus = "alive"
		}
	}
	// A server's NODE is its Raft health and last contact as the serving
	// coordinator (the leader unless --stale) sees it: "healthy,12ms".
	if m.GetRole() == "server" && m.RaftLastContactMs != nil {
		node = healthWord(m.GetRaftHealthy()) + "," + contactAgo(m.GetRaftLastContactMs())
	}
	op := dash
	if m.GetOpId() != "" {
		op = m.GetOpId()
		if m.GetLeaseRemainingMs() > 0 {
			op += fmt.Sprintf(" (lease %s)", timefmt.Duration(time.Duration(m.GetLeaseRemainingMs())*time.Millisecond))
		}
	}
	cluster := m.GetCluster()
	if cluster == "" {
		cluster = dash
	}
	return []string{m.GetName(), m.GetRole(), cluster, m.GetGossipAddress(), offset, bound, clockStatus, age, node, op}
}

func newMembersRemoveCmd() *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "remove NODE",
		Short: "Take a node whose agent is gone off its cluster's roster",
		Long: `Remove a node from its cluster's roster: say that the node is gone for good
(decommissioned, renamed), so that its absent agent no longer refuses pauses
of the cluster. A node whose agent is alive in gossip cannot be removed —
stop the agent first. The removal is recorded in the audit log with who asked
and --reason. An agent that starts again later rejoins the roster by itself.`,
		Example: `  stillpoint members remove ledger-4 --reason "decommissioned, ticket OPS-812"`,
		Args:    cobra.ExactArgs(1),
	}
	cf := addClientFlags(cmd)
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the audit log")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return unary(cmd, cf, "remove "+args[0]+" from the roster", func(ctx context.Context, c *coordinatorClient) (*pb.RemoveRosterMemberResponse, error) {
			return c.RemoveRosterMember(ctx, &pb.RemoveRosterMemberRequest{Name: args[0], Reason: reason})
		}, func(resp *pb.RemoveRosterMemberResponse) error {
			m := resp.GetMember()
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "removed %s from the roster of cluster %s (its agent was %s); pauses of %s no longer wait for it\n",
				m.GetName(), m.GetCluster(), enumname.Of(m.GetStatus()), m.GetCluster())
			return err
		})
	}
	return cmd
}

// healthWord names a Raft peer's health.
func healthWord(healthy bool) string {
	if healthy {
		return "healthy"
	}
	return "unhealthy"
}

// contactAgo prints how long ago, in milliseconds, a Raft peer was last
// heard; "now" for the serving server itself.
func contactAgo(ms int64) string {
	if ms == 0 {
		return "now"
	}
	return timefmt.Duration(time.Duration(ms) * time.Millisecond)
}
