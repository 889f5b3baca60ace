package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stillpoint-dev/stillpoint/internal/clock"
	"github.com/stillpoint-dev/stillpoint/internal/gossip"
	"github.com/stillpoint-dev/stillpoint/internal/hook"
	"github.com/stillpoint-dev/stillpoint/internal/logging"
	"github.com/stillpoint-dev/stillpoint/internal/scalaradmin"
	"github.com/stillpoint-dev/stillpoint/internal/tlsx"
	"github.com/stillpoint-dev/stillpoint/internal/version"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// Lifecycle errors.
var (
	ErrAlreadyStarted = errors.New("agent already started")
	ErrNotStarted     = errors.New("agent not started")
)

// Option adjusts an agent built by New.
type Option func(*options)

type options struct {
	clk       clock.Clock
	kernel    clock.Kernel
	kernelSet bool
	logger    *zap.Logger
}

// WithClock gives the agent a local clock (for example clock.NewSkewed in
// tests and dev mode). Default clock.System.
func WithClock(c clock.Clock) Option { return func(o *options) { o.clk = c } }

// WithKernel gives the agent the source of the host's clock discipline
// (adjtimex) its bound grows with; nil reads none. Default
// clock.SystemKernel. Tests inject a slewing kernel here.
func WithKernel(k clock.Kernel) Option {
	return func(o *options) { o.kernel, o.kernelSet = k, true }
}

// WithLogger sets the logger (default: JSON to stderr at cfg.Log.Level).
func WithLogger(l *zap.Logger) Option { return func(o *options) { o.logger = l } }

// Agent is one sidecar. Many can run in one process.
type Agent struct {
	cfg         Config
	clk         clock.Clock
	kernel      clock.Kernel
	kernelSet   bool
	log         *zap.Logger
	baseLog     *zap.Logger // without the node field (gossip adds its own)
	incarnation uint64
	core        *core
	hooks       *hookRunner
	metrics     *metrics
	gossipKick  chan struct{}
	stopping    atomic.Bool

	// Set by Start.
	startedAt time.Time
	sampler   *clock.Sampler
	admin     *scalaradmin.Client
	// tls are the reloadable key pairs of the AgentService listener and
	// the admin link (nil entries: plaintext).
	tls           []*tlsx.Source
	grpcSrv       *grpc.Server
	grpcAddr      string
	grpcAdvertise string
	httpSrv       *http.Server
	metricsAddr   string
	pool          atomic.Pointer[gossip.Pool]
	cancel        context.CancelFunc
	wg            sync.WaitGroup

	lifeMu  sync.Mutex
	started bool
	ended   bool
}

// New validates cfg and builds an agent; nothing runs until Start.
func New(cfg Config, opts ...Option) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o := options{clk: clock.System}
	for _, f := range opts {
		f(&o)
	}
	if o.logger == nil {
		l, err := logging.New(logging.Config{Level: cfg.Log.Level, Format: cfg.Log.Format})
		if err != nil {
			return nil, err
		}
		o.logger = l
	}
	a := &Agent{
		cfg:         cfg,
		clk:         o.clk,
		kernel:      o.kernel,
		kernelSet:   o.kernelSet,
		baseLog:     o.logger.With(zap.String("cluster", cfg.Cluster), zap.String("role", cfg.Role)),
		log:         o.logger.With(zap.String("node", cfg.NodeName), zap.String("cluster", cfg.Cluster), zap.String("role", cfg.Role)),
		incarnation: gossip.NewIncarnation(),
		gossipKick:  make(chan struct{}, 1),
	}
	return a, nil
}

// clockSrc is the sampler once started; before that the local clock with
// an empty (unspecified) estimate.
func (a *Agent) clockSrc() clockSource {
	if a.sampler != nil {
		return a.sampler
	}
	return bareClock{a.clk}
}

type bareClock struct{ c clock.Clock }

func (b bareClock) Now() time.Time        { return b.c.Now() }
func (bareClock) Current() clock.Estimate { return clock.Estimate{Reason: "not sampled yet"} }

func (a *Agent) poolRef() *gossip.Pool { return a.pool.Load() }

