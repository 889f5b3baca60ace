package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/stillpoint-dev/stillpoint/internal/grpcx"
	"github.com/stillpoint-dev/stillpoint/internal/logging"
	"github.com/stillpoint-dev/stillpoint/internal/simnode"
)

func init() { subcommands = append(subcommands, newSimnodeCmd) }

// simnodeFlags are the command's flags.
type simnodeFlags struct {
	id          string
	listen      string
	mode        string
	v1          bool
	drainDelay  time.Duration
	workload    bool
	workers     int
	rate        float64
	gap         time.Duration
	accounts    int
	store       string
	dsnA, dsnB  string
	verifyEvery time.Duration
	logLevel    string
	tlsCert     string
	tlsKey      string
	tlsClientCA string
}

func newSimnodeCmd() *cobra.Command {
	f := simnodeFlags{}
	cmd := &cobra.Command{
		Use:   "simnode",
		Short: "Run a simulated Ledger/Auditor/ScalarDB node serving rpc.Admin",
		Long: `Run a simulated Scalar DL Ledger/Auditor or ScalarDB Cluster node. It serves the
scalar-admin protocol (rpc.Admin: Pause, Unpause, CheckPaused; Stats with --v1)
with the real semantics: Pause closes the gate and drains in-flight
transactions up to max_pause_wait_time, a drain timeout reopens the gate,
a paused Ledger blocks new transactions and a paused ScalarDB rejects them.

A transfer workload runs through the gate: each transaction debits an account
in store A, waits --gap, then credits an account in store B — two separate
stores, not atomic together, so only a paused-and-drained moment is a
consistent backup point. The invariant (total conserved, every transfer has
both halves) is checked every --verify-every and at every paused-and-drained
instant, and logged as JSON with every pause and unpause. Every interval
during which the node was paused and drained is logged when it starts
("paused and drained", drained_unix_ns) and ends ("paused interval ended",
start_unix_ns, end_unix_ns): an oracle readable from outside the process.

SIGHUP restarts the node in place, as a crashed and restarted process would
come back: open admin calls fail, every pause is forgotten, the gate opens.`,
		Example: `  stillpoint simnode                                  # Ledger on 127.0.0.1:50053, in-memory stores
  stillpoint simnode --listen 127.0.0.1:40053 --mode ledger --drain-delay 2s
  stillpoint simnode --mode scalardb --v1 --workers 8 --gap 5ms
  stillpoint simnode --workload=false --listen 127.0.0.1:0  # admin port only
  stillpoint simnode --store postgres \
      --dsn-a postgres://postgres@127.0.0.1:5432/sim_a --dsn-b postgres://postgres@127.0.0.1:5432/sim_b`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.config()
			if err != nil {
				return err
			}
			return runSimnode(cmd, f, cfg)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.id, "id", "sim-1", "node id (in logs and transaction ids)")
	fl.StringVar(&f.listen, "listen", "127.0.0.1:50053", "admin address host:port (Ledger 50053, Auditor 40053; port 0 picks one)")
	fl.StringVar(&f.mode, "mode", "ledger", "ledger, auditor (block new transactions while paused) or scalardb (reject them UNAVAILABLE)")
	fl.BoolVar(&f.v1, "v1", false, "emulate an older server: Stats present, CheckPaused UNIMPLEMENTED, no ErrorInfo")
	fl.DurationVar(&f.drainDelay, "drain-delay", 0, "make every drain take at least this long (slow-drain injection)")
	fl.BoolVar(&f.workload, "workload", true, "run the transfer workload")
	fl.IntVar(&f.workers, "workers", 4, "concurrent workload clients")
	fl.Float64Var(&f.rate, "rate", 200, "target transactions per second over all workers (0: as fast as possible)")
	fl.DurationVar(&f.gap, "gap", 2*time.Millisecond, "time between a transfer's debit in store A and its credit in store B")
	fl.IntVar(&f.accounts, "accounts", 16, "accounts per store")
	fl.StringVar(&f.store, "store", "memory", "memory or postgres")
	fl.StringVar(&f.dsnA, "dsn-a", "", "PostgreSQL DSN of store A (with --store postgres)")
	fl.StringVar(&f.dsnB, "dsn-b", "", "PostgreSQL DSN of store B (with --store postgres)")
	fl.DurationVar(&f.verifyEvery, "verify-every", 10*time.Second, "check and log the invariant this often (0: only at paused-and-drained instants)")
	fl.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fl.StringVar(&f.tlsCert, "tls-cert", "", "serve the admin port over TLS with this certificate (PEM; needs --tls-key)")
	fl.StringVar(&f.tlsKey, "tls-key", "", "private key of --tls-cert (PEM)")
	fl.StringVar(&f.tlsClientCA, "tls-client-ca", "", "require client certificates signed by this CA (mTLS)")
	return cmd
}

