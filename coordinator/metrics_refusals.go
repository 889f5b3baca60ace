package coordinator

import (
	"regexp"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// MetricPauseRefusals counts the refused pauses kept in the audit log, by
// cluster and reason (a bounded set of categories).
const MetricPauseRefusals = "stillpoint_coordinator_pause_refusals"

var descRefusals = prometheus.NewDesc(MetricPauseRefusals,
	"Pause refusals kept in the audit log, by cluster and reason (absent, clock_status, error_bound, offset_spread, node_unreachable, node_paused, busy, other).",
	[]string{"cluster", "reason"}, nil)

var refusedCluster = regexp.MustCompile(`pause refused for cluster (\S+?):`)

// refusalReasons sorts a refusal's detail (admission's message: every
// offending node and figure) into reason categories.
func refusalReasons(detail string) []string {
	var out []string
	add := func(r string) {
		for _, x := range out {
			if x == r {
				return
			}
		}
		out = append(out, r)
	}
	for _, part := range strings.Split(detail, "; ") {
		switch {
		case strings.Contains(part, "on the ") && strings.Contains(part, " roster but its agent"):
			add("absent")
		case strings.Contains(part, "error bound"):
			add("error_bound")
		case strings.Contains(part, "offset spread") || strings.Contains(part, "from the cluster median"):
			add("offset_spread")
		case strings.Contains(part, "clock "):
			add("clock_status")
		case strings.Contains(part, "unreachable") || strings.Contains(part, "did not answer Status"):
			add("node_unreachable")
		case strings.Contains(part, "already paused"):
			add("node_paused")
		case strings.Contains(part, "holds op") || strings.Contains(part, "locked"):
			add("busy")
		default:
			add("other")
		}
	}
	return out
}

// collectRefusals reports the refusals in the audit log.
func (c coordinatorCollector) collectRefusals(ch chan<- prometheus.Metric) {
	counts := map[[2]string]int{}
	for _, r := range c.s.fsm.Audit(0) {
		if r.GetAction() != "pause_refused" {
			continue
		}
		cluster := ""
		if m := refusedCluster.FindStringSubmatch(r.GetDetail()); m != nil {
			cluster = m[1]
		}
		for _, reason := range refusalReasons(r.GetDetail()) {
			counts[[2]string{cluster, reason}]++
		}
	}
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(descRefusals, prometheus.GaugeValue, float64(n), k[0], k[1])
	}
}