// Start recovers the persisted lease, then starts the clock sampler, the
// AgentService listener, /metrics and /healthz, the gossip member, the node
// watch and the dead-man switch. ctx bounds startup only; the agent runs
// until Stop or Kill.
func (a *Agent) Start(ctx context.Context) (err error) {
	a.lifeMu.Lock()
	defer a.lifeMu.Unlock()
	if a.started {
		return fmt.Errorf("agent %s: %w", a.cfg.NodeName, ErrAlreadyStarted)
	}
	a.started = true
	a.startedAt = a.clk.Now()
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a.cancel = cancel
	defer func() {
		if err != nil {
			a.ended = true // a failed start cannot be stopped or restarted
			a.teardown()
		}
	}()

	grpcTLS, err := a.openAdmin()
	if err != nil {
		return err
	}

	sampler, err := a.newSampler()
	if err != nil {
		return err
	}
	a.sampler = sampler

	if err := a.newCore(sampler); err != nil {
		return err
	}

	// gRPC first: its address goes into the gossip metadata.
	if err := a.listenGRPC(grpcTLS); err != nil {
		return err
	}
	if err := a.listenMetrics(); err != nil {
		return err
	}

	gcfg, err := a.gossipConfig()
	if err != nil {
		return err
	}
	pool, err := gossip.New(gcfg, a.localMeta)
	if err != nil {
		return fmt.Errorf("agent %s: %w", a.cfg.NodeName, err)
	}
	a.pool.Store(pool)

	a.goRun(func() { sampler.Run(runCtx) })
	a.goRun(func() { a.core.runLeaseTimer(runCtx) })
	a.goRun(func() { a.core.runWatch(runCtx, a.cfg.CheckPausedInterval) })
	a.goRun(func() { a.runGossip(runCtx) })
	a.goRun(func() { a.watchTLS(runCtx) })

	a.log.Info("agent started", zap.String("grpc_addr", a.grpcAddr), zap.String("grpc_advertise", a.grpcAdvertise), zap.String("gossip_addr", pool.AdvertiseAddr()),
		zap.String("metrics_addr", a.metricsAddr), zap.String("admin_addr", a.cfg.Admin.Address),
		zap.Strings("ntp_servers", a.cfg.NTP.Servers), zap.String("version", version.Version))
	return nil
}

// openAdmin makes the data dir, loads both TLS sources and the Scalar DL
// admin client; it returns the gRPC listener's TLS source.
func (a *Agent) openAdmin() (*tlsx.Source, error) {
	if err := os.MkdirAll(a.cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("agent %s: data dir: %w", a.cfg.NodeName, err)
	}
	adminTLS, err := a.cfg.Admin.TLS.Load()
	if err != nil {
		return nil, fmt.Errorf("agent %s: admin.tls: %w", a.cfg.NodeName, err)
	}
	grpcTLS, err := a.cfg.GRPC.TLS.Load()
	if err != nil {
		return nil, fmt.Errorf("agent %s: grpc.tls: %w", a.cfg.NodeName, err)
	}
	a.tls = []*tlsx.Source{grpcTLS, adminTLS}
	admin, err := scalaradmin.New(scalaradmin.Config{Address: a.cfg.Admin.Address, TLS: a.cfg.Admin.TLS, TLSSource: adminTLS, CallTimeout: a.cfg.Admin.CallTimeout})
	if err != nil {
		return nil, fmt.Errorf("agent %s: %w", a.cfg.NodeName, err)
	}
	a.admin = admin
	return grpcTLS, nil
}

// newSampler is the clock sampler the agent's ntp section configures.
func (a *Agent) newSampler() (*clock.Sampler, error) {
	scfg := clock.DefaultConfig()
	scfg.Servers = a.cfg.NTP.Servers
	scfg.PollInterval = a.cfg.NTP.PollInterval
	scfg.Timeout = a.cfg.NTP.Timeout
	scfg.MaxDriftPPM = a.cfg.NTP.MaxDriftPPM
	if a.cfg.NTP.StaleAfterPolls > 0 {
		scfg.StaleAfterPolls = a.cfg.NTP.StaleAfterPolls
	}
	scfg.Clock = a.clk
	if a.kernelSet {
		scfg.Kernel = a.kernel
	}
	scfg.Logger = a.log.With(zap.String("component", "clock"))
	sampler, err := clock.NewSampler(scfg)
	if err != nil {
		return nil, fmt.Errorf("agent %s: clock: %w", a.cfg.NodeName, err)
	}
	return sampler, nil
}