// config checks every flag and reports all problems at once.
func (f simnodeFlags) config() (simnode.Config, error) {
	var errs []error
	cfg := simnode.DefaultConfig()
	cfg.ID = f.id
	cfg.Listen = f.listen
	cfg.V1 = f.v1
	cfg.DrainDelay = f.drainDelay
	if f.id == "" {
		errs = append(errs, errors.New("--id: empty"))
	}
	if err := simnode.ValidateListen(f.listen); err != nil {
		errs = append(errs, fmt.Errorf("--listen: %w", err))
	}
	if m, err := simnode.ParseMode(f.mode); err != nil {
		errs = append(errs, fmt.Errorf("--mode: %w", err))
	} else {
		cfg.Mode = m
	}
	if f.drainDelay < 0 {
		errs = append(errs, fmt.Errorf("--drain-delay %v: must not be negative", f.drainDelay))
	}
	if f.workload && f.workers < 1 {
		errs = append(errs, fmt.Errorf("--workers %d: want at least 1", f.workers))
	}
	if f.rate < 0 {
		errs = append(errs, fmt.Errorf("--rate %g: must not be negative", f.rate))
	}
	if f.gap < 0 {
		errs = append(errs, fmt.Errorf("--gap %v: must not be negative", f.gap))
	}
	if f.accounts < 1 {
		errs = append(errs, fmt.Errorf("--accounts %d: want at least 1", f.accounts))
	}
	if f.verifyEvery < 0 {
		errs = append(errs, fmt.Errorf("--verify-every %v: must not be negative", f.verifyEvery))
	}
	if _, err := logging.New(logging.Config{Level: f.logLevel}); err != nil {
		errs = append(errs, fmt.Errorf("--log-level: %w", err))
	}
	if f.tlsCert != "" || f.tlsKey != "" || f.tlsClientCA != "" {
		cfg.TLS = grpcx.TLS{CertFile: f.tlsCert, KeyFile: f.tlsKey, CAFile: f.tlsClientCA}
		if _, err := cfg.TLS.ServerConfig(); err != nil {
			errs = append(errs, fmt.Errorf("--tls-cert/--tls-key/--tls-client-ca: %w", err))
		}
	}
	switch f.store {
	case "memory":
		if f.dsnA != "" || f.dsnB != "" {
			errs = append(errs, errors.New("--dsn-a/--dsn-b are only used with --store postgres"))
		}
	case "postgres":
		if _, err := simnode.ParseDSN("--dsn-a", f.dsnA); err != nil {
			errs = append(errs, err)
		}
		if _, err := simnode.ParseDSN("--dsn-b", f.dsnB); err != nil {
			errs = append(errs, err)
		}
	default:
		errs = append(errs, fmt.Errorf("--store %q: want memory or postgres", f.store))
	}
	cfg.Workload = simnode.WorkloadConfig{
		Enabled: f.workload, Workers: f.workers, Rate: f.rate, Gap: f.gap, Accounts: f.accounts, MaxAmount: 100,
	}
	if err := errors.Join(errs...); err != nil {
		return simnode.Config{}, err
	}
	return cfg, nil
}

