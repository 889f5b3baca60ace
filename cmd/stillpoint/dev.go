package main

import (
	"context"
	"crypto/rand"
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
	var withTLS, withACL, withGossipKey, insecure bool
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run a whole Stillpoint cluster in one process on loopback",
		Long: `Run, in this one process on 127.0.0.1: 3 loopback NTP servers, a 3-server Raft
coordinator (API on --api), and 5 simulated nodes running a live transfer
workload, each with its agent: ledger-1..3 (cluster "ledger") and auditor-1..2
(cluster "auditor"). Every CLI command works against it.

Security is on as in production, with everything generated in the temporary
directory: mTLS on every gRPC link (an ephemeral CA, a server certificate per
server, an agent certificate per agent, and a client certificate for the
CLI), ACL enforcement bootstrapped with an admin token (it may do
everything: read, operate and admin), and gossip encrypted with a fresh
AES-256 key. The banner prints one line to paste into another shell,

  export STILLPOINT_ADDR=... STILLPOINT_CA=... STILLPOINT_CERT=... STILLPOINT_KEY=... STILLPOINT_TOKEN=spt_...

and the same is written to DIR/env (mode 0600) for "source DIR/env". The
web UI's sign-in form takes the token. Without those exports a CLI call is
refused UNAUTHENTICATED (no client certificate, or no token).

For debugging, --tls=false, --acl=false and --gossip-encryption=false turn
one off; --insecure turns all three off (plaintext, no tokens: anyone on
this host may pause; the printed line then unsets STILLPOINT_CA/CERT/KEY/TOKEN).

--skew gives one node's local clock an offset from true time, to see the
coordinator refuse a pause and name the node. Ctrl-C stops everything and
removes the temporary data (certificates, keys, the token and the env file
with it).`,
		Example: `  stillpoint dev                           # then paste its export line in another shell
  stillpoint dev --skew ledger-1=500ms     # then: stillpoint pause --cluster ledger (refused)
  stillpoint dev --insecure                # plaintext, no ACLs, no gossip encryption`,
		Args: cobra.NoArgs,
	}
	cmd.Flags().StringVar(&api, "api", "127.0.0.1:7400", "host:port of the coordinator API (server-1)")
	cmd.Flags().StringArrayVar(&skews, "skew", nil, "NODE=DURATION: offset a node's local clock (repeatable), e.g. ledger-1=500ms")
	cmd.Flags().BoolVar(&withTLS, "tls", true, "mTLS on every gRPC link with an ephemeral CA and role certificates")
	cmd.Flags().BoolVar(&withACL, "acl", true, "enforce ACL tokens; bootstrapped with an admin token the banner prints")
	cmd.Flags().BoolVar(&withGossipKey, "gossip-encryption", true, "encrypt gossip with a fresh AES-256 key")
	cmd.Flags().BoolVar(&insecure, "insecure", false, "turn off mTLS, ACLs and gossip encryption (debugging)")
	cmd.Flags().StringVar(&logLevel, "log-level", "warn", "log level of the components (debug, info, warn, error)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg := devcluster.DefaultConfig()
		cfg.APIAddr = api
		if insecure {
			for _, name := range []string{"tls", "acl", "gossip-encryption"} {
				if cmd.Flags().Changed(name) && cmd.Flags().Lookup(name).Value.String() == "true" {
					return usagef("--insecure turns off --%s; leave --%s out or drop --insecure", name, name)
				}
			}
			withTLS, withACL, withGossipKey = false, false, false
		}
		if err := devSecure(&cfg, withTLS, withACL, withGossipKey); err != nil {
			return err
		}
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
		if err := printDevSummary(cmd, c, cfg, time.Since(started)); err != nil {
			c.Stop(context.Background())
			return err
		}
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

// devSecure turns on what `stillpoint dev` secures by default: mTLS, ACLs
// and gossip encryption with a fresh AES-256 key.
func devSecure(cfg *devcluster.Config, withTLS, withACL, withGossipKey bool) error {
	cfg.TLS, cfg.ACL = withTLS, withACL
	if withGossipKey {
		cfg.GossipKey = make([]byte, 32)
		if _, err := rand.Read(cfg.GossipKey); err != nil {
			return fmt.Errorf("gossip key: %w", err)
		}
	}
	return nil
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

func printDevSummary(cmd *cobra.Command, c *devcluster.Cluster, cfg devcluster.Config, took time.Duration) error {
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
	var metrics []string
	for _, s := range c.Servers() {
		if a := s.HTTPAddr(); a != "" {
			metrics = append(metrics, "http://"+a+"/metrics")
		}
	}
	exports := devExports(c)
	envFile := filepath.Join(c.Dir(), "env")
	if err := os.WriteFile(envFile, []byte(exports+"\n"), 0o600); err != nil {
		return fmt.Errorf("dev: the CLI's environment file: %w", err)
	}
	uiSignIn := ""
	if c.ACLToken() != "" {
		uiSignIn = "\n  its sign-in form takes the STILLPOINT_TOKEN secret; scripts: curl -H \"Authorization: Bearer $STILLPOINT_TOKEN\" URL?format=json"
	}
	self := invokedAs(os.Args[0])
	fmt.Fprintf(w, `
Security: %s
For the CLI, paste into another shell:

  %s

or: source %s

NTP servers: %s
Coordinator metrics: %s
Web UI: %s (clocks, operations, alarms, members; or: %[7]s ui --open)%[8]s
Agent hooks (for backup plans): snapshot (writes a file under the node's data dir, prints its path), fail (exits 1)
Backup plan "dev": snapshot on ledger-1, ledger-2, then auditor-1 while the Ledger cluster is held; after: ledger-3

Try, in that shell:
  %[7]s members
  %[7]s drift
  %[7]s alarms watch
  %[7]s pause --cluster ledger
  %[7]s restore-points list --tz Local
  %[7]s backup run --plan dev
  %[7]s backup list
  %[7]s audit list
  %[7]s operator raft list-peers

Ctrl-C stops the cluster.
`, devSecurity(c, cfg), exports, shellQuote(envFile), strings.Join(c.NTPAddrs(), ", "), strings.Join(metrics, " "), devUIURL(c), self, uiSignIn)
	return nil
}

// devSecurity says, on one line, what is on and where its material is.
func devSecurity(c *devcluster.Cluster, cfg devcluster.Config) string {
	var on, off []string
	if tl := c.ClientTLS(); tl.CertFile != "" {
		on = append(on, "mTLS on every gRPC link (ephemeral CA and certificates in "+filepath.Dir(tl.CAFile)+")")
	} else {
		off = append(off, "TLS")
	}
	if c.ACLToken() != "" {
		on = append(on, "ACLs enforced (STILLPOINT_TOKEN is the bootstrap admin token: read, operate and admin)")
	} else {
		off = append(off, "ACLs (no token needed)")
	}
	if len(cfg.GossipKey) > 0 {
		on = append(on, "gossip encrypted (fresh AES-256 key)")
	} else {
		off = append(off, "gossip encryption")
	}
	out := strings.Join(on, "; ")
	if len(off) > 0 {
		if out != "" {
			out += "; "
		}
		out += "OFF for debugging: " + strings.Join(off, ", ") + " (a production server turns them on)"
	}
	return out
}

// devExports is the shell line that points the CLI at the dev cluster:
// its address, client certificate and token; what is off is unset, so a
// line left from an earlier secure run does not linger.
func devExports(c *devcluster.Cluster) string {
	set := [][2]string{{"STILLPOINT_ADDR", c.APIAddr()}}
	var unset []string
	if tl := c.ClientTLS(); tl.CertFile != "" {
		set = append(set, [2]string{"STILLPOINT_CA", tl.CAFile}, [2]string{"STILLPOINT_CERT", tl.CertFile}, [2]string{"STILLPOINT_KEY", tl.KeyFile})
	} else {
		unset = append(unset, "STILLPOINT_CA", "STILLPOINT_CERT", "STILLPOINT_KEY")
	}
	if tok := c.ACLToken(); tok != "" {
		set = append(set, [2]string{"STILLPOINT_TOKEN", tok})
	} else {
		unset = append(unset, "STILLPOINT_TOKEN")
	}
	var b strings.Builder
	if len(unset) > 0 {
		b.WriteString("unset " + strings.Join(unset, " ") + "; ")
	}
	b.WriteString("export")
	for _, kv := range set {
		b.WriteString(" " + kv[0] + "=" + shellQuote(kv[1]))
	}
	return b.String()
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:,=+@%", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
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
