package agent

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/stillpoint-dev/stillpoint/internal/clock"
	"github.com/stillpoint-dev/stillpoint/internal/enumname"
	"github.com/stillpoint-dev/stillpoint/internal/hook"
	"github.com/stillpoint-dev/stillpoint/internal/scalaradmin"
	"github.com/stillpoint-dev/stillpoint/internal/version"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// Metric names, also used by deploy/prometheus alert rules.
const (
	MetricClockOffset = "stillpoint_agent_clock_offset_seconds"
	MetricClockBound  = "stillpoint_agent_clock_error_bound_seconds"
	MetricClockAge    = "stillpoint_agent_clock_sample_age_seconds"
	MetricClockStatus = "stillpoint_agent_clock_status"
	// MetricClockSlew: the kernel slew rate (adjtimex) the bound grows at
	// besides max drift; MetricClockFailedRounds: rounds since the sample
	// that gave no estimate (the last good one is aging).
	MetricClockSlew         = "stillpoint_agent_clock_slew_ppm"
	MetricClockFailedRounds = "stillpoint_agent_clock_failed_rounds"
	MetricNodeReachable     = "stillpoint_agent_node_reachable"
	MetricNodePaused        = "stillpoint_agent_node_paused"
	MetricNodeDraining      = "stillpoint_agent_node_draining"
	MetricLeaseHeld         = "stillpoint_agent_lease_held"
	MetricLeaseRemaining    = "stillpoint_agent_lease_remaining_seconds"
	MetricLeasesExpired     = "stillpoint_agent_leases_expired_total"
	MetricOpsInterrupted    = "stillpoint_agent_ops_interrupted_total"
	MetricMaxEpoch          = "stillpoint_agent_max_epoch"
	MetricAgentInfo         = "stillpoint_agent_info"
	MetricGossipMembers     = "stillpoint_agent_gossip_members"
	MetricGossipMetaErrors  = "stillpoint_agent_gossip_meta_errors_total"
	// MetricHookRuns counts ended hook runs by hook and state (succeeded,
	// failed, timed_out); MetricHookDuration is their durations.
	MetricHookRuns     = "stillpoint_agent_hook_runs_total"
	MetricHookDuration = "stillpoint_agent_hook_duration_seconds"
)

// metrics is one agent's Prometheus registry; a registry per agent lets
// many agents run in one process (dev mode, tests).
type metrics struct {
	reg          *prometheus.Registry
	interrupted  prometheus.Counter
	metaErrors   prometheus.Counter
	hookRuns     *prometheus.CounterVec
	hookDuration *prometheus.HistogramVec
}

// observeHook counts an ended hook run.
func (m *metrics) observeHook(name string, run *pb.HookRun) {
	m.hookRuns.WithLabelValues(name, enumname.Of(run.GetState())).Inc()
	m.hookDuration.WithLabelValues(name).Observe(time.Duration(run.GetDurationNs()).Seconds())
}