// newCore builds the pause core (recovering the persisted lease), the
// metrics and the hook runner.
func (a *Agent) newCore(sampler *clock.Sampler) error {
	a.core = newCore(coreConfig{Node: a.cfg.NodeName, MaxLease: a.cfg.MaxLease, CallTimeout: a.cfg.Admin.CallTimeout},
		scalarAdmin{a.admin}, sampler, store{dir: a.cfg.DataDir}, a.log, coreHooks{
			changed:     a.kickGossip,
			interrupted: func(string) { a.metrics.interrupted.Inc() },
		})
	if err := a.core.recoverState(); err != nil {
		return fmt.Errorf("agent %s: %w", a.cfg.NodeName, err)
	}
	a.metrics = newMetrics(a)
	a.hooks = newHookRunner(a.cfg.NodeName, a.cfg.Hooks,
		&hook.Executor{Stamp: a.core.stampNow, Label: "agent " + a.cfg.NodeName},
		a.core.fenceHook, a.log.With(zap.String("component", "hook")), a.metrics.observeHook)
	a.hooks.ended, a.hooks.started = a.core.opEnded, a.core.hookStarted
	a.core.setOnEnded(a.hooks.endOp)
	return nil
}

// listenGRPC starts the AgentService listener.
func (a *Agent) listenGRPC(grpcTLS *tlsx.Source) error {
	lis, err := net.Listen("tcp", a.cfg.GRPC.Listen)
	if err != nil {
		return fmt.Errorf("agent %s: gRPC listen %s: %w", a.cfg.NodeName, a.cfg.GRPC.Listen, err)
	}
	srv, err := a.newGRPCServer(grpcTLS)
	if err != nil {
		lis.Close()
		return fmt.Errorf("agent %s: gRPC server: %w", a.cfg.NodeName, err)
	}
	pb.RegisterAgentServiceServer(srv, &service{a: a})
	a.grpcSrv, a.grpcAddr = srv, lis.Addr().String()
	a.grpcAdvertise = a.grpcAddr
	if a.cfg.GRPC.Advertise != "" {
		a.grpcAdvertise = a.cfg.GRPC.Advertise
	}
	a.goRun(func() {
		if err := srv.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			a.log.Error("gRPC server stopped", zap.Error(err))
		}
	})
	return nil
}

// listenMetrics starts /metrics and /healthz when metrics.listen is set.
func (a *Agent) listenMetrics() error {
	if a.cfg.Metrics.Listen == "" {
		return nil
	}
	mlis, err := net.Listen("tcp", a.cfg.Metrics.Listen)
	if err != nil {
		return fmt.Errorf("agent %s: metrics listen %s: %w", a.cfg.NodeName, a.cfg.Metrics.Listen, err)
	}
	a.metricsAddr = mlis.Addr().String()
	a.httpSrv = &http.Server{Handler: a.httpHandler(), ReadHeaderTimeout: 5 * time.Second}
	a.goRun(func() {
		if err := a.httpSrv.Serve(mlis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("metrics server stopped", zap.Error(err))
		}
	})
	return nil
}

func (a *Agent) goRun(f func()) {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		f()
	}()
}

// gossipConfig maps the agent's gossip section onto the pool's config.
func (a *Agent) gossipConfig() (gossip.Config, error) {
	host, port, err := splitHostPort(a.cfg.Gossip.Bind)
	if err != nil {
		return gossip.Config{}, fmt.Errorf("agent %s: gossip.bind: %w", a.cfg.NodeName, err)
	}
	key, _ := a.cfg.Gossip.key() // validated
	g := gossip.Config{
		Name: a.cfg.NodeName, BindAddr: host, BindPort: port, Join: a.cfg.Gossip.Join,
		SecretKey: key, Profile: a.cfg.Gossip.Profile, Logger: a.baseLog,
		// Keys installed at run time (`stillpoint keyring`) survive a restart.
		KeyringFile: filepath.Join(a.cfg.DataDir, KeyringFileName),
	}
	if a.cfg.Gossip.Advertise != "" {
		ah, ap, err := splitHostPort(a.cfg.Gossip.Advertise)
		if err != nil {
			return gossip.Config{}, fmt.Errorf("agent %s: gossip.advertise: %w", a.cfg.NodeName, err)
		}
		g.AdvertiseAddr, g.AdvertisePort = ah, ap
	}
	return g, nil
}

func splitHostPort(s string) (string, int, error) {
	h, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, err
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, fmt.Errorf("port %q: %w", p, err)
	}
	return h, n, nil
}

// GRPCAddr is the AgentService's bound host:port ("" before Start).
func (a *Agent) GRPCAddr() string { return a.grpcAddr }

// GRPCAdvertise is the AgentService address published in gossip (what the
// coordinator dials): grpc.advertise, else the bound address.
func (a *Agent) GRPCAdvertise() string { return a.grpcAdvertise }

// GossipAddr is the gossip host:port other members join ("" before Start).
func (a *Agent) GossipAddr() string {
	if p := a.poolRef(); p != nil {
		return p.AdvertiseAddr()
	}
	return ""
}

