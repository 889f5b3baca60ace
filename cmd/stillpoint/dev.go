package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/stillpoint-dev/stillpoint/internal/devcluster"
	"github.com/stillpoint-dev/stillpoint/internal/logging"
	"github.com/stillpoint-dev/stillpoint/internal/timefmt"
)

func init() { subcommands = append(subcommands, newDevCmd) }

func newDevCmd() *cobra.Command {
	var api, logLevel string
	var skews []string
	var withTLS bool
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run a whole Stillpoint cluster in one process on loopback",
		Long: `Run, in this one process on 127.0.0.1: 3 loopback NTP servers, a 3-server Raft
coordinator (API on --api), and 5 simulated nodes running a live transfer
workload, each with its agent: ledger-1..3 (cluster "ledger") and auditor-1..2
(cluster "auditor"). Every CLI command works against it.

--tls turns on mTLS on every gRPC link with an ephemeral CA and role
certificates in the temporary directory, and prints the export line that
points the CLI at its client certificate.

--skew gives one node's local clock an offset from true time, to see the
coordinator refuse a pause and name the node. Ctrl-C stops everything and
removes the temporary data.`,
		Example: `  stillpoint dev
  stillpoint dev --skew ledger-1=500ms     # then: stillpoint pause --cluster ledger (refused)
  stillpoint dev --tls                     # mTLS everywhere; prints export STILLPOINT_CA=... for the CLI`,
		Args: cobra.NoArgs,
	}
	cmd.Flags().StringVar(&api, "api", "127.0.0.1:7400", "host:port of the coordinator API (server-1)")
	cmd.Flags().StringArrayVar(&skews, "skew", nil, "NODE=DURATION: offset a node's local clock (repeatable), e.g. ledger-1=500ms")
	cmd.Flags().BoolVar(&withTLS, "tls", false, "mTLS on every gRPC link with an ephemeral CA (prints the CLI's export line)")
	cmd.Flags().StringVar(&logLevel, "log-level", "warn", "log level of the components (debug, info, warn, error)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg := devcluster.DefaultConfig()
		cfg.APIAddr = api
		cfg.TLS = withTLS
		var err error
		if cfg.Skews, err = parseSkews(skews); err != nil {
			return asUsage(err)
		}
		level := zap.NewAtomicLevel()
		log, err := logging.New(logging.Config{Level: logLevel, Format: "console", Output: cmd.ErrOrStderr(), AtomicLevel: &level})
		if err != nil {
			return usagef("--log-level: %w", err)
		}
		defer func() { _ = log.Sync() }()
		cfg.Logger = log
		ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		out := cmd.OutOrStdout()
		fmt.Fprintln(out, "starting 3 NTP servers, 3 coordinator servers, 5 agents with simulated nodes ...")
		started := time.Now()
		startCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		c, err := devcluster.Start(startCtx, cfg)
		cancel()
		if err != nil {
			if errors.Is(err, context.Canceled) {
				return exitError{exitDetached}
			}
			return err
		}
		planCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		if err := storeDevPlan(planCtx, c); err != nil {
			fmt.Fprintf(cmd.ErrOrStderr(), "warning: the dev backup plan %q was not stored: %v\n", devPlanName, err)
		}
		cancel()
		printDevSummary(cmd, c, cfg, time.Since(started))
		<-ctx.Done()
		// A second Ctrl-C kills the process at once.
		stop()
		// Going down, peers that are already gone are not news: the
		// components' complaints about them (memberlist probes, Raft
		// heartbeats) are not shown. Stop goes in order: agents, then the
		// coordinator's followers, then its leader.
		level.SetLevel(zap.FatalLevel)
		stopping := time.Now()
		c.Stop(context.Background())
		_, err = fmt.Fprintf(out, "stopped in %s (agents, then coordinator followers, then the leader); temporary data removed\n",
			time.Since(stopping).Round(time.Millisecond))
		return err
	}
	return cmd
}

