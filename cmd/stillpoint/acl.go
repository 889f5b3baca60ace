package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/stillpoint-dev/stillpoint/coordinator/fsm"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

func init() { subcommands = append(subcommands, newACLCmd) }

func newACLCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "acl",
		Short: "Bootstrap the coordinator's ACLs and manage its role tokens",
		Long: `With acl.enabled on the servers, every coordinator call needs a bearer token
whose role covers it: read (members, drift, ops, catalog, alarms, audit,
backups, plans), operate (read plus pause, unpause, backup runs) or admin
(operate plus config, roster, Raft operator, tokens, keyring, plans).

"stillpoint acl bootstrap" runs once per cluster and prints the first admin
token. Tokens are stored hashed in the replicated state: after creation only
the accessor id, name, role and dates are shown. Commands send the token from
--token, STILLPOINT_TOKEN or --token-file (STILLPOINT_TOKEN_FILE).`,
		Example: `  stillpoint acl bootstrap
  export STILLPOINT_TOKEN=spt_...
  stillpoint acl token create --role operate --name backup-cron --ttl 720h`,
		Args: cobra.NoArgs,
	}
	token := &cobra.Command{
		Use:   "token",
		Short: "Create, list or revoke ACL tokens (admin role)",
		Example: `  stillpoint acl token create --role read --name dashboards
  stillpoint acl token list
  stillpoint acl token revoke 1a2b3c4d5e6f7a8b`,
		Args: cobra.NoArgs,
	}
	token.AddCommand(newACLTokenCreateCmd(), newACLTokenListCmd(), newACLTokenRevokeCmd())
	cmd.AddCommand(newACLBootstrapCmd(), token)
	return cmd
}

func newACLBootstrapCmd() *cobra.Command {
	var note string
	cmd := &cobra.Command{
		Use:   "bootstrap",
		Short: "Create the cluster's first admin token (once per cluster)",
		Long: `Create the first admin token and print its secret, which is shown this once.
A second bootstrap is refused (ALREADY_EXISTS): create further tokens with
"stillpoint acl token create" and an admin token.`,
		Example: `  stillpoint acl bootstrap --addr 10.0.0.5:7400
  stillpoint acl bootstrap -o json | jq -r .secret > admin.token`,
		Args: cobra.NoArgs,
	}
	cf := addClientFlags(cmd)
	cmd.Flags().StringVar(&note, "note", "", "free-text note for the audit log")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		return unary(cmd, cf, "acl bootstrap", func(ctx context.Context, c *coordinatorClient) (*pb.ACLBootstrapResponse, error) {
			return c.ACLBootstrap(ctx, &pb.ACLBootstrapRequest{Note: note})
		}, func(resp *pb.ACLBootstrapResponse) error {
			return printSecret(cmd, resp.GetToken(), resp.GetSecret())
		})
	}
	return cmd
}

// printSecret shows a new token and its secret (this once).
func printSecret(cmd *cobra.Command, tok *pb.ACLToken, secret string) error {
	w := cmd.OutOrStdout()
	_, err := fmt.Fprintf(w, "accessor  %s\nname      %s\nrole      %s\nexpires   %s\nsecret    %s\n\nThe secret is shown this once; the cluster keeps only its hash.\n  export STILLPOINT_TOKEN=%s\n",
		tok.GetAccessorId(), tok.GetName(), fsm.RoleName(tok.GetRole()), expiry(tok), secret, secret)
	return err
}

func expiry(tok *pb.ACLToken) string {
	if tok.GetExpiresAt() == nil {
		return "never"
	}
	return tok.GetExpiresAt().AsTime().UTC().Format(time.RFC3339)
}

// parseRole reads read, operate or admin.
func parseRole(s string) (pb.ACLRole, error) {
	switch strings.ToLower(s) {
	case "read":
		return pb.ACLRole_ACL_ROLE_READ, nil
	case "operate":
		return pb.ACLRole_ACL_ROLE_OPERATE, nil
	case "admin":
		return pb.ACLRole_ACL_ROLE_ADMIN, nil
	}
	return 0, usagef("--role %q: want read, operate or admin", s)
}