func newMetrics(a *Agent) *metrics {
	reg := prometheus.NewRegistry()
	labels := prometheus.Labels{"node": a.cfg.NodeName, "cluster": a.cfg.Cluster, "role": a.cfg.Role}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: labels}, f)
	}
	est := func() clock.Estimate { return a.clockSrc().Current() }
	m := &metrics{
		reg: reg,
		interrupted: prometheus.NewCounter(prometheus.CounterOpts{Name: MetricOpsInterrupted, ConstLabels: labels,
			Help: "Operations during which the node was seen unpaused (it restarted): their windows are invalid."}),
		metaErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: MetricGossipMetaErrors, ConstLabels: labels,
			Help: "Gossip metadata updates that could not be encoded."}),
		hookRuns: prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricHookRuns, ConstLabels: labels,
			Help: "Backup hook runs that ended, by hook and state (succeeded, failed, timed_out)."}, []string{"hook", "state"}),
		hookDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: MetricHookDuration, ConstLabels: labels,
			Help:    "Durations of backup hook runs (monotonic clock), by hook.",
			Buckets: prometheus.ExponentialBuckets(0.1, 4, 10)}, []string{"hook"}),
	}
	for _, name := range hook.Names(a.cfg.Hooks) {
		for _, st := range []pb.HookState{pb.HookState_HOOK_STATE_SUCCEEDED, pb.HookState_HOOK_STATE_FAILED, pb.HookState_HOOK_STATE_TIMED_OUT} {
			m.hookRuns.WithLabelValues(name, enumname.Of(st))
		}
	}
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.interrupted, m.metaErrors, m.hookRuns, m.hookDuration,
		gauge(MetricClockOffset, "Estimated offset to add to the local clock to get true time.", func() float64 {
			return est().Offset.Seconds()
		}),
		gauge(MetricClockBound, "Certified error bound of the clock offset, grown with the sample's age.", func() float64 {
			return est().BoundAt(a.clockSrc().Now()).Seconds()
		}),
		gauge(MetricClockAge, "Age of the clock estimate's samples.", func() float64 {
			return est().Age(a.clockSrc().Now()).Seconds()
		}),
		gauge(MetricClockSlew, "Fastest rate (ppm) the host's time daemon was seen slewing the clock since the sample (adjtimex); the bound grows at max drift plus this.", func() float64 {
			return est().SlewPPM
		}),
		gauge(MetricClockFailedRounds, "NTP rounds since the sample that gave no estimate; the last good estimate ages until stale.", func() float64 {
			return float64(est().FailedRounds)
		}),
		gauge(MetricNodeReachable, "1 when the node's admin port answered the last check.", func() float64 {
			return b2f(a.core.snapshot(false).node.reachable)
		}),
		gauge(MetricNodePaused, "The node's gate: 1 paused, 0 unpaused, -1 unknown (v1 server or unreachable).", func() float64 {
			switch a.core.snapshot(false).node.gate {
			case scalaradmin.Paused:
				return 1
			case scalaradmin.Unpaused:
				return 0
			}
			return -1
		}),
		gauge(MetricNodeDraining, "1 while a Pause is waiting for the node to drain.", func() float64 {
			return b2f(a.core.snapshot(false).draining)
		}),
		gauge(MetricLeaseHeld, "1 while an operation holds the node under a lease.", func() float64 {
			return b2f(a.core.snapshot(false).opID != "")
		}),
		gauge(MetricLeaseRemaining, "Time left on the dead-man lease (0 when none).", func() float64 {
			return a.core.snapshot(false).remaining.Seconds()
		}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: MetricLeasesExpired, ConstLabels: labels,
			Help: "Leases that ran out (neither renewed nor released), after which the agent unpaused its node itself."},
			func() float64 { return float64(a.core.snapshot(false).leasesExpired) }),
		gauge(MetricMaxEpoch, "Highest coordinator epoch seen (lower epochs are fenced).", func() float64 {
			return float64(a.core.snapshot(false).maxEpoch)
		}),
		gauge(MetricGossipMembers, "Alive members in this agent's gossip view.", func() float64 {
			return float64(a.aliveMembers())
		}),
	)
	for _, s := range []clock.Status{clock.Synchronized, clock.Stale, clock.Unsynchronized, clock.Disrupted} {
		s := s
		l := prometheus.Labels{"status": s.String()}
		for k, v := range labels {
			l[k] = v
		}
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: MetricClockStatus, ConstLabels: l,
			Help: "1 for the clock estimate's current status (synchronized, stale, unsynchronized, disrupted)."},
			func() float64 { return b2f(est().Status == s) }))
	}
	info := prometheus.Labels{"version": version.Version}
	for k, v := range labels {
		info[k] = v
	}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: MetricAgentInfo, ConstLabels: info,
		Help: "Always 1; labels carry the agent's identity and version."}, func() float64 { return 1 }))
	return m
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// httpHandler serves /metrics and /healthz.
func (a *Agent) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(a.metrics.reg, promhttp.HandlerOpts{Registry: a.metrics.reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		s := a.core.snapshot(false)
		e := a.clockSrc().Current()
		body := map[string]any{
			"status":         "ok",
			"node":           a.cfg.NodeName,
			"clock_status":   e.Status.String(),
			"node_reachable": s.node.reachable,
			"op_id":          s.opID,
		}
		code := http.StatusOK
		if a.stopping.Load() {
			body["status"] = "stopping"
			code = http.StatusServiceUnavailable
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(body)
	})
	return mux
}
