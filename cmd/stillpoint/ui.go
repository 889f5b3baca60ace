package main

import (
	"context"
	"fmt"
	"net"
	"os/exec"

	"github.com/spf13/cobra"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

func init() { subcommands = append(subcommands, newUICmd) }

// openURL opens a URL in the desktop's browser (tests replace it).
var openURL = func(url string) error { return exec.Command("xdg-open", url).Start() }

func newUICmd() *cobra.Command {
	var open bool
	cmd := &cobra.Command{
		Use:   "ui [PAGE]",
		Short: "Print (or open) the URL of a coordinator server's web UI",
		Long: `Print the URL of the read-only web UI of the server at --addr: its HTTP
listener (--metrics-listen of 'stillpoint server') serves /ui/ beside
/metrics. The pages: the overview, clocks (every node's offset and error
bound around zero, with the admission limits), ops (each pause on a
timeline with its restore window and restore point), an op's page (with the
backup's hook steps; add ?tz=Asia/Tokyo for times in that zone), alarms and
members. Every page is also JSON: add ?format=json.

PAGE is clocks, ops, ops/OP_ID, alarms or members (default: the overview).
--open opens it with xdg-open.

Where ACL tokens are enabled the pages need a read token: the browser shows
a sign-in form that keeps it in an HttpOnly cookie; scripts send
"Authorization: Bearer SECRET".

A server listening on all interfaces (":7402") reports no host; the URL
then uses the host of the server's gRPC address.`,
		Example: `  stillpoint ui
  stillpoint ui clocks --open
  stillpoint ui ops --addr 10.0.0.5:7400`,
		Args: cobra.MaximumNArgs(1),
	}
	cf := addClientFlags(cmd)
	cmd.Flags().BoolVar(&open, "open", false, "open the URL with xdg-open")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		page := ""
		if len(args) == 1 {
			page = args[0]
		}
		return unary(cmd, cf, "server info", func(ctx context.Context, c *coordinatorClient) (*pb.GetServerInfoResponse, error) {
			return c.GetServerInfo(ctx, &pb.GetServerInfoRequest{})
		}, func(info *pb.GetServerInfoResponse) error {
			url, err := uiURL(info, page)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), url)
			if open {
				if err := openURL(url); err != nil {
					return fmt.Errorf("open %s with xdg-open: %w (open it by hand)", url, err)
				}
			}
			return nil
		})
	}
	return cmd
}

// uiURL is the web UI's URL of the server info describes.
func uiURL(info *pb.GetServerInfoResponse, page string) (string, error) {
	addr := info.GetHttpAddress()
	if addr == "" {
		return "", fmt.Errorf("server %s serves no HTTP: start it with --metrics-listen host:port (the UI is served there under /ui/)", info.GetNodeId())
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("server %s reports HTTP address %q: %v", info.GetNodeId(), addr, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		ghost, _, gerr := net.SplitHostPort(info.GetGrpcAddress())
		if gerr != nil || ghost == "" || net.ParseIP(ghost).IsUnspecified() {
			return "", fmt.Errorf("server %s listens for HTTP on all interfaces (%s) and its gRPC address %q names no host: use http://HOST:%s/ui/", info.GetNodeId(), addr, info.GetGrpcAddress(), port)
		}
		host = ghost
	}
	return "http://" + net.JoinHostPort(host, port) + "/ui/" + page, nil
}