func newACLTokenCreateCmd() *cobra.Command {
	var role, name, note string
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create a token with a role; its secret is printed this once",
		Example: `  stillpoint acl token create --role operate --name backup-cron --ttl 720h
  stillpoint acl token create --role read --name grafana -o json`,
		Args: cobra.NoArgs,
	}
	cf := addClientFlags(cmd)
	cmd.Flags().StringVar(&role, "role", "", "read, operate or admin (required)")
	cmd.Flags().StringVar(&name, "name", "", "who or what the token is for (required)")
	cmd.Flags().DurationVar(&ttl, "ttl", 0, "lifetime; 0 never expires")
	cmd.Flags().StringVar(&note, "note", "", "free-text note for the audit log")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		r, err := parseRole(role)
		if err != nil {
			return err
		}
		if name == "" {
			return usagef("--name is required")
		}
		if ttl < 0 {
			return usagef("--ttl %v: must not be negative", ttl)
		}
		return unary(cmd, cf, "create token", func(ctx context.Context, c *coordinatorClient) (*pb.CreateACLTokenResponse, error) {
			return c.CreateACLToken(ctx, &pb.CreateACLTokenRequest{Name: name, Role: r, TtlMs: ttl.Milliseconds(), Note: note})
		}, func(resp *pb.CreateACLTokenResponse) error {
			return printSecret(cmd, resp.GetToken(), resp.GetSecret())
		})
	}
	return cmd
}

func newACLTokenListCmd() *cobra.Command {
	var stale bool
	cmd := &cobra.Command{
		Use:     "list",
		Short:   "List tokens: accessor id, name, role, created, expiry (never secrets)",
		Example: `  stillpoint acl token list -o json`,
		Args:    cobra.NoArgs,
	}
	cf := addClientFlags(cmd)
	cmd.Flags().BoolVar(&stale, "stale", false, "answer from the asked server's replica (no leader needed)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		return unary(cmd, cf, "list tokens", func(ctx context.Context, c *coordinatorClient) (*pb.ListACLTokensResponse, error) {
			return c.ListACLTokens(ctx, &pb.ListACLTokensRequest{Stale: stale})
		}, func(resp *pb.ListACLTokensResponse) error {
			var rows [][]string
			for _, t := range resp.GetTokens() {
				rows = append(rows, []string{t.GetAccessorId(), t.GetName(), fsm.RoleName(t.GetRole()),
					t.GetCreatedAt().GetLocalTime().AsTime().UTC().Format(time.RFC3339), expiry(t), t.GetCreatedBy()})
			}
			return table(cmd.OutOrStdout(), []string{"ACCESSOR", "NAME", "ROLE", "CREATED", "EXPIRES", "CREATED BY"}, rows)
		})
	}
	return cmd
}

func newACLTokenRevokeCmd() *cobra.Command {
	var note string
	cmd := &cobra.Command{
		Use:     "revoke ACCESSOR",
		Short:   "Revoke a token: every later call with it is refused",
		Example: `  stillpoint acl token revoke 1a2b3c4d5e6f7a8b --note "laptop lost"`,
		Args:    cobra.ExactArgs(1),
	}
	cf := addClientFlags(cmd)
	cmd.Flags().StringVar(&note, "note", "", "free-text note for the audit log")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return unary(cmd, cf, "revoke token", func(ctx context.Context, c *coordinatorClient) (*pb.RevokeACLTokenResponse, error) {
			return c.RevokeACLToken(ctx, &pb.RevokeACLTokenRequest{AccessorId: args[0], Note: note})
		}, func(resp *pb.RevokeACLTokenResponse) error {
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "revoked token %s (%s, role %s)\n", resp.GetToken().GetAccessorId(), resp.GetToken().GetName(), fsm.RoleName(resp.GetToken().GetRole()))
			return err
		})
	}
	return cmd
}