// runSimnode runs the node until the command's context ends or SIGINT/SIGTERM.
func runSimnode(cmd *cobra.Command, f simnodeFlags, cfg simnode.Config) error {
	ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	log, err := logging.New(logging.Config{Level: f.logLevel})
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	cfg.Logger = log

	if f.store == "postgres" {
		a, err := simnode.OpenPostgresStore(ctx, "A", f.dsnA)
		if err != nil {
			return fmt.Errorf("--dsn-a: %w", err)
		}
		defer func() { _ = a.Close() }()
		b, err := simnode.OpenPostgresStore(ctx, "B", f.dsnB)
		if err != nil {
			return fmt.Errorf("--dsn-b: %w", err)
		}
		defer func() { _ = b.Close() }()
		cfg.StoreA, cfg.StoreB = a, b
	}
	drained := make(chan struct{}, 1)
	cfg.OnPausedDrained = func(time.Time) {
		select { // never block the node's gate
		case drained <- struct{}{}:
		default:
		}
	}
	n, err := simnode.New(cfg)
	if err != nil {
		return err
	}
	if err := n.Start(ctx); err != nil {
		return err
	}
	defer n.Stop()
	if _, err := fmt.Fprintf(cmd.OutOrStdout(), "simnode %s (%s) serving rpc.Admin on %s\n", cfg.ID, cfg.Mode, n.Addr()); err != nil {
		return err
	}

	// SIGHUP restarts the node in place (Node.Restart: the admin server dies
	// and comes back, every pause is forgotten, the gate opens): a node
	// process restart that keeps the container, and with it the network
	// namespace a sidecar agent shares (the fault suite sends it with
	// `docker kill -s HUP`).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	var tick <-chan time.Time
	if f.verifyEvery > 0 {
		t := time.NewTicker(f.verifyEvery)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			log.Info("shutting down", zap.String("node_id", cfg.ID))
			return nil
		case <-hup:
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := n.Restart(rctx)
			cancel()
			if err != nil {
				log.Error("restart on SIGHUP failed", zap.String("node_id", cfg.ID), zap.Error(err))
			}
		case <-tick:
			verifyAndLog(ctx, log, n, "periodic")
		case <-drained:
			verifyAndLog(ctx, log, n, "paused-and-drained")
		}
	}
}

// verifyAndLog checks the invariant and logs the figures. A violation is an
// error only if the read happened entirely inside one paused-and-drained
// interval; mid-load, transfers in their gap show up as unpaired.
func verifyAndLog(ctx context.Context, log *zap.Logger, n *simnode.Node, trigger string) {
	s1, ok1 := n.DrainedSince()
	r, err := n.Verify(ctx)
	s2, ok2 := n.DrainedSince()
	quiescent := ok1 && ok2 && s1.Equal(s2)
	st := n.Stats()
	fields := []zap.Field{
		zap.String("node_id", n.ID()), zap.String("trigger", trigger), zap.Bool("paused_and_drained", quiescent),
		zap.Int64("expected_total", r.ExpectedTotal), zap.Int64("actual_total", r.ActualTotal),
		zap.Int("paired", r.Paired), zap.Int("missing_credit", r.MissingCredit), zap.Int("missing_debit", r.MissingDebit),
		zap.Int64("committed", st.Committed), zap.Int64("rejected", st.Rejected), zap.Int64("failed", st.Failed),
	}
	switch {
	case err != nil:
		log.Error("invariant check failed", append(fields, zap.Error(err))...)
	case r.Consistent():
		log.Info("invariant holds", fields...)
	case quiescent:
		log.Error("invariant BROKEN while paused and drained", append(fields, zap.Error(r.Err()))...)
	default:
		log.Info("invariant check mid-load: transfers in flight", fields...)
	}
}
