package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"sort"

	"github.com/spf13/cobra"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

func init() { subcommands = append(subcommands, newKeygenCmd, newKeyringCmd) }

func newKeygenCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "keygen",
		Short: "Print a new random gossip encryption key (base64 of 32 bytes)",
		Long: `Print a new gossip encryption key: 32 random bytes (AES-256) in base64, for
gossip.encryption_key (STILLPOINT_GOSSIP_ENCRYPTION_KEY) on the first start of
every server and agent, or for "stillpoint keyring install" to rotate.`,
		Example: `  stillpoint keygen
  stillpoint keyring install "$(stillpoint keygen)"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var k [32]byte
			if _, err := rand.Read(k[:]); err != nil {
				return err
			}
			_, err := fmt.Fprintln(cmd.OutOrStdout(), base64.StdEncoding.EncodeToString(k[:]))
			return err
		},
	}
}

func newKeyringCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keyring",
		Short: "List or rotate the gossip encryption keyring on every node (admin)",
		Long: `Every server and agent keeps a gossip keyring (its data dir's gossip.keyring,
so a restart keeps it). The coordinator leader sends each operation to every
alive server and agent and reports each node's answer, then how many nodes
have each key. Rotate without a restart: install the new key, use it, remove
the old one. Using a key some node lacks, and removing a key some node uses as
primary, are refused, naming the nodes.`,
		Example: `  stillpoint keyring list
  stillpoint keyring install "$NEW"
  stillpoint keyring use "$NEW"
  stillpoint keyring remove "$OLD"`,
		Args: cobra.NoArgs,
	}
	for _, op := range []struct {
		name  string
		op    pb.KeyringOp
		short string
	}{
		{"list", pb.KeyringOp_KEYRING_OP_LIST, "List the keys of every node and how many nodes have each"},
		{"install", pb.KeyringOp_KEYRING_OP_INSTALL, "Install a key on every node (accepted for decryption)"},
		{"use", pb.KeyringOp_KEYRING_OP_USE, "Make an installed key the primary (encrypting) key on every node"},
		{"remove", pb.KeyringOp_KEYRING_OP_REMOVE, "Remove a key that is no node's primary from every node"},
	} {
		cmd.AddCommand(newKeyringOpCmd(op.name, op.op, op.short))
	}
	return cmd
}

func newKeyringOpCmd(name string, op pb.KeyringOp, short string) *cobra.Command {
	var note string
	c := &cobra.Command{
		Use:     name + " KEY",
		Short:   short,
		Example: "  stillpoint keyring " + name + ` "$(cat new.key)"`,
		Args:    cobra.ExactArgs(1),
	}
	if op == pb.KeyringOp_KEYRING_OP_LIST {
		c.Use, c.Example, c.Args = name, "  stillpoint keyring list -o json", cobra.NoArgs
	}
	cf := addClientFlags(c)
	c.Flags().StringVar(&note, "note", "", "free-text note for the audit log")
	c.RunE = func(cmd *cobra.Command, args []string) error {
		req := &pb.KeyringRequest{Op: op, Note: note}
		if len(args) == 1 {
			req.Key = args[0]
		}
		return unary(cmd, cf, "keyring "+name, func(ctx context.Context, c *coordinatorClient) (*pb.KeyringResponse, error) {
			return c.Keyring(ctx, req)
		}, func(resp *pb.KeyringResponse) error {
			return printKeyring(cmd, resp)
		})
	}
	return c
}

// printKeyring is Consul's keyring output: each node's answer, then each
// key with the count of nodes that have it.
func printKeyring(cmd *cobra.Command, resp *pb.KeyringResponse) error {
	w := cmd.OutOrStdout()
	var rows [][]string
	for _, r := range resp.GetNodes() {
		state := "ok"
		if r.GetError() != "" {
			state = "FAILED: " + r.GetError()
		}
		rows = append(rows, []string{r.GetNode(), r.GetRole(), state})
	}
	if err := table(w, []string{"NODE", "ROLE", "RESULT"}, rows); err != nil {
		return err
	}
	keys := make([]string, 0, len(resp.GetKeyCounts()))
	for k := range resp.GetKeyCounts() {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprintf(w, "\n%d of %d nodes answered\n", resp.GetTotalNodes()-resp.GetFailedNodes(), resp.GetTotalNodes())
	rows = rows[:0]
	for _, k := range keys {
		rows = append(rows, []string{k, fmt.Sprintf("%d/%d", resp.GetKeyCounts()[k], resp.GetTotalNodes()), fmt.Sprintf("%d", resp.GetPrimaryCounts()[k])})
	}
	if err := table(w, []string{"KEY", "INSTALLED", "PRIMARY ON"}, rows); err != nil {
		return err
	}
	if resp.GetFailedNodes() > 0 {
		return fmt.Errorf("keyring: %d of %d nodes failed (listed above)", resp.GetFailedNodes(), resp.GetTotalNodes())
	}
	return nil
}
