package coordinator

import (
	"fmt"

	"github.com/hashicorp/go-metrics"
	promsink "github.com/hashicorp/go-metrics/prometheus"
	"github.com/prometheus/client_golang/prometheus"
)

// SetupMetrics routes the process-wide go-metrics (raft, raft-wal and
// memberlist emit there) into a Prometheus sink registered on reg, with
// hostnames kept out of the metric names. Call it once per process, before
// starting servers.
func SetupMetrics(reg prometheus.Registerer) (*metrics.Metrics, error) {
	sink, err := promsink.NewPrometheusSinkFrom(promsink.PrometheusOpts{Registerer: reg})
	if err != nil {
		return nil, fmt.Errorf("prometheus sink for raft metrics: %w", err)
	}
	conf := metrics.DefaultConfig("stillpoint")
	conf.EnableHostname = false
	conf.EnableHostnameLabel = false
	conf.EnableRuntimeMetrics = false
	m, err := metrics.NewGlobal(conf, sink)
	if err != nil {
		return nil, fmt.Errorf("raft metrics: %w", err)
	}
	return m, nil
}