// parseSkews reads NODE=DURATION pairs.
func parseSkews(in []string) (map[string]time.Duration, error) {
	out := map[string]time.Duration{}
	var errs []error
	for _, s := range in {
		name, val, ok := strings.Cut(s, "=")
		if !ok || name == "" {
			errs = append(errs, fmt.Errorf("--skew %q: want NODE=DURATION, e.g. ledger-1=500ms", s))
			continue
		}
		d, err := time.ParseDuration(val)
		if err != nil {
			errs = append(errs, fmt.Errorf("--skew %q: %v", s, err))
			continue
		}
		out[name] = d
	}
	return out, errors.Join(errs...)
}

func printDevSummary(cmd *cobra.Command, c *devcluster.Cluster, cfg devcluster.Config, took time.Duration) {
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "ready in %s: coordinator API on %s (leader: server-%d)\n\n", took.Round(time.Millisecond), c.APIAddr(), c.Leader()+1)
	var rows [][]string
	for _, n := range c.Nodes() {
		skew := "-"
		if d, ok := cfg.Skews[n.Spec.Name]; ok {
			skew = timefmt.Signed(d)
		}
		rows = append(rows, []string{n.Spec.Name, n.Spec.Cluster, n.Agent.GRPCAddr(), n.Sim.Addr(), skew})
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i][0] < rows[j][0] })
	_ = table(w, []string{"NODE", "CLUSTER", "AGENT", "ADMIN PORT (simnode)", "CLOCK SKEW"}, rows)
	addr := ""
	if c.APIAddr() != defaultCoordinatorAddr {
		addr = " --addr " + c.APIAddr()
	}
	var metrics []string
	for _, s := range c.Servers() {
		if a := s.HTTPAddr(); a != "" {
			metrics = append(metrics, "http://"+a+"/metrics")
		}
	}
	if tl := c.ClientTLS(); tl.CertFile != "" {
		fmt.Fprintf(w, "\nmTLS on every link (CA and certificates in %s). For the CLI:\n  export STILLPOINT_CA=%s STILLPOINT_CERT=%s STILLPOINT_KEY=%s\n",
			filepath.Dir(tl.CAFile), tl.CAFile, tl.CertFile, tl.KeyFile)
	}
	fmt.Fprintf(w, `
NTP servers: %s
Coordinator metrics: %[4]s
Web UI: %[5]s (clocks, operations, alarms, members; or: %[3]s ui%[2]s --open)
Agent hooks (for backup plans): snapshot (writes a file under the node's data dir, prints its path), fail (exits 1)
Backup plan "dev": snapshot on ledger-1, ledger-2, then auditor-1 while the Ledger cluster is held; after: ledger-3
ACLs: off in dev mode (no token needed; a production server enforces them: acl.enabled, then stillpoint acl bootstrap)

Try, in another terminal:
  %[3]s members%[2]s
  %[3]s drift%[2]s
  %[3]s alarms watch%[2]s
  %[3]s pause --cluster ledger%[2]s
  %[3]s restore-points list%[2]s --tz Local
  %[3]s backup run --plan dev%[2]s
  %[3]s backup list%[2]s
  %[3]s operator raft list-peers%[2]s

Ctrl-C stops the cluster.
`, strings.Join(c.NTPAddrs(), ", "), addr, invokedAs(os.Args[0]), strings.Join(metrics, " "), devUIURL(c))
}

// invokedAs is how to run this binary again, as the user typed it: the
// path when one was given (".bin/stillpoint", "./stillpoint"), the name
// when the shell found it on PATH, and for `go run` the go command.
func invokedAs(arg0 string) string {
	switch {
	case arg0 == "":
		return "stillpoint"
	case strings.Contains(arg0, "/go-build"):
		return "go run ./cmd/stillpoint"
	}
	return arg0
}

// devUIURL is the web UI of server-1 (the one the API address names).
func devUIURL(c *devcluster.Cluster) string {
	if ss := c.Servers(); len(ss) > 0 && ss[0].HTTPAddr() != "" {
		return "http://" + ss[0].HTTPAddr() + "/ui/"
	}
	return "(no HTTP listener)"
}
