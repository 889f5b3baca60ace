package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

func init() { subcommands = append(subcommands, newOperatorCmd) }

func newOperatorCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "operator",
		Short: "Operate the coordinator's Raft cluster",
		Long:  `Commands for operators of the coordinator servers themselves.`,
		Example: `  stillpoint operator raft list-peers
  stillpoint operator raft transfer-leader server-2`,
		Args: cobra.NoArgs,
	}
	raftCmd := &cobra.Command{
		Use:   "raft",
		Short: "Inspect and change the Raft peer set and leadership",
		Long: `Inspect and change the coordinator's Raft configuration: list the peers,
remove a dead one, move leadership.`,
		Example: `  stillpoint operator raft list-peers -o json
  stillpoint operator raft remove-peer server-3
  stillpoint operator raft transfer-leader`,
		Args: cobra.NoArgs,
	}
	raftCmd.AddCommand(newListPeersCmd(), newRemovePeerCmd(), newTransferLeaderCmd())
	cmd.AddCommand(raftCmd)
	return cmd
}

func newListPeersCmd() *cobra.Command {
	var stale bool
	cmd := &cobra.Command{
		Use:   "list-peers",
		Short: "List the Raft peers and which one leads",
		Long: `List the servers in the Raft configuration, as the leader sees it (or, with
--stale, as the asked server sees it), with their Raft address, whether each
is the leader and whether it votes, and its health: how long ago the leader
last heard it answer a heartbeat, healthy within three heartbeat timeouts.
With --stale on a follower only the leader's last contact is known.`,
		Example: `  stillpoint operator raft list-peers
  stillpoint operator raft list-peers --addr 10.0.0.6:7400 --stale -o json`,
		Args: cobra.NoArgs,
	}
	cf := addClientFlags(cmd)
	cmd.Flags().BoolVar(&stale, "stale", false, "answer from the asked server's own configuration (no leader needed)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		return unary(cmd, cf, "list Raft peers", func(ctx context.Context, c *coordinatorClient) (*pb.ListRaftPeersResponse, error) {
			return c.ListRaftPeers(ctx, &pb.ListRaftPeersRequest{Stale: stale})
		}, func(resp *pb.ListRaftPeersResponse) error {
			rows := make([][]string, 0, len(resp.GetPeers()))
			for _, p := range resp.GetPeers() {
				state := "follower"
				if p.GetLeader() {
					state = "leader"
				}
				contact, health := "-", "unknown"
				if p.LastContactMs != nil {
					contact = contactAgo(p.GetLastContactMs())
					health = healthWord(p.GetHealthy())
				}
				rows = append(rows, []string{p.GetId(), p.GetAddress(), state, fmt.Sprint(p.GetVoter()), contact, health})
			}
			return table(cmd.OutOrStdout(), []string{"ID", "ADDRESS", "STATE", "VOTER", "LAST-CONTACT", "HEALTH"}, rows)
		})
	}
	return cmd
}

func newRemovePeerCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "remove-peer ID",
		Short: "Remove a server from the Raft configuration",
		Long: `Remove a server from the Raft configuration, e.g. one that died for good and
blocks a quorum from forming on restart. Stop the server first: a server that
is still alive in gossip is added back by the leader.`,
		Example: `  stillpoint operator raft remove-peer server-3`,
		Args:    cobra.ExactArgs(1),
	}
	cf := addClientFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return unary(cmd, cf, "remove Raft peer "+args[0], func(ctx context.Context, c *coordinatorClient) (*pb.RemoveRaftPeerResponse, error) {
			return c.RemoveRaftPeer(ctx, &pb.RemoveRaftPeerRequest{Id: args[0]})
		}, func(*pb.RemoveRaftPeerResponse) error {
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "Removed Raft peer %s\n", args[0])
			return err
		})
	}
	return cmd
}

func newTransferLeaderCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "transfer-leader [ID]",
		Short: "Hand Raft leadership to another server",
		Long: `Hand leadership to the named server, or without an ID to the most up-to-date
follower, e.g. before restarting the leader for maintenance.`,
		Example: `  stillpoint operator raft transfer-leader
  stillpoint operator raft transfer-leader server-2`,
		Args: cobra.MaximumNArgs(1),
	}
	cf := addClientFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := cf.dial(cmd)
		if err != nil {
			return err
		}
		defer c.Close()
		req := &pb.TransferLeadershipRequest{}
		if len(args) == 1 {
			req.Id = args[0]
		}
		ctx, cancel := c.call(cmd.Context())
		defer cancel()
		resp, err := c.TransferLeadership(ctx, req)
		if err != nil {
			return c.rpcError("transfer leadership", err)
		}
		if cf.output == outputJSON {
			return printJSON(cmd.OutOrStdout(), resp)
		}
		_, err = fmt.Fprintf(cmd.OutOrStdout(), "Leadership transferred to %s\n", resp.GetNewLeader())
		return err
	}
	return cmd
}