// MetricsAddr is the /metrics and /healthz host:port ("" when off).
func (a *Agent) MetricsAddr() string { return a.metricsAddr }

// Name is the agent's node name.
func (a *Agent) Name() string { return a.cfg.NodeName }

// Members is this agent's gossip view (nil before Start).
func (a *Agent) Members() []gossip.Member {
	if p := a.poolRef(); p != nil {
		return p.Members()
	}
	return nil
}

// Stop shuts the agent down gracefully: it refuses new operations,
// unpauses a node it holds paused (so a stopped agent never leaves its node
// paused), leaves the gossip pool and stops its listeners. It returns the
// first error met (the shutdown still completes).
func (a *Agent) Stop(ctx context.Context) error {
	a.lifeMu.Lock()
	defer a.lifeMu.Unlock()
	if !a.started {
		return fmt.Errorf("agent %s: %w", a.cfg.NodeName, ErrNotStarted)
	}
	if a.ended {
		return nil
	}
	a.ended = true
	a.stopping.Store(true)
	var errs []error
	if a.hooks != nil {
		if err := a.hooks.shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if err := a.core.shutdown(ctx); err != nil {
		errs = append(errs, err)
	}
	if p := a.poolRef(); p != nil {
		_ = p.UpdateMeta()
		timeout := 2 * time.Second
		if dl, ok := ctx.Deadline(); ok {
			timeout = min(timeout, time.Until(dl))
		}
		if err := p.Leave(timeout); err != nil {
			errs = append(errs, fmt.Errorf("agent %s: gossip leave: %w", a.cfg.NodeName, err))
		}
	}
	if a.grpcSrv != nil {
		done := make(chan struct{})
		go func() { a.grpcSrv.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			a.grpcSrv.Stop()
		case <-time.After(5 * time.Second):
			a.grpcSrv.Stop()
		}
	}
	if a.httpSrv != nil {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_ = a.httpSrv.Shutdown(sctx)
		cancel()
	}
	a.teardown()
	a.log.Info("agent stopped")
	return errors.Join(errs...)
}

// Kill stops the agent abruptly, as a crash would: no gossip leave, no
// unpause, nothing more persisted. A new agent on the same data directory
// picks up the lease.
func (a *Agent) Kill() {
	a.lifeMu.Lock()
	defer a.lifeMu.Unlock()
	if !a.started || a.ended {
		return
	}
	a.ended = true
	a.stopping.Store(true)
	if a.core != nil {
		a.core.kill()
	}
	if a.hooks != nil {
		// A crashed agent's hooks would die with its cgroup (systemd
		// KillMode=control-group); in one process they are killed here.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_ = a.hooks.shutdown(ctx)
		cancel()
	}
	if a.grpcSrv != nil {
		a.grpcSrv.Stop()
	}
	if a.httpSrv != nil {
		_ = a.httpSrv.Close()
	}
	a.teardown()
	a.log.Warn("agent killed")
}

// teardown stops the background loops and releases what Start opened.
func (a *Agent) teardown() {
	if a.grpcSrv != nil {
		a.grpcSrv.Stop()
	}
	if a.httpSrv != nil {
		_ = a.httpSrv.Close()
	}
	if p := a.poolRef(); p != nil {
		_ = p.Shutdown()
	}
	if a.cancel != nil {
		a.cancel()
	}
	if a.hooks != nil {
		a.hooks.cancel(fmt.Errorf("agent %s stopped", a.cfg.NodeName))
	}
	a.wg.Wait()
	if a.admin != nil {
		_ = a.admin.Close()
	}
}

// State is the agent's full state as served by AgentService/Status.
func (a *Agent) State() *pb.AgentState {
	now := a.clockSrc().Now()
	e := a.clockSrc().Current()
	st := &pb.AgentState{
		Node:        a.cfg.NodeName,
		Role:        a.cfg.Role,
		Cluster:     a.cfg.Cluster,
		GrpcAddress: a.grpcAdvertise,
		Clock:       e.Proto(now),
		Version:     version.Version,
		Hooks:       hook.Names(a.cfg.Hooks),
	}
	if !a.startedAt.IsZero() {
		st.StartedAt = timestamppb.New(a.startedAt)
	}
	if a.core == nil {
		return st
	}
	s := a.core.snapshot(true)
	st.NodeState = s.node.proto(s.draining, now)
	st.OpId, st.OpEpoch = s.opID, s.opEpoch
	st.LeaseRemainingMs = s.remaining.Milliseconds()
	st.MaxEpoch = s.maxEpoch
	st.Events = s.events
	st.InterruptedOpId = s.interruptedOp
	return st
}
